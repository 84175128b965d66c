//! A first-time reader's login in the fewest AWS calls (issue 12, part 3):
//! 3 with a usage plan, 2 without, counted by operation at the proxy, with
//! the claim table and without; and what the calls saved must not cost:
//! replicas racing on one reader leave one key, and a reader whose key
//! another replica made since this one's last refresh is answered that key,
//! no second one left in AWS.

use std::collections::BTreeMap;
use std::time::Duration;

use keyhook::config::Config;
use keyhook::credentials::CredentialKind;
use serde_json::Value;

use crate::harness::emulator::Emulator;
use crate::harness::proxy::Proxy;
use crate::harness::TestApp;

/// A keyhook provisioning first logins, on `plan` (if any), with the claim
/// table or without, refreshing seldom: no refresh's calls among a login's.
fn provisioning(emu: &Emulator, table: bool, plan: Option<&str>) -> Config {
    let mut config = emu.config(CredentialKind::ApiKey);
    if !table {
        config.aws.claim_table = None;
    }
    config.aws.index_refresh_secs = 600;
    config.readme.provision = true;
    config.readme.usage_plan_id = plan.map(str::to_string);
    config
}

fn ops(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(op, n)| (op.to_string(), *n)).collect()
}

/// The calls of one first login, by operation; the key it answered.
async fn first_login(
    emu: &Emulator,
    table: bool,
    plan: Option<&str>,
    reader: &str,
) -> (BTreeMap<String, usize>, String) {
    let proxy = emu.proxy().await;
    let server = TestApp::spawn_ready(&provisioning(emu, table, plan), &proxy.endpoint).await;
    proxy.reset_calls();
    let keys = server
        .login_keys(reader)
        .await
        .expect("a first login gets a key");
    let counts = proxy.counts();
    server.stop().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    (counts, keys[0]["apiKey"].as_str().unwrap().to_string())
}

/// The sequences: without the table, the two writes and the re-read that
/// makes racing replicas converge; with it, the login's lookup (which finds
/// a portal's key made on another replica since the last refresh), the two
/// writes and the claim. Without a plan, no attach.
#[tokio::test]
async fn a_first_time_reader_costs_three_calls_with_a_plan_four_with_the_table_one_fewer_without_a_plan(
) {
    let emu = Emulator::new(1).await;
    let plan = emu.seed.plans[0].clone();
    let cases = [
        (
            false,
            Some(plan.as_str()),
            ops(&[
                ("CreateApiKey", 1),
                ("CreateUsagePlanKey", 1),
                ("GetApiKeys", 1),
            ]),
        ),
        (
            true,
            Some(plan.as_str()),
            ops(&[
                ("GetApiKeys", 1),
                ("CreateApiKey", 1),
                ("CreateUsagePlanKey", 1),
                ("TransactWriteItems", 1),
            ]),
        ),
        (false, None, ops(&[("CreateApiKey", 1), ("GetApiKeys", 1)])),
        (
            true,
            None,
            ops(&[
                ("GetApiKeys", 1),
                ("CreateApiKey", 1),
                ("TransactWriteItems", 1),
            ]),
        ),
    ];
    for (n, (table, plan, expected)) in cases.into_iter().enumerate() {
        let reader = format!("first{n}-{table}@calls.io");
        let (counts, value) = first_login(&emu, table, plan, &reader).await;
        println!(
            "first login, table {table}, plan {}: {counts:?}",
            plan.is_some()
        );
        assert_eq!(counts, expected, "table {table}, plan {plan:?}");
        let keys = emu.keys_named(&reader).await;
        assert_eq!(keys.len(), 1, "one key in AWS");
        assert_eq!(keys[0].value(), Some(value.as_str()));
        let on: Vec<String> = plan.iter().map(|p| p.to_string()).collect();
        assert_eq!(emu.plans_of(keys[0].id().unwrap()).await, on);
    }
}

/// Two ready replicas of `config` (two keyhooks on one moto, each its own
/// index and locks), each through a proxy of its own: moto's conditional
/// writes need them to be atomic (see `dynamodb::turns` in the harness).
async fn two_replicas(emu: &Emulator, config: &Config) -> ((Proxy, TestApp), (Proxy, TestApp)) {
    let (proxy_a, proxy_b) = (emu.proxy().await, emu.proxy().await);
    let a = TestApp::spawn_ready(config, &proxy_a.endpoint).await;
    let b = TestApp::spawn_ready(config, &proxy_b.endpoint).await;
    ((proxy_a, a), (proxy_b, b))
}

/// Two replicas (two keyhooks on one moto, each its own index and locks)
/// racing the same first-time reader, many times: one key in AWS after each
/// race, and both logins answered. With the claim table both answered that
/// key; without it (one replica is exact), the re-read leaves one key in
/// AWS, though a replica whose re-read came first may have answered the one
/// deleted (the reason several replicas need the table).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_racing_a_first_time_reader_leave_one_key() {
    let emu = Emulator::new(1).await;
    let plan = emu.seed.plans[0].clone();
    for table in [true, false] {
        let config = provisioning(&emu, table, Some(&plan));
        let ((_proxy_a, a), (_proxy_b, b)) = two_replicas(&emu, &config).await;
        let mut failures = Vec::new();
        for round in 0..8 {
            let reader = format!("race{round}-{table}@calls.io");
            let (ra, rb) = tokio::join!(a.api.login_keys(&reader), b.api.login_keys(&reader));
            let keys = emu.keys_named(&reader).await;
            let (Ok(ra), Ok(rb)) = (&ra, &rb) else {
                failures.push(format!(
                    "table {table}, round {round}: A answered {ra:?}, B {rb:?}; AWS holds {} keys",
                    keys.len()
                ));
                continue;
            };
            let values: Vec<&str> = keys.iter().filter_map(|k| k.value()).collect();
            let answered = |keys: &[Value]| keys.len() == 1 && keys[0]["apiKey"] == values[0];
            let ok = keys.len() == 1 && (!table || (answered(ra) && answered(rb)));
            if !ok {
                failures.push(format!("table {table}, round {round}: AWS holds {values:?}; A answered {ra:?}, B {rb:?}"));
            }
        }
        a.stop().await;
        b.stop().await;
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

/// Replica B provisions a reader; replica A, which has not refreshed since,
/// then sees the reader's first login there. Without the table, A makes a
/// key, finds B's in the re-read (older), deletes its own and answers B's;
/// with it, A's lookup finds B's key and A makes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_made_on_another_replica_since_the_last_refresh_is_answered_and_no_second_is_left() {
    let emu = Emulator::new(1).await;
    let plan = emu.seed.plans[0].clone();
    for table in [true, false] {
        let config = provisioning(&emu, table, Some(&plan));
        let ((proxy_a, a), (_proxy_b, b)) = two_replicas(&emu, &config).await;
        let reader = format!("elsewhere-{table}@calls.io");
        let made = b.login_keys(&reader).await.unwrap();
        // AWS dates have whole seconds: B's key is the older one.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        proxy_a.reset_calls();
        let here = a.login_keys(&reader).await.unwrap();
        println!("table {table}: {:?}", proxy_a.counts());
        assert_eq!(here, made, "table {table}: A answers B's key");
        let keys = emu.keys_named(&reader).await;
        assert_eq!(keys.len(), 1, "table {table}: one key in AWS");
        assert_eq!(Some(keys[0].value().unwrap()), made[0]["apiKey"].as_str());
        let (made_here, deleted_here) = match table {
            true => (0, 0),
            false => (1, 1),
        };
        assert_eq!(proxy_a.count("CreateApiKey"), made_here, "table {table}");
        assert_eq!(
            proxy_a.count("DeleteApiKey"),
            deleted_here,
            "table {table}: A deleted its own"
        );
        // And A's next login shows it without AWS.
        proxy_a.reset_calls();
        assert_eq!(a.login_keys(&reader).await.unwrap(), made);
        assert_eq!(proxy_a.counts(), BTreeMap::new(), "table {table}");
        a.stop().await;
        b.stop().await;
    }
}

/// A reader the domain policy refuses is still looked up at a miss: a key
/// made for them elsewhere since the last refresh is answered.
#[tokio::test]
async fn a_reader_the_policy_refuses_is_still_looked_up() {
    let emu = Emulator::new(1).await;
    let plan = emu.seed.plans[0].clone();
    let mut config = provisioning(&emu, true, Some(&plan));
    config.readme.provision_domains = vec!["corp.com".into()];
    let proxy = emu.proxy().await;
    let server = TestApp::spawn_ready(&config, &proxy.endpoint).await;
    let reader = "outsider@elsewhere.io";
    let value = emu.hand_made_key(reader, true).await;
    proxy.reset_calls();
    let keys = server.login_keys(reader).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["apiKey"], value.as_str());
    assert_eq!(proxy.count("GetApiKeys"), 1, "{:?}", proxy.counts());
    assert_eq!(proxy.count("CreateApiKey"), 0);
    server.stop().await;
}

/// A reader the budget refuses a key is looked up, as before: a key made
/// for them elsewhere since the last refresh is answered, nothing made.
#[tokio::test]
async fn a_reader_the_budget_refuses_is_still_looked_up() {
    // An account of its own: no other test's keys count.
    let emu = Emulator::isolated(1).await;
    let plan = emu.seed.plans[0].clone();
    let mut config = provisioning(&emu, true, Some(&plan));
    config.readme.provision_per_hour = Some(1);
    let proxy = emu.proxy().await;
    let server = TestApp::spawn(&config, Some(emu.through(&proxy).sdk())).await;
    server.ready().await;
    // The hour's one key.
    server.login_keys("spent@budget.io").await.unwrap();
    let reader = "hand-made@budget.io";
    let value = emu.hand_made_key(reader, true).await;
    proxy.reset_calls();
    let keys = server.login_keys(reader).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["apiKey"], value.as_str());
    assert_eq!(proxy.count("GetApiKeys"), 1, "{:?}", proxy.counts());
    assert_eq!(proxy.count("CreateApiKey"), 0);
    // A reader with nothing is refused (503), nothing made.
    let refused = server.login("nothing@budget.io").await;
    assert_eq!(refused.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(emu.keys_named("nothing@budget.io").await.is_empty());
    server.stop().await;
}

/// The ceiling on the short way: replica B, which has not refreshed since
/// replica A made the account's one allowed key, admits a first-time
/// reader (its own index counts none) and makes the key; the claim, which
/// counts it (`TransactWriteItems`), is refused at `KEYHOOK_MAX_KEYS`: the
/// key is deleted, the login answered 503 as any ceiling refusal, and the
/// first login took no other call than its lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_login_past_the_ceiling_deletes_its_key_and_is_refused() {
    // An account of its own: the ceiling counts every key in it.
    let emu = Emulator::isolated(1).await;
    let plan = emu.seed.plans[0].clone();
    let mut config = provisioning(&emu, true, Some(&plan));
    config.max_keys = 1;
    let (proxy_a, proxy_b) = (emu.proxy().await, emu.proxy().await);
    let a = TestApp::spawn(&config, Some(emu.through(&proxy_a).sdk())).await;
    let b = TestApp::spawn(&config, Some(emu.through(&proxy_b).sdk())).await;
    a.ready().await;
    b.ready().await;
    a.login_keys("first@ceiling.io").await.unwrap();
    proxy_b.reset_calls();
    let refused = b.login("second@ceiling.io").await;
    let status = refused.status();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["reason"], "key_ceiling", "{body}");
    assert_eq!(body["limit"], "KEYHOOK_MAX_KEYS", "{body}");
    assert!(emu.keys_named("second@ceiling.io").await.is_empty());
    assert_eq!(emu.keys_named("first@ceiling.io").await.len(), 1);
    let expected = ops(&[
        ("GetApiKeys", 1),
        ("CreateApiKey", 1),
        ("CreateUsagePlanKey", 1),
        ("TransactWriteItems", 1),
        ("DeleteApiKey", 1),
    ]);
    assert_eq!(proxy_b.counts(), expected);
    a.stop().await;
    b.stop().await;
}
