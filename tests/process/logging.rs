//! The log sink cannot slow requests down: lines are written off the
//! request threads, a per-request line is dropped (and counted) only while
//! the sink cannot keep up, and audit events are never dropped.

use std::time::Duration;

use serde_json::Value;

use crate::harness::metrics::Metrics;
use crate::harness::{Process, README_SECRET, SENSEDIA_PASSWORD, SENSEDIA_USER};

const DROPPED: &str = "keyhook_log_lines_dropped_total";

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("KEYHOOK_README_SECRET", README_SECRET.to_string()),
        (
            "KEYHOOK_SENSEDIA_USERS",
            format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}"),
        ),
        ("KEYHOOK_METRICS_LISTEN", "127.0.0.1:0".into()),
        ("KEYHOOK_README_PROVISION", "true".into()),
    ]
}

/// `n` requests to `/healthz` (a multiple of 10), 10 at a time; how many
/// were answered 200.
async fn healthz(server: &Process, n: usize) -> usize {
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let api = server.api.clone();
        workers.spawn(async move {
            let mut ok = 0;
            for _ in 0..n / 10 {
                ok += usize::from(api.get("/healthz").await.status().is_success());
            }
            ok
        });
    }
    workers.join_all().await.into_iter().sum()
}

/// The per-request lines in the log so far.
fn request_lines(server: &Process) -> usize {
    server
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == "request" && event["target"] == "keyhook::request")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_keeps_up_gets_every_request_line() {
    let mut server = Process::spawn(&env());
    assert_eq!(healthz(&server, 500).await, 500);
    // Written by the log thread a moment after each answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while request_lines(&server) < 500 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(request_lines(&server), 500);
    assert_eq!(Metrics::read(&server).await.sum(DROPPED, &[]), 0.0);

    // The line carries its request's fields itself.
    let response = server
        .http
        .get(server.url("/healthz"))
        .header("x-request-id", "line-fields-1")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(30)).success());
    let line = server
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|e| e["message"] == "request" && e["request_id"] == "line-fields-1")
        .expect("the request's line, written before the process ended");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["route"], "/healthz", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line["latency_ms"].as_f64().is_some(), "{line}");
    assert!(line.get("span").is_none(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_lines_can_be_filtered_out_alone() {
    let mut env = env();
    env.push(("RUST_LOG", "info,keyhook::request=off".into()));
    let server = Process::spawn(&env);
    server.login_ok("first@corp.com").await;
    assert_eq!(healthz(&server, 20).await, 20);
    let created = server.wait_for_log("credential created");
    assert_eq!(created["owner"], "first@corp.com");
    // Long past when a line of those requests would have been written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(request_lines(&server), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sink_drops_and_counts_request_lines_and_never_blocks_a_request() {
    let server = Process::spawn(&env());
    server.login_ok("first@corp.com").await;
    server.stall_log_sink(true);
    // More lines than the pipe and the writer's buffer (8,192 lines) hold.
    let sent = 12_000;
    let answered = tokio::time::timeout(Duration::from_secs(240), healthz(&server, sent))
        .await
        .expect("requests went on while nothing read the log");
    assert_eq!(answered, sent);
    let dropped = Metrics::read(&server).await.sum(DROPPED, &[]);
    assert!(
        dropped > 0.0 && dropped <= sent as f64,
        "{dropped} lines dropped of {sent}"
    );

    // A provisioning's audit event, made while the sink is still stalled,
    // waits for room rather than being dropped.
    let provisioned = tokio::spawn({
        let api = server.api.clone();
        async move { api.login_ok("second@corp.com").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.stall_log_sink(false);
    provisioned.await.unwrap();
    let created = || -> Vec<Value> {
        server
            .logs()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|e| e["message"] == "credential created")
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while created().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = created();
    let owners: Vec<&Value> = created.iter().map(|e| &e["owner"]).collect();
    assert_eq!(owners, ["first@corp.com", "second@corp.com"], "{created:?}");
    // Once the sink keeps up again, request lines flow again.
    let before = request_lines(&server);
    assert_eq!(healthz(&server, 10).await, 10);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while request_lines(&server) < before + 10 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(request_lines(&server) >= before + 10);
}
