//! What an `AccessDenied` from AWS, whose message names the role ARN and
//! the account, looks like to callers (issue #9, item 5): the failing
//! operation and a kind from the documented set, never AWS's own words.
//! (`tests/process/errors.rs` checks the same through the binary, and that
//! the log keeps AWS's message.)

use std::time::Duration;

use crate::harness::emulator::{app, expected_failure, AwsEnv};
use crate::harness::proxy::{answer_without_aws_words as answer, Fault};
use keyhook::credentials::CredentialKind;
use reqwest::StatusCode;
use serde_json::{json, Value};

const DENIED: Fault = Fault::Status(403, "AccessDeniedException");

#[tokio::test]
async fn a_denied_probe_is_unready_for_that_reason_alone() {
    let env = AwsEnv::new(1).await;
    let server = env.spawn(&env.config(CredentialKind::ApiKey)).await;
    env.proxy.fail("GetApiKeys", DENIED, usize::MAX);
    // The last good answer is reused for a few seconds, then AWS is asked.
    let unready = json!({"status": "unready", "reason": "aws_access_denied"});
    let mut body = Value::Null;
    for _ in 0..300 {
        let status;
        (status, body) = answer(server.get("/readyz").await).await;
        if status != StatusCode::OK {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(body, unready);
    let health = answer(server.get_as_portal("/v1/health").await).await;
    assert_eq!(health, (StatusCode::SERVICE_UNAVAILABLE, unready));
    env.proxy.clear_faults();
    server.stop().await;
}

#[tokio::test]
async fn a_denied_create_or_provisioning_names_the_operation_and_the_kind() {
    let env = AwsEnv::new(1).await;
    let plan = env.seed.plans[0].clone();
    let mut config = env.config(CredentialKind::ApiKey);
    config.readme.provision = true;
    config.readme.usage_plan_id = Some(plan.clone());
    let server = env.spawn(&config).await;
    env.proxy.fail("CreateApiKey", DENIED, usize::MAX);
    let want = expected_failure(&DENIED, "CreateApiKey");
    assert_eq!(
        want,
        (
            StatusCode::BAD_GATEWAY,
            json!({
                "error": "CreateApiKey failed: AWS denied access",
                "kind": "aws_access_denied",
                "operation": "CreateApiKey",
            })
        )
    );
    let body = app("denied@corp.com", "denied", &env.seed.api_id, &[&plan]);
    let created = answer(server.sensedia("createCredentials", &body).await).await;
    assert_eq!(created, want);
    let login = answer(server.login("reader@corp.com").await).await;
    assert_eq!(login, want);

    // A client credential's create, denied by Cognito, alike.
    env.proxy.clear_faults();
    let config = env.config(CredentialKind::ClientCredentials);
    let clients = env.spawn(&config).await;
    env.proxy.fail("CreateUserPoolClient", DENIED, usize::MAX);
    let body = app("denied@corp.com", "oauth", &env.seed.api_id, &[&plan]);
    let created = answer(clients.sensedia("createCredentials", &body).await).await;
    assert_eq!(created, expected_failure(&DENIED, "CreateUserPoolClient"));
    env.proxy.clear_faults();
    clients.stop().await;
    server.stop().await;
}
