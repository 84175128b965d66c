//! The credential model both front doors share, and the provider trait each
//! backend implements (`local` here, `aws` in its own folder).
//!
//! A credential belongs to an *owner* (the developer's email, the key a ReadMe
//! login looks up) and to an *app* (the Sensedia app, or the ReadMe reader's
//! own provisioned app). Creating the same app twice yields the same
//! credential: that is what makes portal retries and concurrent first logins
//! safe.

pub mod aws;
mod email;
mod generate;
mod index;
pub mod local;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use email::{Email, InvalidEmail};

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

/// The stable identity of the app a credential was issued for. Two create
/// requests with the same identity (and kind) name the same credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppId(String);

impl AppId {
    /// A Sensedia app known by its slug.
    pub fn sensedia_slug(slug: &str) -> Self {
        AppId(format!("slug:{}", slug.trim()))
    }

    /// A Sensedia app without a slug: its developer and its name.
    pub fn sensedia_named(developer: &Email, app_name: &str) -> Self {
        AppId(format!("app:{}/{}", developer, app_name.trim()))
    }

    /// The app keyhook provisions for a first-time ReadMe reader.
    pub fn readme_reader(reader: &Email) -> Self {
        AppId(format!("readme:{reader}"))
    }

    /// Rebuilds an identity read back from storage.
    pub fn from_stored(raw: impl Into<String>) -> Self {
        AppId(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
}

impl Credential {
    pub fn kind(&self) -> CredentialKind {
        match self.secret {
            Secret::ApiKey { .. } => CredentialKind::ApiKey,
            Secret::ClientCredentials { .. } => CredentialKind::ClientCredentials,
        }
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

/// How a caller names an existing credential: by its id when it has one, by
/// the app it was issued for otherwise; with the kind the caller says it is,
/// which tells a backend where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    Id(String, CredentialKind),
    App(AppId, CredentialKind),
}

impl CredentialRef {
    pub fn kind(&self) -> CredentialKind {
        match self {
            CredentialRef::Id(_, kind) | CredentialRef::App(_, kind) => *kind,
        }
    }
}

impl fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialRef::Id(id, kind) => write!(f, "{kind} {id}"),
            CredentialRef::App(app, kind) => write!(f, "{kind} of app {app}"),
        }
    }
}

/// Whether `create` made something new or found the app's credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    Existing,
}

/// What `revoke` removed, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// This credential was revoked.
    Revoked(Box<Credential>),
    NotFound,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    #[error("{0} not found")]
    NotFound(CredentialRef),
    #[error("{0}")]
    Invalid(String),
    /// A backend call failed. `operation` names the call and `kind` how it
    /// failed: those two are all an answer shows. `detail` is the backend's
    /// own account (AWS's code and message, which name the role and account),
    /// for the log only; it never carries a secret.
    #[error("{operation} failed ({kind}): {detail}")]
    Failed {
        operation: &'static str,
        kind: FailureKind,
        detail: String,
    },
    /// The backend answered, but without what keyhook needs (kind
    /// `backend_failed`); `detail`, for the log only, says what was missing.
    #[error("{operation} failed: {detail}")]
    Backend {
        operation: &'static str,
        detail: String,
    },
}

impl CredentialError {
    /// The failing operation and how it failed, for a backend failure.
    pub fn failure(&self) -> Option<(&'static str, FailureKind)> {
        match self {
            CredentialError::Failed {
                operation, kind, ..
            } => Some((operation, *kind)),
            CredentialError::Backend { operation, .. } => {
                Some((operation, FailureKind::BackendFailed))
            }
            CredentialError::NotFound(_) | CredentialError::Invalid(_) => None,
        }
    }
}

/// How a backend call failed: a closed set, shown as the `kind` of an error
/// answer and the `reason` of an unready probe (README, "Responses").
/// Sorted from AWS's answers in `aws/call.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The first load of the AWS owner index has not finished yet.
    Starting,
    /// AWS could not be reached, answered 5xx or sent an unreadable answer.
    AwsUnavailable,
    /// AWS is throttling keyhook (429, or a throttling error code).
    AwsThrottled,
    /// AWS did not answer within `KEYHOOK_AWS_TIMEOUT_SECS`.
    AwsTimeout,
    /// AWS refused the credentials keyhook runs with, or their permissions
    /// (403: `AccessDeniedException`, an expired or unknown token).
    AwsAccessDenied,
    /// A resource keyhook is configured with (usage plan, user pool) does
    /// not exist.
    AwsNotFound,
    /// AWS refused the request for another reason (any other 4xx).
    AwsRefused,
    /// The backend answered without what keyhook needs, or keyhook could
    /// not build the request.
    BackendFailed,
    /// The local store could not read or write.
    StorageFailed,
}

impl FailureKind {
    pub const ALL: [FailureKind; 9] = [
        FailureKind::Starting,
        FailureKind::AwsUnavailable,
        FailureKind::AwsThrottled,
        FailureKind::AwsTimeout,
        FailureKind::AwsAccessDenied,
        FailureKind::AwsNotFound,
        FailureKind::AwsRefused,
        FailureKind::BackendFailed,
        FailureKind::StorageFailed,
    ];

    /// The word an answer shows.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Starting => "starting",
            FailureKind::AwsUnavailable => "aws_unavailable",
            FailureKind::AwsThrottled => "aws_throttled",
            FailureKind::AwsTimeout => "aws_timeout",
            FailureKind::AwsAccessDenied => "aws_access_denied",
            FailureKind::AwsNotFound => "aws_not_found",
            FailureKind::AwsRefused => "aws_refused",
            FailureKind::BackendFailed => "backend_failed",
            FailureKind::StorageFailed => "storage_failed",
        }
    }

    /// The fixed sentence an answer's `error` ends with.
    pub fn sentence(self) -> &'static str {
        match self {
            FailureKind::Starting => "the first load from AWS has not finished",
            FailureKind::AwsUnavailable => "AWS is unavailable",
            FailureKind::AwsThrottled => "AWS is throttling calls",
            FailureKind::AwsTimeout => "AWS did not answer in time",
            FailureKind::AwsAccessDenied => "AWS denied access",
            FailureKind::AwsNotFound => "a configured AWS resource does not exist",
            FailureKind::AwsRefused => "AWS refused the request",
            FailureKind::BackendFailed => "the backend's answer could not be used",
            FailureKind::StorageFailed => "the local store failed",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub type Result<T, E = CredentialError> = std::result::Result<T, E>;

/// A credential backend. Both front doors speak only this trait, so adding a
/// backend never touches them.
#[async_trait]
pub trait CredentialProvider: Send + Sync + 'static {
    /// A short name for logs and `keyhook check`.
    fn name(&self) -> &'static str;

    /// Every active credential owned by `owner` (exact match on the whole
    /// address), oldest first.
    async fn find_by_owner(&self, owner: &Email) -> Result<Vec<Credential>>;

    /// Issues the credential `spec` describes, or returns the one already
    /// issued for the same app and kind. Concurrent calls for one app converge
    /// on a single credential.
    async fn create(&self, spec: &CredentialSpec) -> Result<(Credential, Created)>;

    /// Re-syncs an existing credential with `spec` (plans, scopes, label).
    async fn update(&self, target: &CredentialRef, spec: &CredentialSpec) -> Result<Credential>;

    /// Makes a credential unusable and invisible. Unknown credentials are not
    /// an error: the caller wanted it gone, and it is.
    async fn revoke(&self, target: &CredentialRef) -> Result<Revoked>;

    /// Whether the backend can serve requests now.
    async fn health(&self) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set is closed and documented: every kind is in the README's
    /// table and the OpenAPI enum, and nothing else is in the enum.
    #[test]
    fn every_failure_kind_is_documented() {
        let readme = include_str!("../../README.md");
        let openapi = include_str!("../../openapi/keyhook.yaml");
        let documented: Vec<&str> = openapi
            .split("FailureKind:\n")
            .nth(1)
            .and_then(|s| s.split("enum:\n").nth(1))
            .expect("FailureKind's enum in openapi/keyhook.yaml")
            .lines()
            .map_while(|line| line.trim().strip_prefix("- "))
            .collect();
        let kinds: Vec<&str> = FailureKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(documented, kinds);
        for kind in kinds {
            assert!(readme.contains(&format!("| `{kind}` |")), "{kind}");
        }
    }
}
