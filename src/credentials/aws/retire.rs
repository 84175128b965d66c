//! Ending credentials on AWS: a Sensedia revoke of an app (its successor
//! and its predecessor in grace), an operator's revoke by id, the sweeper
//! (exactly once across replicas), the expired credential a create
//! replaces, and the admin listing.
//!
//! The sweep is decided by AWS itself in delete mode: of replicas deleting
//! one key or client, one is answered, the others "not found", and those
//! report nothing. In disable mode (`KEYHOOK_REVOKE=disable`) a disabled
//! key can be disabled again, so with the claim table a conditional put
//! (`Claims::sweep_turn`) decides; without one, one replica is assumed (as
//! for creates without the table).

use super::lifecycle::not_found;
use super::settings::RevokeMode;
use super::sync::Change;
use super::{claims, Inner};
use crate::credentials::{Credential, CredentialKind, Listed, Result, Revoked};

impl Inner {
    /// Revokes one credential in AWS (as `KEYHOOK_REVOKE` says; a client,
    /// with its companion key, is deleted), then drops it from the index
    /// and hands its claim on. `false` if it was already gone.
    pub(super) async fn revoke_one(&self, current: &Credential) -> Result<bool> {
        let gone = match current.kind() {
            CredentialKind::ApiKey => match self.settings.revoke {
                RevokeMode::Delete => self.keys.delete(&self.aws, &current.id).await?,
                RevokeMode::Disable => self.keys.disable(&self.aws, &current.id).await?,
            },
            CredentialKind::ClientCredentials => {
                if let Some(key_id) = current.custom.get("apiKeyId") {
                    self.keys.delete(&self.aws, key_id.expose()).await?;
                }
                self.clients()?.delete(&self.aws, &current.id).await?
            }
        };
        self.owners.apply(Change::Remove(current.id.clone()));
        self.release(current).await;
        Ok(gone)
    }

    /// Frees the app's claim `current` held, or, when its predecessor is
    /// still held (a successor revoked in the grace), hands it back to it.
    /// A claim left naming a revoked credential is released by the app's
    /// next create or a refresh instead: the revoke has happened.
    async fn release(&self, current: &Credential) {
        let Some(table) = &self.claims else { return };
        let key = claims::claim_key(current.kind(), &current.app);
        let back = current.replaces.as_ref().filter(|pred| {
            let by_id = crate::credentials::CredentialRef::Id(
                pred.to_string(),
                current.kind(),
                crate::credentials::Claim::None,
            );
            self.owners.resolve(&by_id).is_some()
        });
        let released = match back {
            Some(pred) => table
                .pass(&self.aws, &key, &current.id, pred)
                .await
                .map(drop),
            None => table.release(&self.aws, &key, &current.id).await,
        };
        if let Err(err) = released {
            tracing::warn!(credential_id = %current.id, error = %err, "could not release a revoked credential's claim; the app's next create does");
        }
    }

    /// The credentials of `current`'s app that go with it: its successor
    /// and its predecessor in grace, as the index holds them.
    pub(super) fn partners(&self, current: &Credential) -> Vec<Credential> {
        self.owners
            .of_app(current)
            .into_iter()
            .filter(|c| {
                c.id != current.id
                    && (current.replaces.as_ref() == Some(&c.id)
                        || c.replaces.as_ref() == Some(&current.id))
            })
            .collect()
    }

    /// A Sensedia revoke of `current`'s app: it and its partners; the
    /// answer names the app's credential (the successor).
    pub(super) async fn revoke_app(&self, current: Credential) -> Result<Revoked> {
        let mut unit = self.partners(&current);
        unit.push(current);
        // Predecessors first: their claim is not handed back to them.
        let ranks: Vec<(String, u8)> = (unit.iter())
            .map(|c| (c.id.clone(), unit_rank(c, &unit)))
            .collect();
        unit.sort_by_key(|c| ranks.iter().find(|(id, _)| *id == c.id).map(|r| r.1));
        let head = unit.last().cloned().expect("the unit holds current");
        let mut any = false;
        for credential in &unit {
            let gone = self.revoke_one(credential).await?;
            // The portal's revoke is audited with the head; its partner
            // here, so every credential's end is on record.
            if gone && credential.id != head.id {
                crate::telemetry::audit::by("sensedia", "revoked", credential);
            }
            any |= gone;
        }
        Ok(match any {
            true => Revoked::Revoked(Box::new(head)),
            false => Revoked::NotFound,
        })
    }

    pub(super) async fn revoke_by_id(&self, id: &str) -> Result<Revoked> {
        let current =
            (self.held(id).await?).ok_or_else(|| not_found(id, CredentialKind::ApiKey))?;
        Ok(match self.revoke_one(&current).await? {
            true => Revoked::Revoked(Box::new(current)),
            false => Revoked::NotFound,
        })
    }

    /// Before a create answers the app's credential: one past its end is
    /// revoked with its predecessor (the app's credential ended), so the
    /// create makes a fresh one.
    pub(super) async fn retire_expired(&self, head: &Credential) -> Result<()> {
        let mut unit = self.partners(head);
        unit.retain(|c| head.replaces.as_ref() == Some(&c.id));
        unit.push(head.clone());
        for credential in &unit {
            if self.revoke_one(credential).await? {
                crate::telemetry::audit::by("sweeper", "revoked", credential);
            }
        }
        Ok(())
    }

    pub(super) async fn sweep(&self, now_ms: u64) -> Result<Vec<Credential>> {
        let expired: Vec<Credential> = (self.owners.all().into_iter())
            .filter(|c| c.is_expired(now_ms))
            .collect();
        let mut revoked = Vec::new();
        for credential in expired {
            match self.sweep_one(&credential, now_ms).await {
                Ok(true) => revoked.push(credential),
                Ok(false) => {}
                // The next interval tries again: it is still expired.
                Err(err) => {
                    tracing::warn!(credential_id = %credential.id, error = %err, "could not revoke an expired credential; the next sweep tries again")
                }
            }
        }
        Ok(revoked)
    }

    /// Whether this replica's sweep revoked `credential` (another's may
    /// have: then nothing is reported).
    async fn sweep_one(&self, credential: &Credential, now_ms: u64) -> Result<bool> {
        // The index may be a refresh behind an operator who moved or
        // cleared the end date on another replica: AWS decides. An end a
        // successor's link sets can only have been brought forward since.
        let Some(fresh) = self.look_up(credential.kind(), &credential.id).await? else {
            self.owners.apply(Change::Remove(credential.id.clone()));
            return Ok(false);
        };
        let linked = self
            .partners(credential)
            .iter()
            .any(|c| c.replaces.as_deref() == Some(credential.id.as_str()));
        if !fresh.is_expired(now_ms) && !linked {
            return Ok(false);
        }
        let disabling = credential.kind() == CredentialKind::ApiKey
            && self.settings.revoke == RevokeMode::Disable;
        if let (true, Some(table)) = (disabling, &self.claims) {
            let Some(turn) = table.sweep_turn(&self.aws, &credential.id).await? else {
                self.owners.apply(Change::Remove(credential.id.clone()));
                return Ok(false);
            };
            return match self.revoke_one(credential).await {
                Ok(revoked) => Ok(revoked),
                Err(err) => {
                    // Not disabled: give the turn back, so a later sweep
                    // (this replica's or another's) tries again.
                    let _ = table.end_sweep_turn(&self.aws, &credential.id, &turn).await;
                    Err(err)
                }
            };
        }
        self.revoke_one(credential).await
    }

    pub(super) fn list(&self) -> Vec<Listed> {
        let mut listed: Vec<Listed> = (self.owners.all().into_iter())
            .map(|credential| Listed {
                credential,
                disabled: false,
            })
            .collect();
        let disabled = self.disabled.lock().expect("disabled lock").clone();
        let held: std::collections::HashSet<String> =
            listed.iter().map(|l| l.credential.id.clone()).collect();
        listed.extend(
            disabled
                .into_iter()
                .filter(|c| !held.contains(&c.id))
                .map(|credential| Listed {
                    credential,
                    disabled: true,
                }),
        );
        listed.sort_by(|a, b| super::sync::first_made(&a.credential, &b.credential));
        listed
    }
}

/// 0 for a predecessor other members replace, 1 for the head.
fn unit_rank(c: &Credential, unit: &[Credential]) -> u8 {
    u8::from(
        !unit
            .iter()
            .any(|o| o.replaces.as_deref() == Some(c.id.as_str())),
    )
}
