//! API keys in Amazon API Gateway.
//!
//! How a key records what it is:
//! - its **name** is the owner's email. That is the convention of ReadMe's
//!   own samples, so keys teams made by hand are found the same way, and a
//!   login's `GetApiKeys(nameQuery=email)` finds them; because `nameQuery` is
//!   a prefix match, the name must then equal the email exactly;
//! - its **description** is the label readers see in ReadMe's dropdown;
//! - its **tags** say keyhook made it: `keyhook:app` (the app identity, so
//!   retries and racing replicas find it), `keyhook:origin` (readme or
//!   sensedia) and, for a key issued beside an OAuth client,
//!   `keyhook:client` (that client's id); a rotation's successor also
//!   `keyhook:replaces` and `keyhook:until`, and a key's own end date is
//!   its `customerId` (`lineage.rs`).
//!
//! (Past 400 lines only with its unit tests: one file per AWS service, like
//! `cognito.rs`.)

use std::collections::{BTreeMap, HashMap};

use aws_config::retry::RetryConfig;
use aws_sdk_apigateway::types::{Op, PatchOperation};
use aws_sdk_apigateway::Client;

use super::call::{epoch_ms, Aws};
use super::lineage::{customer_id, end_of_customer_id, link_ends, TAG_REPLACES, TAG_UNTIL};
use super::{app_key, AppKey};
use crate::credentials::{
    AppId, Credential, CredentialError, CredentialSpec, Email, Origin, Result, Secret,
};
use crate::secret::Redacted;

pub const TAG_APP: &str = "keyhook:app";
pub const TAG_ORIGIN: &str = "keyhook:origin";
pub const TAG_CLIENT: &str = "keyhook:client";
/// Set on the keys keyhook makes with a claim table (`claims.rs`), to the
/// table's name: unclaimed once a create is over, such a key is one no app
/// keeps (its create failed), not one made before the table existed; a
/// companion key so tagged whose client is not in this deployment's pool is
/// left behind by a failed create; and a key another deployment tagged is
/// never settled here.
pub const TAG_CLAIM: &str = "keyhook:claim";

/// `GetApiKeys` returns at most 500 keys a page.
const PAGE: i32 = 500;

/// Builds a [`KeyRecord`] from any of the SDK's three key shapes (`ApiKey`,
/// `GetApiKeyOutput`, `CreateApiKeyOutput`): same accessors, no common trait.
macro_rules! key_record {
    ($key:expr, $id:expr) => {{
        let key = $key;
        KeyRecord {
            id: $id,
            value: Redacted::new(key.value().unwrap_or_default().to_string()),
            name: key.name().unwrap_or_default().to_string(),
            description: key.description().unwrap_or_default().to_string(),
            enabled: key.enabled(),
            created_ms: epoch_ms(key.created_date()),
            tags: key.tags().cloned().unwrap_or_default(),
            customer_id: key.customer_id().unwrap_or_default().to_string(),
        }
    }};
}

/// A key as API Gateway describes it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: String,
    pub value: Redacted<String>,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub created_ms: u64,
    pub tags: HashMap<String, String>,
    /// Where its own end date is (`lineage::customer_id`).
    pub customer_id: String,
}

impl KeyRecord {
    fn from_api(key: &aws_sdk_apigateway::types::ApiKey) -> Option<Self> {
        Some(key_record!(key, key.id()?.to_string()))
    }

    /// The owner: the key's name, when it is an email address (as typed
    /// in the console, or as an earlier version wrote it).
    pub fn owner(&self) -> Option<Email> {
        Email::from_stored(&self.name).ok()
    }

    /// The claim table it was made to be claimed in (see [`TAG_CLAIM`]).
    pub fn claim_table(&self) -> Option<&str> {
        self.tags.get(TAG_CLAIM).map(String::as_str)
    }

    /// The OAuth client this key was issued beside, if any.
    pub fn companion_of(&self) -> Option<&str> {
        self.tags.get(TAG_CLIENT).map(String::as_str)
    }

    /// The predecessor this key replaces and that one's end (a rotation's
    /// successor's create-time tags).
    pub fn link(&self) -> Option<(String, u64)> {
        let pred = self.tags.get(TAG_REPLACES)?;
        let until = self.tags.get(TAG_UNTIL)?.parse().ok()?;
        Some((pred.clone(), until))
    }

    /// This key as a credential of its owner; `None` for keys no reader
    /// owns (their name is no email) and for disabled keys.
    pub fn credential(&self) -> Option<Credential> {
        if !self.enabled {
            return None;
        }
        self.any_credential()
    }

    /// As `credential`, disabled or not (the admin listing).
    pub fn any_credential(&self) -> Option<Credential> {
        let owner = self.owner()?;
        let origin = match self.tags.get(TAG_ORIGIN).map(String::as_str) {
            Some("sensedia") => Origin::Sensedia,
            _ => Origin::Readme,
        };
        let app = match self.tags.get(TAG_APP) {
            Some(hash) => AppKey::from_hash(hash).app_id(),
            // A hand-made key: its own app.
            None => AppId::hand_made_key(&self.id),
        };
        let label = if self.description.trim().is_empty() {
            "API key".to_string()
        } else {
            self.description.clone()
        };
        Some(Credential {
            id: self.id.clone(),
            owner,
            app,
            label,
            origin,
            secret: Secret::ApiKey {
                value: self.value.clone(),
            },
            usage_plans: Vec::new(),
            api_ids: Vec::new(),
            custom: BTreeMap::new(),
            created_at_ms: self.created_ms,
            expires_at_ms: end_of_customer_id(&self.customer_id),
            replaces: self.tags.get(TAG_REPLACES).cloned(),
        })
    }
}

pub struct ApiKeys {
    client: Client,
    /// The claim table keys are made to be claimed in ([`TAG_CLAIM`]).
    claim_table: Option<String>,
}

impl ApiKeys {
    pub fn new(client: Client, claim_table: Option<String>) -> Self {
        ApiKeys {
            client,
            claim_table,
        }
    }

    /// The SDK client, for the audit's own read-only listings (`audit.rs`).
    pub(super) fn sdk(&self) -> &Client {
        &self.client
    }

    /// Every key in the account and region, following `position`.
    pub async fn list_all(&self, aws: &Aws) -> Result<Vec<KeyRecord>> {
        self.list(aws, None, false).await
    }

    /// The keys named exactly `owner` (`nameQuery` is a prefix match, so the
    /// answer is filtered).
    pub async fn list_owner(&self, aws: &Aws, owner: &Email) -> Result<Vec<KeyRecord>> {
        self.owner_keys(aws, owner, false).await
    }

    /// As `list_owner`, for a caller that already took the first call's
    /// token from the bucket.
    pub async fn list_owner_unmetered(&self, aws: &Aws, owner: &Email) -> Result<Vec<KeyRecord>> {
        self.owner_keys(aws, owner, true).await
    }

    async fn owner_keys(&self, aws: &Aws, owner: &Email, prepaid: bool) -> Result<Vec<KeyRecord>> {
        let keys = self.list(aws, Some(owner.as_str()), prepaid).await?;
        Ok(keys
            .into_iter()
            .filter(|k| k.owner().as_ref() == Some(owner))
            .collect())
    }

    async fn list(
        &self,
        aws: &Aws,
        name_query: Option<&str>,
        mut prepaid: bool,
    ) -> Result<Vec<KeyRecord>> {
        let mut keys = Vec::new();
        let mut position: Option<String> = None;
        loop {
            let request = self
                .client
                .get_api_keys()
                .include_values(true)
                .limit(PAGE)
                .set_name_query(name_query.map(str::to_string))
                .set_position(position.clone());
            let page = if std::mem::take(&mut prepaid) {
                aws.run("GetApiKeys", request.send()).await?
            } else {
                aws.call("GetApiKeys", request.send()).await?
            };
            keys.extend(page.items().iter().filter_map(KeyRecord::from_api));
            match page.position() {
                // A page that hands back the position it was asked for would
                // loop forever.
                Some(next) if !next.is_empty() && Some(next) != position.as_deref() => {
                    position = Some(next.to_string());
                }
                _ => break,
            }
        }
        Ok(keys)
    }

    pub async fn get(&self, aws: &Aws, id: &str) -> Result<Option<KeyRecord>> {
        let request = self.client.get_api_key().api_key(id).include_value(true);
        match aws.call_opt("GetApiKey", request.send()).await? {
            Some(out) => Ok(Some(key_record!(&out, out.id().unwrap_or(id).to_string()))),
            None => Ok(None),
        }
    }

    /// Creates an enabled key and attaches it to every plan. If an attach
    /// fails the key is deleted again: nothing half-made is left behind.
    pub async fn create(
        &self,
        aws: &Aws,
        spec: &CredentialSpec,
        companion_of: Option<&str>,
    ) -> Result<KeyRecord> {
        // Boxed: keeps the callers' futures small (a debug build's stack).
        Box::pin(self.create_linked(aws, spec, companion_of, None)).await
    }

    /// As `create`, with one attempt at `CreateApiKey` and no retry by the
    /// SDK: a retried create whose first answer was lost leaves a second
    /// key, which a caller that will not list the owner's keys must hear of
    /// (as a failure) rather than leave behind. Attaching is retried.
    pub async fn create_once(&self, aws: &Aws, spec: &CredentialSpec) -> Result<KeyRecord> {
        Box::pin(self.make(aws, spec, None, None, false)).await
    }

    /// As `create`, for a rotation's successor: `link` is the predecessor
    /// it replaces and that one's end, recorded in its tags.
    pub async fn create_linked(
        &self,
        aws: &Aws,
        spec: &CredentialSpec,
        companion_of: Option<&str>,
        link: Option<(&str, u64)>,
    ) -> Result<KeyRecord> {
        self.make(aws, spec, companion_of, link, true).await
    }

    async fn make(
        &self,
        aws: &Aws,
        spec: &CredentialSpec,
        companion_of: Option<&str>,
        link: Option<(&str, u64)>,
        retried: bool,
    ) -> Result<KeyRecord> {
        let mut request = self
            .client
            .create_api_key()
            .name(spec.owner.as_str())
            .description(&spec.label)
            .enabled(true)
            .tags(TAG_APP, app_key(&spec.app).hash())
            .tags(TAG_ORIGIN, spec.origin.as_str());
        if spec.expires_at_ms.is_some() {
            request = request.customer_id(customer_id(spec.expires_at_ms));
        }
        if let Some((pred, until)) = link {
            request = request
                .tags(TAG_REPLACES, pred)
                .tags(TAG_UNTIL, until.to_string());
        }
        if let Some(client_id) = companion_of {
            request = request.tags(TAG_CLIENT, client_id);
        }
        // A companion key too: an extra one (its create's answer lost) or
        // one whose client is gone is this deployment's to delete.
        if let Some(table) = &self.claim_table {
            request = request.tags(TAG_CLAIM, table);
        }
        let mut request = request.customize();
        if !retried {
            request = request.config_override(
                aws_sdk_apigateway::Config::builder().retry_config(RetryConfig::disabled()),
            );
        }
        let out = aws.call("CreateApiKey", request.send()).await?;
        let id = out
            .id()
            .ok_or_else(|| CredentialError::Backend {
                operation: "CreateApiKey",
                detail: "the answer carried no key id".into(),
            })?
            .to_string();
        let record = key_record!(&out, id);
        for plan in &spec.usage_plans {
            if let Err(err) = self.attach(aws, &record.id, plan).await {
                self.delete_after_failure(aws, &record.id).await;
                return Err(err);
            }
        }
        Ok(record)
    }

    /// Best effort: the caller already has an outcome to report. A key
    /// left behind holds no claim, and a later refresh deletes it (with the
    /// claim table); without the table the create's retry finds it and
    /// brings it to its plans.
    pub async fn delete_after_failure(&self, aws: &Aws, id: &str) {
        let gone = self.delete(aws, id).await;
        crate::metrics::cleanup("api_key", gone.is_ok());
        if let Err(err) = gone {
            tracing::warn!(key_id = id, error = %err, "could not delete a half-made API key; a later refresh tries again");
        }
    }

    pub async fn attach(&self, aws: &Aws, key_id: &str, plan: &str) -> Result<()> {
        let request = self
            .client
            .create_usage_plan_key()
            .usage_plan_id(plan)
            .key_id(key_id)
            .key_type("API_KEY");
        match aws.call("CreateUsagePlanKey", request.send()).await {
            Ok(_) => Ok(()),
            // Already attached: the state we want.
            Err(err) if err.is_conflict() => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn detach(&self, aws: &Aws, key_id: &str, plan: &str) -> Result<()> {
        let request = self
            .client
            .delete_usage_plan_key()
            .usage_plan_id(plan)
            .key_id(key_id);
        aws.call_opt("DeleteUsagePlanKey", request.send()).await?;
        Ok(())
    }

    /// The plans a key is attached to.
    pub async fn plans_of(&self, aws: &Aws, key_id: &str) -> Result<Vec<String>> {
        let mut plans = Vec::new();
        let mut position: Option<String> = None;
        loop {
            let request = self
                .client
                .get_usage_plans()
                .key_id(key_id)
                .limit(PAGE)
                .set_position(position.clone());
            let page = aws.call("GetUsagePlans", request.send()).await?;
            plans.extend(
                page.items()
                    .iter()
                    .filter_map(|p| p.id().map(str::to_string)),
            );
            match page.position() {
                Some(next) if !next.is_empty() && Some(next) != position.as_deref() => {
                    position = Some(next.to_string());
                }
                _ => break,
            }
        }
        Ok(plans)
    }

    /// Brings a key in step with `spec`: attaches the plans it lacks,
    /// detaches those it should no longer have, renames it.
    pub async fn sync(&self, aws: &Aws, key: &KeyRecord, spec: &CredentialSpec) -> Result<()> {
        let current = self.plans_of(aws, &key.id).await?;
        for plan in spec.usage_plans.iter().filter(|p| !current.contains(p)) {
            self.attach(aws, &key.id, plan).await?;
        }
        for plan in current.iter().filter(|p| !spec.usage_plans.contains(p)) {
            self.detach(aws, &key.id, plan).await?;
        }
        let mut patches = Vec::new();
        if key.name != spec.owner.as_str() {
            patches.push(("/name", spec.owner.to_string()));
        }
        if key.description != spec.label {
            patches.push(("/description", spec.label.clone()));
        }
        if !patches.is_empty() {
            let mut request = self.client.update_api_key().api_key(&key.id);
            for (path, value) in patches {
                request = request.patch_operations(
                    PatchOperation::builder()
                        .op(Op::Replace)
                        .path(path)
                        .value(value)
                        .build(),
                );
            }
            aws.call("UpdateApiKey", request.send()).await?;
        }
        Ok(())
    }

    /// Deletes a key (its plan attachments go with it). `false` if it was
    /// already gone.
    pub async fn delete(&self, aws: &Aws, id: &str) -> Result<bool> {
        let request = self.client.delete_api_key().api_key(id);
        Ok(aws
            .call_opt("DeleteApiKey", request.send())
            .await?
            .is_some())
    }

    /// Sets (or, `None`, clears) a key's own end date. `false` if it is
    /// gone.
    pub async fn set_end(&self, aws: &Aws, id: &str, end: Option<u64>) -> Result<bool> {
        let request = self.client.update_api_key().api_key(id).patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/customerId")
                .value(customer_id(end))
                .build(),
        );
        Ok(aws
            .call_opt("UpdateApiKey", request.send())
            .await?
            .is_some())
    }

    /// Disables a key, keeping it for the record. `false` if it is gone.
    pub async fn disable(&self, aws: &Aws, id: &str) -> Result<bool> {
        let request = self.client.update_api_key().api_key(id).patch_operations(
            PatchOperation::builder()
                .op(Op::Replace)
                .path("/enabled")
                .value("false")
                .build(),
        );
        Ok(aws
            .call_opt("UpdateApiKey", request.send())
            .await?
            .is_some())
    }

    /// Whether the usage plan exists (and we may read it).
    pub async fn usage_plan_exists(&self, aws: &Aws, plan: &str) -> Result<bool> {
        let request = self.client.get_usage_plan().usage_plan_id(plan);
        Ok(aws
            .call_opt("GetUsagePlan", request.send())
            .await?
            .is_some())
    }

    /// A cheap call that proves API Gateway answers.
    pub async fn ping(&self, aws: &Aws) -> Result<()> {
        let request = self.client.get_api_keys().limit(1);
        aws.call("GetApiKeys", request.send()).await?;
        Ok(())
    }
}

/// The API keys among `records` that a reader owns, minus those issued
/// beside an OAuth client (they are shown with that client).
/// A predecessor's end is the earlier of its own and its successor's
/// `until` (`lineage::link_ends`).
pub fn credentials(records: &[KeyRecord]) -> Vec<Credential> {
    let mut found: Vec<Credential> = records
        .iter()
        .filter(|r| r.companion_of().is_none())
        .filter_map(KeyRecord::credential)
        .collect();
    let links: Vec<(String, u64)> = records
        .iter()
        .filter(|r| r.enabled)
        .filter_map(KeyRecord::link)
        .collect();
    link_ends(&mut found, &links);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, enabled: bool, tags: &[(&str, &str)]) -> KeyRecord {
        KeyRecord {
            id: "abc".into(),
            value: Redacted::new("v".into()),
            name: name.into(),
            description: String::new(),
            enabled,
            created_ms: 1,
            customer_id: String::new(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn owners_are_whole_names() {
        assert_eq!(
            record("Jo@Corp.com", true, &[]).owner(),
            Email::parse("jo@corp.com").ok()
        );
        assert_eq!(record("prod key", true, &[]).owner(), None);
    }

    #[test]
    fn disabled_companion_and_unowned_keys_are_not_reader_credentials() {
        let records = vec![
            record(
                "jo@corp.com",
                true,
                &[(TAG_APP, "00ff"), (TAG_ORIGIN, "sensedia")],
            ),
            record("jo@corp.com", false, &[]),
            record("jo@corp.com", true, &[(TAG_CLIENT, "client1")]),
            record("not an email", true, &[]),
        ];
        let creds = credentials(&records);
        assert_eq!(creds.len(), 1);
        assert_eq!(creds[0].origin, Origin::Sensedia);
        assert_eq!(creds[0].app, AppKey::from_hash("00ff").app_id());
        assert_eq!(creds[0].label, "API key");
    }

    #[test]
    fn hand_made_keys_are_their_own_app() {
        let cred = record("jo@corp.com", true, &[]).credential().unwrap();
        assert_eq!(cred.app.as_str(), "apikey:abc");
        assert_eq!(cred.origin, Origin::Readme);
    }
}
