//! The duplicate rule: more than one credential for one app identity,
//! a rotation's successor and the predecessor it replaces counting as one.
//! The copy kept is the one keyhook answers with: the claim's holder with a
//! claim table, else what a create without one keeps (`create.rs`): the
//! first made key, the client with the smallest id.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::super::claims::claim_key;
use super::super::AppKey;
use super::account::{Key, Named};
use super::findings::{Audit, Fix, Planned};
use crate::credentials::{AppId, CredentialKind, Email, FindingKind};

/// One credential of an app, as the duplicate rule sees it.
struct Member {
    id: String,
    /// Keys: first made, then smallest id; clients: smallest id (what a
    /// create without a claim table keeps, `create.rs`). A rotation is
    /// ordered by its first made member.
    order: (u64, String),
    created_ms: Option<u64>,
    replaces: Option<String>,
}

impl Audit<'_> {
    /// Which of an app's credentials are extra copies, and the one kept.
    /// A successor and the predecessor it replaces count as one.
    fn extras(&self, group: Vec<Member>, holder: Option<&String>) -> Option<(String, Vec<String>)> {
        let ids: HashSet<&str> = group.iter().map(|m| m.id.as_str()).collect();
        let replaced_by: HashMap<&str, &str> = group
            .iter()
            .filter_map(|m| {
                Some((
                    m.replaces.as_deref().filter(|p| ids.contains(p))?,
                    m.id.as_str(),
                ))
            })
            .collect();
        let head_of = |id: &str| -> String {
            let mut at = id;
            // Bounded: a cycle of `replaces` tags must not loop.
            for _ in 0..ids.len() {
                match replaced_by.get(at) {
                    Some(next) => at = next,
                    None => break,
                }
            }
            at.to_string()
        };
        // Each head (no one replaces it) with its rotation, in the order
        // of the first made of it: a rotated credential is as old as the
        // one it descends from.
        let mut chains: BTreeMap<String, &(u64, String)> = BTreeMap::new();
        for member in &group {
            let first = chains.entry(head_of(&member.id)).or_insert(&member.order);
            *first = (*first).min(&member.order);
        }
        if chains.len() < 2 {
            return None;
        }
        let holder = holder.filter(|h| ids.contains(h.as_str()));
        let kept = match holder {
            Some(holder) => head_of(holder),
            None => {
                let first = chains.iter().min_by_key(|(_, order)| **order);
                first.map(|(head, _)| head.clone())?
            }
        };
        // Without a claim naming one of them, only once every copy is old,
        // as a refresh settles; with one, each old copy is an extra now.
        if holder.is_none() && !group.iter().all(|m| self.old(m.created_ms)) {
            return None;
        }
        let extras: Vec<String> = group
            .iter()
            .filter(|m| head_of(&m.id) != kept && self.old(m.created_ms))
            .map(|m| m.id.clone())
            .collect();
        (!extras.is_empty()).then_some((kept, extras))
    }

    pub(super) fn duplicate_keys(&mut self) {
        let mut apps: BTreeMap<&str, Vec<&Key>> = BTreeMap::new();
        for key in self.keys.iter().copied() {
            // As a refresh settles: an owner today's rules refuse may share
            // an identity with another app's (`AppKeys`).
            let claimable = key.claimable_owner();
            match key.app_hash() {
                Some(app) if key.enabled && claimable && key.companion_of().is_none() => {
                    apps.entry(app).or_default().push(key)
                }
                _ => {}
            }
        }
        for (hash, keys) in apps {
            let app = AppKey::from_hash(hash).app_id();
            let holder = self.holder(CredentialKind::ApiKey, &app);
            let group = keys
                .iter()
                .map(|k| Member {
                    id: k.id.clone(),
                    order: (k.created_ms, k.id.clone()),
                    created_ms: Some(k.created_ms),
                    replaces: k.replaces().map(str::to_string),
                })
                .collect();
            let Some((kept, extras)) = self.extras(group, holder.as_ref()) else {
                continue;
            };
            for key in keys.into_iter().filter(|k| extras.contains(&k.id)) {
                let detail = format!("one of several API keys of app {app}; keyhook answers with {kept}; --fix deletes this one");
                let finding = Self::finding(
                    FindingKind::Duplicate,
                    &key.id,
                    key.owner(),
                    Some(&app),
                    detail,
                );
                let guard = self
                    .claim(CredentialKind::ApiKey, &app)
                    .map(|c| (c, kept.clone()));
                self.add(
                    &key.id,
                    Planned {
                        finding,
                        kind: CredentialKind::ApiKey,
                        fix: Fix::DeleteKey(key.id.clone()),
                        guard,
                    },
                );
            }
        }
    }

    pub(super) fn duplicate_clients(&mut self, clients: &[Named]) {
        let mut apps: BTreeMap<&AppId, Vec<&Named>> = BTreeMap::new();
        for named in clients
            .iter()
            .filter(|n| Email::parse(n.owner.as_str()).is_ok())
        {
            apps.entry(&named.app).or_default().push(named);
        }
        for (app, named) in apps {
            let holder = self.holder(CredentialKind::ClientCredentials, app);
            let group = named
                .iter()
                .map(|n| Member {
                    id: n.client.id.clone(),
                    order: (0, n.client.id.clone()),
                    created_ms: n.client.created_ms,
                    replaces: n.fields.replaces.clone(),
                })
                .collect();
            let Some((kept, extras)) = self.extras(group, holder.as_ref()) else {
                continue;
            };
            for n in named.into_iter().filter(|n| extras.contains(&n.client.id)) {
                let id = &n.client.id;
                let companions = self.companions_of(id);
                let with = match companions.is_empty() {
                    true => "",
                    false => " with its companion API key",
                };
                let detail = format!("one of several app clients of app {app}; keyhook answers with {kept}; --fix deletes this one{with}");
                let finding = Self::finding(
                    FindingKind::Duplicate,
                    id,
                    Some(&n.owner),
                    Some(app),
                    detail,
                );
                let guard = self
                    .claim(CredentialKind::ClientCredentials, app)
                    .map(|c| (c, kept.clone()));
                let fix = Fix::DeleteClient {
                    id: id.clone(),
                    companions,
                };
                self.add(
                    id,
                    Planned {
                        finding,
                        kind: CredentialKind::ClientCredentials,
                        fix,
                        guard,
                    },
                );
            }
        }
    }

    /// The credential holding the app's claim, if a table was read.
    fn holder(&self, kind: CredentialKind, app: &AppId) -> Option<String> {
        self.account
            .claims
            .as_ref()?
            .get(&claim_key(kind, app))
            .cloned()
    }
}
