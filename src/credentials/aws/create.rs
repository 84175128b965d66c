//! Race-safe creates, and the API key a client may carry beside it.
//!
//! Per app, this replica creates one credential at a time; before creating
//! it looks in the index and in AWS; after creating it re-reads AWS, and if
//! racing replicas made several credentials for one app, all keep the first
//! made (see [`first_made`]) and the others delete their own.
//!
//! A *companion* API key is issued beside an OAuth client when
//! `client_api_key` is set and the app has usage plans: tagged with the
//! client's id, shown with the client (`apiKeyId`, `apiKey`), never alone.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::apigateway::{self, KeyRecord};
use super::call::Aws;
use super::cognito::{self, AppClients};
use super::sync::{first_made, Change};
use super::{AppKeys, Inner};
use crate::credentials::{
    AppId, Created, Credential, CredentialError, CredentialSpec, Email, Origin, Result,
};
use crate::secret::Redacted;

/// A lookup this recent stands in for the check before a create.
const JUST_MISSED: Duration = Duration::from_secs(2);

impl Inner {
    /// Holds this replica's creates and updates for `app` to one at a time.
    pub(super) async fn app_lock(&self, app: &AppId) -> tokio::sync::OwnedMutexGuard<()> {
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

    /// Replaces what the index knows of `owner`'s API keys with `records`.
    pub(super) fn replace_owner_keys(&self, owner: &Email, records: &[KeyRecord]) {
        self.owners
            .replace_owner_keys(owner, apigateway::credentials(records));
    }

    pub(super) async fn create_api_key(
        &self,
        spec: &CredentialSpec,
    ) -> Result<(Credential, Created)> {
        let app = AppKeys::of(&spec.app);
        let same_app = |records: &[KeyRecord]| -> Vec<Credential> {
            let mut found: Vec<Credential> = apigateway::credentials(records)
                .into_iter()
                .filter(|c| app.names(&c.app, &c.owner))
                .collect();
            found.sort_by(first_made);
            found
        };
        // Another replica may have made it since our last refresh; unless
        // AWS just told us this owner has nothing (the login that is
        // provisioning asked a moment ago).
        if !self.owners.missed(&spec.owner, JUST_MISSED) {
            let before = self.keys.list_owner(&self.aws, &spec.owner).await?;
            self.replace_owner_keys(&spec.owner, &before);
            if let Some(existing) = same_app(&before).into_iter().next() {
                return Ok((self.found_key(existing, spec).await?, Created::Existing));
            }
        }
        let mine = self.keys.create(&self.aws, spec, None).await?;
        let after = match self.keys.list_owner(&self.aws, &spec.owner).await {
            Ok(after) => after,
            Err(err) => {
                // We cannot tell whether a racing replica's key wins, so the
                // caller gets an error; ours must not outlive it.
                self.keys.delete_after_failure(&self.aws, &mine.id).await;
                return Err(err);
            }
        };
        let contenders = same_app(&after);
        match contenders.first() {
            Some(winner) if winner.id != mine.id => {
                // A racing replica's key was made first; ours goes.
                self.keys.delete_after_failure(&self.aws, &mine.id).await;
                let kept: Vec<KeyRecord> = after.into_iter().filter(|r| r.id != mine.id).collect();
                self.replace_owner_keys(&spec.owner, &kept);
                Ok((
                    self.found_key(winner.clone(), spec).await?,
                    Created::Existing,
                ))
            }
            _ => {
                let mut credential = mine.credential().ok_or(CredentialError::Backend {
                    operation: "CreateApiKey",
                    detail: "the new key is not usable".into(),
                })?;
                credential.usage_plans = spec.usage_plans.clone();
                credential.api_ids = spec.api_ids.clone();
                // Later keys for this app are racing replicas' losers, which
                // they delete themselves: never show them.
                let losers: Vec<&str> = contenders.iter().skip(1).map(|c| c.id.as_str()).collect();
                let kept: Vec<KeyRecord> = after
                    .into_iter()
                    .filter(|r| !losers.contains(&r.id.as_str()))
                    .collect();
                self.replace_owner_keys(&spec.owner, &kept);
                self.owners
                    .apply(Change::Upsert(Box::new(credential.clone())));
                Ok((credential, Created::New))
            }
        }
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

    /// The clients in the pool made for `app`, smallest id first.
    async fn clients_of_app(&self, clients: &AppClients, app: &AppKeys) -> Result<Vec<String>> {
        let mut ids: Vec<String> = clients
            .list(&self.aws)
            .await?
            .into_iter()
            .filter(|(_, name)| {
                cognito::parse_client_name(name)
                    .is_some_and(|(found, _, owner)| app.names(&found, &owner))
            })
            .map(|(id, _)| id)
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
        if let Some(existing_id) = self.clients_of_app(clients, &app).await?.into_iter().next() {
            if let Some(existing) = self.describe_with_companion(clients, &existing_id).await? {
                self.owners
                    .apply(Change::Upsert(Box::new(existing.clone())));
                return Ok((existing, Created::Existing));
            }
        }
        let mut mine = clients.create(&self.aws, spec).await?;
        let winner = match self.clients_of_app(clients, &app).await {
            Ok(ids) => ids.into_iter().next(),
            Err(err) => {
                delete_client_after_failure(&self.aws, clients, &mine.id).await;
                return Err(err);
            }
        };
        if let Some(winner_id) = winner.filter(|w| *w != mine.id) {
            delete_client_after_failure(&self.aws, clients, &mine.id).await;
            if let Some(winner) = self.describe_with_companion(clients, &winner_id).await? {
                self.owners.apply(Change::Upsert(Box::new(winner.clone())));
                return Ok((winner, Created::Existing));
            }
        }
        if self.settings.client_api_key && !spec.usage_plans.is_empty() {
            match self.keys.create(&self.aws, spec, Some(&mine.id)).await {
                Ok(key) => add_companion(&mut mine, &key),
                Err(err) => {
                    // All or nothing: no client without its key.
                    delete_client_after_failure(&self.aws, clients, &mine.id).await;
                    return Err(err);
                }
            }
        }
        mine.usage_plans = spec.usage_plans.clone();
        mine.api_ids = spec.api_ids.clone();
        self.owners.apply(Change::Upsert(Box::new(mine.clone())));
        Ok((mine, Created::New))
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

/// Best effort: the caller already has an outcome to report.
async fn delete_client_after_failure(aws: &Aws, clients: &AppClients, client_id: &str) {
    if let Err(err) = clients.delete(aws, client_id).await {
        tracing::error!(client_id, error = %err, "could not delete a half-made app client; delete it by hand");
    }
}

/// Adds a companion API key's id and value to a client credential.
fn add_companion(credential: &mut Credential, key: &KeyRecord) {
    credential
        .custom
        .insert("apiKeyId".into(), Redacted::new(key.id.clone()));
    credential.custom.insert("apiKey".into(), key.value.clone());
}

/// Adds the enabled companion key among `records`, if any, to a client.
pub(super) fn attach_companion(credential: &mut Credential, records: &[KeyRecord]) {
    if let Some(key) = records
        .iter()
        .find(|r| r.enabled && r.companion_of() == Some(credential.id.as_str()))
    {
        add_companion(credential, key);
    }
}
