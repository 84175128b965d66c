//! The in-memory owner index both backends serve logins from: credentials by
//! id, by owner (the ReadMe login's lookup) and by app (idempotent creates).
//! An app may hold a rotation's successor and its predecessor in grace: the
//! app's credential is then the successor (what a create answers).

use std::collections::HashMap;
use std::sync::Arc;

use super::{AppId, Census, Credential, CredentialKind, CredentialRef, Email, Origin};

/// The three maps always agree: change them only through these methods.
/// Credentials are shared (`Arc`): a login's look-up hands out the owner's
/// without copying them.
#[derive(Default)]
pub(crate) struct Index {
    by_id: HashMap<String, Arc<Credential>>,
    /// Oldest first (ties by id), kept so at each insert: a login reads
    /// them in order, without sorting.
    by_owner: HashMap<Email, Vec<Arc<Credential>>>,
    /// In insertion order: among several the app's credential is the last
    /// one no other of them replaces.
    by_app: HashMap<(AppId, CredentialKind), Vec<String>>,
}

impl Index {
    /// Adds `credential`, replacing any held under its id (a listing
    /// that names a key twice must not leave a copy with another owner).
    pub(crate) fn insert(&mut self, credential: Credential) {
        self.remove(&credential.id);
        let credential = Arc::new(credential);
        let owned = self.by_owner.entry(credential.owner.clone()).or_default();
        let at = owned.partition_point(|other| oldest_first(other, &credential).is_lt());
        owned.insert(at, Arc::clone(&credential));
        self.by_app
            .entry((credential.app.clone(), credential.kind()))
            .or_default()
            .push(credential.id.clone());
        self.by_id.insert(credential.id.clone(), credential);
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Arc<Credential>> {
        let credential = self.by_id.remove(id)?;
        if let Some(owned) = self.by_owner.get_mut(&credential.owner) {
            owned.retain(|other| other.id != id);
            if owned.is_empty() {
                self.by_owner.remove(&credential.owner);
            }
        }
        let app = (credential.app.clone(), credential.kind());
        if let Some(ids) = self.by_app.get_mut(&app) {
            ids.retain(|other| other != id);
            if ids.is_empty() {
                self.by_app.remove(&app);
            }
        }
        Some(credential)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Credential> {
        self.by_id.get(id).map(|c| &**c)
    }

    /// What the provisioning budget counts: API keys (a client's companion
    /// key included) and keys provisioned at a first login since `since_ms`.
    pub(crate) fn census(&self, since_ms: u64) -> Census {
        let mut census = Census::default();
        for credential in self.by_id.values() {
            let key = credential.kind() == CredentialKind::ApiKey
                || credential.custom.contains_key("apiKeyId");
            census.api_keys += usize::from(key);
            let provisioned = credential.origin == Origin::Readme
                && credential.app.issued_by_keyhook()
                && credential.created_at_ms >= since_ms;
            census.provisioned_since += usize::from(provisioned);
        }
        census
    }

    /// Number of credentials.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every credential, in no particular order.
    pub(crate) fn credentials(&self) -> impl Iterator<Item = &Credential> {
        self.by_id.values().map(|c| &**c)
    }

    /// Every active credential of `owner`, oldest first.
    pub(crate) fn owned_by(&self, owner: &Email) -> Vec<Arc<Credential>> {
        self.by_owner.get(owner).cloned().unwrap_or_default()
    }

    pub(crate) fn resolve(&self, target: &CredentialRef) -> Option<&Credential> {
        match target {
            // A portal keeps the id it was given until its next create:
            // once a rotation's predecessor is gone, that id names its
            // successor (`admit` still checks the app).
            CredentialRef::Id(id, ..) => self.get(id).or_else(|| {
                self.credentials()
                    .find(|c| c.replaces.as_deref() == Some(id.as_str()))
            }),
            CredentialRef::App(app, kind) => {
                let ids = self.by_app.get(&(app.clone(), *kind))?;
                let replaced = |id: &String| {
                    ids.iter().any(|other| {
                        self.by_id.get(other).and_then(|c| c.replaces.as_ref()) == Some(id)
                    })
                };
                ids.iter()
                    .rev()
                    .find(|id| !replaced(id))
                    .and_then(|id| self.get(id))
            }
        }
    }

    /// Every credential of `app` of this kind: its credential and, after a
    /// rotation, the predecessor in grace (or duplicates), oldest first.
    pub(crate) fn of_app(&self, app: &AppId, kind: CredentialKind) -> Vec<Credential> {
        let mut found: Vec<Credential> = self
            .by_app
            .get(&(app.clone(), kind))
            .into_iter()
            .flatten()
            .filter_map(|id| self.get(id).cloned())
            .collect();
        found.sort_by(oldest_first);
        found
    }

    /// The credential that replaces `id`, if one is held.
    pub(crate) fn successor_of(&self, id: &str) -> Option<&Credential> {
        let held = self.by_id.get(id)?;
        self.by_app
            .get(&(held.app.clone(), held.kind()))?
            .iter()
            .filter_map(|other| self.get(other))
            .find(|c| c.replaces.as_deref() == Some(id))
    }
}

/// The order credentials are listed in: oldest first, ties by id.
fn oldest_first(a: &Credential, b: &Credential) -> std::cmp::Ordering {
    a.created_at_ms
        .cmp(&b.created_at_ms)
        .then_with(|| a.id.cmp(&b.id))
}

impl FromIterator<Credential> for Index {
    fn from_iter<I: IntoIterator<Item = Credential>>(credentials: I) -> Self {
        let mut index = Index::default();
        for credential in credentials {
            index.insert(credential);
        }
        index
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::credentials::Secret;
    use crate::secret::Redacted;

    pub(crate) fn key(id: &str, owner: &str, app: &str, created_at_ms: u64) -> Credential {
        Credential {
            id: id.into(),
            owner: Email::parse(owner).unwrap(),
            app: AppId::from_stored(app),
            label: "app".into(),
            origin: Origin::Readme,
            secret: Secret::ApiKey {
                value: Redacted::new("v".into()),
            },
            usage_plans: Vec::new(),
            api_ids: Vec::new(),
            custom: BTreeMap::new(),
            created_at_ms,
            expires_at_ms: None,
            replaces: None,
        }
    }

    #[test]
    fn an_insert_moves_a_credential_to_its_new_owner() {
        let mut index: Index = [
            key("b", "jo@corp.com", "app-b", 2),
            key("a", "jo@corp.com", "app-a", 2),
            key("c", "jo@corp.com", "app-c", 1),
        ]
        .into_iter()
        .collect();
        let jo = Email::parse("jo@corp.com").unwrap();
        let ids =
            |found: Vec<Arc<Credential>>| found.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(index.owned_by(&jo)), ["c", "a", "b"]);

        index.insert(key("a", "al@corp.com", "app-a", 2));
        assert_eq!(ids(index.owned_by(&jo)), ["c", "b"]);
        let al = Email::parse("al@corp.com").unwrap();
        assert_eq!(ids(index.owned_by(&al)), ["a"]);
        assert_eq!(index.len(), 3);
        let by_app = CredentialRef::App(AppId::from_stored("app-a"), CredentialKind::ApiKey);
        assert_eq!(index.resolve(&by_app).map(|c| &c.owner), Some(&al));
    }

    #[test]
    fn an_id_inserted_twice_is_held_once_under_its_last_owner() {
        let mut index: Index = [
            key("a", "jo@corp.com", "app-a", 1),
            key("a", "al@corp.com", "app-a", 1),
        ]
        .into_iter()
        .collect();
        let (jo, al) = (
            Email::parse("jo@corp.com").unwrap(),
            Email::parse("al@corp.com").unwrap(),
        );
        assert!(index.owned_by(&jo).is_empty());
        assert_eq!(index.owned_by(&al).len(), 1);
        index.remove("a");
        assert!(index.owned_by(&al).is_empty() && index.by_owner.is_empty());
    }

    #[test]
    fn a_removed_credential_is_gone_from_every_map() {
        let mut index: Index = [key("a", "jo@corp.com", "app-a", 1)].into_iter().collect();
        assert!(index.remove("a").is_some());
        assert!(index.remove("a").is_none());
        assert_eq!(index.len(), 0);
        assert!(index
            .owned_by(&Email::parse("jo@corp.com").unwrap())
            .is_empty());
        let by_app = CredentialRef::App(AppId::from_stored("app-a"), CredentialKind::ApiKey);
        assert!(index.resolve(&by_app).is_none());
        assert!(index.by_owner.is_empty() && index.by_app.is_empty());
    }

    #[test]
    fn an_apps_credential_is_its_successor_whatever_the_order() {
        let mut new = key("new", "jo@corp.com", "app-a", 2);
        new.replaces = Some("old".into());
        let old = key("old", "jo@corp.com", "app-a", 1);
        let app = AppId::from_stored("app-a");
        let by_app = CredentialRef::App(app.clone(), CredentialKind::ApiKey);
        for order in [[new.clone(), old.clone()], [old.clone(), new.clone()]] {
            let mut index: Index = order.into_iter().collect();
            assert_eq!(index.resolve(&by_app).map(|c| c.id.as_str()), Some("new"));
            assert_eq!(
                index.successor_of("old").map(|c| c.id.as_str()),
                Some("new")
            );
            assert!(index.successor_of("new").is_none());
            let ids: Vec<String> = index
                .of_app(&app, CredentialKind::ApiKey)
                .into_iter()
                .map(|c| c.id)
                .collect();
            assert_eq!(ids, ["old", "new"]);
            // Once the predecessor is gone, its id names the successor.
            let by_old_id = CredentialRef::Id(
                "old".into(),
                CredentialKind::ApiKey,
                crate::credentials::Claim::None,
            );
            assert_eq!(
                index.resolve(&by_old_id).map(|c| c.id.as_str()),
                Some("old")
            );
            let mut without_old = Index::default();
            without_old.insert(new.clone());
            assert_eq!(
                without_old.resolve(&by_old_id).map(|c| c.id.as_str()),
                Some("new")
            );
            index.remove("new");
            assert_eq!(index.resolve(&by_app).map(|c| c.id.as_str()), Some("old"));
        }
    }
}
