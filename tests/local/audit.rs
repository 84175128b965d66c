//! The audit trail: every credential created, re-synced or revoked is one
//! structured event under `keyhook::audit`, naming who asked, the owner, the
//! app and the credential, and never its secret.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::harness::{base_config, TestApp};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs on one thread so the subscriber set for this test sees every event
/// the server's tasks emit.
#[tokio::test(flavor = "current_thread")]
async fn every_credential_change_is_one_audit_event_without_the_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter("keyhook::audit=info")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config();
    config.data_dir = dir.path().to_path_buf();
    config.readme.provision = true;
    let server = TestApp::spawn(&config, None).await;
    let app = json!({"appName": "Audited", "appSlug": "audited1", "developer": "aud@corp.com"});
    let created: Value = server
        .sensedia("createCredentials", &app)
        .await
        .json()
        .await
        .unwrap();
    let mut update = app.clone();
    update["appName"] = json!("Audited v2");
    server.sensedia("updateCredentials", &update).await;
    // A create for the app with another developer hands it over.
    let mut moved = update.clone();
    moved["developer"] = json!("aud2@corp.com");
    server.sensedia("createCredentials", &moved).await;
    server.sensedia("revokeCredentials", &app).await;
    let provisioned = server.login_keys("reader@corp.com").await.unwrap();
    server.stop().await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["target"] == "keyhook::audit")
        .collect();
    let actions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["requested_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("created", "sensedia"),
            ("updated", "sensedia"),
            ("updated", "sensedia"),
            ("revoked", "sensedia"),
            ("created", "readme"),
        ],
        "{text}"
    );
    // The app as the credential model records it: the Sensedia slug, or
    // the provisioned reader.
    let apps: Vec<&Value> = events.iter().map(|e| &e["app"]).collect();
    assert_eq!(
        apps,
        [
            "slug:audited1",
            "slug:audited1",
            "slug:audited1",
            "slug:audited1",
            "readme:reader@corp.com"
        ],
        "{text}"
    );
    assert_eq!(events[0]["owner"], "aud@corp.com");
    assert_eq!(events[0]["credential_id"], created["apiKeyId"]);
    assert_eq!(events[2]["owner"], "aud2@corp.com");
    assert_eq!(events[3]["owner"], "aud2@corp.com");
    assert_eq!(events[3]["credential_id"], created["apiKeyId"]);
    assert_eq!(events[4]["owner"], "reader@corp.com");
    for secret in [&created["apiKey"], &provisioned[0]["apiKey"]] {
        assert!(
            !text.contains(secret.as_str().unwrap()),
            "secret in the audit trail"
        );
    }
}
