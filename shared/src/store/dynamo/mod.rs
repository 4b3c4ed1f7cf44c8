//! The DynamoDB store: one table, conditional writes wherever a race could
//! lose data. Keys:
//! - token:       pk `T#<id>`, sk `T`; GSI `byOwner`: gsi1pk `O#<owner>`,
//!   gsi1sk `<created ms>#<id>` (newest first with a reverse query)
//! - idempotency: pk `I#<hmac(owner, key)>`, sk `I`, removed by TTL
//! - lease:       pk `T#<id>`, sk `L#<lease id>`, `bucket`, removed by TTL:
//!   written only by renewals and releases; the leases are counted in the
//!   token's own ledger, `leaseTotal` and `lx_<bucket>` (see `admit`)
//! - the index projects only what list filters on (`INCLUDE`): never the
//!   secret hash, and nothing a validate writes, so an admit never
//!   rewrites it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use time::OffsetDateTime;

use super::*;
use crate::audit::{AuditQuery, AuditRecord};
use crate::dates;

mod admit;
mod audit;
mod client;
mod error;
#[cfg(any(test, feature = "testing"))]
pub mod iam;
mod identity;
mod item;
pub mod stream;

pub use client::sdk_config;
use error::store_error;
pub use item::Item;
use item::{bad, client_attrs, from_item, get_n, get_s, n, req_s, s, to_item, token_key};

pub const INDEX: &str = "byOwner";

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    retention_seconds: i64,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, retention_seconds: i64) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            retention_seconds,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens the connection during init, so the first request does not pay
    /// for DNS, TCP and TLS. Failure is harmless: the request will retry.
    pub async fn warm_up(&self) {
        let _ = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(token_key("warmup")))
            .projection_expression("pk")
            .send()
            .await;
    }

    /// A holder's revocation of a token that points at an identity: the
    /// token and its link in one write, conditioned on the secret and the
    /// identity seen.
    async fn delete_linked_by_secret(
        &self,
        found: &TokenRecord,
        identity: &str,
        secret_hash: &str,
    ) -> Result<Deletion, StoreError> {
        if found.secret_hash != secret_hash {
            return Ok(Deletion::Kept(Some(Box::new(found.clone()))));
        }
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(token_key(&found.id)))
            .condition_expression("#hash = :hash AND #identity = :identity")
            .expression_attribute_names("#hash", "secretHash")
            .expression_attribute_names("#identity", "identityId")
            .expression_attribute_values(":hash", s(secret_hash))
            .expression_attribute_values(":identity", s(identity))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let writes = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.unlink(identity, &found.id)?,
        ];
        match self.write_all(writes).await? {
            Ok(()) => Ok(Deletion::Deleted(Box::new(found.clone()))),
            Err(reasons) => {
                let now = reasons.first().and_then(|r| r.item.as_ref());
                match now.map(from_item).transpose()? {
                    // Changed meanwhile: the caller decides again on it.
                    Some(t) if t.secret_hash == secret_hash => Err(StoreError::Unavailable(
                        "the token changed during its revocation".into(),
                    )),
                    t => Ok(Deletion::Kept(t.map(Box::new))),
                }
            }
        }
    }

    /// One page of the `byOwner` index under `partition` (an owner's
    /// tokens or identities), newest first, after the position `after`:
    /// the ids it holds, and the position to go on from when more may
    /// follow.
    pub(super) async fn owner_index_page(
        &self,
        partition: String,
        limit: usize,
        after: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(INDEX)
            .scan_index_forward(false)
            .limit(limit as i32)
            .expression_attribute_values(":o", s(partition));
        q = match after {
            Some(pos) => q
                .key_condition_expression("gsi1pk = :o AND gsi1sk < :after")
                .expression_attribute_values(":after", s(pos)),
            None => q.key_condition_expression("gsi1pk = :o"),
        };
        let out = q.send().await.map_err(store_error)?;
        let items = out.items.unwrap_or_default();
        let next = out
            .last_evaluated_key
            .is_some()
            .then(|| {
                items
                    .last()
                    .and_then(|i| get_s(i, "gsi1sk"))
                    .map(str::to_owned)
            })
            .flatten();
        let ids = items
            .iter()
            .filter_map(|i| get_s(i, "id"))
            .map(str::to_owned)
            .collect();
        Ok((ids, next))
    }

    /// The items of `keys` (distinct), read strongly consistently in one
    /// `BatchGetItem`. DynamoDB may leave keys unprocessed under load: they
    /// are asked again, a few times, then the read gives up as unavailable.
    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut items = Vec::new();
        for _ in 0..4 {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, pending.clone())
                .send()
                .await
                .map_err(store_error)?;
            items.extend(
                out.responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default(),
            );
            match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                Some(rest) if !rest.keys.is_empty() => pending = rest,
                _ => return Ok(items),
            }
        }
        Err(StoreError::Unavailable(
            "batch read left keys unprocessed".into(),
        ))
    }

    /// One transaction of `writes`, under an idempotency token of its own,
    /// so the SDK's resend after a lost answer applies it once:
    /// `Err(reasons)` when it was cancelled (a condition failed, or
    /// another transaction held an item).
    pub(super) async fn write_all(
        &self,
        writes: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<aws_sdk_dynamodb::types::CancellationReason>>, StoreError> {
        let r = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .client_request_token(crate::codec::encode(&crate::codec::random_bytes::<10>()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Ok(())),
            Err(e) => admit::cancelled(e).map(Err),
        }
    }

    /// The idempotency record's put, in its create's transaction: only
    /// where no live record of that key is.
    fn idempotency_put(
        &self,
        rec: &TokenRecord,
        idem: &IdempotencyRecord,
    ) -> Result<TransactWriteItem, StoreError> {
        let idem_item: Item = HashMap::from([
            ("pk".into(), s(format!("I#{}", idem.key))),
            ("sk".into(), s("I")),
            ("tokenId".into(), s(&idem.token_id)),
            ("fingerprint".into(), s(&idem.fingerprint)),
            ("snapshot".into(), s(&idem.snapshot)),
            ("expiresAt".into(), n(idem.expires_at)),
            ("ttl".into(), n(idem.expires_at)),
        ]);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(idem_item))
            .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
            .expression_attribute_values(":now", n(rec.created_at.unix_timestamp()))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Runs a conditional update: `Ok(attributes it wrote)`, or on a failed
    /// condition `Err(the item as it was)` (`Err(None)` if there was none).
    async fn conditional_update(
        &self,
        key: Item,
        update: String,
        condition: String,
        names: HashMap<String, String>,
        values: HashMap<String, AttributeValue>,
    ) -> Result<Result<Item, Option<Item>>, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => Ok(Ok(out.attributes.unwrap_or_default())),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                match se.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(ex) => Ok(Err(ex.item)),
                    _ => Ok(Err(None)),
                }
            }
            Err(e) => Err(store_error(e)),
        }
    }

    /// An update of the token that applies only while it is at `seen`'s
    /// version (and exists): `:seen` and `#ver` are added here.
    async fn update_at_version(
        &self,
        seen: &TokenRecord,
        update: String,
        mut names: HashMap<String, String>,
        mut values: HashMap<String, AttributeValue>,
    ) -> Result<Result<Item, Option<Item>>, StoreError> {
        names.insert("#ver".into(), "version".into());
        values.insert(":seen".into(), n(seen.version));
        self.conditional_update(
            token_key(&seen.id),
            update,
            "attribute_exists(pk) AND #ver = :seen".into(),
            names,
            values,
        )
        .await
    }
}

/// A write of an item's client attributes pinned to the version seen
/// and, when its uses change (`pin_uses`), to what remained and the last
/// refill seen, so that no admission's spend is lost to the patch.
pub(super) struct PinnedReplace {
    pub update: String,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl PinnedReplace {
    pub fn of(
        attrs: Vec<(&'static str, Option<AttributeValue>)>,
        seen_version: u64,
        pin_uses: Option<&crate::limits::Limits>,
    ) -> PinnedReplace {
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut nm = HashMap::new();
        let mut vals = HashMap::new();
        for (i, (k, v)) in attrs.into_iter().enumerate() {
            nm.insert(format!("#a{i}"), k.to_owned());
            match v {
                Some(v) => {
                    sets.push(format!("#a{i} = :a{i}"));
                    vals.insert(format!(":a{i}"), v);
                }
                None => removes.push(format!("#a{i}")),
            }
        }
        let mut update = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            update.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        nm.insert("#ver".into(), "version".into());
        vals.insert(":seenver".into(), n(seen_version));
        let mut cond = "#ver = :seenver".to_owned();
        if let Some(seen) = pin_uses {
            nm.insert("#rem".into(), "remainingUses".into());
            match seen.remaining_uses {
                Some(r) => {
                    cond.push_str(" AND #rem = :seenrem");
                    vals.insert(":seenrem".into(), n(r));
                }
                None => cond.push_str(" AND attribute_not_exists(#rem)"),
            }
            // Pinned to the refill seen too: one since resets what remains.
            nm.insert("#refilled".into(), item::REFILLED_AT.into());
            match seen.refilled_at {
                Some(at) => {
                    cond.push_str(" AND #refilled = :seenrefilled");
                    vals.insert(":seenrefilled".into(), n(at));
                }
                None => cond.push_str(" AND attribute_not_exists(#refilled)"),
            }
        }
        PinnedReplace {
            update,
            condition: cond,
            names: nm,
            values: vals,
        }
    }
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[async_trait]
impl Store for DynamoStore {
    async fn put_new(
        &self,
        rec: &TokenRecord,
        idem: Option<&IdempotencyRecord>,
        audit: &AuditRecord,
    ) -> Result<CreateOutcome, StoreError> {
        let token_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(rec, self.retention_seconds)))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut writes = vec![
            TransactWriteItem::builder().put(token_put).build(),
            self.audit_put(audit)?,
        ];
        if let Some(idem) = idem {
            writes.push(self.idempotency_put(rec, idem)?);
        }
        if let Some(identity) = &rec.identity_id {
            writes.extend(self.link(identity, &rec.owner, &rec.id)?);
        }
        let reasons = match self.write_all(writes).await? {
            Ok(()) => return Ok(CreateOutcome::Created),
            Err(reasons) => reasons,
        };
        // The same create sent again: the token already holds this very
        // secret, and nothing of this send applied.
        let existing = reasons.first().and_then(|r| r.item.as_ref());
        if existing.is_some_and(|item| item::get_s(item, "secretHash") == Some(&rec.secret_hash)) {
            return Ok(CreateOutcome::Created);
        }
        if rec.identity_id.is_some() && admit::failed_condition(reasons.last()) {
            return Ok(CreateOutcome::NoSuchIdentity);
        }
        let Some(idem) = idem else {
            return Err(StoreError::Unavailable("the create conflicted".into()));
        };
        // A concurrent create with the same key won the race.
        match self
            .idempotency(&idem.key, rec.created_at.unix_timestamp())
            .await?
        {
            Some(prev) if prev.token_id == rec.id => Ok(CreateOutcome::Created),
            Some(prev) => Ok(CreateOutcome::Replay(prev)),
            None => Err(StoreError::Unavailable(
                "idempotent create conflicted".into(),
            )),
        }
    }

    async fn idempotency(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("I#{key}")))
            .key("sk", s("I"))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let rec = IdempotencyRecord {
            key: key.to_owned(),
            token_id: req_s(&item, "tokenId")?,
            fingerprint: req_s(&item, "fingerprint")?,
            snapshot: req_s(&item, "snapshot")?,
            expires_at: get_n(&item, "expiresAt").ok_or_else(|| bad("expiresAt"))?,
        };
        Ok((rec.expires_at > now).then_some(rec))
    }

    async fn get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(token_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<TokenRecord>>, StoreError> {
        // BatchGetItem refuses duplicate keys: ask each id once.
        let mut unique: Vec<&str> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let keys = unique.iter().map(|id| token_key(id)).collect();
        let mut found: HashMap<String, TokenRecord> = HashMap::new();
        for item in self.batch_get(keys).await? {
            let rec = from_item(&item)?;
            found.insert(rec.id.clone(), rec);
        }
        Ok(ids.iter().map(|id| found.get(*id).cloned()).collect())
    }

    async fn list(
        &self,
        owner: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page, StoreError> {
        let (ids, next) = self
            .owner_index_page(format!("O#{owner}"), limit, after)
            .await?;
        // The index holds only list's filter attributes: the page's tokens
        // are read whole from the table, in one consistent batch.
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let records = if ids.is_empty() {
            Vec::new()
        } else {
            self.get_many(&ids).await?
        };
        Ok(Page {
            // A token deleted between the two reads is simply gone.
            items: records.into_iter().flatten().collect(),
            next,
        })
    }

    async fn replace(
        &self,
        seen: &TokenRecord,
        new: &TokenRecord,
        audit: &AuditRecord,
    ) -> Result<Replaced, StoreError> {
        let uses_change = seen.limits.uses_differ(&new.limits);
        let e = PinnedReplace::of(
            client_attrs(new, self.retention_seconds, uses_change),
            seen.version,
            uses_change.then_some(&seen.limits),
        );
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(token_key(&seen.id)))
            .update_expression(e.update)
            .condition_expression(format!("attribute_exists(pk) AND {}", e.condition))
            .set_expression_attribute_names(Some(e.names))
            .set_expression_attribute_values(Some(e.values))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut writes = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_put(audit)?,
        ];
        // A change of identity moves the token's link in the same write.
        let linking = new.identity_id != seen.identity_id && new.identity_id.is_some();
        if new.identity_id != seen.identity_id {
            if let Some(old) = &seen.identity_id {
                writes.push(self.unlink(old, &seen.id)?);
            }
            if let Some(identity) = &new.identity_id {
                writes.extend(self.link(identity, &new.owner, &seen.id)?);
            }
        }
        match self.write_all(writes).await? {
            Ok(()) => Ok(Replaced::Done),
            Err(reasons) if admit::failed_condition(reasons.first()) => Ok(Replaced::Moved),
            Err(reasons) if linking && admit::failed_condition(reasons.last()) => {
                Ok(Replaced::NoSuchIdentity)
            }
            Err(_) => Err(StoreError::Unavailable("the patch conflicted".into())),
        }
    }

    async fn roll(
        &self,
        seen: &TokenRecord,
        rolled: &TokenRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let nm = names(&[
            ("#hash", "secretHash"),
            ("#gen", item::SECRET_GENERATION),
            ("#start", "start"),
            ("#upd", "updatedAt"),
            ("#prev", "prevSecretHash"),
            ("#prevEnd", "prevSecretExpiresAt"),
        ]);
        let mut vals = HashMap::from([
            (":hash".to_owned(), s(&rolled.secret_hash)),
            (":gen".to_owned(), n(rolled.secret_generation)),
            (":start".to_owned(), s(&rolled.start)),
            (":ver".to_owned(), n(rolled.version)),
            (":upd".to_owned(), n(dates::millis(rolled.updated_at))),
        ]);
        let set = "SET #hash = :hash, #gen = :gen, #start = :start, #ver = :ver, #upd = :upd";
        let update = match (&rolled.prev_secret_hash, rolled.prev_secret_expires_at) {
            (Some(prev), Some(end)) => {
                vals.insert(":prev".into(), s(prev));
                vals.insert(":prevEnd".into(), n(dates::millis(end)));
                format!("{set}, #prev = :prev, #prevEnd = :prevEnd")
            }
            _ => format!("{set} REMOVE #prev, #prevEnd"),
        };
        let mut nm = nm;
        nm.insert("#ver".into(), "version".into());
        vals.insert(":seen".into(), n(seen.version));
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(token_key(&seen.id)))
            .update_expression(update)
            .condition_expression("attribute_exists(pk) AND #ver = :seen")
            .set_expression_attribute_names(Some(nm))
            .set_expression_attribute_values(Some(vals))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let writes = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_put(audit)?,
        ];
        Ok(self.write_all(writes).await?.is_ok())
    }

    async fn delete(&self, seen: &TokenRecord, audit: &AuditRecord) -> Result<bool, StoreError> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .set_key(Some(token_key(&seen.id)))
            .condition_expression("attribute_exists(pk) AND #ver = :seen")
            .expression_attribute_names("#ver", "version")
            .expression_attribute_values(":seen", n(seen.version))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut writes = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.audit_put(audit)?,
        ];
        // Its link goes with it.
        if let Some(identity) = &seen.identity_id {
            writes.push(self.unlink(identity, &seen.id)?);
        }
        match self.write_all(writes).await? {
            Ok(()) => Ok(true),
            Err(reasons) if admit::failed_condition(reasons.first()) => Ok(false),
            Err(_) => Err(StoreError::Unavailable("the delete conflicted".into())),
        }
    }

    async fn delete_by_secret(&self, id: &str, secret_hash: &str) -> Result<Deletion, StoreError> {
        // One conditional delete for a token of no identity; one that
        // points at an identity fails it, and its link goes with it in a
        // transaction instead.
        let r = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(token_key(id)))
            .condition_expression("#hash = :hash AND attribute_not_exists(#identity)")
            .expression_attribute_names("#hash", "secretHash")
            .expression_attribute_names("#identity", "identityId")
            .expression_attribute_values(":hash", s(secret_hash))
            // The token as it was: its owner, for the revocation's record.
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => match out.attributes.as_ref().map(from_item).transpose()? {
                Some(t) => Ok(Deletion::Deleted(Box::new(t))),
                None => Err(StoreError::Internal("a delete returned no item".into())),
            },
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                let found = match se.into_err() {
                    DeleteItemError::ConditionalCheckFailedException(ex) => {
                        ex.item.as_ref().map(from_item).transpose()?
                    }
                    _ => None,
                };
                match found {
                    Some(t) if t.secret_hash == secret_hash => match t.identity_id.clone() {
                        Some(identity) => {
                            self.delete_linked_by_secret(&t, &identity, secret_hash)
                                .await
                        }
                        // Its identity went between the two looks.
                        None => Err(StoreError::Unavailable(
                            "the token changed during its revocation".into(),
                        )),
                    },
                    found => Ok(Deletion::Kept(found.map(Box::new))),
                }
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn end_grace(&self, seen: &TokenRecord, now: OffsetDateTime) -> Result<bool, StoreError> {
        let nm = names(&[
            ("#upd", "updatedAt"),
            ("#prev", "prevSecretHash"),
            ("#prevEnd", "prevSecretExpiresAt"),
        ]);
        let vals = HashMap::from([
            (":ver".to_owned(), n(seen.version + 1)),
            (":upd".to_owned(), n(dates::millis(now))),
        ]);
        let update = "SET #ver = :ver, #upd = :upd REMOVE #prev, #prevEnd".to_owned();
        Ok(self
            .update_at_version(seen, update, nm, vals)
            .await?
            .is_ok())
    }

    async fn revoke_capabilities(
        &self,
        seen: &TokenRecord,
        revoked: &crate::credentials::RevokedCapabilities,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let nm = names(&[
            ("#upd", "updatedAt"),
            ("#caps", item::REVOKED_CAPABILITIES),
            ("#until", item::CAPABILITIES_ISSUED_UNTIL),
        ]);
        let (ids, until) = item::revoked_attrs(revoked);
        let mut vals = HashMap::from([
            (":ver".to_owned(), n(seen.version + 1)),
            (":upd".to_owned(), n(dates::millis(now))),
            (":caps".to_owned(), ids),
        ]);
        let set = "SET #ver = :ver, #upd = :upd, #caps = :caps";
        let update = match until {
            Some(until) => {
                vals.insert(":until".into(), until);
                format!("{set}, #until = :until")
            }
            None => format!("{set} REMOVE #until"),
        };
        Ok(self
            .update_at_version(seen, update, nm, vals)
            .await?
            .is_ok())
    }

    async fn admit(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError> {
        self.admit_item(a).await
    }

    async fn admit_joint(
        &self,
        token: &Admission<'_>,
        identity: &Admission<'_>,
    ) -> Result<JointOutcome, StoreError> {
        self.admit_joint_items(token, identity).await
    }

    async fn put_identity(
        &self,
        rec: &crate::identity::IdentityRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.put_identity_item(rec, audit).await
    }

    async fn get_identity(
        &self,
        id: &str,
    ) -> Result<Option<crate::identity::IdentityRecord>, StoreError> {
        self.get_identity_item(id).await
    }

    async fn identity_by_external_id(
        &self,
        owner: &str,
        external_id: &str,
    ) -> Result<Option<crate::identity::IdentityRecord>, StoreError> {
        self.identity_by_claim(owner, external_id).await
    }

    async fn list_identities(
        &self,
        owner: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<IdentityPage, StoreError> {
        self.list_identity_items(owner, limit, after).await
    }

    async fn replace_identity(
        &self,
        seen: &crate::identity::IdentityRecord,
        new: &crate::identity::IdentityRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.replace_identity_item(seen, new, audit).await
    }

    async fn delete_identity(
        &self,
        id: &str,
        owner: &str,
        audit: &AuditRecord,
    ) -> Result<IdentityDeletion, StoreError> {
        self.delete_identity_item(id, owner, audit).await
    }

    async fn audit(&self, owner: &str, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        self.audit_page(owner, q).await
    }

    async fn record(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.put_record(record).await
    }

    async fn move_lease(&self, m: &LeaseMove<'_>) -> Result<MoveOutcome, StoreError> {
        self.move_lease_item(m).await
    }

    async fn touch(
        &self,
        id: &str,
        now: OffsetDateTime,
        fresh_after: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let nm = names(&[("#lu", "lastUsedAt")]);
        let vals = HashMap::from([
            (":now".to_owned(), n(dates::millis(now))),
            (":fresh".to_owned(), n(dates::millis(fresh_after))),
        ]);
        // A failed condition means another request refreshed it first.
        let _fresh_or_gone = self
            .conditional_update(
                token_key(id),
                "SET #lu = :now".into(),
                "attribute_exists(pk) AND (attribute_not_exists(#lu) OR #lu < :fresh)".into(),
                nm,
                vals,
            )
            .await?;
        Ok(())
    }
}
