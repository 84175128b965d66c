//! How far the owner index can be trusted, and what is asked of AWS where
//! it cannot be.
//!
//! The index is *confirmed* by a refresh that succeeded: it then holds
//! nothing AWS had dropped before that refresh's listing began. While the
//! last confirmation is younger than [`STALE_INTERVALS`] refresh intervals,
//! logins are answered from memory, so a credential revoked on another
//! replica shows here for at most that long. Past it (refreshes throttled
//! or failing), a login is answered only from what AWS confirms for that
//! reader at once (one `GetApiKeys`, one `DescribeUserPoolClient` per app
//! client the index holds for them), else `503 index_stale`; `/readyz` says
//! `index_stale` too.
//!
//! A create never answers from the index alone: the credential it finds
//! there is confirmed with one `GetApiKey` or `DescribeUserPoolClient`, so
//! an app revoked on another replica gets a new credential rather than the
//! deleted one.

use std::sync::Arc;
use std::time::Duration;

use super::create::attach_companion;
use super::sync::Change;
use super::{Inner, LOGIN_MAX_WAIT};
use crate::credentials::{
    Credential, CredentialError, CredentialKind, CredentialRef, Email, FailureKind, Result,
};

/// Refresh intervals after the last confirmation past which the index no
/// longer answers logins: one missed refresh is routine (a retry follows
/// within 5 s), three mean AWS is throttling or unreachable.
pub(super) const STALE_INTERVALS: u32 = 3;

impl Inner {
    /// The age past which the index no longer answers logins.
    pub(super) fn stale_after(&self) -> Duration {
        Duration::from_secs(self.settings.index_refresh_secs) * STALE_INTERVALS
    }

    /// Why the index may not answer logins, once loaded: no refresh has
    /// succeeded within [`Inner::stale_after`]. `None` while it may.
    pub(super) fn staleness(&self) -> Option<CredentialError> {
        let age = self.owners.confirmed_age()?;
        let limit = self.stale_after();
        (age >= limit).then(|| {
            let last = self
                .owners
                .load_failure()
                .map_or_else(|| "none recorded".to_string(), |e| e.to_string());
            stale(format!(
                "no refresh of the owner index has succeeded for {}s (limit {}s); \
                 the last failure: {last}",
                age.as_secs(),
                limit.as_secs()
            ))
        })
    }

    /// A login while the index is stale: `owner`'s credentials as AWS
    /// confirms them now, or `index_stale` when it cannot (no call to spare
    /// within [`LOGIN_MAX_WAIT`], or the call failed).
    pub(super) async fn login_unconfirmed(
        &self,
        owner: &Email,
        why: CredentialError,
    ) -> Result<Vec<Arc<Credential>>> {
        let unconfirmed = |err: Option<CredentialError>| match err {
            Some(err) => stale(format!("{why}; confirming a login failed: {err}")),
            None => stale(format!("{why}; no AWS call to spare for a login")),
        };
        if !self.aws.limiter.acquire_within(LOGIN_MAX_WAIT).await {
            return Err(unconfirmed(None));
        }
        let records = (self.keys.list_owner_unmetered(&self.aws, owner).await)
            .map_err(|e| unconfirmed(Some(e)))?;
        (self.replace_owner_keys(owner, &records).await).map_err(|e| unconfirmed(Some(e)))?;
        let mut found = Vec::new();
        for indexed in self.owners.owned_by(owner) {
            if indexed.kind() == CredentialKind::ApiKey {
                found.push(indexed);
                continue;
            }
            if !self.aws.limiter.acquire_within(LOGIN_MAX_WAIT).await {
                return Err(unconfirmed(None));
            }
            let described = self.clients()?.describe_prepaid(&self.aws, &indexed.id);
            match described.await.map_err(|e| unconfirmed(Some(e)))? {
                Some(fresh) => {
                    let mut confirmed = with_current_names(Arc::unwrap_or_clone(indexed), fresh);
                    // The listing just made says which companion key is left.
                    confirmed.custom.remove("apiKeyId");
                    confirmed.custom.remove("apiKey");
                    attach_companion(&mut confirmed, &records);
                    self.owners
                        .apply(Change::Upsert(Box::new(confirmed.clone())));
                    if confirmed.owner == *owner {
                        found.push(Arc::new(confirmed));
                    }
                }
                None => self.owners.apply(Change::Remove(indexed.id.clone())),
            }
        }
        Ok(found)
    }

    /// The credential the index holds for `target`, once AWS confirms it is
    /// still there (one `GetApiKey` or `DescribeUserPoolClient`); one AWS no
    /// longer has (revoked elsewhere) leaves the index and is `None`.
    pub(super) async fn indexed_and_confirmed(
        &self,
        target: &CredentialRef,
    ) -> Result<Option<Credential>> {
        let Some(indexed) = self.indexed(target) else {
            return Ok(None);
        };
        let fresh = match indexed.kind() {
            CredentialKind::ApiKey => (self.keys.get(&self.aws, &indexed.id).await?)
                .and_then(|record| record.credential()),
            CredentialKind::ClientCredentials => {
                self.clients()?.describe(&self.aws, &indexed.id).await?
            }
        };
        match fresh {
            Some(fresh) => {
                let confirmed = with_current_names(indexed, fresh);
                self.owners.apply(Change::Upsert(Box::new(confirmed)));
                // Renamed elsewhere, it may no longer be this app's.
                Ok(self.indexed(target))
            }
            None => {
                self.owners.apply(Change::Remove(indexed.id));
                Ok(None)
            }
        }
    }
}

/// The indexed credential with its owner, label and secret as AWS has them
/// now (another replica may have handed it over); the rest (plans, APIs, a
/// client's companion key) as the index knows it, since one describe does
/// not list them.
fn with_current_names(indexed: Credential, fresh: Credential) -> Credential {
    let mut custom = indexed.custom.clone();
    custom.extend(fresh.custom);
    Credential {
        owner: fresh.owner,
        label: fresh.label,
        secret: fresh.secret,
        custom,
        ..indexed
    }
}

fn stale(detail: String) -> CredentialError {
    CredentialError::Failed {
        operation: "refresh owner index",
        kind: FailureKind::IndexStale,
        detail,
    }
}
