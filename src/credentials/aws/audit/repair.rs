//! `keyhook audit --fix`: the repairs of the findings asked for.
//!
//! The findings a person confirmed may be stale by the time they are
//! repaired (a replica's create, sweep or refresh ran meanwhile), so the
//! account is read again and a finding is repaired only if the audit still
//! finds it, with what it finds now (the copy kept, the plans, the
//! companion keys). Every repair is an audit event by actor `audit`.
//! Several repairs failing do not stop the others: the first failure is
//! returned once all were tried (a second `--fix` retries what is left).

use std::collections::HashSet;

use super::super::settings::RevokeMode;
use super::super::sync::Change;
use super::super::Inner;
use super::account::Account;
use super::findings::{self, Fix, Planned};
use crate::credentials::{
    AppId, Credential, CredentialKind, Finding, FindingKind, Origin, Repair, Result, Secret,
    AUDIT_TARGET,
};
use crate::secret::Redacted;

impl Inner {
    pub(in crate::credentials::aws) async fn repair(
        &self,
        asked: &[Finding],
    ) -> Result<Vec<Repair>> {
        let asked: HashSet<(FindingKind, &str)> = asked
            .iter()
            .filter(|f| f.kind.repairable())
            .map(|f| (f.kind, f.credential_id.as_str()))
            .collect();
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        let now = u64::try_from((self.clock)()).unwrap_or_default();
        let account = self.read_account().await?;
        let planned = findings::analyse(&account, &self.audit_rules(now));
        let mut repairs = Vec::new();
        let mut failed = None;
        for plan in planned {
            if !asked.contains(&(plan.finding.kind, plan.finding.credential_id.as_str())) {
                continue;
            }
            match self.carry_out(&plan).await {
                Ok(Some((action, detail))) => {
                    record(&plan, &account, action);
                    repairs.push(Repair {
                        kind: plan.finding.kind,
                        credential_id: plan.finding.credential_id.clone(),
                        action: action.to_string(),
                        detail,
                    });
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(credential_id = %plan.finding.credential_id, kind = plan.finding.kind.as_str(), error = %err, "an audit repair failed");
                    failed.get_or_insert(err);
                }
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(repairs),
        }
    }

    /// Repairs one finding: the action done and what it did, or `None` if
    /// there was nothing left to do (gone meanwhile, or a duplicate's claim
    /// moved to another copy).
    async fn carry_out(&self, plan: &Planned) -> Result<Option<(&'static str, String)>> {
        if let (Some((key, kept)), Some(table)) = (&plan.guard, &self.claims) {
            match table.holder(&self.aws, key).await? {
                Some(holder) if holder != *kept => {
                    tracing::info!(credential_id = %plan.finding.credential_id, "the app's claim moved since the audit read it; the duplicate is left to the next audit");
                    return Ok(None);
                }
                _ => {}
            }
        }
        let done = match &plan.fix {
            Fix::Nothing => return Ok(None),
            Fix::DeleteKey(id) => self
                .keys
                .delete(&self.aws, id)
                .await?
                .then(|| ("deleted", "deleted the API key".to_string())),
            Fix::DeleteClient { id, companions } => {
                self.delete_client(id, companions).await?.then(|| {
                    (
                        "deleted",
                        "deleted the app client and its companion keys".to_string(),
                    )
                })
            }
            Fix::RevokeKey { id, claim } => {
                let gone = match self.settings.revoke {
                    RevokeMode::Delete => self.keys.delete(&self.aws, id).await?,
                    RevokeMode::Disable => self.keys.disable(&self.aws, id).await?,
                };
                self.release_repaired(claim.as_deref(), id).await;
                let how = match self.settings.revoke {
                    RevokeMode::Delete => "deleted the API key (KEYHOOK_REVOKE=delete)",
                    RevokeMode::Disable => "disabled the API key (KEYHOOK_REVOKE=disable)",
                };
                gone.then(|| ("revoked", how.to_string()))
            }
            Fix::RevokeClient {
                id,
                companions,
                claim,
            } => {
                let gone = self.delete_client(id, companions).await?;
                self.release_repaired(claim.as_deref(), id).await;
                gone.then(|| {
                    (
                        "revoked",
                        "deleted the app client and its companion keys".to_string(),
                    )
                })
            }
            Fix::Attach { key, plans } => {
                for plan in plans {
                    self.keys.attach(&self.aws, key, plan).await?;
                }
                Some(("attached", format!("attached to {}", plans.join(", "))))
            }
            Fix::Disable(id) => self.keys.disable(&self.aws, id).await?.then(|| {
                (
                    "disabled",
                    "disabled: no usage plan to attach it to".to_string(),
                )
            }),
        };
        if let Some(("deleted" | "revoked", _)) = done {
            self.owners
                .apply(Change::Remove(plan.finding.credential_id.clone()));
        }
        Ok(done)
    }

    /// Deletes an app client, its companion keys first: a key left behind
    /// is found again by its tag, a client without its key is not.
    async fn delete_client(&self, id: &str, companions: &[String]) -> Result<bool> {
        for key in companions {
            self.keys.delete(&self.aws, key).await?;
            self.owners.apply(Change::Remove(key.clone()));
        }
        self.clients()?.delete(&self.aws, id).await
    }

    /// Releases the claim `key` if `id` still holds it: best effort, the
    /// app's next create releases a claim naming a revoked credential.
    async fn release_repaired(&self, key: Option<&str>, id: &str) {
        if let (Some(key), Some(table)) = (key, &self.claims) {
            if let Err(err) = table.release(&self.aws, key, id).await {
                tracing::warn!(credential_id = %id, error = %err, "could not release a revoked credential's claim; the app's next create does");
            }
        }
    }
}

/// The audit event of a repair: by actor `audit`, naming the credential as
/// the account held it (never a secret: none is read).
fn record(plan: &Planned, account: &Account, action: &'static str) {
    match credential(plan, account) {
        Some(credential) => crate::telemetry::audit::by("audit", action, &credential),
        None => tracing::info!(
            target: AUDIT_TARGET,
            action,
            requested_by = "audit",
            kind = %plan.kind,
            credential_id = %plan.finding.credential_id,
            finding = plan.finding.kind.as_str(),
            "credential {action}"
        ),
    }
}

fn credential(plan: &Planned, account: &Account) -> Option<Credential> {
    let id = &plan.finding.credential_id;
    let owner = crate::credentials::Email::from_stored(plan.finding.owner.as_deref()?).ok()?;
    let app = match &plan.finding.app {
        Some(app) => AppId::from_stored(app.clone()),
        None => AppId::hand_made_key(id),
    };
    let (label, origin, created_at_ms, secret) = match plan.kind {
        CredentialKind::ApiKey => {
            let key = account.keys.iter().find(|k| &k.id == id)?;
            let origin = match key
                .tags
                .get(super::super::apigateway::TAG_ORIGIN)
                .map(String::as_str)
            {
                Some("sensedia") => Origin::Sensedia,
                _ => Origin::Readme,
            };
            let secret = Secret::ApiKey {
                value: Redacted::new(String::new()),
            };
            (key.description.clone(), origin, key.created_ms, secret)
        }
        CredentialKind::ClientCredentials => {
            let secret = Secret::ClientCredentials {
                client_secret: Redacted::new(String::new()),
                scopes: Vec::new(),
            };
            (String::new(), Origin::Sensedia, 0, secret)
        }
    };
    Some(Credential {
        id: id.clone(),
        owner,
        app,
        label,
        origin,
        secret,
        usage_plans: match &plan.fix {
            Fix::Attach { plans, .. } => plans.clone(),
            _ => account
                .plans
                .get(id)
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
        },
        api_ids: Vec::new(),
        custom: Default::default(),
        created_at_ms,
        expires_at_ms: None,
        replaces: None,
    })
}
