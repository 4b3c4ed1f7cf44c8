//! Admission and leases on DynamoDB. An admission is one request: a
//! conditional `UpdateItem` spending a use, every rate limit's count and a
//! lease slot (one more in the token's lease ledger, see `limits::leases`),
//! pinned to the version the checks were made on. A failed condition
//! returns the item as it is, so deciding again costs no read.
//!
//! A renewal or release moves one lease in the ledger: one transaction of
//! the token's update and the lease's own item (where the lease is now),
//! pinned to where it was, so two moves of one lease never both apply.
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
    AttributeValue, CancellationReason, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};

use super::error::{did_not_apply, store_error};
use super::identity::identity_key;
use super::item::{
    bad, from_item, get_n, lease_bucket_name, lease_key, n, rate_count_names, token_key, Item,
    LEASE_TOTAL, REFILLED_AT,
};
use super::{names, DynamoStore};
use crate::dates;
use crate::limits::leases;
use crate::store::{Admission, AdmitOutcome, JointOutcome, LeaseMove, MoveOutcome, StoreError};

/// Attempts of an `UpdateItem` that DynamoDB reported as not applied.
const NOT_APPLIED_ATTEMPTS: u32 = 3;
/// Rounds of a lease move lost to another move of the same lease or to
/// another transaction on the token, before answering 503.
const MOVE_ROUNDS: usize = 8;

/// A random pause before another transaction round, growing with the
/// rounds lost (full jitter, 2 to 64 ms at most).
async fn backoff(round: usize) {
    let [b] = crate::codec::random_bytes::<1>();
    let cap = 2u64 << round.min(5);
    tokio::time::sleep(Duration::from_millis(1 + u64::from(b) % cap)).await;
}
fn build<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Internal(e.to_string()))
}

/// The cancellation reasons of a cancelled transaction, or the error.
pub(super) fn cancelled(
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

pub(super) fn failed_condition(reason: Option<&CancellationReason>) -> bool {
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
    fn of(a: &Admission<'_>) -> Expression {
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut cond = vec!["attribute_exists(pk)".to_owned(), "#ver = :ver".to_owned()];
        let mut names = names(&[("#ver", "version")]);
        let mut values = HashMap::from([
            (":ver".to_owned(), n(a.seen_version)),
            (":one".to_owned(), n(1)),
            (":zero".to_owned(), n(0)),
        ]);
        if let Some(u) = &a.uses {
            names.insert("#rem".into(), "remainingUses".into());
            names.insert("#refilled".into(), REFILLED_AT.into());
            match u.refills {
                Some(Some(seen)) => {
                    values.insert(":refseen".into(), n(seen));
                    cond.push("#refilled = :refseen".into());
                }
                Some(None) => cond.push("attribute_not_exists(#refilled)".into()),
                None => {}
            }
            values.insert(":cost".into(), n(u.cost));
            match u.refill {
                // Reset to the amount, this spend taken from it.
                Some((boundary, amount)) => {
                    values.insert(":refilled".into(), n(amount.saturating_sub(u.cost)));
                    values.insert(":boundary".into(), n(boundary));
                    sets.push("#rem = :refilled, #refilled = :boundary".into());
                }
                // Always written, so the answer reads what remains.
                None => {
                    values.insert(":need".into(), n(u.need()));
                    cond.push("#rem >= :need".into());
                    sets.push("#rem = #rem - :cost".into());
                }
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
                Some(_) => {
                    values.insert(format!(":rl{i}"), n(r.limit));
                    cond.push(format!("{np} = {vp} AND {nw} = {vw} AND {nk} < :rl{i}"));
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
        if let Some(l) = &a.lease {
            // One more in its bucket, the lapsed buckets seen removed (each
            // only if it holds the count seen), and `leaseTotal`, their sum,
            // still within the cap afterwards.
            let purged: u64 = l.purge.iter().map(|(_, c)| u64::from(*c)).sum();
            names.insert("#lc".into(), LEASE_TOTAL.into());
            names.insert("#lb".into(), lease_bucket_name(l.bucket));
            values.insert(":ldelta".into(), n(1 - purged as i64));
            sets.push("#lc = if_not_exists(#lc, :zero) + :ldelta".into());
            sets.push("#lb = if_not_exists(#lb, :zero) + :one".into());
            if let Some(limit) = l.limit() {
                values.insert(":llimit".into(), n(limit));
                cond.push("(attribute_not_exists(#lc) OR #lc < :llimit)".into());
            }
            purge_lapsed(&l.purge, &mut removes, &mut cond, &mut names, &mut values);
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
        let mut update = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            update = format!("{update} REMOVE {}", removes.join(", "));
        }
        let condition = cond.join(" AND ");
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

/// Removes the lapsed `purge` buckets, each only if it still holds the
/// count seen (names `#lp<i>`, values `:lpc<i>`).
fn purge_lapsed(
    purge: &[(i64, u32)],
    removes: &mut Vec<String>,
    cond: &mut Vec<String>,
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) {
    for (i, (bucket, count)) in purge.iter().enumerate() {
        names.insert(format!("#lp{i}"), lease_bucket_name(*bucket));
        values.insert(format!(":lpc{i}"), n(count));
        removes.push(format!("#lp{i}"));
        cond.push(format!("#lp{i} = :lpc{i}"));
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
    /// One `UpdateItem`, answering the counts it wrote. The SDK does not
    /// retry it (a retry after a lost answer would spend twice); only an
    /// error that says it did not apply (a throttle, a renewal's or
    /// release's transaction in flight on the token) is sent again.
    pub(super) async fn admit_item(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError> {
        let e = Expression::of(a);
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
                Err(e) if did_not_apply(&e) && attempt < NOT_APPLIED_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    /// A token's admission and its identity's, in one transaction: each
    /// update under its own condition, as `admit_item`'s. A transaction
    /// returns no values, so the answer carries what the admission decided
    /// (see `Admission::as_decided`); a failed condition returns the item
    /// as it is, to decide again on without a read. Its idempotency token
    /// lets the SDK resend it without spending twice.
    pub(super) async fn admit_joint_items(
        &self,
        token: &Admission<'_>,
        identity: &Admission<'_>,
    ) -> Result<JointOutcome, StoreError> {
        let update = |a: &Admission<'_>, key: Item| -> Result<TransactWriteItem, StoreError> {
            let e = Expression::of(a);
            let u = build(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key))
                    .update_expression(e.update)
                    .condition_expression(e.condition)
                    .set_expression_attribute_names(Some(e.names))
                    .set_expression_attribute_values(Some(e.values))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .build(),
            )?;
            Ok(TransactWriteItem::builder().update(u).build())
        };
        let token_write = update(token, token_key(token.id))?;
        let identity_write = update(identity, identity_key(identity.id))?;
        for round in 0..MOVE_ROUNDS {
            let r = self
                .client
                .transact_write_items()
                .transact_items(token_write.clone())
                .transact_items(identity_write.clone())
                .client_request_token(crate::codec::encode(&crate::codec::random_bytes::<10>()))
                .send()
                .await;
            let reasons = match r {
                Ok(_) => {
                    return Ok(JointOutcome::Admitted {
                        token: token.as_decided(),
                        identity: identity.as_decided(),
                    })
                }
                Err(e) => cancelled(e)?,
            };
            if failed_condition(reasons.first()) {
                let now = reasons.first().and_then(|r| r.item.as_ref());
                return Ok(JointOutcome::TokenChanged(
                    now.map(from_item).transpose()?.map(Box::new),
                ));
            }
            if failed_condition(reasons.get(1)) {
                let now = reasons.get(1).and_then(|r| r.item.as_ref());
                return Ok(JointOutcome::IdentityChanged(
                    now.map(super::identity::from_item)
                        .transpose()?
                        .map(Box::new),
                ));
            }
            // Another transaction held one of the items: try again.
            backoff(round).await;
        }
        Err(StoreError::Unavailable(
            "the identity was too contended to admit".into(),
        ))
    }

    /// Where a lease is now: the bucket its own item records (0: released),
    /// or, with no item, the bucket it was first taken in.
    async fn lease_bucket(&self, m: &LeaseMove<'_>) -> Result<(i64, bool), StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(lease_key(m.id, m.lease)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(match out.item.as_ref().and_then(|i| get_n(i, "bucket")) {
            Some(b) => (b, true),
            None => (m.first_bucket, false),
        })
    }

    pub(super) async fn move_lease_item(
        &self,
        m: &LeaseMove<'_>,
    ) -> Result<MoveOutcome, StoreError> {
        for round in 0..MOVE_ROUNDS {
            let (from, recorded) = self.lease_bucket(m).await?;
            if !leases::is_live(from, m.now) {
                return Ok(MoveOutcome::Gone); // released (0) or lapsed
            }
            let to = m.to.map(|to| to.max(from));
            let mut tx = self
                .client
                .transact_write_items()
                .transact_items(self.ledger_move(m, from, to)?)
                .transact_items(self.lease_record(m, from, recorded, to)?);
            if let Some((identity, r)) = m.identity_refund {
                tx = tx.transact_items(self.identity_refund(identity, r)?);
            }
            let r = tx
                .client_request_token(crate::codec::encode(&crate::codec::random_bytes::<10>()))
                .send()
                .await;
            let reasons = match r {
                Ok(_) => return Ok(MoveOutcome::Moved { to }),
                Err(e) => cancelled(e)?,
            };
            let token = reasons.first();
            if failed_condition(token) {
                let from_count = |old: &Item| get_n::<u32>(old, &lease_bucket_name(from));
                return Ok(match token.and_then(|r| r.item.as_ref()) {
                    None => MoveOutcome::Gone,
                    Some(old)
                        if m.seen_version
                            .is_some_and(|v| get_n(old, "version") != Some(v)) =>
                    {
                        MoveOutcome::Stale
                    }
                    // Its bucket lapsed and a write removed it.
                    Some(old) if from_count(old).unwrap_or(0) == 0 => MoveOutcome::Gone,
                    // A lapsed bucket seen changed meanwhile.
                    Some(_) => MoveOutcome::Stale,
                });
            }
            if failed_condition(reasons.get(2)) {
                // The identity's uses moved since they were read.
                return Ok(MoveOutcome::Stale);
            }
            // The lease moved meanwhile, or another transaction held the
            // token: look again.
            backoff(round).await;
        }
        Err(StoreError::Unavailable(
            "the lease was too contended to move".into(),
        ))
    }

    /// The token's side of a lease move: one fewer in `from`, one more in
    /// `to` (a release also lowers `leaseTotal`), only if `from` still
    /// counts a lease (a write removes it once lapsed), and the lapsed
    /// buckets seen removed as an acquire removes them.
    fn ledger_move(
        &self,
        m: &LeaseMove<'_>,
        from: i64,
        to: Option<i64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut cond = "attribute_exists(pk) AND #from >= :one".to_owned();
        let mut names = names(&[("#from", &lease_bucket_name(from))]);
        let mut values = HashMap::from([(":one".to_owned(), n(1))]);
        if let Some(v) = m.seen_version {
            cond.push_str(" AND #ver = :ver");
            names.insert("#ver".into(), "version".into());
            values.insert(":ver".into(), n(v));
        }
        let mut sets = Vec::new();
        if let Some(r) = m.refund {
            // Given back within the ceiling, pinned to what remains.
            names.insert("#rem".into(), "remainingUses".into());
            values.insert(":refund".into(), n(r.uses));
            values.insert(":refundmax".into(), n(r.ceiling.saturating_sub(r.uses)));
            sets.push("#rem = #rem + :refund");
            cond.push_str(" AND #rem <= :refundmax");
        }
        match to {
            None => sets.push("#from = #from - :one"),
            Some(to) if to == from => sets.push("#from = #from"),
            Some(to) => {
                names.insert("#to".into(), lease_bucket_name(to));
                values.insert(":zero".into(), n(0));
                sets.push("#from = #from - :one, #to = if_not_exists(#to, :zero) + :one");
            }
        }
        // A release and the lapsed buckets removed lower the total.
        let removed: u64 = m.purge.iter().map(|(_, c)| u64::from(*c)).sum();
        let drop = removed + u64::from(to.is_none());
        if drop > 0 {
            names.insert("#lc".into(), LEASE_TOTAL.into());
            values.insert(":ldrop".into(), n(drop));
            sets.push("#lc = #lc - :ldrop");
        }
        let mut removes = Vec::new();
        let mut conds = vec![cond];
        purge_lapsed(&m.purge, &mut removes, &mut conds, &mut names, &mut values);
        let cond = conds.join(" AND ");
        let mut update = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            update = format!("{update} REMOVE {}", removes.join(", "));
        }
        let update = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(token_key(m.id)))
                .update_expression(update)
                .condition_expression(cond)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A settling release's refund to the token's identity, within its
    /// ceiling and pinned to what remains, as the token's own.
    fn identity_refund(
        &self,
        identity: &str,
        r: crate::store::Refund,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(identity_key(identity)))
                .update_expression("SET #rem = #rem + :refund")
                .condition_expression("attribute_exists(pk) AND #rem <= :refundmax")
                .expression_attribute_names("#rem", "remainingUses")
                .expression_attribute_values(":refund", n(r.uses))
                .expression_attribute_values(":refundmax", n(r.ceiling.saturating_sub(r.uses)))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The lease's own item: the bucket it is in now (0: released), put only
    /// if it still records `from` (or, never moved, records nothing).
    fn lease_record(
        &self,
        m: &LeaseMove<'_>,
        from: i64,
        recorded: bool,
        to: Option<i64>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item = lease_key(m.id, m.lease);
        item.insert("bucket".into(), n(to.unwrap_or(0)));
        // Kept while the lease could otherwise be taken for live.
        item.insert("ttl".into(), n(to.unwrap_or(from) + self.retention_seconds));
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = if recorded {
            put.condition_expression("#b = :from")
                .expression_attribute_names("#b", "bucket")
                .expression_attribute_values(":from", n(from))
        } else {
            put.condition_expression("attribute_not_exists(pk)")
        };
        Ok(TransactWriteItem::builder()
            .put(build(put.build())?)
            .build())
    }
}
