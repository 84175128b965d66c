//! What the ReadMe door is configured with (`[readme]`, `KEYHOOK_README_*`):
//! each setting described once, checked and summarised here.

use serde::Deserialize;

use crate::secret::Redacted;
use crate::setting::{self, Invalid, Read, Setting};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadmeSettings {
    /// Webhook secrets; any one may verify, so a new one can be added before
    /// the old one is removed.
    #[serde(default, deserialize_with = "setting::secret_lines")]
    pub secret: Vec<Redacted<String>>,
    pub provision: bool,
    /// The lifetime of a key provisioned at a first login; `None`: none.
    pub provision_ttl_secs: Option<u64>,
    /// Keys provisioned an hour at most, across replicas as far as each
    /// knows (`budget.rs`); `None`: no hourly limit.
    pub provision_per_hour: Option<u64>,
    /// The email domains whose readers may be given a key at their first
    /// login (`corp.com`, `*.corp.com`); empty: every domain.
    #[serde(default, deserialize_with = "setting::list")]
    pub provision_domains: Vec<String>,
    /// The usage plan of a provisioned key by the reader's domain (TOML
    /// only); the most specific domain wins, else `usage_plan_id`.
    #[serde(default)]
    pub plans_by_domain: std::collections::BTreeMap<String, String>,
    pub tolerance_secs: u64,
    /// Usage plan attached to keys provisioned for first-time readers.
    pub usage_plan_id: Option<String>,
    /// Extra top-level fields merged into every login answer: server
    /// variables, `parameters`, static flags such as `isReadOnly` (TOML only).
    #[serde(default)]
    pub response: serde_json::Map<String, serde_json::Value>,
}

/// A shorter secret is guessable offline from one signed login.
pub const MIN_SECRET_CHARS: usize = 8;

/// The widest signature age accepted: a day. Beyond it a captured login
/// stays replayable for too long (and the arithmetic on it could overflow).
pub const MAX_TOLERANCE_SECS: u64 = 86_400;

/// The longest lifetime a provisioned key may be given: ten years.
pub const MAX_PROVISION_TTL_SECS: u64 = 10 * 366 * 86_400;

/// Reserved keys of the ReadMe answer that `readme.response` may not set.
const RESERVED_RESPONSE_FIELDS: [&str; 3] = ["email", "name", "keys"];

impl ReadmeSettings {
    pub const SETTINGS: &[Setting] = &[
        Setting {
            key: "readme.secret",
            var: "KEYHOOK_README_SECRET",
            read: Read::Lines,
            default: None,
            secret: true,
            doc: "ReadMe webhook secret(s), one per line, each at least 8 characters; any one verifies (rotation). Unset: `/readme/webhook` answers 503",
        },
        Setting {
            key: "readme.provision",
            var: "KEYHOOK_README_PROVISION",
            read: Read::Bool,
            default: Some("false"),
            secret: false,
            doc: "create an API key for a first-time reader",
        },
        Setting {
            key: "readme.provision_ttl_secs",
            var: "KEYHOOK_README_PROVISION_TTL_SECS",
            read: Read::Unsigned,
            default: None,
            secret: false,
            doc: "lifetime of a key provisioned at a first login, seconds (60 to 10 years); the sweeper revokes it then, and the reader's next login provisions a fresh one. Unset: no end date",
        },
        Setting {
            key: "readme.provision_per_hour",
            var: "KEYHOOK_README_PROVISION_PER_HOUR",
            read: Read::Unsigned,
            default: None,
            secret: false,
            doc: "at most this many keys provisioned at first logins in any hour, counted in the owner index (another replica's keys once a refresh brings them); past it a first login answers 503 and creates nothing. Unset: no hourly limit",
        },
        Setting {
            key: "readme.provision_domains",
            var: "KEYHOOK_README_PROVISION_DOMAINS",
            read: Read::List,
            default: None,
            secret: false,
            doc: "email domains whose readers may be given a key at their first login: `corp.com` (exactly) or `*.corp.com` (its subdomains), comma-separated; a reader outside them gets the no-credential answer and nothing is created. Unset: every domain",
        },
        Setting {
            key: "readme.tolerance_secs",
            var: "KEYHOOK_README_TOLERANCE_SECS",
            read: Read::Unsigned,
            default: Some("1800"),
            secret: false,
            doc: "signature age accepted, both directions (1 to 86400 s)",
        },
        Setting {
            key: "readme.usage_plan_id",
            var: "KEYHOOK_USAGE_PLAN_ID",
            read: Read::Text,
            default: None,
            secret: false,
            doc: "usage plan attached to keys provisioned for readers",
        },
    ];

    pub fn validate(&self) -> Result<(), Invalid> {
        if !(1..=MAX_TOLERANCE_SECS).contains(&self.tolerance_secs) {
            return Err(Invalid(format!(
                "readme.tolerance_secs (KEYHOOK_README_TOLERANCE_SECS) must be between 1 and {MAX_TOLERANCE_SECS} seconds, got {}",
                self.tolerance_secs
            )));
        }
        if let Some(n) =
            (self.secret.iter()).position(|s| s.expose().chars().count() < MIN_SECRET_CHARS)
        {
            return Err(Invalid(format!(
                "readme.secret (KEYHOOK_README_SECRET): secret {} of {} is shorter than {MIN_SECRET_CHARS} characters",
                n + 1,
                self.secret.len()
            )));
        }
        if let Some(ttl) = self.provision_ttl_secs {
            if !(60..=MAX_PROVISION_TTL_SECS).contains(&ttl) {
                return Err(Invalid(format!(
                    "readme.provision_ttl_secs (KEYHOOK_README_PROVISION_TTL_SECS) must be between 60 and {MAX_PROVISION_TTL_SECS} seconds, got {ttl}"
                )));
            }
        }
        self.policy().map_err(|e| {
            Invalid(format!(
                "readme.provision_domains (KEYHOOK_README_PROVISION_DOMAINS) or [readme.plans_by_domain]: {e}"
            ))
        })?;
        if self
            .plans_by_domain
            .values()
            .any(|plan| plan.trim().is_empty())
        {
            return Err(Invalid(
                "[readme.plans_by_domain] names an empty usage plan".into(),
            ));
        }
        if self.provision_per_hour == Some(0) {
            return Err(Invalid("readme.provision_per_hour (KEYHOOK_README_PROVISION_PER_HOUR) must be at least 1; turn provisioning off with KEYHOOK_README_PROVISION=false".into()));
        }
        if self.usage_plan_id.as_deref() == Some("") {
            return Err(Invalid(
                "readme.usage_plan_id (KEYHOOK_USAGE_PLAN_ID) is empty".into(),
            ));
        }
        for field in RESERVED_RESPONSE_FIELDS {
            if self.response.contains_key(field) {
                return Err(Invalid(format!(
                    "readme.response must not set `{field}`: keyhook fills it from the reader's credentials"
                )));
            }
        }
        Ok(())
    }

    /// Who may be given a key at a first login, and on which plan.
    pub fn policy(&self) -> Result<super::policy::ProvisionPolicy, String> {
        super::policy::ProvisionPolicy::new(
            &self.provision_domains,
            &self.plans_by_domain,
            self.usage_plan_id.clone(),
        )
    }

    /// What `keyhook check` says of the ReadMe door, no secret value.
    pub fn summary(&self) -> String {
        if self.secret.is_empty() {
            return "POST /readme/webhook answers 503: no KEYHOOK_README_SECRET".to_string();
        }
        format!(
            "POST /readme/webhook with {} secret(s), tolerance {} s, provisioning {}{}",
            self.secret.len(),
            self.tolerance_secs,
            match (self.provision, self.provision_ttl_secs) {
                (false, _) => "off".to_string(),
                (true, None) => "on".to_string(),
                (true, Some(ttl)) => format!("on (keys live {ttl} s)"),
            },
            match &self.usage_plan_id {
                Some(plan) => format!(" (usage plan {plan})"),
                None => String::new(),
            }
        ) + &match (self.provision, self.provision_domains.is_empty()) {
            (true, false) => format!(", only for {}", self.provision_domains.join(", ")),
            _ => String::new(),
        } + &match self.plans_by_domain.len() {
            0 => String::new(),
            n => format!(", {n} plan(s) by domain"),
        }
    }
}

impl Default for ReadmeSettings {
    fn default() -> Self {
        setting::section_default("readme", Self::SETTINGS)
    }
}
