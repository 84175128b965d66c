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
    // Revoking again: it is gone, as an unknown id.
    let response = server
        .sensedia(
            "revokeCredentials",
            &json!({"apiKeyId": key_id, "credentialType": "API_KEY"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
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
        let (want_status, want_body) = expected_failure(&fault, "CreateUsagePlanKey");
        assert_eq!(status, want_status, "{fault:?}: {body}");
        assert_eq!(body, want_body, "{fault:?}");
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
    // `starting` until the first load has failed (the SDK retries first),
    // then how it failed.
    let starting = json!({"status": "unready", "reason": "starting"});
    let mut body = starting.clone();
    for _ in 0..400 {
        let response = server.get_as_portal("/v1/health").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        body = response.json().await.unwrap();
        if body != starting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        body,
        json!({"status": "unready", "reason": "aws_unavailable"})
    );
    // Before the index is loaded a login must ask AWS, and AWS fails.
    let response = server.login("any@corp.com").await;
    let (want_status, want_body) = expected_failure(&fault, "GetApiKeys");
    assert_eq!(want_status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.status(), want_status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, want_body);
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

/// The one key named `owner` in AWS: (id, description, enabled, plans).
async fn only_key(env: &AwsEnv, owner: &str) -> (String, Option<String>, bool, Vec<String>) {
    let keys = env.keys_named(owner).await;
    assert_eq!(keys.len(), 1, "{owner}: {keys:?}");
    let id = keys[0].id().unwrap().to_string();
    let plans = env.plans_of(&id).await;
    (
        id,
        keys[0].description().map(str::to_string),
        keys[0].enabled(),
        plans,
    )
}

/// `route` with `body` answers 404, and its body is exactly the one an id
/// keyhook never issued gets.
async fn refused_as_unknown(server: &TestApp, route: &str, body: &Value, id: &str) {
    let response = server.sensedia(route, body).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "{route} {body}");
    let refused = response.text().await.unwrap().replace(id, "ID");
    let mut unknown = body.clone();
    for field in ["apiKeyId", "clientId"] {
        if unknown.get(field).is_some() {
            unknown[field] = json!("zzzzzzzzzz");
        }
    }
    let response = server.sensedia(route, &unknown).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let unknown = response.text().await.unwrap().replace("zzzzzzzzzz", "ID");
    assert_eq!(refused, unknown, "{route} {body}");
}

#[tokio::test]
async fn a_hand_made_key_is_never_updated_revoked_or_shown_through_sensedia() {
    let env = AwsEnv::new(2).await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    let [p0, p1] = [&env.seed.plans[0], &env.seed.plans[1]];
    let owner = "console-owner@corp.com";
    let value = env.hand_made_key(owner, true).await;
    let (id, description, _, _) = only_key(&env, owner).await;
    env.apigw
        .create_usage_plan_key()
        .usage_plan_id(p0)
        .key_id(&id)
        .key_type("API_KEY")
        .send()
        .await
        .unwrap();
    let before = only_key(&env, owner).await;
    assert_eq!(before, (id.clone(), description, true, vec![p0.clone()]));

    let requester = "requester-hm@corp.com";
    server
        .create(&app(requester, "hmreq", &env.seed.api_id, &[p1]))
        .await;
    let mut update = app(requester, "hmreq", &env.seed.api_id, &[p1]);
    update["apiKeyId"] = json!(id);
    refused_as_unknown(&server, "updateCredentials", &update, &id).await;
    let mut id_only_update = app(requester, "x", &env.seed.api_id, &[p1]);
    id_only_update.as_object_mut().unwrap().remove("appSlug");
    id_only_update["apiKeyId"] = json!(id);
    refused_as_unknown(&server, "updateCredentials", &id_only_update, &id).await;
    for revoke in [
        json!({"apiKeyId": id, "credentialType": "API_KEY", "appSlug": "hmreq"}),
        json!({"apiKeyId": id, "credentialType": "API_KEY"}),
    ] {
        refused_as_unknown(&server, "revokeCredentials", &revoke, &id).await;
    }

    assert_eq!(only_key(&env, owner).await, before, "untouched in AWS");
    let shown = server.login_keys(requester).await.unwrap();
    assert!(
        !shown.iter().any(|k| k["apiKey"] == json!(value)),
        "{shown:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn another_apps_key_named_with_this_apps_slug_is_404_and_untouched() {
    let env = AwsEnv::new(2).await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    let [p0, p1] = [&env.seed.plans[0], &env.seed.plans[1]];
    let (victim, attacker) = ("victim-aws@corp.com", "attacker-aws@corp.com");
    let theirs = server
        .create(&app(victim, "victimaws", &env.seed.api_id, &[p0]))
        .await;
    server
        .create(&app(attacker, "attackeraws", &env.seed.api_id, &[p1]))
        .await;
    let their_id = theirs["apiKeyId"].as_str().unwrap().to_string();
    let before = only_key(&env, victim).await;

    let mut update = app(attacker, "attackeraws", &env.seed.api_id, &[p1]);
    update["apiKeyId"] = json!(their_id);
    refused_as_unknown(&server, "updateCredentials", &update, &their_id).await;
    let revoke =
        json!({"apiKeyId": their_id, "credentialType": "API_KEY", "appSlug": "attackeraws"});
    refused_as_unknown(&server, "revokeCredentials", &revoke, &their_id).await;

    assert_eq!(only_key(&env, victim).await, before);
    let shown = server.login_keys(attacker).await.unwrap();
    assert!(!shown.iter().any(|k| k["apiKey"] == theirs["apiKey"]));
    server.stop().await;
}

#[tokio::test]
async fn revoke_with_the_wrong_credential_type_is_409_and_revokes_nothing() {
    let env = AwsEnv::new(1).await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    let p0 = &env.seed.plans[0];
    let dev = "wrongkind@corp.com";
    let created = server
        .create(&app(dev, "wrongkind", &env.seed.api_id, &[p0]))
        .await;
    let before = only_key(&env, dev).await;
    for route in ["revokeCredentials", "updateCredentials"] {
        let mut body = app(dev, "wrongkind", &env.seed.api_id, &[p0]);
        body["credentialType"] = json!("CLIENT_CREDENTIALS");
        body["clientId"] = created["apiKeyId"].clone();
        let response = server.sensedia(route, &body).await;
        assert_eq!(response.status(), StatusCode::CONFLICT, "{route}");
    }
    assert_eq!(only_key(&env, dev).await, before);
    assert_eq!(server.login_keys(dev).await.unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn create_for_an_existing_slug_with_a_new_developer_moves_the_key_in_aws() {
    let env = AwsEnv::new(3).await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    let [p0, p1, p2] = [&env.seed.plans[0], &env.seed.plans[1], &env.seed.plans[2]];
    let (old, new) = ("first-owner@corp.com", "second-owner@corp.com");
    let first = server
        .create(&app(old, "movingapp", &env.seed.api_id, &[p0, p1]))
        .await;
    let mut moved = app(new, "movingapp", &env.seed.api_id, &[p1, p2]);
    moved["appName"] = json!("Moved app");
    assert_eq!(server.create(&moved).await, first);

    let id = first["apiKeyId"].as_str().unwrap().to_string();
    assert!(env.keys_named(old).await.is_empty());
    assert_eq!(
        only_key(&env, new).await,
        (
            id.clone(),
            Some("Moved app".into()),
            true,
            vec![p1.clone(), p2.clone()]
        )
    );
    assert_eq!(server.login_keys(old).await, Err(StatusCode::NOT_FOUND));
    assert_eq!(
        server.login_keys(new).await.unwrap(),
        vec![json!({"name": "Moved app", "apiKey": first["apiKey"]})]
    );

    // A retry changes nothing, in AWS or in the answer.
    env.proxy.reset_calls();
    assert_eq!(server.create(&moved).await, first);
    for op in [
        "UpdateApiKey",
        "CreateApiKey",
        "CreateUsagePlanKey",
        "DeleteUsagePlanKey",
    ] {
        assert_eq!(env.proxy.count(op), 0, "{op}: {:?}", env.proxy.counts());
    }
    assert_eq!(
        only_key(&env, new).await,
        (
            id,
            Some("Moved app".into()),
            true,
            vec![p1.clone(), p2.clone()]
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn update_for_the_same_app_with_a_new_developer_moves_the_key_in_aws() {
    let env = AwsEnv::new(2).await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    let [p0, p1] = [&env.seed.plans[0], &env.seed.plans[1]];
    let (old, new) = ("upd-first@corp.com", "upd-second@corp.com");
    let first = server
        .create(&app(old, "updmoving", &env.seed.api_id, &[p0]))
        .await;
    let mut moved = app(new, "updmoving", &env.seed.api_id, &[p1]);
    moved["apiKeyId"] = first["apiKeyId"].clone();
    let response = server.sensedia("updateCredentials", &moved).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(env.keys_named(old).await.is_empty());
    let (id, _, enabled, plans) = only_key(&env, new).await;
    assert_eq!(
        (id.as_str(), enabled),
        (first["apiKeyId"].as_str().unwrap(), true)
    );
    assert_eq!(plans, vec![p1.clone()]);
    assert_eq!(server.login_keys(old).await, Err(StatusCode::NOT_FOUND));
    assert_eq!(
        server.login_keys(new).await.unwrap(),
        vec![json!({"name": "App updmoving", "apiKey": first["apiKey"]})]
    );
    server.stop().await;
}

#[tokio::test]
async fn create_for_an_existing_slug_with_a_new_developer_moves_the_app_client() {
    let env = AwsEnv::new(1).await;
    let server = env
        .spawn(&env.config(CredentialKind::ClientCredentials))
        .await;
    let p0 = &env.seed.plans[0];
    let (old, new) = ("client-first@corp.com", "client-second@corp.com");
    let first = server
        .create(&app(old, "clientmoving", &env.seed.api_id, &[p0]))
        .await;
    let moved = app(new, "clientmoving", &env.seed.api_id, &[p0]);
    let again = server.create(&moved).await;
    assert_eq!(again["clientId"], first["clientId"]);
    assert!(env.clients_of(old).await.is_empty());
    let clients = env.clients_of(new).await;
    assert_eq!(clients.len(), 1, "{clients:?}");
    assert_eq!(json!(clients[0].0), first["clientId"]);
    assert_eq!(server.login_keys(old).await, Err(StatusCode::NOT_FOUND));
    assert_eq!(server.login_keys(new).await.unwrap().len(), 1);
    server.stop().await;
}

/// The app's key found in AWS rather than in the index (made by another
/// replica, or left half made by a crash): on no plan, on another plan, or
/// as requested. A create answers that key on exactly the requested plans;
/// one already as requested is read, not changed.
#[tokio::test]
async fn a_create_that_finds_the_apps_key_in_aws_brings_it_to_the_requested_plans() {
    let env = AwsEnv::new(2).await;
    let (p1, p2) = (&env.seed.plans[0], &env.seed.plans[1]);
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    for (slug, on) in [
        ("found-on-none", vec![]),
        ("found-on-other", vec![p2]),
        ("found-as-asked", vec![p1]),
    ] {
        let owner = format!("{slug}@corp.com");
        let key = env
            .apigw
            .create_api_key()
            .name(&owner)
            .description(format!("App {slug}"))
            .enabled(true)
            .tags(
                "keyhook:app",
                keyhook::credentials::aws::app_key(&keyhook::credentials::AppId::sensedia_slug(
                    slug,
                ))
                .hash(),
            )
            .tags("keyhook:origin", "sensedia")
            .send()
            .await
            .unwrap();
        let id = key.id().unwrap();
        for plan in &on {
            env.apigw
                .create_usage_plan_key()
                .usage_plan_id(*plan)
                .key_id(id)
                .key_type("API_KEY")
                .send()
                .await
                .unwrap();
        }
        env.proxy.reset_calls();
        let answer = server
            .create(&app(&owner, slug, &env.seed.api_id, &[p1]))
            .await;
        assert_eq!(answer["apiKeyId"], json!(id), "{slug}: {answer}");
        assert_eq!(env.plans_of(id).await, [p1.as_str()], "{slug}");
        assert_eq!(env.keys_named(&owner).await.len(), 1, "{slug}");
        let on_other = on == [p2];
        let expected = [
            ("CreateApiKey", 0),
            ("UpdateApiKey", 0),
            ("CreateUsagePlanKey", usize::from(on != [p1])),
            ("DeleteUsagePlanKey", usize::from(on_other)),
        ];
        for (op, times) in expected {
            assert_eq!(
                env.proxy.count(op),
                times,
                "{slug} {op}: {:?}",
                env.proxy.counts()
            );
        }
    }
    server.stop().await;
}
