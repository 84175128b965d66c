//! The in-memory owner index both backends serve logins from: credentials by
//! id, by owner (the ReadMe login's lookup) and by app (idempotent creates).

use std::collections::HashMap;

use super::{AppId, Credential, CredentialKind, CredentialRef, Email};

#[derive(Default)]
pub struct Index {
    pub by_id: HashMap<String, Credential>,
    pub by_owner: HashMap<Email, Vec<String>>,
    pub by_app: HashMap<(AppId, CredentialKind), String>,
}

impl Index {
    pub fn insert(&mut self, credential: Credential) {
        self.by_owner
            .entry(credential.owner.clone())
            .or_default()
            .push(credential.id.clone());
        self.by_app.insert(
            (credential.app.clone(), credential.kind()),
            credential.id.clone(),
        );
        self.by_id.insert(credential.id.clone(), credential);
    }

    pub fn remove(&mut self, id: &str) -> Option<Credential> {
        let credential = self.by_id.remove(id)?;
        if let Some(ids) = self.by_owner.get_mut(&credential.owner) {
            ids.retain(|other| other != id);
            if ids.is_empty() {
                self.by_owner.remove(&credential.owner);
            }
        }
        self.by_app
            .remove(&(credential.app.clone(), credential.kind()));
        Some(credential)
    }

    /// Replaces the entry with the same id, if any.
    pub fn upsert(&mut self, credential: Credential) {
        self.remove(&credential.id);
        self.insert(credential);
    }

    /// Every active credential of `owner`, oldest first.
    pub fn owned_by(&self, owner: &Email) -> Vec<Credential> {
        let mut found: Vec<Credential> = self
            .by_owner
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id).cloned())
            .collect();
        found.sort_by(|a, b| {
            a.created_at_ms
                .cmp(&b.created_at_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        found
    }

    pub fn resolve(&self, target: &CredentialRef) -> Option<&Credential> {
        match target {
            CredentialRef::Id(id, _) => self.by_id.get(id),
            CredentialRef::App(app, kind) => self
                .by_app
                .get(&(app.clone(), *kind))
                .and_then(|id| self.by_id.get(id)),
        }
    }
}
