//! `/metrics` reports what really happened: requests by route and status,
//! signature failures by reason, credentials issued; and it can be moved to
//! a listener of its own.

use crate::harness::{base_config, TestApp};
use keyhook::app::{Application, Dependencies};
use reqwest::StatusCode;
use serde_json::json;

fn local_config(dir: &tempfile::TempDir) -> keyhook::config::Config {
    let mut config = base_config();
    config.data_dir = dir.path().to_path_buf();
    config
}

/// The value of the first sample line of `metric` carrying every label.
fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(metric) && !line.starts_with('#'))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_signature_failures_and_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestApp::spawn(&local_config(&dir), None).await;
    let created = server
        .sensedia(
            "createCredentials",
            &json!({"appName": "Metered", "appSlug": "metered1", "developer": "m@corp.com"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    assert_eq!(server.login_keys("m@corp.com").await.unwrap().len(), 1);
    let unsigned = server
        .http
        .post(format!("{}/readme/webhook", server.base))
        .header("content-type", "application/json")
        .body(r#"{"email":"m@corp.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);

    let text = server.get_as_portal("/metrics").await.text().await.unwrap();
    let login_ok = [("route", "/readme/webhook"), ("status", "200")];
    assert!(
        sample(&text, "keyhook_http_requests_total", &login_ok).unwrap() >= 1.0,
        "{text}"
    );
    let login_401 = [("route", "/readme/webhook"), ("status", "401")];
    assert!(sample(&text, "keyhook_http_requests_total", &login_401).unwrap() >= 1.0);
    assert!(
        sample(
            &text,
            "keyhook_signature_failures_total",
            &[("reason", "missing")]
        )
        .unwrap()
            >= 1.0
    );
    let created = [
        ("action", "created"),
        ("kind", "api_key"),
        ("origin", "sensedia"),
    ];
    assert!(sample(&text, "keyhook_credentials_total", &created).unwrap() >= 1.0);
    assert!(
        sample(
            &text,
            "keyhook_http_request_duration_seconds_bucket",
            &[("route", "/readme/webhook"), ("le", "+Inf")]
        )
        .unwrap()
            >= 2.0
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_can_live_on_their_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = local_config(&dir);
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = Application::build(&config, Dependencies::default())
        .await
        .unwrap();
    let main = format!("http://{}", app.local_addr());
    let metrics = format!("http://{}", app.metrics_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{main}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let hidden = http.get(format!("{main}/metrics")).send().await.unwrap();
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let shown = http.get(format!("{metrics}/metrics")).send().await.unwrap();
    assert_eq!(shown.status(), StatusCode::OK);
    assert!(shown
        .text()
        .await
        .unwrap()
        .contains("keyhook_http_requests_total"));
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}
