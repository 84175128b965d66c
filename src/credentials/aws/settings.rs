//! What the AWS backend is configured with (`[aws]`, `KEYHOOK_AWS_*`,
//! `KEYHOOK_COGNITO_*`...).

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Deserialize;

/// What revoking an API key does in API Gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeMode {
    Delete,
    Disable,
}

impl FromStr for RevokeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "delete" => Ok(RevokeMode::Delete),
            "disable" => Ok(RevokeMode::Disable),
            other => Err(format!("expected `delete` or `disable`, got `{other}`")),
        }
    }
}

/// The AWS backend. Region, credentials and endpoint come from the standard
/// AWS configuration chain (`AWS_REGION`, profiles, ECS task role, IRSA,
/// `AWS_ENDPOINT_URL`); these are keyhook's own settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSettings {
    /// Cognito user pool that holds client-credentials app clients.
    pub cognito_user_pool_id: Option<String>,
    /// Cognito domain, e.g. `https://auth.example.com` or
    /// `https://prefix.auth.us-east-1.amazoncognito.com`; the token
    /// endpoint is `<domain>/oauth2/token`.
    pub cognito_domain: Option<String>,
    /// Scopes every app client gets.
    #[serde(deserialize_with = "crate::config::string_list")]
    pub cognito_scopes: Vec<String>,
    /// Extra scopes per API Gateway REST API id (TOML only).
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
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            cognito_user_pool_id: None,
            cognito_domain: None,
            cognito_scopes: Vec::new(),
            api_scopes: BTreeMap::new(),
            revoke: RevokeMode::Delete,
            client_api_key: false,
            index_refresh_secs: 30,
            rate_limit: 5.0,
            timeout_secs: 10,
            max_attempts: 4,
        }
    }
}
