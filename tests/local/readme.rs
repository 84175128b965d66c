//! `POST /readme/webhook` over real sockets: the contract's signature
//! vectors, every signature failure, the answer's shape, the owner match,
//! provisioning, and bad input.

use crate::harness::{TestApp, README_SECRET};
use keyhook::clock;
use keyhook::config::Config;
use keyhook::credentials::local::LocalStore;
use keyhook::credentials::{CredentialKind, CredentialProvider, Email, Secret};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The contract file's vectors: secret `docs4dayz`, `t` = 1700000000000.
const VECTOR_SECRET: &str = "docs4dayz";
const VECTOR_T: i64 = 1_700_000_000_000;
const VECTOR_MARC: (&str, &str) = (
    r#"{"email":"marc@readme.io"}"#,
    "9b3dfcfdeeb2fa99c400c6f23f865c3ab24b9daaa3e05e2299febf60c0a78b96",
);
const VECTOR_JOHN: (&str, &str) = (
    r#"{"email":"jöhn@example.com"}"#,
    "55619053a8b37910c6ef6d41234a589a2db9606dc263e397f7e3bd690d8dea1f",
);
const VECTOR_SLASH: (&str, &str) = (
    r#"{"email":"a/b@example.com"}"#,
    "231daf4fe49dc9990d00ae1eba9883e34d23e384709aa5415f861a46e0d12be8",
);

async fn error_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Replays one contract vector against a server whose clock stands at the
/// vector's `t`; the reader has a key, which the answer must show.
async fn replay_vector((body, v0): (&str, &str)) {
    let app = TestApp::local_with_clock(
        |c| c.readme.secret = vec![VECTOR_SECRET.to_string().into()],
        clock::fixed(VECTOR_T),
    )
    .await;
    let email = serde_json::from_str::<Value>(body).unwrap()["email"]
        .as_str()
        .unwrap()
        .to_string();
    let key = app.create_app(&email, "vector").await;
    let response = app
        .readme_raw(Some(&format!("t={VECTOR_T},v0={v0}")), body.as_bytes())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["email"], email);
    assert_eq!(
        answer["keys"],
        json!([{"name": "App vector", "apiKey": key["apiKey"]}])
    );
}

#[tokio::test]
async fn contract_vector_for_marc_verifies_at_its_timestamp() {
    replay_vector(VECTOR_MARC).await;
}

#[tokio::test]
async fn contract_vector_for_a_non_ascii_email_verifies_over_the_raw_body() {
    replay_vector(VECTOR_JOHN).await;
}

#[tokio::test]
async fn contract_vector_for_an_email_with_a_slash_verifies_over_the_raw_body() {
    replay_vector(VECTOR_SLASH).await;
}

#[tokio::test]
async fn contract_vectors_are_expired_under_the_real_clock() {
    let app =
        TestApp::local_with(|c| c.readme.secret = vec![VECTOR_SECRET.to_string().into()]).await;
    let (body, v0) = VECTOR_MARC;
    let response = app
        .readme_raw(Some(&format!("t={VECTOR_T},v0={v0}")), body.as_bytes())
        .await;
    assert_eq!(
        error_of(response).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "Expired Signature"})
        )
    );
}

#[tokio::test]
async fn a_login_without_signature_is_401_missing_signature() {
    let app = TestApp::local().await;
    let response = app.readme_raw(None, br#"{"email":"dev@corp.com"}"#).await;
    assert_eq!(
        error_of(response).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "Missing Signature"})
        )
    );
}

#[tokio::test]
async fn an_empty_signature_header_is_401_missing_signature() {
    let app = TestApp::local().await;
    let response = app
        .readme_raw(Some(""), br#"{"email":"dev@corp.com"}"#)
        .await;
    assert_eq!(
        error_of(response).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "Missing Signature"})
        )
    );
}

#[tokio::test]
async fn a_signature_older_than_the_tolerance_is_401_expired_signature() {
    let app = TestApp::local().await;
    let body = br#"{"email":"dev@corp.com"}"#;
    let old = app.sign_at(body, clock::now_ms() - 31 * 60 * 1000);
    assert_eq!(
        error_of(app.readme_raw(Some(&old), body).await).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "Expired Signature"})
        )
    );
}

#[tokio::test]
async fn a_far_future_timestamp_is_401_expired_signature() {
    let app = TestApp::local().await;
    let body = br#"{"email":"dev@corp.com"}"#;
    for t in [
        clock::now_ms() + 31 * 60 * 1000,
        clock::now_ms() + 365 * 24 * 3600 * 1000,
    ] {
        let future = app.sign_at(body, t);
        assert_eq!(
            error_of(app.readme_raw(Some(&future), body).await).await,
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": "Expired Signature"})
            ),
            "t={t}"
        );
    }
}

#[tokio::test]
async fn a_signature_within_the_configured_tolerance_verifies() {
    let app = TestApp::local_with(|c| {
        c.readme.tolerance_secs = 3600;
        c.readme.provision = true;
    })
    .await;
    let body = br#"{"email":"dev@corp.com"}"#;
    let older = app.sign_at(body, clock::now_ms() - 45 * 60 * 1000);
    assert_eq!(
        app.readme_raw(Some(&older), body).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_signature_made_with_another_secret_is_401_invalid_signature() {
    let app = TestApp::local().await;
    let body = br#"{"email":"dev@corp.com"}"#;
    let wrong = keyhook::readme::signature::sign("not-the-secret", clock::now_ms(), body);
    assert_eq!(
        error_of(app.readme_raw(Some(&wrong), body).await).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "Invalid Signature"})
        )
    );
}

#[tokio::test]
async fn a_signature_of_another_body_is_401_invalid_signature() {
    let app = TestApp::local().await;
    let signed = app.sign(br#"{"email":"dev@corp.com"}"#);
    let response = app
        .readme_raw(Some(&signed), br#"{"email":"admin@corp.com"}"#)
        .await;
    assert_eq!(
        error_of(response).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "Invalid Signature"})
        )
    );
}

#[tokio::test]
async fn a_malformed_signature_header_is_401_invalid_signature() {
    let app = TestApp::local().await;
    let body = br#"{"email":"dev@corp.com"}"#;
    let good = app.sign(body);
    let (t, v0) = good.split_once(",v0=").unwrap();
    for header in [
        "garbage".to_string(),
        t.to_string(),
        format!("v0={v0}"),
        format!("t=abc,v0={v0}"),
        format!("{t},v0={}", v0.to_uppercase()),
    ] {
        assert_eq!(
            error_of(app.readme_raw(Some(&header), body).await).await,
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": "Invalid Signature"})
            ),
            "{header}"
        );
    }
}

/// A request written byte for byte, so the header name keeps its case
/// (reqwest lower-cases names).
async fn login_with_header_name(app: &TestApp, name: &str, email: &str) -> (u16, Value) {
    let body = json!({ "email": email }).to_string();
    let signature = app.sign(body.as_bytes());
    let request = format!(
        "POST /readme/webhook HTTP/1.1\r\nHost: keyhook\r\nContent-Type: application/json\r\n\
         {name}: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, body) = app.raw_http(request.as_bytes()).await;
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn the_signature_header_name_is_accepted_in_lower_case() {
    let app = TestApp::local().await;
    let key = app.create_app("dev@corp.com", "app").await;
    let (status, answer) = login_with_header_name(&app, "readme-signature", "dev@corp.com").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["keys"][0]["apiKey"], key["apiKey"]);
}

#[tokio::test]
async fn the_signature_header_name_is_accepted_in_mixed_case() {
    let app = TestApp::local().await;
    let key = app.create_app("dev@corp.com", "app").await;
    for name in ["ReadMe-Signature", "rEaDmE-sIgNaTuRe", "README-SIGNATURE"] {
        let (status, answer) = login_with_header_name(&app, name, "dev@corp.com").await;
        assert_eq!(status, 200, "{name}: {answer}");
        assert_eq!(answer["keys"][0]["apiKey"], key["apiKey"], "{name}");
    }
}

#[tokio::test]
async fn whitespace_around_signature_entries_is_tolerated() {
    let app = TestApp::local().await;
    app.create_app("dev@corp.com", "app").await;
    let body = br#"{"email":"dev@corp.com"}"#;
    let good = app.sign(body);
    let (t, v0) = good.split_once(",v0=").unwrap();
    for header in [
        format!("{t}, v0={v0}"),
        format!(" {t} ,  v0={v0} "),
        format!("{t},\tv0 = {v0}"),
    ] {
        assert_eq!(
            app.readme_raw(Some(&header), body).await.status(),
            StatusCode::OK,
            "{header:?}"
        );
    }
}

#[tokio::test]
async fn any_of_several_v0_entries_may_match() {
    let app = TestApp::local().await;
    app.create_app("dev@corp.com", "app").await;
    let body = br#"{"email":"dev@corp.com"}"#;
    let good = app.sign(body);
    let (t, v0) = good.split_once(",v0=").unwrap();
    let stale = "0".repeat(64);
    for header in [
        format!("{t},v0={stale},v0={v0}"),
        format!("{t},v0={v0},v0={stale}"),
    ] {
        assert_eq!(
            app.readme_raw(Some(&header), body).await.status(),
            StatusCode::OK,
            "{header}"
        );
    }
}

#[tokio::test]
async fn either_of_two_configured_secrets_verifies_during_rotation() {
    let app = TestApp::local_with(|c| {
        c.readme.secret = vec![
            "new-secret".to_string().into(),
            "old-secret".to_string().into(),
        ]
    })
    .await;
    app.create_app("dev@corp.com", "app").await;
    let body = br#"{"email":"dev@corp.com"}"#;
    for secret in ["new-secret", "old-secret"] {
        let signature = keyhook::readme::signature::sign(secret, clock::now_ms(), body);
        assert_eq!(
            app.readme_raw(Some(&signature), body).await.status(),
            StatusCode::OK,
            "{secret}"
        );
    }
    let retired = keyhook::readme::signature::sign(README_SECRET, clock::now_ms(), body);
    assert_eq!(
        app.readme_raw(Some(&retired), body).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_login_answers_email_name_and_the_readers_key() {
    let app = TestApp::local().await;
    let key = app
        .create(
            &json!({"appName": "Billing app", "appSlug": "billing", "developer": "dev@corp.com"}),
        )
        .await;
    assert_eq!(
        app.login_ok("dev@corp.com").await,
        json!({
            "email": "dev@corp.com",
            "name": "dev@corp.com",
            "keys": [{"name": "Billing app", "apiKey": key["apiKey"]}],
        })
    );
}

#[tokio::test]
async fn every_key_of_a_reader_is_listed_with_a_distinct_label() {
    let app = TestApp::local().await;
    let first = app.create_app("dev@corp.com", "one").await;
    let second = app.create_app("dev@corp.com", "two").await;
    let keys = app.visible_keys("dev@corp.com").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let values: Vec<&Value> = keys.iter().map(|k| &k["apiKey"]).collect();
    assert!(values.contains(&&first["apiKey"]));
    assert!(values.contains(&&second["apiKey"]));
    assert_ne!(keys[0]["name"], keys[1]["name"]);
}

/// README: "Labels are made distinct for ReadMe's dropdown": two apps of
/// one reader with the same name are told apart by their credential id; a
/// name used once is left alone.
#[tokio::test]
async fn apps_with_the_same_name_get_labels_told_apart_by_credential_id() {
    let app = TestApp::local().await;
    let first = app
        .create(
            &json!({"appName": "Billing", "appSlug": "billing-eu", "developer": "dev@corp.com"}),
        )
        .await;
    let second = app
        .create(
            &json!({"appName": "Billing", "appSlug": "billing-us", "developer": "dev@corp.com"}),
        )
        .await;
    let third = app
        .create(&json!({"appName": "Reports", "appSlug": "reports", "developer": "dev@corp.com"}))
        .await;
    let mut keys = app.visible_keys("dev@corp.com").await;
    keys.sort_by_key(|k| k["name"].as_str().unwrap_or_default().to_string());
    let mut expected = vec![
        json!({"name": format!("Billing ({})", first["apiKeyId"].as_str().unwrap()), "apiKey": first["apiKey"]}),
        json!({"name": format!("Billing ({})", second["apiKeyId"].as_str().unwrap()), "apiKey": second["apiKey"]}),
        json!({"name": "Reports", "apiKey": third["apiKey"]}),
    ];
    expected.sort_by_key(|k| k["name"].as_str().unwrap_or_default().to_string());
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn a_client_credentials_credential_appears_as_name_user_and_pass() {
    let app = TestApp::local_with(|c| {
        c.sensedia.credential_type = CredentialKind::ClientCredentials;
    })
    .await;
    let client = app
        .create(&json!({"appName": "Reports", "appSlug": "reports", "developer": "dev@corp.com"}))
        .await;
    assert_eq!(client["credentialType"], "CLIENT_CREDENTIALS");
    assert_eq!(
        app.visible_keys("dev@corp.com").await,
        vec![
            json!({"name": "Reports", "user": client["clientId"], "pass": client["clientSecret"]})
        ]
    );
}

#[tokio::test]
async fn jo_at_corp_com_never_sees_the_key_of_jo_at_corp_com_au() {
    let app = TestApp::local().await;
    let au = app.create_app("jo@corp.com.au", "au").await;
    assert_eq!(app.visible_keys("jo@corp.com").await, Vec::<Value>::new());
    let jo = app.create_app("jo@corp.com", "jo").await;
    assert_eq!(
        app.visible_keys("jo@corp.com").await,
        vec![json!({"name": "App jo", "apiKey": jo["apiKey"]})]
    );
    assert_ne!(jo["apiKey"], au["apiKey"]);
}

#[tokio::test]
async fn jo_at_corp_com_au_never_sees_the_key_of_jo_at_corp_com() {
    let app = TestApp::local().await;
    let jo = app.create_app("jo@corp.com", "jo").await;
    assert_eq!(
        app.visible_keys("jo@corp.com.au").await,
        Vec::<Value>::new()
    );
    assert_eq!(app.visible_keys("o@corp.com").await, Vec::<Value>::new());
    assert_eq!(app.visible_keys("jo@corp.co").await, Vec::<Value>::new());
    let au = app.create_app("jo@corp.com.au", "au").await;
    assert_eq!(
        app.visible_keys("jo@corp.com.au").await,
        vec![json!({"name": "App au", "apiKey": au["apiKey"]})]
    );
    assert_ne!(jo["apiKey"], au["apiKey"]);
}

#[tokio::test]
async fn the_email_match_ignores_case() {
    let app = TestApp::local().await;
    let key = app.create_app("Dev@Corp.com", "app").await;
    for email in ["dev@corp.com", "DEV@CORP.COM", "dEv@cOrP.CoM"] {
        let answer = app.login_ok(email).await;
        assert_eq!(answer["email"], email, "the answer echoes the login");
        assert_eq!(answer["keys"][0]["apiKey"], key["apiKey"], "{email}");
    }
}

#[tokio::test]
async fn a_non_ascii_email_works_end_to_end() {
    let app = TestApp::local().await;
    let key = app.create_app("jöhn@example.com", "john").await;
    // Sent as raw UTF-8 (serde_json does not escape it), as ReadMe sends it.
    let body = json!({"email": "jöhn@example.com"}).to_string();
    assert!(body.contains('ö'));
    let answer = app.login_ok("jöhn@example.com").await;
    assert_eq!(answer["email"], "jöhn@example.com");
    assert_eq!(
        answer["keys"],
        json!([{"name": "App john", "apiKey": key["apiKey"]}])
    );
    // Only ASCII letters compare without case: `Ö` is another reader.
    assert_eq!(app.visible_keys("JÖHN@example.com").await.len(), 0);
    assert_eq!(app.visible_keys("JöHN@EXAMPLE.com").await.len(), 1);
    assert_eq!(app.visible_keys("john@example.com").await.len(), 0);
}

/// Unicode lower-casing once showed kate's key to a login spelt with the
/// Kelvin sign. A look-alike is refused (not in NFC) or is a reader of its
/// own; it never sees another reader's key.
#[tokio::test]
async fn a_look_alike_of_a_readers_address_never_sees_their_key() {
    let app = TestApp::local().await;
    let kate = app.create_app("kate@corp.com", "kate").await;
    let asa = app.create_app("\u{e5}sa@corp.com", "asa").await;
    for look_alike in [
        "\u{212A}ate@corp.com", // Kelvin sign: NFC and lower case make it `k`
        "kate@\u{212A}orp.com", // in the domain too
        "\u{212B}sa@corp.com",  // Angstrom sign: NFC makes it `Å`
        "a\u{30A}sa@corp.com",  // `å` decomposed
        "kate@\u{FF43}orp.com", // full-width `c`: IDNA would make it `corp.com`
    ] {
        let response = app.login(look_alike).await;
        let (status, body) = error_of(response).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{look_alike:?}: {body}"
        );
        assert!(body["error"].as_str().unwrap().contains("email"), "{body}");
        for key in [&kate, &asa] {
            assert!(!body.to_string().contains(key["apiKey"].as_str().unwrap()));
        }
    }
    // A full-width local part is another address: nobody's key.
    assert_eq!(
        app.visible_keys("\u{FF4B}ate@corp.com").await,
        Vec::<Value>::new()
    );
    assert_eq!(
        app.visible_keys("KATE@corp.com").await,
        vec![json!({"name": "App kate", "apiKey": kate["apiKey"]})]
    );
}

#[tokio::test]
async fn a_reader_without_credentials_is_404_when_provisioning_is_off() {
    let app = TestApp::local().await;
    let response = app.login("nobody@corp.com").await;
    let (status, body) = error_of(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string(), "{body}");
}

async fn provisioning_app() -> TestApp {
    TestApp::local_with(|c| {
        c.readme.provision = true;
        c.readme.usage_plan_id = Some("plan01".into());
    })
    .await
}

#[tokio::test]
async fn provisioning_creates_a_key_for_a_first_time_reader() {
    let app = provisioning_app().await;
    let keys = app.visible_keys("new@reader.io").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["name"], keyhook::readme::PROVISIONED_LABEL);
    assert!(keys[0]["apiKey"].as_str().unwrap().len() >= 30);
}

#[tokio::test]
async fn a_provisioned_key_is_attached_to_the_configured_usage_plan() {
    let app = provisioning_app().await;
    let keys = app.visible_keys("new@reader.io").await;
    let dir = app.stop().await.unwrap();
    let store = LocalStore::open(dir.path(), clock::system()).unwrap();
    let stored = store
        .find_by_owner(&Email::parse("new@reader.io").unwrap())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].usage_plans, vec!["plan01".to_string()]);
    let Secret::ApiKey { value } = &stored[0].secret else {
        panic!("a provisioned credential is an API key");
    };
    assert_eq!(keys[0]["apiKey"], value.expose().as_str());
}

#[tokio::test]
async fn a_second_login_shows_the_same_provisioned_key() {
    let app = provisioning_app().await;
    let first = app.visible_keys("new@reader.io").await;
    let second = app.visible_keys("new@reader.io").await;
    assert_eq!(first.len(), 1);
    assert_eq!(first, second);
}

#[tokio::test]
async fn fifty_concurrent_first_logins_provision_exactly_one_key() {
    let app = provisioning_app().await;
    let logins: Vec<_> = (0..50)
        .map(|_| {
            let api = app.api.clone();
            tokio::spawn(async move { api.visible_keys("rush@reader.io").await })
        })
        .collect();
    let mut answers = Vec::new();
    for login in logins {
        answers.push(login.await.unwrap());
    }
    let first = answers[0].clone();
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(answers.iter().all(|a| *a == first), "{answers:?}");
    assert_eq!(app.visible_keys("rush@reader.io").await, first);
}

#[tokio::test]
async fn configured_extra_fields_appear_in_the_answer() {
    let extra = json!({
        "isReadOnly": true,
        "parameters": {"region": "eu-west-1"},
        "tenant": "acme",
    });
    let app = TestApp::local_with(|c| {
        c.readme.response = extra.as_object().unwrap().clone();
    })
    .await;
    let key = app.create_app("dev@corp.com", "app").await;
    let answer = app.login_ok("dev@corp.com").await;
    assert_eq!(answer["isReadOnly"], true);
    assert_eq!(answer["parameters"], json!({"region": "eu-west-1"}));
    assert_eq!(answer["tenant"], "acme");
    assert_eq!(answer["keys"][0]["apiKey"], key["apiKey"]);
}

#[tokio::test]
async fn extra_fields_from_the_toml_file_appear_in_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::from_toml(
        r#"
        [readme.response]
        isReadOnly = true
        parameters = { region = "eu-west-1" }
        "#,
    )
    .unwrap();
    let defaults = crate::harness::test_config(dir.path());
    config.listen = defaults.listen;
    config.data_dir = defaults.data_dir;
    config.readme.secret = defaults.readme.secret;
    config.sensedia.users = defaults.sensedia.users;
    let app = TestApp::spawn(&config, None).await.keeping(dir);
    app.create_app("dev@corp.com", "app").await;
    let answer = app.login_ok("dev@corp.com").await;
    assert_eq!(answer["isReadOnly"], true);
    assert_eq!(answer["parameters"]["region"], "eu-west-1");
}

#[tokio::test]
async fn the_webhook_is_503_when_no_secret_is_configured() {
    let app = TestApp::local_with(|c| c.readme.secret.clear()).await;
    let body = br#"{"email":"dev@corp.com"}"#;
    let signature = keyhook::readme::signature::sign(README_SECRET, clock::now_ms(), body);
    let (status, answer) = error_of(app.readme_raw(Some(&signature), body).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("KEYHOOK_README_SECRET"),
        "{answer}"
    );
}

/// A correctly signed login with `body` and `content_type`.
async fn signed_post(app: &TestApp, content_type: &str, body: &[u8]) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url("/readme/webhook"))
        .header("ReadMe-Signature", app.sign(body))
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    error_of(response).await
}

#[tokio::test]
async fn a_signed_login_that_is_not_json_is_415() {
    let app = TestApp::local().await;
    let (status, body) = signed_post(&app, "text/plain", br#"{"email":"dev@corp.com"}"#).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn a_signed_login_with_malformed_json_is_400() {
    let app = TestApp::local().await;
    for body in [&b"{\"email\":"[..], b"not json", b"\xff\xfe"] {
        let (status, answer) = signed_post(&app, "application/json", body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(answer["error"].is_string());
    }
}

#[tokio::test]
async fn a_signed_login_without_an_email_is_422() {
    let app = TestApp::local().await;
    let (status, body) = signed_post(&app, "application/json", br#"{"user":"dev"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn a_signed_login_with_a_non_string_email_is_422() {
    let app = TestApp::local().await;
    for body in [
        &br#"{"email":5}"#[..],
        br#"{"email":null}"#,
        br#"{"email":["a@b.c"]}"#,
        br#"["a@b.c"]"#,
    ] {
        let (status, answer) = signed_post(&app, "application/json", body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(answer["error"].is_string());
    }
}

#[tokio::test]
async fn a_signed_login_with_an_invalid_email_is_422() {
    let app = TestApp::local_with(|c| c.readme.provision = true).await;
    let long = format!(r#"{{"email":"{}@corp.com"}}"#, "a".repeat(300));
    for body in [
        r#"{"email":""}"#,
        r#"{"email":"   "}"#,
        r#"{"email":"not-an-email"}"#,
        r#"{"email":"a@b@c"}"#,
        r#"{"email":"a b@corp.com"}"#,
        r#"{"email":"a\u0000b@corp.com"}"#,
        &long,
    ] {
        let (status, answer) = signed_post(&app, "application/json", body.as_bytes()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(answer["error"].is_string());
    }
}

#[tokio::test]
async fn a_login_over_the_body_limit_is_413() {
    let app = TestApp::local().await;
    let body = format!(r#"{{"email":"{}@corp.com"}}"#, "a".repeat(70_000));
    let (status, answer) = signed_post(&app, "application/json", body.as_bytes()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer["error"].is_string());
}
