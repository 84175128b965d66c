//! The HTTP surface common to every route: health probes, unknown routes and
//! methods, request ids, and the JSON error format.

use crate::harness::{basic, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn healthz_is_200() {
    let app = TestApp::local().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn readyz_is_200_and_names_the_backend() {
    let app = TestApp::local().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ready", "backend": "local"})
    );
}

#[tokio::test]
async fn health_probes_need_no_authentication_even_without_secrets() {
    let app = TestApp::local_with(|c| {
        c.readme.secret.clear();
        c.sensedia.users.clear();
    })
    .await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_route_is_404_json() {
    let app = TestApp::local().await;
    for path in [
        "/",
        "/nope",
        "/v1",
        "/v1/deleteEverything",
        "/readme/webhook/x",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_json() {
    let app = TestApp::local().await;
    for (method, path) in [
        (Method::GET, "/readme/webhook"),
        (Method::PUT, "/readme/webhook"),
        (Method::GET, "/v1/createCredentials"),
        (Method::DELETE, "/v1/revokeCredentials"),
        (Method::POST, "/v1/health"),
        (Method::POST, "/healthz"),
    ] {
        let response = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string(), "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn a_given_request_id_is_echoed() {
    let app = TestApp::local().await;
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "req-42-abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42-abc");
}

#[tokio::test]
async fn a_request_id_is_echoed_on_errors_too() {
    let app = TestApp::local().await;
    let response = app
        .http
        .post(app.url("/readme/webhook"))
        .header("x-request-id", "req-on-401")
        .header("content-type", "application/json")
        .body(r#"{"email":"dev@corp.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["x-request-id"], "req-on-401");
}

#[tokio::test]
async fn a_request_id_is_generated_when_absent() {
    let app = TestApp::local().await;
    let first = app.get("/healthz").await;
    let second = app.get("/nope").await;
    let id = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .expect("x-request-id is set")
            .to_str()
            .unwrap()
            .to_string()
    };
    let (a, b) = (id(&first), id(&second));
    assert!(!a.is_empty());
    assert_ne!(a, b, "each request gets its own id");
}

#[tokio::test]
async fn an_oversized_request_id_is_replaced() {
    let app = TestApp::local().await;
    let huge = "x".repeat(1000);
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", &huge)
        .send()
        .await
        .unwrap();
    let echoed = response.headers()["x-request-id"].to_str().unwrap();
    assert!(!echoed.is_empty());
    assert_ne!(echoed, huge);
}

#[tokio::test]
async fn every_error_body_is_json_with_an_error_string() {
    let app = TestApp::local().await;
    let unconfigured = TestApp::local_with(|c| {
        c.readme.secret.clear();
        c.sensedia.users.clear();
    })
    .await;
    let auth = app.sensedia_auth.clone().unwrap();
    let login = br#"{"email":"dev@corp.com"}"#.to_vec();
    let signed = app.sign(&login);
    let huge = format!(r#"{{"appName":"{}"}}"#, "x".repeat(70_000)).into_bytes();
    let http = &app.http;
    let requests = vec![
        // 400, 401 (both doors), 404 (route, reader, credential), 405, 413, 415, 422
        http.post(app.url("/v1/createCredentials"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body("{"),
        http.post(app.url("/readme/webhook"))
            .header("content-type", "application/json")
            .body(login.clone()),
        http.post(app.url("/v1/createCredentials"))
            .header("authorization", basic("portal:wrong"))
            .header("content-type", "application/json")
            .body("{}"),
        http.get(app.url("/nope")),
        http.post(app.url("/readme/webhook"))
            .header("readme-signature", &signed)
            .header("content-type", "application/json")
            .body(login.clone()),
        http.post(app.url("/v1/updateCredentials"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(r#"{"apiKeyId":"zzzzzzzzzz","appName":"a","developer":"d@x.io"}"#),
        http.delete(app.url("/v1/createCredentials")),
        http.post(app.url("/v1/createCredentials"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(huge),
        http.post(app.url("/v1/createCredentials"))
            .header("authorization", &auth)
            .header("content-type", "text/plain")
            .body("{}"),
        http.post(app.url("/v1/createCredentials"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body("{}"),
        // 503: neither door configured
        unconfigured
            .http
            .post(unconfigured.url("/readme/webhook"))
            .header("readme-signature", &signed)
            .header("content-type", "application/json")
            .body(login.clone()),
        unconfigured
            .http
            .get(unconfigured.url("/v1/health"))
            .header("authorization", &auth),
    ];
    let mut statuses = Vec::new();
    for request in requests {
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{status}"
        );
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(content_type, "application/json", "{status}");
        let body: Value = response.json().await.unwrap();
        let object = body.as_object().unwrap();
        assert_eq!(object.len(), 1, "{status}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{status}: {body}"
        );
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses,
        [400, 401, 401, 404, 404, 404, 405, 413, 415, 422, 503, 503]
    );
}
