//! What the admin API reads and answers: a credential as an operator sees
//! it (never its secret), a rotation's answer (the successor's secret,
//! once), and the request bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock;
use crate::credentials::lifecycle::State;
use crate::credentials::{Credential, CredentialKind, Listed, Secret};
use crate::error::ApiError;

/// One credential in the listing. Built field by field: nothing of the
/// secret, nor `custom` (which may hold one), can end up in it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    pub id: String,
    /// `API_KEY` or `CLIENT_CREDENTIALS`, as the Sensedia routes say it.
    pub kind: &'static str,
    pub owner: String,
    pub app: String,
    pub label: String,
    pub origin: &'static str,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_plans: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// The credential this one succeeds (it is in its grace period).
    pub replaces: Option<String>,
    /// The credential that succeeds this one.
    pub replaced_by: Option<String>,
}

pub fn wire_kind(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::ApiKey => "API_KEY",
        CredentialKind::ClientCredentials => "CLIENT_CREDENTIALS",
    }
}

impl CredentialView {
    /// `listed`, with `replaced_by` the id of its successor, if any.
    pub fn new(listed: &Listed, replaced_by: Option<String>) -> Self {
        let c = &listed.credential;
        let (usage_plans, scopes) = match &c.secret {
            Secret::ApiKey { .. } => (Some(c.usage_plans.clone()), None),
            Secret::ClientCredentials { scopes, .. } => (None, Some(scopes.clone())),
        };
        CredentialView {
            id: c.id.clone(),
            kind: wire_kind(c.kind()),
            owner: c.owner.to_string(),
            app: c.app.to_string(),
            label: c.label.clone(),
            origin: c.origin.as_str(),
            created_at: clock::rfc3339(c.created_at_ms),
            expires_at: c.expires_at_ms.map(clock::rfc3339),
            state: listed.state(),
            usage_plans,
            scopes,
            replaces: c.replaces.clone(),
            replaced_by,
        }
    }

    /// A credential just changed: enabled (what a change answers).
    pub fn of(credential: &Credential, replaced_by: Option<String>) -> Self {
        Self::new(
            &Listed {
                credential: credential.clone(),
                disabled: false,
            },
            replaced_by,
        )
    }
}

/// The listing: every credential with the successor of each, oldest first.
pub fn listing(all: &[Listed], keep: impl Fn(&Listed) -> bool) -> Vec<CredentialView> {
    all.iter()
        .filter(|l| keep(l))
        .map(|l| {
            let successor = all
                .iter()
                .find(|s| s.credential.replaces.as_deref() == Some(l.credential.id.as_str()))
                .map(|s| s.credential.id.clone());
            CredentialView::new(l, successor)
        })
        .collect()
}

/// The answer to a rotation: the successor with its secret (shown this
/// once), and the predecessor with its new end date.
#[derive(Debug, Serialize)]
pub struct RotationView {
    pub successor: SuccessorView,
    pub predecessor: CredentialView,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuccessorView {
    #[serde(flatten)]
    pub credential: CredentialView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// What the portal would show beside it (token endpoint, a companion
    /// API key), as `createCredentials` answers it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_credentials: BTreeMap<String, String>,
}

impl SuccessorView {
    pub fn new(successor: &Credential) -> Self {
        let (api_key, client_secret) = match &successor.secret {
            Secret::ApiKey { value } => (Some(value.expose().clone()), None),
            Secret::ClientCredentials { client_secret, .. } => {
                (None, Some(client_secret.expose().clone()))
            }
        };
        SuccessorView {
            credential: CredentialView::of(successor, None),
            api_key,
            client_secret,
            custom_credentials: (successor.custom.iter())
                .map(|(k, v)| (k.clone(), v.expose().clone()))
                .collect(),
        }
    }
}

/// `GET /credentials`'s filters, as given.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    pub owner: Option<String>,
    pub app: Option<String>,
}

/// `POST /credentials/{id}/rotate`; the body may be absent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateBody {
    pub grace_secs: Option<u64>,
}

/// `PUT /credentials/{id}/expiry`: `expiresAt` must be given, a date or
/// null (clearing the end date).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpiryBody {
    expires_at: Value,
}

impl ExpiryBody {
    /// The end date asked for, Unix ms; `None` clears it.
    pub fn end(&self) -> Result<Option<u64>, ApiError> {
        let bad = || {
            ApiError::Unprocessable(
                "invalid request: expiresAt must be an RFC 3339 date-time (2026-12-09T10:00:00Z) or null"
                    .into(),
            )
        };
        match &self.expires_at {
            Value::Null => Ok(None),
            Value::String(text) => end_date(text.trim()).map(Some).ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

/// An RFC 3339 date-time as Unix ms; one before 1970 is the epoch (long
/// past either way).
fn end_date(text: &str) -> Option<u64> {
    use aws_sdk_apigateway::primitives::{DateTime, DateTimeFormat};
    clock::parse_rfc3339(text).or_else(|| {
        DateTime::from_str(text, DateTimeFormat::DateTimeWithOffset)
            .ok()
            .map(|_| 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_date_is_any_rfc3339_date_time_or_null() {
        let end = |v: Value| ExpiryBody { expires_at: v }.end().ok();
        assert_eq!(end(Value::Null), Some(None));
        assert_eq!(
            end("2025-12-09T11:00:00+01:00".into()),
            Some(Some(1_765_274_400_000))
        );
        assert_eq!(end("0016-11-23T00:01:00.0Z".into()), Some(Some(0)));
        for bad in ["tomorrow", "2025-12-09", ""] {
            assert_eq!(end(bad.into()), None, "{bad}");
        }
        assert_eq!(end(5.into()), None);
    }
}
