//! Admission and leases on DynamoDB. An admission is one request: a
//! conditional `UpdateItem` spending a use and every rate limit's count,
//! or, to take a lease, one `TransactWriteItems` (the same update, with
//! `leaseCount` up under `maxConcurrent`, and the lease item put). Every
//! admission is pinned to the version the checks were made on; a failed
//! condition returns the item as it is, so deciding again costs no read.
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
    AttributeValue, CancellationReason, ConditionCheck, Delete, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::error::{is_throttle, store_error};
use super::item::{
    bad, from_item, get_n, lease_key, n, rate_count_names, s, token_key, Item, LEASE_SK_PREFIX,
};
use super::{names, DynamoStore};
use crate::dates;
use crate::store::{Admission, AdmitOutcome, RenewOutcome, StoreError};

/// Attempts of an `UpdateItem` that DynamoDB reported as not applied.
const THROTTLE_ATTEMPTS: u32 = 3;
/// Leases freed per reclaim transaction (DynamoDB allows 100 actions).
const RECLAIM_BATCH: usize = 24;
/// How long a lease transaction keeps trying while other transactions hold
/// the token (each lost round means another admission got there first);
/// past it the validate answers 503. Inside the function's 10 s timeout.
const TRANSACTION_PATIENCE: Duration = Duration::from_secs(5);

/// A random pause before another transaction round, growing with the
/// rounds lost (full jitter, 2 to 64 ms at most), so a storm of acquirers
/// spreads out instead of colliding again in lockstep.
async fn backoff(round: usize) {
    let [b] = crate::codec::random_bytes::<1>();
    let cap = 2u64 << round.min(5);
    tokio::time::sleep(Duration::from_millis(1 + u64::from(b) % cap)).await;
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

/// The admission's one conditional update: its update and condition
/// expressions with their names and values.
struct Expression {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expression {
    /// `pinned`: the counts must equal those read (a transaction returns
    /// nothing, so the answer is computed from them); otherwise only below
    /// their limits (an `UpdateItem` returns the counts it wrote).
    fn of(a: &Admission<'_>, pinned: bool) -> Expression {
        let mut sets = Vec::new();
        let mut cond = vec!["attribute_exists(pk)".to_owned(), "#ver = :ver".to_owned()];
        let mut names = names(&[("#ver", "version")]);
        let mut values = HashMap::from([
            (":ver".to_owned(), n(a.seen_version)),
            (":one".to_owned(), n(1)),
            (":zero".to_owned(), n(0)),
        ]);
        if a.consume_use {
            sets.push("#rem = #rem - :one".to_owned());
            names.insert("#rem".into(), "remainingUses".into());
            match (pinned, a.seen_remaining) {
                (true, Some(seen)) => {
                    cond.push("#rem = :seenrem".into());
                    values.insert(":seenrem".into(), n(seen));
                }
                _ => cond.push("#rem > :zero".into()),
            }
        }
        for (i, r) in a.rates.iter().enumerate() {
            let [p, w, k] = rate_count_names(&r.name);
            let (np, nw, nk) = (format!("#rp{i}"), format!("#rw{i}"), format!("#rn{i}"));
            let (vp, vw) = (format!(":rp{i}"), format!(":rw{i}"));
            names.insert(np.clone(), p);
            names.insert(nw.clone(), w);
            names.insert(nk.clone(), k);
            values.insert(vp.clone(), n(r.period));
            values.insert(vw.clone(), n(r.window));
            match r.seen {
                // The window under way: below the limit, one more.
                Some(seen) => {
                    let bound = if pinned {
                        values.insert(format!(":rs{i}"), n(seen));
                        format!("{nk} = :rs{i}")
                    } else {
                        values.insert(format!(":rl{i}"), n(r.limit));
                        format!("{nk} < :rl{i}")
                    };
                    cond.push(format!("{np} = {vp} AND {nw} = {vw} AND {bound}"));
                    sets.push(format!("{nk} = {nk} + :one"));
                }
                // A new window: only if nobody started it (or a later one).
                None => {
                    cond.push(format!(
                        "(attribute_not_exists({nk}) OR {np} <> {vp} OR {nw} < {vw})"
                    ));
                    sets.push(format!("{np} = {vp}, {nw} = {vw}, {nk} = :one"));
                }
            }
        }
        if a.lease.is_some() {
            sets.push("#lc = if_not_exists(#lc, :zero) + :one".into());
            cond.push("(attribute_not_exists(#lc) OR #lc < #cap)".into());
            names.insert("#lc".into(), "leaseCount".into());
            names.insert("#cap".into(), "maxConcurrent".into());
        }
        if let Some(now) = a.touch {
            sets.push("#lastUsed = :now".into());
            names.insert("#lastUsed".into(), "lastUsedAt".into());
            values.insert(":now".into(), n(dates::millis(now)));
        }
        if sets.is_empty() {
            // Nothing to spend still checks the item (and bumps nothing).
            sets.push("#ver = #ver".into());
        }
        let (update, condition) = (format!("SET {}", sets.join(", ")), cond.join(" AND "));
        // DynamoDB refuses names and values that no expression uses.
        let used = |k: &String| update.contains(k.as_str()) || condition.contains(k.as_str());
        names.retain(|k, _| used(k));
        values.retain(|k, _| used(k));
        Expression {
            update,
            condition,
            names,
            values,
        }
    }
}

/// The item returned by a failed condition, as a record.
fn changed(old: Option<Item>) -> Result<AdmitOutcome, StoreError> {
    match old {
        None => Ok(AdmitOutcome::Changed(None)),
        Some(item) => Ok(AdmitOutcome::Changed(Some(Box::new(from_item(&item)?)))),
    }
}

impl DynamoStore {
    pub(super) async fn admit_item(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError> {
        match a.lease {
            None => self.admit_by_update(a).await,
            Some(lease) => self.admit_with_lease(a, lease).await,
        }
    }

    /// No lease: one `UpdateItem`, answering the counts it wrote. The SDK
    /// does not retry it (a retry after a lost answer would spend twice);
    /// only a throttle, which says it did not apply, is sent again.
    async fn admit_by_update(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError> {
        let e = Expression::of(a, false);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(token_key(a.id)))
                .update_expression(&e.update)
                .condition_expression(&e.condition)
                .set_expression_attribute_names(Some(e.names.clone()))
                .set_expression_attribute_values(Some(e.values.clone()))
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
                    let rate_used = a
                        .rates
                        .iter()
                        .map(|r| {
                            let [_, _, k] = rate_count_names(&r.name);
                            get_n(&written, &k).ok_or_else(|| bad(&k))
                        })
                        .collect::<Result<_, _>>()?;
                    return Ok(AdmitOutcome::Admitted {
                        remaining: get_n(&written, "remainingUses"),
                        rate_used,
                    });
                }
                Err(SdkError::ServiceError(se))
                    if se.err().is_conditional_check_failed_exception() =>
                {
                    return changed(match se.into_err() {
                        UpdateItemError::ConditionalCheckFailedException(ex) => ex.item,
                        _ => None,
                    });
                }
                Err(e) if is_throttle(&e) && attempt < THROTTLE_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    /// A lease: one `TransactWriteItems` (the token's update, pinned to
    /// the counts read, and the lease item). Each round carries its own
    /// idempotency token, so the SDK's retries of a round apply once.
    async fn admit_with_lease(
        &self,
        a: &Admission<'_>,
        (lease, expiry): (&str, i64),
    ) -> Result<AdmitOutcome, StoreError> {
        let e = Expression::of(a, true);
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
        let update = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(token_key(a.id)))
                .update_expression(&e.update)
                .condition_expression(&e.condition)
                .set_expression_attribute_names(Some(e.names))
                .set_expression_attribute_values(Some(e.values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build(),
        )?;
        let deadline = tokio::time::Instant::now() + TRANSACTION_PATIENCE;
        for round in 0.. {
            if tokio::time::Instant::now() > deadline {
                break;
            }
            let r = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update.clone()).build())
                .transact_items(TransactWriteItem::builder().put(put.clone()).build())
                .client_request_token(format!("{}-{round}", a.attempt_id))
                .send()
                .await;
            let reasons = match r {
                Ok(_) => {
                    return Ok(AdmitOutcome::Admitted {
                        remaining: a
                            .consume_use
                            .then(|| a.seen_remaining.map(|r| r.saturating_sub(1)))
                            .flatten(),
                        rate_used: a.rates.iter().map(|r| r.seen.unwrap_or(0) + 1).collect(),
                    })
                }
                Err(e) => cancelled(e)?,
            };
            let token = reasons.first();
            if failed_condition(token) {
                return changed(token.and_then(|r| r.item.clone()));
            }
            // Another transaction held the token: try again shortly.
            backoff(round).await;
        }
        Err(StoreError::Unavailable(
            "the token was too contended to admit".into(),
        ))
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
