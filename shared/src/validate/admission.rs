//! Admission: what a validate that passed every check spends (a use, a
//! lease slot), atomically in the store, and the `lastUsedAt` refresh.

use time::{Duration, OffsetDateTime};

use super::Reason;
use crate::store::{Admission, AdmitOutcome, Store, StoreError};
use crate::token::{Keys, LeaseId, TokenId, TokenRecord};
use crate::{codec, dates};

/// What an admitted validate took.
#[derive(Debug, Default)]
pub struct Admitted {
    /// `remainingUses` right after this use, exact under races.
    pub remaining_uses: Option<u64>,
    /// The lease taken, with its expiry in unix milliseconds.
    pub lease: Option<(LeaseId, i64)>,
}

/// `lastUsedAt` is written at most once a minute.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// Spends what `rec` needs spent for this validate, or the reason it
/// cannot: `USAGE_EXHAUSTED` or `CONCURRENCY_LIMIT` (or `NOT_FOUND` if
/// the token was deleted since it was read).
pub async fn admit(
    store: &dyn Store,
    keys: &Keys,
    id: &TokenId,
    rec: &TokenRecord,
    acquire: bool,
    lease_seconds: i64,
    now: OffsetDateTime,
) -> Result<Result<Admitted, Reason>, StoreError> {
    let touch = rec
        .last_used_at
        .is_none_or(|l| l <= now - TOUCH_EVERY)
        .then_some(now);
    let consume = rec.max_uses.is_some();
    let lease = (acquire && rec.max_concurrent.is_some()).then(|| {
        (
            keys.new_lease_id(id),
            dates::millis(now) + lease_seconds * 1000,
        )
    });
    if !consume && lease.is_none() {
        // Nothing to spend: the read already decided.
        if let Some(t) = touch {
            store.touch(id.as_str(), t, now - TOUCH_EVERY).await?;
        }
        return Ok(Ok(Admitted::default()));
    }
    let attempt = codec::encode(&codec::random_bytes::<10>());
    let admission = Admission {
        id: id.as_str(),
        attempt_id: &attempt,
        consume_use: consume,
        lease: lease.as_ref().map(|(l, e)| (l.as_str(), *e)),
        touch,
    };
    // Reclaiming lapsed leases frees slots; each round either admits,
    // refuses, or made progress freeing a slot, so a few rounds suffice.
    for _ in 0..6 {
        match store.admit(&admission).await? {
            AdmitOutcome::Admitted { remaining } => {
                return Ok(Ok(Admitted {
                    remaining_uses: remaining,
                    lease,
                }))
            }
            AdmitOutcome::NotFound => return Ok(Err(Reason::NotFound)),
            AdmitOutcome::Exhausted => return Ok(Err(Reason::UsageExhausted)),
            AdmitOutcome::Limit(current) => {
                if consume && current.remaining_uses.unwrap_or(0) == 0 {
                    return Ok(Err(Reason::UsageExhausted));
                }
                let now_ms = dates::millis(dates::now());
                let lapsed: Vec<(String, i64)> = current
                    .leases
                    .iter()
                    .filter(|(_, &exp)| exp <= now_ms)
                    .map(|(l, &e)| (l.clone(), e))
                    .collect();
                let cap = current.max_concurrent.map_or(0, |c| c as usize);
                if lapsed.is_empty() && current.leases.len() >= cap {
                    return Ok(Err(Reason::ConcurrencyLimit));
                }
                if !lapsed.is_empty() {
                    store.reclaim(id.as_str(), &lapsed).await?;
                }
            }
        }
    }
    Ok(Err(Reason::ConcurrencyLimit))
}
