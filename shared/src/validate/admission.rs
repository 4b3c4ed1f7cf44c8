//! Admission: what a validate that passed every check spends (a use, a
//! lease slot), atomically in the store, and the `lastUsedAt` refresh.

use time::{Duration, OffsetDateTime};

use super::Reason;
use crate::store::{Admission, AdmitOutcome, Store, StoreError};
use crate::token::{Keyring, LeaseId, TokenId, TokenRecord};
use crate::{codec, dates};

/// What an admitted validate took.
#[derive(Debug, Default)]
pub struct Admitted {
    /// `remainingUses` right after this use, exact under races.
    pub remaining_uses: Option<u64>,
    /// The lease taken, with its expiry in unix milliseconds.
    pub lease: Option<(LeaseId, i64)>,
}

/// Why a validate was not admitted, or that it must be decided again.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAdmitted {
    Refused(Reason),
    /// The token changed between the read and the write: read it again.
    Moved,
}

/// `lastUsedAt` is written at most once a minute.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// Spends what `rec` needs spent for this validate, in one conditional
/// write pinned to the version that was checked. A full cap reclaims
/// lapsed leases and tries again; anything else is final.
pub async fn admit(
    store: &dyn Store,
    keys: &Keyring,
    id: &TokenId,
    rec: &TokenRecord,
    acquire: bool,
    lease_seconds: i64,
    now: OffsetDateTime,
) -> Result<Result<Admitted, NotAdmitted>, StoreError> {
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
        // Nothing to spend: the consistent read already decided.
        if let Some(t) = touch {
            store.touch(id.as_str(), t, now - TOUCH_EVERY).await?;
        }
        return Ok(Ok(Admitted::default()));
    }
    let attempt = codec::encode(&codec::random_bytes::<10>());
    let admission = Admission {
        id: id.as_str(),
        attempt_id: &attempt,
        seen_version: rec.version,
        consume_use: consume,
        seen_remaining: rec.remaining_uses,
        lease: lease.as_ref().map(|(l, e)| (l.as_str(), *e)),
        touch,
    };
    // Each round admits, refuses, or frees at least one lapsed slot.
    for _ in 0..4 {
        match store.admit(&admission).await? {
            AdmitOutcome::Admitted { remaining } => {
                return Ok(Ok(Admitted {
                    remaining_uses: remaining,
                    lease,
                }))
            }
            AdmitOutcome::NotFound => return Ok(Err(NotAdmitted::Refused(Reason::NotFound))),
            AdmitOutcome::Exhausted => {
                return Ok(Err(NotAdmitted::Refused(Reason::UsageExhausted)))
            }
            AdmitOutcome::Moved => return Ok(Err(NotAdmitted::Moved)),
            AdmitOutcome::AtCap => {
                if !reclaim_lapsed(store, id).await? {
                    return Ok(Err(NotAdmitted::Refused(Reason::ConcurrencyLimit)));
                }
            }
        }
    }
    Ok(Err(NotAdmitted::Refused(Reason::ConcurrencyLimit)))
}

/// Frees the token's lapsed leases, without waiting for DynamoDB's TTL;
/// `false` when none had lapsed (the cap is really full).
pub async fn reclaim_lapsed(store: &dyn Store, id: &TokenId) -> Result<bool, StoreError> {
    let now_ms = dates::millis(dates::now());
    let lapsed: Vec<(String, i64)> = store
        .leases(id.as_str())
        .await?
        .into_iter()
        .filter(|(_, expiry)| *expiry <= now_ms)
        .collect();
    if lapsed.is_empty() {
        return Ok(false);
    }
    // A concurrent reclaimer may win some: either way slots were freed.
    store.reclaim(id.as_str(), &lapsed).await?;
    Ok(true)
}
