//! What the audit finds in an account it has read, and the repair each
//! finding gets: pure, so that every rule is unit-tested and the time
//! keyhook itself spends can be measured apart from AWS's.
//!
//! One finding per credential, the first that applies in this order:
//! orphan, duplicate, expired, unnamed, unmanaged, planless. A hand-made
//! key (no `keyhook:app` tag) is never repaired but when its end date has
//! passed; a key made to be claimed in another deployment's table is that
//! deployment's, and left out.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::super::apigateway::TAG_APP;
use super::super::claims::claim_key;
use super::super::settings::RevokeMode;
use super::super::AppKey;
use super::account::{Account, Client, Key, Named};
use super::record;
use crate::credentials::{AppId, CredentialKind, Email, Finding, FindingKind};

/// What the audit is asked from.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub now_ms: u64,
    /// How old a credential must be before it counts as a duplicate or
    /// planless (`AwsSettings::settle_after`): a younger one may be a
    /// create in flight.
    pub grace_ms: u64,
    pub table: Option<String>,
    pub default_plan: Option<String>,
    pub revoke: RevokeMode,
}

/// What `--fix` does about one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fix {
    /// Left to a person.
    Nothing,
    /// An extra copy or an orphaned companion: deleted.
    DeleteKey(String),
    /// An extra client: deleted, its companion keys first.
    DeleteClient {
        id: String,
        companions: Vec<String>,
    },
    /// Past its end: revoked as `KEYHOOK_REVOKE` says, its claim released.
    RevokeKey {
        id: String,
        claim: Option<String>,
    },
    RevokeClient {
        id: String,
        companions: Vec<String>,
        claim: Option<String>,
    },
    Attach {
        key: String,
        plans: Vec<String>,
    },
    Disable(String),
}

/// One finding and its repair.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub finding: Finding,
    pub kind: CredentialKind,
    pub fix: Fix,
    /// A duplicate's app claim and the copy kept: the copies are deleted
    /// only while the claim names the kept one, or nothing.
    pub guard: Option<(String, String)>,
}

/// Every finding in `account` under `rules`, by kind, then id.
pub(crate) fn analyse(account: &Account, rules: &Rules) -> Vec<Planned> {
    let table = rules.table.as_deref();
    let keys: Vec<&Key> = account
        .keys
        .iter()
        .filter(|k| k.claim_table().is_none() || k.claim_table() == table)
        .collect();
    let clients: Option<Vec<Named>> = account
        .clients
        .as_ref()
        .map(|all| all.iter().filter_map(Client::named).collect());
    let mut by_app: HashMap<&str, Vec<&Key>> = HashMap::new();
    let mut by_client: HashMap<&str, Vec<&Key>> = HashMap::new();
    for key in &keys {
        if let Some(app) = key.app_hash() {
            by_app.entry(app).or_default().push(key);
        }
        if let Some(client) = key.companion_of() {
            by_client.entry(client).or_default().push(key);
        }
    }
    let mut audit = Audit {
        rules,
        account,
        keys,
        by_app,
        by_client,
        found: BTreeMap::new(),
    };
    if let Some(all) = &account.clients {
        audit.orphans(&all.iter().map(|c| c.id.as_str()).collect());
    }
    audit.duplicate_keys();
    if let Some(clients) = &clients {
        audit.duplicate_clients(clients);
    }
    audit.expired_keys();
    if let Some(clients) = &clients {
        audit.expired_clients(clients);
    }
    audit.unowned();
    audit.planless();
    let mut out: Vec<Planned> = audit.found.into_values().collect();
    out.sort_by(|a, b| {
        (a.finding.kind, &a.finding.credential_id).cmp(&(b.finding.kind, &b.finding.credential_id))
    });
    out
}

pub(super) struct Audit<'a> {
    pub rules: &'a Rules,
    pub account: &'a Account,
    pub keys: Vec<&'a Key>,
    /// The keys of each app (`keyhook:app`), and of each client
    /// (`keyhook:client`, its companions).
    by_app: HashMap<&'a str, Vec<&'a Key>>,
    by_client: HashMap<&'a str, Vec<&'a Key>>,
    /// By credential id: the first finding made for it stands.
    pub found: BTreeMap<String, Planned>,
}

impl Audit<'_> {
    pub(super) fn add(&mut self, id: &str, planned: Planned) {
        self.found.entry(id.to_string()).or_insert(planned);
    }

    pub(super) fn finding(
        kind: FindingKind,
        id: &str,
        owner: Option<&Email>,
        app: Option<&AppId>,
        detail: String,
    ) -> Finding {
        Finding {
            kind,
            credential_id: id.to_string(),
            owner: owner.map(|o| o.to_string()),
            app: app.map(|a| a.as_str().to_string()),
            detail,
        }
    }

    pub(super) fn old(&self, created_ms: Option<u64>) -> bool {
        created_ms.is_some_and(|c| c.saturating_add(self.rules.grace_ms) <= self.rules.now_ms)
    }

    pub(super) fn companions_of(&self, client: &str) -> Vec<String> {
        let companions = self.by_client.get(client).into_iter().flatten();
        companions.map(|k| k.id.clone()).collect()
    }

    pub(super) fn claim(&self, kind: CredentialKind, app: &AppId) -> Option<String> {
        self.rules.table.as_ref().map(|_| claim_key(kind, app))
    }

    /// Companion keys whose client is no longer in the pool.
    fn orphans(&mut self, clients: &HashSet<&str>) {
        let orphans: Vec<&Key> = self
            .keys
            .iter()
            .copied()
            .filter(|k| k.companion_of().is_some_and(|c| !clients.contains(c)))
            .filter(|k| self.old(Some(k.created_ms)))
            .collect();
        for key in orphans {
            let client = key.companion_of().unwrap_or_default();
            let detail = format!("API key issued beside app client {client}, which is no longer in the user pool; --fix deletes it");
            let app = key.app_hash().map(|h| AppKey::from_hash(h).app_id());
            let finding = Self::finding(
                FindingKind::Orphan,
                &key.id,
                key.owner(),
                app.as_ref(),
                detail,
            );
            self.add(
                &key.id,
                Planned {
                    finding,
                    kind: CredentialKind::ApiKey,
                    fix: Fix::DeleteKey(key.id.clone()),
                    guard: None,
                },
            );
        }
    }
    fn revoke_words(&self) -> &'static str {
        match self.rules.revoke {
            RevokeMode::Delete => "deletes",
            RevokeMode::Disable => "disables",
        }
    }

    fn expired_keys(&mut self) {
        let mut until: HashMap<&str, u64> = HashMap::new();
        for key in &self.keys {
            if let Some((predecessor, Some(end))) = record::key_replaces(&key.tags) {
                let at = until.entry(predecessor).or_insert(end);
                *at = (*at).min(end);
            }
        }
        let expired: Vec<(&Key, u64)> = self
            .keys
            .iter()
            .filter(|k| k.enabled && k.companion_of().is_none())
            .filter_map(|k| {
                let end = record::effective_end(
                    record::key_end(k.customer_id.as_deref()),
                    until.get(k.id.as_str()).copied(),
                )?;
                (end <= self.rules.now_ms).then_some((*k, end))
            })
            .collect();
        for (key, end) in expired {
            let app = key.app_hash().map(|h| AppKey::from_hash(h).app_id());
            let detail = format!(
                "its end date {} has passed and it is still enabled; --fix revokes it (KEYHOOK_REVOKE: {} it)",
                crate::clock::rfc3339(end),
                self.revoke_words()
            );
            let finding = Self::finding(
                FindingKind::Expired,
                &key.id,
                key.owner(),
                app.as_ref(),
                detail,
            );
            let claim = app
                .as_ref()
                .and_then(|a| self.claim(CredentialKind::ApiKey, a));
            let fix = Fix::RevokeKey {
                id: key.id.clone(),
                claim,
            };
            self.add(
                &key.id,
                Planned {
                    finding,
                    kind: CredentialKind::ApiKey,
                    fix,
                    guard: None,
                },
            );
        }
    }

    fn expired_clients(&mut self, clients: &[Named]) {
        let mut until: HashMap<&str, u64> = HashMap::new();
        for n in clients {
            if let (Some(predecessor), Some(end)) = (&n.fields.replaces, n.fields.until) {
                let at = until.entry(predecessor).or_insert(end);
                *at = (*at).min(end);
            }
        }
        for n in clients {
            let id = &n.client.id;
            let Some(end) =
                record::effective_end(n.fields.expires, until.get(id.as_str()).copied())
            else {
                continue;
            };
            if end > self.rules.now_ms {
                continue;
            }
            let detail = format!(
                "its end date {} has passed and it still exists; --fix revokes it (deletes the app client and its companion API key)",
                crate::clock::rfc3339(end)
            );
            let finding = Self::finding(
                FindingKind::Expired,
                id,
                Some(&n.owner),
                Some(&n.app),
                detail,
            );
            let fix = Fix::RevokeClient {
                id: id.clone(),
                companions: self.companions_of(id),
                claim: self.claim(CredentialKind::ClientCredentials, &n.app),
            };
            self.add(
                id,
                Planned {
                    finding,
                    kind: CredentialKind::ClientCredentials,
                    fix,
                    guard: None,
                },
            );
        }
    }

    /// Enabled keys no login shows to its owner (unnamed), and those it
    /// shows that keyhook did not issue (unmanaged): left to a person.
    fn unowned(&mut self) {
        let plans = &self.account.plans;
        let mut found = Vec::new();
        for key in self.keys.iter().filter(|k| k.enabled) {
            let planless = match plans.get(&key.id).is_some_and(|p| !p.is_empty()) {
                true => "",
                false => " It is on no usage plan either.",
            };
            let (kind, detail) = match (key.owner(), key.app_hash()) {
                (None, _) => (
                    FindingKind::Unnamed,
                    format!("its name {:?} is no owner address, so no login ever shows it; left to a person.{planless}", key.name.chars().take(128).collect::<String>()),
                ),
                (Some(owner), None) => (
                    FindingKind::Unmanaged,
                    format!("named with an email but not issued by keyhook (no {TAG_APP} tag): every login of {owner} shows it today; left to a person.{planless}"),
                ),
                (Some(_), Some(_)) => continue,
            };
            let finding = Self::finding(kind, &key.id, key.owner(), None, detail);
            found.push((
                key.id.clone(),
                Planned {
                    finding,
                    kind: CredentialKind::ApiKey,
                    fix: Fix::Nothing,
                    guard: None,
                },
            ));
        }
        for (id, planned) in found {
            self.add(&id, planned);
        }
    }

    /// Enabled keys keyhook made that are on no usage plan.
    fn planless(&mut self) {
        let plans = &self.account.plans;
        let on_plans = |id: &str| plans.get(id).is_some_and(|p| !p.is_empty());
        let mut found = Vec::new();
        for key in self.keys.iter().filter(|k| k.enabled && !on_plans(&k.id)) {
            let Some(hash) = key.app_hash() else { continue };
            if !self.old(Some(key.created_ms)) {
                continue;
            }
            // The plans its app's other keys are on.
            let mut targets = BTreeSet::new();
            let others = self.by_app.get(hash).into_iter().flatten();
            for other in others.filter(|o| o.id != key.id) {
                targets.extend(plans.get(&other.id).into_iter().flatten().cloned());
            }
            let from = match targets.is_empty() {
                true => "the default usage plan",
                false => "its app's other credentials' usage plans",
            };
            if targets.is_empty() {
                targets.extend(self.rules.default_plan.clone());
            }
            let (fix, does) = match targets.is_empty() {
                true => (
                    Fix::Disable(key.id.clone()),
                    "--fix disables it (no plan of its app and no default plan known)".to_string(),
                ),
                false => {
                    let targets: Vec<String> = targets.into_iter().collect();
                    let does = format!("--fix attaches it to {from} ({})", targets.join(", "));
                    (
                        Fix::Attach {
                            key: key.id.clone(),
                            plans: targets,
                        },
                        does,
                    )
                }
            };
            let detail =
                format!("on no usage plan, so API Gateway rejects every call made with it; {does}");
            let app = AppKey::from_hash(hash).app_id();
            let finding = Self::finding(
                FindingKind::Planless,
                &key.id,
                key.owner(),
                Some(&app),
                detail,
            );
            found.push((
                key.id.clone(),
                Planned {
                    finding,
                    kind: CredentialKind::ApiKey,
                    fix,
                    guard: None,
                },
            ));
        }
        for (id, planned) in found {
            self.add(&id, planned);
        }
    }
}

#[cfg(test)]
#[path = "findings_tests.rs"]
mod tests;
