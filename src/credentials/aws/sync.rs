//! The owner index the AWS backend serves logins from, and how it stays in
//! step with AWS.
//!
//! A refresh lists every credential in AWS, which takes a while; changes
//! this replica makes meanwhile go to a journal and are replayed onto the
//! listing ([`merge`]), so a revoke racing a refresh stays revoked. What the
//! listing holds is settled app by app before it is shown (`claims.rs`:
//! only claimed credentials are shown; what no app keeps is deleted).
//! [`OwnerIndex`] holds the state, and the `impl Inner` at the end is the
//! thin shell that asks AWS.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::apigateway::KeyRecord;
use super::claims::{self, Claimed, Claims};
use super::create::{self, attach_companion};
use super::{apigateway, cognito, lineage, Inner};
use crate::credentials::index::Index;
use crate::credentials::{
    Credential, CredentialError, CredentialKind, CredentialRef, Email, Result, AUDIT_TARGET,
};

/// How many apps one refresh settles at most (see `Inner::settle`).
const SETTLE_PER_REFRESH: usize = 50;

/// One change this replica made to the index.
pub(super) enum Change {
    Upsert(Box<Credential>),
    Remove(String),
}

/// The index replaced by `listed`, with the changes made while it was
/// being listed replayed on top, in the order they were made.
fn merge(listed: Vec<Credential>, journal: Vec<Change>) -> Index {
    let mut index: Index = listed.into_iter().collect();
    for change in journal {
        match change {
            Change::Upsert(c) => index.insert(*c),
            Change::Remove(id) => {
                index.remove(&id);
            }
        }
    }
    index
}

/// Which of several credentials made for one app comes first: the first
/// made (AWS dates have whole seconds), then the smallest id. Every replica
/// computes the same answer from the same listing.
pub(super) fn first_made(a: &Credential, b: &Credential) -> std::cmp::Ordering {
    a.created_at_ms
        .cmp(&b.created_at_ms)
        .then_with(|| a.id.cmp(&b.id))
}

/// The index with what keeps it current: the journal a refresh replays,
/// and the readers AWS recently had nothing for.
pub(super) struct OwnerIndex {
    index: RwLock<Index>,
    /// Open (`Some`) while a refresh is listing AWS.
    journal: Mutex<Option<Vec<Change>>>,
    /// Readers AWS had nothing for, and when we asked.
    misses: Mutex<HashMap<Email, Instant>>,
    /// Set once the first full load has finished.
    loaded: AtomicBool,
    /// Why the last load failed, until one succeeds: the reason `/readyz`
    /// gives while unready.
    load_failure: Mutex<Option<CredentialError>>,
    /// When the listing of the last refresh that succeeded began: the index
    /// holds nothing AWS had dropped before then (see `freshness.rs`).
    confirmed_at: Mutex<Option<Instant>>,
}

impl OwnerIndex {
    pub(super) fn new() -> Self {
        OwnerIndex {
            index: RwLock::new(Index::default()),
            journal: Mutex::new(None),
            misses: Mutex::new(HashMap::new()),
            loaded: AtomicBool::new(false),
            load_failure: Mutex::new(None),
            confirmed_at: Mutex::new(None),
        }
    }

    /// How long ago the listing of the last refresh that succeeded began;
    /// `None` before the first.
    pub(super) fn confirmed_age(&self) -> Option<Duration> {
        let at = *self.confirmed_at.lock().expect("confirmed lock");
        at.map(|at| at.elapsed())
    }

    pub(super) fn census(&self, since_ms: u64) -> crate::credentials::Census {
        self.index.read().expect("index lock").census(since_ms)
    }

    pub(super) fn owned_by(&self, owner: &Email) -> Vec<Arc<Credential>> {
        self.index.read().expect("index lock").owned_by(owner)
    }

    pub(super) fn resolve(&self, target: &CredentialRef) -> Option<Credential> {
        self.index
            .read()
            .expect("index lock")
            .resolve(target)
            .cloned()
    }

    /// Every credential of the app `target` names' app, after a rotation
    /// its successor and its predecessor in grace.
    pub(super) fn of_app(&self, credential: &Credential) -> Vec<Credential> {
        self.index
            .read()
            .expect("index lock")
            .of_app(&credential.app, credential.kind())
    }

    /// Every credential held, oldest first.
    pub(super) fn all(&self) -> Vec<Credential> {
        let mut all: Vec<Credential> = self
            .index
            .read()
            .expect("index lock")
            .credentials()
            .cloned()
            .collect();
        all.sort_by(first_made);
        all
    }

    /// The client credentials known now, by id.
    fn clients(&self) -> HashMap<String, Credential> {
        self.index
            .read()
            .expect("index lock")
            .credentials()
            .filter(|c| c.kind() == CredentialKind::ClientCredentials)
            .map(|c| (c.id.clone(), c.clone()))
            .collect()
    }

    pub(super) fn apply(&self, change: Change) {
        let mut index = self.index.write().expect("index lock");
        match &change {
            Change::Upsert(c) => {
                self.misses.lock().expect("misses lock").remove(&c.owner);
                index.insert(c.as_ref().clone());
            }
            Change::Remove(id) => {
                index.remove(id);
            }
        }
        if let Some(journal) = self.journal.lock().expect("journal lock").as_mut() {
            journal.push(change);
        }
    }

    /// Replaces what the index knows of `owner`'s API keys with `keys`.
    pub(super) fn replace_owner_keys(&self, owner: &Email, keys: Vec<Credential>) {
        let stale: Vec<String> = self
            .owned_by(owner)
            .into_iter()
            .filter(|c| c.kind() == CredentialKind::ApiKey)
            .map(|c| c.id.clone())
            .collect();
        for id in stale {
            self.apply(Change::Remove(id));
        }
        for credential in keys {
            self.apply(Change::Upsert(Box::new(credential)));
        }
    }

    /// Whether AWS answered "nothing" for `owner` less than `within` ago.
    pub(super) fn missed(&self, owner: &Email, within: Duration) -> bool {
        self.misses
            .lock()
            .expect("misses lock")
            .get(owner)
            .is_some_and(|at| at.elapsed() < within)
    }

    pub(super) fn record_miss(&self, owner: &Email) {
        self.misses
            .lock()
            .expect("misses lock")
            .insert(owner.clone(), Instant::now());
    }

    pub(super) fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub(super) fn load_failure(&self) -> Option<CredentialError> {
        self.load_failure.lock().expect("load failure lock").clone()
    }

    /// Replaces the index with what `listing` finds, keeping the changes
    /// made while it ran; on error, keeps the index as it is. Returns the
    /// number of credentials indexed.
    async fn refresh(
        &self,
        listing: impl Future<Output = Result<Vec<Credential>>>,
    ) -> Result<usize> {
        *self.journal.lock().expect("journal lock") = Some(Vec::new());
        let started = Instant::now();
        let listed = listing.await;
        // Index, then journal: the order `apply` takes them in, so no change
        // slips between reading the journal and swapping the index.
        let mut index = self.index.write().expect("index lock");
        let journal = self
            .journal
            .lock()
            .expect("journal lock")
            .take()
            .unwrap_or_default();
        let listed = listed.inspect_err(|err| {
            *self.load_failure.lock().expect("load failure lock") = Some(err.clone());
        })?;
        let fresh = merge(listed, journal);
        let count = fresh.len();
        *index = fresh;
        drop(index);
        self.misses.lock().expect("misses lock").clear();
        *self.confirmed_at.lock().expect("confirmed lock") = Some(started);
        self.loaded.store(true, Ordering::Release);
        Ok(count)
    }
}

/// Loads the index, then refreshes it every interval, until the provider
/// is dropped. A failed load is retried sooner.
pub(super) async fn refresh_loop(inner: Weak<Inner>) {
    if let Some(inner) = inner.upgrade() {
        crate::metrics::owner_index_stale_after(inner.stale_after());
    }
    let mut delay = Duration::ZERO;
    loop {
        tokio::time::sleep(delay).await;
        let Some(inner) = inner.upgrade() else { return };
        let interval = Duration::from_secs(inner.settings.index_refresh_secs);
        let started_ms = (inner.clock)();
        let listing = async {
            let listed = inner.list_everything().await?;
            inner.settle(listed).await
        };
        delay = match inner.owners.refresh(listing).await {
            Ok(count) => {
                tracing::debug!(credentials = count, "owner index refreshed");
                crate::metrics::owner_index_confirmed(started_ms);
                crate::metrics::owner_index_size(count);
                interval
            }
            Err(err) => {
                tracing::warn!(error = %err, "owner index refresh failed; keeping the last one");
                interval.min(Duration::from_secs(5))
            }
        };
    }
}

impl Inner {
    /// Settles the listing app by app (`claims::settle`): claims what an
    /// app without a claim keeps, deletes what no app keeps, and returns
    /// what logins may be shown.
    async fn settle(&self, mut listing: Listing) -> Result<Vec<Credential>> {
        for id in &listing.stray_companions {
            if self.discard_key(id).await {
                tracing::warn!(target: AUDIT_TARGET, action = "duplicate_deleted", credential_id = %id, "a companion API key no client shows was deleted");
            }
        }
        // With the table unreadable, what is shown is decided by the claims
        // last read, and nothing is claimed or deleted: logins go on.
        let (claims, fresh) = match &self.claims {
            None => (None, false),
            Some(table) => match table.all(&self.aws).await {
                Ok(map) => {
                    *self.last_claims.lock().expect("claims lock") = Some(map.clone());
                    (Some(map), true)
                }
                Err(err) => match self.last_claims.lock().expect("claims lock").clone() {
                    Some(map) => {
                        tracing::warn!(error = %err, "the claim table cannot be read; showing what its last reading claimed");
                        (Some(map), false)
                    }
                    None => return Err(err),
                },
            },
        };
        if let (Some(table), Some(map), Some(clients), true) =
            (&self.claims, &claims, &self.clients, fresh)
        {
            // App clients whose deletion failed, recorded for us: never
            // shown or adopted; deleted, then the to-do with them.
            let claimed = claims::holders(map);
            let to_clean: Vec<String> = claims::clients_to_clean_up(map);
            for id in &to_clean {
                // A create adopted it since (a portal's retry): kept.
                if claimed.contains(id) || self.discard_client(clients, id).await {
                    if let Err(err) = table.release(&self.aws, &claims::cleanup_key(id), id).await {
                        tracing::warn!(client_id = %id, error = %err, "could not remove a finished clean-up to-do");
                    }
                }
            }
            listing
                .credentials
                .retain(|c| !to_clean.contains(&c.id) || claimed.contains(&c.id));
        }
        let (now, grace) = self.settle_window();
        let settled = claims::settle(
            listing.credentials,
            claims.as_ref(),
            &listing.made_to_claim,
            now,
            grace,
        );
        let shown = settled.shown;
        // The first load only shows: readiness waits for nothing else.
        if !self.owners.is_loaded() {
            return Ok(shown);
        }
        for (extra, kept) in settled.delete {
            self.delete_unkept(&extra, Some(&kept)).await;
        }
        if let (Some(table), true) = (&self.claims, fresh) {
            // Bounded, so that a first refresh with the table in an account
            // of many keys made before it is not held up: the rest next time.
            for settle in settled.settle.into_iter().take(SETTLE_PER_REFRESH) {
                self.settle_app(table, settle).await;
            }
        }
        Ok(shown)
    }

    /// Does what `settle` decided for one app (see [`claims::Settle`]).
    /// Every deletion is made
    /// only while the app's claim names another credential (or no
    /// credential), so none can delete what a create has just claimed.
    async fn settle_app(&self, table: &Claims, settle: claims::Settle) -> Option<()> {
        use claims::Settle;
        match settle {
            Settle::Extras {
                key,
                holder,
                extras,
            } => {
                // Still the holder: no revoke has freed the claim for one
                // of these since the scan.
                if table.holder(&self.aws, &key).await.ok()?.as_deref() != Some(&*holder) {
                    return None;
                }
                for extra in &extras {
                    self.delete_unkept(extra, Some(&holder)).await;
                }
                None
            }
            Settle::Unlisted { key, holder } => {
                if claims::is_settling(&holder) {
                    // A refresh that claimed it to delete orphans stopped
                    // before releasing it.
                    let _ = table.release(&self.aws, &key, &holder).await;
                    return None;
                }
                let kind = match key.starts_with(CredentialKind::ApiKey.as_str()) {
                    true => CredentialKind::ApiKey,
                    false => CredentialKind::ClientCredentials,
                };
                if let Ok(None) = self.look_up(kind, &holder).await {
                    if let Err(err) = table.release(&self.aws, &key, &holder).await {
                        tracing::warn!(error = %err, "could not release the claim of a credential that is gone");
                    }
                }
                None
            }
            Settle::Adopt { key, kept, extras } => {
                match table.claim(&self.aws, &key, &kept.id).await {
                    Ok(Claimed::Mine) => {}
                    // Settled at the next refresh, against its holder.
                    Ok(Claimed::Theirs(_)) => return None,
                    Err(err) => {
                        tracing::warn!(credential_id = %kept.id, error = %err, "could not claim an app's credential; the next refresh tries again");
                        return None;
                    }
                }
                for extra in &extras {
                    self.delete_unkept(extra, Some(&kept.id)).await;
                }
                None
            }
            Settle::Orphans { key, orphans } => {
                let settling = format!("{}:{}", claims::SETTLING, (self.clock)());
                if table.claim(&self.aws, &key, &settling).await.ok()? != Claimed::Mine {
                    return None;
                }
                for orphan in &orphans {
                    self.delete_unkept(orphan, None).await;
                }
                if let Err(err) = table.release(&self.aws, &key, &settling).await {
                    tracing::warn!(error = %err, "could not release a settling claim; the app's next create or a refresh does");
                }
                None
            }
        }
    }

    /// Deletes a credential no app keeps, audited.
    async fn delete_unkept(&self, extra: &Credential, kept: Option<&str>) {
        if self.discard(extra).await {
            tracing::warn!(
                target: AUDIT_TARGET,
                action = "duplicate_deleted",
                owner = %extra.owner,
                app = %extra.app,
                credential_id = %extra.id,
                kept = kept.unwrap_or("none"),
                "a credential no app keeps was deleted"
            );
        }
    }

    /// Every API key and app client in AWS, as credentials.
    async fn list_everything(&self) -> Result<Listing> {
        let records = self.list_all_keys().await?;
        crate::metrics::api_keys(records.len());
        let mut credentials = apigateway::credentials(&records);
        let mut client_ids = HashSet::new();
        if let Some(clients) = &self.clients {
            let known = self.owners.clients();
            let mut links = Vec::new();
            for (id, name) in clients.list(&self.aws).await? {
                client_ids.insert(id.clone());
                let Some((_, label, owner)) = cognito::parse_client_name(&name) else {
                    continue;
                };
                let fields = cognito::name_fields(&name);
                // Only clients not seen before cost a describe.
                let credential = match known.get(&id) {
                    Some(c) => {
                        let mut c = c.clone();
                        c.label = label;
                        c.owner = owner;
                        c.expires_at_ms = fields.expires;
                        c.replaces = fields.replaces.clone();
                        Some(c)
                    }
                    None => clients.describe(&self.aws, &id).await?,
                };
                if let Some(mut credential) = credential {
                    attach_companion(&mut credential, &records);
                    credentials.push(credential);
                }
                if let (Some(pred), Some(until)) = (fields.replaces, fields.until) {
                    links.push((pred, until));
                }
            }
            lineage::link_ends(&mut credentials, &links);
        }
        // Disabled keys keyhook made, for the admin listing.
        *self.disabled.lock().expect("disabled lock") = records
            .iter()
            .filter(|r| !r.enabled && r.companion_of().is_none())
            .filter_map(KeyRecord::any_credential)
            .filter(|c| c.app.issued_by_keyhook())
            .collect();
        let (now, grace) = self.settle_window();
        let table = self.claims.as_ref().map(|table| table.table());
        let stray_companions = match self.clients {
            Some(_) => stray_companions(&records, &client_ids, table, now, grace),
            None => Vec::new(),
        };
        Ok(Listing {
            credentials,
            made_to_claim: create::made_to_claim(&records, table),
            stray_companions,
        })
    }
}

/// What a refresh found in AWS.
struct Listing {
    credentials: Vec<Credential>,
    /// The keys made to be claimed (`apigateway::TAG_CLAIM`).
    made_to_claim: claims::MadeToClaim,
    /// Companion keys no client shows (see [`stray_companions`]).
    stray_companions: Vec<String>,
}

/// The companion keys among `records` no client shows, once older than
/// `grace_ms` at `now_ms`: of a client in `clients`, all but the one it
/// shows (see [`attach_companion`]: the newest enabled one); of a client not
/// there, those made with this deployment's claim `table`.
fn stray_companions(
    records: &[KeyRecord],
    clients: &HashSet<String>,
    table: Option<&str>,
    now_ms: u64,
    grace_ms: u64,
) -> Vec<String> {
    let mut by_client: BTreeMap<&str, Vec<&KeyRecord>> = BTreeMap::new();
    for record in records {
        if let Some(client) = record.companion_of() {
            by_client.entry(client).or_default().push(record);
        }
    }
    let old = |r: &KeyRecord| r.created_ms.saturating_add(grace_ms) <= now_ms;
    let mut stray = Vec::new();
    // Only the companions of this pool's clients: a key names its client,
    // not its pool, and another deployment's pool may share the account.
    for (client, companions) in by_client {
        let shown = match clients.contains(client) {
            true => create::shown_companion(&companions).map(|r| r.id.as_str()),
            // Made with our claim table for a client no longer in the
            // pool (its create failed): ours. Else another pool's, maybe.
            false if table.is_some() => None,
            false => continue,
        };
        let companions: Vec<&KeyRecord> = match clients.contains(client) {
            true => companions,
            false => companions
                .into_iter()
                .filter(|r| r.claim_table().is_some() && r.claim_table() == table)
                .collect(),
        };
        stray.extend(
            companions
                .into_iter()
                .filter(|r| Some(r.id.as_str()) != shown && old(r))
                .map(|r| r.id.clone()),
        );
    }
    stray
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::credentials::{AppId, CredentialError, FailureKind, Origin, Secret};
    use crate::secret::Redacted;

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    /// A credential as the index holds it (also for `claims.rs`' tests).
    pub(in crate::credentials::aws) fn key(
        id: &str,
        owner: &str,
        app: &str,
        created_at_ms: u64,
    ) -> Credential {
        Credential {
            id: id.into(),
            owner: email(owner),
            app: AppId::from_stored(app),
            label: "app".into(),
            origin: Origin::Readme,
            secret: Secret::ApiKey {
                value: Redacted::new(format!("value-of-{id}")),
            },
            usage_plans: Vec::new(),
            api_ids: Vec::new(),
            custom: BTreeMap::new(),
            created_at_ms,
            expires_at_ms: None,
            replaces: None,
        }
    }

    pub(in crate::credentials::aws) fn client(
        id: &str,
        owner: &str,
        app: &str,
        created_at_ms: u64,
    ) -> Credential {
        Credential {
            secret: Secret::ClientCredentials {
                client_secret: Redacted::new("s".into()),
                scopes: Vec::new(),
            },
            ..key(id, owner, app, created_at_ms)
        }
    }

    fn ids<C: std::borrow::Borrow<Credential>>(found: Vec<C>) -> Vec<String> {
        found.iter().map(|c| c.borrow().id.clone()).collect()
    }

    #[test]
    fn merge_replays_the_journal_onto_the_listing_in_order() {
        let listed = vec![
            key("k1", "jo@corp.com", "aws:01", 1),
            key("k2", "jo@corp.com", "aws:02", 2),
        ];
        let mut relabelled = key("k2", "al@corp.com", "aws:02", 2);
        relabelled.label = "renamed".into();
        let journal = vec![
            Change::Remove("k1".into()),
            Change::Upsert(Box::new(key("k3", "jo@corp.com", "aws:03", 3))),
            Change::Upsert(Box::new(relabelled.clone())),
            // Made, then revoked, during the listing: gone.
            Change::Upsert(Box::new(key("k4", "jo@corp.com", "aws:04", 4))),
            Change::Remove("k4".into()),
            // Not listed and already gone: nothing to do.
            Change::Remove("k9".into()),
        ];
        let index = merge(listed, journal);
        assert_eq!(index.len(), 2);
        assert_eq!(ids(index.owned_by(&email("jo@corp.com"))), ["k3"]);
        assert_eq!(
            index.owned_by(&email("al@corp.com")),
            [Arc::new(relabelled)]
        );
    }

    #[tokio::test]
    async fn a_revoke_racing_a_refresh_stays_revoked() {
        let owners = OwnerIndex::new();
        let revoked = key("k1", "jo@corp.com", "aws:01", 1);
        owners.apply(Change::Upsert(Box::new(revoked.clone())));
        // The listing saw the key before the revoke reached AWS.
        let listing = async {
            owners.apply(Change::Remove("k1".into()));
            owners.apply(Change::Upsert(Box::new(key(
                "k2",
                "jo@corp.com",
                "aws:02",
                2,
            ))));
            Ok(vec![revoked.clone()])
        };
        assert_eq!(owners.refresh(listing).await.unwrap(), 1);
        assert_eq!(ids(owners.owned_by(&email("jo@corp.com"))), ["k2"]);
        assert!(owners.is_loaded());
        // The journal closed with the refresh: the next one starts clean.
        owners.apply(Change::Remove("k2".into()));
        let listing = async { Ok(vec![revoked.clone()]) };
        assert_eq!(owners.refresh(listing).await.unwrap(), 1);
        assert_eq!(ids(owners.owned_by(&email("jo@corp.com"))), ["k1"]);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_index_and_closes_the_journal() {
        let owners = OwnerIndex::new();
        let kept = key("k1", "jo@corp.com", "aws:01", 1);
        owners.apply(Change::Upsert(Box::new(kept.clone())));
        owners.record_miss(&email("al@corp.com"));
        let listing = async {
            owners.apply(Change::Upsert(Box::new(key(
                "k2",
                "jo@corp.com",
                "aws:02",
                2,
            ))));
            Err(CredentialError::Failed {
                operation: "GetApiKeys",
                kind: FailureKind::AwsThrottled,
                detail: "throttled".into(),
            })
        };
        assert!(owners.refresh(listing).await.is_err());
        assert!(!owners.is_loaded());
        assert_eq!(owners.confirmed_age(), None);
        let why = owners.load_failure().and_then(|e| e.failure());
        assert_eq!(why, Some(("GetApiKeys", FailureKind::AwsThrottled)));
        assert_eq!(ids(owners.owned_by(&email("jo@corp.com"))), ["k1", "k2"]);
        assert!(owners.journal.lock().unwrap().is_none());
        // Misses are forgotten only by a refresh that succeeded.
        assert!(owners.missed(&email("al@corp.com"), Duration::from_secs(60)));
        assert_eq!(owners.refresh(async { Ok(vec![kept]) }).await.unwrap(), 1);
        assert!(!owners.missed(&email("al@corp.com"), Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn the_index_is_confirmed_as_of_the_start_of_the_last_listing_that_succeeded() {
        let owners = OwnerIndex::new();
        let slow = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(Vec::new())
        };
        owners.refresh(slow).await.unwrap();
        let after_success = owners.confirmed_age().unwrap();
        assert!(
            after_success >= Duration::from_millis(200),
            "{after_success:?}"
        );
        let failed = async {
            Err(CredentialError::Failed {
                operation: "GetApiKeys",
                kind: FailureKind::AwsUnavailable,
                detail: "down".into(),
            })
        };
        assert!(owners.refresh(failed).await.is_err());
        assert!(owners.confirmed_age().unwrap() >= after_success);
    }

    #[test]
    fn a_new_credential_forgets_its_owner_was_missed() {
        let owners = OwnerIndex::new();
        owners.record_miss(&email("jo@corp.com"));
        assert!(owners.missed(&email("jo@corp.com"), Duration::from_secs(60)));
        assert!(!owners.missed(&email("jo@corp.com"), Duration::ZERO));
        owners.apply(Change::Upsert(Box::new(key(
            "k1",
            "jo@corp.com",
            "aws:01",
            1,
        ))));
        assert!(!owners.missed(&email("jo@corp.com"), Duration::from_secs(60)));
    }

    #[test]
    fn replacing_an_owners_keys_leaves_their_clients() {
        let owners = OwnerIndex::new();
        for c in [
            key("k1", "jo@corp.com", "aws:01", 1),
            client("c1", "jo@corp.com", "aws:02", 2),
        ] {
            owners.apply(Change::Upsert(Box::new(c)));
        }
        owners.replace_owner_keys(
            &email("jo@corp.com"),
            vec![key("k3", "jo@corp.com", "aws:03", 3)],
        );
        assert_eq!(ids(owners.owned_by(&email("jo@corp.com"))), ["c1", "k3"]);
        assert_eq!(owners.clients().into_keys().collect::<Vec<_>>(), ["c1"]);
    }
}
