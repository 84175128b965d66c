//! An AWS account as the previous version left it. CI builds one version, so
//! its keys and app clients are made here, straight in moto, exactly as it
//! made them: a key's name is its owner, its description the label, its
//! `keyhook:app` tag 16 hex digits of the SHA-256 of the app identity as that
//! version wrote it (`slug:<slug>`, `app:<developer>/<app name>` with the
//! developer unescaped); a client's name is `kh.<that hash>.<label>.<owner>`.
//! After the upgrade, a portal's retry finds the credential it made before
//! and a reader's login shows it; nothing is re-tagged, so replicas of the
//! previous version running beside it during a rollout find it too.

use sha2::{Digest, Sha256};

use crate::harness::emulator::{app, AwsEnv};
use keyhook::credentials::CredentialKind;
use serde_json::{json, Value};

/// The `keyhook:app` tag the previous version gave `identity`'s credentials.
fn previous_tag(identity: &str) -> String {
    hex::encode(&Sha256::digest(identity.as_bytes())[..8])
}

/// A key made as the previous version made it, attached to `plan`: (id, value).
async fn previous_key(env: &AwsEnv, owner: &str, label: &str, identity: &str) -> (String, String) {
    let app = previous_tag(identity);
    let tags = [
        ("keyhook:app", app.as_str()),
        ("keyhook:origin", "sensedia"),
    ];
    env.tagged_key(owner, label, &tags).await
}

/// A named app's create request (no slug), for the seed's API and first plan.
fn named_app(env: &AwsEnv, developer: &str, name: &str) -> Value {
    json!({
        "appName": name,
        "developer": developer,
        "apis": [{"id": env.seed.api_id, "usagePlans": [{"id": env.seed.plans[0]}]}],
    })
}

#[tokio::test]
async fn a_portal_retry_after_the_upgrade_finds_the_key_the_previous_version_made() {
    let env = AwsEnv::new(1).await;
    let plans = [&env.seed.plans[0]];
    // (developer, create request, identity as the previous version wrote it)
    let cases = [
        (
            "upg-slug@corp.com",
            app("upg-slug@corp.com", "upgslug", &env.seed.api_id, &plans),
            "slug:upgslug".to_string(),
        ),
        // A developer with a `/`: today's identity escapes it, so only the
        // previous form finds this key.
        (
            "upg/slash@corp.com",
            named_app(&env, "upg/slash@corp.com", "Billing"),
            "app:upg/slash@corp.com/Billing".to_string(),
        ),
        (
            "upg-plain@corp.com",
            named_app(&env, "upg-plain@corp.com", "x/y"),
            "app:upg-plain@corp.com/x/y".to_string(),
        ),
    ];
    let mut made = Vec::new();
    for (developer, request, identity) in &cases {
        let label = request["appName"].as_str().unwrap();
        made.push(previous_key(&env, developer, label, identity).await);
    }

    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    env.proxy.reset_calls();
    for ((developer, request, _), (id, value)) in cases.iter().zip(&made) {
        let answer = server.create(request).await;
        assert_eq!(answer["apiKeyId"], json!(id), "{developer}: {answer}");
        assert_eq!(answer["apiKey"], json!(value), "{developer}");
        let shown = server.login_keys(developer).await.unwrap();
        assert_eq!(shown.len(), 1, "{developer}: {shown:?}");
        assert_eq!(shown[0]["apiKey"], json!(value), "{developer}");
        assert_eq!(env.keys_named(developer).await.len(), 1, "{developer}");
    }
    assert_eq!(
        env.proxy.count("CreateApiKey"),
        0,
        "{:?}",
        env.proxy.counts()
    );
    server.stop().await;
}

/// The previous form let an address with a `/` in its domain (refused
/// today) name another developer's app: `upg@b.c/x`'s app `y` and
/// `upg@b.c`'s app `x/y` were one identity. A key made so is not taken for
/// the other developer's, and is left as it was; nor is a key made for a
/// developer whose address reads like another's escaped.
#[tokio::test]
async fn a_key_the_previous_version_made_is_never_another_developers() {
    let env = AwsEnv::new(1).await;
    let (theirs, their_value) = previous_key(&env, "upg@b.c/x", "y", "app:upg@b.c/x/y").await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    let mine = server.create(&named_app(&env, "upg@b.c", "x/y")).await;
    assert_ne!(mine["apiKeyId"], json!(theirs));
    assert_ne!(mine["apiKey"], json!(their_value));
    let untouched = env.keys_named("upg@b.c/x").await;
    assert_eq!(untouched.len(), 1);
    assert_eq!(
        (untouched[0].id(), untouched[0].description()),
        (Some(theirs.as_str()), Some("y"))
    );
    assert_eq!(env.keys_named("upg@b.c").await.len(), 1);

    // Escaped, `upg/v@corp.com` reads like `upg%2fv@corp.com`, a valid
    // address the previous version wrote as is: neither takes the other's.
    let (percent, _) = previous_key(&env, "upg%2fv@corp.com", "x", "app:upg%2fv@corp.com/x").await;
    let slashed = server.create(&named_app(&env, "upg/v@corp.com", "x")).await;
    assert_ne!(slashed["apiKeyId"], json!(percent));
    let retried = server
        .create(&named_app(&env, "upg%2fv@corp.com", "x"))
        .await;
    assert_eq!(retried["apiKeyId"], json!(percent));
    assert_eq!(env.keys_named("upg%2fv@corp.com").await.len(), 1);
    assert_eq!(env.keys_named("upg/v@corp.com").await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_portal_retry_after_the_upgrade_finds_the_app_client_the_previous_version_made() {
    let env = AwsEnv::new(1).await;
    let developer = "upg/client@corp.com";
    // The previous version's name: `/` in the owner written as `=2F`.
    let name = format!(
        "kh.{}.Reports.upg=2Fclient@corp.com",
        previous_tag("app:upg/client@corp.com/Reports")
    );
    let made = env
        .cognito
        .create_user_pool_client()
        .user_pool_id(&env.seed.pool_id)
        .client_name(name)
        .generate_secret(true)
        .allowed_o_auth_flows(
            aws_sdk_cognitoidentityprovider::types::OAuthFlowType::ClientCredentials,
        )
        .allowed_o_auth_flows_user_pool_client(true)
        .allowed_o_auth_scopes(&env.seed.scopes[0])
        .send()
        .await
        .unwrap();
    let client_id = made
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_string();

    let server = env
        .spawn(&env.config(CredentialKind::ClientCredentials))
        .await;
    env.proxy.reset_calls();
    let mut request = named_app(&env, developer, "Reports");
    request["apis"] = json!([]);
    let answer = server.create(&request).await;
    assert_eq!(answer["clientId"], json!(client_id), "{answer}");
    assert_eq!(env.proxy.count("CreateUserPoolClient"), 0);
    assert_eq!(env.clients_of("upg=2Fclient@corp.com").await.len(), 1);
    let shown = server.login_keys(developer).await.unwrap();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["user"], json!(client_id));
    server.stop().await;
}
