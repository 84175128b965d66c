//! The credential model both front doors share, and the provider trait each
//! backend implements (`local` here, `aws` in its own folder).
//!
//! A credential belongs to an *owner* (the developer's email, the key a ReadMe
//! login looks up) and to an *app* (the Sensedia app, or the ReadMe reader's
//! own provisioned app). Creating the same app twice yields the same
//! credential, brought in step with the request (the credential follows its
//! app to a new developer): that is what makes portal retries and concurrent
//! first logins safe. Update and revoke reach only a credential keyhook
//! issued, through the app it was issued to ([`CredentialRef::admit`]).

mod app;
pub mod aws;
mod email;
mod error;
mod generate;
mod index;
pub mod lifecycle;
pub mod local;
mod reference;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use app::AppId;
pub use email::{Email, InvalidEmail};
pub use error::{CredentialError, FailureKind, Result};
pub use lifecycle::{Finding, FindingKind, Listed, Repair, Rotation};
pub use reference::{Claim, CredentialRef};

use crate::secret::Redacted;

/// The `tracing` target of the audit trail: credential changes, and the
/// duplicates a backend settles, so operators can route them to their own sink.
pub const AUDIT_TARGET: &str = "keyhook::audit";

/// Which kind of credential to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// An API key, metered by usage plans (Amazon API Gateway).
    ApiKey,
    /// An OAuth client id and secret for the client-credentials grant
    /// (an Amazon Cognito app client).
    ClientCredentials,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::ClientCredentials => "client_credentials",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which front door asked for a credential; recorded for audit and so a
/// backend can tell its own credentials from hand-made ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Readme,
    Sensedia,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Readme => "readme",
            Origin::Sensedia => "sensedia",
        }
    }
}

/// What a caller wants to exist: the desired state of one app's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSpec {
    pub kind: CredentialKind,
    pub owner: Email,
    pub app: AppId,
    /// Human label: the app name, shown in ReadMe's key dropdown.
    pub label: String,
    pub origin: Origin,
    /// API Gateway REST API ids the app uses (drives per-API scopes).
    pub api_ids: Vec<String>,
    /// Usage plans the credential must be attached to (API keys).
    pub usage_plans: Vec<String>,
    /// The end date a new credential is made with (a provisioned key's
    /// lifetime); an existing one keeps its own.
    pub expires_at_ms: Option<u64>,
}

/// The secret half of a credential. Values are wrapped so that a `{:?}` of a
/// credential can never print them, and no `Serialize` can write them: the
/// local store writes its own row (`local/row.rs`), the doors
/// their own answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Secret {
    ApiKey {
        value: Redacted<String>,
    },
    ClientCredentials {
        client_secret: Redacted<String>,
        scopes: Vec<String>,
    },
}

/// A credential as a backend holds it. `Deserialize` reads the local
/// store's rows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Credential {
    /// API key id, or Cognito app client id.
    pub id: String,
    pub owner: Email,
    pub app: AppId,
    pub label: String,
    pub origin: Origin,
    pub secret: Secret,
    pub usage_plans: Vec<String>,
    pub api_ids: Vec<String>,
    /// Extra facts handed back to the portal (token endpoint, scopes, a
    /// companion API key...). Never logged: it may carry secrets.
    pub custom: BTreeMap<String, Redacted<String>>,
    pub created_at_ms: u64,
    /// When it stops working (Unix ms): set by a rotation (its grace), by an
    /// operator, or by a provisioned key's lifetime. From that millisecond
    /// on no login shows it, and the sweeper revokes it.
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
    /// The credential this one succeeds (a rotation): that one is in its
    /// grace period, not a duplicate, while both exist.
    #[serde(default)]
    pub replaces: Option<String>,
}

impl Credential {
    /// Whether its end date has come at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|end| now_ms >= end)
    }

    pub fn kind(&self) -> CredentialKind {
        match self.secret {
            Secret::ApiKey { .. } => CredentialKind::ApiKey,
            Secret::ClientCredentials { .. } => CredentialKind::ClientCredentials,
        }
    }

    /// Whether this credential already is what `spec` asks for (owner,
    /// label, plans, APIs): a retried create then changes nothing. Plans
    /// and APIs compare as sets: AWS lists a key's plans in its own order.
    pub(crate) fn matches(&self, spec: &CredentialSpec) -> bool {
        fn same(a: &[String], b: &[String]) -> bool {
            let sorted = |v: &[String]| {
                let mut v = v.to_vec();
                v.sort();
                v.dedup();
                v
            };
            sorted(a) == sorted(b)
        }
        self.kind() == spec.kind
            && self.owner == spec.owner
            && self.label == spec.label
            && same(&self.usage_plans, &spec.usage_plans)
            && same(&self.api_ids, &spec.api_ids)
    }

    /// This credential re-synced with `spec`: its owner, label, plans and
    /// APIs. The id, secret and app identity stay (retries are matched on
    /// the app), and so does the kind: a spec of another kind is refused.
    pub(crate) fn resynced(&self, spec: &CredentialSpec) -> Result<Credential> {
        if self.kind() != spec.kind {
            return Err(CredentialError::Invalid(format!(
                "credential {} is a {}, not a {}",
                self.id,
                self.kind(),
                spec.kind
            )));
        }
        Ok(Credential {
            owner: spec.owner.clone(),
            label: spec.label.clone(),
            usage_plans: spec.usage_plans.clone(),
            api_ids: spec.api_ids.clone(),
            ..self.clone()
        })
    }
}

/// What a backend's index counts for the provisioning budget (`budget.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// API keys, a client's companion key included, as the index sees
    /// them: keys whose name is no address are not in it.
    pub api_keys: usize,
    /// Keys provisioned at a first login (keyhook's, origin ReadMe) made
    /// since the instant asked about.
    pub provisioned_since: usize,
}

/// Whether `create` made something new or found the app's credential, as
/// it was or brought in step with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    Existing,
    /// The app's credential existed and was changed to match the request
    /// (another owner, label or plans).
    Updated,
}

/// What `revoke` removed, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// This credential was revoked.
    Revoked(Box<Credential>),
    NotFound,
}

/// A credential backend. Both front doors speak only this trait, so adding a
/// backend never touches them.
#[async_trait]
pub trait CredentialProvider: Send + Sync + 'static {
    /// A short name for logs and `keyhook check`.
    fn name(&self) -> &'static str;

    /// Every active credential owned by `owner` (exact match on the whole
    /// address), oldest first; shared with the index, not copied (a login
    /// reads them only).
    async fn find_by_owner(&self, owner: &Email) -> Result<Vec<Arc<Credential>>>;

    /// As `find_by_owner`, for a login that provisions `owner` a key when
    /// nothing is found (the door's policy admits them). A backend whose
    /// provisioning create reads its store anyway may answer a reader its
    /// index does not know from the index alone, leaving the look-up to that
    /// create (AWS: a first login's `GetApiKeys`). A door that then does not
    /// create (the budget refuses) asks `find_by_owner`.
    async fn find_to_provision(&self, owner: &Email) -> Result<Vec<Arc<Credential>>> {
        self.find_by_owner(owner).await
    }

    /// Ensures the app's credential of this kind is what `spec` describes:
    /// issues it, or brings the one already issued for the same app and kind
    /// in step (owner, label, plans, scopes) and returns it (`Existing`). A
    /// retry with the same spec changes nothing. Concurrent calls for one app
    /// converge on a single credential.
    async fn create(&self, spec: &CredentialSpec) -> Result<(Credential, Created)>;

    /// Re-syncs an existing credential with `spec` (owner, plans, scopes,
    /// label). Only a credential keyhook issued, named through its own app
    /// ([`CredentialRef::admit`]): anything else is `NotFound`.
    async fn update(&self, target: &CredentialRef, spec: &CredentialSpec) -> Result<Credential>;

    /// Makes a credential unusable and invisible. As for update, only a
    /// credential keyhook issued, named through its own app: anything else,
    /// an unknown id included, is `NotFound`; another kind is `Invalid`.
    /// `Revoked::NotFound` when it went away while being revoked.
    async fn revoke(&self, target: &CredentialRef) -> Result<Revoked>;

    /// Whether the backend can serve requests now.
    async fn health(&self) -> Result<()>;

    // The credential lifecycle (`lifecycle.rs`, the admin listener).

    /// Whether the app has a credential of this kind, in the index (no
    /// backend call): a create for it makes nothing new.
    fn holds_app(&self, app: &AppId, kind: CredentialKind) -> bool;

    /// The index's counts for the provisioning budget, `since_ms` for the
    /// keys provisioned lately.
    fn census(&self, since_ms: u64) -> Census;

    /// Whether `credential` is of the app a request naming `requested`
    /// means, as this backend stores app identities (AWS hashes them).
    fn is_app(&self, requested: &AppId, credential: &Credential) -> bool {
        credential.app == *requested
    }

    /// Every credential the backend holds, oldest first: predecessors in
    /// their grace period, hand-made keys and (AWS, `KEYHOOK_REVOKE=disable`)
    /// disabled keys included. The admin listing; never a login's answer.
    async fn list(&self) -> Result<Vec<Listed>> {
        Err(lifecycle::unsupported(self.name(), "listing credentials"))
    }

    /// Issues a successor to credential `id`: same owner, app, label,
    /// plans or scopes, attached before it is returned; the predecessor
    /// stops working at `until_ms` (its grace). A credential that already
    /// has a successor is `Invalid` (409) naming it; a hand-made one too.
    /// A failure half-way leaves the predecessor as it was, no successor.
    async fn rotate(&self, id: &str, until_ms: u64) -> Result<Rotation> {
        let _ = (id, until_ms);
        Err(lifecycle::unsupported(self.name(), "rotation"))
    }

    /// Sets (or, `None`, clears) credential `id`'s end date.
    async fn set_expiry(&self, id: &str, expires_at_ms: Option<u64>) -> Result<Credential> {
        let _ = (id, expires_at_ms);
        Err(lifecycle::unsupported(self.name(), "end dates"))
    }

    /// Revokes credential `id` for an operator: any credential the backend
    /// holds, hand-made ones included. `Revoked::NotFound` when another
    /// replica revoked it first.
    async fn revoke_by_id(&self, id: &str) -> Result<Revoked> {
        let _ = id;
        Err(lifecycle::unsupported(self.name(), "revoking by id"))
    }

    /// Revokes every credential whose end date has come at `now_ms`. Several
    /// replicas may sweep at once: each credential is revoked, and reported
    /// in the returned list, by exactly one of them; losing that race is
    /// not an error.
    async fn sweep(&self, now_ms: u64) -> Result<Vec<Credential>> {
        let _ = now_ms;
        Ok(Vec::new())
    }

    /// What is wrong in what the backend holds (`keyhook audit`).
    async fn audit(&self, now_ms: u64) -> Result<Vec<Finding>> {
        let _ = now_ms;
        Err(lifecycle::unsupported(self.name(), "the audit"))
    }

    /// Repairs what of `findings` is safe to repair (`keyhook audit --fix`),
    /// each repair an audit event.
    async fn repair(&self, findings: &[Finding]) -> Result<Vec<Repair>> {
        let _ = findings;
        Err(lifecycle::unsupported(self.name(), "audit repairs"))
    }
}
