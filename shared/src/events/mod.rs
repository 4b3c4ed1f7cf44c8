//! Lifecycle events: what the `events` function puts on EventBridge for
//! the changes the table's stream carries. Delivery is EventBridge's and
//! Lambda's (the event source mapping retries, bisects and dead-letters);
//! this module only says what each change means and delivers one stream
//! batch in order, stopping at the first record it cannot deliver so that
//! Lambda retries from there and no later record is put twice.
//!
//! - An audit record written (in its change's own transaction) is one
//!   event, `detail-type` its action, `detail` the record as `GET /audit`
//!   answers it, its id the record's id.
//! - An admission that left a token's `remainingUses` at 0 is
//!   `token.exhausted`.
//! - A token removed by DynamoDB's TTL is recorded in the audit trail as
//!   `token.expired` (the actor is the service): that record's own stream
//!   entry then makes the event, as every record's does.

use async_trait::async_trait;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::audit::{Actor, AuditRecord, Target};
use crate::codec;
use crate::store::{Store, StoreError};

/// Every event's `source`.
pub const SOURCE: &str = "tollgate";

/// The token a derived fact is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    pub id: String,
    pub owner: String,
    pub identity_id: Option<String>,
}

/// What one stream record means.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// An audit record was written.
    Audited(AuditRecord),
    /// An admission left the token's `remainingUses` at 0.
    Exhausted(TokenRef),
    /// DynamoDB's TTL removed the token.
    Expired(TokenRef),
    /// Anything else: an admission, a lease, an identity's counters.
    Nothing,
}

/// One EventBridge entry: `source` is [`SOURCE`].
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleEvent {
    /// Stable across redeliveries of the same change, for de-duplication;
    /// also `detail.id`.
    pub id: String,
    pub detail_type: String,
    pub detail: Value,
    pub time: OffsetDateTime,
}

impl LifecycleEvent {
    /// The event of an audit record.
    pub fn of_record(rec: &AuditRecord) -> LifecycleEvent {
        let mut detail = rec.to_json();
        detail["owner"] = json!(rec.actor.owner);
        LifecycleEvent {
            id: rec.id.clone(),
            detail_type: rec.action.to_owned(),
            detail,
            time: rec.at,
        }
    }

    /// `token.exhausted`, identified by the stream record that carried the
    /// admission (redelivered with the same id).
    pub fn exhausted(token: &TokenRef, stream_event_id: &str, at: OffsetDateTime) -> Self {
        let id = derived_id("exhausted", stream_event_id);
        LifecycleEvent {
            detail: json!({
                "id": id,
                "tokenId": token.id,
                "owner": token.owner,
                "identityId": token.identity_id,
                "reason": "USES_EXHAUSTED",
            }),
            id,
            detail_type: "token.exhausted".to_owned(),
            time: at,
        }
    }
}

/// The audit record of a TTL removal: the same id however often the
/// removal is redelivered (a token expires once), so its conditional put
/// writes it once.
pub fn expired_record(token: &TokenRef, at: OffsetDateTime, retention_days: i64) -> AuditRecord {
    AuditRecord {
        id: derived_id("expired", &token.id),
        at,
        action: "token.expired",
        target: Target::Token(token.id.clone()),
        actor: Actor {
            owner: token.owner.clone(),
            sub: None,
            source_ip: None,
            user_agent: None,
            request_id: None,
            kind: "service",
        },
        changes: serde_json::Map::new(),
        expires_at: at.unix_timestamp() + retention_days * 86_400,
    }
}

/// An id in the audit records' form (20 base32 characters), derived from
/// what makes it unique.
fn derived_id(kind: &str, of: &str) -> String {
    let digest = Sha256::new()
        .chain_update(kind.as_bytes())
        .chain_update([0])
        .chain_update(of.as_bytes())
        .finalize();
    let mut first = [0u8; 12];
    first.copy_from_slice(&digest[..12]);
    codec::encode(&first)
}

/// One record of a stream batch, decoded.
pub struct Change {
    /// What Lambda names the record by in a partial batch response.
    pub sequence: String,
    /// The stream's id of the record: the same on every redelivery.
    pub event_id: String,
    pub at: OffsetDateTime,
    /// The decoded meaning, or why the record could not be read.
    pub fact: Result<Fact, StoreError>,
}

/// Where events go: EventBridge when deployed.
#[async_trait]
pub trait Bus: Send + Sync {
    /// At most [`MAX_ENTRIES`] events; for each, whether it was accepted.
    async fn put(&self, events: &[LifecycleEvent]) -> Result<Vec<bool>, String>;
}

/// PutEvents' limit per call.
pub const MAX_ENTRIES: usize = 10;

/// Delivers one stream batch in order. Returns the sequence number of the
/// first record not delivered (Lambda retries from it, so it and every
/// later record come again and none is put twice), or `None` when all
/// were.
pub async fn deliver(
    changes: &[Change],
    bus: &dyn Bus,
    store: &dyn Store,
    retention_days: i64,
) -> Option<String> {
    // Events ready to put, each with the index of its record.
    let mut pending: Vec<(usize, LifecycleEvent)> = Vec::new();
    let mut stopped_at = None;
    for (i, change) in changes.iter().enumerate() {
        let fact = match &change.fact {
            Ok(fact) => fact,
            Err(e) => {
                tracing::error!(sequence = %change.sequence, error = %e, "stream record not understood");
                stopped_at = Some(i);
                break;
            }
        };
        match fact {
            Fact::Audited(rec) => pending.push((i, LifecycleEvent::of_record(rec))),
            Fact::Exhausted(token) => pending.push((
                i,
                LifecycleEvent::exhausted(token, &change.event_id, change.at),
            )),
            Fact::Expired(token) => {
                let rec = expired_record(token, change.at, retention_days);
                if let Err(e) = store.record(&rec).await {
                    tracing::error!(sequence = %change.sequence, error = %e, "token.expired not recorded");
                    stopped_at = Some(i);
                    break;
                }
            }
            Fact::Nothing => {}
        }
    }
    for chunk in pending.chunks(MAX_ENTRIES) {
        let events: Vec<LifecycleEvent> = chunk.iter().map(|(_, e)| e.clone()).collect();
        let accepted = match bus.put(&events).await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::error!(error = %e, "PutEvents failed");
                vec![false; chunk.len()]
            }
        };
        // An answer that does not match the entries counts as all failed.
        let failed = if accepted.len() == chunk.len() {
            accepted.iter().position(|ok| !ok)
        } else {
            Some(0)
        };
        if let Some(k) = failed {
            // Records before the failed entry's are delivered; it and
            // every later one come again.
            let i = chunk[k].0;
            if let Some(c) = changes.get(i) {
                tracing::error!(sequence = %c.sequence, "EventBridge did not take the event");
            }
            stopped_at = Some(i);
            break;
        }
    }
    stopped_at
        .and_then(|i| changes.get(i))
        .map(|c| c.sequence.clone())
}

#[cfg(test)]
mod tests;
