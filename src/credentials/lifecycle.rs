//! The credential lifecycle's shared vocabulary: what the admin listing
//! shows of a credential, a rotation's outcome, the audit's findings and
//! repairs, and the order a login shows an app's successor and predecessor
//! in. Backends implement the operations (`CredentialProvider::{list,
//! rotate, set_expiry, revoke_by_id, sweep, audit, repair}`); the admin
//! listener (`crate::admin`) and `keyhook audit` speak these types.

use std::sync::Arc;

use serde::Serialize;

use super::{Credential, CredentialError};

/// A credential as the admin listing shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub credential: Credential,
    /// Disabled in AWS (`KEYHOOK_REVOKE=disable`): kept, never shown.
    pub disabled: bool,
}

/// Where a credential stands, for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Active,
    /// It has an end date (passed or not: the sweeper revokes it within an
    /// interval of it).
    Expiring,
    Disabled,
}

impl Listed {
    pub fn state(&self) -> State {
        if self.disabled {
            State::Disabled
        } else if self.credential.expires_at_ms.is_some() {
            State::Expiring
        } else {
            State::Active
        }
    }
}

/// What a rotation did: the successor (its secret to be shown once) and the
/// predecessor with its new end date.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub successor: Credential,
    pub predecessor: Credential,
}

/// What `keyhook audit` finds wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An enabled key named with an email that keyhook did not issue: it is
    /// shown at login.
    Unmanaged,
    /// More than one credential for one app identity (not a rotation's
    /// successor and predecessor).
    Duplicate,
    /// An enabled API key on no usage plan: API Gateway rejects every call
    /// made with it.
    Planless,
    /// An API key issued beside an app client that no longer exists.
    Orphan,
    /// Past its end date and still enabled.
    Expired,
    /// An enabled key whose name is no valid owner address: never shown.
    Unnamed,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Unmanaged => "unmanaged",
            FindingKind::Duplicate => "duplicate",
            FindingKind::Planless => "planless",
            FindingKind::Orphan => "orphan",
            FindingKind::Expired => "expired",
            FindingKind::Unnamed => "unnamed",
        }
    }

    /// Whether `--fix` may repair it; the others are left to a person.
    pub fn repairable(self) -> bool {
        !matches!(self, FindingKind::Unmanaged | FindingKind::Unnamed)
    }
}

/// One finding: what is wrong with which credential. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub kind: FindingKind,
    /// The API key or app client id.
    pub credential_id: String,
    pub owner: Option<String>,
    /// The app identity as the backend stores it.
    pub app: Option<String>,
    /// For people: what is wrong, and what `--fix` would do.
    pub detail: String,
}

/// What `--fix` did about one finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Repair {
    pub kind: FindingKind,
    pub credential_id: String,
    /// What was done: `deleted`, `attached`, `disabled`, `revoked`.
    pub action: String,
    pub detail: String,
}

pub(crate) fn unsupported(backend: &str, what: &str) -> CredentialError {
    CredentialError::Invalid(format!("the {backend} backend does not support {what}"))
}

/// What a login shows of `credentials` at `now_ms`: nothing past its end
/// date, and a successor just before the predecessor it replaces (which
/// otherwise keep their order, oldest first).
pub fn shown_at(mut credentials: Vec<Arc<Credential>>, now_ms: u64) -> Vec<Arc<Credential>> {
    // The usual login: nothing to drop or reorder, nothing to allocate.
    if credentials
        .iter()
        .all(|c| c.expires_at_ms.is_none() && c.replaces.is_none())
    {
        return credentials;
    }
    credentials.retain(|c| !c.is_expired(now_ms));
    let successors: Vec<Arc<Credential>> = credentials
        .iter()
        .filter(|c| {
            c.replaces
                .as_ref()
                .is_some_and(|p| credentials.iter().any(|o| &o.id == p))
        })
        .cloned()
        .collect();
    let mut shown = Vec::with_capacity(credentials.len());
    for credential in credentials {
        if successors.iter().any(|s| s.id == credential.id) {
            continue;
        }
        if let Some(successor) = successors
            .iter()
            .find(|s| s.replaces.as_deref() == Some(credential.id.as_str()))
        {
            shown.push(Arc::clone(successor));
        }
        shown.push(credential);
    }
    shown
}

/// Revokes what has expired, every `every`, until `provider` is dropped
/// elsewhere: one `revoked` audit event per credential, from the replica
/// whose revoke took it. A failed sweep is logged and tried again at the
/// next tick.
pub async fn sweep_loop(
    provider: std::sync::Weak<dyn super::CredentialProvider>,
    every: std::time::Duration,
    clock: crate::clock::Clock,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(provider) = provider.upgrade() else {
            return;
        };
        let now = u64::try_from(clock()).unwrap_or_default();
        match provider.sweep(now).await {
            Ok(revoked) => {
                for credential in &revoked {
                    crate::telemetry::audit::by("sweeper", "revoked", credential);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "sweeping expired credentials failed; the next interval tries again")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::index::tests::key;

    #[test]
    fn a_login_shows_no_expired_credential_and_a_successor_before_its_predecessor() {
        let mut old = key("old", "jo@corp.com", "app-a", 1);
        old.expires_at_ms = Some(100);
        let other = key("other", "jo@corp.com", "app-b", 2);
        let mut new = key("new", "jo@corp.com", "app-a", 3);
        new.replaces = Some("old".into());
        let ids = |shown: Vec<Arc<Credential>>| {
            shown.into_iter().map(|c| c.id.clone()).collect::<Vec<_>>()
        };
        let all: Vec<_> = [old, other, new].into_iter().map(Arc::new).collect();
        assert_eq!(ids(shown_at(all.clone(), 99)), ["new", "old", "other"]);
        // From the first millisecond of the end date on, never shown.
        assert_eq!(ids(shown_at(all, 100)), ["other", "new"]);
    }
}
