//! Reliability under concurrency on the AWS backend (moto): a login storm of
//! one first-time reader (with the claim table and without: one replica is
//! exact either way), a portal retrying one create many times at once (both
//! credential kinds), and two keyhook *processes* (not two tasks of one,
//! whose app lock would hide the race) racing on the same readers and apps
//! with the claim table, under the proxy's added latency. Every effect is
//! checked in the emulator itself.

use std::time::Duration;

use crate::harness::emulator::Emulator;
use crate::harness::process::aws_env;
use crate::harness::proxy::{Fault, Proxy};
use crate::harness::Process;
use crate::harness::{ApiClient, TestApp, README_SECRET, SENSEDIA_PASSWORD, SENSEDIA_USER};
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
    fifty_first_logins(true).await;
}

/// One replica needs no claim table: its creates for an app take turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_replica_without_a_claim_table_leaves_one_key_too() {
    fifty_first_logins(false).await;
}

async fn fifty_first_logins(claim_table: bool) {
    let emu = Emulator::new(1).await;
    let plan = emu.seed.plans[0].clone();
    let mut config = emu.config(CredentialKind::ApiKey);
    if !claim_table {
        config.aws.claim_table = None;
    }
    config.readme.provision = true;
    config.readme.usage_plan_id = Some(plan.clone());
    let server = TestApp::spawn(&config, Some(emu.sdk())).await;
    server.ready().await;

    // Each variant its own reader: both share one moto account.
    let reader: &'static str = if claim_table {
        "storm@first.io"
    } else {
        "storm-alone@first.io"
    };
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

/// A keyhook process on the aws backend with `emu`'s claim table,
/// provisioning first-time readers and answering Sensedia with credentials
/// of `kind` (client credentials with a companion key, in `emu`'s pool).
fn replica_of(endpoint: &str, emu: &Emulator, kind: &str, settling: bool) -> Process {
    let mut env = aws_env(endpoint);
    env.push(("KEYHOOK_SENSEDIA_CREDENTIAL_TYPE", kind.to_string()));
    env.extend([
        ("KEYHOOK_README_SECRET", README_SECRET.into()),
        ("KEYHOOK_README_PROVISION", "true".into()),
        ("KEYHOOK_USAGE_PLAN_ID", emu.seed.plans[0].clone()),
        ("KEYHOOK_CLAIM_TABLE", emu.seed.claim_table.clone()),
        ("KEYHOOK_COGNITO_USER_POOL_ID", emu.seed.pool_id.clone()),
        ("KEYHOOK_CLIENT_API_KEY", "true".into()),
        (
            "KEYHOOK_SENSEDIA_USERS",
            format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}"),
        ),
        ("KEYHOOK_AWS_TIMEOUT_SECS", "5".into()),
        ("RUST_LOG", "warn".into()),
    ]);
    if settling {
        // Refreshes settle what no claim holds once older than
        // 3 × 1 s + 10 s: soon enough to watch them.
        // Two attempts of 500 ms each.
        env.extend([
            ("KEYHOOK_AWS_TIMEOUT_SECS", "1".into()),
            ("KEYHOOK_AWS_MAX_ATTEMPTS", "2".into()),
            ("KEYHOOK_INDEX_REFRESH_SECS", "1".into()),
        ]);
    }
    Process::spawn(&env)
}

/// How long after a race its refreshes have settled everything (see
/// [`replica_of`]): the grace, two refreshes, and room.
const SETTLED: Duration = Duration::from_secs(13 + 2 + 3);

/// Two replicas on `emu`, each behind its own proxy, ready.
struct Replicas {
    proxy_a: Proxy,
    proxy_b: Proxy,
    a: Process,
    b: Process,
}

impl Replicas {
    async fn start(emu: &Emulator, kind: &str, settling: bool) -> Replicas {
        let proxy_a = Proxy::start(&emu.endpoint).await;
        let proxy_b = Proxy::start(&emu.endpoint).await;
        let mut a = replica_of(&proxy_a.endpoint, emu, kind, settling);
        let mut b = replica_of(&proxy_b.endpoint, emu, kind, settling);
        a.wait_for("/readyz").await;
        b.wait_for("/readyz").await;
        Replicas {
            proxy_a,
            proxy_b,
            a,
            b,
        }
    }
}

/// The `keys` both replicas show `reader`, raced: both logins start together.
async fn race(a: &ApiClient, b: &ApiClient, reader: &str) -> [Vec<Value>; 2] {
    let (ra, rb) = tokio::join!(a.login_keys(reader), b.login_keys(reader));
    [ra.unwrap(), rb.unwrap()]
}

/// What a race of two replicas on `rounds` fresh readers left: a line per
/// round that broke the rule (one key in AWS, both replicas answering with
/// it). With `settled`, the replicas' refreshes settle within the test, and
/// once they have, the key shown is still the one AWS holds, both replicas
/// show it at the next login, and the claim table names it. `skewed`: A
/// creates and claims before B's create lands, and B's loser path (create,
/// lose the claim, delete) must have run.
async fn race_rounds(skewed: bool, settled: bool, rounds: usize) -> Vec<String> {
    // Replicas refreshing every second: on a moto of their own.
    let emu = match settled {
        true => Emulator::own_moto(1).await,
        false => Emulator::new(1).await,
    };
    let Replicas {
        proxy_a,
        proxy_b,
        a,
        b,
    } = Replicas::start(&emu, "api_key", settled).await;
    let (ca, cb) = (a.api.clone(), b.api.clone());
    let mut failures = Vec::new();
    let mut shown = Vec::new();
    for round in 0..rounds {
        if skewed {
            // A creates and claims before B has created; B's create lands
            // within its first attempt (a first login's create is tried
            // once: past its attempt's timeout it would go the full way,
            // which finds A's claim and makes nothing).
            let (early, late) = match settled {
                true => (50, 300),
                false => (150, 600),
            };
            let delay = |ms| Fault::Delay(Duration::from_millis(ms));
            proxy_a.fail("CreateApiKey", delay(early), 1);
            proxy_b.fail("CreateApiKey", delay(late), 1);
        }
        let reader = format!("race{round}-{skewed}-{settled}@replicas.io");
        let seen = race(&ca, &cb, &reader).await;
        let keys = emu.keys_named(&reader).await;
        let values: Vec<&str> = keys.iter().filter_map(|k| k.value()).collect();
        let one_key = keys.len() == 1
            && seen
                .iter()
                .all(|keys| keys.len() == 1 && keys[0]["apiKey"] == values[0]);
        if !one_key {
            failures.push(format!(
                "round {round}: AWS holds {values:?}; replicas A, B answered {seen:?}"
            ));
        } else {
            shown.push((
                reader,
                keys[0].id().unwrap().to_string(),
                values[0].to_string(),
            ));
        }
    }
    if skewed && proxy_b.count("DeleteApiKey") == 0 {
        failures.push("replica B never made and deleted a losing key".into());
    }
    if settled {
        tokio::time::sleep(SETTLED).await;
        let claimed = emu.claims().await;
        for (reader, id, value) in shown {
            let keys = emu.keys_named(&reader).await;
            let [next_a, next_b] = race(&ca, &cb, &reader).await;
            let stays = keys.len() == 1
                && keys[0].id() == Some(id.as_str())
                && [&next_a, &next_b]
                    .iter()
                    .all(|k| k.len() == 1 && k[0]["apiKey"] == value.as_str())
                && claimed.values().any(|holder| *holder == id);
            if !stays {
                failures.push(format!(
                    "{reader}: shown {id}; once settled AWS holds {:?}, the next logins show \
                     {next_a:?} and {next_b:?}, the table claims {claimed:?}",
                    keys.iter().map(|k| k.id()).collect::<Vec<_>>()
                ));
            }
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

/// ...and once the refreshes have settled, the key both showed is the one
/// that stays: in AWS, at both replicas' next logins, in the claim table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_race_and_the_refreshes_the_key_shown_is_the_one_that_stays() {
    let failures = race_rounds(true, true, 4).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The interleaving a simultaneous start rarely hits: replica A creates,
/// claims and answers; only then does B create. B's claim fails, so B
/// deletes its own key and answers A's: the key A showed is the one that
/// stays. (A re-read could not decide this: within one second AWS dates
/// cannot order the two keys.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_racing_replica_defers_to_the_key_already_answered() {
    let failures = race_rounds(true, false, 10).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The storm of the issue that brought the claim table: two replicas, forty
/// concurrent first logins of one reader split between them, AWS answering
/// creates with a little latency (different on each side, changing every
/// trial). Every login that got a key got the one key AWS holds afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_first_logins_on_two_replicas_all_see_the_key_that_stays() {
    let emu = Emulator::new(1).await;
    let Replicas {
        proxy_a,
        proxy_b,
        a,
        b,
    } = Replicas::start(&emu, "api_key", false).await;
    let mut failures = Vec::new();
    for trial in 0..12u64 {
        let delay = |ms| Fault::Delay(Duration::from_millis(ms));
        proxy_a.fail("CreateApiKey", delay(20 + (trial * 37) % 200), 1);
        proxy_b.fail("CreateApiKey", delay(20 + (trial * 91) % 200), 1);
        let reader = format!("storm{trial}@replicas.io");
        let logins: Vec<_> = (0..40)
            .map(|i| {
                let client = if i % 2 == 0 {
                    a.api.clone()
                } else {
                    b.api.clone()
                };
                let reader = reader.clone();
                tokio::spawn(async move { client.login_keys(&reader).await.unwrap() })
            })
            .collect();
        let seen = join_all(logins).await;
        let keys = emu.keys_named(&reader).await;
        let values: Vec<&str> = keys.iter().filter_map(|k| k.value()).collect();
        let all_see_it = keys.len() == 1
            && seen
                .iter()
                .all(|keys| keys.len() == 1 && keys[0]["apiKey"] == values[0]);
        if !all_see_it {
            let shown: std::collections::BTreeSet<String> =
                seen.iter().map(|k| format!("{k:?}")).collect();
            failures.push(format!(
                "trial {trial}: AWS holds {values:?}; logins saw {shown:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A portal's create of one app reaching both replicas at once (a retry
/// after a timeout, say), for both kinds, under latency on the creates:
/// both answers name the one credential AWS holds afterwards, and a client
/// has one companion key, on the app's plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_racing_one_apps_create_make_one_credential_of_each_kind() {
    let emu = Emulator::new(1).await;
    let mut failures = Vec::new();
    for kind in ["API_KEY", "CLIENT_CREDENTIALS"] {
        failures.extend(race_creates(&emu, kind, 8).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn race_creates(emu: &Emulator, kind: &str, rounds: u64) -> Vec<String> {
    let plan = emu.seed.plans[0].clone();
    let Replicas {
        proxy_a,
        proxy_b,
        a,
        b,
    } = Replicas::start(emu, &kind.to_lowercase(), false).await;
    let mut failures = Vec::new();
    for round in 0..rounds {
        let delay = |ms| Fault::Delay(Duration::from_millis(ms));
        for op in ["CreateApiKey", "CreateUserPoolClient"] {
            proxy_a.fail(op, delay(10 + (round * 53) % 150), 1);
            proxy_b.fail(op, delay(10 + (round * 29) % 150), 1);
        }
        {
            let developer = format!(
                "race{round}-{}@apps.io",
                kind.to_lowercase().replace('_', "-")
            );
            let body = json!({
                "appName": "Raced app",
                "appSlug": format!("raced-{round}-{kind}"),
                "developer": developer,
                "apis": [{"id": emu.seed.api_id, "usagePlans": [{"id": plan}]}],
            });
            let (ra, rb) = tokio::join!(
                a.api.sensedia("createCredentials", &body),
                b.api.sensedia("createCredentials", &body)
            );
            let (sa, sb) = (ra.status(), rb.status());
            let (ja, jb): (Value, Value) = (ra.json().await.unwrap(), rb.json().await.unwrap());
            let keys = emu.keys_named(&developer).await;
            let clients = emu.clients_of(&developer).await;
            let held = match kind {
                "API_KEY" if keys.len() == 1 && clients.is_empty() => {
                    Some(("apiKeyId", keys[0].id().unwrap().to_string()))
                }
                "CLIENT_CREDENTIALS"
                    if clients.len() == 1
                        && keys.len() == 1
                        // Both answered the client's one companion key.
                        && [&ja, &jb].iter().all(|j| {
                            j["customCredentials"]["apiKeyId"] == keys[0].id().unwrap()
                        }) =>
                {
                    Some(("clientId", clients[0].0.clone()))
                }
                _ => None,
            };
            let ok = sa == StatusCode::OK
                && sb == StatusCode::OK
                && held
                    .as_ref()
                    .is_some_and(|(field, id)| ja[field] == *id && jb[field] == *id)
                && keys.len() == 1
                && emu.plans_of(keys[0].id().unwrap()).await == vec![plan.clone()];
            if !ok {
                let ids: Vec<&str> = keys.iter().filter_map(|k| k.id()).collect();
                failures.push(format!(
                    "round {round} {kind}: answers {sa} {ja}, {sb} {jb}; AWS holds keys {ids:?}, clients {clients:?}"
                ));
            }
        }
    }
    failures
}
