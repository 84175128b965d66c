//! Rotation and end dates on AWS (`CredentialProvider::{rotate,
//! set_expiry}`); how they are recorded is `lineage.rs`, revoking and
//! sweeping `retire.rs`.
//!
//! A rotation makes a successor of the same owner, app, label, origin and
//! plans (a key) or scopes (a client, with its own companion key), linked
//! to its predecessor at create time, attached before anything shows it;
//! with the claim table the app's claim then moves from the predecessor to
//! it by a conditional write, so of two replicas rotating one credential at
//! once exactly one succeeds. A failure half-way deletes what was made: the
//! predecessor is never written to.
//!
//! An app client is rotated by a successor *client*, not by Cognito's
//! second client secret (`AddUserPoolClientSecret`): moto answers 500 to
//! the secret calls, so that path could not be tested; a successor client
//! is a path AWS and moto both run, and revoking the predecessor is then
//! deleting a client, as for any revoke.

use super::apigateway::KeyRecord;
use super::cognito::{self, client_name_with};
use super::lineage::NameFields;
use super::sync::Change;
use super::{app_key, claims, Inner};
use crate::credentials::{
    Claim, Credential, CredentialError, CredentialKind, CredentialRef, CredentialSpec, Result,
    Rotation, Secret,
};

pub(super) fn not_found(id: &str, kind: CredentialKind) -> CredentialError {
    CredentialError::NotFound(CredentialRef::Id(id.to_string(), kind, Claim::None))
}

fn invalid(text: String) -> CredentialError {
    CredentialError::Invalid(text)
}

/// What a successor is made from: its predecessor's owner, app, label,
/// origin, plans and APIs; no end date of its own.
fn successor_spec(pred: &Credential, usage_plans: Vec<String>) -> CredentialSpec {
    CredentialSpec {
        kind: pred.kind(),
        owner: pred.owner.clone(),
        app: pred.app.clone(),
        label: pred.label.clone(),
        origin: pred.origin,
        api_ids: pred.api_ids.clone(),
        usage_plans,
        expires_at_ms: None,
    }
}

fn scopes_of(credential: &Credential) -> Vec<String> {
    match &credential.secret {
        Secret::ClientCredentials { scopes, .. } => scopes.clone(),
        Secret::ApiKey { .. } => Vec::new(),
    }
}

/// Refuses to rotate `pred` when it already has a successor, or is itself
/// a successor whose predecessor is still held.
fn check_rotatable(pred: &Credential, successor: Option<&str>, held_pred: bool) -> Result<()> {
    if let Some(successor) = successor {
        return Err(invalid(format!(
            "credential {} already has a successor: {successor}",
            pred.id
        )));
    }
    if let (Some(earlier), true) = (&pred.replaces, held_pred) {
        return Err(invalid(format!(
            "credential {} replaces {earlier}, still in its grace period: revoke {earlier} first",
            pred.id
        )));
    }
    Ok(())
}

/// Refuses an end for `id` later than (or instead of) the grace end its
/// successor recorded: that end lives on the successor.
fn check_end(id: &str, end: Option<u64>, successor: Option<(&str, u64)>) -> Result<()> {
    match (successor, end) {
        (Some((succ, until)), end) if end.is_none_or(|end| end > until) => Err(invalid(format!(
            "credential {id} is replaced by {succ}: its end date can only be brought \
             forward of {}",
            crate::clock::rfc3339(until)
        ))),
        _ => Ok(()),
    }
}

impl Inner {
    /// Credential `id` as held: the index's, else AWS's (a key, then a
    /// client). A companion key is part of its client, not a credential.
    pub(super) async fn held(&self, id: &str) -> Result<Option<Credential>> {
        let target = CredentialRef::Id(id.to_string(), CredentialKind::ApiKey, Claim::None);
        if let Some(found) = self.owners.resolve(&target) {
            return Ok(Some(found));
        }
        if let Some(record) = self.keys.get(&self.aws, id).await? {
            return Ok(record
                .credential()
                .filter(|_| record.companion_of().is_none()));
        }
        match &self.clients {
            Some(_) => self.look_up(CredentialKind::ClientCredentials, id).await,
            None => Ok(None),
        }
    }

    /// The app's credential as its claim names it: after a rotation on
    /// another replica this one's index may still answer the predecessor
    /// until its next refresh; the claim (one DynamoDB read) already names
    /// the successor, which a create then answers.
    pub(super) async fn claimed_head(&self, indexed: Credential) -> Result<Credential> {
        let Some(table) = &self.claims else {
            return Ok(indexed);
        };
        let key = claims::claim_key(indexed.kind(), &indexed.app);
        let holder = table.holder(&self.aws, &key).await?;
        let Some(holder) = holder.filter(|h| *h != indexed.id && !claims::is_settling(h)) else {
            return Ok(indexed);
        };
        match self.look_up(indexed.kind(), &holder).await? {
            Some(found) if found.replaces.as_ref() == Some(&indexed.id) => {
                let found = Credential {
                    usage_plans: indexed.usage_plans.clone(),
                    api_ids: indexed.api_ids.clone(),
                    ..found
                };
                self.owners.apply(Change::Upsert(Box::new(found.clone())));
                Ok(found)
            }
            _ => Ok(indexed),
        }
    }

    pub(super) async fn rotate(&self, id: &str, until_ms: u64) -> Result<Rotation> {
        let pred = (self.held(id).await?).ok_or_else(|| not_found(id, CredentialKind::ApiKey))?;
        if !claims::is_claimable(&pred) {
            return Err(invalid(format!(
                "credential {id} was not issued by keyhook for an app: it cannot be rotated"
            )));
        }
        let _app = self.app_lock(&pred.app).await;
        let (successor, predecessor) = match pred.kind() {
            CredentialKind::ApiKey => self.rotate_key(pred, until_ms).await?,
            CredentialKind::ClientCredentials => self.rotate_client(pred, until_ms).await?,
        };
        self.owners
            .apply(Change::Upsert(Box::new(predecessor.clone())));
        self.owners
            .apply(Change::Upsert(Box::new(successor.clone())));
        Ok(Rotation {
            successor,
            predecessor,
        })
    }

    /// The enabled key `id`, and its owner's keys as AWS lists them now.
    async fn key_and_kin(&self, id: &str) -> Result<(KeyRecord, Vec<KeyRecord>)> {
        let gone = || not_found(id, CredentialKind::ApiKey);
        let record = (self.keys.get(&self.aws, id).await?)
            .filter(|r| r.enabled)
            .ok_or_else(gone)?;
        let owner = record.owner().ok_or_else(gone)?;
        let kin = self.keys.list_owner(&self.aws, &owner).await?;
        Ok((record, kin))
    }

    async fn rotate_key(
        &self,
        pred: Credential,
        until_ms: u64,
    ) -> Result<(Credential, Credential)> {
        let (record, kin) = self.key_and_kin(&pred.id).await?;
        let successor = kin
            .iter()
            .find(|r| r.enabled && r.link().is_some_and(|(p, _)| p == pred.id));
        let held_pred = pred
            .replaces
            .as_ref()
            .is_some_and(|p| kin.iter().any(|r| r.enabled && &r.id == p));
        check_rotatable(&pred, successor.map(|s| s.id.as_str()), held_pred)?;
        let own_end = record.credential().and_then(|c| c.expires_at_ms);
        let until = own_end.map_or(until_ms, |own| own.min(until_ms));
        let plans = self.keys.plans_of(&self.aws, &pred.id).await?;
        let spec = successor_spec(&pred, plans);
        // Attached to every plan, or deleted again, before it returns.
        let made = (self.keys)
            .create_linked(&self.aws, &spec, None, Some((&pred.id, until)))
            .await?;
        let mut successor = made.credential().ok_or(CredentialError::Backend {
            operation: "CreateApiKey",
            detail: "the new key is not usable".into(),
        })?;
        successor.usage_plans = spec.usage_plans.clone();
        successor.api_ids = spec.api_ids.clone();
        self.pass_claim(&pred, &successor).await?;
        let predecessor = Credential {
            expires_at_ms: Some(until),
            owner: successor.owner.clone(),
            ..pred
        };
        Ok((successor, predecessor))
    }

    async fn rotate_client(
        &self,
        pred: Credential,
        until_ms: u64,
    ) -> Result<(Credential, Credential)> {
        let clients = self.clients()?;
        let gone = || not_found(&pred.id, CredentialKind::ClientCredentials);
        let (current, fields) =
            (clients.describe_fields(&self.aws, &pred.id).await?).ok_or_else(gone)?;
        let listed = clients.list(&self.aws).await?;
        let successor = listed
            .iter()
            .find(|(_, name)| cognito::name_fields(name).replaces.as_deref() == Some(&pred.id));
        let held_pred =
            (fields.replaces.as_ref()).is_some_and(|p| listed.iter().any(|(id, _)| id == p));
        check_rotatable(&pred, successor.map(|(id, _)| id.as_str()), held_pred)?;
        let until = fields.expires.map_or(until_ms, |own| own.min(until_ms));
        let link = NameFields {
            expires: None,
            replaces: Some(pred.id.clone()),
            until: Some(until),
        };
        let name = client_name_with(&app_key(&pred.app), &current.label, &current.owner, &link)?;
        let mut successor = clients
            .create_named(&self.aws, name, scopes_of(&current))
            .await?;
        successor.usage_plans = pred.usage_plans.clone();
        successor.api_ids = pred.api_ids.clone();
        // Its own companion key on the predecessor's companion's plans,
        // before the claim moves: all or nothing.
        if let (true, Some(key_id)) = (self.settings.client_api_key, pred.custom.get("apiKeyId")) {
            let made = async {
                let plans = self.keys.plans_of(&self.aws, key_id.expose()).await?;
                let spec = successor_spec(&current, plans);
                self.keys
                    .create(&self.aws, &spec, Some(&successor.id))
                    .await
            };
            match made.await {
                Ok(key) => super::create::add_companion(&mut successor, &key),
                Err(err) => {
                    self.discard(&successor).await;
                    return Err(err);
                }
            }
        }
        self.pass_claim(&pred, &successor).await?;
        let predecessor = Credential {
            expires_at_ms: Some(until),
            owner: current.owner,
            label: current.label,
            ..pred
        };
        Ok((successor, predecessor))
    }

    /// Moves the app's claim from `pred` to `successor` (with the table):
    /// if another replica rotated or revoked `pred` meanwhile, the move
    /// fails and `successor` is deleted.
    async fn pass_claim(&self, pred: &Credential, successor: &Credential) -> Result<()> {
        let Some(table) = &self.claims else {
            return Ok(());
        };
        let key = claims::claim_key(pred.kind(), &pred.app);
        let passed = match table.pass(&self.aws, &key, &pred.id, &successor.id).await {
            Ok(passed) => Ok(passed),
            // The put may have been applied, its answer lost: ask.
            Err(err) => match table.holder(&self.aws, &key).await {
                Ok(Some(holder)) if holder == successor.id => Ok(true),
                _ => Err(err),
            },
        };
        match passed {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.discard(successor).await;
                Err(invalid(format!(
                    "credential {} was rotated or revoked meanwhile (by another replica)",
                    pred.id
                )))
            }
            Err(err) => {
                self.discard(successor).await;
                Err(err)
            }
        }
    }

    pub(super) async fn set_expiry(&self, id: &str, end: Option<u64>) -> Result<Credential> {
        let held = (self.held(id).await?).ok_or_else(|| not_found(id, CredentialKind::ApiKey))?;
        let _app = self.app_lock(&held.app).await;
        let mut updated = match held.kind() {
            CredentialKind::ApiKey => {
                let (record, kin) = self.key_and_kin(id).await?;
                if super::lineage::foreign_customer_id(&record.customer_id) {
                    return Err(invalid(format!(
                        "API key {id}'s customerId is another service's (AWS Marketplace): \
                         keyhook records end dates there and leaves it alone"
                    )));
                }
                let successor = (kin.iter().filter(|r| r.enabled))
                    .find_map(|r| r.link().filter(|(p, _)| p == id).map(|(_, u)| (r, u)));
                check_end(id, end, successor.map(|(r, u)| (r.id.as_str(), u)))?;
                if !self.keys.set_end(&self.aws, id, end).await? {
                    return Err(not_found(id, CredentialKind::ApiKey));
                }
                held
            }
            CredentialKind::ClientCredentials => {
                let clients = self.clients()?;
                let gone = || not_found(id, CredentialKind::ClientCredentials);
                let (current, fields) =
                    (clients.describe_fields(&self.aws, id).await?).ok_or_else(gone)?;
                let listed = clients.list(&self.aws).await?;
                let successor = listed.iter().find_map(|(succ, name)| {
                    let f = cognito::name_fields(name);
                    (f.replaces.as_deref() == Some(id)).then_some((succ.as_str(), f.until))
                });
                let successor = successor.map(|(s, u)| (s, u.unwrap_or(u64::MAX)));
                check_end(id, end, successor)?;
                let fields = NameFields {
                    expires: end,
                    ..fields
                };
                let app = app_key(&current.app);
                let name = client_name_with(&app, &current.label, &current.owner, &fields)?;
                if !clients
                    .rename(&self.aws, id, name, scopes_of(&current))
                    .await?
                {
                    return Err(gone());
                }
                Credential {
                    owner: current.owner,
                    label: current.label,
                    ..held
                }
            }
        };
        updated.expires_at_ms = end;
        self.owners.apply(Change::Upsert(Box::new(updated.clone())));
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::super::sync::tests::key;
    use super::*;

    #[test]
    fn a_credential_with_a_successor_or_a_held_predecessor_is_not_rotated() {
        let mut succ = key("s", "jo@corp.com", "aws:01", 2);
        succ.replaces = Some("p".into());
        let pred = key("p", "jo@corp.com", "aws:01", 1);
        let err = check_rotatable(&pred, Some("s"), false).unwrap_err();
        assert!(err.to_string().contains('s'), "{err}");
        let err = check_rotatable(&succ, None, true).unwrap_err();
        assert!(err.to_string().contains("revoke p first"), "{err}");
        assert!(check_rotatable(&succ, None, false).is_ok());
        assert!(check_rotatable(&pred, None, false).is_ok());
    }

    #[test]
    fn a_predecessors_end_can_only_be_brought_forward() {
        assert!(check_end("p", Some(50), Some(("s", 100))).is_ok());
        assert!(check_end("p", Some(100), Some(("s", 100))).is_ok());
        assert!(check_end("p", Some(101), Some(("s", 100))).is_err());
        assert!(check_end("p", None, Some(("s", 100))).is_err());
        assert!(check_end("p", None, None).is_ok());
        assert!(check_end("p", Some(7), None).is_ok());
    }
}
