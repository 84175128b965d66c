//! The API-key ceiling (`KEYHOOK_MAX_KEYS`) across replicas with the claim
//! table, on moto: a scripted sign-up storm on two replicas makes no key
//! past it while existing readers keep logging in, and the refresh keeps
//! the table's key count in step with the account (`ceiling.rs`).
//!
//! Each test runs in a moto account of its own (`AwsEnv::isolated`): the
//! ceiling counts every key of the account, so no other test's keys may be
//! in it. keyhook reaches moto through the proxy, which forwards DynamoDB
//! calls one at a time: moto applies a transaction without a lock, and
//! DynamoDB's items are atomic (see `dynamodb::turns` in the harness).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use keyhook::credentials::CredentialKind;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::emulator::{app, AwsEnv, Emulator};
use crate::harness::proxy::Fault;

/// The count item's key in the claim table.
const COUNT: &str = "budget#api_keys";

/// Every API key value in the emulator's account.
async fn key_values(emu: &Emulator) -> BTreeSet<String> {
    let page = emu
        .apigw
        .get_api_keys()
        .include_values(true)
        .limit(500)
        .send()
        .await
        .unwrap();
    assert!(
        page.position().is_none(),
        "one page holds the account's keys"
    );
    page.items()
        .iter()
        .map(|k| k.value().unwrap().to_string())
        .collect()
}

/// The count item: (keys, version), if there is one.
async fn key_count(emu: &Emulator) -> Option<(u64, u64)> {
    let out = emu
        .dynamodb
        .get_item()
        .table_name(&emu.seed.claim_table)
        .key("app", AttributeValue::S(COUNT.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = out.item()?;
    let n = |name: &str| item.get(name)?.as_n().ok()?.parse().ok();
    Some((n("keys")?, n("version")?))
}

/// Writes the count item as a replica's create would leave it.
async fn set_key_count(emu: &Emulator, keys: u64, version: u64) {
    let n = |v: u64| AttributeValue::N(v.to_string());
    emu.dynamodb
        .put_item()
        .table_name(&emu.seed.claim_table)
        .set_item(Some(HashMap::from([
            ("app".to_string(), AttributeValue::S(COUNT.into())),
            ("keys".to_string(), n(keys)),
            ("version".to_string(), n(version)),
        ])))
        .send()
        .await
        .unwrap();
}

/// Polls `done` until it holds, for at most 20 s.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The one key value a login answered, if it answered 200 with one key.
/// One replica provisioning first logins on the account's usage plan,
/// once its first load has made the count item.
async fn provisioning_replica(env: &AwsEnv) -> crate::harness::TestApp {
    let mut config = env.emu.config(CredentialKind::ApiKey);
    config.readme.provision = true;
    config.readme.usage_plan_id = Some(env.seed.plans[0].clone());
    let app = env.spawn(&config).await;
    eventually("the count item is made", || async {
        key_count(env).await == Some((0, 0))
    })
    .await;
    app
}

fn shown_key(status: StatusCode, body: &Value) -> Option<String> {
    let keys = body["keys"].as_array()?;
    match (status, keys.as_slice()) {
        (StatusCode::OK, [key]) => Some(key["apiKey"].as_str()?.to_string()),
        _ => None,
    }
}

/// Two replicas (two keyhook apps, each with its own owner index, app
/// locks and budget, sharing the claim table) and three readers who have a
/// key (made while the table had no count item, as after an upgrade); the
/// ceiling is 8 API keys in the account. 44 first-time readers
/// sign up at once, split across both replicas, while the three log in
/// again and again on both. The replicas never refresh during the storm:
/// neither sees the other's keys but through the table, so the per-replica
/// check alone would let each make 5 (13 keys).
///
/// After the storm, the account holds exactly 8 keys: the three readers'
/// and the five new readers' who got one; every other sign-up was answered
/// 503 naming `KEYHOOK_MAX_KEYS`; the three were answered their own key
/// every time; no key is left that no reader was shown; at least one key
/// was made and deleted on the table's refusal (the exact ceiling, not
/// only the per-replica one, was at work); and a portal's create for a new
/// app is refused on both replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_up_storm_on_two_replicas_makes_no_key_past_the_ceiling() {
    const MAX: usize = 8;
    let env = AwsEnv::isolated(1).await;
    let mut config = env.emu.config(CredentialKind::ApiKey);
    config.readme.provision = true;
    config.readme.usage_plan_id = Some(env.seed.plans[0].clone());
    config.max_keys = MAX;
    config.aws.index_refresh_secs = 3600;
    let a = env.spawn(&config).await;
    // A table from before the count (its first load made the item): the
    // first create seeds it from its replica's index.
    env.dynamodb
        .delete_item()
        .table_name(&env.seed.claim_table)
        .key("app", AttributeValue::S(COUNT.into()))
        .send()
        .await
        .unwrap();
    let existing = ["ann@corp.com", "bob@corp.com", "cy@corp.com"];
    let mut theirs = HashMap::new();
    for reader in existing {
        let body = a.login_ok(reader).await;
        theirs.insert(reader, shown_key(StatusCode::OK, &body).unwrap());
    }
    assert_eq!(key_count(&env).await, Some((3, 3)), "seeded, then counted");
    // Loads the three keys, and sets the count to them.
    let b = env.spawn(&config).await;
    assert_eq!(key_count(&env).await.map(|(keys, _)| keys), Some(3));
    env.proxy.reset_calls();

    let mut signups = Vec::new();
    for n in 0..44 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let api = replica.api.clone();
        signups.push(tokio::spawn(async move {
            let response = api.login(&format!("signup{n}@open.io")).await;
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut returns = Vec::new();
    for round in 0..8 {
        for (i, reader) in existing.into_iter().enumerate() {
            let replica = if (round + i) % 2 == 0 { &a } else { &b };
            let api = replica.api.clone();
            returns.push(tokio::spawn(async move {
                let response = api.login(reader).await;
                let status = response.status();
                (reader, status, response.json::<Value>().await.unwrap())
            }));
        }
    }
    let mut shown = BTreeSet::new();
    let mut refused = 0;
    for signup in signups {
        let (status, body) = signup.await.unwrap();
        if let Some(key) = shown_key(status, &body) {
            shown.insert(key);
            continue;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["reason"], "key_ceiling", "{body}");
        assert_eq!(body["limit"], "KEYHOOK_MAX_KEYS", "{body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("KEYHOOK_MAX_KEYS"), "{body}");
        refused += 1;
    }
    for login in returns {
        let (reader, status, body) = login.await.unwrap();
        assert_eq!(
            shown_key(status, &body).as_ref(),
            Some(&theirs[reader]),
            "{reader}: {status} {body}"
        );
    }

    let in_aws = key_values(&env).await;
    println!(
        "storm: {} keys in the account (ceiling {MAX}), {} sign-ups got one, {refused} refused; AWS calls {:?}",
        in_aws.len(),
        shown.len(),
        env.proxy.counts()
    );
    assert!(
        in_aws.len() <= MAX,
        "{} keys past the ceiling",
        in_aws.len()
    );
    assert!(!shown.is_empty(), "no sign-up got a key");
    assert_eq!(in_aws.len(), MAX, "the storm fills the ceiling exactly");
    let mut answered = shown.clone();
    answered.extend(theirs.values().cloned());
    assert_eq!(
        in_aws, answered,
        "every key in AWS is one a reader was shown"
    );
    assert!(
        env.proxy.count("DeleteApiKey") >= 1,
        "the table refused no key made: the per-replica check alone decided"
    );
    assert_eq!(
        key_count(&env).await.map(|(keys, _)| keys),
        Some(MAX as u64),
        "the table counts what AWS holds"
    );
    // A portal's create for a new app stops too, on either replica (one
    // of which has room as far as its own index knows).
    for (replica, slug) in [(&a, "portal-a"), (&b, "portal-b")] {
        let request = app(
            "dev@corp.com",
            slug,
            &env.seed.api_id,
            &[&env.seed.plans[0]],
        );
        let response = replica.sensedia("createCredentials", &request).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["limit"], "KEYHOOK_MAX_KEYS", "{body}");
    }
    assert_eq!(key_values(&env).await.len(), MAX);
    a.stop().await;
    b.stop().await;
}

/// The refresh sets the count to what it listed, plus what creates counted
/// while it listed: the listing is held by the proxy, and a "create" (the
/// count item bumped by one key and one version, as another replica's
/// claim does, here from a wrong count of 50) lands meanwhile. The held
/// refresh sets 2 listed + 1 counted since it read the version; the next
/// one, with no create, the listing alone. Fails if a refresh overwrote the
/// count with its listing regardless (a key made during it could be lost
/// from the count), kept a higher count it cannot vouch for, or never set
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_sets_the_key_count_to_its_listing_plus_the_creates_counted_meanwhile() {
    let env = AwsEnv::isolated(1).await;
    env.emu.hand_made_key("console-1", true).await;
    env.emu.hand_made_key("console-2", false).await;
    let mut config = env.emu.config(CredentialKind::ApiKey);
    config.aws.index_refresh_secs = 2;
    let app = env.spawn(&config).await;
    // The first load creates the item from its listing.
    eventually("the count item is made", || async {
        key_count(&env).await == Some((2, 0))
    })
    .await;
    // A count the listing contradicts (deletes are not subtracted): set.
    set_key_count(&env, 50, 7).await;
    eventually("the count follows the listing", || async {
        key_count(&env).await == Some((2, 7))
    })
    .await;

    // The next listing is held 2 s; a create counts one key meanwhile.
    env.proxy.reset_calls();
    env.proxy
        .fail("GetApiKeys", Fault::Delay(Duration::from_secs(2)), 1);
    eventually("the refresh is listing", || async {
        env.proxy.faulted("GetApiKeys") == 1
    })
    .await;
    // Refreshes run one after another: what the proxy saw so far is the
    // earlier ones', the held one's recount comes after.
    let before = env.proxy.requests().len();
    set_key_count(&env, 50, 8).await;
    eventually("the held refresh set the count", || async {
        let calls = env.proxy.requests();
        calls[before..]
            .iter()
            .any(|c| c.operation == "PutItem" && c.status == 200)
    })
    .await;
    // Read before the next refresh, 2 s later.
    assert_eq!(
        key_count(&env).await,
        Some((3, 8)),
        "the listing plus the create counted during it"
    );
    eventually("the next refresh counts the listing alone", || async {
        key_count(&env).await == Some((2, 8))
    })
    .await;
    app.stop().await;
}

/// The claim's transaction applied by AWS, its answer lost on the way back
/// (once, then on every attempt): the SDK's retry finds the claim its own
/// (or, when every answer is lost, the create asks the table), the reader
/// is answered the key, and the key is counted once. Fails if a retry
/// counted it again, or took the claim for another's and deleted the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_the_counting_claim_counts_the_key_once() {
    let env = AwsEnv::isolated(1).await;
    let app = provisioning_replica(&env).await;
    for (n, times) in [(1u64, 1), (2, 2)] {
        env.proxy.fail("TransactWriteItems", Fault::Lost, times);
        let reader = format!("lost{n}@corp.com");
        let body = app.login_ok(&reader).await;
        let key = shown_key(StatusCode::OK, &body).unwrap();
        assert_eq!(env.proxy.faulted("TransactWriteItems"), n as usize * 2 - 1);
        let in_aws = key_values(&env).await;
        assert!(in_aws.contains(&key), "{reader}'s key is gone");
        assert_eq!(in_aws.len() as u64, n);
        assert_eq!(key_count(&env).await.map(|(keys, _)| keys), Some(n));
    }
    app.stop().await;
}

/// A role without `dynamodb:UpdateItem` (a policy from before the count):
/// the counting claim is refused as AWS refuses it (400
/// `AccessDeniedException`, injected by the proxy: moto enforces no IAM),
/// and the create claims as before, without counting. First logins keep
/// working; the ceiling holds per replica only (a warning says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_update_item_a_create_claims_without_counting() {
    let env = AwsEnv::isolated(1).await;
    let app = provisioning_replica(&env).await;
    env.proxy.fail(
        "TransactWriteItems",
        Fault::Status(400, "AccessDeniedException"),
        1,
    );
    let body = app.login_ok("denied@corp.com").await;
    let key = shown_key(StatusCode::OK, &body).unwrap();
    assert_eq!(env.proxy.faulted("TransactWriteItems"), 1);
    assert_eq!(key_values(&env).await, BTreeSet::from([key]));
    assert_eq!(env.claims().await.len(), 1, "the app is claimed");
    assert_eq!(key_count(&env).await, Some((0, 0)), "nothing counted");
    app.stop().await;
}

/// DynamoDB cancels a transaction when another one on the same item is
/// under way (every create of every replica updates the count item): the
/// claim is tried again, and the key counted once, when it goes through.
/// The cancellations are the proxy's (moto never contends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_cancelled_by_a_concurrent_transaction_is_tried_again() {
    let env = AwsEnv::isolated(1).await;
    let app = provisioning_replica(&env).await;
    let contended = Fault::Cancelled(&["None", "TransactionConflict"]);
    env.proxy.fail("TransactWriteItems", contended, 3);
    let body = app.login_ok("contended@corp.com").await;
    let key = shown_key(StatusCode::OK, &body).unwrap();
    assert_eq!(env.proxy.faulted("TransactWriteItems"), 3);
    assert_eq!(env.proxy.count("TransactWriteItems"), 4);
    assert_eq!(key_values(&env).await, BTreeSet::from([key]));
    assert_eq!(key_count(&env).await, Some((1, 1)));
    app.stop().await;
}
