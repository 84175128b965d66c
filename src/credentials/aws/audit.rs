//! `keyhook audit` on the AWS backend: what is wrong in the account, read
//! with read-only calls, and `--fix`'s repairs.
//!
//! The audit reads the account itself, never the owner index, so it works
//! from a provider that was only built (`AwsProvider::new`, as `keyhook
//! audit` does before keyhook is deployed). Its calls: the index load's
//! (`GetApiKeys` pages, without values; `ListUserPoolClients` pages; the
//! claim table's `Scan`), `DescribeUserPoolClient` only for the clients of
//! an app with several (a listing has no creation date), then one listing
//! of each usage plan's keys (`GetUsagePlans`, `GetUsagePlanKeys`). Keys
//! are listed before clients, so a companion key whose client is missing
//! lost it (a client is made before its key).
//!
//! What counts as what is decided in `findings.rs`; `repair.rs` carries
//! the repairs out after reading the account again.

mod account;
mod duplicates;
mod findings;
mod record;
mod repair;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::call::epoch_ms;
use super::Inner;
use crate::credentials::{Finding, Result};
use account::{Account, Client, Key};
use findings::Rules;

/// `GetApiKeys` and `GetUsagePlans`/`GetUsagePlanKeys` pages: 500 at most.
const PAGE: i32 = 500;

impl Inner {
    /// Every finding at `now_ms`, by kind, then credential id.
    pub(super) async fn audit(&self, now_ms: u64) -> Result<Vec<Finding>> {
        let account = self.read_account().await?;
        let planned = findings::analyse(&account, &self.audit_rules(now_ms));
        Ok(planned.into_iter().map(|p| p.finding).collect())
    }

    fn audit_rules(&self, now_ms: u64) -> Rules {
        Rules {
            now_ms,
            grace_ms: self.settings.settle_after().as_millis() as u64,
            table: self.settings.claim_table.clone(),
            default_plan: self.usage_plan_id.clone(),
            revoke: self.settings.revoke,
        }
    }

    /// The account as the audit sees it.
    async fn read_account(&self) -> Result<Account> {
        let keys = self.audit_keys().await?;
        let clients = match &self.clients {
            Some(_) => Some(self.audit_clients().await?),
            None => None,
        };
        let claims = match &self.claims {
            Some(table) => Some(table.all(&self.aws).await?),
            None => None,
        };
        let plans = self.plan_keys().await?;
        Ok(Account {
            keys,
            clients,
            plans,
            claims,
        })
    }

    /// Every API key, without its value.
    async fn audit_keys(&self) -> Result<Vec<Key>> {
        let mut keys = Vec::new();
        let mut position: Option<String> = None;
        loop {
            let request = self
                .keys
                .sdk()
                .get_api_keys()
                .include_values(false)
                .limit(PAGE)
                .set_position(position.clone());
            let page = self.aws.call("GetApiKeys", request.send()).await?;
            keys.extend(page.items().iter().filter_map(|key| {
                Some(Key {
                    id: key.id()?.to_string(),
                    name: key.name().unwrap_or_default().to_string(),
                    description: key.description().unwrap_or_default().to_string(),
                    enabled: key.enabled(),
                    created_ms: epoch_ms(key.created_date()),
                    tags: key.tags().cloned().unwrap_or_default(),
                    customer_id: key.customer_id().map(str::to_string),
                    read_name: Default::default(),
                })
            }));
            match next(page.position(), &position) {
                Some(next) => position = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// Every app client of the pool; the creation date of those whose app
    /// has several (the duplicate rule's grace needs it).
    async fn audit_clients(&self) -> Result<Vec<Client>> {
        let clients = self.clients()?;
        let mut listed: Vec<Client> = clients
            .list(&self.aws)
            .await?
            .into_iter()
            .map(|(id, name)| Client {
                id,
                name,
                created_ms: None,
            })
            .collect();
        let mut apps: BTreeMap<String, usize> = BTreeMap::new();
        for named in listed.iter().filter_map(Client::named) {
            *apps.entry(named.app.as_str().to_string()).or_default() += 1;
        }
        let crowded: HashSet<String> = listed
            .iter()
            .filter(|c| {
                c.named()
                    .is_some_and(|n| apps.get(n.app.as_str()).is_some_and(|&count| count > 1))
            })
            .map(|c| c.id.clone())
            .collect();
        let mut gone = HashSet::new();
        for client in listed.iter_mut().filter(|c| crowded.contains(&c.id)) {
            let request = clients
                .sdk()
                .describe_user_pool_client()
                .user_pool_id(clients.pool())
                .client_id(&client.id);
            match self
                .aws
                .call_opt("DescribeUserPoolClient", request.send())
                .await?
            {
                Some(out) => {
                    let created = out.user_pool_client().and_then(|c| c.creation_date());
                    client.created_ms = Some(epoch_ms(created));
                }
                None => {
                    gone.insert(client.id.clone());
                }
            }
        }
        listed.retain(|c| !gone.contains(&c.id));
        Ok(listed)
    }

    /// Key id → the usage plans it is on, from one listing of each plan's
    /// keys.
    async fn plan_keys(&self) -> Result<HashMap<String, BTreeSet<String>>> {
        let sdk = self.keys.sdk();
        let mut plans = Vec::new();
        let mut position: Option<String> = None;
        loop {
            let request = sdk
                .get_usage_plans()
                .limit(PAGE)
                .set_position(position.clone());
            let page = self.aws.call("GetUsagePlans", request.send()).await?;
            plans.extend(
                page.items()
                    .iter()
                    .filter_map(|p| p.id().map(str::to_string)),
            );
            match next(page.position(), &position) {
                Some(next) => position = Some(next),
                None => break,
            }
        }
        let mut on = HashMap::<String, BTreeSet<String>>::new();
        for plan in plans {
            let mut position: Option<String> = None;
            loop {
                let request = sdk
                    .get_usage_plan_keys()
                    .usage_plan_id(&plan)
                    .limit(PAGE)
                    .set_position(position.clone());
                // A plan deleted since it was listed has no keys.
                let Some(page) = self
                    .aws
                    .call_opt("GetUsagePlanKeys", request.send())
                    .await?
                else {
                    break;
                };
                for key in page.items().iter().filter_map(|k| k.id()) {
                    on.entry(key.to_string()).or_default().insert(plan.clone());
                }
                match next(page.position(), &position) {
                    Some(next) => position = Some(next),
                    None => break,
                }
            }
        }
        Ok(on)
    }
}

/// The next page's position: none at the end, nor when a page hands back
/// the one it was asked for (that would loop forever).
fn next(answered: Option<&str>, asked: &Option<String>) -> Option<String> {
    answered
        .filter(|next| !next.is_empty() && Some(*next) != asked.as_deref())
        .map(str::to_string)
}
