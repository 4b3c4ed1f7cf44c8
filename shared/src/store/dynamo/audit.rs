//! The audit trail on DynamoDB. A record is an item
//! pk `A#<owner>`, sk `<at µs, 17 digits>#<record id>`, so an owner's
//! recent history is one Query on the table, newest first; its
//! `gsi2pk` `AT#<token or identity id>` (same `gsi2sk`) puts a token's or
//! an identity's history in one Query on the `byTarget` index, which
//! projects only what `GET /audit` answers. Each is put in its change's
//! own transaction (`attribute_not_exists(pk)`), and TTL removes it after
//! `AuditRetentionDays`.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::error::store_error;
use super::item::{bad, get_n, get_s, n, s, Item};
use super::DynamoStore;
use crate::audit::{Actor, AuditQuery, AuditRecord, Target};
use crate::dates;
use crate::store::{AuditPage, StoreError};

/// The index of each token's and identity's history.
pub const TARGET_INDEX: &str = "byTarget";

fn keys(owner: &str, target: &str, position: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("A#{owner}"))),
        ("sk".into(), s(position)),
        ("gsi2pk".into(), s(format!("AT#{target}"))),
        ("gsi2sk".into(), s(position)),
    ])
}

pub(super) fn to_item(a: &AuditRecord) -> Item {
    let mut item = keys(&a.actor.owner, a.target.id(), &a.position());
    item.insert("recordId".into(), s(&a.id));
    item.insert("at".into(), n(dates::millis(a.at)));
    item.insert("action".into(), s(a.action));
    item.insert("owner".into(), s(&a.actor.owner));
    match &a.target {
        Target::Token(id) => item.insert("tokenId".into(), s(id)),
        Target::Identity(id) => item.insert("identityId".into(), s(id)),
    };
    let actor: HashMap<String, AttributeValue> = [
        ("type", Some(a.actor.kind.to_owned())),
        ("sub", a.actor.sub.clone()),
        ("sourceIp", a.actor.source_ip.clone()),
        ("userAgent", a.actor.user_agent.clone()),
        ("requestId", a.actor.request_id.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), s(v?))))
    .collect();
    item.insert("actor".into(), AttributeValue::M(actor));
    item.insert(
        "changes".into(),
        s(serde_json::Value::Object(a.changes.clone()).to_string()),
    );
    item.insert("ttl".into(), n(a.expires_at));
    item
}

pub(super) fn from_item(item: &Item) -> Result<AuditRecord, StoreError> {
    let actor = item
        .get("actor")
        .and_then(|v| v.as_m().ok())
        .ok_or_else(|| bad("actor"))?;
    let field = |k: &str| get_s(actor, k).map(str::to_owned);
    let owner = get_s(item, "owner").ok_or_else(|| bad("owner"))?.to_owned();
    let target = match (get_s(item, "tokenId"), get_s(item, "identityId")) {
        (Some(t), _) => Target::Token(t.to_owned()),
        (None, Some(i)) => Target::Identity(i.to_owned()),
        (None, None) => return Err(bad("tokenId")),
    };
    Ok(AuditRecord {
        id: get_s(item, "recordId")
            .ok_or_else(|| bad("recordId"))?
            .to_owned(),
        at: dates::from_millis(get_n(item, "at").ok_or_else(|| bad("at"))?),
        action: get_s(item, "action")
            .and_then(AuditRecord::action_named)
            .ok_or_else(|| bad("action"))?,
        target,
        actor: Actor {
            owner,
            sub: field("sub"),
            source_ip: field("sourceIp"),
            user_agent: field("userAgent"),
            request_id: field("requestId"),
            kind: get_s(actor, "type")
                .and_then(Actor::kind_named)
                .unwrap_or("user"),
        },
        changes: get_s(item, "changes")
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default(),
        expires_at: get_n(item, "ttl").unwrap_or(0),
    })
}

impl DynamoStore {
    /// The record's put, in its change's transaction.
    pub(super) fn audit_put(&self, a: &AuditRecord) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(a)))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A record standing alone (see `Store::record`): written once.
    pub(super) async fn put_record(&self, a: &AuditRecord) -> Result<(), StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(a)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            // Written before: the same change redelivered.
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(store_error(e)),
        }
    }

    pub(super) async fn audit_page(
        &self,
        owner: &str,
        q: &AuditQuery,
    ) -> Result<AuditPage, StoreError> {
        let since = q.since.map(crate::audit::position_of);
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .limit(q.limit as i32);
        let mut filters = Vec::new();
        let (key_name, sort_name) = match q.target() {
            Some(target) => {
                // Another owner's record never answers, even by id.
                filters.push("#owner = :owner");
                query = query
                    .index_name(TARGET_INDEX)
                    .expression_attribute_names("#owner", "owner")
                    .expression_attribute_values(":owner", s(owner))
                    .expression_attribute_values(":key", s(format!("AT#{target}")));
                ("gsi2pk", "gsi2sk")
            }
            None => {
                query = query
                    .consistent_read(true)
                    .expression_attribute_values(":key", s(format!("A#{owner}")));
                ("pk", "sk")
            }
        };
        query = match &since {
            Some(since) => query
                .key_condition_expression(format!("{key_name} = :key AND {sort_name} >= :since"))
                .expression_attribute_values(":since", s(since)),
            None => query.key_condition_expression(format!("{key_name} = :key")),
        };
        if let Some(action) = q.action {
            filters.push("#action = :action");
            query = query
                .expression_attribute_names("#action", "action")
                .expression_attribute_values(":action", s(action));
        }
        if !filters.is_empty() {
            query = query.filter_expression(filters.join(" AND "));
        }
        if let Some(after) = &q.after {
            let mut start = keys(owner, q.target().unwrap_or_default(), after);
            if q.target().is_none() {
                start.retain(|k, _| k == "pk" || k == "sk");
            }
            query = query.set_exclusive_start_key(Some(start));
        }
        let out = query.send().await.map_err(store_error)?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| get_s(k, "sk"))
            .map(str::to_owned);
        let records = out
            .items
            .unwrap_or_default()
            .iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        Ok(AuditPage { records, next })
    }
}
