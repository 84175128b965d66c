//! The credential lifecycle on the AWS backend against moto: rotation
//! (API keys and Cognito app clients), end dates, the sweeper across two
//! keyhook processes, a provisioned key's lifetime, and a rotation failing
//! half-way. Rotations and end dates are made through the provider's own
//! trait methods (`AwsProvider` on the emulator, as the admin listener
//! calls them), logins and Sensedia calls over real sockets.
//!
//! Every test runs in a moto account of its own: its keyhooks refresh and
//! settle, and must not settle another test's keys.

use std::time::{Duration, Instant};

use keyhook::clock;
use keyhook::config::Config;
use keyhook::credentials::aws::{app_key, AwsProvider};
use keyhook::credentials::{
    AppId, CredentialError, CredentialKind, CredentialProvider, CredentialSpec, Email, Origin,
    Revoked,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::emulator::{app, AwsEnv};
use crate::harness::process::{aws_env, portals_env};
use crate::harness::proxy::Fault;
use crate::harness::{ApiClient, Process};

/// Generous bound on what a refresh every second makes visible or sweeps.
const WITHIN: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);
const HOUR_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    clock::now_ms() as u64
}

/// Polls `done` until it holds, failing after [`WITHIN`] with `what`.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WITHIN;
    while !done().await {
        assert!(Instant::now() < deadline, "not within {WITHIN:?}: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the wall clock has passed `end_ms`.
async fn until_past(end_ms: u64) {
    let now = now_ms();
    if now <= end_ms {
        tokio::time::sleep(Duration::from_millis(end_ms - now + 50)).await;
    }
}

/// A provider on `env` (through its proxy) with `config`'s settings and
/// no background work: what an operator's call reaches.
fn provider(env: &AwsEnv, config: &Config) -> AwsProvider {
    let plan = env.seed.plans.first().cloned();
    AwsProvider::new(&config.aws, plan, &env.keyhook_sdk(), clock::system())
}

/// (name, key value) of each key a login shows, in order.
async fn shown(server: &ApiClient, owner: &str) -> Vec<(String, String)> {
    server
        .visible_keys(owner)
        .await
        .iter()
        .map(|k| {
            let value = k["user"].as_str().or(k["apiKey"].as_str()).unwrap_or("");
            (k["name"].as_str().unwrap().to_string(), value.to_string())
        })
        .collect()
}

fn tag<'a>(key: &'a aws_sdk_apigateway::types::ApiKey, name: &str) -> Option<&'a str> {
    key.tags().and_then(|t| t.get(name)).map(String::as_str)
}

/// A keyhook process on `env` with its claim table, refreshing and
/// sweeping every second, provisioning readers' keys with a lifetime.
fn replica(env: &AwsEnv) -> Process {
    let mut vars = aws_env(&env.proxy.endpoint);
    vars.extend(portals_env());
    vars.extend([
        ("AWS_ACCESS_KEY_ID", env.access_key.clone()),
        ("KEYHOOK_CLAIM_TABLE", env.seed.claim_table.clone()),
        ("KEYHOOK_INDEX_REFRESH_SECS", "1".into()),
        ("KEYHOOK_AWS_TIMEOUT_SECS", "5".into()),
        ("KEYHOOK_README_PROVISION", "true".into()),
        ("KEYHOOK_README_PROVISION_TTL_SECS", "60".into()),
        ("KEYHOOK_USAGE_PLAN_ID", env.seed.plans[0].clone()),
        ("RUST_LOG", "warn,keyhook::audit=info".into()),
    ]);
    Process::spawn(&vars)
}

/// The JSON log events of `process` that mention `id`.
fn events_about(process: &Process, id: &str) -> Vec<Value> {
    process
        .logs()
        .lines()
        .filter(|line| line.contains(id))
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Two replicas share one account and claim table; an operator rotates a
/// Sensedia app's key through a third provider. The successor is made on
/// the same plans with the same owner, label and app, tagged with what it
/// replaces and until when; each replica's login shows it first and the
/// predecessor labelled with its end within the refresh bound; the
/// portal's next create answers the successor; a second rotation of the
/// predecessor, and one of the successor while the predecessor is held,
/// are refused naming the other. An end date set on the predecessor a few
/// seconds ahead hides it on both replicas once passed, and it is swept
/// exactly once (one `revoked` event across both logs, no warning or
/// error about it on either). A reader's provisioned key carries its
/// lifetime in `customerId`; once its (brought forward) end passes, the
/// next login on the other replica provisions a fresh key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_shows_on_both_replicas_and_an_expiry_is_swept_once() {
    let env = AwsEnv::isolated(1).await;
    let plan = env.seed.plans[0].clone();
    let (mut a, mut b) = (replica(&env), replica(&env));
    a.wait_for("/readyz").await;
    b.wait_for("/readyz").await;
    let operator = provider(&env, &env.config(CredentialKind::ApiKey));
    let (dev, slug) = ("rotate@life.io", "rotate-a");
    let body = app(dev, slug, &env.seed.api_id, &[&plan]);

    let created = a.create(&body).await;
    let k1 = created["apiKeyId"].as_str().unwrap().to_string();
    let v1 = created["apiKey"].as_str().unwrap().to_string();
    let until = now_ms() + HOUR_MS;
    let rotation = operator.rotate(&k1, until).await.unwrap();
    let s = rotation.successor.clone();
    assert_ne!(s.id, k1);
    assert_eq!(s.replaces.as_deref(), Some(k1.as_str()));
    assert_eq!(s.owner, Email::parse(dev).unwrap());
    assert_eq!(s.label, "App rotate-a");
    assert_eq!(rotation.predecessor.expires_at_ms, Some(until));

    // In AWS: the successor on the same plans, tagged as the same app,
    // with what it replaces and until when; the predecessor untouched.
    let keys = env.keys_named(dev).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let key = |id: &str| keys.iter().find(|k| k.id() == Some(id)).unwrap().clone();
    let (pred_key, succ_key) = (key(&k1), key(&s.id));
    assert_eq!(env.plans_of(&s.id).await, vec![plan.clone()]);
    assert_eq!(env.plans_of(&k1).await, vec![plan.clone()]);
    assert_eq!(tag(&succ_key, "keyhook:app"), tag(&pred_key, "keyhook:app"));
    assert_eq!(tag(&succ_key, "keyhook:origin"), Some("sensedia"));
    assert_eq!(tag(&succ_key, "keyhook:replaces"), Some(k1.as_str()));
    let until_tag = until.to_string();
    assert_eq!(tag(&succ_key, "keyhook:until"), Some(until_tag.as_str()));
    assert_eq!(succ_key.description(), Some("App rotate-a"));
    assert_eq!(tag(&pred_key, "keyhook:replaces"), None);
    assert!(pred_key.enabled() && pred_key.customer_id().unwrap_or("").is_empty());

    // Rotating either again is refused, naming the other.
    match operator.rotate(&k1, until).await {
        Err(CredentialError::Invalid(why)) => assert!(why.contains(&s.id), "{why}"),
        other => panic!("rotating a rotated key: {other:?}"),
    }
    match operator.rotate(&s.id, until).await {
        Err(CredentialError::Invalid(why)) => assert!(why.contains(&k1), "{why}"),
        other => panic!("rotating a successor in grace: {other:?}"),
    }
    assert_eq!(
        env.keys_named(dev).await.len(),
        2,
        "nothing made by a refusal"
    );

    // Each replica's login: the successor, then the predecessor with its end.
    let sv = s.secret_value();
    for (name, replica) in [("a", &a), ("b", &b)] {
        eventually(&format!("replica {name} shows the rotation"), || async {
            let keys = shown(replica, dev).await;
            keys.len() == 2
                && keys[0] == ("App rotate-a".to_string(), sv.clone())
                && keys[1].1 == v1
                && keys[1].0.starts_with("App rotate-a (until ")
                && keys[1].0.ends_with(" UTC)")
        })
        .await;
    }
    // The portal's next create for the app answers the successor.
    let again = a.create(&body).await;
    assert_eq!(again["apiKeyId"], s.id.as_str());
    assert_eq!(again["apiKey"], sv.as_str());

    // An end for the predecessor: never cleared nor pushed past the grace
    // while the successor holds it; brought forward to a few seconds ahead.
    for refused in [None, Some(until + 1)] {
        let outcome = operator.set_expiry(&k1, refused).await;
        assert!(
            matches!(outcome, Err(CredentialError::Invalid(_))),
            "{outcome:?}"
        );
    }
    let end = now_ms() + 5_000;
    let ended = operator.set_expiry(&k1, Some(end)).await.unwrap();
    assert_eq!(ended.expires_at_ms, Some(end));
    assert_eq!(
        key_customer_id(&env, &k1).await.as_deref(),
        Some(format!("keyhook:expires={end}").as_str())
    );
    until_past(end).await;
    for replica in [&a, &b] {
        let keys = shown(replica, dev).await;
        assert_eq!(keys, [("App rotate-a".to_string(), sv.clone())]);
    }
    eventually("the expired key is swept", || async {
        !env.key_exists(&k1).await
    })
    .await;
    // Both replicas have swept at least once more since.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let revoked: Vec<Value> = [&a, &b]
        .iter()
        .flat_map(|p| events_about(p, &k1))
        .filter(|e| e["action"] == "revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["requested_by"], "sweeper");
    for replica in [&a, &b] {
        let noisy: Vec<Value> = events_about(replica, &k1)
            .into_iter()
            .filter(|e| matches!(e["level"].as_str(), Some("WARN" | "ERROR")))
            .collect();
        assert!(noisy.is_empty(), "{noisy:?}");
    }
    // The successor is simply the app's credential now.
    assert!(env.key_exists(&s.id).await);
    assert_eq!(a.create(&body).await["apiKeyId"], s.id.as_str());

    // A provisioned key carries its lifetime; past its end, a fresh one.
    let reader = "reader@life.io";
    let first = shown(&a, reader).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let provisioned = env.keys_named(reader).await;
    let r1 = provisioned[0].id().unwrap().to_string();
    let lifetime = end_of(provisioned[0].customer_id().unwrap_or(""));
    let started = now_ms();
    assert!(
        lifetime.is_some_and(|end| end > started && end <= started + 60_000),
        "{lifetime:?}"
    );
    let end = now_ms() + 2_000;
    operator.set_expiry(&r1, Some(end)).await.unwrap();
    until_past(end).await;
    eventually("a fresh key at the next login after the end", || async {
        let keys = shown(&b, reader).await;
        keys.len() == 1 && keys[0].1 != first[0].1
    })
    .await;
    eventually("the expired provisioned key is gone", || async {
        !env.key_exists(&r1).await
    })
    .await;
    let keys = env.keys_named(reader).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(end_of(keys[0].customer_id().unwrap_or("")).is_some());
    a.terminate();
    b.terminate();
}

fn end_of(customer_id: &str) -> Option<u64> {
    customer_id.strip_prefix("keyhook:expires=")?.parse().ok()
}

async fn key_customer_id(env: &AwsEnv, id: &str) -> Option<String> {
    let key = env.apigw.get_api_key().api_key(id).send().await.unwrap();
    key.customer_id().map(str::to_string)
}

trait SecretValue {
    fn secret_value(&self) -> String;
}

impl SecretValue for keyhook::credentials::Credential {
    fn secret_value(&self) -> String {
        match &self.secret {
            keyhook::credentials::Secret::ApiKey { value } => value.expose().clone(),
            keyhook::credentials::Secret::ClientCredentials { client_secret, .. } => {
                client_secret.expose().clone()
            }
        }
    }
}

/// A Cognito app client is rotated by a successor client (moto cannot add
/// a second secret to a client): same owner, label and scopes, named with
/// the client it replaces and until when, with its own companion key on
/// the predecessor's plan. A login shows both, the successor first; a
/// Sensedia revoke of the app removes both clients and both companion keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_is_shown_beside_its_predecessor_and_revoked_with_it() {
    let env = AwsEnv::isolated(1).await;
    let plan = env.seed.plans[0].clone();
    let mut config = env.config(CredentialKind::ClientCredentials);
    config.aws.client_api_key = true;
    config.aws.index_refresh_secs = 1;
    let server = env.spawn(&config).await;
    let operator = provider(&env, &config);
    let (dev, slug) = ("client@life.io", "client-a");
    let created = server
        .create(&app(dev, slug, &env.seed.api_id, &[&plan]))
        .await;
    let c1 = created["clientId"].as_str().unwrap().to_string();

    let until = now_ms() + HOUR_MS;
    let rotation = operator.rotate(&c1, until).await.unwrap();
    let c2 = rotation.successor.id.clone();
    assert_eq!(rotation.successor.replaces.as_deref(), Some(c1.as_str()));
    let (pred, succ) = (env.client(&c1).await, env.client(&c2).await);
    assert_eq!(pred.allowed_o_auth_scopes(), succ.allowed_o_auth_scopes());
    let name = succ.client_name().unwrap();
    assert!(
        name.ends_with(&format!(" r={c1} u={until}")),
        "successor named {name}"
    );
    assert!(!pred.client_name().unwrap().contains(' '));
    let companions = env.keys_named(dev).await;
    assert_eq!(companions.len(), 2, "{companions:?}");
    let companion = companions
        .iter()
        .find(|k| tag(k, "keyhook:client") == Some(c2.as_str()))
        .expect("the successor's companion key");
    assert_eq!(env.plans_of(companion.id().unwrap()).await, vec![plan]);

    eventually(
        "the login shows both clients, the successor first",
        || async {
            let keys = shown(&server, dev).await;
            keys.len() == 2 && keys[0].1 == c2 && keys[1].1 == c1 && keys[1].0.contains("(until ")
        },
    )
    .await;

    let revoke = json!({"appSlug": slug, "developer": dev, "credentialType": "CLIENT_CREDENTIALS"});
    let response = server.sensedia("revokeCredentials", &revoke).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(env.clients_of(dev).await.is_empty());
    assert!(env.keys_named(dev).await.is_empty());
    assert_eq!(server.login_keys(dev).await, Err(StatusCode::NOT_FOUND));
    server.stop().await;
}

/// A rotation whose successor cannot be attached to its plan fails, and
/// leaves the predecessor as it was (enabled, on its plan, holding the
/// app's claim, no end date) and no successor in AWS; once the fault is
/// gone the same rotation succeeds and the claim moves to the successor.
/// A hand-made key is never rotated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_failing_half_way_leaves_the_predecessor_as_it_was() {
    let env = AwsEnv::isolated(1).await;
    let plan = env.seed.plans[0].clone();
    let config = env.config(CredentialKind::ApiKey);
    let operator = provider(&env, &config);
    let dev = "halfway@life.io";
    let spec = CredentialSpec {
        kind: CredentialKind::ApiKey,
        owner: Email::parse(dev).unwrap(),
        app: AppId::sensedia_slug("halfway"),
        label: "Half way".into(),
        origin: Origin::Sensedia,
        api_ids: vec![env.seed.api_id.clone()],
        usage_plans: vec![plan.clone()],
        expires_at_ms: None,
    };
    let (k1, _) = operator.create(&spec).await.unwrap();
    let claim = format!("api_key#aws:{}", app_key(&spec.app).hash());
    assert_eq!(env.claims().await.get(&claim), Some(&k1.id));

    env.proxy.fail(
        "CreateUsagePlanKey",
        Fault::Status(400, "BadRequestException"),
        10,
    );
    let outcome = operator.rotate(&k1.id, now_ms() + HOUR_MS).await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(env.proxy.faulted("CreateUsagePlanKey") > 0);
    env.proxy.clear_faults();
    let keys = env.keys_named(dev).await;
    assert_eq!(keys.len(), 1, "no successor left: {keys:?}");
    assert_eq!(keys[0].id(), Some(k1.id.as_str()));
    assert!(keys[0].enabled());
    assert!(keys[0].customer_id().unwrap_or("").is_empty());
    assert_eq!(env.plans_of(&k1.id).await, vec![plan.clone()]);
    assert_eq!(env.claims().await.get(&claim), Some(&k1.id));

    let rotation = operator.rotate(&k1.id, now_ms() + HOUR_MS).await.unwrap();
    assert_eq!(env.claims().await.get(&claim), Some(&rotation.successor.id));
    assert_eq!(env.plans_of(&rotation.successor.id).await, vec![plan]);
    // An operator's revoke by id takes one credential: the successor's
    // claim is handed back to the predecessor still in its grace.
    let revoked = operator.revoke_by_id(&rotation.successor.id).await.unwrap();
    assert!(matches!(revoked, Revoked::Revoked(_)), "{revoked:?}");
    assert_eq!(env.claims().await.get(&claim), Some(&k1.id));

    let (hand_made, _) = env.tagged_key("hand@life.io", "Mine", &[]).await;
    match operator.rotate(&hand_made, now_ms() + HOUR_MS).await {
        Err(CredentialError::Invalid(_)) => {}
        other => panic!("rotating a hand-made key: {other:?}"),
    }
    assert_eq!(env.keys_named("hand@life.io").await.len(), 1);
}

/// Two providers on one claim table sweep the same expired key at once,
/// in each revoke mode: exactly one reports it. Deleting, AWS decides (the
/// loser's delete finds nothing); disabling (a disabled key can be
/// disabled again), the table's conditional `swept#<id>` item does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sweeping_one_expired_key_revoke_it_once_in_either_mode() {
    use keyhook::credentials::aws::settings::RevokeMode;
    let env = AwsEnv::isolated(1).await;
    for (mode, name) in [
        (RevokeMode::Delete, "delete"),
        (RevokeMode::Disable, "disable"),
    ] {
        let mut config = env.config(CredentialKind::ApiKey);
        config.aws.revoke = mode;
        let (one, two) = (provider(&env, &config), provider(&env, &config));
        let dev = format!("sweep-{name}@life.io");
        let spec = CredentialSpec {
            kind: CredentialKind::ApiKey,
            owner: Email::parse(&dev).unwrap(),
            app: AppId::sensedia_slug(&format!("sweep-{name}")),
            label: "Swept".into(),
            origin: Origin::Sensedia,
            api_ids: Vec::new(),
            usage_plans: vec![env.seed.plans[0].clone()],
            expires_at_ms: None,
        };
        let (key, _) = one.create(&spec).await.unwrap();
        let end = now_ms() + 1_000;
        // Each learns the end (and indexes the key) as a refresh would.
        one.set_expiry(&key.id, Some(end)).await.unwrap();
        two.set_expiry(&key.id, Some(end)).await.unwrap();
        assert!(
            one.sweep(end - 1).await.unwrap().is_empty(),
            "{name}: not yet"
        );
        let (a, b) = tokio::join!(one.sweep(end), two.sweep(end));
        let swept: Vec<String> = a
            .unwrap()
            .into_iter()
            .chain(b.unwrap())
            .map(|c| c.id)
            .collect();
        assert_eq!(swept.as_slice(), std::slice::from_ref(&key.id), "{name}");
        let left = env.keys_named(&dev).await;
        match mode {
            RevokeMode::Delete => assert!(left.is_empty(), "{left:?}"),
            RevokeMode::Disable => {
                assert_eq!(left.len(), 1);
                assert!(!left[0].enabled());
            }
        }
        // Swept is swept: nothing more to report on either.
        assert!(one.sweep(end + 1).await.unwrap().is_empty());
        assert!(two.sweep(end + 1).await.unwrap().is_empty());
    }
}

/// A portal create that hands a rotated app to another developer moves
/// both its successor and its predecessor in grace: the previous
/// developer's login shows neither, the new one's both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_moving_a_rotated_app_moves_both_of_its_keys() {
    let env = AwsEnv::isolated(1).await;
    let plan = env.seed.plans[0].clone();
    let mut config = env.config(CredentialKind::ApiKey);
    config.aws.index_refresh_secs = 1;
    let server = env.spawn(&config).await;
    let operator = provider(&env, &config);
    let (dev, next, slug) = ("first@life.io", "second@life.io", "moved-a");
    let created = server
        .create(&app(dev, slug, &env.seed.api_id, &[&plan]))
        .await;
    let k1 = created["apiKeyId"].as_str().unwrap().to_string();
    let k2 = operator
        .rotate(&k1, now_ms() + HOUR_MS)
        .await
        .unwrap()
        .successor
        .id;
    eventually("the portal's create answers the successor", || async {
        let answer = server
            .create(&app(dev, slug, &env.seed.api_id, &[&plan]))
            .await;
        answer["apiKeyId"] == k2.as_str()
    })
    .await;

    let moved = server
        .create(&app(next, slug, &env.seed.api_id, &[&plan]))
        .await;
    assert_eq!(moved["apiKeyId"], k2.as_str());
    let mut renamed: Vec<String> = (env.keys_named(next).await.iter())
        .map(|k| k.id().unwrap().to_string())
        .collect();
    renamed.sort();
    let mut both = vec![k1.clone(), k2.clone()];
    both.sort();
    assert_eq!(renamed, both);
    assert!(env.keys_named(dev).await.is_empty());
    assert_eq!(shown(&server, next).await.len(), 2);
    server.stop().await;
}
