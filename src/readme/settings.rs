//! What the ReadMe door is configured with (`[readme]`, `KEYHOOK_README_*`).

use serde::Deserialize;

use crate::secret::Redacted;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReadmeSettings {
    /// Webhook secrets; any one may verify, so a new one can be added before
    /// the old one is removed.
    #[serde(deserialize_with = "crate::config::secret_list")]
    pub secret: Vec<Redacted<String>>,
    pub provision: bool,
    pub tolerance_secs: u64,
    /// Usage plan attached to keys provisioned for first-time readers.
    pub usage_plan_id: Option<String>,
    /// Extra top-level fields merged into every login answer: server
    /// variables, `parameters`, static flags such as `isReadOnly`.
    pub response: serde_json::Map<String, serde_json::Value>,
}

impl Default for ReadmeSettings {
    fn default() -> Self {
        ReadmeSettings {
            secret: Vec::new(),
            provision: false,
            tolerance_secs: 1800,
            usage_plan_id: None,
            response: serde_json::Map::new(),
        }
    }
}
