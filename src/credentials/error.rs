//! How a credential operation fails: the error both doors map to answers,
//! and the closed set of failure kinds an answer may name.

use std::fmt;

use super::CredentialRef;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    #[error("{0} not found")]
    NotFound(CredentialRef),
    /// An operator named a credential id the backend does not hold.
    #[error("credential {0} not found")]
    UnknownId(String),
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
    /// The backend refused a new credential at a limit it keeps across
    /// replicas (the AWS key ceiling with the claim table): answered as the
    /// budget's own refusal.
    #[error(transparent)]
    LimitReached(crate::budget::Refusal),
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
            CredentialError::NotFound(_)
            | CredentialError::UnknownId(_)
            | CredentialError::Invalid(_)
            | CredentialError::LimitReached(_) => None,
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
    /// No refresh of the AWS owner index has succeeded within its staleness
    /// limit, and AWS could not confirm what the index holds.
    IndexStale,
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
    pub const ALL: [FailureKind; 10] = [
        FailureKind::Starting,
        FailureKind::IndexStale,
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
            FailureKind::IndexStale => "index_stale",
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
            FailureKind::IndexStale => "the owner index is too old and AWS could not confirm it",
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
