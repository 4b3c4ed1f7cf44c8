//! Admission: what a validate that passed every check spends (its cost in
//! uses, a count of every rate limit, a lease slot), all in one conditional write
//! pinned to what the checks saw, and the `lastUsedAt` refresh.

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::checks::Standings;
use super::ValidateInput;
use crate::credentials::Keyring;
use crate::identity::IdentityRecord;
use crate::limits::leases;
use crate::store::{
    Admission, AdmitOutcome, JointOutcome, LeaseTake, RateSpend, Store, StoreError, UsesSpend,
};
use crate::token::{LeaseId, TokenId, TokenRecord};

/// What an admitted validate took.
#[derive(Debug, Default)]
pub struct Admitted {
    /// `remainingUses` right after this use, exact under races.
    pub remaining_uses: Option<u64>,
    /// The lease taken, with its expiry in unix milliseconds.
    pub lease: Option<(LeaseId, i64)>,
    /// Each rate limit as the answer shows it, this validate counted.
    pub rate_limits: Vec<Value>,
    /// The token's identity as the answer shows it: its id, `externalId`,
    /// what remains of its uses and its windows, this validate counted.
    pub identity: Option<Value>,
}

/// What the write found.
#[derive(Debug)]
pub enum Outcome {
    Admitted(Admitted),
    /// Its condition failed: the token as it is now (`None`: gone).
    Changed(Option<Box<TokenRecord>>),
    /// The identity's condition failed: the identity as it is now.
    IdentityChanged(Option<Box<IdentityRecord>>),
}

/// The token's identity, read, with where its limits stand.
pub struct Shared<'a> {
    pub identity: &'a mut IdentityRecord,
    pub standings: &'a Standings,
}

/// The identity as an answer shows it: its id, `externalId`, what
/// remains of its uses and its windows (this validate counted).
pub fn shown(identity: &IdentityRecord, remaining: Option<u64>, rates: Vec<Value>) -> Value {
    let mut v = json!({"id": identity.id, "externalId": identity.external_id});
    if remaining.is_some() {
        v["remainingUses"] = json!(remaining);
    }
    if !rates.is_empty() {
        v["rateLimits"] = json!(rates);
    }
    v
}

/// `lastUsedAt` is written at most once a minute.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// Whether admitting `rec` spends anything; if not, the consistent read
/// that found it decided.
pub fn spends(rec: &TokenRecord, input: &ValidateInput) -> bool {
    rec.limits.max_uses.is_some()
        || rec.limits.rate_limits.is_some()
        || (input.acquire && (rec.max_concurrent.is_some() || input.reserve.is_some()))
}

fn touch_due(rec: &TokenRecord, now: OffsetDateTime) -> Option<OffsetDateTime> {
    rec.last_used_at
        .is_none_or(|l| l <= now - TOUCH_EVERY)
        .then_some(now)
}

/// Refreshes `lastUsedAt` of a token that spends nothing, when stale.
pub async fn touch(
    store: &dyn Store,
    rec: &TokenRecord,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    match touch_due(rec, now) {
        Some(t) => store.touch(&rec.id, t, now - TOUCH_EVERY).await,
        None => Ok(()),
    }
}

/// Spends what `rec` needs spent for this validate in one conditional
/// write, pinned to `rec`'s version and to the limits' `standings` as
/// checked: `spend` uses (from a due refill's amount when one is due), a
/// count of each rate limit, and a lease slot when acquiring under a cap
/// or reserving. With an identity that counts (`shared`), its uses and
/// counts are spent in the same atomic write, under the same kind of
/// condition, or nothing is. Admitted, `rec` (and the identity) are
/// updated to what was written.
#[allow(clippy::too_many_arguments)]
pub async fn admit(
    store: &dyn Store,
    keys: &Keyring,
    id: &TokenId,
    rec: &mut TokenRecord,
    standings: &Standings,
    input: &ValidateInput,
    lease_seconds: i64,
    now: OffsetDateTime,
    shared: Option<Shared<'_>>,
) -> Result<Outcome, StoreError> {
    let spend = input.spend();
    // The lease id carries the reserve when a holder counts uses.
    let identity_counts_uses = shared
        .as_ref()
        .is_some_and(|s| s.identity.limits.max_uses.is_some());
    let reserved = input
        .reserve
        .filter(|_| rec.limits.max_uses.is_some() || identity_counts_uses)
        .unwrap_or(0);
    let lease = match rec.max_concurrent {
        cap @ Some(_) if input.acquire => Some(cap),
        // A reserving acquire answers a lease even without a cap.
        None if input.acquire && input.reserve.is_some() => Some(None),
        _ => None,
    }
    .map(|cap| LeaseTake {
        bucket: leases::bucket_for(now, lease_seconds),
        cap,
        purge: rec.leases.lapsed(now),
    });
    let uses = standings
        .uses
        .map(|u| UsesSpend::of(&rec.limits, &u, spend));
    let touch = touch_due(rec, now);
    let admission = Admission {
        id: id.as_str(),
        seen_version: rec.version,
        uses: uses.clone(),
        rates: standings.rates.iter().map(RateSpend::from).collect(),
        lease: lease.clone(),
        touch,
    };
    let (remaining, rate_used, identity) = match shared {
        Some(Shared {
            identity,
            standings: its,
        }) if identity.limits.counts() => {
            let its_uses = its.uses.map(|u| UsesSpend::of(&identity.limits, &u, spend));
            let identity_admission = Admission {
                id: &identity.id,
                seen_version: identity.version,
                uses: its_uses.clone(),
                rates: its.rates.iter().map(RateSpend::from).collect(),
                lease: None,
                touch: None,
            };
            let (token_spent, identity_spent) =
                match store.admit_joint(&admission, &identity_admission).await? {
                    JointOutcome::Admitted { token, identity } => (token, identity),
                    JointOutcome::TokenChanged(now_rec) => return Ok(Outcome::Changed(now_rec)),
                    JointOutcome::IdentityChanged(now_identity) => {
                        return Ok(Outcome::IdentityChanged(now_identity))
                    }
                };
            let refilled = its_uses
                .and_then(|u| u.refill)
                .map(|(boundary, _)| boundary);
            let its_rates = identity.limits.spent(
                its,
                identity_spent.remaining,
                refilled,
                &identity_spent.rate_used,
            );
            let shown = shown(identity, identity_spent.remaining, its_rates);
            (token_spent.remaining, token_spent.rate_used, Some(shown))
        }
        // An identity with no limits only shows in the answer.
        other => match store.admit(&admission).await? {
            AdmitOutcome::Admitted {
                remaining,
                rate_used,
            } => {
                let shown = other.map(|s| shown(s.identity, None, Vec::new()));
                (remaining, rate_used, shown)
            }
            AdmitOutcome::Changed(now_rec) => return Ok(Outcome::Changed(now_rec)),
        },
    };
    // The token as written, for the answer and the next guess.
    let refilled = uses.and_then(|u| u.refill).map(|(boundary, _)| boundary);
    let rate_limits = rec.limits.spent(standings, remaining, refilled, &rate_used);
    if touch.is_some() {
        rec.last_used_at = touch;
    }
    // The lease id is made only now: one is never handed out unadmitted.
    let lease = lease.map(|l| {
        rec.leases.take(l.bucket, &l.purge);
        (keys.new_lease_id(id, l.bucket, reserved), l.bucket * 1000)
    });
    Ok(Outcome::Admitted(Admitted {
        remaining_uses: remaining,
        lease,
        rate_limits,
        identity,
    }))
}
