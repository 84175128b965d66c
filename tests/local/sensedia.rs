//! The Sensedia credentials webhook (`/v1/...`) over real sockets: create,
//! update, revoke and health, Basic auth, bad input, and what each does to
//! the developer's ReadMe login.

use crate::harness::{basic, TestApp, SENSEDIA_PASSWORD, SENSEDIA_USER};
use keyhook::credentials::local::LocalStore;
use keyhook::credentials::{CredentialKind, CredentialProvider, Email};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// The contract's example request, word for word.
fn official_example() -> Value {
    json!({
        "appName": "my new aws app",
        "appSlug": "590d83b5c05f",
        "developer": "email@mycompany.com",
        "apis": [ { "id": "5aba4csvd4", "usagePlans": [ { "id": "1el57v" } ] } ]
    })
}

fn is_lower_alnum(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

async fn assert_error(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    body
}

async fn assert_no_content(response: Response) {
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.bytes().await.unwrap().len(), 0);
}

/// What the store (closed, in `dir`) holds for `owner`.
async fn stored(dir: &std::path::Path, owner: &str) -> Vec<keyhook::credentials::Credential> {
    let store = LocalStore::open(dir, keyhook::clock::system()).unwrap();
    let found = store.find_by_owner(&Email::parse(owner).unwrap()).await;
    found
        .unwrap()
        .into_iter()
        .map(std::sync::Arc::unwrap_or_clone)
        .collect()
}

fn plans(credentials: Vec<keyhook::credentials::Credential>) -> Vec<Vec<String>> {
    credentials.into_iter().map(|c| c.usage_plans).collect()
}

#[tokio::test]
async fn the_official_example_issues_an_api_key() {
    let app = TestApp::local().await;
    let answer = app.create(&official_example()).await;
    assert_eq!(answer["credentialType"], "API_KEY");
    let id = answer["apiKeyId"].as_str().unwrap();
    assert_eq!(id.len(), 10, "{id}");
    assert!(is_lower_alnum(id), "{id}");
    let key = answer["apiKey"].as_str().unwrap();
    assert!(key.len() >= 30, "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
    let mut fields: Vec<&String> = answer.as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["apiKey", "apiKeyId", "credentialType"]);
}

#[tokio::test]
async fn client_credentials_are_issued_when_configured() {
    let app =
        TestApp::local_with(|c| c.sensedia.credential_type = CredentialKind::ClientCredentials)
            .await;
    let answer = app.create(&official_example()).await;
    assert_eq!(answer["credentialType"], "CLIENT_CREDENTIALS");
    let id = answer["clientId"].as_str().unwrap();
    let secret = answer["clientSecret"].as_str().unwrap();
    assert_eq!(id.len(), 26, "{id}");
    assert_eq!(secret.len(), 51, "{secret}");
    assert!(is_lower_alnum(id) && is_lower_alnum(secret));
    assert!(answer.get("apiKey").is_none());
}

#[tokio::test]
async fn creating_the_same_app_slug_twice_returns_the_same_credential() {
    let app = TestApp::local().await;
    let first = app.create(&official_example()).await;
    let mut retry = official_example();
    retry["appName"] = json!("renamed meanwhile");
    let second = app.create(&retry).await;
    assert_eq!(first, second);
    assert_eq!(app.visible_keys("email@mycompany.com").await.len(), 1);
}

#[tokio::test]
async fn without_a_slug_the_same_developer_and_app_name_return_the_same_credential() {
    let app = TestApp::local().await;
    let request = json!({"appName": "Billing", "developer": "dev@corp.com"});
    let first = app.create(&request).await;
    let second = app
        .create(&json!({"appName": " Billing ", "developer": "DEV@corp.com"}))
        .await;
    assert_eq!(first, second);
    let other_app = app
        .create(&json!({"appName": "Reports", "developer": "dev@corp.com"}))
        .await;
    assert_ne!(first["apiKeyId"], other_app["apiKeyId"]);
    assert_eq!(app.visible_keys("dev@corp.com").await.len(), 2);
}

/// An app without a slug is named by its developer and name. Written by
/// concatenation, `a@b.c`'s app `x/y` and `a@b.c/x`'s app `y` were one app,
/// and the second developer was handed the first one's key.
#[tokio::test]
async fn two_developers_apps_never_share_an_identity() {
    let app = TestApp::local().await;
    let first = app
        .create(&json!({"appName": "x/y", "developer": "a@b.c"}))
        .await;
    let response = app
        .sensedia(
            "createCredentials",
            &json!({"appName": "y", "developer": "a@b.c/x"}),
        )
        .await;
    let body = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(!body.to_string().contains(first["apiKey"].as_str().unwrap()));
    // A `/` before the `@` is allowed, and escaped in the identity; the
    // escaped spelling is another address, with an app of its own.
    let slashed = app
        .create(&json!({"appName": "c", "developer": "a/b@corp.com"}))
        .await;
    let percent = app
        .create(&json!({"appName": "c", "developer": "a%2Fb@corp.com"}))
        .await;
    assert_ne!(slashed["apiKeyId"], percent["apiKeyId"]);
    assert_eq!(app.visible_keys("a@b.c").await.len(), 1);
}

#[tokio::test]
async fn twenty_concurrent_identical_creates_issue_one_credential() {
    let app = TestApp::local().await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let api = app.api.clone();
            tokio::spawn(async move { api.create(&official_example()).await })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        vec![json!({"name": "my new aws app", "apiKey": answers[0]["apiKey"]})]
    );
}

#[tokio::test]
async fn the_created_key_is_what_the_developers_readme_login_shows() {
    let app = TestApp::local().await;
    let created = app.create(&official_example()).await;
    let answer = app.login_ok("email@mycompany.com").await;
    assert_eq!(
        answer["keys"],
        json!([{"name": "my new aws app", "apiKey": created["apiKey"]}])
    );
}

#[tokio::test]
async fn update_resyncs_the_label_and_answers_204_with_an_empty_body() {
    let app = TestApp::local().await;
    let created = app.create(&official_example()).await;
    let mut update = official_example();
    update["appName"] = json!("my renamed aws app");
    update["credentialType"] = json!("API_KEY");
    update["apiKeyId"] = created["apiKeyId"].clone();
    update["apiKey"] = created["apiKey"].clone();
    assert_no_content(app.sensedia("updateCredentials", &update).await).await;
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        vec![json!({"name": "my renamed aws app", "apiKey": created["apiKey"]})]
    );
}

#[tokio::test]
async fn update_by_app_slug_without_an_id_resyncs_the_label() {
    let app = TestApp::local().await;
    let created = app.create(&official_example()).await;
    let mut update = official_example();
    update["appName"] = json!("renamed by slug");
    assert_no_content(app.sensedia("updateCredentials", &update).await).await;
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        vec![json!({"name": "renamed by slug", "apiKey": created["apiKey"]})]
    );
}

#[tokio::test]
async fn update_resyncs_the_usage_plans() {
    let app = TestApp::local().await;
    let created = app.create(&official_example()).await;
    let mut update = official_example();
    update["apiKeyId"] = created["apiKeyId"].clone();
    update["apis"] = json!([
        {"id": "5aba4csvd4", "usagePlans": [{"id": "2fm68w"}]},
        {"id": "6bcb5dtwe5", "usagePlans": [{"id": "3gn79x"}, {"id": "2fm68w"}]}
    ]);
    assert_no_content(app.sensedia("updateCredentials", &update).await).await;
    let dir = app.stop().await.unwrap();
    let stored = stored(dir.path(), "email@mycompany.com").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].usage_plans, ["2fm68w", "3gn79x"]);
    assert_eq!(stored[0].api_ids, ["5aba4csvd4", "6bcb5dtwe5"]);
}

#[tokio::test]
async fn update_of_an_unknown_credential_is_404_json() {
    let app = TestApp::local().await;
    let mut update = official_example();
    update["apiKeyId"] = json!("zzzzzzzzzz");
    assert_error(
        app.sensedia("updateCredentials", &update).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn revoke_answers_204_and_the_key_leaves_the_readme_login() {
    let app = TestApp::local().await;
    let created = app.create(&official_example()).await;
    let mut revoke = official_example();
    revoke["credentialType"] = json!("API_KEY");
    revoke["apiKeyId"] = created["apiKeyId"].clone();
    assert_no_content(app.sensedia("revokeCredentials", &revoke).await).await;
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn revoke_by_app_slug_without_an_id_removes_the_key() {
    let app = TestApp::local().await;
    app.create(&official_example()).await;
    // A retry by app finds nothing left to revoke: still 204. The second
    // carries `apis` in a shape a revoke does not read (the schema accepts
    // and ignores it there).
    for apis in [json!([]), json!(null)] {
        assert_no_content(
            app.sensedia(
                "revokeCredentials",
                &json!({"appSlug": "590d83b5c05f", "apis": apis}),
            )
            .await,
        )
        .await;
    }
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn revoking_an_unknown_credential_is_404_json() {
    let app = TestApp::local().await;
    assert_error(
        app.sensedia("revokeCredentials", &json!({"apiKeyId": "zzzzzzzzzz"}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn revoking_an_already_revoked_credential_is_404() {
    let app = TestApp::local().await;
    let created = app.create(&official_example()).await;
    let revoke = json!({"apiKeyId": created["apiKeyId"]});
    assert_no_content(app.sensedia("revokeCredentials", &revoke).await).await;
    assert_error(
        app.sensedia("revokeCredentials", &revoke).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_revoked_app_created_again_gets_a_new_key() {
    let app = TestApp::local().await;
    let first = app.create(&official_example()).await;
    let revoke = json!({"apiKeyId": first["apiKeyId"]});
    assert_no_content(app.sensedia("revokeCredentials", &revoke).await).await;
    let second = app.create(&official_example()).await;
    assert_ne!(first["apiKey"], second["apiKey"]);
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        vec![json!({"name": "my new aws app", "apiKey": second["apiKey"]})]
    );
}

#[tokio::test]
async fn health_is_204_with_an_empty_body() {
    let app = TestApp::local().await;
    assert_no_content(app.sensedia_health().await).await;
}

/// `createCredentials` with `authorization` must be 401 with a
/// `WWW-Authenticate` challenge and a JSON error, and issue nothing.
async fn assert_refused(authorization: Option<&str>) {
    let app = TestApp::local().await;
    let response = app
        .sensedia_raw(
            "createCredentials",
            authorization,
            Some("application/json"),
            official_example().to_string().into_bytes(),
        )
        .await;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Basic ")),
        "{challenge:?}"
    );
    assert_error(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn a_request_without_basic_auth_is_401() {
    assert_refused(None).await;
}

#[tokio::test]
async fn a_wrong_password_is_401() {
    assert_refused(Some(&basic(&format!("{SENSEDIA_USER}:wrong")))).await;
}

#[tokio::test]
async fn an_unknown_user_is_401() {
    assert_refused(Some(&basic(&format!("intruder:{SENSEDIA_PASSWORD}")))).await;
}

#[tokio::test]
async fn an_empty_password_is_401() {
    assert_refused(Some(&basic(&format!("{SENSEDIA_USER}:")))).await;
}

#[tokio::test]
async fn credentials_without_a_colon_are_401() {
    assert_refused(Some(&basic(&format!("{SENSEDIA_USER}{SENSEDIA_PASSWORD}")))).await;
}

#[tokio::test]
async fn credentials_that_are_not_base64_are_401() {
    assert_refused(Some("Basic %%%not-base64%%%")).await;
}

#[tokio::test]
async fn a_scheme_other_than_basic_is_401() {
    let pair = basic(&format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}"));
    let token = pair.strip_prefix("Basic ").unwrap();
    assert_refused(Some(&format!("Bearer {token}"))).await;
}

#[tokio::test]
async fn every_v1_route_requires_basic_auth() {
    let app = TestApp::local().await;
    for route in [
        "createCredentials",
        "updateCredentials",
        "revokeCredentials",
    ] {
        let response = app
            .sensedia_raw(route, None, Some("application/json"), b"{}".to_vec())
            .await;
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{route}"
        );
        assert_error(response, StatusCode::UNAUTHORIZED).await;
    }
    let response = app.get("/v1/health").await;
    assert!(response.headers().contains_key("www-authenticate"));
    assert_error(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn any_configured_pair_is_accepted() {
    let app = TestApp::local_with(|c| {
        c.sensedia.users = vec![
            "portal:old-password".parse().unwrap(),
            "portal2:new:password".parse().unwrap(),
        ]
    })
    .await;
    for pair in ["portal:old-password", "portal2:new:password"] {
        let response = app
            .http
            .get(app.url("/v1/health"))
            .header("authorization", basic(pair))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{pair}");
    }
}

#[tokio::test]
async fn every_v1_route_is_503_when_no_users_are_configured() {
    let app = TestApp::local_with(|c| c.sensedia.users.clear()).await;
    let auth = basic(&format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}"));
    for route in [
        "createCredentials",
        "updateCredentials",
        "revokeCredentials",
    ] {
        let response = app
            .sensedia_raw(
                route,
                Some(&auth),
                Some("application/json"),
                official_example().to_string().into_bytes(),
            )
            .await;
        let body = assert_error(response, StatusCode::SERVICE_UNAVAILABLE).await;
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("KEYHOOK_SENSEDIA_USERS"),
            "{body}"
        );
    }
    let response = app
        .http
        .get(app.url("/v1/health"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE).await;
}

#[tokio::test]
async fn a_create_that_is_not_json_is_415() {
    let app = TestApp::local().await;
    let body = official_example().to_string().into_bytes();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let response = app
            .sensedia_raw(
                "createCredentials",
                app.sensedia_auth.as_deref(),
                content_type,
                body.clone(),
            )
            .await;
        assert_error(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    }
}

#[tokio::test]
async fn a_create_with_malformed_json_is_400() {
    let app = TestApp::local().await;
    for body in [&b"{\"appName\":"[..], b"nope", b"\xff\xfe"] {
        let response = app
            .sensedia_raw(
                "createCredentials",
                app.sensedia_auth.as_deref(),
                Some("application/json"),
                body.to_vec(),
            )
            .await;
        assert_error(response, StatusCode::BAD_REQUEST).await;
    }
}

/// Each `body` sent to createCredentials is refused with 422 and a JSON error.
async fn assert_creates_are_422(app: &TestApp, bodies: &[Value]) {
    for body in bodies {
        let response = app.sensedia("createCredentials", body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
}

#[tokio::test]
async fn a_create_with_missing_or_wrongly_typed_fields_is_422() {
    let app = TestApp::local().await;
    let bodies = [
        json!({"appName": "a"}),
        json!({"developer": "dev@corp.com"}),
        json!({"appName": 5, "developer": "dev@corp.com"}),
        json!({"appName": "a", "developer": ["dev@corp.com"]}),
        json!({"appName": "a", "developer": "dev@corp.com", "apis": {"id": "x"}}),
        json!({"appName": "a", "developer": "dev@corp.com", "apis": [{"usagePlans": []}]}),
        json!([]),
    ];
    assert_creates_are_422(&app, &bodies).await;
}

#[tokio::test]
async fn a_create_with_invalid_values_is_422() {
    let app = TestApp::local().await;
    let bodies = [
        json!({"appName": "a", "developer": "not-an-email"}),
        json!({"appName": "a", "developer": ""}),
        json!({"appName": "a", "developer": "a@b.c/x"}),
        json!({"appName": "a", "developer": "dev@corp_x.com"}),
        json!({"appName": "a", "developer": "\u{212A}ate@corp.com"}),
        json!({"appName": "", "developer": "dev@corp.com"}),
        json!({"appName": "a\u{0}b", "developer": "dev@corp.com"}),
        json!({"appName": "x".repeat(300), "developer": "dev@corp.com"}),
        json!({"appName": "a", "developer": "dev@corp.com", "appSlug": "../etc"}),
        json!({"appName": "a", "developer": "dev@corp.com", "apis": [{"id": "a b"}]}),
    ];
    assert_creates_are_422(&app, &bodies).await;
}

#[tokio::test]
async fn update_and_revoke_that_name_no_credential_are_422() {
    let app = TestApp::local().await;
    for route in ["updateCredentials", "revokeCredentials"] {
        let response = app
            .sensedia(route, &json!({"appName": "only a name"}))
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let response = app
        .sensedia(
            "revokeCredentials",
            &json!({"credentialType": "JWT", "appSlug": "590d83b5c05f"}),
        )
        .await;
    assert_error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[tokio::test]
async fn a_create_over_the_body_limit_is_413() {
    let app = TestApp::local().await;
    let mut body = official_example();
    body["appName"] = json!("x".repeat(70_000));
    let response = app.sensedia("createCredentials", &body).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let app = TestApp::local().await;
    let mut body = official_example();
    body["somethingNew"] = json!({"nested": [1, 2, 3]});
    body["apis"][0]["stage"] = json!("prod");
    body["customCredentials"] = json!({"note": "from the portal"});
    let answer = app.create(&body).await;
    assert_eq!(answer, app.create(&official_example()).await);
}

/// Route, `Authorization`, `Content-Type`, body.
type Attempt<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Vec<u8>);

#[tokio::test]
async fn bad_input_never_changes_stored_credentials() {
    let app = TestApp::local().await;
    let created = app.create(&official_example()).await;
    let id = created["apiKeyId"].clone();
    let wrong_auth = basic(&format!("{SENSEDIA_USER}:wrong"));
    let auth = app.sensedia_auth.clone();
    let renamed = json!({"apiKeyId": id, "appName": "hijacked", "appSlug": "590d83b5c05f",
                         "developer": "attacker@evil.io"});
    let renamed_bytes = renamed.to_string().into_bytes();
    let attempts: Vec<Attempt> = vec![
        // Right body, wrong or no credentials.
        (
            "updateCredentials",
            Some(&wrong_auth),
            Some("application/json"),
            renamed_bytes.clone(),
        ),
        (
            "revokeCredentials",
            None,
            Some("application/json"),
            renamed_bytes.clone(),
        ),
        // Right credentials, broken requests.
        (
            "updateCredentials",
            auth.as_deref(),
            Some("text/plain"),
            renamed_bytes.clone(),
        ),
        (
            "revokeCredentials",
            auth.as_deref(),
            Some("text/plain"),
            renamed_bytes.clone(),
        ),
        (
            "updateCredentials",
            auth.as_deref(),
            Some("application/json"),
            b"{\"apiKeyId\":".to_vec(),
        ),
        (
            "updateCredentials",
            auth.as_deref(),
            Some("application/json"),
            json!({"apiKeyId": id, "appName": "hijacked", "developer": "not-an-email"})
                .to_string()
                .into_bytes(),
        ),
        (
            "updateCredentials",
            auth.as_deref(),
            Some("application/json"),
            json!({"apiKeyId": id, "appName": 7, "developer": "dev@corp.com"})
                .to_string()
                .into_bytes(),
        ),
        (
            "updateCredentials",
            auth.as_deref(),
            Some("application/json"),
            json!({"apiKeyId": id, "appName": "x".repeat(70_000), "developer": "dev@corp.com"})
                .to_string()
                .into_bytes(),
        ),
        (
            "revokeCredentials",
            auth.as_deref(),
            Some("application/json"),
            json!({"apiKeyId": "../../x"}).to_string().into_bytes(),
        ),
        (
            "createCredentials",
            auth.as_deref(),
            Some("application/json"),
            json!({"appName": "my new aws app", "appSlug": "590d83b5c05f", "developer": "nope"})
                .to_string()
                .into_bytes(),
        ),
    ];
    for (route, authorization, content_type, body) in attempts {
        let response = app
            .sensedia_raw(route, authorization, content_type, body)
            .await;
        assert!(
            response.status().is_client_error(),
            "{route} {authorization:?} {content_type:?}: {}",
            response.status()
        );
    }
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        vec![json!({"name": "my new aws app", "apiKey": created["apiKey"]})]
    );
    assert_eq!(
        app.visible_keys("attacker@evil.io").await,
        Vec::<Value>::new()
    );
    assert_eq!(app.create(&official_example()).await, created);
}

/// The error body `route` answers for `body`, which must be a 404.
async fn not_found_body(app: &TestApp, route: &str, body: &Value) -> Value {
    assert_error(app.sensedia(route, body).await, StatusCode::NOT_FOUND).await
}

#[tokio::test]
async fn another_apps_key_named_with_this_apps_slug_is_404_and_untouched() {
    let app = TestApp::local().await;
    let victim = app.create_app("victim@corp.com", "victimapp").await;
    let attacker = app.create_app("attacker@corp.com", "attackerapp").await;
    let victim_keys = app.visible_keys("victim@corp.com").await;
    let attacker_keys = app.visible_keys("attacker@corp.com").await;
    let unknown_id = json!("zzzzzzzzzz");
    for (route, mut body) in [
        (
            "updateCredentials",
            json!({"appName": "Stolen", "appSlug": "attackerapp", "developer": "attacker@corp.com",
                   "apis": [{"id": "5aba4csvd4", "usagePlans": [{"id": "2fm68w"}]}]}),
        ),
        (
            "revokeCredentials",
            json!({"appSlug": "attackerapp", "credentialType": "API_KEY"}),
        ),
        // Without a slug, the developer and app name speak for the app.
        (
            "updateCredentials",
            json!({"appName": "Stolen", "developer": "attacker@corp.com"}),
        ),
        (
            "revokeCredentials",
            json!({"appName": "App attackerapp", "developer": "attacker@corp.com"}),
        ),
    ] {
        body["apiKeyId"] = victim["apiKeyId"].clone();
        let refused = not_found_body(&app, route, &body).await;
        // Exactly what an id keyhook never issued gets: nothing is told.
        body["apiKeyId"] = unknown_id.clone();
        let unknown = not_found_body(&app, route, &body).await;
        assert_eq!(
            refused
                .to_string()
                .replace(victim["apiKeyId"].as_str().unwrap(), "ID"),
            unknown.to_string().replace("zzzzzzzzzz", "ID"),
            "{route} {body}"
        );
    }
    assert_eq!(app.visible_keys("victim@corp.com").await, victim_keys);
    assert_eq!(app.visible_keys("attacker@corp.com").await, attacker_keys);
    assert_eq!(
        attacker_keys,
        vec![json!({"name": "App attackerapp", "apiKey": attacker["apiKey"]})]
    );
    let dir = app.stop().await.unwrap();
    let stored = stored(dir.path(), "victim@corp.com").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].label, "App victimapp");
}

#[tokio::test]
async fn revoke_with_the_wrong_credential_type_is_409_as_update_and_revokes_nothing() {
    let app = TestApp::local().await;
    let created = app.create(&official_example()).await;
    let keys = app.visible_keys("email@mycompany.com").await;
    assert_eq!(keys.len(), 1);
    let wrong = json!({"credentialType": "CLIENT_CREDENTIALS", "clientId": created["apiKeyId"]});
    assert_error(
        app.sensedia("revokeCredentials", &wrong).await,
        StatusCode::CONFLICT,
    )
    .await;
    let mut update = official_example();
    update["credentialType"] = json!("CLIENT_CREDENTIALS");
    update["clientId"] = created["apiKeyId"].clone();
    assert_error(
        app.sensedia("updateCredentials", &update).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(app.visible_keys("email@mycompany.com").await, keys);
}

#[tokio::test]
async fn a_request_naming_only_the_credential_acts_within_its_own_app() {
    let app = TestApp::local().await;
    let created = app.create(&official_example()).await;
    // An update must describe the app; without a slug, its developer and
    // name may be an edit of the app's own (here, a rename).
    let update = json!({"apiKeyId": created["apiKeyId"], "developer": "email@mycompany.com",
                        "appName": "renamed without slug"});
    assert_no_content(app.sensedia("updateCredentials", &update).await).await;
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        vec![json!({"name": "renamed without slug", "apiKey": created["apiKey"]})]
    );
    let revoke = json!({"credentialType": "API_KEY", "apiKeyId": created["apiKeyId"]});
    assert_no_content(app.sensedia("revokeCredentials", &revoke).await).await;
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        Vec::<Value>::new()
    );
}

#[tokio::test]
async fn create_for_an_existing_slug_with_a_new_developer_transfers_the_credential() {
    let app = TestApp::local().await;
    let first = app.create(&official_example()).await;
    let mut moved = official_example();
    moved["developer"] = json!("new@corp.com");
    moved["appName"] = json!("moved app");
    moved["apis"] = json!([{"id": "5aba4csvd4", "usagePlans": [{"id": "2fm68w"}]}]);
    let again = app.create(&moved).await;
    assert_eq!(again, first, "the app keeps its credential");
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        Vec::<Value>::new()
    );
    assert_eq!(
        app.visible_keys("new@corp.com").await,
        vec![json!({"name": "moved app", "apiKey": first["apiKey"]})]
    );
    // A retry changes nothing.
    assert_eq!(app.create(&moved).await, first);
    assert_eq!(
        app.visible_keys("new@corp.com").await,
        vec![json!({"name": "moved app", "apiKey": first["apiKey"]})]
    );
    let dir = app.stop().await.unwrap();
    assert_eq!(
        plans(stored(dir.path(), "new@corp.com").await),
        [["2fm68w"]]
    );
    assert!(stored(dir.path(), "email@mycompany.com").await.is_empty());
}

#[tokio::test]
async fn update_for_the_same_app_with_a_new_developer_transfers_the_credential() {
    let app = TestApp::local().await;
    let first = app.create(&official_example()).await;
    let mut moved = official_example();
    moved["developer"] = json!("new@corp.com");
    moved["apiKeyId"] = first["apiKeyId"].clone();
    moved["apis"] = json!([{"id": "5aba4csvd4", "usagePlans": [{"id": "3gn79x"}]}]);
    assert_no_content(app.sensedia("updateCredentials", &moved).await).await;
    assert_eq!(
        app.visible_keys("email@mycompany.com").await,
        Vec::<Value>::new()
    );
    assert_eq!(
        app.visible_keys("new@corp.com").await,
        vec![json!({"name": "my new aws app", "apiKey": first["apiKey"]})]
    );
    let dir = app.stop().await.unwrap();
    assert_eq!(
        plans(stored(dir.path(), "new@corp.com").await),
        [["3gn79x"]]
    );
}
