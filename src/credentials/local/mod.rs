//! The embedded local store: the default backend, so keyhook runs with no AWS
//! account at all.
//!
//! Credentials live in a redb database (`<data_dir>/keyhook.redb`); every
//! write is a committed, fsynced transaction before it is acknowledged, so a
//! crash loses nothing a caller was told exists. Reads are served from an
//! in-memory copy kept in step with the database, which is what keeps logins
//! cheap. Writers are serialised, which makes "find the app's credential, or
//! create it" atomic: concurrent first logins or portal retries converge on
//! one credential.
//!
//! (Past 400 lines only with its unit tests. The row format is in `row.rs`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::Mutex;

use super::index::Index;
use super::{
    generate, Created, Credential, CredentialError, CredentialKind, CredentialProvider,
    CredentialRef, CredentialSpec, Email, FailureKind, Result, Revoked, Secret,
};
use crate::clock::Clock;
use crate::secret::Redacted;

mod row;

/// id -> JSON-encoded [`Credential`] (see `row.rs`). Only active credentials are stored:
/// revoking deletes the row.
const CREDENTIALS: TableDefinition<&str, &[u8]> = TableDefinition::new("credentials");

/// Facts about the store itself: which form its rows are in.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const FORM: &str = "form";
/// 1: the first versions (no `meta` table); 2: a named app's developer is
/// escaped in its identity where it must be (see `AppId`).
const CURRENT_FORM: u64 = 2;

pub const FILE_NAME: &str = "keyhook.redb";

pub struct LocalStore {
    db: Arc<Database>,
    /// Changed only together with a commit, on the same blocking task.
    index: Arc<RwLock<Index>>,
    /// Serialises writers so a lookup and the write that follows it are one
    /// atomic step.
    writer: Mutex<()>,
    /// When a credential is made.
    clock: Clock,
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

/// Brings the rows to [`CURRENT_FORM`] within `txn`, at every open: an
/// upgraded row is left as it is, and rows a previous version wrote after
/// a rollback are upgraded too. A store in a later form was written by a
/// newer keyhook, whose rows this one would misread: it is refused.
fn upgrade(txn: &redb::WriteTransaction) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| storage_error("upgrade store", e);
    let mut meta = txn.open_table(META).map_err(|e| failed(&e))?;
    let mut table = txn.open_table(CREDENTIALS).map_err(|e| failed(&e))?;
    let form = meta
        .get(FORM)
        .map_err(|e| failed(&e))?
        .map_or(1, |v| v.value());
    if form > CURRENT_FORM {
        return Err(failed(&format!(
            "the store is in form {form}, written by a newer keyhook; this one reads form {CURRENT_FORM} and earlier"
        )));
    }
    let mut upgraded = Vec::new();
    for entry in table.iter().map_err(|e| failed(&e))? {
        let (id, value) = entry.map_err(|e| failed(&e))?;
        if let Some(row) = row::upgrade(value.value()).map_err(|e| failed(&e))? {
            upgraded.push((id.value().to_string(), row));
        }
    }
    for (id, row) in &upgraded {
        table
            .insert(id.as_str(), row.as_slice())
            .map_err(|e| failed(&e))?;
    }
    if form < CURRENT_FORM || !upgraded.is_empty() {
        meta.insert(FORM, CURRENT_FORM).map_err(|e| failed(&e))?;
        tracing::info!(
            from = form,
            to = CURRENT_FORM,
            rows_changed = upgraded.len(),
            "upgraded the local store"
        );
    }
    Ok(())
}

impl LocalStore {
    /// Opens (or creates) the store in `data_dir` and loads it into memory;
    /// `clock` dates the credentials it makes.
    pub fn open(data_dir: &Path, clock: Clock) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            storage_error(
                "create data directory",
                format!("{}: {e}", data_dir.display()),
            )
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = Database::create(&path)
            .map_err(|e| storage_error("open store", format!("{}: {e}", path.display())))?;
        let mut index = Index::default();
        {
            let txn = db
                .begin_write()
                .map_err(|e| storage_error("open store", e))?;
            // Opening the tables in a write transaction creates them on
            // first use; rows an earlier version wrote are upgraded in the
            // same transaction, so a store is in one form or the other.
            upgrade(&txn)?;
            txn.commit().map_err(|e| storage_error("open store", e))?;
            let txn = db
                .begin_read()
                .map_err(|e| storage_error("load store", e))?;
            let table = txn
                .open_table(CREDENTIALS)
                .map_err(|e| storage_error("load store", e))?;
            for row in table.iter().map_err(|e| storage_error("load store", e))? {
                let (_, value) = row.map_err(|e| storage_error("load store", e))?;
                let credential =
                    row::decode(value.value()).map_err(|e| storage_error("load store", e))?;
                index.insert(credential);
            }
        }
        Ok(LocalStore {
            db: Arc::new(db),
            index: Arc::new(RwLock::new(index)),
            writer: Mutex::new(()),
            clock,
        })
    }

    /// Number of active credentials.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.index.read().expect("index lock").len()
    }

    /// Commits one change to disk, then applies it to the index. Runs on
    /// the blocking pool (a commit waits for fsync), both steps in the one
    /// task: a caller that goes away cannot leave a committed change out of
    /// the index, which a retry would not find.
    async fn commit(
        &self,
        operation: &'static str,
        put: Option<Credential>,
        delete: Option<String>,
    ) -> Result<()> {
        let db = Arc::clone(&self.db);
        let index = Arc::clone(&self.index);
        tokio::task::spawn_blocking(move || -> Result<()> {
            let txn = db.begin_write().map_err(|e| storage_error(operation, e))?;
            {
                let mut table = txn
                    .open_table(CREDENTIALS)
                    .map_err(|e| storage_error(operation, e))?;
                if let Some(id) = &delete {
                    table
                        .remove(id.as_str())
                        .map_err(|e| storage_error(operation, e))?;
                }
                if let Some(credential) = &put {
                    let bytes = row::encode(credential).map_err(|e| storage_error(operation, e))?;
                    table
                        .insert(credential.id.as_str(), bytes.as_slice())
                        .map_err(|e| storage_error(operation, e))?;
                }
            }
            txn.commit().map_err(|e| storage_error(operation, e))?;
            let mut index = index.write().expect("index lock");
            if let Some(id) = &delete {
                index.remove(id);
            }
            if let Some(credential) = put {
                index.upsert(credential);
            }
            Ok(())
        })
        .await
        .map_err(|e| storage_error(operation, e))?
    }

    /// Stores `credential` (replacing the one with its id) and indexes it.
    async fn put(&self, operation: &'static str, credential: Credential) -> Result<Credential> {
        self.commit(operation, Some(credential.clone()), None)
            .await?;
        Ok(credential)
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
            created_at_ms: u64::try_from((self.clock)()).unwrap_or_default(),
        }
    }
}

#[async_trait]
impl CredentialProvider for LocalStore {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn find_by_owner(&self, owner: &Email) -> Result<Vec<Credential>> {
        Ok(self.index.read().expect("index lock").owned_by(owner))
    }

    async fn create(&self, spec: &CredentialSpec) -> Result<(Credential, Created)> {
        let _writer = self.writer.lock().await;
        if let Some(existing) = self.resolve(&CredentialRef::App(spec.app.clone(), spec.kind)) {
            // The app's credential follows the app: a new developer, label
            // or plans are applied; a retry finds it as it is.
            if existing.matches(spec) {
                return Ok((existing, Created::Existing));
            }
            let updated = self
                .put("update credential", existing.resynced(spec)?)
                .await?;
            return Ok((updated, Created::Updated));
        }
        let credential = self
            .put("store credential", self.new_credential(spec))
            .await?;
        Ok((credential, Created::New))
    }

    async fn update(&self, target: &CredentialRef, spec: &CredentialSpec) -> Result<Credential> {
        let _writer = self.writer.lock().await;
        let credential = target
            .admit(self.resolve(target), |app, found| *app == found.app)?
            .resynced(spec)?;
        self.put("update credential", credential).await
    }

    async fn revoke(&self, target: &CredentialRef) -> Result<Revoked> {
        let _writer = self.writer.lock().await;
        let credential = target.admit(self.resolve(target), |app, found| *app == found.app)?;
        self.commit("revoke credential", None, Some(credential.id.clone()))
            .await?;
        Ok(Revoked::Revoked(Box::new(credential)))
    }

    async fn health(&self) -> Result<()> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let txn = db
                .begin_read()
                .map_err(|e| storage_error("read store", e))?;
            txn.open_table(CREDENTIALS)
                .map_err(|e| storage_error("read store", e))?;
            Ok(())
        })
        .await
        .map_err(|e| storage_error("read store", e))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::{AppId, Claim};

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
        assert_eq!(found, vec![kept]);
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
        assert_eq!(store.find_by_owner(&new).await.unwrap(), vec![updated]);
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
