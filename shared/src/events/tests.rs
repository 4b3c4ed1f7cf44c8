use std::sync::Mutex;

use time::macros::datetime;

use super::*;
use crate::audit::{AuditQuery, AuditRecord};
use crate::store::memory::MemoryStore;

/// Records what it is given; refuses entries whose `detail.id` it is told to.
#[derive(Default)]
struct FakeBus {
    put: Mutex<Vec<Vec<LifecycleEvent>>>,
    refuse: Option<String>,
}

#[async_trait]
impl Bus for FakeBus {
    async fn put(&self, events: &[LifecycleEvent]) -> Result<Vec<bool>, String> {
        self.put.lock().unwrap().push(events.to_vec());
        Ok(events
            .iter()
            .map(|e| self.refuse.as_deref() != Some(e.id.as_str()))
            .collect())
    }
}

impl FakeBus {
    fn ids(&self) -> Vec<String> {
        let put = self.put.lock().unwrap();
        put.iter().flatten().map(|e| e.id.clone()).collect()
    }
}

const AT: OffsetDateTime = datetime!(2026-12-06 09:00 UTC);

fn token() -> TokenRef {
    TokenRef {
        id: "0123456789abcdefghjkmnpqrs".into(),
        owner: "alice".into(),
        identity_id: None,
    }
}

fn record(id: &str) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        at: AT,
        action: "token.updated",
        target: Target::Token(token().id),
        actor: Actor {
            owner: "alice".into(),
            sub: Some("alice-sub".into()),
            source_ip: None,
            user_agent: None,
            request_id: None,
            kind: "user",
        },
        changes: serde_json::Map::new(),
        expires_at: 0,
    }
}

fn change(seq: u32, fact: Result<Fact, StoreError>) -> Change {
    Change {
        sequence: format!("{seq:021}"),
        event_id: format!("stream-event-{seq}"),
        at: AT,
        fact,
    }
}

#[tokio::test]
async fn each_record_and_exhaustion_is_one_event_and_the_rest_none() {
    let bus = FakeBus::default();
    let store = MemoryStore::new();
    let changes = [
        change(1, Ok(Fact::Audited(record("r1")))),
        change(2, Ok(Fact::Nothing)),
        change(3, Ok(Fact::Exhausted(token()))),
    ];
    assert_eq!(deliver(&changes, &bus, &store, 400).await, None);
    let put = bus.put.lock().unwrap().concat();
    let kinds: Vec<&str> = put.iter().map(|e| e.detail_type.as_str()).collect();
    assert_eq!(kinds, ["token.updated", "token.exhausted"]);
    assert_eq!(put[0].detail["owner"], "alice");
    assert_eq!(put[0].detail["tokenId"], token().id);
    assert_eq!(put[1].detail["tokenId"], token().id);
    assert_eq!(put[1].detail["reason"], "USES_EXHAUSTED");
    // The same stream record makes the same id: a redelivery de-duplicates.
    assert_eq!(
        put[1].id,
        LifecycleEvent::exhausted(&token(), "stream-event-3", AT).id
    );
    assert_ne!(
        put[1].id,
        LifecycleEvent::exhausted(&token(), "stream-event-4", AT).id
    );
}

#[tokio::test]
async fn a_record_not_understood_stops_the_batch_there() {
    let bus = FakeBus::default();
    let store = MemoryStore::new();
    let changes = [
        change(1, Ok(Fact::Audited(record("r1")))),
        change(2, Err(StoreError::Internal("bad action".into()))),
        change(3, Ok(Fact::Audited(record("r3")))),
    ];
    let failed = deliver(&changes, &bus, &store, 400).await;
    assert_eq!(failed.as_deref(), Some("000000000000000000002"));
    // What came before is delivered; what comes after waits for the retry.
    assert_eq!(bus.ids(), ["r1"]);
}

#[tokio::test]
async fn an_entry_the_bus_refuses_is_where_the_retry_starts() {
    let bus = FakeBus {
        refuse: Some("r2".into()),
        ..FakeBus::default()
    };
    let store = MemoryStore::new();
    let changes: Vec<Change> = (1..=25)
        .map(|i| change(i, Ok(Fact::Audited(record(&format!("r{i}"))))))
        .collect();
    let failed = deliver(&changes, &bus, &store, 400).await;
    assert_eq!(failed.as_deref(), Some("000000000000000000002"));
    // The first chunk was put; no later chunk was.
    assert_eq!(bus.put.lock().unwrap().len(), 1);

    // Without a refusal: chunks of ten, in order.
    let bus = FakeBus::default();
    assert_eq!(deliver(&changes, &bus, &store, 400).await, None);
    let sizes: Vec<usize> = bus.put.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let expected: Vec<String> = (1..=25).map(|i| format!("r{i}")).collect();
    assert_eq!(bus.ids(), expected);
}

#[tokio::test]
async fn a_ttl_removal_is_recorded_once_as_token_expired_by_the_service() {
    let bus = FakeBus::default();
    let store = MemoryStore::new();
    let changes = [change(7, Ok(Fact::Expired(token())))];
    for _ in 0..2 {
        // Delivered twice, as a retried batch would be.
        assert_eq!(deliver(&changes, &bus, &store, 400).await, None);
    }
    // No event yet: the record's own stream entry makes it.
    assert!(bus.ids().is_empty());
    let q = AuditQuery {
        limit: 10,
        after: None,
        token_id: None,
        identity_id: None,
        action: None,
        since: None,
    };
    let page = store.audit("alice", &q).await.unwrap();
    assert_eq!(page.records.len(), 1);
    let rec = &page.records[0];
    assert_eq!(rec.action, "token.expired");
    assert_eq!(rec.actor.kind, "service");
    assert_eq!(rec.actor.sub, None);
    assert_eq!(rec.target, Target::Token(token().id));
    assert_eq!(rec.at, AT);
    assert_eq!(rec.expires_at, AT.unix_timestamp() + 400 * 86_400);
    assert_eq!(rec.id.len(), 20);
}
