//! What the Sensedia door is configured with (`[sensedia]`,
//! `KEYHOOK_SENSEDIA_*`).

use std::str::FromStr;

use serde::Deserialize;

use crate::credentials::CredentialKind;
use crate::secret::Redacted;

/// One Basic-auth pair the Sensedia portal may present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicUser {
    pub user: String,
    pub password: Redacted<String>,
}

impl FromStr for BasicUser {
    type Err = String;
    /// `user:password`; the user cannot contain `:` (RFC 7617), the password can.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (user, password) = s
            .split_once(':')
            .ok_or_else(|| "each pair must be `user:password`".to_string())?;
        let user = user.trim();
        if user.is_empty() {
            return Err("a user name is empty".into());
        }
        if password.is_empty() {
            return Err(format!("the password of `{user}` is empty"));
        }
        Ok(BasicUser {
            user: user.to_string(),
            password: Redacted::new(password.to_string()),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SensediaSettings {
    #[serde(deserialize_with = "crate::config::basic_user_list")]
    pub users: Vec<BasicUser>,
    #[serde(deserialize_with = "crate::config::credential_kind")]
    pub credential_type: CredentialKind,
}

impl Default for SensediaSettings {
    fn default() -> Self {
        SensediaSettings {
            users: Vec::new(),
            credential_type: CredentialKind::ApiKey,
        }
    }
}
