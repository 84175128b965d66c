//! Reliability under concurrency on the AWS backend (moto): a login storm of
//! one first-time reader, a portal retrying one create many times at once
//! (both credential kinds), and two keyhook *processes* racing on the same
//! readers. Every effect is checked in the emulator itself.

use std::time::Duration;

use crate::harness::emulator::Emulator;
use crate::harness::process::aws_env;
use crate::harness::proxy::{Fault, Proxy};
use crate::harness::Process;
use crate::harness::{ApiClient, TestApp, README_SECRET};
use keyhook::credentials::CredentialKind;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn join_all<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_first_logins_leave_one_key_in_aws() {
    let emu = Emulator::new(1).await;
    let plan = emu.seed.plans[0].clone();
    let mut config = emu.config(CredentialKind::ApiKey);
    config.readme.provision = true;
    config.readme.usage_plan_id = Some(plan.clone());
    let server = TestApp::spawn(&config, Some(emu.sdk())).await;
    server.ready().await;

    let reader = "storm@first.io";
    let logins = (0..50)
        .map(|_| {
            let client = server.api.clone();
            tokio::spawn(async move {
                let response = client.login(reader).await;
                let status = response.status();
                (status, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let answers = join_all(logins).await;

    let keys = emu.keys_named(reader).await;
    assert_eq!(keys.len(), 1, "exactly one key in AWS: {keys:?}");
    let value = keys[0].value().unwrap();
    let id = keys[0].id().unwrap().to_string();
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(
            body["keys"],
            json!([{"name": "Personal API key", "apiKey": value}]),
            "every answer carries the one key"
        );
    }
    assert_eq!(
        emu.plans_of(&id).await,
        vec![plan],
        "attached once, to the plan"
    );
    server.stop().await;
}

/// Twenty identical `createCredentials` at once: one credential in AWS and
/// twenty identical answers, for API keys and for Cognito app clients (the
/// latter with a companion API key on the app's plan).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_identical_creates_make_one_credential_of_each_kind() {
    let emu = Emulator::new(1).await;
    let plan = emu.seed.plans[0].clone();
    for kind in [CredentialKind::ApiKey, CredentialKind::ClientCredentials] {
        let mut config = emu.config(kind);
        config.aws.client_api_key = true;
        let server = TestApp::spawn(&config, Some(emu.sdk())).await;
        server.ready().await;
        let developer = format!("{}@same.io", kind.as_str().replace('_', "-"));
        let body = json!({
            "appName": "Same app",
            "appSlug": format!("same-{}", kind.as_str().replace('_', "-")),
            "developer": developer,
            "apis": [{"id": emu.seed.api_id, "usagePlans": [{"id": plan}]}],
        });
        let calls = (0..20)
            .map(|_| {
                let client = server.api.clone();
                let body = body.clone();
                tokio::spawn(async move {
                    let response = client.sensedia("createCredentials", &body).await;
                    (response.status(), response.json::<Value>().await.unwrap())
                })
            })
            .collect();
        let mut answers = join_all(calls).await;
        for (status, body) in &answers {
            assert_eq!(*status, StatusCode::OK, "{kind}: {body}");
        }
        answers.dedup();
        assert_eq!(
            answers.len(),
            1,
            "{kind}: 20 identical answers: {answers:?}"
        );
        let answer = &answers[0].1;

        let keys = emu.keys_named(&developer).await;
        let clients = emu.clients_of(&developer).await;
        match kind {
            CredentialKind::ApiKey => {
                assert_eq!(keys.len(), 1, "one key: {keys:?}");
                assert!(clients.is_empty());
                assert_eq!(answer["apiKeyId"], keys[0].id().unwrap());
                assert_eq!(answer["apiKey"], keys[0].value().unwrap());
                assert_eq!(
                    emu.plans_of(keys[0].id().unwrap()).await,
                    vec![plan.clone()]
                );
            }
            CredentialKind::ClientCredentials => {
                assert_eq!(clients.len(), 1, "one app client: {clients:?}");
                assert_eq!(answer["clientId"], clients[0].0.as_str());
                assert_eq!(keys.len(), 1, "one companion key: {keys:?}");
                let companion = &answer["customCredentials"];
                assert_eq!(companion["apiKeyId"], keys[0].id().unwrap());
                assert_eq!(companion["apiKey"], keys[0].value().unwrap());
                assert_eq!(
                    emu.plans_of(keys[0].id().unwrap()).await,
                    vec![plan.clone()]
                );
            }
        }
        server.stop().await;
    }
}

/// A keyhook process on the aws backend, provisioning first-time readers.
fn replica(endpoint: &str, plan: &str) -> Process {
    let mut env = aws_env(endpoint);
    env.extend([
        ("KEYHOOK_README_SECRET", README_SECRET.into()),
        ("KEYHOOK_README_PROVISION", "true".into()),
        ("KEYHOOK_USAGE_PLAN_ID", plan.into()),
        ("KEYHOOK_AWS_TIMEOUT_SECS", "5".into()),
        ("RUST_LOG", "warn".into()),
    ]);
    Process::spawn(&env)
}

/// The `keys` both replicas show `reader`, raced: both logins start together.
async fn race(a: &ApiClient, b: &ApiClient, reader: &str) -> [Vec<Value>; 2] {
    let (ra, rb) = tokio::join!(a.login_keys(reader), b.login_keys(reader));
    [ra.unwrap(), rb.unwrap()]
}

/// What a race of two replicas on `rounds` fresh readers left: a line per
/// round that broke the rule (one key in AWS, both replicas answering with
/// it; with `next_logins`, at their next login too).
async fn race_rounds(skewed: bool, next_logins: bool, rounds: usize) -> Vec<String> {
    let emu = Emulator::new(1).await;
    let plan = emu.seed.plans[0].clone();
    let proxy_a = Proxy::start(&emu.endpoint).await;
    let proxy_b = Proxy::start(&emu.endpoint).await;
    let mut a = replica(&proxy_a.endpoint, &plan);
    let mut b = replica(&proxy_b.endpoint, &plan);
    a.wait_for("/readyz").await;
    b.wait_for("/readyz").await;
    let (ca, cb) = (a.api.clone(), b.api.clone());
    let mut failures = Vec::new();
    for round in 0..rounds {
        if skewed {
            // A creates, re-reads and answers before B has created.
            proxy_a.fail("CreateApiKey", Fault::Delay(Duration::from_millis(150)), 1);
            proxy_b.fail("CreateApiKey", Fault::Delay(Duration::from_millis(600)), 1);
        }
        let reader = format!("race{round}-{skewed}-{next_logins}@replicas.io");
        let [seen_a, seen_b] = race(&ca, &cb, &reader).await;
        let keys = emu.keys_named(&reader).await;
        let values: Vec<&str> = keys.iter().filter_map(|k| k.value()).collect();
        let mut seen = vec![seen_a, seen_b];
        if next_logins {
            seen.extend(race(&ca, &cb, &reader).await);
        }
        let one_key = keys.len() == 1
            && seen
                .iter()
                .all(|keys| keys.len() == 1 && keys[0]["apiKey"] == values[0]);
        if !one_key {
            failures.push(format!(
                "round {round}: AWS holds {values:?}; replicas A, B answered (then at the next \
                 login, when checked): {seen:?}"
            ));
        }
    }
    failures
}

/// Two keyhook processes sharing one moto, racing first logins of the same
/// readers: after each race one key is left per reader, and both replicas
/// answered with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_racing_first_logins_leave_one_key_per_reader() {
    let failures = race_rounds(false, false, 6).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// ...and at the next login both replicas still show only that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_race_both_processes_show_only_the_surviving_key() {
    let failures = race_rounds(false, true, 4).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The interleaving a simultaneous start rarely hits: replica A creates,
/// re-reads (sees only its key) and answers; only then does B create. B
/// re-reads and sees both; B defers to the first made, but AWS dates have
/// whole seconds, so within one second it falls back to the smallest id, which
/// is B's own half of the time: then both keys stay until a refresh settles
/// them (`settle_duplicates`, once both are 120 s old).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "known limitation: two keys for one app made within the same second, one after the other's re-read, both stay until the refresh settles them 120 s later"]
async fn a_late_racing_replica_defers_to_the_key_already_answered() {
    let failures = race_rounds(true, false, 6).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
