//! Answers lost after AWS applied the call (issue #10, item 4).
//!
//! The common real failure of a write to AWS is not a refusal before it is
//! applied but a reset after: AWS made the API key or the app client, and
//! the answer never came back. The SDK then retries a call that is not
//! idempotent, and keyhook may hold a second credential, or a clean-up it
//! believes failed. The proxy's `Fault::Lost` forwards the call to moto
//! (applied) and closes the connection without answering; a test of its own
//! checks the fault itself.
//!
//! The table covers the create, attach and clean-up calls of the three
//! create paths (a Sensedia API-key create, a provisioning ReadMe login, a
//! Sensedia client create with its companion key), with the answer lost
//! once (the SDK's own retry goes through) and on every attempt (keyhook
//! answers an error). Clean-ups are brought about by refusing (400, once)
//! the call after the credential was made, while the clean-up's own answer
//! is lost, or while it fails outright (500 on every attempt).
//!
//! After each fault the portal sends the same request until it gets a 200
//! (a few times at most), and once more (a retry of a create whose 200 it
//! did not read); then moto, read directly, must hold exactly one credential
//! for the app, the one both 200s named, on the requested usage plan: one
//! API key tagged with the app (`keyhook:app`), or one app client named for
//! the app and one companion key tagged with that client (`keyhook:client`).
//! Each case has its own proxy and owner, so cases run side by side.
//!
//! Where the clean-up failed outright, what it left must be gone once
//! keyhook's refresh has run, the portal retrying or not, and the
//! clean-ups counted in `keyhook_aws_cleanups_total{kind,outcome}`: those
//! cases run the real binary (its `/metrics` is its own; in process the
//! recorder is shared by every test of the binary), refreshing every second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_apigateway::types::ApiKey;
use keyhook::config::Config;
use keyhook::credentials::aws::app_key;
use keyhook::credentials::{AppId, CredentialKind, Email};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::cases::all_pass;
use crate::harness::client::ApiClient;
use crate::harness::emulator::{app, Emulator};
use crate::harness::metrics::Metrics;
use crate::harness::process::{aws_env, portals_env};
use crate::harness::proxy::{Fault, Proxy};
use crate::harness::{Process, TestApp};

/// How many times the portal sends a request before it gives up.
const PORTAL_TRIES: usize = 4;
const PORTAL_PAUSE: Duration = Duration::from_millis(200);
/// A create whose answer is lost once makes two credentials, and which one
/// keyhook keeps can be a coin toss (AWS dates have whole seconds, then ids
/// are random): tried this many times, each on an app of its own, a defect
/// showing one time in four is caught nine times in ten.
const TRIALS: usize = 8;
/// Generous bound on keyhook's refresh removing a failed clean-up's
/// leftover (the refresh runs every second), and how often it is looked for.
const REFRESH_SECS: u64 = 1;
const CLEANED_WITHIN: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);

const REFUSED: Fault = Fault::Status(400, "BadRequestException");
const UNAVAILABLE: Fault = Fault::Status(500, "InternalServerError");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Sensedia `createCredentials`, an API key on one plan.
    KeyCreate,
    /// A first-time reader's ReadMe login, provisioning on.
    Provision,
    /// Sensedia `createCredentials`, an app client with a companion key.
    ClientCreate,
}

use Flow::*;

impl Flow {
    fn kind(self) -> CredentialKind {
        match self {
            ClientCreate => CredentialKind::ClientCredentials,
            KeyCreate | Provision => CredentialKind::ApiKey,
        }
    }
}

/// How many calls of the operation meet the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Times {
    /// The first: the SDK's retry of it goes through.
    Once,
    /// Every one until keyhook answers the portal's first request.
    Every,
}

/// One case: on `flow`, `fault` on `op` (`times`), after `refused` (if
/// any) was refused once so that keyhook has something to clean up.
#[derive(Debug, Clone)]
struct Row {
    flow: Flow,
    refused: Option<&'static str>,
    op: &'static str,
    fault: Fault,
    times: Times,
}

/// The create calls of each create path (the companion key's too).
const CREATES: [(Flow, &str); 4] = [
    (KeyCreate, "CreateApiKey"),
    (Provision, "CreateApiKey"),
    (ClientCreate, "CreateUserPoolClient"),
    (ClientCreate, "CreateApiKey"),
];

/// The attach call of each create path.
const ATTACHES: [(Flow, &str); 3] = [
    (KeyCreate, "CreateUsagePlanKey"),
    (Provision, "CreateUsagePlanKey"),
    (ClientCreate, "CreateUsagePlanKey"),
];

/// The clean-ups: a call refused after the credential was made, and the
/// clean-up call it leads to (`create.rs`, `apigateway.rs`: a refused
/// attach deletes the key; a client whose companion key cannot be made is
/// deleted).
const CLEANUPS: [(Flow, &str, &str); 5] = [
    (KeyCreate, "CreateUsagePlanKey", "DeleteApiKey"),
    (Provision, "CreateUsagePlanKey", "DeleteApiKey"),
    (ClientCreate, "CreateApiKey", "DeleteUserPoolClient"),
    (ClientCreate, "CreateUsagePlanKey", "DeleteApiKey"),
    (ClientCreate, "CreateUsagePlanKey", "DeleteUserPoolClient"),
];

fn lost(rows: impl IntoIterator<Item = (Flow, Option<&'static str>, &'static str)>) -> Vec<Row> {
    let mut table = Vec::new();
    for (flow, refused, op) in rows {
        for times in [Times::Once, Times::Every] {
            table.push(Row {
                flow,
                refused,
                op,
                fault: Fault::Lost,
                times,
            });
        }
    }
    table
}

fn lost_writes(writes: &[(Flow, &'static str)]) -> Vec<Row> {
    lost(writes.iter().map(|&(flow, op)| (flow, None, op)))
}

fn lost_cleanups() -> Vec<Row> {
    lost(CLEANUPS.map(|(flow, refused, op)| (flow, Some(refused), op)))
}

fn failed_cleanups() -> Vec<Row> {
    CLEANUPS
        .map(|(flow, refused, op)| Row {
            flow,
            refused: Some(refused),
            op,
            fault: UNAVAILABLE,
            times: Times::Every,
        })
        .to_vec()
}

/// What the credential an answer names is: ids (a Sensedia answer) or the
/// key's value (a login, which shows no id).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    key: Option<String>,
    key_value: Option<String>,
    client: Option<String>,
}

/// What moto holds for one case's owner, read directly.
struct Held {
    keys: Vec<ApiKey>,
    clients: Vec<(String, String)>,
}

impl Held {
    fn ids(&self) -> Vec<String> {
        let keys = self.keys.iter().filter_map(|k| k.id().map(str::to_string));
        keys.chain(self.clients.iter().map(|(id, _)| id.clone()))
            .collect()
    }
}

/// One case's app and owner, on an emulator of its own.
struct Case {
    emu: Arc<Emulator>,
    /// With the claim table (else one replica without it).
    claims: bool,
    row: Row,
    owner: String,
    slug: String,
}

impl Case {
    fn new(row: Row, tag: &str, n: &str, emu: Arc<Emulator>) -> Case {
        let op = row.op.to_lowercase();
        Case {
            claims: true,
            owner: format!("{tag}{n}-{op}@{:?}.lost.io", row.flow).to_lowercase(),
            slug: format!("{tag}-{n}-{op}"),
            emu,
            row,
        }
    }

    fn label(&self) -> String {
        let row = &self.row;
        let refused = row
            .refused
            .map(|r| format!("{r} refused, then "))
            .unwrap_or_default();
        format!(
            "{:?} / {refused}{:?} on {} ({:?})",
            row.flow, row.fault, row.op, row.times
        )
    }

    /// The in-process keyhook for this case.
    fn config(&self) -> Config {
        let mut config = self.emu.config(self.row.flow.kind());
        if !self.claims {
            config.aws.claim_table = None;
        }
        config.aws.client_api_key = true;
        if self.row.flow == Provision {
            config.readme.provision = true;
            config.readme.usage_plan_id = Some(self.emu.seed.plans[0].clone());
        }
        config
    }

    /// The same as environment variables, for the real binary refreshing
    /// every [`REFRESH_SECS`], with `/metrics` on a port of its own.
    fn env(&self, proxy: &Proxy) -> Vec<(&'static str, String)> {
        let seed = &self.emu.seed;
        let mut env = aws_env(&proxy.endpoint);
        env.extend(portals_env());
        env.extend([
            ("KEYHOOK_INDEX_REFRESH_SECS", REFRESH_SECS.to_string()),
            ("KEYHOOK_AWS_TIMEOUT_SECS", "2".into()),
            ("KEYHOOK_AWS_MAX_ATTEMPTS", "2".into()),
            ("KEYHOOK_METRICS_LISTEN", "127.0.0.1:0".into()),
            ("KEYHOOK_CLAIM_TABLE", seed.claim_table.clone()),
            ("RUST_LOG", "warn".into()),
        ]);
        match self.row.flow {
            KeyCreate => {}
            Provision => env.extend([
                ("KEYHOOK_README_PROVISION", "true".into()),
                ("KEYHOOK_USAGE_PLAN_ID", seed.plans[0].clone()),
            ]),
            ClientCreate => env.extend([
                (
                    "KEYHOOK_SENSEDIA_CREDENTIAL_TYPE",
                    "client_credentials".into(),
                ),
                ("KEYHOOK_COGNITO_USER_POOL_ID", seed.pool_id.clone()),
                ("KEYHOOK_COGNITO_DOMAIN", "https://auth.keyhook.test".into()),
                ("KEYHOOK_COGNITO_SCOPES", seed.scopes[0].clone()),
                ("KEYHOOK_CLIENT_API_KEY", "true".into()),
            ]),
        }
        env
    }

    /// Arms the proxy: the refusal that makes keyhook clean up, then the
    /// fault itself.
    fn arm(&self, proxy: &Proxy) {
        let row = &self.row;
        if let Some(refused) = row.refused {
            proxy.fail(refused, REFUSED, 1);
        }
        let times = match row.times {
            Times::Once => 1,
            Times::Every => usize::MAX,
        };
        proxy.fail(row.op, row.fault.clone(), times);
    }

    /// The portal's request: the create, or the reader's login.
    async fn request(&self, server: &ApiClient) -> (StatusCode, Value) {
        let response = match self.row.flow {
            Provision => server.login(&self.owner).await,
            KeyCreate | ClientCreate => {
                let seed = &self.emu.seed;
                let body = app(&self.owner, &self.slug, &seed.api_id, &[&seed.plans[0]]);
                server.sensedia("createCredentials", &body).await
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The portal sends the request until it gets a 200 (`first` was its
    /// first answer): what that 200 names.
    async fn retried_until_ok(
        &self,
        server: &ApiClient,
        first: (StatusCode, Value),
    ) -> Result<Named, String> {
        let mut answer = first;
        for _ in 1..PORTAL_TRIES {
            if answer.0 == StatusCode::OK {
                break;
            }
            tokio::time::sleep(PORTAL_PAUSE).await;
            answer = self.request(server).await;
        }
        match answer {
            (StatusCode::OK, body) => self.named(&body),
            (status, body) => Err(format!(
                "no 200 in {PORTAL_TRIES} tries; the last answer: {status} {body}"
            )),
        }
    }

    /// What a 200 names.
    fn named(&self, body: &Value) -> Result<Named, String> {
        let text = |v: &Value| v.as_str().map(str::to_string);
        let named = match self.row.flow {
            KeyCreate => Named {
                key: text(&body["apiKeyId"]),
                key_value: text(&body["apiKey"]),
                client: None,
            },
            Provision => match body["keys"].as_array().map(Vec::as_slice) {
                Some([key]) => Named {
                    key: None,
                    key_value: text(&key["apiKey"]),
                    client: None,
                },
                _ => return Err(format!("the login shows other than one key: {body}")),
            },
            ClientCreate => Named {
                key: text(&body["customCredentials"]["apiKeyId"]),
                key_value: text(&body["customCredentials"]["apiKey"]),
                client: text(&body["clientId"]),
            },
        };
        match named.key_value {
            Some(_) => Ok(named),
            None => Err(format!("the 200 names no API key: {body}")),
        }
    }

    /// The app's identity as keyhook tags its keys and names its clients.
    fn app_hash(&self) -> String {
        let app = match self.row.flow {
            Provision => AppId::readme_reader(&Email::parse(&self.owner).unwrap()),
            KeyCreate | ClientCreate => AppId::sensedia_slug(&self.slug),
        };
        app_key(&app).hash().to_string()
    }

    async fn held(&self) -> Held {
        Held {
            keys: self.emu.keys_named(&self.owner).await,
            clients: self.emu.clients_of(&self.owner).await,
        }
    }

    /// Exactly one credential for the app in AWS, the one `named`, on the
    /// requested plan; `Err` says what is there instead.
    async fn one_credential(&self, named: &Named) -> Result<(), String> {
        let held = self.held().await;
        let hash = self.app_hash();
        let tag = |key: &ApiKey, name: &str| key.tags().and_then(|t| t.get(name)).cloned();
        let described = || {
            let keys: Vec<_> = held.keys.iter().map(|k| (k.id(), k.tags())).collect();
            format!("keys {keys:?}, clients {:?}", held.clients)
        };
        let [key] = held.keys.as_slice() else {
            return Err(format!("not one API key for the app: {}", described()));
        };
        if tag(key, "keyhook:app").as_deref() != Some(hash.as_str()) {
            return Err(format!(
                "the key is not tagged with the app: {}",
                described()
            ));
        }
        if self.row.flow == ClientCreate {
            let [(client_id, client_name)] = held.clients.as_slice() else {
                return Err(format!("not one app client for the app: {}", described()));
            };
            if !client_name.starts_with(&format!("kh.{hash}.")) {
                return Err(format!(
                    "the client is not named for the app: {}",
                    described()
                ));
            }
            if tag(key, "keyhook:client").as_ref() != Some(client_id) {
                return Err(format!("the key is not the client's: {}", described()));
            }
            if named.client.as_ref() != Some(client_id) {
                return Err(format!(
                    "the 200 named {named:?}; AWS holds {}",
                    described()
                ));
            }
        } else if !held.clients.is_empty() {
            return Err(format!("an app client for an API-key app: {}", described()));
        }
        let id = key.id().unwrap_or_default();
        let same_id = named.key.as_deref().is_none_or(|named| named == id);
        if !same_id || named.key_value.as_deref() != key.value() {
            return Err(format!(
                "the 200 named {named:?}; AWS holds {}",
                described()
            ));
        }
        let plans = self.emu.plans_of(id).await;
        if plans != [self.emu.seed.plans[0].clone()] {
            return Err(format!("the key {id} is on plans {plans:?}"));
        }
        Ok(())
    }

    /// After the fault: the portal's retries, a 200, and the same 200 again
    /// for a repeat; what they name.
    async fn converge(
        &self,
        server: &ApiClient,
        first: (StatusCode, Value),
    ) -> Result<Named, String> {
        let named = self.retried_until_ok(server, first).await?;
        let again = self
            .retried_until_ok(server, self.request(server).await)
            .await?;
        if again != named {
            return Err(format!("a repeat named {again:?}, the first 200 {named:?}"));
        }
        Ok(named)
    }

    /// A lost answer, on keyhook in process: once the portal has its 200,
    /// AWS holds the one credential it names.
    async fn run_lost(self) -> Result<(), String> {
        let proxy = self.emu.proxy().await;
        let server = TestApp::spawn_ready(&self.config(), &proxy.endpoint).await;
        self.arm(&proxy);
        let first = self.request(&server).await;
        proxy.clear_faults();
        let result = async {
            let faulted = proxy.faulted(self.row.op);
            if faulted == 0 {
                return Err(format!("no call of {} met the fault", self.row.op));
            }
            let named = self.converge(&server, first).await?;
            self.one_credential(&named).await
        }
        .await;
        server.stop().await;
        result.map_err(|e| format!("{}: {e}", self.label()))
    }

    /// A clean-up that failed outright, on the real binary: what it left is
    /// gone after keyhook's refresh, and counted. `retries`: whether the
    /// portal retries (else nothing may be left for the app).
    async fn run_failed_cleanup(self, retries: bool) -> Result<(), String> {
        let proxy = self.emu.proxy().await;
        let mut server = Process::spawn(&self.env(&proxy));
        server.wait_for("/readyz").await;
        self.arm(&proxy);
        let first = self.request(&server).await;
        proxy.clear_faults();
        let result = async {
            if first.0 == StatusCode::OK {
                return Err(format!("the first request answered 200: {}", first.1));
            }
            // The fault must have met the clean-up (a 500 on every
            // attempt: the delete never reached moto), or this case tests
            // nothing. What it left may already be gone: a refresh runs
            // every second.
            let left = self.held().await.ids();
            if proxy.faulted(self.row.op) == 0 {
                return Err(format!(
                    "the clean-up never met the fault ({} faulted 0 times; AWS holds {left:?})",
                    self.row.op,
                ));
            }
            let named = match retries {
                true => Some(self.converge(&server, first).await?),
                false => None,
            };
            let deadline = Instant::now() + CLEANED_WITHIN;
            let converged = loop {
                let now = match &named {
                    Some(named) => self.one_credential(named).await,
                    None => match self.held().await.ids() {
                        ids if ids.is_empty() => Ok(()),
                        ids => Err(format!("the app's create failed, yet AWS holds {ids:?}")),
                    },
                };
                if now.is_ok() || Instant::now() > deadline {
                    break now;
                }
                tokio::time::sleep(POLL).await;
            };
            converged.map_err(|e| format!("{CLEANED_WITHIN:?} later: {e}"))?;
            let survivors = self.held().await.ids();
            // Gone since we looked, or already when we looked (a refresh
            // finished the failed clean-up first): either way, counted.
            let deleted = left.is_empty() || left.iter().any(|id| !survivors.contains(id));
            let kind = match self.row.op {
                "DeleteUserPoolClient" => "app_client",
                _ => "api_key",
            };
            let metrics = Metrics::read(&server).await;
            if proxy.faulted(self.row.op) > 0 && metrics.cleanups(kind, "failed") < 1.0 {
                return Err(format!("the failed clean-up is not counted: {metrics:?}"));
            }
            if deleted && metrics.cleanups(kind, "deleted") < 1.0 {
                return Err(format!(
                    "the leftover's deletion is not counted: {metrics:?}"
                ));
            }
            Ok(())
        }
        .await;
        result.map_err(|e| format!("{} (portal retries: {retries}): {e}", self.label()))
    }
}

/// Runs `run` on every case of `rows` (a create whose answer is lost once
/// [`TRIALS`] times),
/// `parallel` at a time, each row on an emulator of its own; fails with
/// every case that failed.
async fn run_cases<F, Fut>(tag: &str, rows: Vec<Row>, parallel: usize, processes: bool, run: F)
where
    F: Fn(Case) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let mut cases = Vec::new();
    // Cases on the real binary refresh every second: on a moto of their own.
    let base = match processes {
        true => Emulator::own_moto(1).await,
        false => Emulator::new(1).await,
    };
    for (n, row) in rows.into_iter().enumerate() {
        let emu = Arc::new(base.beside(1).await);
        let lost_create_once = row.times == Times::Once
            && row.refused.is_none()
            && CREATES.contains(&(row.flow, row.op));
        let trials = if lost_create_once { TRIALS } else { 1 };
        for trial in 0..trials {
            let id = format!("{n}t{trial}");
            cases.push(run(Case::new(row.clone(), tag, &id, Arc::clone(&emu))));
        }
    }
    all_pass("cases", parallel, cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_answer_to_a_create_leaves_one_credential_on_its_plans() {
    run_cases("w", lost_writes(&CREATES), 8, false, Case::run_lost).await;
}

/// One replica without a claim table: its re-read after a create, or the
/// portal's retry, keeps one. (A login that finds two keys a provisioning
/// create left, every answer lost, shows the first and makes nothing: the
/// other waits, unshown, for a refresh; not run here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_claim_table_a_lost_answer_to_a_create_leaves_one_credential_on_its_plans() {
    let rows = lost_writes(&CREATES)
        .into_iter()
        .filter(|row| !(row.flow == Provision && row.times == Times::Every))
        .collect();
    run_cases("n", rows, 8, false, |mut case| {
        case.claims = false;
        case.run_lost()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_answer_to_an_attach_leaves_one_credential_on_its_plans() {
    run_cases("a", lost_writes(&ATTACHES), 8, false, Case::run_lost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_answer_to_a_cleanup_leaves_one_credential_on_its_plans() {
    run_cases("c", lost_cleanups(), 8, false, Case::run_lost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_cleanup_is_retried_by_the_refresh_and_counted_when_the_portal_retries() {
    run_cases("fr", failed_cleanups(), 5, true, |case| {
        case.run_failed_cleanup(true)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_cleanup_is_retried_by_the_refresh_and_counted_when_the_portal_gives_up() {
    run_cases("fg", failed_cleanups(), 5, true, |case| {
        case.run_failed_cleanup(false)
    })
    .await;
}

/// The fault itself: moto applies the call, the caller gets no answer, and
/// `times: 1` loses just that one (the next call is answered).
#[tokio::test]
async fn the_proxy_applies_a_call_whose_answer_it_loses() {
    let emu = Emulator::new(1).await;
    let proxy = emu.proxy().await;
    let sdk = crate::harness::moto::sdk_config(&proxy.endpoint);
    let config = aws_sdk_apigateway::config::Builder::from(&sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let apigw = aws_sdk_apigateway::Client::from_conf(config);
    let owner = "proxy-self-test@lost.io";
    proxy.fail("CreateApiKey", Fault::Lost, 1);
    let lost = apigw
        .create_api_key()
        .name(owner)
        .enabled(true)
        .send()
        .await;
    assert!(lost.is_err(), "the caller got an answer: {lost:?}");
    assert_eq!(
        emu.keys_named(owner).await.len(),
        1,
        "moto did not apply it"
    );
    let answered = apigw
        .create_api_key()
        .name(owner)
        .enabled(true)
        .send()
        .await;
    assert!(answered.is_ok(), "{answered:?}");
    assert_eq!(emu.keys_named(owner).await.len(), 2);
    let calls = proxy.calls();
    assert_eq!(
        calls,
        [("CreateApiKey".into(), 0), ("CreateApiKey".into(), 201)]
    );
    assert_eq!(proxy.faulted("CreateApiKey"), 1);
}
