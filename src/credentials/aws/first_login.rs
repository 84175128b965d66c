//! A reader's first key in the fewest AWS calls.
//!
//! Without the claim table, a login that provisions a key does not look up
//! a reader the index does not know (`AwsProvider::find_to_provision`):
//! the create re-reads AWS anyway. With a usage plan a key takes two writes
//! (`CreateApiKey`, then `CreateUsagePlanKey`: no API Gateway call makes a
//! key on a plan), and replicas racing on one reader need one more call to
//! decide whose key is the reader's (no API Gateway write fails because the
//! reader already has a key: names are not unique). So a first login costs
//! 3 calls, the fewest (2 without a plan), and with the table 4, the
//! login's lookup kept (a portal key of another app made on another
//! replica is found by nothing else):
//! - without the claim table, the two writes and the re-read of the
//!   owner's keys (`create.rs`), which keeps the app's first made key (one
//!   made elsewhere since the last refresh, a racing replica's) and deletes
//!   ours if it is not that one;
//! - with the table, the lookup, the two writes and the app's claim, which also counts
//!   the key against the ceiling (`TransactWriteItems`, `ceiling.rs`). Won:
//!   answered; past the ceiling: ours is deleted, the login refused (503,
//!   as the full way). Held by another credential (made elsewhere since
//!   the last refresh, a racing replica's, a refresh settling the app):
//!   ours is deleted and the create goes the full way, which answers the
//!   holder.
//!
//! What a retried call could have left is not looked for on the table's
//! short way, so it is not risked: `CreateApiKey` is tried once (a failure
//! that may have made a key goes the full way, whose sweep deletes it), an
//! app whose create failed here goes the full way at its next creates
//! ([`FailedCreates`]), and a refresh deletes the rest (a key made to be
//! claimed whose app another holds, once old).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::claims::{claim_key, Claimed, Claims};
use super::create::new_key;
use super::sync::Change;
use super::{AppKeys, Inner};
use crate::credentials::{
    Created, Credential, CredentialError, CredentialKind, CredentialSpec, FailureKind, Origin,
    Result,
};

/// Apps (claim keys) whose last create on this replica failed, and when:
/// AWS may hold what that create left, which only the full way deletes at
/// once. Forgotten at the app's next successful create, or once a refresh
/// has had time to settle it.
#[derive(Default)]
pub(super) struct FailedCreates(Mutex<HashMap<String, Instant>>);

impl FailedCreates {
    fn record(&self, key: &str, forget_after: Duration) {
        let mut failed = self.0.lock().expect("failed creates lock");
        failed.retain(|_, at| at.elapsed() < forget_after);
        failed.insert(key.to_string(), Instant::now());
    }

    fn forget(&self, key: &str) {
        self.0.lock().expect("failed creates lock").remove(key);
    }

    fn holds(&self, key: &str, within: Duration) -> bool {
        let failed = self.0.lock().expect("failed creates lock");
        failed.get(key).is_some_and(|at| at.elapsed() < within)
    }
}

impl Inner {
    /// Creates an app's API key: a first login's the short way, any other
    /// the full way (`create.rs`).
    pub(super) async fn create_api_key(
        &self,
        spec: &CredentialSpec,
    ) -> Result<(Credential, Created)> {
        let key = claim_key(CredentialKind::ApiKey, AppKeys::of(&spec.app).current());
        let first_login = self.is_first_login(spec, &key);
        let made = match (&self.claims, first_login) {
            (Some(table), true) => Box::pin(self.first_key_claimed(table, spec)).await,
            _ => Box::pin(self.create_api_key_listed(spec, first_login)).await,
        };
        match &made {
            Ok(_) => self.failed_creates.forget(&key),
            Err(_) => self
                .failed_creates
                .record(&key, self.failed_create_window()),
        }
        made
    }

    /// Whether `spec` is a first login's key: provisioned for a reader the
    /// index holds nothing for, of an app no create of which failed here
    /// lately.
    fn is_first_login(&self, spec: &CredentialSpec, key: &str) -> bool {
        spec.origin == Origin::Readme
            && self.owners.owned_by(&spec.owner).is_empty()
            && !self.failed_creates.holds(key, self.failed_create_window())
    }

    /// How long a failed create sends its app the full way: until a
    /// refresh after the settling window has deleted what it left.
    fn failed_create_window(&self) -> Duration {
        let refresh = Duration::from_secs(self.settings.index_refresh_secs);
        self.settings.settle_after() + refresh * 2
    }

    /// The table's short way: make the key, claim the app for it.
    async fn first_key_claimed(
        &self,
        table: &Claims,
        spec: &CredentialSpec,
    ) -> Result<(Credential, Created)> {
        let mine = match self.keys.create_once(&self.aws, spec).await {
            Ok(record) => new_key(&record, spec)?,
            // It may have been made, its answer lost: the full way lists
            // the app's keys, and its sweep deletes that one.
            Err(err) if may_have_made(&err) => {
                return Box::pin(self.create_api_key_listed(spec, false)).await;
            }
            Err(err) => return Err(err),
        };
        let key = claim_key(CredentialKind::ApiKey, &mine.app);
        // The claim counts the key against the ceiling in the same write
        // (`ceiling.rs`): a refusal there deletes ours, as the full way's.
        match self.claim_checked(table, &key, &mine, true).await {
            Ok(Claimed::Mine) => {
                self.owners.apply(Change::Upsert(Box::new(mine.clone())));
                return Ok((mine, Created::New));
            }
            Ok(Claimed::Theirs(holder)) => {
                self.discard(&mine).await;
                // Usually a key made elsewhere since the last refresh: the
                // claim read names it, and it is answered.
                let app = AppKeys::of(&spec.app);
                if !super::claims::is_settling(&holder) {
                    let found = self.look_up(CredentialKind::ApiKey, &holder).await?;
                    if let Some(found) = found.filter(|f| app.names(&f.app, &f.owner)) {
                        return Ok((self.as_found(found, spec).await?, Created::Existing));
                    }
                }
            }
            Err((err, unclaimed)) => {
                // Unclaimed, ours would be shown to no one: it goes.
                if unclaimed {
                    self.discard(&mine).await;
                }
                return Err(err);
            }
        }
        // Gone or settling: released, and the app made a key again; or
        // whatever has changed since, settled.
        let app = AppKeys::of(&spec.app);
        let none = (Vec::new(), Vec::new());
        Box::pin(self.create_claimed(table, CredentialKind::ApiKey, spec, &app, none)).await
    }
}

/// Whether a failed `CreateApiKey` tried once may have made a key, or would
/// have been retried: a timeout, a lost or failed answer, throttling.
fn may_have_made(err: &CredentialError) -> bool {
    err.failure().is_some_and(|(operation, kind)| {
        operation == "CreateApiKey"
            && matches!(
                kind,
                FailureKind::AwsTimeout | FailureKind::AwsUnavailable | FailureKind::AwsThrottled
            )
    })
}
