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
//! refresh interval. A login that will provision the reader a key does not
//! ask: the create reads AWS anyway (`first_login.rs`). So: a revoke
//! disappears from logins on this replica at once, and on other replicas at
//! their next refresh; an index no refresh has confirmed for three
//! intervals answers no login (`freshness.rs`).
//!
//! **Creates are idempotent and race-safe**: see `create.rs` and
//! `claims.rs`.
//!
//! Where each concern lives:
//! - this file: the provider, its state, and the [`CredentialProvider`] trait;
//! - `call.rs`: SDK clients, the metered call wrapper, AWS error sorting;
//! - `sync.rs`: the owner index, its refresh, journal, and the settling of
//!   what no app keeps;
//! - `claims.rs`: the claim table (one credential per app across replicas)
//!   and the settling decision; `ceiling.rs`: the API-key count in it;
//! - `freshness.rs`: how far the index is trusted, and the AWS confirmation
//!   of what it cannot vouch for;
//! - `create.rs`: race-safe creates and companion API keys;
//!   `first_login.rs`: a reader's first key in the fewest calls;
//! - `lineage.rs`: where end dates and rotations are recorded in AWS;
//!   `lifecycle.rs`: rotation and end dates; `retire.rs`: revoking, the
//!   sweeper, the admin listing;
//! - `health.rs`: the readiness cache and `keyhook check`'s report;
//! - `identity.rs`: app identities as AWS stores them;
//! - `apigateway.rs`, `cognito.rs`: the two services' calls and record shapes;
//! - `audit.rs`: `keyhook audit`, read-only, and its repairs;
//! - `limiter.rs`: the token bucket; `settings.rs`: the configuration.

mod apigateway;
mod audit;
mod call;
mod ceiling;
mod claims;
pub mod cognito;
mod create;
mod first_login;
mod freshness;
mod health;
mod identity;
mod lifecycle;
mod limiter;
mod lineage;
mod retire;
pub mod settings;
mod sync;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;

pub use call::load_sdk_config;
pub use identity::{app_key, AppKey, AppKeys};

use super::{
    AppId, Claim, Created, Credential, CredentialError, CredentialKind, CredentialProvider,
    CredentialRef, CredentialSpec, Email, Listed, Origin, Result, Revoked, Rotation, Secret,
};
use crate::clock::Clock;
use apigateway::{ApiKeys, KeyRecord};
use call::Aws;
use claims::Claims;
use cognito::AppClients;
use settings::AwsSettings;
use sync::{Change, OwnerIndex};

/// How long a login waits for the token bucket before answering from the
/// index alone.
const LOGIN_MAX_WAIT: Duration = Duration::from_millis(250);

struct Inner {
    aws: Aws,
    keys: ApiKeys,
    clients: Option<AppClients>,
    /// The claim table, when one is configured (`claims.rs`).
    claims: Option<Claims>,
    /// What the last refresh read of it: what logins are shown while it
    /// cannot be read.
    last_claims: Mutex<Option<claims::ClaimMap>>,
    settings: AwsSettings,
    /// The plan `check` and health look at, when one is configured.
    usage_plan_id: Option<String>,
    owners: OwnerIndex,
    app_locks: Mutex<HashMap<AppId, Weak<tokio::sync::Mutex<()>>>>,
    health: Mutex<health::HealthCache>,
    /// Wall-clock time: how old a duplicate key is, what has expired.
    clock: Clock,
    /// The disabled keys keyhook made, as the last refresh found them
    /// (the admin listing).
    disabled: Mutex<Vec<Credential>>,
    /// Apps whose last create here failed (`first_login.rs`).
    failed_creates: first_login::FailedCreates,
    /// `KEYHOOK_MAX_KEYS`: with the claim table, creates count against it
    /// across replicas (`ceiling.rs`).
    max_keys: usize,
}

pub struct AwsProvider {
    inner: Arc<Inner>,
}

impl AwsProvider {
    /// Builds the clients and starts loading the owner index in the
    /// background; `health` reports unready until the first load is done.
    /// `max_keys`: `KEYHOOK_MAX_KEYS`, which creates count against across
    /// replicas with the claim table (`ceiling.rs`).
    pub fn start(
        settings: &AwsSettings,
        usage_plan_id: Option<String>,
        max_keys: usize,
        sdk: &SdkConfig,
        clock: Clock,
    ) -> Self {
        let provider = Self::build(settings, usage_plan_id, sdk, clock, max_keys);
        match &settings.claim_table {
            Some(table) => tracing::info!(table = %table, "app claims in DynamoDB: one credential per app across replicas"),
            None => tracing::warn!("no claim table (KEYHOOK_CLAIM_TABLE): one credential per app holds with one replica only; run several replicas only with a claim table"),
        }
        tokio::spawn(sync::refresh_loop(Arc::downgrade(&provider.inner)));
        provider
    }

    /// Builds the clients only: no index, no background work. Enough for
    /// [`AwsProvider::verify`].
    /// `usage_plan_id` is the plan `check` verifies, when one is configured.
    pub fn new(
        settings: &AwsSettings,
        usage_plan_id: Option<String>,
        sdk: &SdkConfig,
        clock: Clock,
    ) -> Self {
        let max_keys = crate::metrics::MAX_KEYS_DEFAULT;
        Self::build(settings, usage_plan_id, sdk, clock, max_keys)
    }

    fn build(
        settings: &AwsSettings,
        usage_plan_id: Option<String>,
        sdk: &SdkConfig,
        clock: Clock,
        max_keys: usize,
    ) -> Self {
        let settings = settings.clone();
        let sdk = call::sdk_clients(&settings, sdk);
        let clients = settings
            .cognito_user_pool_id
            .clone()
            .map(|pool| AppClients::new(sdk.cognito, pool, &settings));
        let claims = settings
            .claim_table
            .clone()
            .map(|table| Claims::new(sdk.dynamodb, table));
        let inner = Arc::new(Inner {
            aws: Aws::new(settings.rate_limit),
            keys: ApiKeys::new(sdk.apigateway, settings.claim_table.clone()),
            clients,
            claims,
            last_claims: Mutex::new(None),
            usage_plan_id,
            settings,
            owners: OwnerIndex::new(),
            app_locks: Mutex::new(HashMap::new()),
            health: Mutex::new(None),
            clock,
            disabled: Mutex::new(Vec::new()),
            failed_creates: first_login::FailedCreates::default(),
            max_keys,
        });
        AwsProvider { inner }
    }
}

impl Inner {
    /// The credential `target` names, if the index knows it.
    fn indexed(&self, target: &CredentialRef) -> Option<Credential> {
        match target {
            CredentialRef::App(app, kind) => {
                let keys = AppKeys::of(app);
                let find = |app: &AppId| {
                    self.owners
                        .resolve(&CredentialRef::App(app.clone(), *kind))
                        .filter(|found| keys.names(&found.app, &found.owner))
                };
                find(keys.current()).or_else(|| find(keys.previous()?.0))
            }
            CredentialRef::Id(..) => self.owners.resolve(target),
        }
    }

    /// Finds the credential `target` names: in the index, else (by id) in
    /// AWS, where its kind says to look.
    async fn resolve(&self, target: &CredentialRef) -> Result<Option<Credential>> {
        if let Some(found) = self.indexed(target) {
            return Ok(Some(found));
        }
        let CredentialRef::Id(id, ..) = target else {
            return Ok(None);
        };
        self.look_up(target.kind(), id).await
    }

    /// Now (wall clock, Unix ms) and how old a credential no claim holds
    /// must be before it is settled (`AwsSettings::settle_after`), in ms.
    fn settle_window(&self) -> (u64, u64) {
        let now = u64::try_from((self.clock)()).unwrap_or_default();
        (now, self.settings.settle_after().as_millis() as u64)
    }

    fn clients(&self) -> Result<&AppClients> {
        self.clients.as_ref().ok_or_else(|| {
            CredentialError::Invalid(
                "client credentials need a Cognito user pool (KEYHOOK_COGNITO_USER_POOL_ID)".into(),
            )
        })
    }
}

impl Inner {
    /// Brings `current` in AWS in step with `spec`: the key's name (its
    /// owner), description (label) and plans, or the client's name and
    /// scopes (and its companion key); then the index.
    async fn resync(&self, current: Credential, spec: &CredentialSpec) -> Result<Credential> {
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
                    customer_id: String::new(),
                };
                self.keys.sync(&self.aws, &record, spec).await?;
            }
            Secret::ClientCredentials { .. } => {
                let clients = self.clients()?;
                let app = app_key(&current.app);
                // The name keeps its lifecycle fields: read them first.
                let mut fields = lineage::NameFields::default();
                if current.expires_at_ms.is_some() || current.replaces.is_some() {
                    match clients.describe_fields(&self.aws, &current.id).await? {
                        Some((_, found)) => fields = found,
                        None => fields.expires = current.expires_at_ms,
                    }
                }
                let named = (&app, &fields);
                if !clients.update(&self.aws, &current.id, named, spec).await? {
                    self.owners.apply(Change::Remove(current.id.clone()));
                    return Err(CredentialError::NotFound(CredentialRef::Id(
                        current.id.clone(),
                        current.kind(),
                        Claim::None,
                    )));
                }
                if let Some(fresh) = clients.describe(&self.aws, &current.id).await? {
                    updated.secret = fresh.secret;
                    updated.custom = fresh.custom;
                }
                if self.settings.client_api_key {
                    self.sync_companion(&mut updated, &current, spec).await?;
                }
            }
        }
        self.owners.apply(Change::Upsert(Box::new(updated.clone())));
        Ok(updated)
    }
}

impl Inner {
    /// Re-syncs `current` and its partners (the app's successor and its
    /// predecessor in grace alike) with `spec`; answers `current`.
    async fn resync_unit(&self, current: Credential, spec: &CredentialSpec) -> Result<Credential> {
        let partners = self.partners(&current);
        // Boxed: two resyncs inline make a future too big for a debug
        // build's stack.
        let updated = Box::pin(self.resync(current, spec)).await?;
        for partner in partners {
            let partner = Box::pin(self.resync(partner, spec)).await?;
            // Audited here: the portal's change is audited with `current`.
            crate::telemetry::audit::by("sensedia", "updated", &partner);
        }
        Ok(updated)
    }
}

/// Whether a request's app identity names a credential's, as AWS stores it
/// (hashed, see [`AppKeys`]).
fn same_app(requested: &AppId, found: &Credential) -> bool {
    AppKeys::of(requested).names(&app_key(&found.app).app_id(), &found.owner)
}

#[async_trait]
impl CredentialProvider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn is_app(&self, requested: &AppId, credential: &Credential) -> bool {
        same_app(requested, credential)
    }

    fn holds_app(&self, app: &AppId, kind: CredentialKind) -> bool {
        self.inner
            .indexed(&CredentialRef::App(app.clone(), kind))
            .is_some()
    }

    fn census(&self, since_ms: u64) -> super::Census {
        self.inner.owners.census(since_ms)
    }

    async fn find_by_owner(&self, owner: &Email) -> Result<Vec<Arc<Credential>>> {
        let inner = &self.inner;
        if let Some(why) = inner.staleness() {
            return inner.login_unconfirmed(owner, why).await;
        }
        let known = inner.owners.owned_by(owner);
        if !known.is_empty() {
            return Ok(known);
        }
        let ttl = Duration::from_secs(inner.settings.index_refresh_secs);
        let recently_missed = inner.owners.missed(owner, ttl);
        let loaded = inner.owners.is_loaded();
        if recently_missed || (loaded && !inner.aws.limiter.acquire_within(LOGIN_MAX_WAIT).await) {
            return Ok(Vec::new());
        }
        if !loaded {
            // Before the first load the index cannot answer: wait our turn.
            inner.aws.limiter.acquire().await;
        }
        let looked_up = async {
            let records = inner.keys.list_owner_unmetered(&inner.aws, owner).await?;
            inner.replace_owner_keys(owner, &records).await
        };
        match looked_up.await {
            Ok(()) => {
                let found = inner.owners.owned_by(owner);
                if found.is_empty() {
                    inner.owners.record_miss(owner);
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

    /// Without the claim table, a reader the index does not know is not
    /// looked up: the create that follows re-reads the owner's keys anyway
    /// (`first_login.rs`). With the table, as any login: the claim decides
    /// per app, and only the lookup finds a key of another app (a portal's)
    /// made on another replica since the last refresh, which must not earn
    /// the reader a second key. Before the first load, or with the index
    /// stale, as any login.
    async fn find_to_provision(&self, owner: &Email) -> Result<Vec<Arc<Credential>>> {
        let inner = &self.inner;
        if inner.claims.is_some() || !inner.owners.is_loaded() || inner.staleness().is_some() {
            return self.find_by_owner(owner).await;
        }
        Ok(inner.owners.owned_by(owner))
    }

    async fn create(&self, spec: &CredentialSpec) -> Result<(Credential, Created)> {
        let inner = &self.inner;
        let _app = inner.app_lock(&spec.app).await;
        let target = CredentialRef::App(spec.app.clone(), spec.kind);
        let indexed = match inner.indexed_and_confirmed(&target).await? {
            Some(existing) => Some(Box::pin(inner.claimed_head(existing)).await?),
            None => None,
        };
        let indexed = match indexed {
            // Past its end (a provisioned key's lifetime): revoked, and
            // the app made a fresh one.
            Some(existing) if existing.is_expired(inner.settle_window().0) => {
                Box::pin(inner.retire_expired(&existing)).await?;
                None
            }
            indexed => indexed,
        };
        let made = match indexed {
            Some(existing) => (existing, Created::Existing),
            None => match spec.kind {
                CredentialKind::ApiKey => inner.create_api_key(spec).await?,
                CredentialKind::ClientCredentials => inner.create_client(spec).await?,
            },
        };
        match made {
            // The app's credential follows the app: a new developer, label
            // or plans are applied before answering. A reader's own key has
            // a fixed owner and label, and provisioning's IAM policy grants
            // no plan listing: it is returned as found.
            (existing, Created::Existing)
                if !existing.matches(spec) && spec.origin == Origin::Sensedia =>
            {
                let updated = Box::pin(inner.resync_unit(existing, spec)).await?;
                Ok((updated, Created::Updated))
            }
            made => Ok(made),
        }
    }

    async fn update(&self, target: &CredentialRef, spec: &CredentialSpec) -> Result<Credential> {
        let inner = &self.inner;
        let _app = inner.app_lock(&spec.app).await;
        let current = target.admit(inner.resolve(target).await?, same_app)?;
        Box::pin(inner.resync_unit(current, spec)).await
    }

    async fn revoke(&self, target: &CredentialRef) -> Result<Revoked> {
        let inner = &self.inner;
        let current = target.admit(inner.resolve(target).await?, same_app)?;
        Box::pin(inner.revoke_app(current)).await
    }

    async fn health(&self) -> Result<()> {
        self.inner.health().await
    }

    async fn list(&self) -> Result<Vec<Listed>> {
        Ok(self.inner.list())
    }

    async fn rotate(&self, id: &str, until_ms: u64) -> Result<Rotation> {
        self.inner.rotate(id, until_ms).await
    }

    async fn set_expiry(&self, id: &str, expires_at_ms: Option<u64>) -> Result<Credential> {
        self.inner.set_expiry(id, expires_at_ms).await
    }

    async fn revoke_by_id(&self, id: &str) -> Result<Revoked> {
        self.inner.revoke_by_id(id).await
    }

    async fn sweep(&self, now_ms: u64) -> Result<Vec<Credential>> {
        self.inner.sweep(now_ms).await
    }

    async fn audit(&self, now_ms: u64) -> Result<Vec<super::Finding>> {
        self.inner.audit(now_ms).await
    }

    async fn repair(&self, findings: &[super::Finding]) -> Result<Vec<super::Repair>> {
        self.inner.repair(findings).await
    }
}
