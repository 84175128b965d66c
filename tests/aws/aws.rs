//! The AWS backend end to end: keyhook over real sockets, the real AWS SDK,
//! a real moto server, and a real proxy between them for pagination and
//! faults. Every effect is checked in the emulator itself.

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::emulator::{app, expected_failure, AwsEnv};
use crate::harness::moto::Moto;
use crate::harness::proxy::Fault;
use crate::harness::TestApp;
use keyhook::credentials::aws::settings::RevokeMode;
use keyhook::credentials::CredentialKind;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn api_key_walkthrough_create_login_update_revoke() {
    let env = AwsEnv::new(3).await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    let [p0, p1, p2] = [&env.seed.plans[0], &env.seed.plans[1], &env.seed.plans[2]];
    let dev = "walk@corp.com";

    let response = server
        .sensedia(
            "createCredentials",
            &app(dev, "walk1", &env.seed.api_id, &[p0, p1]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["credentialType"], "API_KEY");
    let key_id = created["apiKeyId"].as_str().unwrap().to_string();
    let key_value = created["apiKey"].as_str().unwrap().to_string();

    // In AWS: one enabled key, named after its owner, tagged, on both plans.
    let keys = env.keys_named(dev).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id(), Some(key_id.as_str()));
    assert_eq!(keys[0].value(), Some(key_value.as_str()));
    assert!(keys[0].enabled());
    assert_eq!(keys[0].description(), Some("App walk1"));
    let tags = keys[0].tags().cloned().unwrap_or_default();
    assert_eq!(
        tags.get("keyhook:origin").map(String::as_str),
        Some("sensedia")
    );
    assert!(tags.contains_key("keyhook:app"));
    assert!(env.plan_key_ids(p0).await.contains(&key_id));
    assert!(env.plan_key_ids(p1).await.contains(&key_id));
    assert!(!env.plan_key_ids(p2).await.contains(&key_id));

    // The developer's ReadMe login shows that key.
    let keys = server.login_keys("Walk@Corp.com").await.unwrap();
    assert_eq!(
        keys,
        vec![json!({"name": "App walk1", "apiKey": key_value})]
    );

    // Update: plans p1+p2 now, renamed app.
    let mut update = app(dev, "walk1", &env.seed.api_id, &[p1, p2]);
    update["appName"] = json!("Walk renamed");
    update["apiKeyId"] = json!(key_id);
    update["credentialType"] = json!("API_KEY");
    let response = server.sensedia("updateCredentials", &update).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(!env.plan_key_ids(p0).await.contains(&key_id));
    assert!(env.plan_key_ids(p1).await.contains(&key_id));
    assert!(env.plan_key_ids(p2).await.contains(&key_id));
    assert_eq!(
        env.keys_named(dev).await[0].description(),
        Some("Walk renamed")
    );
    let keys = server.login_keys(dev).await.unwrap();
    assert_eq!(keys[0]["name"], "Walk renamed");

    // Revoke: gone from AWS and from logins.
    let response = server
        .sensedia(
            "revokeCredentials",
            &json!({"apiKeyId": key_id, "credentialType": "API_KEY"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(env.keys_named(dev).await.is_empty());
    assert_eq!(server.login_keys(dev).await, Err(StatusCode::NOT_FOUND));
    // AWS calls are counted by operation and outcome.
    // In-process: the recorder is this test binary's.
    let metrics = keyhook::metrics::handle().render();
    for op in [
        "CreateApiKey",
        "CreateUsagePlanKey",
        "DeleteUsagePlanKey",
        "DeleteApiKey",
    ] {
        let line = format!("keyhook_aws_calls_total{{operation=\"{op}\",outcome=\"ok\"}}");
        assert!(metrics.contains(&line), "{line} missing");
    }
    // Revoking again is not an error.
    let response = server
        .sensedia(
            "revokeCredentials",
            &json!({"apiKeyId": key_id, "credentialType": "API_KEY"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    server.stop().await;
}

#[tokio::test]
async fn client_credentials_walkthrough_create_login_update_revoke() {
    let env = AwsEnv::new(1).await;
    let mut config = env.config(CredentialKind::ClientCredentials);
    config.aws.client_api_key = true;
    let server = env.spawn(&config).await;
    let plan = &env.seed.plans[0];
    let dev = "oauth@corp.com";

    let response = server
        .sensedia(
            "createCredentials",
            &app(dev, "cc1", &env.seed.api_id, &[plan]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["credentialType"], "CLIENT_CREDENTIALS");
    let client_id = created["clientId"].as_str().unwrap().to_string();
    let secret = created["clientSecret"].as_str().unwrap().to_string();
    let custom = &created["customCredentials"];
    assert_eq!(
        custom["tokenEndpoint"],
        "https://auth.keyhook.test/oauth2/token"
    );
    assert_eq!(
        custom["scopes"],
        format!("{} {}", env.seed.scopes[0], env.seed.scopes[1])
    );
    let companion_id = custom["apiKeyId"].as_str().unwrap().to_string();
    assert!(env.plan_key_ids(plan).await.contains(&companion_id));

    // In Cognito: the client-credentials flow, a secret, the mapped scopes.
    let client = env.client(&client_id).await;
    assert_eq!(client.client_secret(), Some(secret.as_str()));
    assert_eq!(
        client.allowed_o_auth_flows(),
        &[aws_sdk_cognitoidentityprovider::types::OAuthFlowType::ClientCredentials]
    );
    assert_eq!(client.allowed_o_auth_flows_user_pool_client(), Some(true));
    assert_eq!(client.allowed_o_auth_scopes(), env.seed.scopes.as_slice());

    // The ReadMe login shows it as Basic credentials, with its API key.
    let keys = server.login_keys(dev).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["user"], client_id);
    assert_eq!(keys[0]["pass"], secret);
    assert_eq!(keys[0]["name"], "App cc1");
    assert_eq!(keys[0]["apiKey"], custom["apiKey"]);

    // Update: no API of its own any more, so only the default scope; no
    // plans, so no companion key.
    let update = json!({
        "appName": "CC renamed", "appSlug": "cc1", "developer": dev, "apis": [],
        "credentialType": "CLIENT_CREDENTIALS", "clientId": client_id,
    });
    let response = server.sensedia("updateCredentials", &update).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let client = env.client(&client_id).await;
    assert_eq!(client.allowed_o_auth_scopes(), &env.seed.scopes[..1]);
    assert_eq!(
        client.allowed_o_auth_flows(),
        &[aws_sdk_cognitoidentityprovider::types::OAuthFlowType::ClientCredentials]
    );
    assert!(client.client_name().unwrap().contains("CC=20renamed"));
    assert!(
        env.keys_named(dev).await.is_empty(),
        "companion key deleted"
    );
    assert_eq!(
        server.login_keys(dev).await.unwrap()[0]["name"],
        "CC renamed"
    );

    let response = server
        .sensedia(
            "revokeCredentials",
            &json!({"clientId": client_id, "credentialType": "CLIENT_CREDENTIALS"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(env.clients().await.is_empty());
    assert_eq!(server.login_keys(dev).await, Err(StatusCode::NOT_FOUND));
    server.stop().await;
}

#[tokio::test]
async fn portal_retries_get_the_same_credential_of_both_kinds() {
    let env = AwsEnv::new(1).await;
    for kind in [CredentialKind::ApiKey, CredentialKind::ClientCredentials] {
        let server = env.spawn(&env.config(kind)).await;
        let dev = format!("{kind}@retry.io").replace('_', "-");
        let body = app(
            &dev,
            &format!("retry-{kind}").replace('_', "-"),
            &env.seed.api_id,
            &[&env.seed.plans[0]],
        );
        let first: Value = server
            .sensedia("createCredentials", &body)
            .await
            .json()
            .await
            .unwrap();
        let second: Value = server
            .sensedia("createCredentials", &body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(first, second);
        server.stop().await;
        // A fresh replica, with an index loaded from AWS, agrees.
        let server = env.spawn(&env.config(kind)).await;
        let third: Value = server
            .sensedia("createCredentials", &body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(first, third);
        server.stop().await;
    }
    assert_eq!(env.keys_named("api-key@retry.io").await.len(), 1);
    assert_eq!(env.clients().await.len(), 1);
}

#[tokio::test]
async fn readme_provisions_exactly_one_key_attached_to_the_plan() {
    let env = AwsEnv::new(1).await;
    let mut config = env.config(CredentialKind::ApiKey);
    config.readme.provision = true;
    config.readme.usage_plan_id = Some(env.seed.plans[0].clone());
    let server = env.spawn(&config).await;

    let logins: Vec<_> = (0..20)
        .map(|_| {
            let s = server.api.clone();
            tokio::spawn(async move { s.login_keys("first@timer.io").await.unwrap() })
        })
        .collect();
    let mut answers = Vec::new();
    for login in logins {
        answers.push(login.await.unwrap());
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "every login saw the same key");
    let keys = env.keys_named("first@timer.io").await;
    assert_eq!(keys.len(), 1);
    assert_eq!(answers[0][0]["apiKey"], keys[0].value().unwrap());
    assert!(env
        .plan_key_ids(&env.seed.plans[0])
        .await
        .contains(&keys[0].id().unwrap().to_string()));
    assert_eq!(
        keys[0]
            .tags()
            .unwrap()
            .get("keyhook:origin")
            .map(String::as_str),
        Some("readme")
    );
    server.stop().await;
}

#[tokio::test]
async fn logins_match_the_whole_address_and_find_hand_made_keys() {
    let env = AwsEnv::new(1).await;
    let jo = env.hand_made_key("jo@prefix.io", true).await;
    let jo_au = env.hand_made_key("jo@prefix.io.au", true).await;
    env.hand_made_key("jo@prefix.io", false).await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    let keys = server.login_keys("jo@prefix.io").await.unwrap();
    assert_eq!(keys, vec![json!({"name": "API key", "apiKey": jo})]);
    let keys = server.login_keys("jo@prefix.io.au").await.unwrap();
    assert_eq!(keys, vec![json!({"name": "API key", "apiKey": jo_au})]);
    assert_eq!(
        server.login_keys("jo@prefix.i").await,
        Err(StatusCode::NOT_FOUND)
    );

    // A key made by hand after keyhook started is found at the reader's
    // first login (an index miss asks AWS).
    let late = env.hand_made_key("late@prefix.io", true).await;
    let keys = server.login_keys("late@prefix.io").await.unwrap();
    assert_eq!(keys[0]["apiKey"], late);
    server.stop().await;
}

#[tokio::test]
async fn the_index_follows_position_across_pages() {
    let env = AwsEnv::new(1).await;
    env.proxy.paginate_api_keys(2);
    let mut made = HashMap::new();
    for i in 0..7 {
        let owner = format!("page{i}@pages.io");
        made.insert(owner.clone(), env.hand_made_key(&owner, true).await);
    }
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    env.proxy.reset_calls();
    for (owner, value) in &made {
        let keys = server.login_keys(owner).await.unwrap();
        assert_eq!(keys[0]["apiKey"], value.as_str());
    }
    assert!(
        env.proxy.pages_served() >= 4,
        "{}",
        env.proxy.pages_served()
    );
    assert_eq!(
        env.proxy.count("GetApiKeys"),
        0,
        "logins served from the index"
    );
    server.stop().await;
}

/// The emulator's listings, behind every "nothing left behind" check, read
/// to the last page. moto answers `GetApiKeys` in one page whatever its
/// `limit`, so the emulator reads here through the test proxy, which serves
/// it in pages of 2: five keys of one owner cannot fit on one page.
#[tokio::test]
async fn the_emulator_reads_every_page_of_a_listing() {
    let env = AwsEnv::new(1).await;
    let owner = "many@pages.io";
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(env.hand_made_key(owner, true).await);
    }
    env.proxy.paginate_api_keys(2);
    let paged = env.through(&env.proxy);
    let mut seen: Vec<String> = paged
        .keys_named(owner)
        .await
        .iter()
        .map(|k| k.value().unwrap().to_string())
        .collect();
    seen.sort();
    made.sort();
    // Compared without printing: the values are API keys.
    assert_eq!(seen.len(), made.len(), "keys of {owner} found on all pages");
    assert!(seen == made, "the keys found are not the ones made");
    assert!(
        env.proxy.pages_served() >= 3,
        "{} pages",
        env.proxy.pages_served()
    );
}

#[tokio::test]
async fn a_failed_attach_leaves_no_key_behind() {
    let env = AwsEnv::new(2).await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    let plans = [&env.seed.plans[0], &env.seed.plans[1]];
    for (i, fault) in [
        Fault::Status(500, "InternalServerError"),
        Fault::Status(429, "TooManyRequestsException"),
        Fault::Status(400, "BadRequestException"),
        Fault::Drop,
        Fault::Delay(Duration::from_secs(5)),
    ]
    .into_iter()
    .enumerate()
    {
        let dev = format!("orphan{i}@corp.com");
        // The second attach fails, every attempt.
        env.proxy.clear_faults();
        env.proxy
            .fail("CreateUsagePlanKey", Fault::Delay(Duration::ZERO), 1);
        env.proxy.fail("CreateUsagePlanKey", fault.clone(), 10);
        let response = server
            .sensedia(
                "createCredentials",
                &app(&dev, &format!("orphan{i}"), &env.seed.api_id, &plans),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        let (want_status, phrase) = expected_failure(&fault, "CreateUsagePlanKey");
        assert_eq!(status, want_status, "{fault:?}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with(&phrase),
            "{fault:?}: {body}, expected {phrase:?}"
        );
        env.proxy.clear_faults();
        assert!(
            env.keys_named(&dev).await.is_empty(),
            "{fault:?}: key left behind"
        );
        assert_eq!(server.login_keys(&dev).await, Err(StatusCode::NOT_FOUND));
    }
    server.stop().await;
}

#[tokio::test]
async fn throttled_aws_never_fails_a_login_the_index_can_answer() {
    let env = AwsEnv::new(1).await;
    let value = env.hand_made_key("steady@corp.com", true).await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    env.proxy.fail(
        "GetApiKeys",
        Fault::Status(429, "TooManyRequestsException"),
        1000,
    );
    for _ in 0..20 {
        let keys = server.login_keys("steady@corp.com").await.unwrap();
        assert_eq!(keys[0]["apiKey"], value.as_str());
    }
    // A reader the index does not know gets "no key", not a 5xx.
    assert_eq!(
        server.login_keys("nobody@corp.com").await,
        Err(StatusCode::NOT_FOUND)
    );
    server.stop().await;
}

#[tokio::test]
async fn revoke_can_disable_instead_of_delete() {
    let env = AwsEnv::new(1).await;
    let mut config = env.config(CredentialKind::ApiKey);
    config.aws.revoke = RevokeMode::Disable;
    let server = env.spawn(&config).await;
    let created: Value = server
        .sensedia(
            "createCredentials",
            &app("dis@corp.com", "dis", &env.seed.api_id, &[]),
        )
        .await
        .json()
        .await
        .unwrap();
    let response = server
        .sensedia(
            "revokeCredentials",
            &json!({"appSlug": "dis", "credentialType": "API_KEY"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let keys = env.keys_named("dis@corp.com").await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id(), created["apiKeyId"].as_str());
    assert!(!keys[0].enabled());
    assert_eq!(
        server.login_keys("dis@corp.com").await,
        Err(StatusCode::NOT_FOUND)
    );
    server.stop().await;
}

#[tokio::test]
async fn an_unreachable_aws_is_unready_and_answers_503() {
    let env = AwsEnv::new(1).await;
    let fault = Fault::Status(503, "ServiceUnavailableException");
    env.proxy.fail("GetApiKeys", fault.clone(), 10_000);
    let server = TestApp::spawn(&env.config(CredentialKind::ApiKey), Some(env.keyhook_sdk())).await;
    let response = server.get_as_portal("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let response = server.get_as_portal("/v1/health").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "backend unavailable: load owner index is unavailable: \
         the first load from AWS has not finished"
    );
    // Before the index is loaded a login must ask AWS, and AWS fails.
    let response = server.login("any@corp.com").await;
    let (want_status, phrase) = expected_failure(&fault, "GetApiKeys");
    assert_eq!(want_status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.status(), want_status);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().starts_with(&phrase),
        "{body}, expected {phrase:?}"
    );
    server.stop().await;
}

/// Runs `keyhook check` against moto with `extra` settings.
fn check(extra: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyhook"))
        .arg("check")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KEYHOOK_BACKEND", "aws")
        .env("AWS_ENDPOINT_URL", &Moto::shared().endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn check_verifies_the_configured_usage_plan_and_user_pool() {
    let env = AwsEnv::new(1).await;
    let (ok, text) = check(&[
        ("KEYHOOK_USAGE_PLAN_ID", &env.seed.plans[0]),
        ("KEYHOOK_COGNITO_USER_POOL_ID", &env.seed.pool_id),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("usage plan {} exists", env.seed.plans[0])),
        "{text}"
    );
    assert!(
        text.contains(&format!("user pool {} exists", env.seed.pool_id)),
        "{text}"
    );

    let (ok, text) = check(&[("KEYHOOK_USAGE_PLAN_ID", "noplan")]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("usage plan noplan (KEYHOOK_USAGE_PLAN_ID) does not exist"),
        "{text}"
    );

    let (ok, text) = check(&[("KEYHOOK_COGNITO_USER_POOL_ID", "us-east-1_nopool")]);
    assert!(!ok, "{text}");
    assert!(text.contains("KEYHOOK_COGNITO_USER_POOL_ID"), "{text}");
}
