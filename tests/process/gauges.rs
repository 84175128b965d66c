//! The gauges behind the shipped dashboard and alerts, read from a real
//! process's `/metrics`: readiness as `/readyz` last answered it, the owner
//! index's size, the API keys counted against the key ceiling (on AWS every
//! key in the region, keyhook's or not), and provisioning refusals by
//! reason at 0 from the start.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::emulator::{app, Emulator};
use crate::harness::metrics::Metrics;
use crate::harness::process::{aws_env, portals_env};
use crate::harness::proxy::Fault;
use crate::harness::Process;

fn env_with_metrics() -> Vec<(&'static str, String)> {
    let mut env: Vec<_> = portals_env().into();
    env.extend([
        ("KEYHOOK_METRICS_LISTEN", "127.0.0.1:0".to_string()),
        ("RUST_LOG", "warn".into()),
    ]);
    env
}

/// Waits, within a generous bound, until `/metrics` shows `want` for the
/// unlabelled gauge `name`; probes `/readyz` before each read, as an
/// orchestrator does (`keyhook_ready` is its last answer).
async fn wait_for_gauge(server: &Process, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        server.get("/readyz").await;
        let got = Metrics::read(server).await.sum(name, &[]);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} is {got}, not {want}: {}",
            server.tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_store_publishes_its_size_and_api_keys_from_its_load_and_every_commit() {
    let env = env_with_metrics();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::spawn_in(dir.path(), &env);
    server.wait_for("/readyz").await;
    let start = Metrics::read(&server).await;
    let gauge = |m: &Metrics, name: &str| m.sum(name, &[]);
    assert_eq!(gauge(&start, "keyhook_ready"), 1.0);
    assert_eq!(gauge(&start, "keyhook_owner_index_credentials"), 0.0);
    assert_eq!(gauge(&start, "keyhook_api_keys"), 0.0);
    // KEYHOOK_MAX_KEYS' default until the provisioning policy sets it.
    assert_eq!(gauge(&start, "keyhook_api_keys_max"), 9000.0);
    for reason in ["domain", "hourly_budget", "key_ceiling"] {
        let labels = [("reason", reason)];
        let refused = start.sum("keyhook_provision_refused_total", &labels);
        assert_eq!(refused, 0.0, "{reason}");
    }

    server.create_app("g@corp.com", "gauge-1").await;
    server.create_app("g@corp.com", "gauge-2").await;
    let two = Metrics::read(&server).await;
    assert_eq!(gauge(&two, "keyhook_owner_index_credentials"), 2.0);
    assert_eq!(gauge(&two, "keyhook_api_keys"), 2.0);
    let revoke = json!({"appSlug": "gauge-1", "credentialType": "API_KEY"});
    let revoked = server.sensedia("revokeCredentials", &revoke).await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let one = Metrics::read(&server).await;
    assert_eq!(gauge(&one, "keyhook_owner_index_credentials"), 1.0);
    assert_eq!(gauge(&one, "keyhook_api_keys"), 1.0);

    // A restart on the same store: the count comes from the load.
    server.terminate();
    assert!(server.wait().success());
    let restarted = Process::spawn_in(dir.path(), &env);
    let loaded = Metrics::read(&restarted).await;
    assert_eq!(gauge(&loaded, "keyhook_owner_index_credentials"), 1.0);
    assert_eq!(gauge(&loaded, "keyhook_api_keys"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_aws_readiness_follows_the_index_load_and_every_key_in_the_region_counts() {
    // A moto of its own: the region holds only this test's keys.
    let emu = Emulator::own_moto(1).await;
    let proxy = emu.proxy().await;
    // Another team's key: not keyhook's, but API Gateway's limit counts it.
    (emu.apigw
        .create_api_key()
        .name("another-team-key")
        .enabled(true))
    .send()
    .await
    .unwrap();
    // The first load of the owner index is denied: unready.
    proxy.fail(
        "GetApiKeys",
        Fault::Status(403, "AccessDeniedException"),
        1_000,
    );
    let mut env = env_with_metrics();
    env.extend(aws_env(&proxy.endpoint));
    env.extend([
        ("KEYHOOK_INDEX_REFRESH_SECS", "1".to_string()),
        ("KEYHOOK_AWS_MAX_ATTEMPTS", "1".into()),
    ]);
    let mut server = Process::spawn(&env);
    wait_for_gauge(&server, "keyhook_ready", 0.0).await;
    let unready = server.get("/readyz").await;
    assert_eq!(unready.status(), StatusCode::SERVICE_UNAVAILABLE);

    // AWS answers again: the retried load (within 5 s) makes it ready.
    proxy.clear_faults();
    server.wait_for("/readyz").await;
    wait_for_gauge(&server, "keyhook_ready", 1.0).await;
    let in_region = |emu: &Emulator| {
        let apigw = emu.apigw.clone();
        async move {
            let keys = apigw.get_api_keys().limit(500).send().await.unwrap();
            keys.items().len() as f64
        }
    };
    let before = in_region(&emu).await;
    assert!(before >= 1.0);
    wait_for_gauge(&server, "keyhook_api_keys", before).await;
    wait_for_gauge(&server, "keyhook_owner_index_credentials", 0.0).await;

    let (api, plan) = (&emu.seed.api_id, &emu.seed.plans[0]);
    server
        .create(&app("aws-g@corp.com", "gauge-aws", api, &[plan]))
        .await;
    assert_eq!(in_region(&emu).await, before + 1.0);
    // Counted at the next refresh (every second here).
    wait_for_gauge(&server, "keyhook_api_keys", before + 1.0).await;
    wait_for_gauge(&server, "keyhook_owner_index_credentials", 1.0).await;
}
