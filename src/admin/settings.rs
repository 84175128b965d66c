//! What the admin listener is configured with (`[admin]`,
//! `KEYHOOK_ADMIN_*`, `KEYHOOK_ROTATION_GRACE_SECS`): each setting described
//! once, checked and summarised here.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer};

use super::auth::fingerprint;
use crate::secret::Redacted;
use crate::setting::{self, Invalid, Read, Setting};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// The admin listener; `None`: the admin routes are not served at all.
    pub listen: Option<SocketAddr>,
    /// Bearer tokens; any one is accepted, so a new one can be added before
    /// the old one is removed.
    #[serde(default, deserialize_with = "tokens")]
    pub tokens: Vec<Redacted<String>>,
    /// A rotation's default grace: how long the predecessor keeps working.
    pub rotation_grace_secs: u64,
}

/// A shorter token could be guessed online.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The longest grace a rotation may give: 90 days. An old credential kept
/// working longer than that is no rotation.
pub const MAX_ROTATION_GRACE_SECS: u64 = 90 * 86_400;

impl AdminSettings {
    pub const SETTINGS: &[Setting] = &[
        Setting {
            key: "admin.listen",
            var: "KEYHOOK_ADMIN_LISTEN",
            read: Read::Text,
            default: None,
            secret: false,
            doc: "serve the admin API (`/admin/v1`: list, rotate, expire and revoke credentials, the audit) on this address, a listener of its own, with the main listener's timeouts and TLS. Keep it inside the cluster. Unset: not served; never on `KEYHOOK_LISTEN`",
        },
        Setting {
            key: "admin.tokens",
            var: "KEYHOOK_ADMIN_TOKENS",
            read: Read::Lines,
            default: None,
            secret: true,
            doc: "bearer tokens of the admin API, one per line, each at least 16 characters; any one is accepted (rotation). Audit events name a token by its fingerprint (the first 12 hex digits of its SHA-256), never its value. Required with `KEYHOOK_ADMIN_LISTEN`",
        },
        Setting {
            key: "admin.rotation_grace_secs",
            var: "KEYHOOK_ROTATION_GRACE_SECS",
            read: Read::Unsigned,
            default: Some("604800"),
            secret: false,
            doc: "how long a rotated credential keeps working beside its successor when the rotation does not say (0 to 7776000 s, 90 days; 0: it stops at once)",
        },
    ];

    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(n) =
            (self.tokens.iter()).position(|t| t.expose().chars().count() < MIN_TOKEN_CHARS)
        {
            return Err(Invalid(format!(
                "admin.tokens (KEYHOOK_ADMIN_TOKENS): token {} of {} is shorter than {MIN_TOKEN_CHARS} characters",
                n + 1,
                self.tokens.len()
            )));
        }
        if self.listen.is_some() && self.tokens.is_empty() {
            return Err(Invalid(
                "admin.listen (KEYHOOK_ADMIN_LISTEN) is set but admin.tokens (KEYHOOK_ADMIN_TOKENS) is empty: \
                 the admin listener would let no one in; set a token, or unset the listener"
                    .into(),
            ));
        }
        if self.rotation_grace_secs > MAX_ROTATION_GRACE_SECS {
            return Err(Invalid(format!(
                "admin.rotation_grace_secs (KEYHOOK_ROTATION_GRACE_SECS) must be between 0 and {MAX_ROTATION_GRACE_SECS} seconds, got {}",
                self.rotation_grace_secs
            )));
        }
        Ok(())
    }

    /// What `keyhook check` says of the admin listener: the tokens by
    /// fingerprint only (what audit events name them by).
    pub fn summary(&self) -> String {
        let fingerprints: Vec<String> = self
            .tokens
            .iter()
            .map(|t| fingerprint(t.expose()))
            .collect();
        match self.listen {
            Some(addr) => format!(
                "/admin/v1 on {addr} for {} token(s) ({}), rotation grace {} s",
                self.tokens.len(),
                fingerprints.join(", "),
                self.rotation_grace_secs
            ),
            None if self.tokens.is_empty() => {
                "off (set KEYHOOK_ADMIN_LISTEN and KEYHOOK_ADMIN_TOKENS to serve /admin/v1)".into()
            }
            None => format!(
                "off: KEYHOOK_ADMIN_TOKENS holds {} token(s) ({}) but KEYHOOK_ADMIN_LISTEN is unset, so nothing serves them",
                self.tokens.len(),
                fingerprints.join(", ")
            ),
        }
    }
}

/// serde `deserialize_with` for the tokens: one per line. No earlier
/// version read them, so no single line with a comma is refused as an old
/// list (a token may hold a comma).
fn tokens<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Redacted<String>>, D::Error> {
    Ok(setting::one_per_line(d, |_| false, "")?
        .into_iter()
        .map(Redacted::new)
        .collect())
}

impl Default for AdminSettings {
    fn default() -> Self {
        setting::section_default("admin", Self::SETTINGS)
    }
}
