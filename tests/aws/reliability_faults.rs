//! Faults on every AWS operation keyhook uses, one at a time, on every
//! attempt (so the SDK's retries cannot hide them): throttling (429
//! `TooManyRequestsException`), 500s, dropped connections, delays past
//! the timeout and refusals (400 `BadRequestException`), injected by a
//! proxy between keyhook and moto.
//!
//! For each: the SDK made the attempts it promises (retries for all but a
//! refusal); the answer is the status and JSON body the README documents,
//! exactly: `{"error": "<op> failed: <sentence>", "kind", "operation"}`
//! (`503` for the retryable kinds, `502` for a refusal, never a 200 with
//! partial data, never AWS's own message, which names the account), or, where the README documents that a failed read is absorbed (a
//! login answered from the index), that answer; a held call gives up within
//! the timeout; and afterwards the emulator holds no orphaned key, no
//! half-attached key and no stray app client: whatever the failed step left
//! is the state the precondition made, and a retry of the step converges.

use std::sync::Arc;
use std::time::Duration;

use crate::harness::cases::all_pass;
use crate::harness::emulator::{expected_failure, Emulator};
use crate::harness::moto::sdk_config;
use crate::harness::proxy::{Fault, Proxy};
use crate::harness::TestApp;
use keyhook::credentials::aws::app_key;
use keyhook::credentials::aws::settings::RevokeMode;
use keyhook::credentials::{AppId, CredentialKind};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How long a delayed call is held: past the 2 s operation timeout, so
/// every attempt times out (the proxy then drops the abandoned call with its
/// connection); checks wait a little for anything still on its way.
const DELAY: Duration = Duration::from_millis(2500);
const LAND: Duration = Duration::from_millis(300);
/// The overall time keyhook gives one AWS operation, retries included
/// (`KEYHOOK_AWS_TIMEOUT_SECS`), and its attempts at it.
const TIMEOUT_SECS: u64 = 2;
const MAX_ATTEMPTS: u32 = 2;
/// Room on top of the promised timeouts for everything else a step does on a
/// loaded machine: generous, as this bounds a promise, not speed.
const SLACK: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Flow {
    /// `createCredentials`, API key on one plan.
    KeyCreate,
    /// `updateCredentials` of an API key: other plan, new name.
    KeyUpdate,
    /// `revokeCredentials` of an API key keyhook knows (delete).
    KeyRevoke,
    /// The same with `KEYHOOK_REVOKE=disable`.
    KeyDisable,
    /// Revoke of a key made after keyhook loaded its index.
    KeyRevokeCold,
    /// A first-time reader's login with provisioning on.
    Provision,
    /// A login of a reader with nothing, provisioning off.
    LoginMiss,
    /// `createCredentials`, Cognito app client with a companion API key.
    ClientCreate,
    /// A portal retry of a create that another replica already made.
    ClientReplay,
    /// `updateCredentials` of an app client: other plan, new name.
    ClientUpdate,
    /// `revokeCredentials` of an app client and its companion key.
    ClientRevoke,
}

use Flow::*;

impl Flow {
    fn kind(self) -> CredentialKind {
        match self {
            ClientCreate | ClientReplay | ClientUpdate | ClientRevoke => {
                CredentialKind::ClientCredentials
            }
            _ => CredentialKind::ApiKey,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The status and JSON error [`expected_failure`] gives for the fault
    /// on the faulted operation.
    Fails,
    /// The documented answer despite the fault.
    Absorbed(StatusCode),
}

/// Flow, operation, how many calls of it pass before the fault, expectation.
type Row = (Flow, &'static str, usize, Expect);

const FAILS: Expect = Expect::Fails;

fn table() -> Vec<Row> {
    vec![
        // create: look in AWS, create, attach, re-read (race check).
        (KeyCreate, "GetApiKeys", 0, FAILS),
        (KeyCreate, "CreateApiKey", 0, FAILS),
        (KeyCreate, "CreateUsagePlanKey", 0, FAILS),
        // update: which plans, attach, detach, rename.
        (KeyUpdate, "GetUsagePlans", 0, FAILS),
        (KeyUpdate, "CreateUsagePlanKey", 0, FAILS),
        (KeyUpdate, "DeleteUsagePlanKey", 0, FAILS),
        (KeyUpdate, "UpdateApiKey", 0, FAILS),
        (KeyRevoke, "DeleteApiKey", 0, FAILS),
        (KeyDisable, "UpdateApiKey", 0, FAILS),
        (KeyRevokeCold, "GetApiKey", 0, FAILS),
        (KeyRevokeCold, "DeleteApiKey", 0, FAILS),
        // provisioning login: create, attach (a first login is not looked
        // up: the re-read after creating, in `reread_table`, finds what a
        // look would).
        (Provision, "CreateApiKey", 0, FAILS),
        (Provision, "CreateUsagePlanKey", 0, FAILS),
        (
            LoginMiss,
            "GetApiKeys",
            0,
            Expect::Absorbed(StatusCode::NOT_FOUND),
        ),
        // client create: look, create, re-read, companion key, attach.
        (ClientCreate, "ListUserPoolClients", 0, FAILS),
        (ClientCreate, "CreateUserPoolClient", 0, FAILS),
        (ClientCreate, "CreateApiKey", 0, FAILS),
        (ClientCreate, "CreateUsagePlanKey", 0, FAILS),
        (ClientReplay, "ListUserPoolClients", 0, FAILS),
        (ClientReplay, "DescribeUserPoolClient", 0, FAILS),
        (ClientReplay, "GetApiKeys", 0, FAILS),
        (ClientUpdate, "UpdateUserPoolClient", 0, FAILS),
        (ClientUpdate, "DescribeUserPoolClient", 0, FAILS),
        (ClientUpdate, "GetUsagePlans", 0, FAILS),
        (ClientUpdate, "CreateUsagePlanKey", 0, FAILS),
        (ClientUpdate, "DeleteUsagePlanKey", 0, FAILS),
        (ClientUpdate, "UpdateApiKey", 0, FAILS),
        (ClientRevoke, "DeleteApiKey", 0, FAILS),
        (ClientRevoke, "DeleteUserPoolClient", 0, FAILS),
    ]
}

/// The claim table's calls (`KEYHOOK_CLAIM_TABLE`): the claim read before
/// a create and the claim after it (a transaction that also counts the new
/// API key against `KEYHOOK_MAX_KEYS`), on each create path; the release
/// after a revoke, whose failure the revoke absorbs (the app's next create
/// releases a claim whose credential is gone).
fn claim_table() -> Vec<Row> {
    let revoked = Expect::Absorbed(StatusCode::NO_CONTENT);
    vec![
        (KeyCreate, "GetItem", 0, FAILS),
        (KeyCreate, "TransactWriteItems", 0, FAILS),
        // A first login reads no claim: its claim decides.
        (Provision, "TransactWriteItems", 0, FAILS),
        (ClientCreate, "GetItem", 0, FAILS),
        (ClientCreate, "TransactWriteItems", 0, FAILS),
        (KeyRevoke, "DeleteItem", 0, revoked),
        (ClientRevoke, "DeleteItem", 0, revoked),
    ]
}

/// The re-read after a create (the race check), on each create path: a
/// failure there must not leave the credential just made behind.
fn reread_table() -> Vec<Row> {
    vec![
        (KeyCreate, "GetApiKeys", 1, FAILS),
        // A first login's only listing is its re-read.
        (Provision, "GetApiKeys", 0, FAILS),
        (ClientCreate, "ListUserPoolClients", 1, FAILS),
    ]
}

fn faults() -> Vec<Fault> {
    vec![
        Fault::Status(429, "TooManyRequestsException"),
        Fault::Status(500, "InternalServerError"),
        Fault::Drop,
        Fault::Delay(DELAY),
        Fault::Status(400, "BadRequestException"),
    ]
}

/// With a claim table, the faults that reach a different outcome: a failure
/// the SDK retries (5xx), a connection dropped before the answer, an answer
/// later than the timeout. Throttling and a refusal are sorted exactly as
/// without a table (the same error path), which `faults` covers: the CI
/// budget is spent where the create paths differ.
fn faults_with_a_table() -> Vec<Fault> {
    vec![
        Fault::Status(500, "InternalServerError"),
        Fault::Drop,
        Fault::Delay(DELAY),
    ]
}

/// The SDK's attempts at one call under `fault`: it retries throttling, 5xx,
/// a dropped connection and a timed-out attempt, not a refusal. (With two
/// attempts the SDK's process-wide retry quota always gets its permit back,
/// so it never runs dry and skips a retry.)
fn attempts_per_call(fault: &Fault) -> usize {
    match fault {
        Fault::Status(400, _) => 1,
        _ => MAX_ATTEMPTS as usize,
    }
}

/// The attempts at the faulted operation the step makes, and in how many
/// calls: one call, except a first login's `CreateApiKey` with the claim
/// table, tried once (no retry: a retry whose first answer was lost would
/// leave a key the short way does not look for), then, as the failure may
/// have made a key, the full way's create, retried.
fn attempts_under_fault(flow: Flow, op: &str, claims: bool, fault: &Fault) -> (usize, usize) {
    let per_call = attempts_per_call(fault);
    match (flow, op, claims) {
        (Provision, "CreateApiKey", true) if per_call > 1 => (2, 1 + per_call),
        _ => (1, per_call),
    }
}

fn app(owner: &str, slug: &str, api: &str, plan: &str, name: &str) -> Value {
    json!({
        "appName": name,
        "appSlug": slug,
        "developer": owner,
        "apis": [{"id": api, "usagePlans": [{"id": plan}]}],
    })
}

/// What the precondition made, by id.
#[derive(Default, Debug)]
struct Made {
    key: Option<String>,
    client: Option<String>,
}

struct Case {
    emu: Arc<Emulator>,
    /// With the claim table, else as one replica without it.
    claims: bool,
    row: Row,
    fault: Fault,
    owner: String,
    slug: String,
}

impl Case {
    fn config(&self) -> keyhook::config::Config {
        let (flow, ..) = self.row;
        let mut config = self.emu.config(flow.kind());
        if !self.claims {
            config.aws.claim_table = None;
        }
        config.aws.timeout_secs = TIMEOUT_SECS;
        config.aws.max_attempts = MAX_ATTEMPTS;
        config.aws.client_api_key = true;
        if flow == KeyDisable {
            config.aws.revoke = RevokeMode::Disable;
        }
        if flow == Provision {
            config.readme.provision = true;
            config.readme.usage_plan_id = Some(self.emu.seed.plans[0].clone());
        }
        config
    }

    fn body(&self, plan: usize, name: &str) -> Value {
        let seed = &self.emu.seed;
        app(
            &self.owner,
            &self.slug,
            &seed.api_id,
            &seed.plans[plan],
            name,
        )
    }

    /// Makes what the flow starts from, with no fault.
    async fn precondition(&self, server: &TestApp) -> Result<Made, String> {
        let (flow, ..) = self.row;
        let mut made = Made::default();
        match flow {
            KeyUpdate | KeyRevoke | KeyDisable | ClientUpdate | ClientRevoke => {
                let created = create_ok(server, &self.body(0, "Fault app")).await?;
                made.key = created["apiKeyId"]
                    .as_str()
                    .or(created["customCredentials"]["apiKeyId"].as_str())
                    .map(str::to_string);
                made.client = created["clientId"].as_str().map(str::to_string);
            }
            KeyRevokeCold => {
                // Made after keyhook loaded its index (by another replica:
                // tagged with its app): it must ask AWS.
                let app = app_key(&AppId::sensedia_slug(&self.slug));
                let key = self
                    .emu
                    .apigw
                    .create_api_key()
                    .name(&self.owner)
                    .enabled(true)
                    .tags("keyhook:app", app.hash())
                    .tags("keyhook:origin", "sensedia")
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                made.key = key.id().map(str::to_string);
            }
            ClientReplay => {
                // Another replica (straight to moto) made it.
                let other = TestApp::spawn(&self.config(), Some(self.emu.sdk())).await;
                other.ready().await;
                let created = create_ok(&other, &self.body(0, "Fault app")).await;
                other.stop().await;
                let created = created?;
                made.client = created["clientId"].as_str().map(str::to_string);
                made.key = created["customCredentials"]["apiKeyId"]
                    .as_str()
                    .map(str::to_string);
            }
            KeyCreate | Provision | LoginMiss | ClientCreate => {}
        }
        Ok(made)
    }

    /// The step under fault.
    async fn step(&self, server: &TestApp, made: &Made) -> reqwest::Response {
        let (flow, ..) = self.row;
        match flow {
            KeyCreate | ClientCreate | ClientReplay => {
                server
                    .sensedia("createCredentials", &self.body(0, "Fault app"))
                    .await
            }
            KeyUpdate => {
                let mut body = self.body(1, "Renamed app");
                body["apiKeyId"] = json!(made.key);
                body["credentialType"] = json!("API_KEY");
                server.sensedia("updateCredentials", &body).await
            }
            ClientUpdate => {
                let mut body = self.body(1, "Renamed app");
                body["clientId"] = json!(made.client);
                body["credentialType"] = json!("CLIENT_CREDENTIALS");
                server.sensedia("updateCredentials", &body).await
            }
            KeyRevoke | KeyDisable | KeyRevokeCold => {
                let body = json!({"apiKeyId": made.key, "credentialType": "API_KEY"});
                server.sensedia("revokeCredentials", &body).await
            }
            ClientRevoke => {
                let body = json!({"clientId": made.client, "credentialType": "CLIENT_CREDENTIALS"});
                server.sensedia("revokeCredentials", &body).await
            }
            Provision | LoginMiss => server.login(&self.owner).await,
        }
    }

    fn key_ids(keys: &[aws_sdk_apigateway::types::ApiKey]) -> Vec<String> {
        keys.iter()
            .filter_map(|k| k.id().map(str::to_string))
            .collect()
    }

    /// What AWS holds for the owner once the failed step is over: nothing
    /// new, nothing half-made; then a retry without fault converges.
    async fn check_state(&self, server: &TestApp, made: &Made) -> Result<(), String> {
        let (flow, ..) = self.row;
        let emu = &self.emu;
        let keys = emu.keys_named(&self.owner).await;
        let clients = emu.clients_of(&self.owner).await;
        let key_ids = Self::key_ids(&keys);
        let client_ids: Vec<String> = clients.iter().map(|(id, _)| id.clone()).collect();
        let expected_keys: Vec<String> = made.key.iter().cloned().collect();
        let expected_clients: Vec<String> = made.client.iter().cloned().collect();
        match flow {
            KeyCreate | Provision | LoginMiss | ClientCreate | ClientReplay | KeyUpdate
            | ClientUpdate => {
                if key_ids != expected_keys {
                    return Err(format!(
                        "API keys named the owner: {key_ids:?}, expected {expected_keys:?} \
                         (orphaned key)"
                    ));
                }
                if client_ids != expected_clients {
                    return Err(format!(
                        "app clients of the owner: {client_ids:?}, expected {expected_clients:?} \
                         (stray app client)"
                    ));
                }
            }
            // A failed revoke leaves the credential, or (a held delete
            // landing late) removes it; never anything else.
            KeyRevoke | KeyDisable | KeyRevokeCold | ClientRevoke => {
                if key_ids.iter().any(|k| !expected_keys.contains(k))
                    || client_ids.iter().any(|c| !expected_clients.contains(c))
                {
                    return Err(format!(
                        "a failed revoke left unexpected credentials: keys {key_ids:?}, \
                         clients {client_ids:?}"
                    ));
                }
            }
        }
        // Keys the precondition made are still whole: on the plan they had.
        if matches!(flow, KeyRevoke | KeyDisable | ClientRevoke | ClientReplay) {
            for key in &keys {
                let plans = emu.plans_of(key.id().unwrap()).await;
                if plans != [emu.seed.plans[0].clone()] {
                    return Err(format!("key {:?} is on plans {plans:?}", key.id()));
                }
            }
        }

        // The retry without fault converges.
        match flow {
            KeyUpdate | ClientUpdate => {
                let status = self.step(server, made).await.status();
                if status != StatusCode::NO_CONTENT {
                    return Err(format!("retried update answered {status}"));
                }
                let key = made.key.as_deref().unwrap();
                let plans = emu.plans_of(key).await;
                if plans != [emu.seed.plans[1].clone()] {
                    return Err(format!("after the retried update the key is on {plans:?}"));
                }
                let keys = emu.keys_named(&self.owner).await;
                if keys.len() != 1 || keys[0].description() != Some("Renamed app") {
                    return Err(format!("after the retried update: {keys:?}"));
                }
            }
            KeyRevoke | KeyDisable | KeyRevokeCold | ClientRevoke => {
                // A revoke that absorbed the fault has revoked: its retry
                // finds nothing.
                let absorbed = matches!(self.row.3, Expect::Absorbed(_));
                let want = match absorbed {
                    true => StatusCode::NOT_FOUND,
                    false => StatusCode::NO_CONTENT,
                };
                let status = self.step(server, made).await.status();
                if status != want {
                    return Err(format!("retried revoke answered {status}, expected {want}"));
                }
                let keys = emu.keys_named(&self.owner).await;
                let left_enabled = keys.iter().filter(|k| k.enabled()).count();
                let clients = emu.clients_of(&self.owner).await;
                let expected_left = if flow == KeyDisable { 1 } else { 0 };
                if left_enabled != 0 || keys.len() != expected_left || !clients.is_empty() {
                    return Err(format!(
                        "after the retried revoke: keys {keys:?}, clients {clients:?}"
                    ));
                }
                if absorbed {
                    // The claim the revoke could not release names a
                    // credential that is gone: the app's next create
                    // releases it and issues a new one.
                    let created = create_ok(server, &self.body(0, "Fault app")).await?;
                    let id = created["clientId"]
                        .as_str()
                        .or(created["apiKeyId"].as_str());
                    let keys = emu.keys_named(&self.owner).await;
                    let clients = emu.clients_of(&self.owner).await;
                    let fresh = id.is_some_and(|id| {
                        Some(id) != made.client.as_deref() && Some(id) != made.key.as_deref()
                    });
                    if !fresh
                        || keys.len() != 1
                        || clients.len() != usize::from(made.client.is_some())
                    {
                        return Err(format!(
                            "a create after the revoke answered {created}; AWS holds keys {:?}, clients {clients:?}",
                            Self::key_ids(&keys)
                        ));
                    }
                }
            }
            KeyCreate | Provision | ClientCreate | ClientReplay => {
                let response = self.step(server, made).await;
                let status = response.status();
                if status != StatusCode::OK {
                    return Err(format!("retried step answered {status}"));
                }
                let keys = emu.keys_named(&self.owner).await;
                let clients = emu.clients_of(&self.owner).await;
                let want_clients = usize::from(flow.kind() == CredentialKind::ClientCredentials);
                if keys.len() != 1 || clients.len() != want_clients {
                    return Err(format!(
                        "after the retried step: keys {:?}, clients {clients:?}",
                        Self::key_ids(&keys)
                    ));
                }
                let plans = emu.plans_of(keys[0].id().unwrap()).await;
                if plans != [emu.seed.plans[0].clone()] {
                    return Err(format!("after the retried step the key is on {plans:?}"));
                }
            }
            LoginMiss => {}
        }
        Ok(())
    }

    async fn run(self) -> Result<(), String> {
        let (flow, op, skip, expect) = self.row;
        let proxy = Proxy::start(&self.emu.endpoint).await;
        let server = TestApp::spawn(&self.config(), Some(sdk_config(&proxy.endpoint))).await;
        server.ready().await;
        let made = self.precondition(&server).await?;
        proxy.reset_calls();
        if skip > 0 {
            proxy.fail(op, Fault::Delay(Duration::ZERO), skip);
        }
        proxy.fail(op, self.fault.clone(), 1000);
        let started = std::time::Instant::now();
        let response = self.step(&server, &made).await;
        let elapsed = started.elapsed();
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        proxy.clear_faults();
        let held = matches!(self.fault, Fault::Delay(_));
        if held {
            tokio::time::sleep(LAND).await;
        }
        let result = async {
            // Every attempt meets the fault (the proxy counts them on
            // arrival). A held call is abandoned by the SDK at its timeout,
            // and the proxy drops it with the connection: it never reaches
            // moto. Every other faulted call is answered by the proxy.
            let (calls, want_attempts) = attempts_under_fault(flow, op, self.claims, &self.fault);
            let attempts = proxy.faulted(op).saturating_sub(skip);
            let answered = proxy.count(op);
            let want_answered = skip + if held { 0 } else { want_attempts };
            if attempts != want_attempts || answered != want_answered {
                return Err(format!(
                    "after {skip} calls of {op} passed, the step made {attempts} attempts \
                     (expected {want_attempts}), {answered} answered (expected \
                     {want_answered}): calls {:?}",
                    proxy.counts()
                ));
            }
            // The promised bound: each operation gives up at the timeout.
            let bound = Duration::from_secs(TIMEOUT_SECS) * calls as u32 + SLACK;
            if held && elapsed > bound {
                return Err(format!("the step took {elapsed:?}, over {bound:?}"));
            }
            match expect {
                Expect::Fails => {
                    let (want_status, want_body) = expected_failure(&self.fault, op);
                    let body: Value = serde_json::from_str(&text)
                        .map_err(|_| format!("answer {status} is not JSON: {text}"))?;
                    if status != want_status || body != want_body {
                        return Err(format!(
                            "answered {status} {text}, expected {want_status} {want_body}"
                        ));
                    }
                }
                Expect::Absorbed(want) => {
                    if status != want {
                        return Err(format!("answered {status} {text}, expected {want}"));
                    }
                }
            }
            self.check_state(&server, &made).await
        }
        .await;
        server.stop().await;
        result.map_err(|e| format!("{flow:?} / {op} #{} / {:?}: {e}", skip + 1, self.fault))
    }
}

async fn run_table(tag: &str, rows: Vec<Row>, claims: bool, faults: fn() -> Vec<Fault>) {
    let mut emulators = std::collections::HashMap::new();
    for (flow, ..) in &rows {
        if !emulators.contains_key(flow) {
            emulators.insert(*flow, Arc::new(Emulator::new(2).await));
        }
    }
    let mut cases = Vec::new();
    for (n, (row, fault)) in rows
        .into_iter()
        .flat_map(|row| faults().into_iter().map(move |fault| (row, fault)))
        .enumerate()
    {
        let flow_name = format!("{:?}", row.0).to_lowercase();
        let case = Case {
            emu: Arc::clone(&emulators[&row.0]),
            claims,
            row,
            fault,
            owner: format!("{tag}{n}-{}@{flow_name}.faults.io", row.1.to_lowercase()),
            slug: format!("{tag}-{n}-{}", row.1.to_lowercase()),
        };
        cases.push(case.run());
    }
    all_pass("fault cases", 12, cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fault_on_any_aws_operation_fails_cleanly_and_leaves_nothing_half_made() {
    run_table("f", table(), false, faults).await;
}

/// The same with the claim table, and faults on its own calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_claim_table_a_fault_on_any_call_fails_cleanly_and_leaves_nothing_half_made() {
    // The create paths change with the table; update and revoke do not.
    let creates = [KeyCreate, Provision, ClientCreate, ClientReplay];
    let mut rows: Vec<Row> = table()
        .into_iter()
        .filter(|(flow, ..)| creates.contains(flow))
        .collect();
    rows.extend(claim_table());
    run_table("c", rows, true, faults_with_a_table).await;
}

/// One replica without a claim table re-reads AWS after a create.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_reread_after_a_create_leaves_no_credential_behind() {
    run_table("r", reread_table(), false, faults).await;
}

async fn create_ok(server: &TestApp, body: &Value) -> Result<Value, String> {
    let response = server.sensedia("createCredentials", body).await;
    let status = response.status();
    let value: Value = response.json().await.map_err(|e| e.to_string())?;
    if status != StatusCode::OK {
        return Err(format!("precondition create answered {status}: {value}"));
    }
    Ok(value)
}
