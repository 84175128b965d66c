//! Both front doors on the embedded store, over real sockets: the contract
//! vectors, every error path, the prefix case, concurrency, persistence.

mod support;

use keyhook::config::Config;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::app::{base_config, Server, PORTAL_PASSWORD, PORTAL_USER};

const VECTOR_T: i64 = 1_700_000_000_000;

fn local(dir: &tempfile::TempDir) -> Config {
    let mut config = base_config();
    config.data_dir = dir.path().to_path_buf();
    config
}

async fn post_login(server: &Server, signature: Option<&str>, body: &[u8]) -> (StatusCode, Value) {
    let mut request = server
        .http
        .post(format!("{}/readme/webhook", server.base))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("readme-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create(server: &Server, developer: &str, slug: &str) -> Value {
    let response = server
        .sensedia(
            "createCredentials",
            &json!({"appName": format!("App {slug}"), "appSlug": slug, "developer": developer}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn contract_vectors_verify_with_an_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = local(&dir);
    config.readme.secret = vec!["docs4dayz".to_string().into()];
    config.readme.provision = true;
    let server =
        Server::spawn_with_clock(&config, None, keyhook::clock::fixed(VECTOR_T + 60_000)).await;
    for (body, v0) in [
        (
            r#"{"email":"marc@readme.io"}"#,
            "9b3dfcfdeeb2fa99c400c6f23f865c3ab24b9daaa3e05e2299febf60c0a78b96",
        ),
        (
            r#"{"email":"jöhn@example.com"}"#,
            "55619053a8b37910c6ef6d41234a589a2db9606dc263e397f7e3bd690d8dea1f",
        ),
        (
            r#"{"email":"a/b@example.com"}"#,
            "231daf4fe49dc9990d00ae1eba9883e34d23e384709aa5415f861a46e0d12be8",
        ),
    ] {
        let header = format!("t={VECTOR_T},v0={v0}");
        let (status, answer) = post_login(&server, Some(&header), body.as_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {answer}");
        let sent: Value = serde_json::from_str(body).unwrap();
        assert_eq!(answer["email"], sent["email"]);
        assert_eq!(answer["keys"].as_array().unwrap().len(), 1);
    }
    server.stop().await;
}

#[tokio::test]
async fn signature_failures_answer_401_with_the_sdk_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::spawn(&local(&dir), None).await;
    let body = br#"{"email":"dev@corp.com"}"#;
    let now = keyhook::clock::now_ms();
    let old =
        keyhook::readme::signature::sign(support::app::README_SECRET, now - 31 * 60_000, body);
    let future =
        keyhook::readme::signature::sign(support::app::README_SECRET, now + 31 * 60_000, body);
    let wrong = keyhook::readme::signature::sign("other-secret", now, body);
    let other_body = keyhook::readme::signature::sign(support::app::README_SECRET, now, b"{}");
    for (signature, message) in [
        (None, "Missing Signature"),
        (Some(old.as_str()), "Expired Signature"),
        (Some(future.as_str()), "Expired Signature"),
        (Some(wrong.as_str()), "Invalid Signature"),
        (Some(other_body.as_str()), "Invalid Signature"),
        (Some("t=abc,v0=zz"), "Invalid Signature"),
    ] {
        let (status, answer) = post_login(&server, signature, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{signature:?}");
        assert_eq!(answer, json!({ "error": message }), "{signature:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn logins_match_whole_addresses_case_insensitively() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::spawn(&local(&dir), None).await;
    let jo = create(&server, "jo@corp.com", "jo").await;
    let jo_au = create(&server, "jo@corp.com.au", "joau").await;
    assert_eq!(
        server.login_keys("JO@Corp.com").await.unwrap(),
        vec![json!({"name": "App jo", "apiKey": jo["apiKey"]})]
    );
    assert_eq!(
        server.login_keys("jo@corp.com.au").await.unwrap(),
        vec![json!({"name": "App joau", "apiKey": jo_au["apiKey"]})]
    );
    assert_eq!(
        server.login_keys("jo@corp.co").await,
        Err(StatusCode::NOT_FOUND)
    );
    let john = create(&server, "jöhn@example.com", "john").await;
    assert_eq!(
        server.login_keys("Jöhn@example.com").await.unwrap()[0]["apiKey"],
        john["apiKey"]
    );
    server.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_first_logins_provision_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = local(&dir);
    config.readme.provision = true;
    config.readme.usage_plan_id = Some("plan01".into());
    let server = Server::spawn(&config, None).await;
    let logins: Vec<_> = (0..50)
        .map(|_| {
            let client = Server::client_for(&server.base);
            tokio::spawn(async move { client.login_keys("new@reader.io").await.unwrap() })
        })
        .collect();
    let mut answers = Vec::new();
    for login in logins {
        answers.push(login.await.unwrap());
    }
    answers.dedup();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].len(), 1);
    assert_eq!(
        server.login_keys("new@reader.io").await.unwrap(),
        answers[0]
    );
    server.stop().await;
}

#[tokio::test]
async fn sensedia_create_is_idempotent_and_revoke_hides_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::spawn(&local(&dir), None).await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let client = Server::client_for(&server.base);
            tokio::spawn(async move {
                client
                    .sensedia(
                        "createCredentials",
                        &json!({"appName": "Same", "developer": "same@corp.com"}),
                    )
                    .await
                    .json::<Value>()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    answers.dedup();
    assert_eq!(answers.len(), 1, "{answers:?}");
    let key = &answers[0];
    assert_eq!(key["credentialType"], "API_KEY");
    assert_eq!(key["apiKeyId"].as_str().unwrap().len(), 10);
    assert!(key["apiKey"].as_str().unwrap().len() >= 30);
    let revoke = json!({"apiKeyId": key["apiKeyId"]});
    assert_eq!(
        server.sensedia("revokeCredentials", &revoke).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server.login_keys("same@corp.com").await,
        Err(StatusCode::NOT_FOUND)
    );
    assert_eq!(
        server.sensedia("revokeCredentials", &revoke).await.status(),
        StatusCode::NO_CONTENT
    );
    let update =
        json!({"apiKeyId": key["apiKeyId"], "appName": "Same", "developer": "same@corp.com"});
    let response = server.sensedia("updateCredentials", &update).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    server.stop().await;
}

/// Route, `Authorization`, `Content-Type`, body, expected status.
type BadRequest<'a> = (
    &'a str,
    Option<String>,
    Option<&'a str>,
    Vec<u8>,
    StatusCode,
);

#[tokio::test]
async fn bad_requests_get_the_right_4xx_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::spawn(&local(&dir), None).await;
    let before = create(&server, "keep@corp.com", "keep").await;
    let auth = format!("{PORTAL_USER}:{PORTAL_PASSWORD}");
    let basic = |pair: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let huge = format!(
        r#"{{"appName":"{}","developer":"keep@corp.com"}}"#,
        "x".repeat(70_000)
    );
    let cases: Vec<BadRequest> = vec![
        (
            "/v1/createCredentials",
            None,
            Some("application/json"),
            b"{}".to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/v1/createCredentials",
            Some(basic("portal:wrong")),
            Some("application/json"),
            b"{}".to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/v1/createCredentials",
            Some(basic("portal:")),
            Some("application/json"),
            b"{}".to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/v1/createCredentials",
            Some(basic("portal")),
            Some("application/json"),
            b"{}".to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/v1/createCredentials",
            Some("Basic %%%".into()),
            Some("application/json"),
            b"{}".to_vec(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/v1/createCredentials",
            Some(basic(&auth)),
            Some("text/plain"),
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/v1/createCredentials",
            Some(basic(&auth)),
            None,
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/v1/createCredentials",
            Some(basic(&auth)),
            Some("application/json"),
            b"{nope".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/createCredentials",
            Some(basic(&auth)),
            Some("application/json"),
            b"\xff\xfe".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/createCredentials",
            Some(basic(&auth)),
            Some("application/json"),
            br#"{"appName":5,"developer":"keep@corp.com"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/createCredentials",
            Some(basic(&auth)),
            Some("application/json"),
            br#"{"appName":"a","developer":"not-an-email"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/createCredentials",
            Some(basic(&auth)),
            Some("application/json"),
            br#"{"appName":"a"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/createCredentials",
            Some(basic(&auth)),
            Some("application/json"),
            huge.into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/v1/revokeCredentials",
            Some(basic(&auth)),
            Some("application/json"),
            br#"{"appName":"only"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/updateCredentials",
            Some(basic(&auth)),
            Some("application/json"),
            br#"{"credentialType":"JWT","appSlug":"keep"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (path, authorization, content_type, body, expected) in cases {
        let mut request = server
            .http
            .post(format!("{}{path}", server.base))
            .body(body);
        if let Some(a) = &authorization {
            request = request.header("authorization", a);
        }
        if let Some(c) = content_type {
            request = request.header("content-type", c);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            expected,
            "{path} {authorization:?} {content_type:?}"
        );
        if expected == StatusCode::UNAUTHORIZED {
            assert!(response.headers().contains_key("www-authenticate"));
        }
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    // Logins with bad bodies, correctly signed.
    let now = keyhook::clock::now_ms();
    for (body, expected) in [
        (&b"{"[..], StatusCode::BAD_REQUEST),
        (br#"{"email":5}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (br#"{"email":""}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (
            br#"{"email":"a\u0000b@corp.com"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (br#"{}"#, StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let signature = keyhook::readme::signature::sign(support::app::README_SECRET, now, body);
        let (status, answer) = post_login(&server, Some(&signature), body).await;
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(body));
        assert!(answer["error"].is_string());
    }
    // Nothing changed.
    assert_eq!(
        server.login_keys("keep@corp.com").await.unwrap()[0]["apiKey"],
        before["apiKey"]
    );
    assert_eq!(create(&server, "keep@corp.com", "keep").await, before);
    server.stop().await;
}

#[tokio::test]
async fn routes_methods_request_ids_and_unconfigured_doors() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = local(&dir);
    config.readme.secret.clear();
    config.sensedia.users.clear();
    let server = Server::spawn(&config, None).await;
    let get = |path: &str| server.http.get(format!("{}{path}", server.base)).send();
    let response = get("/nope").await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    let response = get("/readme/webhook").await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    let response = get("/healthz").await.unwrap();
    assert!(response.headers().contains_key("x-request-id"));
    let response = server
        .http
        .get(format!("{}/healthz", server.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    assert_eq!(
        server.login("a@b.io").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        server.get("/v1/health").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.stop().await;
}

#[tokio::test]
async fn credentials_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::spawn(&local(&dir), None).await;
    let created = create(&server, "durable@corp.com", "durable").await;
    server.stop().await;
    let server = Server::spawn(&local(&dir), None).await;
    assert_eq!(
        server.login_keys("durable@corp.com").await.unwrap()[0]["apiKey"],
        created["apiKey"]
    );
    server.stop().await;
}
