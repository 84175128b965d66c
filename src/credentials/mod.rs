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

    /// A key made by hand (in the console, not by keyhook): its own app,
    /// named by its id, so no request can speak for it.
    pub fn hand_made_key(id: &str) -> Self {
        AppId(format!("apikey:{id}"))
    }

    /// Whether keyhook issued the credential of this app (a hand-made key's
    /// app is its own, see [`AppId::hand_made_key`]).
    pub fn issued_by_keyhook(&self) -> bool {
        !self.0.starts_with("apikey:")
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

    /// Whether this credential already is what `spec` asks for (owner,
    /// label, plans, APIs): a retried create then changes nothing.
    pub(crate) fn matches(&self, spec: &CredentialSpec) -> bool {
        self.kind() == spec.kind
            && self.owner == spec.owner
            && self.label == spec.label
            && self.usage_plans == spec.usage_plans
            && self.api_ids == spec.api_ids
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
/// which tells a backend where to look. A caller naming an id also says which
/// app it speaks for, when it does ([`Claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    Id(String, CredentialKind, Claim),
    App(AppId, CredentialKind),
}

/// The app a request naming a credential by id speaks for. A credential is
/// acted on only through the app it was issued to: anything else is
/// reported exactly as an unknown id, so a caller cannot learn that a
/// credential of another app (or one made by hand) exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The request names no app: it acts within the credential's own app.
    None,
    /// The request names its app (a slug): the credential must be its.
    App(AppId),
    /// The request names its developer and app name, which an edit may just
    /// have changed: the credential must be of the app so named, or owned by
    /// that developer (never someone else's).
    Named(AppId, Email),
}

impl CredentialRef {
    pub fn kind(&self) -> CredentialKind {
        match self {
            CredentialRef::Id(_, kind, _) | CredentialRef::App(_, kind) => *kind,
        }
    }

    /// `found`, what this reference resolved to, if the caller may act on
    /// it: keyhook issued it, to the app the caller speaks for (compared by
    /// `same_app(requested, stored)`, as the backend stores identities).
    /// Otherwise `NotFound`, as for an unknown id; a credential of another
    /// kind than the caller said is refused (409), as update always did.
    pub(crate) fn admit(
        &self,
        found: Option<Credential>,
        same_app: impl Fn(&AppId, &AppId) -> bool,
    ) -> Result<Credential> {
        let not_found = || CredentialError::NotFound(self.clone());
        let found = found.ok_or_else(not_found)?;
        let claimed = match self {
            CredentialRef::App(app, _) | CredentialRef::Id(_, _, Claim::App(app)) => {
                same_app(app, &found.app)
            }
            CredentialRef::Id(_, _, Claim::Named(app, developer)) => {
                same_app(app, &found.app) || found.owner == *developer
            }
            CredentialRef::Id(_, _, Claim::None) => true,
        };
        if !found.app.issued_by_keyhook() || !claimed {
            return Err(not_found());
        }
        if found.kind() != self.kind() {
            return Err(CredentialError::Invalid(format!(
                "credential {} is a {}, not a {}",
                found.id,
                found.kind(),
                self.kind()
            )));
        }
        Ok(found)
    }
}

impl fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialRef::Id(id, kind, _) => write!(f, "{kind} {id}"),
            CredentialRef::App(app, kind) => write!(f, "{kind} of app {app}"),
        }
    }
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

    fn key(id: &str, app: AppId, owner: &str) -> Credential {
        Credential {
            id: id.into(),
            owner: Email::parse(owner).unwrap(),
            app,
            label: "app".into(),
            origin: Origin::Sensedia,
            secret: Secret::ApiKey {
                value: Redacted::new("v".into()),
            },
            usage_plans: Vec::new(),
            api_ids: Vec::new(),
            custom: BTreeMap::new(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn a_reference_admits_only_a_credential_keyhook_issued_to_its_app() {
        let same = |a: &AppId, b: &AppId| a == b;
        let mine = AppId::sensedia_slug("mine");
        let jo = Email::parse("jo@corp.com").unwrap();
        let named = AppId::sensedia_named(&jo, "Old name");
        let by = |claim| CredentialRef::Id("k1".into(), CredentialKind::ApiKey, claim);
        let admitted = |r: &CredentialRef, c: Credential| r.admit(Some(c), same);
        let is_not_found = |r: Result<Credential>| matches!(r, Err(CredentialError::NotFound(_)));

        for claim in [Claim::None, Claim::App(mine.clone())] {
            assert!(admitted(&by(claim), key("k1", mine.clone(), "jo@corp.com")).is_ok());
        }
        // Another app's credential, through this app; a hand-made key,
        // through any; nothing at all: one answer.
        let theirs = key("k1", AppId::sensedia_slug("theirs"), "al@corp.com");
        assert!(is_not_found(admitted(
            &by(Claim::App(mine.clone())),
            theirs.clone()
        )));
        let hand_made = key("k1", AppId::hand_made_key("k1"), "al@corp.com");
        assert!(is_not_found(admitted(&by(Claim::None), hand_made.clone())));
        assert!(is_not_found(admitted(
            &CredentialRef::App(AppId::hand_made_key("k1"), CredentialKind::ApiKey),
            hand_made
        )));
        assert!(is_not_found(by(Claim::None).admit(None, same)));
        // Without a slug: the app so named, or (a rename) one of the
        // developer's own; never someone else's.
        let renamed = Claim::Named(AppId::sensedia_named(&jo, "New name"), jo.clone());
        assert!(admitted(&by(renamed.clone()), key("k1", named, "jo@corp.com")).is_ok());
        assert!(is_not_found(admitted(&by(renamed), theirs)));
        // The wrong kind is refused, as update always did.
        let wrong = CredentialRef::Id("k1".into(), CredentialKind::ClientCredentials, Claim::None);
        assert!(matches!(
            admitted(&wrong, key("k1", mine, "jo@corp.com")),
            Err(CredentialError::Invalid(_))
        ));
    }
}
