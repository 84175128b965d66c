//! What the AWS backend is configured with (`[aws]`, `KEYHOOK_AWS_*`,
//! `KEYHOOK_COGNITO_*`...): each setting described once, checked and
//! summarised here.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::setting::{self, Invalid, Read, Setting};

/// What revoking an API key does in API Gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeMode {
    Delete,
    Disable,
}

/// The AWS backend. Region, credentials and endpoint come from the standard
/// AWS configuration chain (`AWS_REGION`, profiles, ECS task role, IRSA,
/// `AWS_ENDPOINT_URL`); these are keyhook's own settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Cognito user pool that holds client-credentials app clients.
    pub cognito_user_pool_id: Option<String>,
    /// Cognito domain, e.g. `https://auth.example.com` or
    /// `https://prefix.auth.us-east-1.amazoncognito.com`; the token
    /// endpoint is `<domain>/oauth2/token`.
    #[serde(default, deserialize_with = "without_trailing_slash")]
    pub cognito_domain: Option<String>,
    /// Scopes every app client gets.
    #[serde(default, deserialize_with = "setting::list")]
    pub cognito_scopes: Vec<String>,
    /// Extra scopes per API Gateway REST API id (TOML only).
    #[serde(default)]
    pub api_scopes: BTreeMap<String, Vec<String>>,
    pub revoke: RevokeMode,
    /// Also issue an API key (attached to the app's usage plans) with
    /// client credentials.
    pub client_api_key: bool,
    /// Seconds between background refreshes of the owner index: the bound
    /// on how long another replica's change takes to reach this one.
    pub index_refresh_secs: u64,
    /// Control-plane calls per second this replica allows itself.
    pub rate_limit: f64,
    /// Overall time for one AWS operation, retries included.
    pub timeout_secs: u64,
    /// Attempts per AWS operation (SDK standard retry with backoff).
    pub max_attempts: u32,
    /// DynamoDB table of app claims: one credential per app across
    /// replicas (`claims.rs`).
    pub claim_table: Option<String>,
}

impl AwsSettings {
    pub const SETTINGS: &[Setting] = &[
        Setting {
            key: "aws.cognito_user_pool_id",
            var: "KEYHOOK_COGNITO_USER_POOL_ID",
            read: Read::Text,
            default: None,
            secret: false,
            doc: "user pool for client credentials (required for `client_credentials`)",
        },
        Setting {
            key: "aws.cognito_domain",
            var: "KEYHOOK_COGNITO_DOMAIN",
            read: Read::Text,
            default: None,
            secret: false,
            doc: "Cognito domain URL; the token endpoint `<domain>/oauth2/token` is returned in `customCredentials.tokenEndpoint`",
        },
        Setting {
            key: "aws.cognito_scopes",
            var: "KEYHOOK_COGNITO_SCOPES",
            read: Read::List,
            default: None,
            secret: false,
            doc: "scopes every app client gets, comma-separated (per-API extra scopes: `[aws.api_scopes]` in the TOML file, REST API id → list)",
        },
        Setting {
            key: "aws.revoke",
            var: "KEYHOOK_REVOKE",
            read: Read::Text,
            default: Some("delete"),
            secret: false,
            doc: "`delete` the API key on revoke, or `disable` it",
        },
        Setting {
            key: "aws.client_api_key",
            var: "KEYHOOK_CLIENT_API_KEY",
            read: Read::Bool,
            default: Some("false"),
            secret: false,
            doc: "with client credentials, also issue an API key attached to the app's usage plans (returned as `customCredentials.apiKeyId`/`apiKey`, and shown beside `user`/`pass` at login)",
        },
        Setting {
            key: "aws.index_refresh_secs",
            var: "KEYHOOK_INDEX_REFRESH_SECS",
            read: Read::Unsigned,
            default: Some("30"),
            secret: false,
            doc: "owner-index refresh interval: another replica's change reaches logins here at the next refresh; with no refresh succeeding for 3 intervals, logins are answered only from what AWS confirms at once, else 503 `index_stale`",
        },
        Setting {
            key: "aws.rate_limit",
            var: "KEYHOOK_AWS_RATE_LIMIT",
            read: Read::Float,
            default: Some("5.0"),
            secret: false,
            doc: "AWS control-plane calls per second this replica allows itself (token bucket, burst 2×)",
        },
        Setting {
            key: "aws.timeout_secs",
            var: "KEYHOOK_AWS_TIMEOUT_SECS",
            read: Read::Unsigned,
            default: Some("10"),
            secret: false,
            doc: "overall time for one AWS operation, retries included",
        },
        Setting {
            key: "aws.max_attempts",
            var: "KEYHOOK_AWS_MAX_ATTEMPTS",
            read: Read::Unsigned,
            default: Some("4"),
            secret: false,
            doc: "attempts per operation (SDK standard retry, exponential backoff with jitter)",
        },
        Setting {
            key: "aws.claim_table",
            var: "KEYHOOK_CLAIM_TABLE",
            read: Read::Text,
            default: None,
            secret: false,
            doc: "DynamoDB table (partition key `app`, a string) in which replicas claim each app's credential, so that racing replicas show one credential per app; required with more than one replica (`deploy/init/seed_aws.py` makes it)",
        },
    ];

    pub fn validate(&self) -> Result<(), Invalid> {
        if self.index_refresh_secs == 0 {
            return Err(Invalid(
                "aws.index_refresh_secs (KEYHOOK_INDEX_REFRESH_SECS) must be at least 1".into(),
            ));
        }
        if !(self.rate_limit > 0.0 && self.rate_limit.is_finite()) {
            return Err(Invalid(
                "aws.rate_limit (KEYHOOK_AWS_RATE_LIMIT) must be a positive number".into(),
            ));
        }
        if self.timeout_secs == 0 || self.max_attempts == 0 {
            return Err(Invalid(
                "aws.timeout_secs and aws.max_attempts must be at least 1".into(),
            ));
        }
        if let Some(domain) = &self.cognito_domain {
            if !domain.starts_with("https://") && !domain.starts_with("http://") {
                return Err(Invalid(format!(
                    "aws.cognito_domain (KEYHOOK_COGNITO_DOMAIN) must be a URL such as https://auth.example.com, got `{domain}`"
                )));
            }
        }
        Ok(())
    }

    /// How old a credential no claim holds must be before a refresh settles
    /// it: longer than any create (its look, create and claim, each with
    /// retries) can take, with room for clock skew (AWS dates have whole
    /// seconds).
    pub fn settle_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs(3 * self.timeout_secs + 10)
    }

    /// What `keyhook check` says of the AWS backend.
    pub fn summary(&self) -> String {
        format!(
            "api keys (revoke: {:?}), client credentials {}, index refresh {} s, {} calls/s, timeout {} s x {} attempts, {}",
            self.revoke,
            match &self.cognito_user_pool_id {
                Some(pool) => format!("in user pool {pool}"),
                None => "off (no KEYHOOK_COGNITO_USER_POOL_ID)".into(),
            },
            self.index_refresh_secs,
            self.rate_limit,
            self.timeout_secs,
            self.max_attempts,
            match &self.claim_table {
                Some(table) => format!("app claims in DynamoDB table {table}"),
                None => "no claim table (KEYHOOK_CLAIM_TABLE): run one replica only".into(),
            }
        )
    }
}

impl Default for AwsSettings {
    fn default() -> Self {
        setting::section_default("aws", Self::SETTINGS)
    }
}

/// The token endpoint is `<domain>/oauth2/token`: a trailing `/` would double.
fn without_trailing_slash<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(|s| s.trim_end_matches('/').to_string()))
}
