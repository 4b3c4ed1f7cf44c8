//! One contract suite for the `Store` trait, run against the memory store
//! and against DynamoDB Local: both must behave the same, races included.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::json;
use time::Duration;
use tollgate::audit::{Actor, AuditQuery, AuditRecord, Target};
use tollgate::credentials::Keyring;
use tollgate::dates;
use tollgate::store::memory::MemoryStore;
use tollgate::store::{
    Admission, AdmitOutcome, CreateOutcome, IdempotencyRecord, LeaseMove, LeaseTake, MoveOutcome,
    RateSpend, Replaced, Store, UsesSpend,
};
use tollgate::token::rules::{self, Lifetimes, NewToken};
use tollgate::token::TokenRecord;
use tollgate::validate::checks::Standings;
use tollgate::validate::{checks, Reason, ValidateInput};
use tollgate_tests::{dynamo_store, owner};

/// A record for a change of `rec` (the store writes it; what it says is
/// the service's business).
fn audit_of(rec: &TokenRecord) -> AuditRecord {
    let actor = Actor {
        owner: rec.owner.clone(),
        sub: None,
        source_ip: None,
        user_agent: None,
        request_id: None,
        kind: "user",
    };
    AuditRecord::new(
        "token.updated",
        Target::Token(rec.id.clone()),
        actor,
        None,
        None,
        dates::now(),
        1,
    )
}

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

/// What an admission came to, as the validate flow sees it.
#[derive(Debug, PartialEq)]
enum Got {
    Admitted {
        remaining: Option<u64>,
        rate_used: Vec<u32>,
    },
    Refused(Reason),
    NotFound,
    /// The token's version changed since it was read.
    Moved,
}

/// The admission the validate flow makes of `t` as checked at `now`; with
/// `lease`, a lease taken in that bucket.
fn admission_for<'a>(
    t: &'a TokenRecord,
    standings: &Standings,
    lease: Option<i64>,
    cost: u64,
    now: time::OffsetDateTime,
) -> Admission<'a> {
    Admission {
        id: &t.id,
        seen_version: t.version,
        uses: standings.uses.map(|u| UsesSpend::of(&t.limits, &u, cost)),
        rates: standings.rates.iter().map(RateSpend::from).collect(),
        lease: lease.zip(t.max_concurrent).map(|(bucket, cap)| LeaseTake {
            bucket,
            cap: Some(cap),
            purge: t.leases.lapsed(now),
        }),
        touch: None,
    }
}

/// Admits as the validate flow does: checks the token as read, writes, and
/// on a failed condition decides again on the token the store returned.
/// `lease`: acquire a lease lapsing at that bucket (unix seconds).
async fn admit(s: &dyn Store, id: &str, lease: Option<i64>) -> Got {
    admit_at(s, id, lease, dates::now()).await
}

async fn admit_at(s: &dyn Store, id: &str, lease: Option<i64>, now: time::OffsetDateTime) -> Got {
    admit_cost_at(s, id, lease, 1, now).await
}

/// As `admit_at`, spending `cost` uses.
async fn admit_cost_at(
    s: &dyn Store,
    id: &str,
    lease: Option<i64>,
    cost: u64,
    now: time::OffsetDateTime,
) -> Got {
    let input = ValidateInput {
        acquire: lease.is_some(),
        cost: Some(cost),
        ..Default::default()
    };
    let mut known = s.get(id).await.unwrap();
    let version = known.as_ref().map(|t| t.version);
    loop {
        let Some(t) = known else {
            return Got::NotFound;
        };
        if Some(t.version) != version {
            return Got::Moved;
        }
        let standings = match checks::check_limits(&t, &input, now) {
            Ok(standings) => standings,
            Err(reason) => return Got::Refused(reason),
        };
        match s
            .admit(&admission_for(&t, &standings, lease, cost, now))
            .await
            .unwrap()
        {
            AdmitOutcome::Admitted {
                remaining,
                rate_used,
            } => {
                return Got::Admitted {
                    remaining,
                    rate_used,
                }
            }
            AdmitOutcome::Changed(now) => known = now.map(|t| *t),
        }
    }
}

async fn admit_use(s: &dyn Store, id: &str) -> Got {
    admit(s, id, None).await
}

/// `n` admissions of a use racing each other, all decided at one instant
/// (so a race never straddles two rate-limit windows).
async fn race_uses(s: &Arc<dyn Store>, id: &str, n: usize) -> Vec<Got> {
    let now = dates::now();
    join_all((0..n).map(|_| async move { admit_at(&**s, id, None, now).await })).await
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
        s.put_new(&rec, None, &audit_of(&rec)).await.unwrap(),
        CreateOutcome::Created
    ));
    assert_eq!(s.get(&rec.id).await.unwrap().as_ref(), Some(&rec));
    // Another token under the same id: refused, nothing overwritten.
    let mut other = rec.clone();
    other.secret_hash = "another secret's hash".into();
    other.description = "other".into();
    assert!(
        s.put_new(&other, None, &audit_of(&other)).await.is_err(),
        "create never overwrites"
    );
    // The same write again (a resend whose first answer was lost): applied
    // once, answered as created.
    assert!(matches!(
        s.put_new(&rec, None, &audit_of(&rec)).await.unwrap(),
        CreateOutcome::Created
    ));
    assert_eq!(s.get(&rec.id).await.unwrap().as_ref(), Some(&rec));
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
        s.put_new(&first, Some(&idem), &audit_of(&first))
            .await
            .unwrap(),
        CreateOutcome::Created
    ));
    let second = record(&o, json!({}));
    let idem2 = IdempotencyRecord {
        token_id: second.id.clone(),
        ..idem.clone()
    };
    match s
        .put_new(&second, Some(&idem2), &audit_of(&second))
        .await
        .unwrap()
    {
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
        s.put_new(&r, None, &audit_of(&r)).await.unwrap();
        ids.push(r.id);
    }
    let other = record(&owner("other"), json!({}));
    s.put_new(&other, None, &audit_of(&other)).await.unwrap();
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
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
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
    assert_eq!(
        s.replace(&rec, &new, &audit_of(&rec)).await.unwrap(),
        Replaced::Done
    );
    let stored = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(stored.description, "x");
    assert_eq!(stored.version, 2);
    assert_eq!(
        s.replace(&rec, &new, &audit_of(&rec)).await.unwrap(),
        Replaced::Moved,
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
        Got::Admitted { .. }
    ));
    assert_eq!(
        s.replace(&stored, &raise, &audit_of(&stored))
            .await
            .unwrap(),
        Replaced::Moved
    );
    let fresh = s.get(&rec.id).await.unwrap().unwrap();
    let raise = rules::patch(
        &fresh,
        json!({"maxUses": 10}).as_object().unwrap(),
        dates::now(),
        lifetimes,
    )
    .unwrap();
    assert_eq!(
        s.replace(&fresh, &raise, &audit_of(&fresh)).await.unwrap(),
        Replaced::Done
    );
    assert_eq!(
        s.get(&rec.id).await.unwrap().unwrap().limits.remaining_uses,
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
    assert_eq!(
        s.replace(&cur, &cleared, &audit_of(&cur)).await.unwrap(),
        Replaced::Done
    );
    let after = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(
        (
            after.limits.max_uses,
            after.limits.remaining_uses,
            after.tags.len()
        ),
        (None, None, 0)
    );
}

async fn delete_is_pinned_to_the_version_read(s: Arc<dyn Store>) {
    let o = owner("del");
    let rec = record(&o, json!({}));
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let mut moved = rec.clone();
    moved.version += 1;
    assert!(!s.delete(&moved, &audit_of(&rec)).await.unwrap());
    assert!(s.get(&rec.id).await.unwrap().is_some());
    assert!(s.delete(&rec, &audit_of(&rec)).await.unwrap());
    assert!(!s.delete(&rec, &audit_of(&rec)).await.unwrap());
    assert_eq!(s.get(&rec.id).await.unwrap(), None);
    // Each applied change left its one record, and the refused ones none.
    let trail = s
        .audit(
            &o,
            &AuditQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(trail.records.len(), 2, "the create and the delete");
}

async fn uses_are_counted_once(s: Arc<dyn Store>) {
    let rec = record(&owner("uses"), json!({"maxUses": 2}));
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let adm = Admission {
        id: &rec.id,
        seen_version: rec.version,
        uses: Some(UsesSpend {
            cost: 1,
            refills: None,
            refill: None,
            seen_remaining: 2,
        }),
        lease: None,
        rates: Vec::new(),
        touch: Some(dates::now()),
    };
    assert_eq!(
        s.admit(&adm).await.unwrap(),
        AdmitOutcome::Admitted {
            remaining: Some(1),
            rate_used: vec![]
        }
    );
    let t = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(t.limits.remaining_uses, Some(1));
    assert!(t.last_used_at.is_some());
    // An admission checked against an older version does not apply: a
    // patch between the read and the write is never missed.
    let mut patched = t.clone();
    patched.description = "narrowed".into();
    patched.version += 1;
    assert_eq!(
        s.replace(&t, &patched, &audit_of(&t)).await.unwrap(),
        Replaced::Done
    );
    match s.admit(&adm).await.unwrap() {
        AdmitOutcome::Changed(Some(now)) => assert_eq!(now.version, patched.version),
        other => panic!("expected the token as it is now, got {other:?}"),
    }
    assert_eq!(
        s.get(&rec.id).await.unwrap().unwrap().limits.remaining_uses,
        Some(1),
        "a moved admission spends nothing"
    );
    assert!(matches!(
        admit_use(&*s, &rec.id).await,
        Got::Admitted { .. }
    ));
    assert!(matches!(
        admit_use(&*s, &rec.id).await,
        Got::Refused(Reason::UsageExhausted)
    ));
    assert!(matches!(
        admit_use(&*s, "0000000000000000000000000a").await,
        Got::NotFound
    ));
}

async fn racing_uses_never_overspend(s: Arc<dyn Store>) {
    let rec = record(&owner("race"), json!({"maxUses": 5}));
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let results = race_uses(&s, &rec.id, 40).await;
    let admitted = results
        .iter()
        .filter(|r| matches!(r, Got::Admitted { .. }))
        .count();
    let exhausted = results
        .iter()
        .filter(|r| matches!(r, Got::Refused(Reason::UsageExhausted)))
        .count();
    assert_eq!((admitted, exhausted), (5, 35));
    assert_eq!(
        s.get(&rec.id).await.unwrap().unwrap().limits.remaining_uses,
        Some(0)
    );
    // Each admitted use saw its own count: exact under races.
    let mut left: Vec<u64> = results
        .iter()
        .filter_map(|r| match r {
            Got::Admitted { remaining, .. } => *remaining,
            _ => None,
        })
        .collect();
    left.sort();
    assert_eq!(left, [0, 1, 2, 3, 4]);
}

/// A renewal or release of `lease` (first taken in `first`) as seen at `now`.
fn lease_move<'a>(
    id: &'a str,
    lease: &'a str,
    first: i64,
    to: Option<i64>,
    seen_version: Option<u64>,
    now: time::OffsetDateTime,
) -> LeaseMove<'a> {
    LeaseMove {
        id,
        lease,
        first_bucket: first,
        to,
        refund: None,
        identity_refund: None,
        seen_version,
        purge: Vec::new(),
        now,
    }
}

async fn leases_take_renew_release(s: Arc<dyn Store>) {
    let rec = record(&owner("lease"), json!({"maxConcurrent": 2}));
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let now = dates::now();
    let sec = now.unix_timestamp();
    let ledger =
        |s: Arc<dyn Store>, id: String| async move { s.get(&id).await.unwrap().unwrap().leases };
    let (lapsed, live) = (sec - 1, sec + 60);
    assert!(matches!(
        admit(&*s, &rec.id, Some(lapsed)).await,
        Got::Admitted { .. }
    ));
    // The lapsed lease frees its slot: the next acquire removes its bucket
    // in its own write, and the one after takes the slot.
    assert!(matches!(
        admit(&*s, &rec.id, Some(live)).await,
        Got::Admitted { .. }
    ));
    assert!(matches!(
        admit(&*s, &rec.id, Some(live)).await,
        Got::Admitted { .. }
    ));
    assert_eq!(
        admit(&*s, &rec.id, Some(live)).await,
        Got::Refused(Reason::ConcurrencyLimit)
    );
    let l = ledger(s.clone(), rec.id.clone()).await;
    assert_eq!((l.held(), l.live(now), l.count_in(lapsed)), (2, 2, 0));
    assert_eq!(l.buckets().count(), 1, "the lapsed bucket is gone");

    let v = rec.version;
    let later = live + 60;
    let renew =
        |lease, first, to, version| lease_move(&rec.id, lease, first, Some(to), Some(version), now);
    assert_eq!(
        s.move_lease(&renew("l2", live, later, v)).await.unwrap(),
        MoveOutcome::Moved { to: Some(later) }
    );
    let l = ledger(s.clone(), rec.id.clone()).await;
    assert_eq!((l.count_in(live), l.count_in(later), l.held()), (1, 1, 2));
    assert_eq!(
        s.move_lease(&renew("l1", lapsed, later, v)).await.unwrap(),
        MoveOutcome::Gone,
        "a lapsed lease cannot be renewed"
    );
    assert_eq!(
        s.move_lease(&renew("l2", live, later + 60, v + 1))
            .await
            .unwrap(),
        MoveOutcome::Stale,
        "a renewal checked against an older version does not apply"
    );
    // The lease's own item says where it is now: renewed again from there.
    assert_eq!(
        s.move_lease(&renew("l2", live, later + 60, v))
            .await
            .unwrap(),
        MoveOutcome::Moved {
            to: Some(later + 60)
        }
    );
    let l = ledger(s.clone(), rec.id.clone()).await;
    assert_eq!(
        (l.count_in(later), l.count_in(later + 60), l.held()),
        (0, 1, 2)
    );
    let after_it = dates::from_millis((later + 61) * 1000);
    assert_eq!(
        s.move_lease(&lease_move(
            &rec.id,
            "l2",
            live,
            Some(later + 200),
            Some(v),
            after_it
        ))
        .await
        .unwrap(),
        MoveOutcome::Gone,
        "a renewal after the lease lapsed does not apply"
    );

    // Releases racing for one lease: exactly one applies.
    let release = |lease, first| lease_move(&rec.id, lease, first, None, None, now);
    let raced = join_all((0..8).map(|_| {
        let s = s.clone();
        let m = release("l3", live);
        async move { s.move_lease(&m).await.unwrap() }
    }))
    .await;
    assert_eq!(
        raced
            .iter()
            .filter(|o| matches!(o, MoveOutcome::Moved { .. }))
            .count(),
        1
    );
    assert!(raced
        .iter()
        .all(|o| matches!(o, MoveOutcome::Moved { .. } | MoveOutcome::Gone)));
    assert_eq!(ledger(s.clone(), rec.id.clone()).await.held(), 1);
    assert_eq!(
        s.move_lease(&release("l2", live)).await.unwrap(),
        MoveOutcome::Moved { to: None }
    );
    assert_eq!(
        s.move_lease(&release("l2", live)).await.unwrap(),
        MoveOutcome::Gone
    );
    assert_eq!(
        s.move_lease(&renew("l2", live, later + 120, v))
            .await
            .unwrap(),
        MoveOutcome::Gone,
        "a released lease cannot be renewed"
    );
    let l = ledger(s.clone(), rec.id.clone()).await;
    assert_eq!((l.held(), l.live(now)), (0, 0));

    // A lease whose bucket an acquire removed (it had lapsed) is gone, even
    // to a caller whose clock still thinks it live.
    let old = sec - 30;
    assert!(matches!(
        admit(&*s, &rec.id, Some(old)).await,
        Got::Admitted { .. }
    ));
    assert!(matches!(
        admit(&*s, &rec.id, Some(live)).await,
        Got::Admitted { .. }
    ));
    assert_eq!(ledger(s.clone(), rec.id.clone()).await.count_in(old), 0);
    let skewed = dates::from_millis((old - 10) * 1000);
    assert_eq!(
        s.move_lease(&lease_move(&rec.id, "l4", old, None, None, skewed))
            .await
            .unwrap(),
        MoveOutcome::Gone
    );
    assert_eq!(ledger(s.clone(), rec.id.clone()).await.held(), 1);
    // Deleting the token ends its leases.
    assert!(s.delete(&rec, &audit_of(&rec)).await.unwrap());
    assert_eq!(
        s.move_lease(&release("l5", live)).await.unwrap(),
        MoveOutcome::Gone
    );
}

/// Renewals leave their old buckets empty; every later write removes the
/// lapsed ones it saw, so they never pile up (and an acquire never finds
/// a holder's lapsed count behind a heap of empty buckets).
async fn moves_remove_lapsed_buckets(s: Arc<dyn Store>) {
    let rec = record(&owner("move"), json!({"maxConcurrent": 1}));
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let base = dates::now().unix_timestamp() - 200;
    let at = |sec: i64| dates::from_millis(sec * 1000);
    let first = base + 10;
    assert!(matches!(
        admit_at(&*s, &rec.id, Some(first), at(base)).await,
        Got::Admitted { .. }
    ));
    // Twenty renewals, five seconds apart, each ten seconds ahead.
    for k in 1..=20 {
        let now = at(base + 5 * k);
        let seen = s.get(&rec.id).await.unwrap().unwrap();
        let mut renewal = lease_move(&rec.id, "r", first, Some(base + 5 * k + 10), None, now);
        renewal.purge = seen.leases.lapsed(now);
        assert!(matches!(
            s.move_lease(&renewal).await.unwrap(),
            MoveOutcome::Moved { .. }
        ));
    }
    let l = s.get(&rec.id).await.unwrap().unwrap().leases;
    assert_eq!(l.held(), 1);
    assert!(l.buckets().count() <= 3, "{:?}", l);
    // A move whose lapsed bucket changed meanwhile is stale: read again.
    let mut stale = lease_move(&rec.id, "r", first, Some(base + 200), None, at(base + 101));
    stale.purge = vec![(base - 1000, 5)];
    assert_eq!(s.move_lease(&stale).await.unwrap(), MoveOutcome::Stale);
}

async fn racing_acquires_never_exceed_cap(s: Arc<dyn Store>) {
    let rec = record(&owner("cap"), json!({"maxConcurrent": 12, "maxUses": 100}));
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let bucket = dates::now().unix_timestamp() + 60;
    let results = join_all((0..60).map(|_| {
        let s = s.clone();
        let id = rec.id.clone();
        async move { admit(&*s, &id, Some(bucket)).await }
    }))
    .await;
    let admitted = results
        .iter()
        .filter(|r| matches!(r, Got::Admitted { .. }))
        .count();
    assert_eq!(admitted, 12);
    assert!(results.iter().all(|r| matches!(
        r,
        Got::Admitted { .. } | Got::Refused(Reason::ConcurrencyLimit)
    )));
    // Each admitted acquire saw its own count: exact under races.
    let mut left: Vec<u64> = results
        .iter()
        .filter_map(|r| match r {
            Got::Admitted { remaining, .. } => *remaining,
            _ => None,
        })
        .collect();
    left.sort();
    assert_eq!(left, (88..100).collect::<Vec<u64>>());
    let t = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(t.leases.held(), 12);
    assert_eq!(
        t.limits.remaining_uses,
        Some(88),
        "a refused acquire spends no use"
    );
}

/// Twelve leases lapse together; sixty acquirers race for the freed slots:
/// exactly twelve win, and the lapsed bucket is removed exactly once.
async fn racing_acquires_reuse_lapsed_slots_exactly(s: Arc<dyn Store>) {
    let rec = record(&owner("lapse"), json!({"maxConcurrent": 12}));
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let sec = dates::now().unix_timestamp();
    // Taken ten seconds ago (the store has no clock: what has lapsed is
    // what the caller's checks say).
    let then = dates::from_millis((sec - 10) * 1000);
    for _ in 0..12 {
        assert!(matches!(
            admit_at(&*s, &rec.id, Some(sec - 1), then).await,
            Got::Admitted { .. }
        ));
    }
    let results = join_all((0..60).map(|_| {
        let s = s.clone();
        let id = rec.id.clone();
        async move { admit(&*s, &id, Some(sec + 60)).await }
    }))
    .await;
    let admitted = results
        .iter()
        .filter(|r| matches!(r, Got::Admitted { .. }))
        .count();
    assert_eq!(admitted, 12);
    let l = s.get(&rec.id).await.unwrap().unwrap().leases;
    assert_eq!(
        (l.held(), l.count_in(sec - 1), l.count_in(sec + 60)),
        (12, 0, 12)
    );
}

async fn touch_is_rate_limited(s: Arc<dyn Store>) {
    let rec = record(&owner("touch"), json!({}));
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
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

async fn racing_rate_limits_never_over_admit(s: Arc<dyn Store>) {
    // Two limits race 40 admissions: the tighter one (5 an hour) admits
    // exactly 5, each counted once in both, and the refused spend nothing.
    let rec = record(
        &owner("rate"),
        json!({"maxUses": 100, "rateLimits": [
            {"name": "hour", "limit": 5, "periodSeconds": 3600},
            {"name": "day", "limit": 7, "periodSeconds": 86400}]}),
    );
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let results = race_uses(&s, &rec.id, 40).await;
    let mut used: Vec<Vec<u32>> = results
        .iter()
        .filter_map(|r| match r {
            Got::Admitted { rate_used, .. } => Some(rate_used.clone()),
            _ => None,
        })
        .collect();
    used.sort();
    assert_eq!(used, (1..=5).map(|n| vec![n, n]).collect::<Vec<_>>());
    assert!(results.iter().all(|r| match r {
        Got::Admitted { .. } => true,
        Got::Refused(Reason::RateLimited { retry_after }) => (1..=3600).contains(retry_after),
        _ => false,
    }));
    let t = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(
        t.limits.remaining_uses,
        Some(95),
        "a refused admission spends no use"
    );
    let counts: Vec<u32> = t.limits.rate_counts.values().map(|c| c.count).collect();
    assert_eq!(counts, [5, 5]);
}

async fn rate_windows_start_over(s: Arc<dyn Store>) {
    let lifetimes = Lifetimes {
        default_ttl_seconds: 3600,
        max_ttl_seconds: 86_400,
    };
    let rec = record(
        &owner("window"),
        json!({"rateLimits": [{"name": "day", "limit": 2, "periodSeconds": 86400}]}),
    );
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let now = dates::now();
    let yesterday = now - Duration::days(1);
    // Two admissions in yesterday's window fill it...
    for n in 1..=2 {
        assert_eq!(
            admit_at(&*s, &rec.id, None, yesterday).await,
            Got::Admitted {
                remaining: None,
                rate_used: vec![n]
            }
        );
    }
    assert!(matches!(
        admit_at(&*s, &rec.id, None, yesterday).await,
        Got::Refused(Reason::RateLimited { .. })
    ));
    // ...and today's starts over.
    let t = s.get(&rec.id).await.unwrap().unwrap();
    let today = checks::check_limits(&t, &ValidateInput::default(), now).unwrap();
    assert_eq!(today.rates[0].used, None);
    let fresh = admission_for(&t, &today, None, 1, now);
    assert!(matches!(
        s.admit(&fresh).await.unwrap(),
        AdmitOutcome::Admitted { .. }
    ));
    // A second "new window" admission made on the same stale read is
    // refused: somebody already started today's window.
    match s.admit(&fresh).await.unwrap() {
        AdmitOutcome::Changed(Some(now_rec)) => {
            assert_eq!(now_rec.limits.rate_counts["day"].count, 1)
        }
        other => panic!("expected the token as it is now, got {other:?}"),
    }
    assert_eq!(
        admit(&*s, &rec.id, None).await,
        Got::Admitted {
            remaining: None,
            rate_used: vec![2]
        }
    );
    // A patch lowering the limit keeps the count and applies at once.
    let cur = s.get(&rec.id).await.unwrap().unwrap();
    let lowered = rules::patch(
        &cur,
        json!({"rateLimits": [{"name": "day", "limit": 1, "periodSeconds": 86400}]})
            .as_object()
            .unwrap(),
        dates::now(),
        lifetimes,
    )
    .unwrap();
    assert_eq!(
        s.replace(&cur, &lowered, &audit_of(&cur)).await.unwrap(),
        Replaced::Done
    );
    let after = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(after.limits.rate_counts["day"].count, 2);
    assert!(matches!(
        admit(&*s, &rec.id, None).await,
        Got::Refused(Reason::RateLimited { .. })
    ));
    // Another period starts a new window at once.
    let cur = after;
    let hourly = rules::patch(
        &cur,
        json!({"rateLimits": [{"name": "day", "limit": 1, "periodSeconds": 3600}]})
            .as_object()
            .unwrap(),
        dates::now(),
        lifetimes,
    )
    .unwrap();
    assert_eq!(
        s.replace(&cur, &hourly, &audit_of(&cur)).await.unwrap(),
        Replaced::Done
    );
    assert_eq!(
        admit(&*s, &rec.id, None).await,
        Got::Admitted {
            remaining: None,
            rate_used: vec![1]
        }
    );
}

/// `n` admissions of `cost` uses racing each other at one instant.
async fn race_costs(
    s: &Arc<dyn Store>,
    id: &str,
    n: usize,
    cost: u64,
    now: time::OffsetDateTime,
) -> Vec<Got> {
    join_all((0..n).map(|_| async move { admit_cost_at(&**s, id, None, cost, now).await })).await
}

fn admitted(results: &[Got]) -> usize {
    results
        .iter()
        .filter(|r| matches!(r, Got::Admitted { .. }))
        .count()
}

async fn racing_costs_never_overspend(s: Arc<dyn Store>) {
    let rec = record(&owner("cost"), json!({"maxUses": 100}));
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let results = race_costs(&s, &rec.id, 30, 7, dates::now()).await;
    assert_eq!(admitted(&results), 14, "{results:?}");
    assert!(results.iter().all(|r| matches!(
        r,
        Got::Admitted { .. } | Got::Refused(Reason::UsageExhausted)
    )));
    assert_eq!(
        s.get(&rec.id).await.unwrap().unwrap().limits.remaining_uses,
        Some(2)
    );
    // A cost above what remains spends nothing; cost 0 checks, spending nothing.
    assert_eq!(
        admit_cost_at(&*s, &rec.id, None, 3, dates::now()).await,
        Got::Refused(Reason::UsageExhausted)
    );
    assert_eq!(
        admit_cost_at(&*s, &rec.id, None, 0, dates::now()).await,
        Got::Admitted {
            remaining: Some(2),
            rate_used: vec![]
        }
    );
    assert_eq!(
        admit_cost_at(&*s, &rec.id, None, 2, dates::now()).await,
        Got::Admitted {
            remaining: Some(0),
            rate_used: vec![]
        }
    );
    // An exhausted token refuses even a check of cost 0.
    assert_eq!(
        admit_cost_at(&*s, &rec.id, None, 0, dates::now()).await,
        Got::Refused(Reason::UsageExhausted)
    );
}

async fn a_refill_applies_once_under_racing_admissions(s: Arc<dyn Store>) {
    let rec = record(
        &owner("refill"),
        json!({"maxUses": 100, "refill": {"amount": 40, "interval": "daily"}}),
    );
    s.put_new(&rec, None, &audit_of(&rec)).await.unwrap();
    let today = rec
        .limits
        .refilled_at
        .expect("a refilling token records its boundary");
    // Spent down to 3 today.
    let results = race_costs(&s, &rec.id, 1, 97, dates::now()).await;
    assert_eq!(admitted(&results), 1);
    // 60 admissions racing just past the next midnight: the first write
    // resets to 40 with its own spend, the others spend from that.
    let midnight = dates::from_millis((today + 86_400) * 1000);
    let results = race_costs(&s, &rec.id, 60, 1, midnight + Duration::seconds(1)).await;
    assert_eq!(admitted(&results), 40, "{results:?}");
    let t = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(t.limits.remaining_uses, Some(0));
    assert_eq!(t.limits.refilled_at, Some(today + 86_400));
    let mut left: Vec<u64> = results
        .iter()
        .filter_map(|r| match r {
            Got::Admitted { remaining, .. } => *remaining,
            _ => None,
        })
        .collect();
    left.sort();
    assert_eq!(
        left,
        (0..40).collect::<Vec<u64>>(),
        "one refill, no spend lost"
    );
    // Racing across the boundary after that: one refill again.
    let next = midnight + Duration::days(1);
    let mixed = join_all((0..20).map(|i| {
        let s = s.clone();
        let id = rec.id.clone();
        async move {
            let at = if i % 2 == 0 {
                next - Duration::seconds(1)
            } else {
                next
            };
            (at >= next, admit_cost_at(&*s, &id, None, 1, at).await)
        }
    }))
    .await;
    let after: usize = mixed
        .iter()
        .filter(|(after, r)| *after && matches!(r, Got::Admitted { .. }))
        .count();
    assert_eq!(
        after, 10,
        "every admission past midnight spent from the refill"
    );
    let t = s.get(&rec.id).await.unwrap().unwrap();
    assert_eq!(t.limits.refilled_at, Some(today + 2 * 86_400));
    // Those before midnight found nothing left, or raced a refill and were
    // decided again on it: either way one reset of 40, spent 10 or more.
    let before_admitted = mixed
        .iter()
        .filter(|(after, r)| !*after && matches!(r, Got::Admitted { .. }))
        .count();
    assert_eq!(
        t.limits.remaining_uses,
        Some(40 - 10 - before_admitted as u64),
        "{mixed:?}"
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
            async fn delete_is_pinned_to_the_version_read() {
                super::delete_is_pinned_to_the_version_read(store().await).await
            }
            #[tokio::test]
            async fn uses_are_counted_once() {
                super::uses_are_counted_once(store().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_uses_never_overspend() {
                super::racing_uses_never_overspend(store().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_costs_never_overspend() {
                super::racing_costs_never_overspend(store().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_refill_applies_once_under_racing_admissions() {
                super::a_refill_applies_once_under_racing_admissions(store().await).await
            }
            #[tokio::test]
            async fn leases_take_renew_release() {
                super::leases_take_renew_release(store().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moves_remove_lapsed_buckets() {
                super::moves_remove_lapsed_buckets(store().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn racing_acquires_reuse_lapsed_slots_exactly() {
                super::racing_acquires_reuse_lapsed_slots_exactly(store().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_acquires_never_exceed_cap() {
                super::racing_acquires_never_exceed_cap(store().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_rate_limits_never_over_admit() {
                super::racing_rate_limits_never_over_admit(store().await).await
            }
            #[tokio::test]
            async fn rate_windows_start_over() {
                super::rate_windows_start_over(store().await).await
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
