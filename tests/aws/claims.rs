//! The claim table (`KEYHOOK_CLAIM_TABLE`, `src/credentials/aws/claims.rs`)
//! against moto, read directly: what a refresh settles (credentials made
//! before the table adopted, orphans deleted, other deployments' keys left
//! alone), and claims whose credential is gone (deleted by hand, or revoked
//! while the release failed) released.
//!
//! A refresh lists every key of the account and settles what it may, so
//! each test runs in a moto account of its own (`Emulator::isolated`): no
//! other test's keyhook settles its keys, nor it theirs.
//!
//! Settling waits until a credential is older than a create can take
//! (`3 × KEYHOOK_AWS_TIMEOUT_SECS + 10 s`, 13 s here) and starts with the
//! second refresh. moto dates keys by the real clock, so the test that needs
//! old keys makes them all first, waits once, then runs its cases on one
//! process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keyhook::credentials::aws::app_key;
use keyhook::credentials::{AppId, CredentialKind, Email};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::emulator::{app, AwsEnv, Emulator};
use crate::harness::metrics::Metrics;
use crate::harness::process::{aws_env, portals_env};
use crate::harness::proxy::Fault;
use crate::harness::{ApiClient, Process};

/// `KEYHOOK_AWS_TIMEOUT_SECS` of the settling test: the grace is 13 s.
const TIMEOUT_SECS: u64 = 1;
const GRACE: Duration = Duration::from_secs(3 * TIMEOUT_SECS + 10);
/// Generous bound on what a refresh every second settles or releases.
const SETTLED_WITHIN: Duration = Duration::from_secs(40);
const POLL: Duration = Duration::from_millis(300);
/// The table of a deployment sharing the account.
const OTHER_TABLE: &str = "another-deployment-claims";

/// The claim of `app`'s API key, as the table keys it.
fn claim_of(app: &AppId) -> String {
    format!(
        "{}#aws:{}",
        CredentialKind::ApiKey.as_str(),
        app_key(app).hash()
    )
}

fn slug(slug: &str) -> AppId {
    AppId::sensedia_slug(slug)
}

fn reader(email: &str) -> AppId {
    AppId::readme_reader(&Email::parse(email).unwrap())
}

/// A key for `app` of `owner`, made straight in moto as keyhook tags it
/// (`keyhook:app`, `keyhook:origin`, and `keyhook:claim` = `table` when
/// given: without it, as the version before the table made it), on the
/// seed's plan: (id, value).
async fn key_for(
    emu: &Emulator,
    owner: &str,
    app: &AppId,
    origin: &str,
    table: Option<&str>,
) -> (String, String) {
    let hash = app_key(app).hash().to_string();
    let mut tags = vec![("keyhook:app", hash.as_str()), ("keyhook:origin", origin)];
    tags.extend(table.map(|table| ("keyhook:claim", table)));
    emu.tagged_key(owner, "App", &tags).await
}

/// Two pre-table keys for one Sensedia app: (first made, second made). AWS
/// dates keys in whole seconds, so they are made more than a second apart;
/// the second is made again until its id sorts first, so that keeping the
/// smallest id (what a create without the table keeps among keys of one
/// second) keeps the wrong one.
async fn first_and_second(
    emu: &Emulator,
    owner: &str,
    app: &AppId,
) -> ((String, String), (String, String)) {
    let first = key_for(emu, owner, app, "sensedia", None).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    loop {
        let second = key_for(emu, owner, app, "sensedia", None).await;
        if second.0 < first.0 {
            return (first, second);
        }
        emu.apigw
            .delete_api_key()
            .api_key(&second.0)
            .send()
            .await
            .unwrap();
    }
}

/// The key values a login shows, sorted.
async fn shown(server: &ApiClient, owner: &str) -> Vec<String> {
    let mut values: Vec<String> = server
        .visible_keys(owner)
        .await
        .iter()
        .map(|k| k["apiKey"].as_str().unwrap().to_string())
        .collect();
    values.sort();
    values
}

fn sorted<const N: usize>(values: [&str; N]) -> Vec<String> {
    let mut values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    values.sort();
    values
}

/// Polls `done` until it holds, failing after [`SETTLED_WITHIN`] with `what`.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + SETTLED_WITHIN;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "not within {SETTLED_WITHIN:?}: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// One account holding, before keyhook first runs with the table:
/// - (case 1) app `adopt-a` with two keys the previous version made, which
///   a create is then sent for; app `adopt-b` likewise, with no create (the
///   refresh adopts it); a ReadMe reader's own key;
/// - (case 4) app `else-d` with two keys tagged with another deployment's
///   table;
/// - (case 5) app `orphan-e` with a key tagged with this table and never
///   claimed (its create failed).
///
/// Once all are older than the grace, keyhook starts, refreshing every
/// second. From the first login on, each pre-table app and the reader are
/// shown their first made key, and the other table's keys are shown as they
/// are; the orphan never is. A create for `adopt-a` answers its first made
/// key. The settling refresh then claims the first made keys, deletes the
/// second ones and the orphan (counted), releases the orphan's settling
/// claim, and leaves the other table's keys unclaimed and in place.
///
/// Fails on: a create or refresh keeping the smallest id rather than the
/// first made; a login hiding pre-table keys until they are claimed; a
/// settle that deletes or claims another table's keys, or never deletes
/// the orphans; a settling claim left behind; a deletion not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settling_refresh_adopts_pre_table_keys_deletes_orphans_and_leaves_other_tables_keys() {
    let env = AwsEnv::isolated(1).await;
    let table = env.seed.claim_table.clone();
    let (dev_a, dev_b) = ("adopt-a@claims.io", "adopt-b@claims.io");
    let (app_a, app_b) = (slug("adopt-a"), slug("adopt-b"));
    let (dev_r, app_r) = ("reader@claims.io", reader("reader@claims.io"));
    let (dev_d, app_d) = ("else-d@claims.io", slug("else-d"));
    let (dev_e, app_e) = ("orphan-e@claims.io", slug("orphan-e"));

    let ((a1, a2), (b1, b2)) = tokio::join!(
        first_and_second(&env, dev_a, &app_a),
        first_and_second(&env, dev_b, &app_b)
    );
    let r = key_for(&env, dev_r, &app_r, "readme", None).await;
    let d1 = key_for(&env, dev_d, &app_d, "sensedia", Some(OTHER_TABLE)).await;
    let d2 = key_for(&env, dev_d, &app_d, "sensedia", Some(OTHER_TABLE)).await;
    let e = key_for(&env, dev_e, &app_e, "sensedia", Some(&table)).await;
    // All older than the grace before the first load: keys made before the
    // table are that old when it is introduced.
    tokio::time::sleep(GRACE + Duration::from_secs(2)).await;

    let mut vars = aws_env(&env.proxy.endpoint);
    vars.extend(portals_env());
    vars.extend([
        ("AWS_ACCESS_KEY_ID", env.access_key.clone()),
        ("KEYHOOK_CLAIM_TABLE", table.clone()),
        ("KEYHOOK_INDEX_REFRESH_SECS", "1".into()),
        ("KEYHOOK_AWS_TIMEOUT_SECS", TIMEOUT_SECS.to_string()),
        ("KEYHOOK_METRICS_LISTEN", "127.0.0.1:0".into()),
        ("RUST_LOG", "warn".into()),
    ]);
    let mut server = Process::spawn(&vars);
    server.wait_for("/readyz").await;

    // What every login shows, from the first on, before and after settling.
    let shows_throughout = || async {
        assert_eq!(shown(&server, dev_r).await, sorted([&r.1]), "the reader");
        assert_eq!(shown(&server, dev_a).await, sorted([&a1.1]), "adopt-a");
        assert_eq!(shown(&server, dev_b).await, sorted([&b1.1]), "adopt-b");
        assert_eq!(
            shown(&server, dev_d).await,
            sorted([&d1.1, &d2.1]),
            "else-d"
        );
        assert_eq!(
            shown(&server, dev_e).await,
            Vec::<String>::new(),
            "orphan-e"
        );
    };
    shows_throughout().await;
    let created = server
        .create(&app(
            dev_a,
            "adopt-a",
            &env.seed.api_id,
            &[&env.seed.plans[0]],
        ))
        .await;
    assert_eq!(created["apiKeyId"], json!(a1.0), "{created}");
    assert_eq!(created["apiKey"], json!(a1.1));

    eventually("the second made keys and the orphan deleted", || async {
        shows_throughout().await;
        let gone = [&a2.0, &b2.0, &e.0];
        let mut left = Vec::new();
        for id in gone {
            if env.key_exists(id).await {
                left.push(id);
            }
        }
        left.is_empty()
    })
    .await;
    // A refresh that began after the deletions has finished: it would
    // have settled `else-d` by now, were it to.
    let settled_at = (std::time::SystemTime::now())
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    eventually("a refresh after the deletions", || async {
        let metrics = Metrics::read(&server).await;
        metrics.sum("keyhook_owner_index_confirmed_timestamp_seconds", &[]) > settled_at
    })
    .await;
    shows_throughout().await;

    let expected = BTreeMap::from([
        (claim_of(&app_a), a1.0.clone()),
        (claim_of(&app_b), b1.0.clone()),
        (claim_of(&app_r), r.0.clone()),
    ]);
    // No item for `else-d` (another table's), nor for `orphan-e` (its
    // settling claim released).
    assert_eq!(env.claims().await, expected);
    for id in [&a1.0, &b1.0, &r.0, &d1.0, &d2.0] {
        assert!(env.key_exists(id).await, "{id} was deleted");
    }
    let metrics = Metrics::read(&server).await;
    assert_eq!(
        metrics.cleanups("api_key", "deleted"),
        3.0,
        "adopt-a's and adopt-b's second keys and the orphan: {metrics:?}"
    );
    server.terminate();
    assert!(server.wait().success());
}

/// keyhook in process on its own moto account, refreshing every
/// `refresh_secs`.
async fn in_process(env: &AwsEnv, refresh_secs: u64) -> crate::harness::TestApp {
    let mut config = env.config(CredentialKind::ApiKey);
    config.aws.index_refresh_secs = refresh_secs;
    env.spawn(&config).await
}

/// The app `slug`'s create request, for the seed's API and plan.
fn create_request(env: &AwsEnv, developer: &str, slug: &str) -> Value {
    app(developer, slug, &env.seed.api_id, &[&env.seed.plans[0]])
}

async fn revoke(server: &ApiClient, id: &str) -> StatusCode {
    let body = json!({"apiKeyId": id, "credentialType": "API_KEY"});
    server.sensedia("revokeCredentials", &body).await.status()
}

/// Deletes a key straight in moto, as an operator in the console would.
async fn delete_by_hand(env: &AwsEnv, id: &str) {
    env.apigw.delete_api_key().api_key(id).send().await.unwrap();
}

/// (2a) A create for an app whose claimed key an operator deleted answers a
/// new key, which the table then names; a create trusting the claim
/// answers the deleted one. The refresh is an hour: only the create can
/// release the claim.
#[tokio::test]
async fn a_create_for_an_app_whose_claimed_key_is_gone_answers_a_new_one() {
    let env = AwsEnv::isolated(1).await;
    let server = in_process(&env, 3600).await;
    let (dev, slug_) = ("gone-a@claims.io", "gone-a");
    let first = server.create(&create_request(&env, dev, slug_)).await;
    let first_id = first["apiKeyId"].as_str().unwrap().to_string();
    let key = claim_of(&slug(slug_));
    assert_eq!(env.claims().await.get(&key), Some(&first_id));

    delete_by_hand(&env, &first_id).await;
    let again = server.create(&create_request(&env, dev, slug_)).await;
    let new_id = again["apiKeyId"].as_str().unwrap().to_string();
    assert_ne!(new_id, first_id, "{again}");
    let held = env.keys_named(dev).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].id(), Some(new_id.as_str()));
    assert_eq!(again["apiKey"].as_str(), held[0].value());
    assert_eq!(env.claims().await.get(&key), Some(&new_id));
    server.stop().await;
}

/// (2b) With no create, a refresh releases the claim of a key deleted by
/// hand, while the app has another key (made to be claimed, young: a
/// create in flight): the app's item disappears.
#[tokio::test]
async fn a_refresh_releases_the_claim_of_a_key_that_is_gone_beside_another_of_its_app() {
    refresh_releases_a_stale_claim("gone-b", true).await;
}

/// (2b) As above, with nothing else left of the app: the item disappears,
/// and nothing is made in its place.
#[tokio::test]
async fn a_refresh_releases_the_claim_of_a_key_that_is_gone() {
    refresh_releases_a_stale_claim("gone-c", false).await;
}

async fn refresh_releases_a_stale_claim(slug_: &str, beside: bool) {
    let env = AwsEnv::isolated(1).await;
    let server = in_process(&env, 1).await;
    let dev = format!("{slug_}@claims.io");
    let made = server.create(&create_request(&env, &dev, slug_)).await;
    let id = made["apiKeyId"].as_str().unwrap().to_string();
    let key = claim_of(&slug(slug_));
    assert_eq!(env.claims().await.get(&key), Some(&id));

    let table = env.seed.claim_table.clone();
    let other = match beside {
        true => Some(
            key_for(&env, &dev, &slug(slug_), "sensedia", Some(&table))
                .await
                .0,
        ),
        false => None,
    };
    delete_by_hand(&env, &id).await;
    eventually("the stale claim released", || async {
        !env.claims().await.contains_key(&key)
    })
    .await;
    let left: Vec<String> = (env.keys_named(&dev).await)
        .iter()
        .filter_map(|k| k.id().map(str::to_string))
        .filter(|k| Some(k) != other.as_ref())
        .collect();
    assert!(left.is_empty(), "made in its place: {left:?}");
    server.stop().await;
}

/// (3) A revoke releases its app's claim. A revoke whose release fails
/// (every `DeleteItem` answered 500) still answers 204 and leaves the item;
/// the app's next create then answers a new key and claims it, where one
/// trusting the stale claim would answer the revoked key. The refresh is
/// an hour: only the create can release the claim.
#[tokio::test]
async fn a_revoke_releases_the_claim_and_a_failed_release_is_healed_by_the_next_create() {
    let env = AwsEnv::isolated(1).await;
    let server = in_process(&env, 3600).await;
    let dev = "revoke@claims.io";

    let made = server.create(&create_request(&env, dev, "rev-a")).await;
    let id = made["apiKeyId"].as_str().unwrap();
    let key_a = claim_of(&slug("rev-a"));
    assert_eq!(env.claims().await.get(&key_a).map(String::as_str), Some(id));
    assert_eq!(revoke(&server, id).await, StatusCode::NO_CONTENT);
    assert!(!env.claims().await.contains_key(&key_a));

    let made = server.create(&create_request(&env, dev, "rev-b")).await;
    let revoked = made["apiKeyId"].as_str().unwrap().to_string();
    let key_b = claim_of(&slug("rev-b"));
    env.proxy.fail(
        "DeleteItem",
        Fault::Status(500, "InternalServerError"),
        1000,
    );
    assert_eq!(revoke(&server, &revoked).await, StatusCode::NO_CONTENT);
    assert!(
        env.proxy.faulted("DeleteItem") > 0,
        "the release met no fault"
    );
    env.proxy.clear_faults();
    assert!(!env.key_exists(&revoked).await);
    assert_eq!(env.claims().await.get(&key_b), Some(&revoked));

    let again = server.create(&create_request(&env, dev, "rev-b")).await;
    let new_id = again["apiKeyId"].as_str().unwrap().to_string();
    assert_ne!(new_id, revoked, "{again}");
    assert!(env.key_exists(&new_id).await);
    assert_eq!(env.claims().await.get(&key_b), Some(&new_id));
    server.stop().await;
}

/// Without a claim table keyhook says, at start and in `keyhook check`,
/// that one credential per app holds with one replica only; with one,
/// `check` proves the table's four calls.
#[tokio::test]
async fn without_a_claim_table_keyhook_says_several_replicas_need_one() {
    let emu = Emulator::new(1).await;
    let mut env = aws_env(&emu.endpoint);
    env.extend(portals_env());
    env.push(("RUST_LOG", "info".into()));
    let server = Process::spawn(&env);
    let warning = server.wait_for_log(
        "no claim table (KEYHOOK_CLAIM_TABLE): one credential per app holds with one replica \
         only; run several replicas only with a claim table",
    );
    assert_eq!(warning["level"], "WARN", "{warning}");
    drop(server);

    let check = |extra: Option<(&'static str, String)>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_keyhook"));
        command.arg("check").env_clear();
        for (name, value) in env.iter().chain(extra.iter()) {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = check(None);
    assert!(ok, "{text}");
    assert!(
        text.contains("no claim table (KEYHOOK_CLAIM_TABLE): exact with one replica only"),
        "{text}"
    );
    let table = emu.seed.claim_table.clone();
    let (ok, text) = check(Some(("KEYHOOK_CLAIM_TABLE", table.clone())));
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("claim table {table} can be read and written")),
        "{text}"
    );
    let (ok, text) = check(Some(("KEYHOOK_CLAIM_TABLE", "no-such-table".into())));
    assert!(!ok, "a missing table passes `check`: {text}");
    assert!(text.contains("no-such-table"), "{text}");
}
