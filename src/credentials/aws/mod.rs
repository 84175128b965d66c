//! The AWS backend: API keys in Amazon API Gateway, client credentials as
//! Amazon Cognito app clients, through the official SDK.
//!
//! **Logins are served from an in-memory owner index**, not from AWS: API
//! Gateway's management API allows about 10 calls/s per account and region
//! (Cognito's client operations about 5/s per pool), and ReadMe calls the
//! webhook at every login. The index is loaded at start (paginated), refreshed
//! in the background every `index_refresh_secs`, and updated at once by every
//! create/update/revoke this replica performs. A login whose reader is not in
//! the index asks AWS directly (one `GetApiKeys`), if the local token bucket
//! has a call to spare; a reader found to have nothing is remembered for one
//! refresh interval. So: a revoke disappears from logins on this replica at
//! once, and on other replicas within `index_refresh_secs` (default 30 s).
//!
//! **Creates are idempotent and race-safe.** Per app, this replica creates
//! one credential at a time; before creating it looks in the index and in
//! AWS; after creating it re-reads AWS, and if racing replicas made several
//! credentials for one app, all keep the one with the smallest id and the
//! others delete their own.

pub mod apigateway;
pub mod cognito;
pub mod limiter;
pub mod settings;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_apigateway::config::http::HttpResponse;
use aws_sdk_apigateway::error::{ProvideErrorMetadata, SdkError};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::index::Index;
use super::{
    AppId, Created, Credential, CredentialError, CredentialKind, CredentialProvider, CredentialRef,
    CredentialSpec, Email, Result, Revoked, Secret,
};
use crate::secret::Redacted;
use apigateway::{ApiKeys, KeyRecord};
use cognito::AppClients;
use limiter::TokenBucket;
use settings::{AwsSettings, RevokeMode};

/// How long a login waits for the token bucket before answering from the
/// index alone.
const LOGIN_MAX_WAIT: Duration = Duration::from_millis(250);
/// How old every duplicate of an app's key must be before a refresh settles
/// them: longer than any create (with its retries) can take.
const SETTLE: Duration = Duration::from_secs(120);
/// A lookup this recent stands in for the check before a create.
const JUST_MISSED: Duration = Duration::from_secs(2);
/// How long a health answer is reused, so probes never hammer AWS.
const HEALTH_TTL: Duration = Duration::from_secs(5);

/// The form an app identity takes in AWS: 16 hex digits of its SHA-256.
/// Tag values and client names cannot hold every character an app name or
/// slug may contain; a hash always fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppKey(String);

impl AppKey {
    pub fn from_hash(hash: &str) -> Self {
        AppKey(hash.to_ascii_lowercase())
    }

    pub fn hash(&self) -> &str {
        &self.0
    }

    /// The identity credentials read back from AWS carry.
    pub fn app_id(&self) -> AppId {
        AppId::from_stored(format!("aws:{}", self.0))
    }
}

pub fn app_key(app: &AppId) -> AppKey {
    // Already in stored form (read back from AWS): keep it.
    if let Some(hash) = app.as_str().strip_prefix("aws:") {
        return AppKey::from_hash(hash);
    }
    let digest = Sha256::digest(app.as_str().as_bytes());
    AppKey(hex::encode(&digest[..8]))
}

/// An AWS timestamp in Unix milliseconds (0 when absent).
pub fn epoch_ms(date: Option<&aws_sdk_apigateway::primitives::DateTime>) -> u64 {
    date.and_then(|d| d.to_millis().ok())
        .and_then(|ms| u64::try_from(ms).ok())
        .unwrap_or_default()
}

/// What went wrong with one AWS call, sorted for the caller.
#[derive(Debug)]
pub struct AwsError {
    operation: &'static str,
    kind: AwsErrorKind,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AwsErrorKind {
    NotFound,
    Conflict,
    /// Throttled, timed out, unreachable or a 5xx: worth trying later.
    Transient,
    Other,
}

impl AwsErrorKind {
    /// The `outcome` label of `keyhook_aws_calls_total`.
    fn outcome(self) -> &'static str {
        match self {
            AwsErrorKind::NotFound => "not_found",
            AwsErrorKind::Conflict => "conflict",
            AwsErrorKind::Transient => "unavailable",
            AwsErrorKind::Other => "error",
        }
    }
}

impl AwsError {
    pub fn is_conflict(&self) -> bool {
        self.kind == AwsErrorKind::Conflict
    }

    fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
        operation: &'static str,
        err: SdkError<E, HttpResponse>,
    ) -> Self {
        let (kind, detail) = match &err {
            SdkError::TimeoutError(_) => (AwsErrorKind::Transient, "timed out".to_string()),
            SdkError::DispatchFailure(_) => {
                (AwsErrorKind::Transient, "could not reach AWS".to_string())
            }
            SdkError::ResponseError(_) => (
                AwsErrorKind::Transient,
                "AWS sent an unreadable answer".to_string(),
            ),
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = err.code().unwrap_or("UnknownError");
                // AWS messages name resources, never key values or secrets
                // (keyhook never sends those); cap them anyway.
                let message: String = err.message().unwrap_or("").chars().take(200).collect();
                let kind = match code {
                    "NotFoundException" | "ResourceNotFoundException" => AwsErrorKind::NotFound,
                    "ConflictException" => AwsErrorKind::Conflict,
                    "TooManyRequestsException"
                    | "ThrottlingException"
                    | "Throttling"
                    | "LimitExceededException" => AwsErrorKind::Transient,
                    _ if status >= 500 || status == 429 => AwsErrorKind::Transient,
                    _ => AwsErrorKind::Other,
                };
                (kind, format!("{code} (HTTP {status}): {message}"))
            }
            _ => (
                AwsErrorKind::Other,
                "request could not be built".to_string(),
            ),
        };
        AwsError {
            operation,
            kind,
            detail,
        }
    }
}

impl From<AwsError> for CredentialError {
    fn from(err: AwsError) -> Self {
        match err.kind {
            AwsErrorKind::Transient => CredentialError::Unavailable {
                operation: err.operation,
                detail: err.detail,
            },
            _ => CredentialError::Backend {
                operation: err.operation,
                detail: err.detail,
            },
        }
    }
}

/// What every SDK call returns.
type SdkResult<T, E> = std::result::Result<T, SdkError<E, HttpResponse>>;

/// Every AWS call goes through here: the token bucket, the error sorting,
/// and the per-operation counters behind `/metrics`.
pub struct Aws {
    limiter: TokenBucket,
}

impl Aws {
    fn record(operation: &'static str, outcome: &'static str) {
        metrics::counter!("keyhook_aws_calls_total", "operation" => operation, "outcome" => outcome)
            .increment(1);
    }

    /// Calls without taking a token: for a caller that already took one.
    pub async fn run<T, E>(
        &self,
        operation: &'static str,
        call: impl Future<Output = SdkResult<T, E>>,
    ) -> std::result::Result<T, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match call.await {
            Ok(out) => {
                Self::record(operation, "ok");
                Ok(out)
            }
            Err(err) => {
                let err = AwsError::classify(operation, err);
                Self::record(operation, err.kind.outcome());
                tracing::debug!(operation, detail = %err.detail, "AWS call failed");
                Err(err)
            }
        }
    }

    /// Waits for the bucket, then calls.
    pub async fn call<T, E>(
        &self,
        operation: &'static str,
        call: impl Future<Output = SdkResult<T, E>>,
    ) -> std::result::Result<T, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.limiter.acquire().await;
        self.run(operation, call).await
    }

    /// As `call`, with "not found" as `None`.
    pub async fn call_opt<T, E>(
        &self,
        operation: &'static str,
        call: impl Future<Output = SdkResult<T, E>>,
    ) -> std::result::Result<Option<T>, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match self.call(operation, call).await {
            Ok(out) => Ok(Some(out)),
            Err(err) if err.kind == AwsErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// The standard AWS configuration chain: environment, profile, ECS task
/// role, IRSA web identity; `AWS_ENDPOINT_URL` for emulators.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

enum Change {
    Upsert(Box<Credential>),
    Remove(String),
}

struct Inner {
    aws: Aws,
    keys: ApiKeys,
    clients: Option<AppClients>,
    settings: AwsSettings,
    /// The plan `check` and health look at, when one is configured.
    usage_plan_id: Option<String>,
    index: RwLock<Index>,
    /// Set once the first full load has finished.
    loaded: tokio::sync::watch::Sender<bool>,
    /// Changes made while a refresh is listing AWS, replayed onto its result.
    journal: Mutex<Option<Vec<Change>>>,
    /// Readers AWS had nothing for, and when we asked.
    misses: Mutex<HashMap<Email, Instant>>,
    app_locks: Mutex<HashMap<AppId, Weak<tokio::sync::Mutex<()>>>>,
    health: Mutex<Option<(Instant, std::result::Result<(), String>)>>,
}

pub struct AwsProvider {
    inner: Arc<Inner>,
}

impl AwsProvider {
    /// Builds the clients and starts loading the owner index in the
    /// background; `health` reports unready until the first load is done.
    pub fn start(settings: &AwsSettings, usage_plan_id: Option<String>, sdk: &SdkConfig) -> Self {
        let provider = Self::new(settings, usage_plan_id, sdk);
        tokio::spawn(refresh_loop(Arc::downgrade(&provider.inner)));
        provider
    }

    /// Builds the clients only: no index, no background work. Enough for
    /// [`AwsProvider::verify`].
    /// `usage_plan_id` is the plan `check` verifies, when one is configured.
    pub fn new(settings: &AwsSettings, usage_plan_id: Option<String>, sdk: &SdkConfig) -> Self {
        let settings = settings.clone();
        let timeout = Duration::from_secs(settings.timeout_secs);
        let retry = RetryConfig::standard()
            .with_max_attempts(settings.max_attempts)
            .with_initial_backoff(Duration::from_millis(100));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3).min(timeout))
            .operation_attempt_timeout(timeout / settings.max_attempts.max(1))
            .operation_timeout(timeout)
            .build();
        let apigw = aws_sdk_apigateway::config::Builder::from(sdk)
            .retry_config(retry.clone())
            .timeout_config(timeouts.clone())
            .build();
        let cognito = aws_sdk_cognitoidentityprovider::config::Builder::from(sdk)
            .retry_config(retry)
            .timeout_config(timeouts)
            .build();
        let clients = settings.cognito_user_pool_id.clone().map(|pool| {
            AppClients::new(
                aws_sdk_cognitoidentityprovider::Client::from_conf(cognito),
                pool,
                &settings,
            )
        });
        let inner = Arc::new(Inner {
            aws: Aws {
                limiter: TokenBucket::new(
                    settings.rate_limit,
                    (settings.rate_limit * 2.0).max(1.0),
                ),
            },
            keys: ApiKeys::new(aws_sdk_apigateway::Client::from_conf(apigw)),
            clients,
            usage_plan_id,
            settings,
            index: RwLock::new(Index::default()),
            loaded: tokio::sync::watch::channel(false).0,
            journal: Mutex::new(None),
            misses: Mutex::new(HashMap::new()),
            app_locks: Mutex::new(HashMap::new()),
            health: Mutex::new(None),
        });
        AwsProvider { inner }
    }

    /// Waits until the owner index has been loaded once.
    pub async fn loaded(&self) {
        let mut rx = self.inner.loaded.subscribe();
        let _ = rx.wait_for(|loaded| *loaded).await;
    }

    /// What `keyhook check` reports: every configured AWS resource exists
    /// and can be read with these credentials.
    pub async fn verify(&self) -> std::result::Result<Vec<String>, String> {
        let inner = &self.inner;
        let mut report = Vec::new();
        inner.keys.ping(&inner.aws).await.map_err(|e| {
            format!("cannot list API Gateway API keys (apigateway:GET on /apikeys): {e}")
        })?;
        report.push("API Gateway answers and API keys can be listed".to_string());
        if let Some(plan) = &inner.usage_plan_id {
            match inner.keys.usage_plan_exists(&inner.aws, plan).await {
                Ok(true) => report.push(format!("usage plan {plan} exists")),
                Ok(false) => return Err(format!("usage plan {plan} (KEYHOOK_USAGE_PLAN_ID) does not exist in this account and region")),
                Err(e) => return Err(format!("cannot read usage plan {plan} (apigateway:GET on /usageplans/{plan}): {e}")),
            }
        }
        if let Some(clients) = &inner.clients {
            let pool = clients.pool();
            match clients.pool_exists(&inner.aws).await {
                Ok(true) => report.push(format!("user pool {pool} exists")),
                Ok(false) => return Err(format!("user pool {pool} (KEYHOOK_COGNITO_USER_POOL_ID) does not exist in this account and region")),
                Err(e) => return Err(format!("cannot read user pool {pool} (cognito-idp:DescribeUserPool): {e}")),
            }
        }
        Ok(report)
    }
}

/// Loads the index, then refreshes it every interval, until the provider
/// is dropped. A failed load is retried sooner.
async fn refresh_loop(inner: Weak<Inner>) {
    let mut delay = Duration::ZERO;
    loop {
        tokio::time::sleep(delay).await;
        let Some(inner) = inner.upgrade() else { return };
        let interval = Duration::from_secs(inner.settings.index_refresh_secs);
        delay = match inner.refresh().await {
            Ok(count) => {
                tracing::debug!(credentials = count, "owner index refreshed");
                inner.loaded.send_replace(true);
                interval
            }
            Err(err) => {
                tracing::warn!(error = %err, "owner index refresh failed; keeping the last one");
                interval.min(Duration::from_secs(5))
            }
        };
    }
}

impl Inner {
    /// Lists every credential in AWS and replaces the index with it, keeping
    /// the changes this replica made meanwhile.
    async fn refresh(&self) -> Result<usize> {
        *self.journal.lock().expect("journal lock") = Some(Vec::new());
        let result = match self.list_everything().await {
            Ok(listed) => Ok(self.settle_duplicates(listed).await),
            Err(err) => Err(err),
        };
        // Index, then journal: the order `apply` takes them in, so no change
        // slips between reading the journal and swapping the index.
        let mut index = self.index.write().expect("index lock");
        let changes = self
            .journal
            .lock()
            .expect("journal lock")
            .take()
            .unwrap_or_default();
        let credentials = result?;
        let mut fresh = Index::default();
        for credential in credentials {
            fresh.insert(credential);
        }
        for change in changes {
            match change {
                Change::Upsert(c) => fresh.upsert(*c),
                Change::Remove(id) => {
                    fresh.remove(&id);
                }
            }
        }
        let count = fresh.by_id.len();
        *index = fresh;
        drop(index);
        self.misses.lock().expect("misses lock").clear();
        Ok(count)
    }

    /// Two replicas can both keep a key for one app when their creates land
    /// in the same second and one re-read missed the other's key. Once no
    /// create for them can still be in flight, the first made stays and the
    /// others are deleted, so every app converges on one key.
    async fn settle_duplicates(&self, credentials: Vec<Credential>) -> Vec<Credential> {
        let now = u64::try_from(crate::clock::now_ms()).unwrap_or_default();
        let settled = |c: &Credential| c.created_at_ms + SETTLE.as_millis() as u64 <= now;
        let mut groups: HashMap<(Email, AppId), Vec<&Credential>> = HashMap::new();
        for c in &credentials {
            let made_by_keyhook = c.app.as_str().starts_with("aws:");
            if c.kind() == CredentialKind::ApiKey && made_by_keyhook {
                groups
                    .entry((c.owner.clone(), c.app.clone()))
                    .or_default()
                    .push(c);
            }
        }
        let mut deleted = Vec::new();
        for (_, mut group) in groups {
            if group.len() < 2 || !group.iter().all(|c| settled(c)) {
                continue;
            }
            group.sort_by(|a, b| first_made(a, b));
            for extra in &group[1..] {
                match self.keys.delete(&self.aws, &extra.id).await {
                    Ok(_) => {
                        tracing::warn!(
                            target: super::AUDIT_TARGET,
                            action = "duplicate_deleted",
                            owner = %extra.owner,
                            app = %extra.app,
                            credential_id = %extra.id,
                            kept = %group[0].id,
                            "duplicate API key from a replica race deleted"
                        );
                        deleted.push(extra.id.clone());
                    }
                    Err(err) => {
                        tracing::warn!(key_id = %extra.id, error = %err, "could not delete a duplicate API key")
                    }
                }
            }
        }
        credentials
            .into_iter()
            .filter(|c| !deleted.contains(&c.id))
            .collect()
    }

    async fn list_everything(&self) -> Result<Vec<Credential>> {
        let records = self.keys.list_all(&self.aws).await?;
        let mut credentials = apigateway::credentials(&records);
        if let Some(clients) = &self.clients {
            let known: HashMap<String, Credential> = {
                let index = self.index.read().expect("index lock");
                index
                    .by_id
                    .values()
                    .filter(|c| c.kind() == CredentialKind::ClientCredentials)
                    .map(|c| (c.id.clone(), c.clone()))
                    .collect()
            };
            for (id, name) in clients.list(&self.aws).await? {
                let Some((_, label, owner)) = cognito::parse_client_name(&name) else {
                    continue;
                };
                // Only clients not seen before cost a describe.
                let credential = match known.get(&id) {
                    Some(c) => {
                        let mut c = c.clone();
                        c.label = label;
                        c.owner = owner;
                        Some(c)
                    }
                    None => clients.describe(&self.aws, &id).await?,
                };
                if let Some(mut credential) = credential {
                    attach_companion(&mut credential, &records);
                    credentials.push(credential);
                }
            }
        }
        Ok(credentials)
    }

    fn apply(&self, change: Change) {
        let mut index = self.index.write().expect("index lock");
        match &change {
            Change::Upsert(c) => {
                self.misses.lock().expect("misses lock").remove(&c.owner);
                index.upsert(c.as_ref().clone());
            }
            Change::Remove(id) => {
                index.remove(id);
            }
        }
        if let Some(journal) = self.journal.lock().expect("journal lock").as_mut() {
            journal.push(change);
        }
    }

    /// Replaces what the index knows of `owner`'s API keys with `records`.
    fn replace_owner_keys(&self, owner: &Email, records: &[KeyRecord]) {
        let stale: Vec<String> = self
            .index
            .read()
            .expect("index lock")
            .owned_by(owner)
            .into_iter()
            .filter(|c| c.kind() == CredentialKind::ApiKey)
            .map(|c| c.id)
            .collect();
        for id in stale {
            self.apply(Change::Remove(id));
        }
        for credential in apigateway::credentials(records) {
            self.apply(Change::Upsert(Box::new(credential)));
        }
    }

    async fn app_lock(&self, app: &AppId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.app_locks.lock().expect("locks lock");
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(app).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(app.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    fn indexed(&self, target: &CredentialRef) -> Option<Credential> {
        let index = self.index.read().expect("index lock");
        match target {
            CredentialRef::App(app, kind) => {
                index.resolve(&CredentialRef::App(app_key(app).app_id(), *kind))
            }
            CredentialRef::Id(..) => index.resolve(target),
        }
        .cloned()
    }

    fn clients(&self) -> Result<&AppClients> {
        self.clients.as_ref().ok_or_else(|| {
            CredentialError::Invalid(
                "client credentials need a Cognito user pool (KEYHOOK_COGNITO_USER_POOL_ID)".into(),
            )
        })
    }

    async fn create_api_key(&self, spec: &CredentialSpec) -> Result<(Credential, Created)> {
        let app = app_key(&spec.app).app_id();
        let same_app = |records: &[KeyRecord]| -> Vec<Credential> {
            let mut found: Vec<Credential> = apigateway::credentials(records)
                .into_iter()
                .filter(|c| c.app == app)
                .collect();
            found.sort_by(first_made);
            found
        };
        // Another replica may have made it since our last refresh; unless
        // AWS just told us this owner has nothing (the login that is
        // provisioning asked a moment ago).
        if !self.just_missed(&spec.owner) {
            let before = self.keys.list_owner(&self.aws, &spec.owner).await?;
            self.replace_owner_keys(&spec.owner, &before);
            if let Some(existing) = same_app(&before).into_iter().next() {
                return Ok((existing, Created::Existing));
            }
        }
        let mine = self.keys.create(&self.aws, spec, None).await?;
        let after = match self.keys.list_owner(&self.aws, &spec.owner).await {
            Ok(after) => after,
            Err(err) => {
                // We cannot tell whether a racing replica's key wins, so the
                // caller gets an error; ours must not outlive it.
                self.keys.delete_after_failure(&self.aws, &mine.id).await;
                return Err(err);
            }
        };
        let contenders = same_app(&after);
        match contenders.first() {
            Some(winner) if winner.id != mine.id => {
                // A racing replica's key was made first; ours goes.
                self.keys.delete_after_failure(&self.aws, &mine.id).await;
                for plan in &spec.usage_plans {
                    self.keys.attach(&self.aws, &winner.id, plan).await?;
                }
                let kept: Vec<KeyRecord> = after.into_iter().filter(|r| r.id != mine.id).collect();
                self.replace_owner_keys(&spec.owner, &kept);
                Ok((winner.clone(), Created::Existing))
            }
            _ => {
                let mut credential = mine.credential().ok_or(CredentialError::Backend {
                    operation: "CreateApiKey",
                    detail: "the new key is not usable".into(),
                })?;
                credential.usage_plans = spec.usage_plans.clone();
                credential.api_ids = spec.api_ids.clone();
                // Later keys for this app are racing replicas' losers, which
                // they delete themselves: never show them.
                let losers: Vec<&str> = contenders.iter().skip(1).map(|c| c.id.as_str()).collect();
                let kept: Vec<KeyRecord> = after
                    .into_iter()
                    .filter(|r| !losers.contains(&r.id.as_str()))
                    .collect();
                self.replace_owner_keys(&spec.owner, &kept);
                self.apply(Change::Upsert(Box::new(credential.clone())));
                Ok((credential, Created::New))
            }
        }
    }

    /// Whether AWS answered "nothing" for `owner` within the last moment.
    fn just_missed(&self, owner: &Email) -> bool {
        self.misses
            .lock()
            .expect("misses lock")
            .get(owner)
            .is_some_and(|at| at.elapsed() < JUST_MISSED)
    }

    /// The clients in the pool made for `app`, smallest id first.
    async fn clients_of_app(&self, clients: &AppClients, app: &AppId) -> Result<Vec<String>> {
        let mut ids: Vec<String> = clients
            .list(&self.aws)
            .await?
            .into_iter()
            .filter(|(_, name)| {
                cognito::parse_client_name(name).is_some_and(|(found, _, _)| &found == app)
            })
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn create_client(&self, spec: &CredentialSpec) -> Result<(Credential, Created)> {
        let clients = self.clients()?;
        let app = app_key(&spec.app).app_id();
        if let Some(existing_id) = self.clients_of_app(clients, &app).await?.into_iter().next() {
            if let Some(existing) = self.describe_with_companion(clients, &existing_id).await? {
                self.apply(Change::Upsert(Box::new(existing.clone())));
                return Ok((existing, Created::Existing));
            }
        }
        let mut mine = clients.create(&self.aws, spec).await?;
        let winner = match self.clients_of_app(clients, &app).await {
            Ok(ids) => ids.into_iter().next(),
            Err(err) => {
                delete_client_after_failure(&self.aws, clients, &mine.id).await;
                return Err(err);
            }
        };
        if let Some(winner_id) = winner.filter(|w| *w != mine.id) {
            delete_client_after_failure(&self.aws, clients, &mine.id).await;
            if let Some(winner) = self.describe_with_companion(clients, &winner_id).await? {
                self.apply(Change::Upsert(Box::new(winner.clone())));
                return Ok((winner, Created::Existing));
            }
        }
        if self.settings.client_api_key && !spec.usage_plans.is_empty() {
            match self.keys.create(&self.aws, spec, Some(&mine.id)).await {
                Ok(key) => add_companion(&mut mine, &key),
                Err(err) => {
                    // All or nothing: no client without its key.
                    delete_client_after_failure(&self.aws, clients, &mine.id).await;
                    return Err(err);
                }
            }
        }
        mine.usage_plans = spec.usage_plans.clone();
        mine.api_ids = spec.api_ids.clone();
        self.apply(Change::Upsert(Box::new(mine.clone())));
        Ok((mine, Created::New))
    }

    async fn describe_with_companion(
        &self,
        clients: &AppClients,
        client_id: &str,
    ) -> Result<Option<Credential>> {
        let Some(mut credential) = clients.describe(&self.aws, client_id).await? else {
            return Ok(None);
        };
        if self.settings.client_api_key {
            let records = self.keys.list_owner(&self.aws, &credential.owner).await?;
            attach_companion(&mut credential, &records);
        }
        Ok(Some(credential))
    }

    /// Finds the credential `target` names: in the index, else (by id) in
    /// AWS, where its kind says to look.
    async fn resolve(&self, target: &CredentialRef) -> Result<Option<Credential>> {
        if let Some(found) = self.indexed(target) {
            return Ok(Some(found));
        }
        let CredentialRef::Id(id, _) = target else {
            return Ok(None);
        };
        match target.kind() {
            CredentialKind::ApiKey => Ok(self
                .keys
                .get(&self.aws, id)
                .await?
                .and_then(|r| r.credential())),
            CredentialKind::ClientCredentials => {
                self.describe_with_companion(self.clients()?, id).await
            }
        }
    }
}

/// Which of several credentials made for one app wins: the first made
/// (AWS dates have whole seconds), then the smallest id. Every replica
/// computes the same answer from the same listing.
fn first_made(a: &Credential, b: &Credential) -> std::cmp::Ordering {
    a.created_at_ms
        .cmp(&b.created_at_ms)
        .then_with(|| a.id.cmp(&b.id))
}

/// Best effort: the caller already has an outcome to report.
async fn delete_client_after_failure(aws: &Aws, clients: &AppClients, client_id: &str) {
    if let Err(err) = clients.delete(aws, client_id).await {
        tracing::error!(client_id, error = %err, "could not delete a half-made app client; delete it by hand");
    }
}

/// Adds a companion API key's id and value to a client credential.
fn add_companion(credential: &mut Credential, key: &KeyRecord) {
    credential
        .custom
        .insert("apiKeyId".into(), Redacted::new(key.id.clone()));
    credential.custom.insert("apiKey".into(), key.value.clone());
}

fn attach_companion(credential: &mut Credential, records: &[KeyRecord]) {
    if let Some(key) = records
        .iter()
        .find(|r| r.enabled && r.companion_of() == Some(credential.id.as_str()))
    {
        add_companion(credential, key);
    }
}

#[async_trait]
impl CredentialProvider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    async fn find_by_owner(&self, owner: &Email) -> Result<Vec<Credential>> {
        let inner = &self.inner;
        let known = inner.index.read().expect("index lock").owned_by(owner);
        if !known.is_empty() {
            return Ok(known);
        }
        let ttl = Duration::from_secs(inner.settings.index_refresh_secs);
        let recently_missed = inner
            .misses
            .lock()
            .expect("misses lock")
            .get(owner)
            .is_some_and(|at| at.elapsed() < ttl);
        let loaded = *inner.loaded.borrow();
        if recently_missed || (loaded && !inner.aws.limiter.acquire_within(LOGIN_MAX_WAIT).await) {
            return Ok(Vec::new());
        }
        if !loaded {
            // Before the first load the index cannot answer: wait our turn.
            inner.aws.limiter.acquire().await;
        }
        match inner.keys.list_owner_unmetered(&inner.aws, owner).await {
            Ok(records) => {
                inner.replace_owner_keys(owner, &records);
                let found = inner.index.read().expect("index lock").owned_by(owner);
                if found.is_empty() {
                    inner
                        .misses
                        .lock()
                        .expect("misses lock")
                        .insert(owner.clone(), Instant::now());
                }
                Ok(found)
            }
            // The index has answered for this reader before: a throttled
            // AWS must not turn into a failed login.
            Err(err) if loaded => {
                tracing::warn!(error = %err, "AWS lookup of a login failed; answering from the index");
                Ok(Vec::new())
            }
            Err(err) => Err(err),
        }
    }

    async fn create(&self, spec: &CredentialSpec) -> Result<(Credential, Created)> {
        let inner = &self.inner;
        let _app = inner.app_lock(&spec.app).await;
        if let Some(existing) = inner.indexed(&CredentialRef::App(spec.app.clone(), spec.kind)) {
            return Ok((existing, Created::Existing));
        }
        match spec.kind {
            CredentialKind::ApiKey => inner.create_api_key(spec).await,
            CredentialKind::ClientCredentials => inner.create_client(spec).await,
        }
    }

    async fn update(&self, target: &CredentialRef, spec: &CredentialSpec) -> Result<Credential> {
        let inner = &self.inner;
        let _app = inner.app_lock(&spec.app).await;
        let current = inner
            .resolve(target)
            .await?
            .ok_or_else(|| CredentialError::NotFound(target.clone()))?;
        let mut updated = current.resynced(spec)?;
        match &current.secret {
            Secret::ApiKey { value } => {
                let record = KeyRecord {
                    id: current.id.clone(),
                    value: value.clone(),
                    name: current.owner.to_string(),
                    description: current.label.clone(),
                    enabled: true,
                    created_ms: current.created_at_ms,
                    tags: HashMap::new(),
                };
                inner.keys.sync(&inner.aws, &record, spec).await?;
            }
            Secret::ClientCredentials { .. } => {
                let clients = inner.clients()?;
                let app = app_key(&current.app);
                if !clients.update(&inner.aws, &current.id, &app, spec).await? {
                    inner.apply(Change::Remove(current.id.clone()));
                    return Err(CredentialError::NotFound(target.clone()));
                }
                if let Some(fresh) = clients.describe(&inner.aws, &current.id).await? {
                    updated.secret = fresh.secret;
                    updated.custom = fresh.custom;
                }
                if inner.settings.client_api_key {
                    inner.sync_companion(&mut updated, &current, spec).await?;
                }
            }
        }
        inner.apply(Change::Upsert(Box::new(updated.clone())));
        Ok(updated)
    }

    async fn revoke(&self, target: &CredentialRef) -> Result<Revoked> {
        let inner = &self.inner;
        let Some(current) = inner.resolve(target).await? else {
            return Ok(Revoked::NotFound);
        };
        let gone = match current.kind() {
            CredentialKind::ApiKey => match inner.settings.revoke {
                RevokeMode::Delete => inner.keys.delete(&inner.aws, &current.id).await?,
                RevokeMode::Disable => inner.keys.disable(&inner.aws, &current.id).await?,
            },
            CredentialKind::ClientCredentials => {
                if let Some(key_id) = current.custom.get("apiKeyId") {
                    inner.keys.delete(&inner.aws, key_id.expose()).await?;
                }
                inner.clients()?.delete(&inner.aws, &current.id).await?
            }
        };
        inner.apply(Change::Remove(current.id.clone()));
        Ok(if gone {
            Revoked::Revoked(Box::new(current))
        } else {
            Revoked::NotFound
        })
    }

    async fn health(&self) -> Result<()> {
        let inner = &self.inner;
        if !*inner.loaded.borrow() {
            return Err(CredentialError::Unavailable {
                operation: "load owner index",
                detail: "the first load from AWS has not finished".into(),
            });
        }
        let cached = inner
            .health
            .lock()
            .expect("health lock")
            .as_ref()
            .filter(|(at, _)| at.elapsed() < HEALTH_TTL)
            .map(|(_, result)| result.clone());
        let result = match cached {
            Some(result) => result,
            None => {
                let result = async {
                    inner.keys.ping(&inner.aws).await?;
                    if let Some(clients) = &inner.clients {
                        if !clients.pool_exists(&inner.aws).await? {
                            return Err(CredentialError::Backend {
                                operation: "DescribeUserPool",
                                detail: "the user pool does not exist".into(),
                            });
                        }
                    }
                    Ok(())
                }
                .await
                .map_err(|e: CredentialError| e.to_string());
                *inner.health.lock().expect("health lock") = Some((Instant::now(), result.clone()));
                result
            }
        };
        result.map_err(|detail| CredentialError::Unavailable {
            operation: "health check",
            detail,
        })
    }
}

impl Inner {
    /// Keeps a client's companion API key in step with the app's plans:
    /// made when plans appear, re-synced, deleted when none are left.
    async fn sync_companion(
        &self,
        updated: &mut Credential,
        current: &Credential,
        spec: &CredentialSpec,
    ) -> Result<()> {
        let existing = current.custom.get("apiKeyId").map(|id| id.expose().clone());
        match (existing, spec.usage_plans.is_empty()) {
            (Some(key_id), false) => {
                let record = KeyRecord {
                    id: key_id.clone(),
                    value: current.custom.get("apiKey").cloned().unwrap_or_default(),
                    name: current.owner.to_string(),
                    description: current.label.clone(),
                    enabled: true,
                    created_ms: 0,
                    tags: HashMap::new(),
                };
                self.keys.sync(&self.aws, &record, spec).await?;
                add_companion(updated, &record);
            }
            (Some(key_id), true) => {
                self.keys.delete(&self.aws, &key_id).await?;
                updated.custom.remove("apiKeyId");
                updated.custom.remove("apiKey");
            }
            (None, false) => {
                let key = self.keys.create(&self.aws, spec, Some(&current.id)).await?;
                add_companion(updated, &key);
            }
            (None, true) => {}
        }
        Ok(())
    }
}
