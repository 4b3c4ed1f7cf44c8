//! Admission and leases on DynamoDB. A use is spent by one conditional
//! `UpdateItem`; a lease is taken by one `TransactWriteItems` (the token's
//! `leaseCount` up, under `maxConcurrent`, and the lease item put). Every
//! admission is pinned to the version the checks were made on.
//!
//! Retries: a write whose outcome is unknown (a timeout, a 5xx) is never
//! sent again blindly, since the first may have applied. `UpdateItem` is
//! retried only on errors that say it did not apply (throttling);
//! transactions carry an idempotency token, so the SDK's retries of one
//! cannot apply twice.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    CancellationReason, ConditionCheck, Delete, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::error::{is_throttle, store_error};
use super::item::{get_n, lease_key, n, s, token_key, Item, LEASE_SK_PREFIX};
use super::{names, DynamoStore};
use crate::dates;
use crate::store::{Admission, AdmitOutcome, RenewOutcome, StoreError};

/// Attempts of an `UpdateItem` that DynamoDB reported as not applied.
const THROTTLE_ATTEMPTS: u32 = 3;
/// Leases freed per reclaim transaction (DynamoDB allows 100 actions).
const RECLAIM_BATCH: usize = 24;
/// Rounds of a lease transaction: each lost round means another admission
/// on the same token won, so this bounds the wait under a storm.
const TRANSACTION_ROUNDS: usize = 64;

/// A short random pause before another transaction round.
async fn jitter() {
    let [b] = crate::codec::random_bytes::<1>();
    tokio::time::sleep(Duration::from_millis(1 + u64::from(b % 8))).await;
}

fn build<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Internal(e.to_string()))
}

/// The cancellation reasons of a cancelled transaction, or the error.
fn cancelled(
    e: SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Result<Vec<CancellationReason>, StoreError> {
    match e {
        SdkError::ServiceError(se) if se.err().is_transaction_canceled_exception() => {
            match se.into_err() {
                TransactWriteItemsError::TransactionCanceledException(ex) => {
                    Ok(ex.cancellation_reasons.unwrap_or_default())
                }
                _ => Ok(Vec::new()),
            }
        }
        other => Err(store_error(other)),
    }
}

fn failed_condition(reason: Option<&CancellationReason>) -> bool {
    reason.and_then(|r| r.code()) == Some("ConditionalCheckFailed")
}

impl DynamoStore {
    pub(super) async fn admit_item(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError> {
        let mut sets = Vec::new();
        let mut cond = vec!["attribute_exists(pk)", "#ver = :ver"];
        let mut nm = names(&[("#ver", "version")]);
        let mut vals = HashMap::from([(":ver".to_owned(), n(a.seen_version))]);
        if a.consume_use {
            sets.push("#rem = #rem - :one");
            cond.push("#rem > :zero");
            nm.insert("#rem".into(), "remainingUses".into());
            vals.insert(":one".into(), n(1));
            vals.insert(":zero".into(), n(0));
        }
        if let Some(now) = a.touch {
            sets.push("#lastUsed = :now");
            nm.insert("#lastUsed".into(), "lastUsedAt".into());
            vals.insert(":now".into(), n(dates::millis(now)));
        }
        let Some((lease, expiry)) = a.lease else {
            return self.spend_use(a, &sets, &cond, nm, vals).await;
        };
        sets.push("#lc = if_not_exists(#lc, :zero) + :one");
        cond.push("(attribute_not_exists(#lc) OR #lc < #cap)");
        nm.insert("#lc".into(), "leaseCount".into());
        nm.insert("#cap".into(), "maxConcurrent".into());
        vals.insert(":one".into(), n(1));
        vals.insert(":zero".into(), n(0));
        let mut lease_item = lease_key(a.id, lease);
        lease_item.insert("expiresAt".into(), n(expiry));
        lease_item.insert("ttl".into(), n(expiry / 1000 + self.retention_seconds));
        let put = build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(lease_item))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        if a.consume_use {
            // The answer reports seen - 1: exact only if nobody else spent.
            cond.push("#rem = :seenrem");
        }
        let mut seen_remaining = a.seen_remaining;
        for round in 0..TRANSACTION_ROUNDS {
            let mut vals = vals.clone();
            if let (true, Some(seen)) = (a.consume_use, seen_remaining) {
                vals.insert(":seenrem".into(), n(seen));
            }
            let update = build(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(token_key(a.id)))
                    .update_expression(format!("SET {}", sets.join(", ")))
                    .condition_expression(cond.join(" AND "))
                    .set_expression_attribute_names(Some(nm.clone()))
                    .set_expression_attribute_values(Some(vals))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .build(),
            )?;
            let r = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update).build())
                .transact_items(TransactWriteItem::builder().put(put.clone()).build())
                // One token per round: the SDK's retries of this round are
                // idempotent, a new round is a new write.
                .client_request_token(format!("{}-{round}", a.attempt_id))
                .send()
                .await;
            let reasons = match r {
                Ok(_) => {
                    let remaining = a
                        .consume_use
                        .then(|| seen_remaining.map(|r| r.saturating_sub(1)))
                        .flatten();
                    return Ok(AdmitOutcome::Admitted { remaining });
                }
                Err(e) => cancelled(e)?,
            };
            let token = reasons.first();
            if !failed_condition(token) {
                // Another transaction held the token: try again shortly.
                jitter().await;
                continue;
            }
            let old = token.and_then(|r| r.item.as_ref());
            match refusal(a, old) {
                // Another admission spent a use in between: the cancelled
                // write returned the new count, so try again with it.
                AdmitOutcome::Moved
                    if old.is_some_and(|o| get_n::<u64>(o, "version") == Some(a.seen_version)) =>
                {
                    seen_remaining = old.and_then(|o| get_n(o, "remainingUses"));
                }
                outcome => return Ok(outcome),
            }
        }
        Err(StoreError::Unavailable(
            "the token was too contended to admit".into(),
        ))
    }

    /// A use without a lease: one `UpdateItem` answering the exact count.
    async fn spend_use(
        &self,
        a: &Admission<'_>,
        sets: &[&str],
        cond: &[&str],
        nm: HashMap<String, String>,
        vals: HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    ) -> Result<AdmitOutcome, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(token_key(a.id)))
                .update_expression(format!("SET {}", sets.join(", ")))
                .condition_expression(cond.join(" AND "))
                .set_expression_attribute_names(Some(nm.clone()))
                .set_expression_attribute_values(Some(vals.clone()))
                .return_values(ReturnValue::UpdatedNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .customize()
                .config_override(
                    aws_sdk_dynamodb::config::Builder::default()
                        .retry_config(RetryConfig::disabled()),
                )
                .send()
                .await;
            match r {
                Ok(out) => {
                    let written = out.attributes.unwrap_or_default();
                    return Ok(AdmitOutcome::Admitted {
                        remaining: get_n(&written, "remainingUses"),
                    });
                }
                Err(SdkError::ServiceError(se))
                    if se.err().is_conditional_check_failed_exception() =>
                {
                    let old = match se.into_err() {
                        UpdateItemError::ConditionalCheckFailedException(ex) => ex.item,
                        _ => None,
                    };
                    return Ok(refusal(a, old.as_ref()));
                }
                Err(e) if is_throttle(&e) && attempt < THROTTLE_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    pub(super) async fn lease_items(&self, id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let mut leases = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :l)")
                .expression_attribute_values(":pk", s(format!("T#{id}")))
                .expression_attribute_values(":l", s(LEASE_SK_PREFIX))
                .projection_expression("sk, expiresAt")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in out.items.unwrap_or_default() {
                let lease = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|sk| sk.strip_prefix(LEASE_SK_PREFIX));
                if let (Some(lease), Some(expiry)) = (lease, get_n(&item, "expiresAt")) {
                    leases.push((lease.to_owned(), expiry));
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(leases),
            }
        }
    }

    pub(super) async fn reclaim_items(
        &self,
        id: &str,
        lapsed: &[(String, i64)],
    ) -> Result<bool, StoreError> {
        for batch in lapsed.chunks(RECLAIM_BATCH) {
            let mut tx = self.client.transact_write_items();
            for (lease, expiry) in batch {
                let delete = build(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(lease_key(id, lease)))
                        .condition_expression("expiresAt = :e")
                        .expression_attribute_values(":e", n(expiry))
                        .build(),
                )?;
                tx = tx.transact_items(TransactWriteItem::builder().delete(delete).build());
            }
            let update = build(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(token_key(id)))
                    .update_expression("SET leaseCount = leaseCount - :k")
                    .condition_expression("attribute_exists(pk) AND leaseCount >= :k")
                    .expression_attribute_values(":k", n(batch.len()))
                    .build(),
            )?;
            let r = tx
                .transact_items(TransactWriteItem::builder().update(update).build())
                .send()
                .await;
            if let Err(e) = r {
                cancelled(e)?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub(super) async fn renew_item(
        &self,
        id: &str,
        lease: &str,
        now_ms: i64,
        new_expiry: i64,
        seen_version: u64,
    ) -> Result<RenewOutcome, StoreError> {
        let check = build(
            ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(token_key(id)))
                .condition_expression(
                    "attribute_exists(pk) AND version = :ver AND leaseCount <= maxConcurrent",
                )
                .expression_attribute_values(":ver", n(seen_version))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build(),
        )?;
        let update = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(lease_key(id, lease)))
                .update_expression("SET expiresAt = :exp, #ttl = :ttl")
                .condition_expression("expiresAt > :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":exp", n(new_expiry))
                .expression_attribute_values(":ttl", n(new_expiry / 1000 + self.retention_seconds))
                .expression_attribute_values(":now", n(now_ms))
                .build(),
        )?;
        let r = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        let reasons = match r {
            Ok(_) => return Ok(RenewOutcome::Renewed),
            Err(e) => cancelled(e)?,
        };
        let token = reasons.first();
        if !failed_condition(token) {
            return Ok(if failed_condition(reasons.get(1)) {
                RenewOutcome::Gone
            } else {
                RenewOutcome::Moved
            });
        }
        Ok(match token.and_then(|r| r.item.as_ref()) {
            None => RenewOutcome::Gone,
            Some(old) if get_n::<u64>(old, "version") != Some(seen_version) => RenewOutcome::Moved,
            Some(_) => RenewOutcome::OverCap,
        })
    }

    pub(super) async fn release_item(&self, id: &str, lease: &str) -> Result<bool, StoreError> {
        let delete = build(
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(lease_key(id, lease)))
                .condition_expression("attribute_exists(pk)")
                .build(),
        )?;
        let update = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(token_key(id)))
                .update_expression("SET leaseCount = leaseCount - :one")
                .condition_expression("attribute_exists(pk) AND leaseCount >= :one")
                .expression_attribute_values(":one", n(1))
                .build(),
        )?;
        let r = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete.clone()).build())
            .transact_items(TransactWriteItem::builder().update(update).build())
            .send()
            .await;
        let reasons = match r {
            Ok(_) => return Ok(true),
            Err(e) => cancelled(e)?,
        };
        if failed_condition(reasons.first()) {
            return Ok(false); // already released or reclaimed
        }
        if failed_condition(reasons.get(1)) {
            // The token is gone: remove the orphan lease alone.
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(lease_key(id, lease)))
                .send()
                .await
                .map_err(store_error)?;
            return Ok(true);
        }
        Err(StoreError::Unavailable("release conflicted".into()))
    }
}

/// Why a conditional admission failed, from the item as it was.
fn refusal(a: &Admission<'_>, old: Option<&Item>) -> AdmitOutcome {
    let Some(old) = old else {
        return AdmitOutcome::NotFound;
    };
    if get_n::<u64>(old, "version") != Some(a.seen_version) {
        return AdmitOutcome::Moved;
    }
    let remaining: Option<u64> = get_n(old, "remainingUses");
    if a.consume_use && remaining.unwrap_or(0) == 0 {
        return AdmitOutcome::Exhausted;
    }
    if a.lease.is_some() {
        let count: u64 = get_n(old, "leaseCount").unwrap_or(0);
        let cap: u64 = get_n(old, "maxConcurrent").unwrap_or(0);
        if count >= cap {
            return AdmitOutcome::AtCap;
        }
    }
    // Another admission spent a use in between: decide again.
    AdmitOutcome::Moved
}
