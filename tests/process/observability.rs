//! The dashboard and alerts that ship with keyhook (`deploy/observability`)
//! against a running keyhook and a real Prometheus: every metric they name
//! is exported; every panel's query is answered, with data; and AWS
//! failures driven through the fault proxy raise `KeyhookAwsErrors`.
//! Prometheus must be installed (`scripts/test` installs it): without it
//! these tests fail, saying so. promtool's unit tests of each alert run in
//! `scripts/checks/observability.sh`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::emulator::{app, Emulator};
use crate::harness::metrics::Metrics;
use crate::harness::process::{aws_env, portals_env};
use crate::harness::prometheus::Prometheus;
use crate::harness::proxy::{Fault, Proxy};
use crate::harness::Process;

const OWNER: &str = "observed@corp.com";

fn shipped(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/observability")
        .join(file)
}

/// Every query of the dashboard's panels, as Grafana sends them with the
/// `job` variable at "All" (its `allValue`).
fn panel_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(shipped("keyhook-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$job", ".*");
            let title = format!("{} ({})", panel["title"], target["refId"]);
            queries.push((title, expr));
        }
    }
    assert!(queries.len() >= 10, "{queries:?}");
    queries
}

/// Every `keyhook_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("keyhook_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// keyhook on the AWS backend through `proxy`, its metrics listener on,
/// one attempt per AWS call (a failure shows at once), ready.
async fn keyhook_on(proxy: &Proxy) -> Process {
    let mut env = aws_env(&proxy.endpoint);
    env.extend(portals_env());
    env.extend([
        ("KEYHOOK_METRICS_LISTEN", "127.0.0.1:0".to_string()),
        ("KEYHOOK_AWS_MAX_ATTEMPTS", "1".into()),
        ("RUST_LOG", "warn".into()),
    ]);
    let mut server = Process::spawn(&env);
    server.wait_for("/readyz").await;
    server
}

/// What a dashboard shows in use: a create and a login answered, and a
/// create AWS throttled (503).
async fn drive_traffic(server: &Process, proxy: &Proxy, emu: &Emulator) {
    let api = &emu.seed.api_id;
    let plan = &emu.seed.plans[0];
    server
        .create(&app(OWNER, "observed-ok", api, &[plan]))
        .await;
    assert_eq!(server.login_keys(OWNER).await.unwrap().len(), 1);
    proxy.fail(
        "CreateApiKey",
        Fault::Status(429, "TooManyRequestsException"),
        1,
    );
    let throttled = app(OWNER, "observed-throttled", api, &[plan]);
    let answer = server.sensedia("createCredentials", &throttled).await;
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_name_is_exported_by_a_running_keyhook() {
    let emu = Emulator::new(1).await;
    let proxy = Proxy::start(&emu.endpoint).await;
    let server = keyhook_on(&proxy).await;
    // Series labelled by route, or by AWS operation, appear with their
    // first event: a keyhook that has served requests and made AWS calls.
    drive_traffic(&server, &proxy, &emu).await;

    let mut named = BTreeSet::new();
    for (_, expr) in panel_queries() {
        named.extend(metric_names(&expr));
    }
    let rules = std::fs::read_to_string(shipped("keyhook-alerts.yaml")).unwrap();
    named.extend(metric_names(&rules));
    for expected in [
        "keyhook_ready",
        "keyhook_api_keys_max",
        "keyhook_aws_calls_total",
    ] {
        assert!(
            named.contains(expected),
            "{expected} not found in {named:?}"
        );
    }

    let url = format!("{}/metrics", server.metrics_url());
    let text = (server.http.get(url).send().await.unwrap().text().await).unwrap();
    // Sample names as exported: a histogram's `_bucket` is one.
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = named.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "named by the dashboard or alerts, not exported: {missing:?}\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_answers_every_panel_and_raises_the_aws_errors_alert() {
    let emu = Emulator::new(1).await;
    let proxy = Proxy::start(&emu.endpoint).await;
    let server = keyhook_on(&proxy).await;
    let target = server
        .metrics_url()
        .trim_start_matches("http://")
        .to_string();
    let rules = shipped("keyhook-alerts.yaml");
    let prometheus = Prometheus::start(&target, &[&rules]).await;
    let scraped = prometheus
        .wait_for_sample(r#"up{job="keyhook"} == 1"#, Duration::from_secs(30))
        .await;
    assert_eq!(scraped["status"], "success");
    drive_traffic(&server, &proxy, &emu).await;
    let ready = Metrics::read(&server).await;
    assert_eq!(ready.sum("keyhook_ready", &[]), 1.0);

    // Every panel's query is valid PromQL on keyhook's series and, once
    // two scrapes have followed the traffic (what a rate needs), has data.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut empty = panel_queries();
    while !empty.is_empty() {
        let mut still = Vec::new();
        for (title, expr) in empty {
            let answer = prometheus.query(&expr).await;
            assert_eq!(answer["status"], "success", "{title}: `{expr}`: {answer}");
            if answer["data"]["result"].as_array().unwrap().is_empty() {
                still.push((title, expr));
            }
        }
        empty = still;
        assert!(Instant::now() < deadline, "panels without data: {empty:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let aws_errors = |alerts: &[Value]| {
        (alerts.iter())
            .find(|a| a["labels"]["alertname"] == "KeyhookAwsErrors")
            .cloned()
    };
    // One throttled create among a few ok calls: no alert (at least 5
    // failures in 5 minutes are needed).
    assert_eq!(aws_errors(&prometheus.alerts().await), None);

    // API Gateway answers every CreateApiKey with a 500: each create fails
    // (503), one failed AWS call each. The shipped rule's `for: 5m` is what
    // an operator wants, longer than a test: the alert is seen `pending`,
    // the state Prometheus gives it at the first evaluation its expression
    // holds, and from which it fires after `for`.
    proxy.fail(
        "CreateApiKey",
        Fault::Status(500, "InternalFailure"),
        100_000,
    );
    let (api, plan) = (&emu.seed.api_id, &emu.seed.plans[0]);
    let failing_since = Instant::now();
    let deadline = failing_since + Duration::from_secs(45);
    let mut failed = 0;
    let alert = loop {
        let body = app(OWNER, &format!("observed-fail-{failed}"), api, &[plan]);
        let answer = server.sensedia("createCredentials", &body).await;
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        failed += 1;
        if let Some(alert) = aws_errors(&prometheus.alerts().await) {
            break alert;
        }
        assert!(
            Instant::now() < deadline,
            "KeyhookAwsErrors not pending after {failed} failed creates: {:?}",
            prometheus.query("keyhook_aws_calls_total").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "KeyhookAwsErrors {} after {failed} failed creates, {:?}",
        alert["state"],
        failing_since.elapsed()
    );
    assert!(
        ["pending", "firing"].contains(&alert["state"].as_str().unwrap()),
        "{alert}"
    );
    assert_eq!(alert["labels"]["job"], "keyhook", "{alert}");
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    let runbook = alert["annotations"]["runbook"].as_str().unwrap();
    assert!(runbook.contains("AWS calls by operation"), "{alert}");
    assert!(failed >= 5, "pending after only {failed} failures: {alert}");
}
