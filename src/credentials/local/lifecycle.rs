//! The credential lifecycle on the local store: rotation, end dates, the
//! operator's revoke, the sweep and the audit. Every step runs under the
//! writers' lock, and what it changes is one transaction: a rotation's
//! successor and its predecessor's end date are stored together or not at
//! all. One process holds the file, so a sweep revokes each credential once.

use super::disk::Change;
use super::{row, storage_error, LocalStore};
use crate::credentials::index::Index;
use crate::credentials::{
    Credential, CredentialError, CredentialSpec, Finding, FindingKind, Listed, Repair, Result,
    Revoked, Rotation, Secret,
};

impl LocalStore {
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from((self.clock)()).unwrap_or_default()
    }

    /// A `Put` of `credential`, its row encoded.
    pub(super) fn put_change(operation: &'static str, credential: Credential) -> Result<Change> {
        let row = row::encode(&credential).map_err(|e| storage_error(operation, e))?;
        Ok(Change::Put(Box::new(credential), row))
    }

    fn held(&self, id: &str) -> Result<Credential> {
        self.index
            .read()
            .expect("index lock")
            .get(id)
            .cloned()
            .ok_or_else(|| CredentialError::UnknownId(id.to_string()))
    }

    pub(super) fn listed(&self) -> Vec<Listed> {
        let index = self.index.read().expect("index lock");
        let mut all: Vec<Listed> = index
            .credentials()
            .map(|credential| Listed {
                credential: credential.clone(),
                disabled: false,
            })
            .collect();
        all.sort_by(|a, b| {
            (a.credential.created_at_ms, &a.credential.id)
                .cmp(&(b.credential.created_at_ms, &b.credential.id))
        });
        all
    }

    pub(super) async fn rotate_now(&self, id: &str, until_ms: u64) -> Result<Rotation> {
        let disk = self.writer().await?;
        let predecessor = self.held(id)?;
        rotatable(&self.index.read().expect("index lock"), &predecessor)?;
        let spec = CredentialSpec {
            kind: predecessor.kind(),
            owner: predecessor.owner.clone(),
            app: predecessor.app.clone(),
            label: predecessor.label.clone(),
            origin: predecessor.origin,
            api_ids: predecessor.api_ids.clone(),
            usage_plans: predecessor.usage_plans.clone(),
            expires_at_ms: None,
        };
        let mut successor = self.new_credential(&spec);
        successor.replaces = Some(predecessor.id.clone());
        if let (
            Secret::ClientCredentials { scopes, .. },
            Secret::ClientCredentials { scopes: kept, .. },
        ) = (&mut successor.secret, &predecessor.secret)
        {
            scopes.clone_from(kept);
        }
        let mut predecessor = predecessor;
        predecessor.expires_at_ms = Some(
            predecessor
                .expires_at_ms
                .map_or(until_ms, |end| end.min(until_ms)),
        );
        let operation = "rotate credential";
        let change = Change::All(vec![
            Self::put_change(operation, successor.clone())?,
            Self::put_change(operation, predecessor.clone())?,
        ]);
        self.commit(disk, operation, change).await?;
        Ok(Rotation {
            successor,
            predecessor,
        })
    }

    pub(super) async fn set_expiry_now(&self, id: &str, end: Option<u64>) -> Result<Credential> {
        let disk = self.writer().await?;
        let mut credential = self.held(id)?;
        let successor = self
            .index
            .read()
            .expect("index lock")
            .successor_of(id)
            .map(|s| s.id.clone());
        if let Some(successor) = successor {
            only_brought_forward(&credential, &successor, end)?;
        }
        credential.expires_at_ms = end;
        self.put(disk, "set end date", credential).await
    }

    pub(super) async fn revoke_id(&self, id: &str) -> Result<Revoked> {
        let disk = self.writer().await?;
        let credential = self.held(id)?;
        self.commit(disk, "revoke credential", Change::Delete(id.to_string()))
            .await?;
        Ok(Revoked::Revoked(Box::new(credential)))
    }

    pub(super) async fn sweep_now(&self, now_ms: u64) -> Result<Vec<Credential>> {
        let expired: Vec<Credential> = {
            let index = self.index.read().expect("index lock");
            index
                .credentials()
                .filter(|c| c.is_expired(now_ms))
                .cloned()
                .collect()
        };
        if expired.is_empty() {
            return Ok(expired);
        }
        let disk = self.writer().await?;
        // Read again under the lock: an operator may have revoked one or
        // moved its end since.
        let expired: Vec<Credential> = expired
            .into_iter()
            .filter_map(|c| self.held(&c.id).ok())
            .filter(|c| c.is_expired(now_ms))
            .collect();
        let deletes = expired
            .iter()
            .map(|c| Change::Delete(c.id.clone()))
            .collect();
        self.commit(disk, "revoke expired credentials", Change::All(deletes))
            .await?;
        Ok(expired)
    }

    pub(super) fn audit_now(&self, now_ms: u64) -> Vec<Finding> {
        let index = self.index.read().expect("index lock");
        let mut findings = Vec::new();
        for credential in index.credentials() {
            if credential.is_expired(now_ms) {
                findings.push(finding(
                    FindingKind::Expired,
                    credential,
                    "past its end date; --fix revokes it".into(),
                ));
            }
            if let Some(kept) = duplicate_of(&index, credential) {
                findings.push(finding(
                    FindingKind::Duplicate,
                    credential,
                    format!("a second credential of its app besides {kept}; --fix deletes it"),
                ));
            }
        }
        findings.sort_by(|a, b| (a.kind, &a.credential_id).cmp(&(b.kind, &b.credential_id)));
        findings
    }

    /// Repairs what is still wrong of `findings`, read again under the
    /// writers' lock: one transaction.
    pub(super) async fn repair_now(&self, findings: &[Finding]) -> Result<Vec<Repair>> {
        let disk = self.writer().await?;
        let now = self.now_ms();
        let mut repairs = Vec::new();
        let mut deletes = Vec::new();
        {
            let index = self.index.read().expect("index lock");
            for found in findings.iter().filter(|f| f.kind.repairable()) {
                let Some(credential) = index.get(&found.credential_id) else {
                    continue;
                };
                let still = match found.kind {
                    FindingKind::Expired => credential.is_expired(now),
                    FindingKind::Duplicate => duplicate_of(&index, credential).is_some(),
                    _ => false,
                };
                if still && !deletes.iter().any(|c: &Credential| c.id == credential.id) {
                    deletes.push(credential.clone());
                    repairs.push(Repair {
                        kind: found.kind,
                        credential_id: credential.id.clone(),
                        action: "revoked".into(),
                        detail: found.detail.clone(),
                    });
                }
            }
        }
        if deletes.is_empty() {
            return Ok(repairs);
        }
        let change = Change::All(
            deletes
                .iter()
                .map(|c| Change::Delete(c.id.clone()))
                .collect(),
        );
        self.commit(disk, "repair credentials", change).await?;
        for credential in &deletes {
            crate::telemetry::audit::by("audit", "revoked", credential);
        }
        Ok(repairs)
    }

    /// Every credential of `credential`'s app: after a rotation, the
    /// successor and its predecessor, which a portal's update or revoke
    /// acts on together.
    pub(super) fn app_group(&self, credential: &Credential) -> Vec<Credential> {
        self.index
            .read()
            .expect("index lock")
            .of_app(&credential.app, credential.kind())
    }
}

/// Whether `credential` may be rotated now: it has no successor, and it is
/// not itself a successor whose predecessor is still in its grace.
pub(crate) fn rotatable(index: &Index, credential: &Credential) -> Result<()> {
    if !credential.app.issued_by_keyhook() {
        return Err(CredentialError::Invalid(format!(
            "credential {} was not issued by keyhook and cannot be rotated",
            credential.id
        )));
    }
    if let Some(successor) = index.successor_of(&credential.id) {
        return Err(CredentialError::Invalid(format!(
            "credential {} already has a successor: {}",
            credential.id, successor.id
        )));
    }
    if let Some(predecessor) = credential
        .replaces
        .as_ref()
        .filter(|p| index.get(p).is_some())
    {
        return Err(CredentialError::Invalid(format!(
            "credential {} replaces {predecessor}, which is still in its grace period; revoke {predecessor} first",
            credential.id
        )));
    }
    Ok(())
}

/// A predecessor's end date, which its successor set, can only be brought
/// forward.
pub(crate) fn only_brought_forward(
    predecessor: &Credential,
    successor: &str,
    end: Option<u64>,
) -> Result<()> {
    let grace_end = predecessor.expires_at_ms;
    match (end, grace_end) {
        (Some(end), Some(grace_end)) if end <= grace_end => Ok(()),
        (_, Some(grace_end)) => Err(CredentialError::Invalid(format!(
            "credential {} is replaced by {successor} and stops working at {}; its end date can only be brought forward",
            predecessor.id,
            crate::clock::rfc3339(grace_end)
        ))),
        (_, None) => Ok(()),
    }
}

/// The app credential `credential` duplicates, if it is an extra copy: of an
/// app that holds another credential of its kind which is neither its
/// successor nor its predecessor (the app's own credential is kept).
fn duplicate_of(index: &Index, credential: &Credential) -> Option<String> {
    let head = index.resolve(&crate::credentials::CredentialRef::App(
        credential.app.clone(),
        credential.kind(),
    ))?;
    if head.id == credential.id || head.replaces.as_deref() == Some(credential.id.as_str()) {
        return None;
    }
    // Its own successor being the head's predecessor chain is not a copy.
    if credential.replaces.as_deref() == Some(head.id.as_str()) {
        return None;
    }
    Some(head.id.clone())
}

fn finding(kind: FindingKind, credential: &Credential, detail: String) -> Finding {
    Finding {
        kind,
        credential_id: credential.id.clone(),
        owner: Some(credential.owner.to_string()),
        app: Some(credential.app.to_string()),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::credentials::Created;
    use crate::credentials::{
        AppId, CredentialKind, CredentialProvider, CredentialRef, Email, Origin,
    };

    const DAY: u64 = 86_400_000;

    /// A store whose clock the test moves.
    fn store(dir: &tempfile::TempDir, now: &Arc<AtomicI64>) -> LocalStore {
        let now = Arc::clone(now);
        LocalStore::open(dir.path(), Arc::new(move || now.load(Ordering::SeqCst))).unwrap()
    }

    fn spec(kind: CredentialKind, expires_at_ms: Option<u64>) -> CredentialSpec {
        CredentialSpec {
            kind,
            owner: Email::parse("jo@corp.com").unwrap(),
            app: AppId::sensedia_slug("billing"),
            label: "Billing".into(),
            origin: Origin::Sensedia,
            api_ids: vec!["api1".into()],
            usage_plans: vec!["plan1".into()],
            expires_at_ms,
        }
    }

    fn ids<C: std::borrow::Borrow<Credential>>(credentials: &[C]) -> Vec<&str> {
        credentials.iter().map(|c| c.borrow().id.as_str()).collect()
    }

    #[tokio::test]
    async fn a_rotation_keeps_both_until_the_grace_ends_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(1_000));
        let jo = Email::parse("jo@corp.com").unwrap();
        let (old, rotation) = {
            let store = store(&dir, &now);
            let (old, _) = store
                .create(&spec(CredentialKind::ClientCredentials, None))
                .await
                .unwrap();
            let rotation = store.rotate(&old.id, 1_000 + DAY).await.unwrap();
            (old, rotation)
        };
        let new = &rotation.successor;
        assert_eq!(new.replaces.as_deref(), Some(old.id.as_str()));
        assert_ne!(new.secret, old.secret);
        assert_eq!(
            (&new.owner, &new.label, &new.usage_plans),
            (&old.owner, &old.label, &old.usage_plans)
        );
        assert_eq!(rotation.predecessor.expires_at_ms, Some(1_000 + DAY));

        let store = store(&dir, &now);
        let held = store.find_by_owner(&jo).await.unwrap();
        assert_eq!(
            ids(&crate::credentials::lifecycle::shown_at(held, 2_000)),
            [new.id.as_str(), old.id.as_str()]
        );
        // A portal retry answers the successor.
        let (answered, created) = store
            .create(&spec(CredentialKind::ClientCredentials, None))
            .await
            .unwrap();
        assert_eq!(
            (answered.id.as_str(), created),
            (new.id.as_str(), Created::Existing)
        );

        // Rotating either again is refused, naming the other.
        let again = store.rotate(&old.id, 0).await.unwrap_err().to_string();
        assert!(again.contains(&new.id), "{again}");
        let again = store.rotate(&new.id, 0).await.unwrap_err().to_string();
        assert!(again.contains(&old.id), "{again}");

        // Its end can be brought forward, not put off or cleared.
        assert!(store.set_expiry(&old.id, None).await.is_err());
        assert!(store.set_expiry(&old.id, Some(2_000 + DAY)).await.is_err());
        store.set_expiry(&old.id, Some(5_000)).await.unwrap();

        // Swept once, at its end; then the successor is the app's only one.
        assert!(store.sweep(4_999).await.unwrap().is_empty());
        assert_eq!(ids(&store.sweep(5_000).await.unwrap()), [old.id.as_str()]);
        assert!(store.sweep(5_001).await.unwrap().is_empty());
        assert_eq!(
            ids(&store.find_by_owner(&jo).await.unwrap()),
            [new.id.as_str()]
        );
        assert!(store.rotate(&new.id, 9_000).await.is_ok());
    }

    #[tokio::test]
    async fn a_portal_revoke_by_the_predecessors_id_takes_the_whole_app() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(1_000));
        let store = store(&dir, &now);
        let (old, _) = store
            .create(&spec(CredentialKind::ApiKey, None))
            .await
            .unwrap();
        store.rotate(&old.id, DAY).await.unwrap();
        let mut renamed = spec(CredentialKind::ApiKey, None);
        renamed.label = "Billing v2".into();
        let by_old_id = CredentialRef::Id(
            old.id.clone(),
            CredentialKind::ApiKey,
            crate::credentials::Claim::None,
        );
        store.update(&by_old_id, &renamed).await.unwrap();
        let listed = store.list().await.unwrap();
        assert!(
            listed.iter().all(|l| l.credential.label == "Billing v2"),
            "{listed:?}"
        );
        assert_eq!(listed.len(), 2);

        store.revoke(&by_old_id).await.unwrap();
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn once_the_predecessor_is_swept_its_id_still_reaches_the_successor() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(1_000));
        let store = store(&dir, &now);
        let (old, _) = store
            .create(&spec(CredentialKind::ApiKey, None))
            .await
            .unwrap();
        let new = store.rotate(&old.id, 2_000).await.unwrap().successor;
        assert_eq!(ids(&store.sweep(2_000).await.unwrap()), [old.id.as_str()]);
        // The portal still holds the predecessor's id.
        let by_old_id = CredentialRef::Id(
            old.id.clone(),
            CredentialKind::ApiKey,
            crate::credentials::Claim::App(AppId::sensedia_slug("billing")),
        );
        let revoked = store.revoke(&by_old_id).await.unwrap();
        assert_eq!(revoked, Revoked::Revoked(Box::new(new)));
        assert!(store.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_expired_apps_next_create_makes_a_fresh_credential() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(1_000));
        let store = store(&dir, &now);
        let (first, created) = store
            .create(&spec(CredentialKind::ApiKey, Some(2_000)))
            .await
            .unwrap();
        assert_eq!((first.expires_at_ms, created), (Some(2_000), Created::New));
        now.store(2_000, Ordering::SeqCst);
        let (fresh, created) = store
            .create(&spec(CredentialKind::ApiKey, Some(3_000)))
            .await
            .unwrap();
        assert_eq!(created, Created::New);
        assert_ne!(fresh.id, first.id);
        assert_eq!(
            ids(&store
                .list()
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.credential)
                .collect::<Vec<_>>()),
            [fresh.id.as_str()]
        );
    }

    #[tokio::test]
    async fn the_audit_finds_expired_credentials_and_a_repair_leaves_nothing_to_find() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(1_000));
        let store = store(&dir, &now);
        let (key, _) = store
            .create(&spec(CredentialKind::ApiKey, None))
            .await
            .unwrap();
        store.rotate(&key.id, 2_000).await.unwrap();
        assert!(
            store.audit(1_999).await.unwrap().is_empty(),
            "a rotation is no duplicate"
        );
        let findings = store.audit(2_000).await.unwrap();
        assert_eq!(findings.len(), 1);
        assert_eq!(
            (findings[0].kind, findings[0].credential_id.as_str()),
            (FindingKind::Expired, key.id.as_str())
        );
        // A repair checks again at its own clock.
        assert!(store.repair(&findings).await.unwrap().is_empty());
        now.store(2_000, Ordering::SeqCst);
        let repairs = store.repair(&findings).await.unwrap();
        assert_eq!(repairs.len(), 1);
        assert!(store.audit(2_000).await.unwrap().is_empty());
        assert!(store.repair(&findings).await.unwrap().is_empty());
    }
}
