//! Errors say nothing of AWS's own words (issue #9, item 5): an
//! `AccessDenied`, whose message names the role ARN and the account, is
//! answered by `/readyz`, `/v1/health`, a Sensedia create and a ReadMe
//! provisioning login with the failing operation and a kind alone, while
//! the process's log keeps AWS's message beside the request id.

use crate::harness::emulator::{app, expected_failure, Emulator};
use crate::harness::process::aws_env;
use crate::harness::proxy::{answer_without_aws_words, Fault, Proxy, DENIED_MESSAGE};
use crate::harness::{Process, README_SECRET, SENSEDIA_PASSWORD, SENSEDIA_USER};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{json, Value};

const DENIED: Fault = Fault::Status(403, "AccessDeniedException");

/// Sends `request` under `request_id`; answers its status and body, which
/// says nothing of AWS's message.
async fn answer(request: RequestBuilder, request_id: &str) -> (StatusCode, Value) {
    let response = request.header("x-request-id", request_id).send();
    answer_without_aws_words(response.await.unwrap()).await
}

/// The log event of the failed request `request_id`: AWS's message is
/// there, in the request's span.
async fn logged_failure(server: &Process, request_id: &str) -> Value {
    for _ in 0..200 {
        let event = (server.logs().lines())
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|e| e["message"] == "request failed" && e["span"]["request_id"] == request_id);
        if let Some(event) = event {
            let error = event["error"].as_str().unwrap();
            assert!(error.contains(DENIED_MESSAGE), "{event}");
            assert!(error.contains("AccessDeniedException"), "{event}");
            return event;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no failure logged for {request_id}: {}", server.tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_reaches_the_log_and_never_an_answer() {
    let emu = Emulator::new(1).await;
    let proxy = Proxy::start(&emu.endpoint).await;
    let plan = &emu.seed.plans[0];
    let mut env = aws_env(&proxy.endpoint);
    env.extend([
        ("KEYHOOK_README_SECRET", README_SECRET.to_string()),
        (
            "KEYHOOK_SENSEDIA_USERS",
            format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}"),
        ),
        ("KEYHOOK_README_PROVISION", "true".into()),
        ("KEYHOOK_USAGE_PLAN_ID", plan.clone()),
        ("RUST_LOG", "warn".into()),
        ("KEYHOOK_AWS_MAX_ATTEMPTS", "1".into()),
    ]);
    // The role may not list keys: the owner index never loads.
    proxy.fail("GetApiKeys", DENIED, usize::MAX);
    let mut server = Process::spawn(&env);
    let unready = json!({"status": "unready", "reason": "aws_access_denied"});
    let mut waited = 0;
    loop {
        let probe = server.http.get(server.url("/readyz"));
        let (status, body) = answer(probe, "probe").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        if body == unready {
            break;
        }
        // Before the first load has failed, it is only starting.
        assert_eq!(body, json!({"status": "unready", "reason": "starting"}));
        waited += 1;
        assert!(waited < 600, "the first load never failed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, body) = answer(server.http.get(server.url("/readyz")), "readyz-1").await;
    assert_eq!(
        (status, body),
        (StatusCode::SERVICE_UNAVAILABLE, unready.clone())
    );
    logged_failure(&server, "readyz-1").await;
    let health = server
        .http
        .get(server.url("/v1/health"))
        .basic_auth(SENSEDIA_USER, Some(SENSEDIA_PASSWORD));
    let (status, body) = answer(health, "health-1").await;
    assert_eq!((status, body), (StatusCode::SERVICE_UNAVAILABLE, unready));
    logged_failure(&server, "health-1").await;

    proxy.clear_faults();
    server.wait_for("/readyz").await;

    // The role may not create keys: a portal's create.
    proxy.fail("CreateApiKey", DENIED, usize::MAX);
    let body = app("denied@corp.com", "denied", &emu.seed.api_id, &[plan]);
    let create = server.sensedia_request("createCredentials", &body);
    let (status, body) = answer(create, "create-1").await;
    let want = expected_failure(&DENIED, "CreateApiKey");
    assert_eq!(want.1["kind"], "aws_access_denied");
    assert_eq!((status, body), want);
    logged_failure(&server, "create-1").await;

    // ...nor a first-time reader's.
    let login = server.login_request("reader@corp.com");
    let (status, body) = answer(login, "login-1").await;
    assert_eq!((status, body), want);
    logged_failure(&server, "login-1").await;
    proxy.clear_faults();
}
