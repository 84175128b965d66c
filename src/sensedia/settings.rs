//! What the Sensedia door is configured with (`[sensedia]`,
//! `KEYHOOK_SENSEDIA_*`): each setting described once, checked and
//! summarised here.

use std::collections::HashSet;
use std::str::FromStr;

use serde::Deserialize;

use crate::credentials::CredentialKind;
use crate::secret::Redacted;
use crate::setting::{self, Invalid, Read, Setting};

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
#[serde(deny_unknown_fields)]
pub struct SensediaSettings {
    #[serde(default, deserialize_with = "setting::list")]
    pub users: Vec<BasicUser>,
    pub credential_type: CredentialKind,
}

impl SensediaSettings {
    pub const SETTINGS: &[Setting] = &[
        Setting {
            key: "sensedia.users",
            var: "KEYHOOK_SENSEDIA_USERS",
            read: Read::List,
            default: None,
            secret: true,
            doc:
                "Basic-auth pairs `user:password`, comma-separated. Unset: `/v1` routes answer 503",
        },
        Setting {
            key: "sensedia.credential_type",
            var: "KEYHOOK_SENSEDIA_CREDENTIAL_TYPE",
            read: Read::Text,
            default: Some("api_key"),
            secret: false,
            doc: "`api_key` or `client_credentials`",
        },
    ];

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut seen = HashSet::new();
        for user in &self.users {
            if !seen.insert(&user.user) {
                return Err(Invalid(format!(
                    "sensedia.users (KEYHOOK_SENSEDIA_USERS) names `{}` twice",
                    user.user
                )));
            }
        }
        Ok(())
    }

    /// What `keyhook check` says of the Sensedia door, no password.
    pub fn summary(&self) -> String {
        if self.users.is_empty() {
            return "/v1 routes answer 503: no KEYHOOK_SENSEDIA_USERS".to_string();
        }
        let users: Vec<&str> = self.users.iter().map(|u| u.user.as_str()).collect();
        format!(
            "/v1 routes for user(s) {}, issuing {}",
            users.join(", "),
            self.credential_type
        )
    }
}

impl Default for SensediaSettings {
    fn default() -> Self {
        setting::section_default("sensedia", Self::SETTINGS)
    }
}
