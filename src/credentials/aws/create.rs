//! Race-safe creates, and the API key a client may carry beside it.
//!
//! Per app, this replica creates one credential at a time, and looks in the
//! index and in AWS before creating (a first login's key does not look:
//! `first_login.rs`). Across replicas, with the claim table
//! (`claims.rs`), the credential that claims the app is the app's: a create
//! answers the claim's holder if the app has one, else claims the app's
//! unclaimed credential or its own new one, and deletes its own if another
//! won. Without the table (one replica), it re-reads AWS after creating and
//! keeps the first made (see [`first_made`]): the extra credential a retried
//! call whose answer was lost can leave.
//!
//! A *companion* API key is issued beside an OAuth client when
//! `client_api_key` is set and the app has usage plans: tagged with the
//! client's id, shown with the client (`apiKeyId`, `apiKey`), never alone.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::apigateway::{self, KeyRecord};
use super::claims::{claim_key, Claimed, Claims, MadeToClaim};
use super::cognito::{self, AppClients};
use super::lineage;
use super::sync::{first_made, Change};
use super::{AppKeys, Inner};
use crate::credentials::{
    AppId, Created, Credential, CredentialError, CredentialKind, CredentialSpec, Email,
    FailureKind, Origin, Result,
};
use crate::secret::Redacted;

/// A lookup this recent stands in for the check before a create.
const JUST_MISSED: Duration = Duration::from_secs(2);

impl Inner {
    /// Holds this replica's creates and updates for `app` to one at a time.
    pub(super) async fn app_lock(&self, app: &AppId) -> tokio::sync::OwnedMutexGuard<()> {
        // Keyed as AWS stores the app, so a portal's create (which names
        // the app) and a rotation (which has only what AWS recorded) take
        // the same lock.
        let app = &super::app_key(app).app_id();
        let lock = {
            let mut locks = self.app_locks.lock().expect("locks lock");
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(app).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(app.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// Replaces what the index knows of `owner`'s API keys with `records`,
    /// as far as logins may be shown them: with the claim table, only what
    /// holds its app's claim (or is settled, `claims::settle`).
    pub(super) async fn replace_owner_keys(
        &self,
        owner: &Email,
        records: &[KeyRecord],
    ) -> Result<()> {
        let listed = apigateway::credentials(records);
        let (now, grace) = self.settle_window();
        let shown = match &self.claims {
            // An app's first key only, as a refresh shows.
            None => {
                let made_to_claim = made_to_claim(records, None);
                super::claims::settle(listed, None, &made_to_claim, now, grace).shown
            }
            Some(table) => {
                let mut keys: Vec<String> = listed
                    .iter()
                    .filter(|c| super::claims::is_claimable(c))
                    .map(|c| claim_key(c.kind(), &c.app))
                    .collect();
                keys.sort();
                keys.dedup();
                let claims = table.some(&self.aws, &keys).await?;
                let made_to_claim = made_to_claim(records, Some(table.table()));
                let settled =
                    super::claims::settle(listed, Some(&claims), &made_to_claim, now, grace);
                // What the refresh would adopt is shown once it is claimed.
                settled.shown
            }
        };
        self.owners.replace_owner_keys(owner, shown);
        Ok(())
    }

    /// The full way (`first_login.rs` has the short one): looks in AWS
    /// first, unless `first_login` (a reader the index holds nothing for:
    /// without the table, the re-read after creating finds what a look
    /// would) or AWS just told us the owner has nothing.
    pub(super) async fn create_api_key_listed(
        &self,
        spec: &CredentialSpec,
        first_login: bool,
    ) -> Result<(Credential, Created)> {
        let app = AppKeys::of(&spec.app);
        let (now, _) = self.settle_window();
        // One past its end is the sweeper's, not the app's credential.
        let same_app = |records: &[KeyRecord]| -> Vec<Credential> {
            let mut found: Vec<Credential> = apigateway::credentials(records)
                .into_iter()
                .filter(|c| app.names(&c.app, &c.owner) && !c.is_expired(now))
                .collect();
            found.sort_by(first_made);
            found
        };
        // Another replica may have made it since our last refresh; unless
        // AWS just told us this owner has nothing (the login that is
        // provisioning asked a moment ago). With the table, always: that
        // login was not shown keys no claim holds yet.
        let mut existing = Vec::new();
        let mut before = Vec::new();
        let looked = first_login || self.owners.missed(&spec.owner, JUST_MISSED);
        if self.claims.is_some() || !looked {
            before = self.keys.list_owner(&self.aws, &spec.owner).await?;
            self.replace_owner_keys(&spec.owner, &before).await?;
            existing = same_app(&before);
        }
        if let Some(table) = &self.claims {
            // Keys made to be claimed are a create's in flight, or a failed
            // one's: never adopted (the claim's winner deletes them).
            let tagged = made_to_claim(&before, Some(table.table()));
            let adoptable = existing
                .iter()
                .filter(|c| !tagged.here.contains(&c.id) && !tagged.elsewhere.contains(&c.id))
                .cloned()
                .collect();
            let kind = CredentialKind::ApiKey;
            return self
                .create_claimed(table, kind, spec, &app, (existing, adoptable))
                .await;
        }
        // Keys a deployment with a claim table made are its own: never
        // taken, never deleted here.
        let theirs = made_to_claim(&before, None).elsewhere;
        existing.retain(|c| !theirs.contains(&c.id));
        let mut units = lineage::units(existing).into_iter();
        if let Some(first) = units.next() {
            // One replica, this app's creates in turn: the others (made
            // under the same identity) are the extras of an earlier create
            // whose every answer was lost; a rotation's successor and
            // predecessor are one app credential, answered by the former.
            let head = lineage::head(&first).unwrap_or(&first[0]).clone();
            for extra in units.flatten().filter(|c| c.app == head.app) {
                self.discard_key(&extra.id).await;
                self.owners.apply(Change::Remove(extra.id.clone()));
            }
            return Ok((self.found_key(head, spec).await?, Created::Existing));
        }
        let mine = match self.keys.create(&self.aws, spec, None).await {
            Ok(mine) => mine,
            // Deleted while half made: the re-read of a replica racing
            // without a table kept the app's first key, which is answered.
            Err(err)
                if err
                    .failure()
                    .is_some_and(|(_, kind)| kind == FailureKind::AwsNotFound) =>
            {
                let after = self.keys.list_owner(&self.aws, &spec.owner).await?;
                let theirs = made_to_claim(&after, None).elsewhere;
                let first = same_app(&after)
                    .into_iter()
                    .find(|c| !theirs.contains(&c.id));
                // None: a missing plan, not a racing replica.
                let Some(first) = first else { return Err(err) };
                self.replace_owner_keys(&spec.owner, &after).await?;
                return Ok((self.found_key(first, spec).await?, Created::Existing));
            }
            Err(err) => return Err(err),
        };
        let after = match self.keys.list_owner(&self.aws, &spec.owner).await {
            Ok(after) => after,
            Err(err) => {
                // We cannot tell whether another key of the app wins, so the
                // caller gets an error; ours must not outlive it.
                self.discard_key(&mine.id).await;
                return Err(err);
            }
        };
        let theirs = made_to_claim(&after, None).elsewhere;
        let mut contenders = same_app(&after);
        contenders.retain(|c| !theirs.contains(&c.id));
        match contenders.first() {
            Some(first) if first.id != mine.id => {
                // A key of the app was made first (a lost answer's, when the
                // SDK retried the create); ours goes.
                self.discard_key(&mine.id).await;
                let kept: Vec<KeyRecord> = after.into_iter().filter(|r| r.id != mine.id).collect();
                self.replace_owner_keys(&spec.owner, &kept).await?;
                Ok((
                    self.found_key(first.clone(), spec).await?,
                    Created::Existing,
                ))
            }
            _ => {
                let credential = new_key(&mine, spec)?;
                // The app had no key before this create: later ones are the
                // extras a retried call whose answer was lost made. Deleted
                // now (a refresh deletes what this leaves), never shown.
                let extras: Vec<&str> = contenders
                    .iter()
                    .skip(1)
                    .filter(|c| c.app == credential.app)
                    .map(|c| c.id.as_str())
                    .collect();
                for extra in &extras {
                    self.discard_key(extra).await;
                }
                let kept: Vec<KeyRecord> = after
                    .into_iter()
                    .filter(|r| !extras.contains(&r.id.as_str()))
                    .collect();
                self.replace_owner_keys(&spec.owner, &kept).await?;
                self.owners
                    .apply(Change::Upsert(Box::new(credential.clone())));
                Ok((credential, Created::New))
            }
        }
    }

    /// A create with the claim table: the claim's holder if the app has one
    /// (found among `existing` or in AWS); else the first of `adoptable`
    /// (made before the table), or a new one, once it has claimed the app.
    /// A new credential that loses the claim is deleted, and the winner
    /// answered.
    pub(super) async fn create_claimed(
        &self,
        table: &Claims,
        kind: CredentialKind,
        spec: &CredentialSpec,
        app: &AppKeys,
        (existing, adoptable): (Vec<Credential>, Vec<Credential>),
    ) -> Result<(Credential, Created)> {
        // A holder revoked between our claim and our read frees the claim
        // again; a few turns settle any such race.
        for _ in 0..3 {
            if let Some(holder) = self.claimed(table, kind, app, &existing).await? {
                let holder = self.as_found(holder, spec).await?;
                return Ok((holder, Created::Existing));
            }
            let (candidate, made) = match adoptable.first() {
                Some(found) => (found.clone(), false),
                None => match self.make(kind, spec).await {
                    Ok(made) => (made, true),
                    // Deleted while half made: the app's claim was won by a
                    // racing replica, which deletes the app's other keys.
                    Err(err)
                        if err
                            .failure()
                            .is_some_and(|(_, kind)| kind == FailureKind::AwsNotFound) =>
                    {
                        match self.claimed(table, kind, app, &existing).await? {
                            Some(holder) => {
                                let holder = self.as_found(holder, spec).await?;
                                return Ok((holder, Created::Existing));
                            }
                            // A missing plan or pool, not a racing winner.
                            None => return Err(err),
                        }
                    }
                    Err(err) => return Err(err),
                },
            };
            let key = claim_key(kind, &candidate.app);
            match self.claim_checked(table, &key, &candidate, made).await {
                Ok(Claimed::Mine) if made => {
                    self.sweep_app(&candidate, table).await;
                    self.owners
                        .apply(Change::Upsert(Box::new(candidate.clone())));
                    return Ok((candidate, Created::New));
                }
                Ok(Claimed::Mine) => {
                    self.sweep_app(&candidate, table).await;
                    let found = self.as_found(candidate, spec).await?;
                    return Ok((found, Created::Existing));
                }
                Ok(Claimed::Theirs(_)) => {
                    if made {
                        self.discard(&candidate).await;
                    }
                }
                Err((err, unclaimed)) => {
                    // Unclaimed, ours would be shown to no one: it goes.
                    if made && unclaimed {
                        self.discard(&candidate).await;
                    }
                    return Err(err);
                }
            }
        }
        Err(CredentialError::Backend {
            operation: "PutItem",
            detail: "the app's claim kept changing".into(),
        })
    }

    /// Claims `key` for `candidate`; a failed claim is checked (it may
    /// have been applied, its answer lost). The error says whether the
    /// claim is surely not `candidate`'s. What this create `made` counts
    /// against the key ceiling in the same write (`ceiling.rs`); what it
    /// adopts was counted.
    pub(super) async fn claim_checked(
        &self,
        table: &Claims,
        key: &str,
        candidate: &Credential,
        made: bool,
    ) -> std::result::Result<Claimed, (CredentialError, bool)> {
        let id = candidate.id.as_str();
        let claiming = match made {
            true => {
                table
                    .claim_made(&self.aws, key, candidate, self.ceiling())
                    .await
            }
            false => table.claim(&self.aws, key, id).await,
        };
        match claiming {
            // Past the ceiling: nothing was written; the caller's goes.
            Err(err @ CredentialError::LimitReached(_)) => Err((err, true)),
            Err(err) => match table.holder(&self.aws, key).await {
                Ok(Some(holder)) if holder == id => Ok(Claimed::Mine),
                Ok(_) => Err((err, true)),
                // Cannot tell: a refresh settles it.
                Err(_) => Err((err, false)),
            },
            Ok(claimed) => Ok(claimed),
        }
    }

    /// The credential holding the app's claim, under its current identity
    /// or the previous version's. A claim whose credential is gone (its
    /// revoke could not release it) is released.
    async fn claimed(
        &self,
        table: &Claims,
        kind: CredentialKind,
        app: &AppKeys,
        existing: &[Credential],
    ) -> Result<Option<Credential>> {
        let stored = std::iter::once(app.current()).chain(app.previous().map(|(p, _)| p));
        for stored in stored {
            let key = claim_key(kind, stored);
            let Some(holder) = table.holder(&self.aws, &key).await? else {
                continue;
            };
            if super::claims::is_settling(&holder) {
                // A refresh deleting the app's orphans: it holds no
                // credential, and orphans are never adopted.
                table.release(&self.aws, &key, &holder).await?;
                continue;
            }
            let found = match existing.iter().find(|c| c.id == holder) {
                Some(found) => Some(found.clone()),
                None => self.look_up(kind, &holder).await?,
            };
            match found {
                Some(found) if app.names(&found.app, &found.owner) => return Ok(Some(found)),
                // Alive, but another app's under an identity the previous
                // version shared: not ours to release.
                Some(_) => continue,
                None => table.release(&self.aws, &key, &holder).await?,
            }
        }
        Ok(None)
    }

    /// The credential `id` names in AWS, if it is there and usable.
    pub(super) async fn look_up(
        &self,
        kind: CredentialKind,
        id: &str,
    ) -> Result<Option<Credential>> {
        match kind {
            CredentialKind::ApiKey => Ok(self
                .keys
                .get(&self.aws, id)
                .await?
                .and_then(|record| record.credential())),
            CredentialKind::ClientCredentials => {
                self.describe_with_companion(self.clients()?, id).await
            }
        }
    }

    /// A new credential of `kind` for `spec`, not yet claimed: an API key on
    /// its plans, or an app client (its companion key comes once claimed).
    async fn make(&self, kind: CredentialKind, spec: &CredentialSpec) -> Result<Credential> {
        match kind {
            CredentialKind::ApiKey => {
                new_key(&self.keys.create(&self.aws, spec, None).await?, spec)
            }
            CredentialKind::ClientCredentials => {
                // With its companion key before it is claimed: a racing
                // replica that answers the claimed client must find the key.
                let mut client = self.clients()?.create(&self.aws, spec).await?;
                self.add_new_companion(&mut client, spec).await?;
                Ok(client)
            }
        }
    }

    /// An existing credential of the app, as `create` answers it: a key
    /// with its plans known (see [`Inner::found_key`]), a client as found;
    /// indexed either way.
    pub(super) async fn as_found(
        &self,
        found: Credential,
        spec: &CredentialSpec,
    ) -> Result<Credential> {
        let found = match found.kind() {
            CredentialKind::ApiKey => self.found_key(found, spec).await?,
            CredentialKind::ClientCredentials => found,
        };
        self.owners.apply(Change::Upsert(Box::new(found.clone())));
        Ok(found)
    }

    /// Deletes a credential keyhook made that no app keeps (with a client,
    /// its companion key), counted; a failure is left to a later refresh,
    /// which finds it by its tags or name. Returns whether it is gone.
    pub(super) async fn discard(&self, credential: &Credential) -> bool {
        match credential.kind() {
            CredentialKind::ApiKey => self.discard_key(&credential.id).await,
            CredentialKind::ClientCredentials => {
                let Ok(clients) = self.clients() else {
                    return false;
                };
                if let Some(key_id) = credential.custom.get("apiKeyId") {
                    // Without a table nothing would find the key again once
                    // its client is gone: keep both for a retry.
                    if !self.discard_key(key_id.expose()).await && self.claims.is_none() {
                        return false;
                    }
                }
                self.discard_client(clients, &credential.id).await
            }
        }
    }

    /// Deletes app client `id`, counted. An app client has no tags a
    /// refresh could find it by: with the claim table, a failed deletion is
    /// recorded there for the refresh to finish.
    pub(super) async fn discard_client(&self, clients: &AppClients, id: &str) -> bool {
        let gone = clients.delete(&self.aws, id).await;
        crate::metrics::cleanup("app_client", gone.is_ok());
        if let Err(err) = &gone {
            let noted = match &self.claims {
                Some(table) => table.clean_up_later(&self.aws, id).await.is_ok(),
                None => false,
            };
            tracing::warn!(client_id = id, error = %err, later = noted, "could not delete an app client no app keeps");
        }
        gone.is_ok()
    }

    /// Deletes app client `id` and its companion key, if it is there.
    async fn discard_client_with_companion(&self, clients: &AppClients, id: &str) {
        if let Ok(Some(client)) = self.describe_with_companion(clients, id).await {
            self.discard(&client).await;
        }
    }

    /// Deletes every companion key of client `id` among `records` but
    /// `keep` (the extra a retried create whose answer was lost made).
    async fn discard_companions(&self, records: &[KeyRecord], client_id: &str, keep: Option<&str>) {
        for record in records {
            if record.companion_of() == Some(client_id) && Some(record.id.as_str()) != keep {
                self.discard_key(&record.id).await;
            }
        }
    }

    /// After a credential won its app's claim: every other credential of
    /// the app this deployment made is an extra (a lost answer's, a failed
    /// create's, a racing replica's loser), deleted now rather than at a
    /// refresh. Best effort: what is left, a refresh deletes.
    async fn sweep_app(&self, mine: &Credential, table: &Claims) {
        let key = claim_key(mine.kind(), &mine.app);
        let same_app = |c: &Credential| c.id != mine.id && claim_key(c.kind(), &c.app) == key;
        let Ok(records) = self.keys.list_owner(&self.aws, &mine.owner).await else {
            return;
        };
        match mine.kind() {
            CredentialKind::ApiKey => {
                for record in &records {
                    let ours = record.claim_table() == Some(table.table());
                    if ours && record.credential().is_some_and(|c| same_app(&c)) {
                        self.discard_key(&record.id).await;
                    }
                }
            }
            CredentialKind::ClientCredentials => {
                let Ok(clients) = self.clients() else { return };
                let Ok(listed) = clients.list(&self.aws).await else {
                    return;
                };
                for (id, name) in listed {
                    let extra = cognito::parse_client_name(&name).is_some_and(|(app, _, _)| {
                        id != mine.id && claim_key(CredentialKind::ClientCredentials, &app) == key
                    });
                    if extra {
                        self.discard_companions(&records, &id, None).await;
                        self.discard_client(clients, &id).await;
                    }
                }
            }
        }
    }

    pub(super) async fn discard_key(&self, id: &str) -> bool {
        let gone = self.keys.delete(&self.aws, id).await;
        crate::metrics::cleanup("api_key", gone.is_ok());
        if let Err(err) = &gone {
            tracing::warn!(key_id = id, error = %err, "could not delete an API key no app keeps; a later refresh tries again");
        }
        gone.is_ok()
    }

    /// The app's key as found in AWS, with what a listing does not tell
    /// filled in, so that `create` brings it in step exactly where it is
    /// not (it may have been left half made, by a crash or a replica of an
    /// earlier version). A reader's own key is attached to the requested
    /// plans (idempotent, and provisioning may not list plans); an app's
    /// key has its plans read (`GetUsagePlans`). API ids are nothing API
    /// Gateway keeps for a key.
    async fn found_key(&self, mut found: Credential, spec: &CredentialSpec) -> Result<Credential> {
        if spec.origin == Origin::Readme {
            for plan in &spec.usage_plans {
                self.keys.attach(&self.aws, &found.id, plan).await?;
            }
            found.usage_plans = spec.usage_plans.clone();
        } else {
            found.usage_plans = self.keys.plans_of(&self.aws, &found.id).await?;
        }
        found.api_ids = spec.api_ids.clone();
        Ok(found)
    }

    /// The clients in the pool made for `app` (with the client each
    /// replaces), smallest id first; none past its end.
    async fn clients_of_app(
        &self,
        clients: &AppClients,
        app: &AppKeys,
    ) -> Result<Vec<(String, Option<String>)>> {
        let (now, _) = self.settle_window();
        let mut ids: Vec<(String, Option<String>)> = clients
            .list(&self.aws)
            .await?
            .into_iter()
            .filter_map(|(id, name)| {
                let (found, _, owner) = cognito::parse_client_name(&name)?;
                let fields = cognito::name_fields(&name);
                let live = fields.expires.is_none_or(|end| now < end);
                (app.names(&found, &owner) && live).then_some((id, fields.replaces))
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub(super) async fn create_client(
        &self,
        spec: &CredentialSpec,
    ) -> Result<(Credential, Created)> {
        let clients = self.clients()?;
        let app = AppKeys::of(&spec.app);
        let existing_ids = self.clients_of_app(clients, &app).await?;
        if let Some(table) = &self.claims {
            let mut existing = Vec::new();
            if let Some((first, _)) = kept_client(&existing_ids) {
                // One a failed create left for a refresh to delete is
                // never adopted.
                let to_do = [super::claims::cleanup_key(&first)];
                if table.some(&self.aws, &to_do).await?.is_empty() {
                    existing.extend(self.describe_with_companion(clients, &first).await?);
                }
            }
            // A client younger than a create can take may be another
            // replica's, still being made (its companion key to come).
            let (now, grace) = self.settle_window();
            let adoptable = existing
                .iter()
                .filter(|c| c.created_at_ms.saturating_add(grace) <= now)
                .cloned()
                .collect();
            let kind = CredentialKind::ClientCredentials;
            return self
                .create_claimed(table, kind, spec, &app, (existing, adoptable))
                .await;
        }
        if let Some((existing_id, extras)) = kept_client(&existing_ids) {
            // As for keys: an earlier create's lost answers' extras (not
            // the kept one's rotation partner).
            for extra in extras {
                self.discard_client_with_companion(clients, &extra).await;
            }
            if let Some(existing) = self.describe_with_companion(clients, &existing_id).await? {
                self.owners
                    .apply(Change::Upsert(Box::new(existing.clone())));
                return Ok((existing, Created::Existing));
            }
        }
        let mut mine = clients.create(&self.aws, spec).await?;
        let ids = match self.clients_of_app(clients, &app).await {
            Ok(ids) => ids,
            Err(err) => {
                self.discard(&mine).await;
                return Err(err);
            }
        };
        let kept = kept_client(&ids);
        let first = kept.as_ref().map(|(first, _)| first.clone());
        if let Some((_, extras)) = kept.filter(|(first, _)| *first == mine.id) {
            // As for keys: the others are a lost answer's extras.
            for extra in &extras {
                self.discard_client_with_companion(clients, extra).await;
            }
        }
        if let Some(first_id) = first.filter(|w| *w != mine.id) {
            self.discard(&mine).await;
            if let Some(first) = self.describe_with_companion(clients, &first_id).await? {
                self.owners.apply(Change::Upsert(Box::new(first.clone())));
                return Ok((first, Created::Existing));
            }
        }
        self.add_new_companion(&mut mine, spec).await?;
        self.owners.apply(Change::Upsert(Box::new(mine.clone())));
        Ok((mine, Created::New))
    }

    /// Completes a new client: its companion key when the app has plans
    /// (all or nothing: no client without its key).
    async fn add_new_companion(&self, mine: &mut Credential, spec: &CredentialSpec) -> Result<()> {
        if self.settings.client_api_key && !spec.usage_plans.is_empty() {
            let made = self.keys.create(&self.aws, spec, Some(&mine.id)).await;
            // A lost answer may have left a key the SDK's retry did not
            // return: the companions of this new client are ours alone.
            let records = self.keys.list_owner(&self.aws, &spec.owner).await;
            match made {
                Ok(key) => {
                    if let Ok(records) = &records {
                        self.discard_companions(records, &mine.id, Some(&key.id))
                            .await;
                    }
                    add_companion(mine, &key);
                }
                Err(err) => {
                    if let Ok(records) = &records {
                        self.discard_companions(records, &mine.id, None).await;
                    }
                    self.discard(mine).await;
                    return Err(err);
                }
            }
        }
        mine.usage_plans = spec.usage_plans.clone();
        mine.api_ids = spec.api_ids.clone();
        Ok(())
    }

    pub(super) async fn describe_with_companion(
        &self,
        clients: &AppClients,
        client_id: &str,
    ) -> Result<Option<Credential>> {
        let Some(mut credential) = clients.describe(&self.aws, client_id).await? else {
            return Ok(None);
        };
        if self.settings.client_api_key {
            let records = self.keys.list_owner(&self.aws, &credential.owner).await?;
            attach_companion(&mut credential, &records);
        }
        Ok(Some(credential))
    }

    /// Keeps a client's companion API key in step with the app's plans:
    /// made when plans appear, re-synced, deleted when none are left.
    pub(super) async fn sync_companion(
        &self,
        updated: &mut Credential,
        current: &Credential,
        spec: &CredentialSpec,
    ) -> Result<()> {
        let existing = current.custom.get("apiKeyId").map(|id| id.expose().clone());
        match (existing, spec.usage_plans.is_empty()) {
            (Some(key_id), false) => {
                let record = KeyRecord {
                    id: key_id.clone(),
                    value: current.custom.get("apiKey").cloned().unwrap_or_default(),
                    name: current.owner.to_string(),
                    description: current.label.clone(),
                    enabled: true,
                    created_ms: 0,
                    tags: HashMap::new(),
                    customer_id: String::new(),
                };
                self.keys.sync(&self.aws, &record, spec).await?;
                add_companion(updated, &record);
            }
            (Some(key_id), true) => {
                self.keys.delete(&self.aws, &key_id).await?;
                updated.custom.remove("apiKeyId");
                updated.custom.remove("apiKey");
            }
            (None, false) => {
                let key = self.keys.create(&self.aws, spec, Some(&current.id)).await?;
                add_companion(updated, &key);
            }
            (None, true) => {}
        }
        Ok(())
    }
}

/// Which keys among `records` were made to be claimed: in `table` (ours),
/// or in another deployment's table (never settled here).
pub(super) fn made_to_claim(records: &[KeyRecord], table: Option<&str>) -> MadeToClaim {
    let mut made = MadeToClaim::default();
    for record in records {
        match record.claim_table() {
            Some(theirs) if Some(theirs) != table => made.elsewhere.insert(record.id.clone()),
            Some(_) => made.here.insert(record.id.clone()),
            None => false,
        };
    }
    made
}

/// A key just made for `spec`, as a credential on the plans and APIs asked.
pub(super) fn new_key(record: &KeyRecord, spec: &CredentialSpec) -> Result<Credential> {
    let mut credential = record.credential().ok_or(CredentialError::Backend {
        operation: "CreateApiKey",
        detail: "the new key is not usable".into(),
    })?;
    credential.usage_plans = spec.usage_plans.clone();
    credential.api_ids = spec.api_ids.clone();
    Ok(credential)
}

/// Of an app's clients (smallest id first, each with the one it
/// replaces): the one the app keeps (the first, or the successor that
/// replaces it) and the extras, not counting the kept one's rotation
/// partner.
fn kept_client(ids: &[(String, Option<String>)]) -> Option<(String, Vec<String>)> {
    let (first, replaces) = ids.first()?;
    let successor = ids
        .iter()
        .find(|(_, r)| r.as_ref() == Some(first))
        .map(|(id, _)| id.clone());
    let pred = replaces
        .as_ref()
        .filter(|p| ids.iter().any(|(id, _)| id == *p));
    let kept = successor.clone().unwrap_or_else(|| first.clone());
    let extras = ids
        .iter()
        .map(|(id, _)| id.clone())
        .filter(|id| id != first && Some(id) != successor.as_ref() && Some(id) != pred)
        .collect();
    Some((kept, extras))
}

/// Adds a companion API key's id and value to a client credential.
pub(super) fn add_companion(credential: &mut Credential, key: &KeyRecord) {
    credential
        .custom
        .insert("apiKeyId".into(), Redacted::new(key.id.clone()));
    credential.custom.insert("apiKey".into(), key.value.clone());
}

/// Adds the companion key among `records` the client shows, if any.
pub(super) fn attach_companion(credential: &mut Credential, records: &[KeyRecord]) {
    let companions: Vec<&KeyRecord> = records
        .iter()
        .filter(|r| r.companion_of() == Some(credential.id.as_str()))
        .collect();
    if let Some(key) = shown_companion(&companions) {
        add_companion(credential, key);
    }
}

/// Which of a client's companion keys it shows: the newest enabled one. A
/// retried create whose first answer was lost leaves an older extra, never
/// attached to the plans; a refresh deletes it.
pub(super) fn shown_companion<'a>(companions: &[&'a KeyRecord]) -> Option<&'a KeyRecord> {
    companions
        .iter()
        .filter(|r| r.enabled)
        .max_by(|a, b| {
            a.created_ms
                .cmp(&b.created_ms)
                .then_with(|| a.id.cmp(&b.id))
        })
        .copied()
}

#[cfg(test)]
mod tests {
    use super::kept_client;

    fn ids(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(id, r)| (id.to_string(), r.map(str::to_string)))
            .collect()
    }

    #[test]
    fn a_client_and_its_rotation_partner_are_kept_and_the_successor_answered() {
        // The predecessor sorts first: its successor is answered.
        let kept = kept_client(&ids(&[("a", None), ("b", None), ("c", Some("a"))]));
        assert_eq!(kept, Some(("c".into(), vec!["b".into()])));
        // The successor sorts first: it is answered, its predecessor kept.
        let kept = kept_client(&ids(&[("a", Some("c")), ("b", None), ("c", None)]));
        assert_eq!(kept, Some(("a".into(), vec!["b".into()])));
        // No rotation: the first, the others extras.
        let kept = kept_client(&ids(&[("a", None), ("b", None)]));
        assert_eq!(kept, Some(("a".into(), vec!["b".into()])));
        assert_eq!(kept_client(&[]), None);
    }
}
