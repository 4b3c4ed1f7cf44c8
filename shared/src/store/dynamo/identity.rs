//! Identities on DynamoDB. Keys:
//! - identity: pk `D#<id>`, sk `D`; GSI `byOwner`: gsi1pk `OD#<owner>`,
//!   gsi1sk `<created ms>#<id>`. Its limits are stored as a token's (see
//!   `item::limit_attrs`), and `linked` counts the links ever made to it.
//! - claim:    pk `X#<sha256(owner)>#<externalId>`, sk `X`, `identityId`:
//!   written with the identity in one transaction, so an `externalId` is
//!   claimed once per owner.
//! - link:     pk `D#<id>`, sk `T#<token id>`: written and removed in the
//!   same transaction as the token that points at the identity, and the
//!   token's write bumps `linked`. A delete reads the identity and its
//!   links in one consistent Query and deletes only if `linked` is still
//!   what it saw, so no token can point at a deleted identity.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use sha2::{Digest, Sha256};

use super::error::store_error;
use super::item::{bad, date, get_n, get_s, insert_limits, limits_of, n, req_s, s, Item};
use super::DynamoStore;
use crate::audit::AuditRecord;
use crate::dates;
use crate::identity::{list_position, IdentityRecord};
use crate::store::{IdentityDeletion, IdentityPage, Store, StoreError};

pub fn identity_key(id: &str) -> Item {
    HashMap::from([("pk".into(), s(format!("D#{id}"))), ("sk".into(), s("D"))])
}

fn claim_key(owner: &str, external_id: &str) -> Item {
    let owner_hash = crate::codec::encode(&Sha256::digest(owner.as_bytes()));
    HashMap::from([
        ("pk".into(), s(format!("X#{owner_hash}#{external_id}"))),
        ("sk".into(), s("X")),
    ])
}

pub fn link_key(identity: &str, token: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("D#{identity}"))),
        ("sk".into(), s(format!("T#{token}"))),
    ])
}

/// The attribute counting the links ever made to an identity.
const LINKED: &str = "linked";

/// The client-settable attributes (`None`: remove), with what remains of
/// the uses when `with_remaining`.
pub fn identity_attrs(
    rec: &IdentityRecord,
    with_remaining: bool,
) -> Vec<(
    &'static str,
    Option<aws_sdk_dynamodb::types::AttributeValue>,
)> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut v = vec![
        ("description", Some(s(&rec.description))),
        (
            "tags",
            Some(AttributeValue::M(
                rec.tags.iter().map(|(k, v)| (k.clone(), s(v))).collect(),
            )),
        ),
        (
            "audiences",
            rec.audiences
                .as_ref()
                .map(|l| AttributeValue::L(l.iter().map(s).collect())),
        ),
        ("onLeak", rec.on_leak.map(|o| s(o.as_str()))),
        ("updatedAt", Some(n(dates::millis(rec.updated_at)))),
        ("version", Some(n(rec.version))),
    ];
    v.extend(super::item::limit_attrs(&rec.limits, with_remaining));
    v
}

fn to_item(rec: &IdentityRecord) -> Item {
    let mut item = identity_key(&rec.id);
    item.insert("gsi1pk".into(), s(format!("OD#{}", rec.owner)));
    item.insert("gsi1sk".into(), s(list_position(rec)));
    item.insert("id".into(), s(&rec.id));
    item.insert("owner".into(), s(&rec.owner));
    item.insert("externalId".into(), s(&rec.external_id));
    item.insert("createdAt".into(), n(dates::millis(rec.created_at)));
    item.insert(LINKED.into(), n(0));
    insert_limits(&mut item, &rec.limits);
    for (k, v) in identity_attrs(rec, false) {
        if let Some(v) = v {
            item.insert(k.into(), v);
        }
    }
    item
}

pub fn from_item(item: &Item) -> Result<IdentityRecord, StoreError> {
    Ok(IdentityRecord {
        id: req_s(item, "id")?,
        owner: req_s(item, "owner")?,
        external_id: req_s(item, "externalId")?,
        description: get_s(item, "description").unwrap_or_default().to_owned(),
        tags: item
            .get("tags")
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                    .collect()
            })
            .unwrap_or_default(),
        audiences: item
            .get("audiences")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect()),
        limits: limits_of(item),
        on_leak: get_s(item, "onLeak").and_then(crate::leaks::OnLeak::parse),
        created_at: date(item, "createdAt").ok_or_else(|| bad("createdAt"))?,
        updated_at: date(item, "updatedAt").ok_or_else(|| bad("updatedAt"))?,
        version: get_n(item, "version").ok_or_else(|| bad("version"))?,
    })
}

fn build<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Internal(e.to_string()))
}

impl DynamoStore {
    /// The writes that make `token` point at `identity` of `owner`: its
    /// link, and `linked` bumped on the identity, which must be the owner's.
    pub(super) fn link(
        &self,
        identity: &str,
        owner: &str,
        token: &str,
    ) -> Result<[TransactWriteItem; 2], StoreError> {
        let mut link = link_key(identity, token);
        link.insert("tokenId".into(), s(token));
        let put = build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(link))
                .build(),
        )?;
        let bump = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(identity_key(identity)))
                .update_expression("SET #linked = #linked + :one")
                .condition_expression("attribute_exists(pk) AND #owner = :owner")
                .expression_attribute_names("#linked", LINKED)
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":owner", s(owner))
                .build(),
        )?;
        Ok([
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(bump).build(),
        ])
    }

    /// The write that removes `token`'s link to `identity`.
    pub(super) fn unlink(
        &self,
        identity: &str,
        token: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = build(
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(link_key(identity, token)))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    pub(super) async fn put_identity_item(
        &self,
        rec: &IdentityRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut claim = claim_key(&rec.owner, &rec.external_id);
        claim.insert("identityId".into(), s(&rec.id));
        let put_claim = build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(claim))
                .condition_expression("attribute_not_exists(pk) OR identityId = :id")
                .expression_attribute_values(":id", s(&rec.id))
                .build(),
        )?;
        let put_identity = build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(rec)))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        let writes = vec![
            TransactWriteItem::builder().put(put_claim).build(),
            TransactWriteItem::builder().put(put_identity).build(),
            self.audit_put(audit)?,
        ];
        match self.write_all(writes).await? {
            Ok(()) => Ok(true),
            Err(reasons) => {
                if super::admit::failed_condition(reasons.first()) {
                    return Ok(false);
                }
                if super::admit::failed_condition(reasons.get(1)) {
                    return Err(StoreError::Internal("identity id collision".into()));
                }
                Err(StoreError::Unavailable(
                    "the identity's create conflicted".into(),
                ))
            }
        }
    }

    pub(super) async fn get_identity_item(
        &self,
        id: &str,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(identity_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        out.item.as_ref().map(from_item).transpose()
    }

    pub(super) async fn identity_by_claim(
        &self,
        owner: &str,
        external_id: &str,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(claim_key(owner, external_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        let Some(id) = out.item.as_ref().and_then(|i| get_s(i, "identityId")) else {
            return Ok(None);
        };
        Ok(self
            .get_identity_item(id)
            .await?
            .filter(|i| i.owner == owner))
    }

    pub(super) async fn list_identity_items(
        &self,
        owner: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<IdentityPage, StoreError> {
        let (ids, next) = self
            .owner_index_page(format!("OD#{owner}"), limit, after)
            .await?;
        let keys: Vec<Item> = ids.iter().map(|id| identity_key(id)).collect();
        let mut found: HashMap<String, IdentityRecord> = HashMap::new();
        if !keys.is_empty() {
            for item in self.batch_get(keys).await? {
                let rec = from_item(&item)?;
                found.insert(rec.id.clone(), rec);
            }
        }
        // Newest first, as the index answered; one deleted since is gone.
        let items = ids.iter().filter_map(|id| found.remove(id)).collect();
        Ok(IdentityPage { items, next })
    }

    pub(super) async fn replace_identity_item(
        &self,
        seen: &IdentityRecord,
        new: &IdentityRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let uses_change = seen.limits.uses_differ(&new.limits);
        let e = super::PinnedReplace::of(
            identity_attrs(new, uses_change),
            seen.version,
            uses_change.then_some(&seen.limits),
        );
        let update = build(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(identity_key(&seen.id)))
                .update_expression(e.update)
                .condition_expression(format!("attribute_exists(pk) AND {}", e.condition))
                .set_expression_attribute_names(Some(e.names))
                .set_expression_attribute_values(Some(e.values))
                .build(),
        )?;
        let writes = vec![
            TransactWriteItem::builder().update(update).build(),
            self.audit_put(audit)?,
        ];
        match self.write_all(writes).await? {
            Ok(()) => Ok(true),
            Err(reasons) if super::admit::failed_condition(reasons.first()) => Ok(false),
            Err(_) => Err(StoreError::Unavailable("the patch conflicted".into())),
        }
    }

    pub(super) async fn delete_identity_item(
        &self,
        id: &str,
        owner: &str,
        audit: &AuditRecord,
    ) -> Result<IdentityDeletion, StoreError> {
        for _ in 0..8 {
            // The identity and its links, in one consistent read.
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(format!("D#{id}")))
                .consistent_read(true)
                .send()
                .await
                .map_err(store_error)?;
            let items = out.items.unwrap_or_default();
            let Some(identity) = items.iter().find(|i| get_s(i, "sk") == Some("D")) else {
                return Ok(IdentityDeletion::NotFound);
            };
            let rec = from_item(identity)?;
            if rec.owner != owner {
                return Ok(IdentityDeletion::NotFound);
            }
            let linked: u64 = get_n(identity, LINKED).unwrap_or(0);
            let tokens: Vec<&str> = items.iter().filter_map(|i| get_s(i, "tokenId")).collect();
            // A link outlives its token only when the token's TTL removed
            // it: such a token points at nothing any more.
            if !tokens.is_empty() {
                let found = self.get_many(&tokens).await?;
                let now = dates::now();
                let retention = time::Duration::seconds(self.retention_seconds);
                if found
                    .iter()
                    .flatten()
                    .any(|t| t.identity_id.as_deref() == Some(id) && t.end_date + retention > now)
                {
                    return Ok(IdentityDeletion::InUse);
                }
            }
            let delete_identity = build(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(identity_key(id)))
                    .condition_expression("#linked = :linked")
                    .expression_attribute_names("#linked", LINKED)
                    .expression_attribute_values(":linked", n(linked))
                    .build(),
            )?;
            let delete_claim = build(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(claim_key(owner, &rec.external_id)))
                    .build(),
            )?;
            let mut writes = vec![
                TransactWriteItem::builder().delete(delete_identity).build(),
                TransactWriteItem::builder().delete(delete_claim).build(),
                self.audit_put(audit)?,
            ];
            for t in &tokens {
                writes.push(self.unlink(id, t)?);
            }
            // Cancelled: a token was linked meanwhile (or the write
            // conflicted): look again.
            if self.write_all(writes).await?.is_ok() {
                return Ok(IdentityDeletion::Deleted);
            }
        }
        Err(StoreError::Unavailable(
            "the identity kept changing during its delete".into(),
        ))
    }
}
