//! The embedded local store: the default backend, so keyhook runs with no AWS
//! account at all.
//!
//! Credentials live in a redb database (`<data_dir>/keyhook.redb`); every
//! write is a committed, fsynced transaction before it is acknowledged, so a
//! crash loses nothing a caller was told exists. Reads are served from an
//! in-memory copy kept in step with the database, which is what keeps logins
//! cheap. Writers are serialised, which makes "find the app's credential, or
//! create it" atomic: concurrent first logins or portal retries converge on
//! one credential. Health is whether a commit succeeds now: the last
//! commit's word, or a probe commit's.
//!
//! (Past 300 lines only with its unit tests. The file itself, opened,
//! committed to and reopened after a failed commit, is `disk.rs`; the row
//! format `row.rs`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::index::Index;
use super::{
    generate, AppId, Census, Created, Credential, CredentialError, CredentialKind,
    CredentialProvider, CredentialRef, CredentialSpec, Email, FailureKind, Finding, Listed, Repair,
    Result, Revoked, Rotation, Secret,
};
use crate::clock::Clock;
use crate::secret::Redacted;

mod disk;
mod lifecycle;
mod row;

pub use disk::StoreError;
use disk::{Change, Disk};

pub const FILE_NAME: &str = "keyhook.redb";

/// How long a successful commit vouches for the next one (`/readyz` is
/// probed often; a probe commit waits for fsync).
const HEALTHY_FOR: Duration = Duration::from_secs(5);
/// How long a failed one stands before a probe tries again.
const FAILED_FOR: Duration = Duration::from_secs(1);

pub struct LocalStore {
    /// The file, behind the writers' lock: a lookup and the write that
    /// follows it are one atomic step. The lock's guard goes with the
    /// commit onto the blocking pool, so a request cancelled mid-commit
    /// neither lets another writer in nor leaves the index behind the file.
    disk: Arc<Mutex<Disk>>,
    index: Arc<RwLock<Index>>,
    /// What the last commit said, and when: what health answers.
    verdict: Arc<std::sync::Mutex<Option<Verdict>>>,
    /// When a credential is made.
    clock: Clock,
}

struct Verdict {
    at: Instant,
    failure: Option<CredentialError>,
}

/// A store failure: answered as `storage_failed` and the step that failed;
/// the underlying error (and the path, which says where the data lives)
/// goes to the log only.
fn storage_error(operation: &'static str, err: impl std::fmt::Display) -> CredentialError {
    CredentialError::Failed {
        operation,
        kind: FailureKind::StorageFailed,
        detail: err.to_string(),
    }
}

impl LocalStore {
    /// Opens (or creates) the store in `data_dir` and loads it into memory;
    /// `clock` dates the credentials it makes. A damaged file is refused
    /// with an error naming it.
    pub fn open(data_dir: &Path, clock: Clock) -> Result<Self, StoreError> {
        let (disk, index) = Disk::open(data_dir, FILE_NAME)?;
        publish(&index);
        Ok(LocalStore {
            disk: Arc::new(Mutex::new(disk)),
            index: Arc::new(RwLock::new(index)),
            verdict: Arc::default(),
            clock,
        })
    }

    /// Reads the store in `data_dir`, if there is one, without changing
    /// it (`keyhook check`): what an operator should know of it.
    pub fn verify(data_dir: &Path) -> Result<String, StoreError> {
        let path = data_dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(format!("{} will be created", path.display()));
        }
        Ok(match Disk::verify(&path)? {
            Some(n) => format!("{} holds {n} credential(s) and is readable", path.display()),
            None => format!("{} is open in a running keyhook (not read)", path.display()),
        })
    }

    /// The health the last commit vouches for, if recent enough.
    fn fresh_verdict(&self) -> Option<Result<()>> {
        let verdict = self.verdict.lock().expect("verdict lock");
        let verdict = verdict.as_ref()?;
        let age = verdict.at.elapsed();
        match &verdict.failure {
            None if age < HEALTHY_FOR => Some(Ok(())),
            Some(err) if age < FAILED_FOR => Some(Err(err.clone())),
            _ => None,
        }
    }

    /// Number of active credentials.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.index.read().expect("index lock").len()
    }

    /// Takes the writers' lock; after a failed commit, first reopens the
    /// file and reloads the index from it, so the lookup that follows sees
    /// exactly what the file holds.
    async fn writer(&self) -> Result<OwnedMutexGuard<Disk>> {
        let disk = Arc::clone(&self.disk).lock_owned().await;
        if disk.is_open() {
            return Ok(disk);
        }
        let index = Arc::clone(&self.index);
        tokio::task::spawn_blocking(move || {
            let mut disk = disk;
            disk.reopen(&index).map(|()| disk)
        })
        .await
        .map_err(|e| storage_error("open store", e))?
    }

    /// Commits one change to disk, then to the index, and records what the
    /// commit said for health. Runs on the blocking pool: a commit waits
    /// for fsync.
    async fn commit(
        &self,
        disk: OwnedMutexGuard<Disk>,
        operation: &'static str,
        change: Change,
    ) -> Result<()> {
        let (index, verdict) = (Arc::clone(&self.index), Arc::clone(&self.verdict));
        tokio::task::spawn_blocking(move || {
            let mut disk = disk;
            let result = disk.commit(operation, &index, change);
            publish(&index.read().expect("index lock"));
            record(&verdict, &result);
            result
        })
        .await
        .map_err(|e| storage_error(operation, e))?
    }

    /// Stores `credential` (replacing the one with its id), then indexes it.
    async fn put(
        &self,
        disk: OwnedMutexGuard<Disk>,
        operation: &'static str,
        credential: Credential,
    ) -> Result<Credential> {
        let row = row::encode(&credential).map_err(|e| storage_error(operation, e))?;
        self.commit(
            disk,
            operation,
            Change::Put(Box::new(credential.clone()), row),
        )
        .await?;
        Ok(credential)
    }

    /// Re-syncs `named` and the rest of its app (a rotation's successor and
    /// predecessor) with `spec`, in one transaction; answers `named`.
    async fn resync_group(
        &self,
        disk: OwnedMutexGuard<Disk>,
        named: &Credential,
        spec: &CredentialSpec,
    ) -> Result<Credential> {
        let mut answer = named.resynced(spec)?;
        let mut changes = Vec::new();
        for member in self.app_group(named) {
            let resynced = member.resynced(spec)?;
            if resynced.id == named.id {
                answer = resynced.clone();
            }
            changes.push(Self::put_change("update credential", resynced)?);
        }
        if changes.is_empty() {
            changes.push(Self::put_change("update credential", answer.clone())?);
        }
        self.commit(disk, "update credential", Change::All(changes))
            .await?;
        Ok(answer)
    }

    fn resolve(&self, target: &CredentialRef) -> Option<Credential> {
        self.index
            .read()
            .expect("index lock")
            .resolve(target)
            .cloned()
    }

    fn new_credential(&self, spec: &CredentialSpec) -> Credential {
        let (id, secret) = match spec.kind {
            CredentialKind::ApiKey => (
                generate::api_key_id(),
                Secret::ApiKey {
                    value: Redacted::new(generate::api_key_value()),
                },
            ),
            CredentialKind::ClientCredentials => (
                generate::client_id(),
                Secret::ClientCredentials {
                    client_secret: Redacted::new(generate::client_secret()),
                    scopes: Vec::new(),
                },
            ),
        };
        Credential {
            id,
            owner: spec.owner.clone(),
            app: spec.app.clone(),
            label: spec.label.clone(),
            origin: spec.origin,
            secret,
            usage_plans: spec.usage_plans.clone(),
            api_ids: spec.api_ids.clone(),
            custom: BTreeMap::new(),
            created_at_ms: self.now_ms(),
            expires_at_ms: spec.expires_at_ms,
            replaces: None,
        }
    }
}

#[async_trait]
impl CredentialProvider for LocalStore {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn find_by_owner(&self, owner: &Email) -> Result<Vec<Arc<Credential>>> {
        Ok(self.index.read().expect("index lock").owned_by(owner))
    }

    fn holds_app(&self, app: &AppId, kind: CredentialKind) -> bool {
        self.resolve(&CredentialRef::App(app.clone(), kind))
            .is_some()
    }

    fn census(&self, since_ms: u64) -> Census {
        self.index.read().expect("index lock").census(since_ms)
    }

    async fn create(&self, spec: &CredentialSpec) -> Result<(Credential, Created)> {
        let disk = self.writer().await?;
        let now = self.now_ms();
        if let Some(existing) = self.resolve(&CredentialRef::App(spec.app.clone(), spec.kind)) {
            if existing.is_expired(now) {
                // Its end date has come (a provisioned key's lifetime): the
                // app gets a fresh credential, in the same transaction as
                // the old ones go.
                let mut changes: Vec<Change> = self
                    .app_group(&existing)
                    .iter()
                    .map(|c| Change::Delete(c.id.clone()))
                    .collect();
                let fresh = self.new_credential(spec);
                changes.push(Self::put_change("store credential", fresh.clone())?);
                self.commit(disk, "store credential", Change::All(changes))
                    .await?;
                return Ok((fresh, Created::New));
            }
            // The app's credential follows the app: a new developer, label
            // or plans are applied (to a predecessor in grace too); a retry
            // finds it as it is.
            if existing.matches(spec) {
                return Ok((existing, Created::Existing));
            }
            let updated = self.resync_group(disk, &existing, spec).await?;
            return Ok((updated, Created::Updated));
        }
        let credential = self
            .put(disk, "store credential", self.new_credential(spec))
            .await?;
        Ok((credential, Created::New))
    }

    async fn update(&self, target: &CredentialRef, spec: &CredentialSpec) -> Result<Credential> {
        let disk = self.writer().await?;
        let named = target.admit(self.resolve(target), |app, found| *app == found.app)?;
        self.resync_group(disk, &named, spec).await
    }

    /// Revokes the credential named and, after a rotation, the rest of its
    /// app (successor and predecessor go together).
    async fn revoke(&self, target: &CredentialRef) -> Result<Revoked> {
        let disk = self.writer().await?;
        let credential = target.admit(self.resolve(target), |app, found| *app == found.app)?;
        let deletes = self
            .app_group(&credential)
            .iter()
            .map(|c| Change::Delete(c.id.clone()))
            .collect();
        self.commit(disk, "revoke credential", Change::All(deletes))
            .await?;
        Ok(Revoked::Revoked(Box::new(credential)))
    }

    async fn list(&self) -> Result<Vec<Listed>> {
        Ok(self.listed())
    }

    async fn rotate(&self, id: &str, until_ms: u64) -> Result<Rotation> {
        self.rotate_now(id, until_ms).await
    }

    async fn set_expiry(&self, id: &str, expires_at_ms: Option<u64>) -> Result<Credential> {
        self.set_expiry_now(id, expires_at_ms).await
    }

    async fn revoke_by_id(&self, id: &str) -> Result<Revoked> {
        self.revoke_id(id).await
    }

    async fn sweep(&self, now_ms: u64) -> Result<Vec<Credential>> {
        self.sweep_now(now_ms).await
    }

    async fn audit(&self, now_ms: u64) -> Result<Vec<Finding>> {
        Ok(self.audit_now(now_ms))
    }

    async fn repair(&self, findings: &[Finding]) -> Result<Vec<Repair>> {
        self.repair_now(findings).await
    }

    /// Ready when a commit succeeds now: vouched for by the last commit
    /// (a write or a probe) for a few seconds, else proved by a probe
    /// commit, which also reopens a store closed by a failed commit.
    async fn health(&self) -> Result<()> {
        if let Some(answer) = self.fresh_verdict() {
            return answer;
        }
        let disk = Arc::clone(&self.disk).lock_owned().await;
        // Another probe may have answered while this one waited.
        if let Some(answer) = self.fresh_verdict() {
            return answer;
        }
        let now = u64::try_from((self.clock)()).unwrap_or_default();
        self.commit(disk, "write store", Change::Probe(now)).await
    }
}

/// The index's size and its API keys, for `/metrics` (the key budget
/// counts the store's keys as the AWS backend counts the region's).
fn publish(index: &Index) {
    crate::metrics::owner_index_size(index.len());
    let keys = index
        .credentials()
        .filter(|c| c.kind() == CredentialKind::ApiKey);
    crate::metrics::api_keys(keys.count());
}

/// Records what a commit said; logs when the store stops, or starts again,
/// committing (not at every failed probe).
fn record(verdict: &std::sync::Mutex<Option<Verdict>>, result: &Result<()>) {
    let mut verdict = verdict.lock().expect("verdict lock");
    let was_failing = verdict.as_ref().is_some_and(|v| v.failure.is_some());
    let failure = result.as_ref().err().cloned();
    match (&failure, was_failing) {
        (Some(err), false) => tracing::error!(
            error = %err,
            "the local store cannot commit: it answers unready, and reopens its file at the next \
             write or probe"
        ),
        (None, true) => tracing::info!("the local store commits again"),
        _ => {}
    }
    *verdict = Some(Verdict {
        at: Instant::now(),
        failure,
    });
}

#[cfg(test)]
mod tests {
    use super::disk::{CREDENTIALS, CURRENT_FORM, FORM, META};
    use super::*;
    use crate::credentials::{AppId, Claim};
    use redb::Database;

    fn spec(owner: &str, app: &str, kind: CredentialKind) -> CredentialSpec {
        let owner = Email::parse(owner).unwrap();
        CredentialSpec {
            kind,
            app: AppId::sensedia_slug(app),
            owner,
            label: format!("app {app}"),
            origin: super::super::Origin::Sensedia,
            api_ids: vec!["a1b2c3d4e5".into()],
            usage_plans: vec!["plan01".into()],
            expires_at_ms: None,
        }
    }

    /// A store as the previous version left it: its rows, no `meta` table.
    fn previous_versions_store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(CREDENTIALS).unwrap();
            for (id, row) in row::previous_rows() {
                table.insert(id, row.as_bytes()).unwrap();
            }
        }
        txn.commit().unwrap();
        dir
    }

    #[tokio::test]
    async fn a_store_written_by_the_previous_version_loads() {
        let dir = previous_versions_store();
        let store = LocalStore::open(dir.path(), crate::clock::fixed(0)).unwrap();
        let found = store
            .find_by_owner(&Email::parse("dev@corp.com").unwrap())
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        let (key, client) = (&found[0], &found[1]);
        assert_eq!(key.id, "key1");
        assert_eq!(key.app, AppId::sensedia_slug("app1"));
        assert_eq!(key.origin, super::super::Origin::Sensedia);
        assert_eq!(
            key.secret,
            Secret::ApiKey {
                value: Redacted::new("kv-1".into())
            }
        );
        assert_eq!(key.usage_plans, ["plan01"]);
        assert_eq!(key.created_at_ms, 1_700_000_000_000);
        assert_eq!(
            client.secret,
            Secret::ClientCredentials {
                client_secret: Redacted::new("cs-1".into()),
                scopes: vec!["read".into(), "write".into()],
            }
        );
        assert_eq!(client.custom["apiKeyId"].expose(), "key2");
        assert_eq!(client.custom["apiKey"].expose(), "kv-2");
    }

    /// A portal's retry after the upgrade finds the credential it made
    /// before, for every form of identity the previous version wrote; so
    /// does a reader's login.
    #[tokio::test]
    async fn after_the_upgrade_retries_and_logins_find_what_was_stored() {
        let dir = previous_versions_store();
        let named = |developer: &str, app: &str, owner: &str| CredentialSpec {
            kind: CredentialKind::ApiKey,
            owner: Email::parse(owner).unwrap(),
            app: AppId::sensedia_named(&Email::parse(developer).unwrap(), app),
            label: app.into(),
            origin: super::super::Origin::Sensedia,
            api_ids: Vec::new(),
            usage_plans: Vec::new(),
            expires_at_ms: None,
        };
        for reopened in [false, true] {
            let store = LocalStore::open(dir.path(), crate::clock::fixed(0)).unwrap();
            for (spec, id) in [
                (named("a/b@corp.com", "Billing", "a/b@corp.com"), "key3"),
                (named("a%b@corp.com", "x/y", "ann@corp.com"), "key4"),
            ] {
                let (found, created) = store.create(&spec).await.unwrap();
                assert_eq!((found.id.as_str(), reopened), (id, reopened));
                assert_ne!(created, Created::New);
            }
            let john = Email::parse("jöhn@example.com").unwrap();
            let found = store.find_by_owner(&john).await.unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].id, "key6");
            let mut reader = named("x@corp.com", "Personal key", "jöhn@example.com");
            (reader.app, reader.origin) =
                (AppId::readme_reader(&john), super::super::Origin::Readme);
            assert_eq!(store.create(&reader).await.unwrap().0.id, "key6");
            // An owner today's rules refuse: no login names it, but its
            // credential is still there, reachable by id.
            assert!(Email::parse("old@b.c/x").is_err());
            let by_id = CredentialRef::Id("key5".into(), CredentialKind::ApiKey, Claim::None);
            assert_eq!(store.resolve(&by_id).unwrap().owner.as_str(), "old@b.c/x");
            assert_eq!(store.len(), 6);
        }
    }

    #[test]
    fn a_store_written_by_a_newer_keyhook_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(FORM, CURRENT_FORM + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = LocalStore::open(dir.path(), crate::clock::fixed(0))
            .err()
            .expect("a newer form is refused");
        assert!(err.to_string().contains("newer keyhook"), "{err}");
        // `check` says so too.
        let err = LocalStore::verify(dir.path()).expect_err("check refuses it");
        assert!(err.to_string().contains("newer keyhook"), "{err}");
    }

    #[tokio::test]
    async fn new_credentials_are_dated_by_the_injected_clock() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path(), crate::clock::fixed(1_234)).unwrap();
        let (created, _) = store
            .create(&spec("dev@corp.com", "app1", CredentialKind::ApiKey))
            .await
            .unwrap();
        assert_eq!(created.created_at_ms, 1_234);
    }

    #[tokio::test]
    async fn create_is_idempotent_per_app_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path(), crate::clock::system()).unwrap();
        let s = spec("dev@corp.com", "app1", CredentialKind::ApiKey);
        let (first, created) = store.create(&s).await.unwrap();
        assert_eq!(created, Created::New);
        let (again, created) = store.create(&s).await.unwrap();
        assert_eq!(created, Created::Existing);
        assert_eq!(first, again);
        let (other, created) = store
            .create(&spec(
                "dev@corp.com",
                "app1",
                CredentialKind::ClientCredentials,
            ))
            .await
            .unwrap();
        assert_eq!(created, Created::New);
        assert_ne!(other.id, first.id);
        assert_eq!(store.len(), 2);
    }

    #[tokio::test]
    async fn survives_reopen_and_revoke_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Email::parse("dev@corp.com").unwrap();
        let (kept, gone) = {
            let store = LocalStore::open(dir.path(), crate::clock::system()).unwrap();
            let (kept, _) = store
                .create(&spec("dev@corp.com", "a", CredentialKind::ApiKey))
                .await
                .unwrap();
            let (gone, _) = store
                .create(&spec("dev@corp.com", "b", CredentialKind::ApiKey))
                .await
                .unwrap();
            assert_eq!(
                store
                    .revoke(&CredentialRef::Id(
                        gone.id.clone(),
                        CredentialKind::ApiKey,
                        Claim::None
                    ))
                    .await
                    .unwrap(),
                Revoked::Revoked(Box::new(gone.clone()))
            );
            (kept, gone)
        };
        let store = LocalStore::open(dir.path(), crate::clock::system()).unwrap();
        let found = store.find_by_owner(&owner).await.unwrap();
        assert_eq!(found, vec![Arc::new(kept)]);
        assert!(matches!(
            store
                .revoke(&CredentialRef::Id(
                    gone.id,
                    CredentialKind::ApiKey,
                    Claim::None
                ))
                .await,
            Err(CredentialError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn concurrent_creates_converge_on_one_credential() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::open(dir.path(), crate::clock::system()).unwrap());
        let s = spec("dev@corp.com", "race", CredentialKind::ApiKey);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = Arc::clone(&store);
                let s = s.clone();
                tokio::spawn(async move { store.create(&s).await.unwrap().0 })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap().id);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1);
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn update_moves_owner_and_keeps_identity() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path(), crate::clock::system()).unwrap();
        let (created, _) = store
            .create(&spec("old@corp.com", "app", CredentialKind::ApiKey))
            .await
            .unwrap();
        let mut changed = spec("new@corp.com", "app", CredentialKind::ApiKey);
        changed.usage_plans = vec!["plan02".into(), "plan03".into()];
        changed.label = "renamed".into();
        let updated = store
            .update(
                &CredentialRef::Id(created.id.clone(), CredentialKind::ApiKey, Claim::None),
                &changed,
            )
            .await
            .unwrap();
        assert_eq!(updated.usage_plans, vec!["plan02", "plan03"]);
        assert_eq!(updated.label, "renamed");
        assert_eq!(updated.secret, created.secret);
        let old = Email::parse("old@corp.com").unwrap();
        let new = Email::parse("new@corp.com").unwrap();
        assert!(store.find_by_owner(&old).await.unwrap().is_empty());
        assert_eq!(
            store.find_by_owner(&new).await.unwrap(),
            vec![Arc::new(updated)]
        );
        let wrong_kind = spec("new@corp.com", "app", CredentialKind::ClientCredentials);
        assert!(matches!(
            store
                .update(
                    &CredentialRef::Id(created.id, CredentialKind::ApiKey, Claim::None),
                    &wrong_kind
                )
                .await,
            Err(CredentialError::Invalid(_))
        ));
    }
}
