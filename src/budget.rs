//! The provisioning budget: how many new credentials keyhook may make, so
//! that open sign-up cannot exhaust the region's API keys (API Gateway's hard
//! limit is 10,000 per region, shared by every API of the account).
//!
//! Two limits, checked before a create that would make a new credential
//! (never before a retry, an update or a rotation of an app that has one):
//! - `KEYHOOK_MAX_KEYS`, a ceiling on the API keys the owner index counts;
//! - `KEYHOOK_README_PROVISION_PER_HOUR`, keys provisioned at first logins
//!   in the last hour, as the owner index records their creation.
//!
//! Both are read from this replica's index: another replica's creates count
//! once a refresh has brought them here (README, "Provisioning budget",
//! states the bound this gives with several replicas).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Clock;
use crate::credentials::{CredentialProvider, CredentialSpec, Origin};

const HOUR_MS: u64 = 3_600_000;
/// A refusal's warning is logged at most this often per limit.
const WARN_EVERY_MS: u64 = 60_000;

/// A create the budget refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the API key ceiling is reached: {in_use} keys of at most {max} (KEYHOOK_MAX_KEYS); existing credentials keep working, new ones are refused")]
    KeyCeiling { in_use: usize, max: usize },
    #[error("the provisioning budget is spent: {made} keys provisioned in the last hour, at most {per_hour} (KEYHOOK_README_PROVISION_PER_HOUR); try again later")]
    HourlyBudget { made: usize, per_hour: u64 },
}

impl Refusal {
    /// The metric's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::KeyCeiling { .. } => "key_ceiling",
            Refusal::HourlyBudget { .. } => "hourly_budget",
        }
    }

    /// The setting that sets the limit, named in the answer.
    pub fn limit(&self) -> &'static str {
        match self {
            Refusal::KeyCeiling { .. } => "KEYHOOK_MAX_KEYS",
            Refusal::HourlyBudget { .. } => "KEYHOOK_README_PROVISION_PER_HOUR",
        }
    }
}

pub struct Budget {
    max_keys: usize,
    per_hour: Option<u64>,
    /// The clock credentials are dated with.
    clock: Clock,
    /// When each limit's refusal was last logged.
    warned: [AtomicU64; 2],
}

impl Budget {
    pub fn new(max_keys: usize, per_hour: Option<u64>, clock: Clock) -> Self {
        Budget {
            max_keys,
            per_hour,
            clock,
            warned: Default::default(),
        }
    }

    /// Whether `spec` may be created now: always when its app already has
    /// a credential (nothing new is made); else within both limits. A
    /// refusal is counted and logged here.
    pub fn admit(
        &self,
        provider: &dyn CredentialProvider,
        spec: &CredentialSpec,
    ) -> Result<(), Refusal> {
        if provider.holds_app(&spec.app, spec.kind) {
            return Ok(());
        }
        let now_ms = u64::try_from((self.clock)()).unwrap_or_default();
        let census = provider.census(now_ms.saturating_sub(HOUR_MS));
        let refusal = if census.api_keys >= self.max_keys {
            Some(Refusal::KeyCeiling {
                in_use: census.api_keys,
                max: self.max_keys,
            })
        } else {
            match self.per_hour {
                Some(per_hour)
                    if spec.origin == Origin::Readme
                        && census.provisioned_since as u64 >= per_hour =>
                {
                    Some(Refusal::HourlyBudget {
                        made: census.provisioned_since,
                        per_hour,
                    })
                }
                _ => None,
            }
        };
        let Some(refusal) = refusal else {
            return Ok(());
        };
        crate::metrics::provision_refused(refusal.reason());
        tracing::info!(
            target: crate::credentials::AUDIT_TARGET,
            action = "create_refused",
            requested_by = spec.origin.as_str(),
            owner = %spec.owner,
            app = %spec.app,
            reason = refusal.reason(),
            "credential create_refused"
        );
        let slot = &self.warned[usize::from(matches!(refusal, Refusal::HourlyBudget { .. }))];
        let last = slot.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= WARN_EVERY_MS
            && slot
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(reason = refusal.reason(), "{refusal}");
        }
        Err(refusal)
    }
}
