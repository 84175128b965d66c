//! What the Sensedia door is configured with (`[sensedia]`,
//! `KEYHOOK_SENSEDIA_*`): each setting described once, checked and
//! summarised here.

use std::collections::HashSet;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

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
    /// `user:password`; the user cannot contain `:` (RFC 7617), the password
    /// can, and `,` too. Errors quote nothing of the pair.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (user, password) = s
            .split_once(':')
            .ok_or_else(|| "is not `user:password`".to_string())?;
        let user = user.trim();
        if user.is_empty() {
            return Err("has an empty user name".into());
        }
        if password.is_empty() {
            return Err("has an empty password".into());
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
    /// One user name may appear with several passwords (rotation).
    #[serde(default, deserialize_with = "pairs")]
    pub users: Vec<BasicUser>,
    pub credential_type: CredentialKind,
}

impl SensediaSettings {
    pub const SETTINGS: &[Setting] = &[
        Setting {
            key: "sensedia.users",
            var: "KEYHOOK_SENSEDIA_USERS",
            read: Read::Lines,
            default: None,
            secret: true,
            doc: "Basic-auth pairs `user:password`, one per line (htpasswd-like: the password is all after the first `:`, commas included); a user may have two passwords while one is rotated. Unset: `/v1` routes answer 503",
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
        Ok(())
    }

    /// What `keyhook check` says of the Sensedia door: counts only. Not
    /// even the user names: each is half of what a caller presents, and
    /// `check` output ends up in CI logs; the counts are enough to see a
    /// rotation under way (2 pairs, 1 user).
    pub fn summary(&self) -> String {
        if self.users.is_empty() {
            return "/v1 routes answer 503: no KEYHOOK_SENSEDIA_USERS".to_string();
        }
        let users: HashSet<&str> = self.users.iter().map(|u| u.user.as_str()).collect();
        format!(
            "/v1 routes for {} Basic-auth pair(s) of {} user(s), issuing {}",
            self.users.len(),
            users.len(),
            self.credential_type
        )
    }
}

/// serde `deserialize_with` for the pairs: one per line, so a password
/// keeps its commas; a single line that earlier versions would have split
/// into several pairs is refused. An error names the pair by its rank.
fn pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<BasicUser>, D::Error> {
    let example = "    portal:first-password\n    portal:next-password";
    let lines = setting::one_per_line(d, |item| item.parse::<BasicUser>().is_ok(), example)?;
    lines
        .iter()
        .enumerate()
        .map(|(n, line)| {
            line.parse()
                .map_err(|e| serde::de::Error::custom(format!("pair {} {e}", n + 1)))
        })
        .collect()
}

impl Default for SensediaSettings {
    fn default() -> Self {
        setting::section_default("sensedia", Self::SETTINGS)
    }
}
