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
//! Both are read from this replica's index, plus the creates this replica
//! has admitted and not finished (so concurrent first logins cannot all
//! pass at the ceiling's edge): another replica's creates count once a
//! refresh has brought them here. On the AWS backend with the claim table
//! the ceiling is also exact across replicas: each new credential counts
//! its keys in the table as it claims its app, within the ceiling
//! (`credentials/aws/ceiling.rs`), and a refusal there comes back from the
//! create ([`Budget::recorded`]). This check stays first: it refuses before
//! a key is made only to be deleted. README, "Provisioning: who gets a key,
//! on which plan, how many", states the bounds.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::clock::Clock;
use crate::credentials::{CredentialError, CredentialProvider, CredentialSpec, Origin};

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
    /// Creates admitted and not finished: all, and first-login ones.
    pending: AtomicUsize,
    pending_provisions: AtomicUsize,
}

/// A create the budget admitted, counted as made until dropped (once the
/// create has ended, when the index counts it).
pub struct Reservation {
    budget: Arc<Budget>,
    provisioning: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.pending.fetch_sub(1, Ordering::AcqRel);
        if self.provisioning {
            self.budget
                .pending_provisions
                .fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Budget {
    pub fn new(max_keys: usize, per_hour: Option<u64>, clock: Clock) -> Self {
        Budget {
            max_keys,
            per_hour,
            clock,
            warned: Default::default(),
            pending: AtomicUsize::new(0),
            pending_provisions: AtomicUsize::new(0),
        }
    }

    /// Whether `spec` may be created now: always when its app already has
    /// a credential (nothing new is made: no reservation); else within both
    /// limits, counting it as made until the reservation is dropped. A
    /// refusal is counted and logged here.
    pub fn admit(
        self: &Arc<Self>,
        provider: &dyn CredentialProvider,
        spec: &CredentialSpec,
    ) -> Result<Option<Reservation>, Refusal> {
        if provider.holds_app(&spec.app, spec.kind) {
            return Ok(None);
        }
        let provisioning = spec.origin == Origin::Readme;
        // Reserved first, checked after: two racing admits both count.
        let reservation = Reservation {
            budget: Arc::clone(self),
            provisioning,
        };
        let pending = self.pending.fetch_add(1, Ordering::AcqRel) + 1;
        let pending_provisions = match provisioning {
            true => self.pending_provisions.fetch_add(1, Ordering::AcqRel) + 1,
            false => 0,
        };
        let now_ms = u64::try_from((self.clock)()).unwrap_or_default();
        let census = provider.census(now_ms.saturating_sub(HOUR_MS));
        let in_use = census.api_keys + pending - 1;
        let made = census.provisioned_since + pending_provisions.saturating_sub(1);
        let refusal = if in_use >= self.max_keys {
            Some(Refusal::KeyCeiling {
                in_use,
                max: self.max_keys,
            })
        } else {
            match self.per_hour {
                Some(per_hour) if provisioning && made as u64 >= per_hour => {
                    Some(Refusal::HourlyBudget { made, per_hour })
                }
                _ => None,
            }
        };
        let Some(refusal) = refusal else {
            return Ok(Some(reservation));
        };
        self.record(spec, &refusal, now_ms);
        Err(refusal)
    }

    /// Records a refusal the backend made at the create itself (the key
    /// ceiling counted in the claim table across replicas), as [`admit`]
    /// records its own; `outcome` is handed back unchanged.
    ///
    /// [`admit`]: Budget::admit
    pub fn recorded<T>(
        &self,
        spec: &CredentialSpec,
        outcome: Result<T, CredentialError>,
    ) -> Result<T, CredentialError> {
        if let Err(CredentialError::LimitReached(refusal)) = &outcome {
            let now_ms = u64::try_from((self.clock)()).unwrap_or_default();
            self.record(spec, refusal, now_ms);
        }
        outcome
    }

    /// Counts a refusal, audits it naming the reader or app, and warns at
    /// most every [`WARN_EVERY_MS`] per limit.
    fn record(&self, spec: &CredentialSpec, refusal: &Refusal, now_ms: u64) {
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
    }
}
