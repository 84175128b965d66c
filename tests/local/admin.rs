//! The admin API over real sockets, on the embedded store: the listing and
//! its filters, rotation (the successor's value once, both linked, both
//! shown at login), end dates, revoke, the audit; bad input answered 4xx
//! with a JSON body. The listener itself: `admin_listener.rs`. (Audit events naming the token by its
//! fingerprint: `tests/process/audit_cli.rs`, from a real process's log.)

use std::net::SocketAddr;

use keyhook::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::TestApp;

pub(crate) const TOKEN: &str = "first-admin-token-0123456789";
pub(crate) const NEXT: &str = "next-admin-token-9876543210";

pub(crate) fn with_admin(config: &mut Config) {
    config.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    config.admin.tokens = vec![TOKEN.to_string().into(), NEXT.to_string().into()];
    // No sweep during a test: an end date in the past stays for the audit.
    config.aws.index_refresh_secs = 3600;
}

pub(crate) async fn admin_app() -> TestApp {
    TestApp::local_with(with_admin).await
}

/// One admin call: its status, `WWW-Authenticate`, and JSON body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub challenge: Option<String>,
    pub body: Value,
    pub text: String,
}

pub(crate) async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Answer {
    let mut request = reqwest::Client::new().request(method, format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge =
        (response.headers().get("www-authenticate")).map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text}: {e}"));
    Answer {
        status,
        challenge,
        body,
        text,
    }
}

pub(crate) fn admin(app: &TestApp) -> SocketAddr {
    app.admin.expect("the admin listener is configured")
}

pub(crate) async fn get(app: &TestApp, path: &str) -> Answer {
    call(admin(app), Method::GET, path, Some(TOKEN), None).await
}

async fn send(app: &TestApp, method: Method, path: &str, body: Value) -> Answer {
    let body = Some(("application/json", body.to_string().into_bytes()));
    call(admin(app), method, path, Some(TOKEN), body).await
}

async fn listing(app: &TestApp, query: &str) -> Vec<Value> {
    let answer = get(app, &format!("/admin/v1/credentials{query}")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body["credentials"].as_array().unwrap().clone()
}

fn ids(listed: &[Value]) -> Vec<&str> {
    listed.iter().map(|c| c["id"].as_str().unwrap()).collect()
}

fn now_ms() -> u64 {
    keyhook::clock::now_ms() as u64
}

#[tokio::test]
async fn the_listing_filters_by_owner_and_app_and_shows_no_secret() {
    let app = admin_app().await;
    let a1 = app.create_app("jo@corp.com", "a1").await;
    let a2 = app.create_app("jo@corp.com", "a2").await;
    let b1 = app.create_app("al@corp.com", "b1").await;
    let id = |c: &Value| c["apiKeyId"].as_str().unwrap().to_string();
    let all = listing(&app, "").await;
    assert_eq!(ids(&all), [id(&a1), id(&a2), id(&b1)]);
    let jo = listing(&app, "?owner=jo@corp.com").await;
    assert_eq!(ids(&jo), [id(&a1), id(&a2)]);
    assert_eq!(ids(&listing(&app, "?owner=JO@corp.com").await), ids(&jo));
    assert_eq!(ids(&listing(&app, "?app=a2").await), [id(&a2)]);
    assert_eq!(
        ids(&listing(&app, "?owner=al@corp.com&app=b1").await),
        [id(&b1)]
    );
    assert!(listing(&app, "?owner=al@corp.com&app=a1").await.is_empty());
    assert!(listing(&app, "?app=nope").await.is_empty());
    assert_eq!(listing(&app, "?owner=&app=").await.len(), 3);

    let one = &listing(&app, "?app=a1").await[0];
    assert_eq!(one["kind"], "API_KEY");
    assert_eq!(one["owner"], "jo@corp.com");
    assert_eq!(one["app"], "slug:a1");
    assert_eq!(one["label"], "App a1");
    assert_eq!(one["origin"], "sensedia");
    assert_eq!(one["state"], "active");
    assert_eq!(one["expiresAt"], Value::Null);
    assert_eq!(one["usagePlans"], json!([]));
    assert_eq!(one["replaces"], Value::Null);
    assert_eq!(one["replacedBy"], Value::Null);
    let created = one["createdAt"].as_str().unwrap();
    assert!(
        keyhook::clock::parse_rfc3339(created).is_some(),
        "{created}"
    );
    assert!(one.get("apiKey").is_none() && one.get("custom").is_none());
    let text = get(&app, "/admin/v1/credentials").await.text;
    for created in [&a1, &a2, &b1] {
        assert!(
            !text.contains(created["apiKey"].as_str().unwrap()),
            "{text}"
        );
    }

    for query in ["?owner=not-an-address", "?app=a%20b", "?app=a/b"] {
        let answer = get(&app, &format!("/admin/v1/credentials{query}")).await;
        assert_eq!(answer.status, 422, "{query}: {}", answer.text);
        assert!(answer.body["error"].is_string());
    }
}

#[tokio::test]
async fn a_rotation_answers_the_successor_once_and_both_are_listed_linked_and_shown() {
    let app = admin_app().await;
    let old = app.create_app("rot@corp.com", "rot").await;
    let old_id = old["apiKeyId"].as_str().unwrap();
    let before = now_ms();
    let rotated = send(
        &app,
        Method::POST,
        &format!("/admin/v1/credentials/{old_id}/rotate"),
        json!({"graceSecs": 3600}),
    )
    .await;
    let after = now_ms();
    assert_eq!(rotated.status, 201, "{}", rotated.text);
    let successor = &rotated.body["successor"];
    let new_id = successor["id"].as_str().unwrap();
    let new_key = successor["apiKey"].as_str().unwrap();
    assert_ne!(new_id, old_id);
    assert_ne!(new_key, old["apiKey"].as_str().unwrap());
    assert_eq!(successor["replaces"], old_id);
    assert_eq!(successor["owner"], "rot@corp.com");
    assert_eq!(successor["label"], "App rot");
    let predecessor = &rotated.body["predecessor"];
    assert_eq!(predecessor["id"], old_id);
    assert_eq!(predecessor["replacedBy"], new_id);
    assert!(predecessor.get("apiKey").is_none());
    let end = keyhook::clock::parse_rfc3339(predecessor["expiresAt"].as_str().unwrap()).unwrap();
    // RFC 3339 to the second.
    assert!(
        (before + 3_600_000 - 1000..=after + 3_600_000).contains(&end),
        "{end} not about {before} + 1 h"
    );

    let listed = listing(&app, "?app=rot").await;
    assert_eq!(ids(&listed), [old_id, new_id]);
    assert_eq!(listed[0]["replacedBy"], new_id);
    assert_eq!(listed[0]["state"], "expiring");
    assert_eq!(listed[1]["replaces"], old_id);
    assert_eq!(listed[1]["state"], "active");
    let text = get(&app, "/admin/v1/credentials").await.text;
    assert!(
        !text.contains(new_key),
        "the successor's key listed: {text}"
    );

    let keys = app.login_keys("rot@corp.com").await.unwrap();
    let shown: Vec<&str> = keys.iter().map(|k| k["apiKey"].as_str().unwrap()).collect();
    assert_eq!(shown, [new_key, old["apiKey"].as_str().unwrap()]);

    // Once: the predecessor has a successor, and the successor's
    // predecessor is still in its grace.
    for id in [old_id, new_id] {
        let again = send(
            &app,
            Method::POST,
            &format!("/admin/v1/credentials/{id}/rotate"),
            json!({}),
        )
        .await;
        assert_eq!(again.status, 409, "{}", again.text);
        assert!(again.body["error"].is_string());
    }

    // No body: the configured grace (7 days by default).
    let other = app.create_app("rot@corp.com", "rot2").await;
    let before = now_ms();
    let answer = call(
        admin(&app),
        Method::POST,
        &format!(
            "/admin/v1/credentials/{}/rotate",
            other["apiKeyId"].as_str().unwrap()
        ),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let end = answer.body["predecessor"]["expiresAt"].as_str().unwrap();
    let end = keyhook::clock::parse_rfc3339(end).unwrap();
    assert!(end + 1000 >= before + 604_800_000 && end <= now_ms() + 604_800_000);
}

#[tokio::test]
async fn an_end_date_is_set_and_cleared_and_bad_input_is_a_4xx_with_a_json_body() {
    let app = admin_app().await;
    let created = app.create_app("end@corp.com", "end").await;
    let id = created["apiKeyId"].as_str().unwrap();
    let path = format!("/admin/v1/credentials/{id}/expiry");
    let set = send(
        &app,
        Method::PUT,
        &path,
        json!({"expiresAt": "2099-12-09T11:00:00+01:00"}),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["expiresAt"], "2099-12-09T10:00:00Z");
    assert_eq!(set.body["state"], "expiring");
    assert_eq!(
        listing(&app, "?app=end").await[0]["expiresAt"],
        "2099-12-09T10:00:00Z"
    );
    let cleared = send(&app, Method::PUT, &path, json!({"expiresAt": null})).await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.body["expiresAt"], Value::Null);
    assert_eq!(listing(&app, "?app=end").await[0]["state"], "active");

    let bad: [(&str, &[u8], u16); 8] = [
        ("application/json", br#"{"expiresAt": "tomorrow"}"#, 422),
        ("application/json", br#"{"expiresAt": "2099-12-09"}"#, 422),
        ("application/json", br#"{"expiresAt": 5}"#, 422),
        ("application/json", br#"{}"#, 422),
        (
            "application/json",
            br#"{"expiresAt": null, "extra": 1}"#,
            422,
        ),
        ("application/json", b"{", 400),
        ("text/plain", br#"{"expiresAt": null}"#, 415),
        ("application/json", br#"[null]"#, 422),
    ];
    for (content_type, body, status) in bad {
        let answer = call(
            admin(&app),
            Method::PUT,
            &path,
            Some(TOKEN),
            Some((content_type, body.to_vec())),
        )
        .await;
        assert_eq!(
            answer.status,
            status,
            "{}: {}",
            String::from_utf8_lossy(body),
            answer.text
        );
        assert!(answer.body["error"].is_string(), "{}", answer.text);
    }
    let rotate = format!("/admin/v1/credentials/{id}/rotate");
    for (body, status) in [
        (json!({"graceSecs": -1}), 422),
        (json!({"graceSecs": 7_776_001}), 422),
        (json!({"graceSecs": "1"}), 422),
        (json!({"grace_secs": 60}), 422),
    ] {
        let answer = send(&app, Method::POST, &rotate, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        assert!(answer.body["error"].is_string());
    }
    // Nothing was rotated by the refused calls.
    assert_eq!(listing(&app, "?app=end").await.len(), 1);
    for unknown in ["k-unknown", "a.b", "x%00y"] {
        let answer = send(
            &app,
            Method::PUT,
            &format!("/admin/v1/credentials/{unknown}/expiry"),
            json!({"expiresAt": null}),
        )
        .await;
        assert_eq!(answer.status, 404, "{unknown}: {}", answer.text);
        assert!(answer.body["error"].is_string());
    }
}

#[tokio::test]
async fn delete_revokes_at_once_and_then_the_id_is_unknown() {
    let app = admin_app().await;
    let created = app.create_app("del@corp.com", "del").await;
    let id = created["apiKeyId"].as_str().unwrap();
    let path = format!("/admin/v1/credentials/{id}");
    let deleted = call(admin(&app), Method::DELETE, &path, Some(NEXT), None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.body["id"], id);
    assert!(!deleted.text.contains(created["apiKey"].as_str().unwrap()));
    assert_eq!(app.login("del@corp.com").await.status(), 404);
    assert!(listing(&app, "").await.is_empty());
    let again = call(admin(&app), Method::DELETE, &path, Some(TOKEN), None).await;
    assert_eq!(again.status, 404, "{}", again.text);
    assert!(again.body["error"].is_string());
}

#[tokio::test]
async fn the_audit_finds_an_expired_credential_and_the_fix_revokes_it() {
    let app = admin_app().await;
    let created = app.create_app("old@corp.com", "old").await;
    let id = created["apiKeyId"].as_str().unwrap();
    let clean = get(&app, "/admin/v1/audit").await;
    assert_eq!(
        (clean.status, clean.body.clone()),
        (StatusCode::OK, json!({"findings": []}))
    );
    let past = send(
        &app,
        Method::PUT,
        &format!("/admin/v1/credentials/{id}/expiry"),
        json!({"expiresAt": "2001-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(past.status, 200, "{}", past.text);
    let audit = get(&app, "/admin/v1/audit").await;
    let findings = audit.body["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{}", audit.text);
    assert_eq!(findings[0]["kind"], "expired");
    assert_eq!(findings[0]["credentialId"], id);
    let fixed = call(
        admin(&app),
        Method::POST,
        "/admin/v1/audit/fix",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(fixed.status, 200, "{}", fixed.text);
    assert_eq!(
        fixed.body["repairs"][0]["credentialId"], id,
        "{}",
        fixed.text
    );
    assert_eq!(
        get(&app, "/admin/v1/audit").await.body,
        json!({"findings": []})
    );
    assert!(listing(&app, "").await.is_empty());
}
