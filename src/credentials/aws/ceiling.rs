//! The API-key ceiling (`KEYHOOK_MAX_KEYS`) made exact across replicas with
//! the claim table.
//!
//! One item of the table (`budget#api_keys`, no app's claim) counts the API
//! keys in the region: what the last refresh listed, plus every key a
//! keyhook create has made since. A new credential claims its app and
//! counts its keys in one `TransactWriteItems` (the claim's `PutItem`, as
//! [`Claims::claim`] makes it, and an `UpdateItem` of the count, on
//! condition that it stays within the ceiling): no extra call on a create's
//! happy path, and no replica can count past the ceiling, whatever the
//! others do. A refused create deletes what it made (`create.rs`).
//!
//! The refresh sets the count to its listing plus the creates counted since
//! it read the count's version, before listing ([`Claims::recount`]): a
//! key made during the listing is counted even if the listing missed it
//! (twice if it saw it too: conservative, the next refresh corrects it).
//! Deletes and revokes free room at the next refresh. (Setting the count
//! only when no create ran during the listing would never land while
//! creates keep coming, and the count would only grow.)
//!
//! What no create counts until the next refresh: rotations' successors and
//! companion keys made outside a create, keys made by hand, and by a
//! replica of an earlier version during a rolling upgrade. An existing
//! table has no count item: a create seeds it from its replica's index,
//! the first refresh sets it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::apigateway::KeyRecord;
use super::call::Aws;
use super::claims::{Claimed, Claims, HOLDER, KEY};
use super::Inner;
use crate::budget::Refusal;
use crate::credentials::{Credential, CredentialError, CredentialKind, FailureKind, Result};

/// The count item's key.
pub(super) const COUNT: &str = "budget#api_keys";
/// The keys it counts, and how many times creates have counted into it.
const KEYS: &str = "keys";
const VERSION: &str = "version";

/// Transactions cancelled by a concurrent one on the count item (every
/// create of every replica writes it) are tried again, this many times.
const ATTEMPTS: u32 = 6;

/// Warned once per process: the role lacks `dynamodb:UpdateItem`.
static DENIED_WARNED: AtomicBool = AtomicBool::new(false);

/// The ceiling a create counts against.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ceiling {
    pub max: usize,
    /// This replica's count: what a missing count item starts from.
    pub floor: usize,
}

/// The API keys a credential just made adds: an API key, or an app
/// client's companion key (the client itself is no API key).
fn keys_made(credential: &Credential) -> u64 {
    match credential.kind() {
        CredentialKind::ApiKey => 1,
        CredentialKind::ClientCredentials => u64::from(credential.custom.contains_key("apiKeyId")),
    }
}

/// How one transaction ended.
enum Outcome {
    Applied,
    /// The app's claim is held (by the holder given, if AWS said).
    Held(Option<String>),
    /// The count is at the ceiling (the count, if AWS said).
    Full(Option<usize>),
    /// Cancelled by a concurrent transaction: try again.
    Contended,
    /// The role may not write the count (an IAM policy from before it).
    Denied,
}

fn number(item: Option<&HashMap<String, AttributeValue>>, name: &str) -> Option<u64> {
    item?.get(name)?.as_n().ok()?.parse().ok()
}

fn build_failed(err: impl std::fmt::Display) -> CredentialError {
    CredentialError::Backend {
        operation: "TransactWriteItems",
        detail: format!("request could not be built: {err}"),
    }
}

impl Claims {
    /// Claims `key` for `made`, a credential this create has just made,
    /// and counts its API keys within `ceiling`, in one transaction. A
    /// ceiling reached is [`CredentialError::LimitReached`]: nothing is
    /// written, the caller deletes `made`.
    pub(super) async fn claim_made(
        &self,
        aws: &Aws,
        key: &str,
        made: &Credential,
        ceiling: Ceiling,
    ) -> Result<Claimed> {
        let add = keys_made(made);
        if add == 0 {
            return self.claim(aws, key, &made.id).await;
        }
        for attempt in 0..ATTEMPTS {
            match self
                .transact(aws, key, &made.id, COUNT, add, ceiling)
                .await?
            {
                Outcome::Applied => return Ok(Claimed::Mine),
                Outcome::Held(holder) => {
                    let holder = match holder {
                        Some(holder) => Some(holder),
                        None => self.holder(aws, key).await?,
                    };
                    match holder {
                        // A retried transaction whose first answer was
                        // lost: that one counted.
                        Some(holder) if holder == made.id => return Ok(Claimed::Mine),
                        Some(holder) => return Ok(Claimed::Theirs(holder)),
                        // Released since (its holder revoked): again.
                        None => continue,
                    }
                }
                Outcome::Full(in_use) => {
                    return Err(CredentialError::LimitReached(Refusal::KeyCeiling {
                        in_use: in_use.unwrap_or(ceiling.max),
                        max: ceiling.max,
                    }))
                }
                Outcome::Contended => {
                    let jitter = u64::from(rand::random::<u8>() % 20);
                    let wait = (10u64 << attempt.min(4)) + jitter;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Outcome::Denied => {
                    if !DENIED_WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(table = %self.table, "the claim table cannot be updated (dynamodb:UpdateItem denied): new credentials are claimed without counting them, the key ceiling holds per replica only; grant dynamodb:UpdateItem (deploy/iam)");
                    }
                    return self.claim(aws, key, &made.id).await;
                }
            }
        }
        Err(CredentialError::Backend {
            operation: "TransactWriteItems",
            detail: "the app's claim or the key count kept changing".into(),
        })
    }

    /// One claim of `key` for `id` with `add` keys counted into
    /// `count_key`: the claim as [`Claims::claim`] puts it, the count
    /// seeded from `ceiling.floor` if missing.
    async fn transact(
        &self,
        aws: &Aws,
        key: &str,
        id: &str,
        count_key: &str,
        add: u64,
        ceiling: Ceiling,
    ) -> Result<Outcome> {
        let number = |n: i128| AttributeValue::N(n.to_string());
        let put = Put::builder()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(key.to_string()))
            .item(HOLDER, AttributeValue::S(id.to_string()))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", KEY)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_failed)?;
        let count = Update::builder()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(count_key.to_string()))
            .update_expression(
                "SET #n = if_not_exists(#n, :floor) + :add, #v = if_not_exists(#v, :zero) + :one",
            )
            .condition_expression("attribute_not_exists(#n) OR #n <= :room")
            .expression_attribute_names("#n", KEYS)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":floor", number(ceiling.floor as i128))
            .expression_attribute_values(":add", number(i128::from(add)))
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":room", number(ceiling.max as i128 - i128::from(add)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_failed)?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        let reasons = match &sent {
            Err(SdkError::ServiceError(service)) => match service.err() {
                TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                    Some(cancelled.cancellation_reasons().to_vec())
                }
                _ => None,
            },
            _ => None,
        };
        let err: CredentialError = match aws.run("TransactWriteItems", async { sent }).await {
            Ok(_) => return Ok(Outcome::Applied),
            Err(err) => err.into(),
        };
        if err.failure().map(|(_, kind)| kind) == Some(FailureKind::AwsAccessDenied) {
            return Ok(Outcome::Denied);
        }
        let Some(reasons) = reasons else {
            return Err(err);
        };
        let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
        let item = |i: usize| reasons.get(i).and_then(|r| r.item());
        if code(0) == "ConditionalCheckFailed" {
            let holder = item(0)
                .and_then(|item| item.get(HOLDER))
                .and_then(|v| v.as_s().ok())
                .cloned();
            return Ok(Outcome::Held(holder));
        }
        if code(1) == "ConditionalCheckFailed" {
            let in_use = number_of(item(1), KEYS);
            return Ok(Outcome::Full(in_use));
        }
        if (0..2).any(|i| code(i) == "TransactionConflict") {
            return Ok(Outcome::Contended);
        }
        Err(err)
    }

    /// The count item, read consistently: (keys, version); `None` if
    /// there is none yet.
    pub(super) async fn count(&self, aws: &Aws) -> Result<Option<(u64, u64)>> {
        let request = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(COUNT.to_string()))
            .consistent_read(true);
        let out = aws.run("GetItem", request.send()).await?;
        Ok(out.item().map(|item| {
            let item = Some(item);
            (
                number(item, KEYS).unwrap_or(0),
                number(item, VERSION).unwrap_or(0),
            )
        }))
    }

    /// Sets the count to `listed` (every API key in the region, as a
    /// listing begun after the count's version was read as `before`) plus
    /// the keys creates have counted since (each counted create adds one
    /// key and one version): never below what AWS holds, whichever of those
    /// keys the listing already saw. A write that races another is tried
    /// again on a fresh read; returns whether the count was set.
    pub(super) async fn recount(
        &self,
        aws: &Aws,
        listed: usize,
        before: Option<u64>,
    ) -> Result<bool> {
        for _ in 0..3 {
            let now = self.count(aws).await?.map(|(_, version)| version);
            let since = match (before, now) {
                (Some(before), Some(now)) => now.saturating_sub(before),
                // Made since by creates (from version 0), or by a refresh.
                (None, Some(now)) => now,
                (_, None) => 0,
            };
            let keys = (listed as u64).saturating_add(since);
            let mut request = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(KEY, AttributeValue::S(COUNT.to_string()))
                .item(KEYS, AttributeValue::N(keys.to_string()))
                .item(
                    VERSION,
                    AttributeValue::N(now.unwrap_or_default().to_string()),
                );
            request = match now {
                Some(now) => request
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", VERSION)
                    .expression_attribute_values(":v", AttributeValue::N(now.to_string())),
                None => request
                    .condition_expression("attribute_not_exists(#k)")
                    .expression_attribute_names("#k", KEY),
            };
            match aws.run("PutItem", request.send()).await {
                Ok(_) => return Ok(true),
                Err(err) if err.is_conflict() => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Ok(false)
    }
}

fn number_of(item: Option<&HashMap<String, AttributeValue>>, name: &str) -> Option<usize> {
    number(item, name).and_then(|n| usize::try_from(n).ok())
}

impl Inner {
    /// The ceiling this replica's creates count against.
    pub(super) fn ceiling(&self) -> Ceiling {
        Ceiling {
            max: self.max_keys,
            floor: self.owners.census(0).api_keys,
        }
    }

    /// Every API key in the region, and with the claim table the count
    /// set to them (see [`Claims::recount`]); a count that cannot be read
    /// or written is left for the next refresh.
    pub(super) async fn list_all_keys(&self) -> Result<Vec<KeyRecord>> {
        let Some(table) = &self.claims else {
            return self.keys.list_all(&self.aws).await;
        };
        // Read before the listing: what creates count after it is added.
        let before = table.count(&self.aws).await;
        let records = self.keys.list_all(&self.aws).await?;
        let counted = match before {
            Ok(before) => {
                let version = before.map(|(_, version)| version);
                table.recount(&self.aws, records.len(), version).await
            }
            Err(err) => Err(err),
        };
        match counted {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(
                    "creates kept counting while the key count was set; the next refresh sets it"
                )
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not set the API key count in the claim table; the next refresh tries again")
            }
        }
        Ok(records)
    }
}
