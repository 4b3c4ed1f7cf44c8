//! One contract suite for the `Store` trait, run against the memory store
//! and against DynamoDB Local: both must behave the same, races included.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::json;
use time::Duration;
use tollgate::dates;
use tollgate::store::memory::MemoryStore;
use tollgate::store::{
    Admission, AdmitOutcome, CreateOutcome, IdempotencyRecord, RenewOutcome, Store,
};
use tollgate::token::rules::{self, Lifetimes, NewToken};
use tollgate::token::{Keyring, TokenRecord};
use tollgate_tests::{dynamo_store, owner};

fn record(owner: &str, body: serde_json::Value) -> TokenRecord {
    let keys = Keyring::single(&[9u8; 32]);
    let m = keys.mint();
    rules::create(NewToken {
        id: m.id.to_string(),
        owner: owner.to_owned(),
        start: m.start(),
        secret_hash: m.secret_hash,
        requester: None,
        now: dates::now(),
        lifetimes: Lifetimes {
            default_ttl_seconds: 3600,
            max_ttl_seconds: 86_400,
        },
        body: body.as_object().unwrap(),
    })
    .unwrap()
}

fn attempt() -> String {
    tollgate::codec::encode(&tollgate::codec::random_bytes::<10>())
}

/// Admits as the validate flow does: from the token as read now.
async fn admit(
    s: &dyn Store,
    id: &str,
    consume_use: bool,
    lease: Option<(&str, i64)>,
) -> AdmitOutcome {
    let a = attempt();
    let (seen_version, seen_remaining) = match s.get(id).await.unwrap() {
        Some(t) => (t.version, t.remaining_uses),
        None => (1, None),
    };
    s.admit(&Admission {
        id,
        attempt_id: &a,
        seen_version,
        consume_use,
        seen_remaining,
        lease,
        touch: None,
    })
    .await
    .unwrap()
}

async fn admit_use(s: &dyn Store, id: &str) -> AdmitOutcome {
    admit(s, id, true, None).await
}

async fn round_trip_and_no_overwrite(s: Arc<dyn Store>) {
    let o = owner("rt");
    let rec = record(
        &o,
        json!({"description": "d", "tags": {"a": "1"}, "maxUses": 3, "maxConcurrent": 2,
        "allowedAddresses": ["10.0.0.0/8", "203.0.113.9"], "caller": "c", "callee": "e",
        "startDate": "2020-01-01T00:00:00Z", "write": true, "resource": "/teams",
        "enabled": false, "scopes": ["scope:client:incoming?clientName=alice"]}),
    );
    assert!(matches!(
        s.put_new(&rec, None).await.unwrap(),
        CreateOutcome::Created
    ));
    assert_eq!(s.get(&rec.id).await.unwrap().as_ref(), Some(&rec));
    assert!(
        s.put_new(&rec, None).await.is_err(),
        "create never overwrites"
    );
    assert_eq!(s.get("nosuchid").await.unwrap(), None);
}

async fn idempotency_replays(s: Arc<dyn Store>) {
    let o = owner("idem");
    let now = dates::now().unix_timestamp();
    let first = record(&o, json!({}));
    let idem = IdempotencyRecord {
        key: format!("k-{o}"),
        token_id: first.id.clone(),
        fingerprint: "f".into(),
        snapshot: "{}".into(),
        expires_at: now + 86_400,
    };
    assert!(matches!(
        s.put_new(&first, Some(&idem)).await.unwrap(),
        CreateOutcome::Created
    ));
    let second = record(&o, json!({}));
    let idem2 = IdempotencyRecord {
        token_id: second.id.clone(),
        ..idem.clone()
    };
    match s.put_new(&second, Some(&idem2)).await.unwrap() {
        CreateOutcome::Replay(prev) => assert_eq!(prev.token_id, first.id),
        other => panic!("expected replay, got {other:?}"),
    }
    assert_eq!(
        s.get(&second.id).await.unwrap(),
        None,
        "the losing create wrote nothing"
    );
    assert_eq!(
        s.idempotency(&idem.key, now)
            .await
            .unwrap()
            .map(|r| r.token_id),
        Some(first.id)
    );
    assert_eq!(
        s.idempotency(&idem.key, now + 90_000).await.unwrap(),
        None,
        "expired after 24 h"
    );
}

async fn list_newest_first_paged_per_owner(s: Arc<dyn Store>) {
    let o = owner("list");
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut r = record(&o, json!({}));
        r.created_at += Duration::milliseconds(i);
        s.put_new(&r, None).await.unwrap();
        ids.push(r.id);
    }
    s.put_new(&record(&owner("other"), json!({})), None)
        .await
        .unwrap();
    ids.reverse();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.list(&o, 2, after.as_deref()).await.unwrap();
        seen.extend(page.items.iter().map(|t| t.id.clone()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

async fn replace_is_conditional(s: Arc<dyn Store>) {
    let o = owner("rep");
    let rec = record(&o, json!({"maxUses": 5}));
    s.put_new(&rec, None).await.unwrap();
    let lifetimes = Lifetimes {
        default_ttl_seconds: 3600,
        max_ttl_seconds: 86_400,
    };
    let new = rules::patch(
        &rec,
        json!({"description": "x", "tags": {"k": "v"}})
            .as_object()
            .unwrap(),
        dates::now(),
        lifetimes,
    )
    .unwrap();
    assert!(s.replace(&rec, &new).await.unwrap());
    let stored = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(stored.description, "x");
    assert_eq!(stored.version, 2);
    assert!(
        !s.replace(&rec, &new).await.unwrap(),
        "stale version is refused"
    );
    // A use spent between read and write makes a maxUses change retry.
    let raise = rules::patch(
        &stored,
        json!({"maxUses": 10}).as_object().unwrap(),
        dates::now(),
        lifetimes,
    )
    .unwrap();
    assert!(matches!(
        admit_use(&*s, &rec.id).await,
        AdmitOutcome::Admitted { .. }
    ));
    assert!(!s.replace(&stored, &raise).await.unwrap());
    let fresh = s.get(&rec.id).await.unwrap().unwrap();
    let raise = rules::patch(
        &fresh,
        json!({"maxUses": 10}).as_object().unwrap(),
        dates::now(),
        lifetimes,
    )
    .unwrap();
    assert!(s.replace(&fresh, &raise).await.unwrap());
    assert_eq!(
        s.get(&rec.id).await.unwrap().unwrap().remaining_uses,
        Some(9)
    );
    // Optional fields cleared by patch disappear from the store.
    let cur = s.get(&rec.id).await.unwrap().unwrap();
    let cleared = rules::patch(
        &cur,
        json!({"maxUses": null, "tags": null}).as_object().unwrap(),
        dates::now(),
        lifetimes,
    )
    .unwrap();
    assert!(s.replace(&cur, &cleared).await.unwrap());
    let after = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(
        (after.max_uses, after.remaining_uses, after.tags.len()),
        (None, None, 0)
    );
}

async fn delete_checks_owner(s: Arc<dyn Store>) {
    let o = owner("del");
    let rec = record(&o, json!({}));
    s.put_new(&rec, None).await.unwrap();
    assert!(!s.delete(&rec.id, "someone-else").await.unwrap());
    assert!(s.get(&rec.id).await.unwrap().is_some());
    assert!(s.delete(&rec.id, &o).await.unwrap());
    assert!(!s.delete(&rec.id, &o).await.unwrap());
    assert_eq!(s.get(&rec.id).await.unwrap(), None);
}

async fn uses_are_counted_once(s: Arc<dyn Store>) {
    let rec = record(&owner("uses"), json!({"maxUses": 2}));
    s.put_new(&rec, None).await.unwrap();
    let a = attempt();
    let adm = Admission {
        id: &rec.id,
        attempt_id: &a,
        seen_version: rec.version,
        consume_use: true,
        seen_remaining: rec.remaining_uses,
        lease: None,
        touch: Some(dates::now()),
    };
    assert_eq!(
        s.admit(&adm).await.unwrap(),
        AdmitOutcome::Admitted { remaining: Some(1) }
    );
    let t = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(t.remaining_uses, Some(1));
    assert!(t.last_used_at.is_some());
    // An admission checked against an older version does not apply: a
    // patch between the read and the write is never missed.
    let mut patched = t.clone();
    patched.description = "narrowed".into();
    patched.version += 1;
    assert!(s.replace(&t, &patched).await.unwrap());
    assert_eq!(s.admit(&adm).await.unwrap(), AdmitOutcome::Moved);
    assert_eq!(
        s.get(&rec.id).await.unwrap().unwrap().remaining_uses,
        Some(1),
        "a moved admission spends nothing"
    );
    assert!(matches!(
        admit_use(&*s, &rec.id).await,
        AdmitOutcome::Admitted { .. }
    ));
    assert!(matches!(
        admit_use(&*s, &rec.id).await,
        AdmitOutcome::Exhausted
    ));
    assert!(matches!(
        admit_use(&*s, "0000000000000000000000000a").await,
        AdmitOutcome::NotFound
    ));
}

async fn racing_uses_never_overspend(s: Arc<dyn Store>) {
    let rec = record(&owner("race"), json!({"maxUses": 5}));
    s.put_new(&rec, None).await.unwrap();
    let results = join_all((0..40).map(|_| {
        let s = s.clone();
        let id = rec.id.clone();
        async move { admit_use(&*s, &id).await }
    }))
    .await;
    let admitted = results
        .iter()
        .filter(|r| matches!(r, AdmitOutcome::Admitted { .. }))
        .count();
    let exhausted = results
        .iter()
        .filter(|r| matches!(r, AdmitOutcome::Exhausted))
        .count();
    assert_eq!((admitted, exhausted), (5, 35));
    assert_eq!(
        s.get(&rec.id).await.unwrap().unwrap().remaining_uses,
        Some(0)
    );
    // Each admitted use saw its own count: exact under races.
    let mut left: Vec<u64> = results
        .iter()
        .filter_map(|r| match r {
            AdmitOutcome::Admitted { remaining } => *remaining,
            _ => None,
        })
        .collect();
    left.sort();
    assert_eq!(left, [0, 1, 2, 3, 4]);
}

async fn leases_cap_renew_release_reclaim(s: Arc<dyn Store>) {
    let rec = record(&owner("lease"), json!({"maxConcurrent": 2}));
    s.put_new(&rec, None).await.unwrap();
    let now = dates::millis(dates::now());
    let take = |lease: &'static str, exp: i64| {
        let s = s.clone();
        let id = rec.id.clone();
        async move { admit(&*s, &id, false, Some((lease, exp))).await }
    };
    let held = |s: Arc<dyn Store>, id: String| async move {
        let mut l = s.leases(&id).await.unwrap();
        l.sort();
        l
    };
    assert!(matches!(
        take("l1", now - 1).await,
        AdmitOutcome::Admitted { .. }
    )); // lapses at once
    assert!(matches!(
        take("l2", now + 60_000).await,
        AdmitOutcome::Admitted { .. }
    ));
    assert_eq!(take("l3", now + 60_000).await, AdmitOutcome::AtCap);
    assert_eq!(
        held(s.clone(), rec.id.clone()).await,
        [("l1".to_owned(), now - 1), ("l2".to_owned(), now + 60_000)]
    );
    // Reclaim is conditioned on the lapsed expiry: only one reclaimer wins.
    let lapsed = vec![("l1".to_owned(), now - 1)];
    assert!(s.reclaim(&rec.id, &lapsed).await.unwrap());
    assert!(!s.reclaim(&rec.id, &lapsed).await.unwrap());
    assert!(matches!(
        take("l3", now + 60_000).await,
        AdmitOutcome::Admitted { .. }
    ));
    let v = rec.version;
    assert_eq!(
        s.renew(&rec.id, "l2", now, now + 120_000, v).await.unwrap(),
        RenewOutcome::Renewed
    );
    assert!(held(s.clone(), rec.id.clone())
        .await
        .contains(&("l2".to_owned(), now + 120_000)));
    assert_eq!(
        s.renew(&rec.id, "l1", now, now + 120_000, v).await.unwrap(),
        RenewOutcome::Gone,
        "a reclaimed lease cannot be renewed"
    );
    assert_eq!(
        s.renew(&rec.id, "l2", now + 200_000, now + 300_000, v)
            .await
            .unwrap(),
        RenewOutcome::Gone,
        "a lapsed lease cannot be renewed"
    );
    assert_eq!(
        s.renew(&rec.id, "l2", now, now + 120_000, v + 1)
            .await
            .unwrap(),
        RenewOutcome::Moved,
        "a renewal checked against an older version does not apply"
    );
    // The cap lowered to 1 with two leases held: no renewal until one goes.
    let t = s.get(&rec.id).await.unwrap().unwrap();
    let mut lowered = t.clone();
    lowered.max_concurrent = Some(1);
    lowered.version += 1;
    assert!(s.replace(&t, &lowered).await.unwrap());
    assert_eq!(
        s.renew(&rec.id, "l2", now, now + 120_000, lowered.version)
            .await
            .unwrap(),
        RenewOutcome::OverCap
    );
    assert!(s.release(&rec.id, "l3").await.unwrap());
    assert_eq!(
        s.renew(&rec.id, "l2", now, now + 120_000, lowered.version)
            .await
            .unwrap(),
        RenewOutcome::Renewed
    );
    assert!(s.release(&rec.id, "l2").await.unwrap());
    assert!(!s.release(&rec.id, "l2").await.unwrap());
    assert!(held(s.clone(), rec.id.clone()).await.is_empty());
    assert_eq!(s.get(&rec.id).await.unwrap().unwrap().lease_count, 0);
}

async fn racing_acquires_never_exceed_cap(s: Arc<dyn Store>) {
    let rec = record(&owner("cap"), json!({"maxConcurrent": 12, "maxUses": 100}));
    s.put_new(&rec, None).await.unwrap();
    let exp = dates::millis(dates::now()) + 60_000;
    let results = join_all((0..60).map(|i| {
        let s = s.clone();
        let id = rec.id.clone();
        async move {
            let lease = format!("lease{i}");
            admit(&*s, &id, true, Some((&lease, exp))).await
        }
    }))
    .await;
    let admitted = results
        .iter()
        .filter(|r| matches!(r, AdmitOutcome::Admitted { .. }))
        .count();
    assert_eq!(admitted, 12);
    assert!(results
        .iter()
        .all(|r| matches!(r, AdmitOutcome::Admitted { .. } | AdmitOutcome::AtCap)));
    // Each admitted acquire saw its own count: exact under races.
    let mut left: Vec<u64> = results
        .iter()
        .filter_map(|r| match r {
            AdmitOutcome::Admitted { remaining } => *remaining,
            _ => None,
        })
        .collect();
    left.sort();
    assert_eq!(left, (88..100).collect::<Vec<u64>>());
    let t = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(s.leases(&rec.id).await.unwrap().len(), 12);
    assert_eq!(t.lease_count, 12);
    assert_eq!(
        t.remaining_uses,
        Some(88),
        "a refused acquire spends no use"
    );
}

async fn touch_is_rate_limited(s: Arc<dyn Store>) {
    let rec = record(&owner("touch"), json!({}));
    s.put_new(&rec, None).await.unwrap();
    let t0 = dates::now();
    s.touch(&rec.id, t0, t0 - Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        s.get(&rec.id).await.unwrap().unwrap().last_used_at,
        Some(t0)
    );
    let t1 = t0 + Duration::seconds(10);
    s.touch(&rec.id, t1, t1 - Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        s.get(&rec.id).await.unwrap().unwrap().last_used_at,
        Some(t0),
        "fresh within a minute"
    );
    let t2 = t0 + Duration::seconds(61);
    s.touch(&rec.id, t2, t2 - Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        s.get(&rec.id).await.unwrap().unwrap().last_used_at,
        Some(t2)
    );
    s.touch("0000000000000000000000000b", t2, t2).await.unwrap();
    assert_eq!(
        s.get("0000000000000000000000000b").await.unwrap(),
        None,
        "touch never creates"
    );
}

macro_rules! contract {
    ($store:ident, $make:expr) => {
        mod $store {
            use super::*;
            async fn store() -> Arc<dyn Store> {
                $make
            }
            #[tokio::test]
            async fn round_trip_and_no_overwrite() {
                super::round_trip_and_no_overwrite(store().await).await
            }
            #[tokio::test]
            async fn idempotency_replays() {
                super::idempotency_replays(store().await).await
            }
            #[tokio::test]
            async fn list_newest_first_paged_per_owner() {
                super::list_newest_first_paged_per_owner(store().await).await
            }
            #[tokio::test]
            async fn replace_is_conditional() {
                super::replace_is_conditional(store().await).await
            }
            #[tokio::test]
            async fn delete_checks_owner() {
                super::delete_checks_owner(store().await).await
            }
            #[tokio::test]
            async fn uses_are_counted_once() {
                super::uses_are_counted_once(store().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_uses_never_overspend() {
                super::racing_uses_never_overspend(store().await).await
            }
            #[tokio::test]
            async fn leases_cap_renew_release_reclaim() {
                super::leases_cap_renew_release_reclaim(store().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_acquires_never_exceed_cap() {
                super::racing_acquires_never_exceed_cap(store().await).await
            }
            #[tokio::test]
            async fn touch_is_rate_limited() {
                super::touch_is_rate_limited(store().await).await
            }
        }
    };
}

contract!(memory, Arc::new(MemoryStore::new()));
contract!(dynamodb, Arc::new(dynamo_store().await));
