//! `keyhook audit` on the AWS backend, against moto: an account seeded
//! straight through the SDK with one case of every finding kind (as keyhook,
//! an earlier version, a person in the console or a half-done create would
//! have left it), beside healthy credentials and rotations; the audit runs
//! from a provider that was only built (`AwsProvider::new`, as `keyhook
//! audit` does before keyhook is deployed), through the counting proxy.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use keyhook::credentials::aws::AwsProvider;
use keyhook::credentials::{CredentialKind, CredentialProvider, Finding};

use crate::harness::emulator::AwsEnv;

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;
/// The operations an audit may call: reads only.
const READS: [&str; 6] = [
    "GetApiKeys",
    "ListUserPoolClients",
    "DescribeUserPoolClient",
    "Scan",
    "GetUsagePlans",
    "GetUsagePlanKeys",
];

fn now_ms() -> u64 {
    keyhook::clock::now_ms() as u64
}

/// What the account holds, made straight in moto.
struct Seeder<'a> {
    env: &'a AwsEnv,
}

impl Seeder<'_> {
    /// A key named `name` with `tags` and `customer_id`, on `plans`: its id.
    async fn key(
        &self,
        name: &str,
        tags: &[(&str, &str)],
        customer_id: Option<String>,
        plans: &[&String],
    ) -> String {
        let mut request = self
            .env
            .apigw
            .create_api_key()
            .name(name)
            .description("label")
            .enabled(true)
            .set_customer_id(customer_id);
        for (tag, value) in tags {
            request = request.tags(*tag, *value);
        }
        let id = request.send().await.unwrap().id().unwrap().to_string();
        for plan in plans {
            self.env
                .apigw
                .create_usage_plan_key()
                .usage_plan_id(*plan)
                .key_id(&id)
                .key_type("API_KEY")
                .send()
                .await
                .unwrap();
        }
        id
    }

    /// A key keyhook made for app `hash`, on `plans`, with `more` tags.
    async fn app_key(&self, hash: &str, more: &[(&str, &str)], plans: &[&String]) -> String {
        let table = self.env.seed.claim_table.as_str();
        let mut tags = vec![
            ("keyhook:app", hash),
            ("keyhook:origin", "sensedia"),
            ("keyhook:claim", table),
        ];
        tags.extend_from_slice(more);
        self.key("dev@corp.com", &tags, None, plans).await
    }

    /// An app client named as keyhook names it, with `fields` after a space.
    async fn client(&self, hash: &str, fields: &str) -> String {
        let name = format!("kh.{hash}.Label.dev@corp.com{fields}");
        let made = self
            .env
            .cognito
            .create_user_pool_client()
            .user_pool_id(&self.env.seed.pool_id)
            .client_name(name)
            .generate_secret(true)
            .send()
            .await
            .unwrap();
        made.user_pool_client()
            .unwrap()
            .client_id()
            .unwrap()
            .to_string()
    }

    async fn claim(&self, kind: &str, hash: &str, holder: &str) {
        self.env
            .dynamodb
            .put_item()
            .table_name(&self.env.seed.claim_table)
            .item("app", AttributeValue::S(format!("{kind}#aws:{hash}")))
            .item("credential", AttributeValue::S(holder.to_string()))
            .send()
            .await
            .unwrap();
    }
}

/// The provider `keyhook audit` builds: clients only, no index, no
/// refresh; its clock an hour ahead, so that what was just seeded is older
/// than the grace a create in flight is given.
fn provider(env: &AwsEnv) -> AwsProvider {
    let config = env.config(CredentialKind::ClientCredentials);
    let ahead: keyhook::clock::Clock = Arc::new(|| keyhook::clock::now_ms() + HOUR as i64);
    AwsProvider::new(
        &config.aws,
        Some(env.seed.plans[0].clone()),
        &env.keyhook_sdk(),
        ahead,
    )
}

fn kinds(findings: &[Finding]) -> BTreeSet<(String, String)> {
    findings
        .iter()
        .map(|f| (f.kind.as_str().to_string(), f.credential_id.clone()))
        .collect()
}

fn expect(pairs: &[(&str, &String)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(kind, id)| (kind.to_string(), id.to_string()))
        .collect()
}

#[tokio::test]
async fn an_audit_finds_one_case_of_every_kind_and_a_repair_leaves_only_what_a_person_must_decide()
{
    let env = AwsEnv::isolated(2).await;
    let (plan0, plan1) = (&env.seed.plans[0], &env.seed.plans[1]);
    let seed = Seeder { env: &env };
    let now = now_ms();
    let (soon, later, past) = (
        now + HOUR / 2,
        (now + DAY).to_string(),
        (now - 60_000).to_string(),
    );

    // Healthy: an app's key; a rotation in its grace (claimed by the
    // successor); a key with an end date to come; a client with its
    // companion key; a client in the pool that keyhook did not make.
    let healthy = seed.app_key("a000000000000001", &[], &[plan0]).await;
    seed.claim("api_key", "a000000000000001", &healthy).await;
    let pred = seed.app_key("a000000000000002", &[], &[plan0]).await;
    let succ = seed
        .app_key(
            "a000000000000002",
            &[("keyhook:replaces", &pred), ("keyhook:until", &later)],
            &[plan0],
        )
        .await;
    seed.claim("api_key", "a000000000000002", &succ).await;
    let ending = seed
        .key(
            "dev@corp.com",
            &[("keyhook:app", "a000000000000003")],
            Some(format!("keyhook:expires={}", now + DAY)),
            &[plan0],
        )
        .await;
    let client = seed.client("a000000000000004", "").await;
    let companion = seed
        .app_key("a000000000000004", &[("keyhook:client", &client)], &[plan0])
        .await;
    let client_successor = seed
        .client("a000000000000004", &format!(" r={client} u={later}"))
        .await;
    let foreign_client = env
        .cognito
        .create_user_pool_client()
        .user_pool_id(&env.seed.pool_id)
        .client_name("web app")
        .send()
        .await
        .unwrap();
    assert!(foreign_client.user_pool_client().is_some());

    // One of every kind.
    let unmanaged = seed.key("hand@corp.com", &[], None, &[plan0]).await;
    let unnamed = seed.key("prod key", &[], None, &[]).await;
    let kept = seed.app_key("d000000000000001", &[], &[plan0]).await;
    let duplicate = seed.app_key("d000000000000001", &[], &[plan0]).await;
    seed.claim("api_key", "d000000000000001", &kept).await;
    let first_client = seed.client("d000000000000002", "").await;
    let second_client = seed.client("d000000000000002", "").await;
    let (kept_client, extra_client) = match first_client < second_client {
        true => (first_client, second_client),
        false => (second_client, first_client),
    };
    let extra_companion = seed
        .app_key(
            "d000000000000002",
            &[("keyhook:client", &extra_client)],
            &[plan0],
        )
        .await;
    // A rotation whose successor is on no plan: its predecessor's plan.
    let planless_pred = seed.app_key("b000000000000001", &[], &[plan1]).await;
    let planless = seed
        .app_key(
            "b000000000000001",
            &[
                ("keyhook:replaces", &planless_pred),
                ("keyhook:until", &later),
            ],
            &[],
        )
        .await;
    // Alone on no plan: the default plan.
    let planless_alone = seed.app_key("b000000000000002", &[], &[]).await;
    let orphan = seed
        .app_key(
            "c000000000000001",
            &[("keyhook:client", "gone-client")],
            &[plan0],
        )
        .await;
    let expired = seed
        .key(
            "dev@corp.com",
            &[("keyhook:app", "e000000000000001")],
            Some(format!("keyhook:expires={}", now - 1)),
            &[plan0],
        )
        .await;
    // A predecessor whose grace (on its successor) has ended.
    let expired_pred = seed.app_key("e000000000000002", &[], &[plan0]).await;
    let expired_succ = seed
        .app_key(
            "e000000000000002",
            &[
                ("keyhook:replaces", &expired_pred),
                ("keyhook:until", &past),
            ],
            &[plan0],
        )
        .await;
    let expired_client = seed.client("e000000000000003", &format!(" e={soon}")).await;

    let keyhook = provider(&env);
    env.proxy.paginate_api_keys(4);
    env.proxy.reset_calls();
    let audit_at = now + HOUR;
    let findings = keyhook.audit(audit_at).await.unwrap();
    assert_eq!(
        kinds(&findings),
        expect(&[
            ("unmanaged", &unmanaged),
            ("unnamed", &unnamed),
            ("duplicate", &duplicate),
            ("duplicate", &extra_client),
            ("planless", &planless),
            ("planless", &planless_alone),
            ("orphan", &orphan),
            ("expired", &expired),
            ("expired", &expired_pred),
            ("expired", &expired_client),
        ]),
        "{findings:#?}"
    );
    for call in env.proxy.calls() {
        assert!(
            READS.contains(&call.0.as_str()),
            "the audit called {call:?}"
        );
    }
    assert!(env.proxy.pages_served() > 1, "GetApiKeys was paged");
    let described = env.proxy.count("DescribeUserPoolClient");
    assert_eq!(
        described,
        4,
        "only the clients of apps with several: {:?}",
        env.proxy.counts()
    );

    // Each repair is also an audit event by actor `audit`
    // (`telemetry::audit::by`); a thread-local log capture here misses
    // events while the rest of this binary runs, so the events are not read
    // back in this test.
    let repairs = keyhook.repair(&findings).await.unwrap();
    let repaired: BTreeSet<(String, String)> = repairs
        .iter()
        .map(|r| (r.action.clone(), r.credential_id.clone()))
        .collect();
    assert_eq!(
        repaired,
        expect(&[
            ("deleted", &duplicate),
            ("deleted", &extra_client),
            ("attached", &planless),
            ("attached", &planless_alone),
            ("deleted", &orphan),
            ("revoked", &expired),
            ("revoked", &expired_pred),
            ("revoked", &expired_client),
        ])
    );
    for gone in [
        &duplicate,
        &extra_companion,
        &orphan,
        &expired,
        &expired_pred,
    ] {
        assert!(!env.key_exists(gone).await, "{gone}");
    }
    for kept in [
        &healthy,
        &pred,
        &succ,
        &ending,
        &companion,
        &unmanaged,
        &unnamed,
        &kept,
        &planless_pred,
        &expired_succ,
    ] {
        assert!(env.key_exists(kept).await, "{kept}");
    }
    let clients: BTreeSet<String> = env.clients().await.into_iter().map(|(id, _)| id).collect();
    assert!(!clients.contains(&extra_client) && !clients.contains(&expired_client));
    assert!(
        clients.contains(&kept_client)
            && clients.contains(&client)
            && clients.contains(&client_successor)
    );
    assert_eq!(env.plans_of(&planless).await, vec![plan1.as_str()]);
    assert_eq!(env.plans_of(&planless_alone).await, vec![plan0.as_str()]);

    // What is left is for a person.
    let again = keyhook.audit(audit_at).await.unwrap();
    assert_eq!(
        kinds(&again),
        expect(&[("unmanaged", &unmanaged), ("unnamed", &unnamed)]),
        "{again:#?}"
    );
    assert_eq!(keyhook.repair(&again).await.unwrap(), []);
}

/// With `KEYHOOK_REVOKE=disable`, an expired key is disabled, not deleted,
/// and a disabled key is nothing to repair: a second audit is clean.
#[tokio::test]
async fn an_expired_key_is_revoked_as_keyhook_revoke_says() {
    let env = AwsEnv::isolated(1).await;
    let seed = Seeder { env: &env };
    let expired = seed
        .key(
            "dev@corp.com",
            &[("keyhook:app", "e000000000000001")],
            Some(format!("keyhook:expires={}", now_ms() - 1)),
            &[&env.seed.plans[0]],
        )
        .await;
    let mut config = env.config(CredentialKind::ApiKey);
    config.aws.revoke = keyhook::credentials::aws::settings::RevokeMode::Disable;
    config.aws.cognito_user_pool_id = None;
    let keyhook = AwsProvider::new(
        &config.aws,
        None,
        &env.keyhook_sdk(),
        keyhook::clock::system(),
    );
    let findings = keyhook.audit(now_ms()).await.unwrap();
    assert_eq!(kinds(&findings), expect(&[("expired", &expired)]));
    let repairs = keyhook.repair(&findings).await.unwrap();
    assert_eq!(repairs.len(), 1);
    assert_eq!(repairs[0].action, "revoked");
    let key = env
        .apigw
        .get_api_key()
        .api_key(&expired)
        .send()
        .await
        .unwrap();
    assert!(!key.enabled(), "disabled, kept for the record");
    assert_eq!(keyhook.audit(now_ms()).await.unwrap(), []);
}

/// How many keys the audit benchmark seeds.
const BENCH_KEYS: usize = 10_000;

/// The `i`th key of the benchmark's account (`findings_tests.rs`'s
/// in-memory one has the same shape): every 50th made by hand, every
/// 100th on no plan, every 20th a rotation's successor of the key before
/// it, every 200th a duplicate of such a pair; its id.
async fn bench_key(seed: &Seeder<'_>, i: usize, predecessor: &str) -> String {
    let app_of = |i: usize| match i % 200 {
        2 => i - 2,
        _ if i % 20 == 1 => i - 1,
        _ => i,
    };
    let app = format!("{:016x}", app_of(i));
    let plan = &seed.env.seed.plans[i % seed.env.seed.plans.len()];
    let plans: &[&String] = match i % 100 {
        98 => &[],
        _ => &[plan],
    };
    let tags: Vec<(&str, &str)> = match (i % 50, i % 20) {
        (49, _) => vec![],
        (_, 1) => vec![("keyhook:app", &app), ("keyhook:replaces", predecessor)],
        _ => vec![("keyhook:app", &app)],
    };
    seed.key(&format!("reader{i}@corp.com"), &tags, None, plans)
        .await
}

/// The audit of 10,000 keys: its wall time, the AWS calls it makes, and
/// keyhook's own time apart from the emulator's. moto answers every
/// `GetApiKeys` with the whole account, which the test proxy pages (500
/// a page, as AWS does): each page costs moto a listing of all 10,000, so
/// the emulator's share is measured by making the same reads with the SDK
/// alone, through the same proxy. Prints figures; asserts no time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: seeds 10,000 keys in moto (minutes); run with --ignored --nocapture"]
async fn an_audit_of_ten_thousand_keys_prints_its_time_and_calls() {
    let env = Arc::new(AwsEnv::isolated(3).await);
    let started = std::time::Instant::now();
    // Predecessors first: a successor is tagged with its predecessor's id.
    let mut ids = vec![String::new(); BENCH_KEYS];
    for successors in [false, true] {
        let mut tasks = tokio::task::JoinSet::new();
        let gate = Arc::new(tokio::sync::Semaphore::new(16));
        for i in (0..BENCH_KEYS).filter(|i| (i % 20 == 1) == successors) {
            let (env, gate) = (env.clone(), gate.clone());
            let predecessor = ids[i.saturating_sub(1)].clone();
            tasks.spawn(async move {
                let _turn = gate.acquire_owned().await.unwrap();
                (i, bench_key(&Seeder { env: &env }, i, &predecessor).await)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, id) = done.unwrap();
            ids[i] = id;
        }
    }
    println!(
        "seeded {BENCH_KEYS} keys ({} plans) in {:.1} s, 16 calls in flight",
        env.seed.plans.len(),
        started.elapsed().as_secs_f64()
    );

    env.proxy.paginate_api_keys(500);
    let mut config = env.config(CredentialKind::ApiKey);
    config.aws.cognito_user_pool_id = None;
    // moto lists all 10,000 keys for every page: no attempt is cut short,
    // nor retried.
    config.aws.timeout_secs = 120;
    config.aws.max_attempts = 1;
    reads_alone(&env, "before").await;
    for (label, rate) in [
        ("no rate limit", 1000.0),
        ("default KEYHOOK_AWS_RATE_LIMIT=5", 5.0),
    ] {
        config.aws.rate_limit = rate;
        // An hour ahead: the keys just seeded count as settled.
        let ahead: keyhook::clock::Clock = Arc::new(|| keyhook::clock::now_ms() + HOUR as i64);
        let keyhook = AwsProvider::new(&config.aws, None, &env.keyhook_sdk(), ahead);
        env.proxy.reset_calls();
        let started = std::time::Instant::now();
        let findings = keyhook.audit(now_ms() + HOUR).await.unwrap();
        let took = started.elapsed();
        let calls: usize = env.proxy.counts().values().sum();
        let mut kinds = std::collections::BTreeMap::new();
        for finding in &findings {
            *kinds.entry(finding.kind.as_str()).or_insert(0) += 1;
        }
        println!(
            "audit ({label}): {:.2} s, findings {kinds:?}, {calls} AWS calls {:?}",
            took.as_secs_f64(),
            env.proxy.counts()
        );
    }

    reads_alone(&env, "after").await;
}

/// The audit's reads of API Gateway made with the SDK alone, through the
/// same proxy: the emulator's (and the SDK's) share of an audit.
async fn reads_alone(env: &AwsEnv, when: &str) {
    env.proxy.reset_calls();
    let sdk = aws_sdk_apigateway::Client::new(&env.keyhook_sdk());
    let started = std::time::Instant::now();
    let mut position: Option<String> = None;
    let mut listed = 0;
    loop {
        let page = sdk
            .get_api_keys()
            .include_values(false)
            .limit(500)
            .set_position(position.clone())
            .send()
            .await
            .unwrap();
        listed += page.items().len();
        match page.position() {
            Some(next) if !next.is_empty() => position = Some(next.to_string()),
            _ => break,
        }
    }
    let keys_took = started.elapsed();
    let plans = sdk.get_usage_plans().limit(500).send().await.unwrap();
    for plan in plans.items() {
        let keys = sdk
            .get_usage_plan_keys()
            .usage_plan_id(plan.id().unwrap())
            .limit(500)
            .send()
            .await
            .unwrap();
        assert!(!keys.items().is_empty());
    }
    let reads_took = started.elapsed();
    println!(
        "the same reads alone ({when}; emulator, proxy, SDK): {:.2} s ({listed} keys in {:.2} s, then the plans), {} calls",
        reads_took.as_secs_f64(),
        keys_took.as_secs_f64(),
        env.proxy.counts().values().sum::<usize>()
    );
}
