//! The limits an admission spends, one home for every holder of them (a
//! token, and the identity its tokens share): uses as credits, with cost
//! and refill (`uses`), rate limits counted in aligned windows (`rate`)
//! and concurrency leases in a ledger of the instants they lapse
//! (`leases`, a token's alone).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

pub mod leases;
pub mod rate;
pub mod uses;

pub use leases::LeaseLedger;
pub use rate::{RateCount, RateLimit};
pub use uses::{Refill, Uses};

use crate::token::fields::{Change, FieldErrors};

/// A holder's uses and rate limits as stored, with the counts admissions
/// write. A token and an identity hold one each and are checked and
/// spent by the same rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Limits {
    pub max_uses: Option<u64>,
    pub remaining_uses: Option<u64>,
    /// A reset of `remainingUses` at each boundary (see `uses`).
    pub refill: Option<Refill>,
    /// Unix seconds of the last refill boundary applied: written by
    /// create, by a patch of the uses, and by the admission that refills.
    pub refilled_at: Option<i64>,
    /// Named limits on admissions per window (see `rate`).
    pub rate_limits: Option<Vec<RateLimit>>,
    /// Each limit's count, by name: written only by admissions.
    pub rate_counts: BTreeMap<String, RateCount>,
}

/// Where a holder's limits stand for one admission: its uses (when it
/// counts them) and every rate limit's window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standings {
    pub uses: Option<uses::UsesStanding>,
    pub rates: Vec<rate::Standing>,
}

/// Why a holder's limits refuse an admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Fewer uses remain than the call costs.
    Uses,
    /// A window is full: room again in `retry_after` whole seconds.
    Rate { retry_after: i64 },
}

impl Limits {
    /// The uses, as the rules of `uses` read them.
    pub fn uses(&self) -> Uses {
        Uses {
            max: self.max_uses,
            remaining: self.remaining_uses,
            refill: self.refill,
            refilled_at: self.refilled_at,
        }
    }

    /// Whether an admission spends anything here (a use or a count).
    pub fn counts(&self) -> bool {
        self.max_uses.is_some() || self.rate_limits.is_some()
    }

    /// Whether `other` counts uses differently (`maxUses` or `refill`):
    /// a patch then writes what remains, pinned to what it saw.
    pub fn uses_differ(&self, other: &Limits) -> bool {
        self.max_uses != other.max_uses || self.refill != other.refill
    }

    /// Where the limits stand for an admission spending `cost` uses at
    /// `now`, or which of them refuses it: uses first, then the windows.
    pub fn check(&self, cost: u64, now: OffsetDateTime) -> Result<Standings, Exceeded> {
        let uses = self.uses().standing(now);
        if uses.is_some_and(|u| !uses::affordable(&u, cost)) {
            return Err(Exceeded::Uses);
        }
        let limits = self.rate_limits.as_deref().unwrap_or_default();
        let rates = rate::standings(limits, &self.rate_counts, now);
        if rates.iter().any(rate::Standing::is_full) {
            return Err(Exceeded::Rate {
                retry_after: rate::retry_after(&rates, now),
            });
        }
        Ok(Standings { uses, rates })
    }

    /// Records what an admission wrote: `remaining` uses (and the refill
    /// boundary it applied) and each window's count, in `standings`
    /// order. Answers each limit as the answer shows it.
    pub fn spent(
        &mut self,
        standings: &Standings,
        remaining: Option<u64>,
        refilled: Option<i64>,
        rate_used: &[u32],
    ) -> Vec<Value> {
        self.remaining_uses = remaining;
        if refilled.is_some() {
            self.refilled_at = refilled;
        }
        let mut answered = Vec::with_capacity(standings.rates.len());
        for (s, used) in standings.rates.iter().zip(rate_used) {
            self.rate_counts.insert(
                s.name.clone(),
                RateCount {
                    period: s.period,
                    window: s.window,
                    count: *used,
                },
            );
            answered.push(s.answered(*used));
        }
        answered
    }

    /// Applies a create's or a patch's changes to the limits, `current`
    /// being the limits before a patch (`None` on create).
    pub fn apply(
        &mut self,
        max_uses: Change<u64>,
        refill: Change<Refill>,
        rate_limits: Change<Vec<RateLimit>>,
        current: Option<&Limits>,
        now: OffsetDateTime,
    ) {
        max_uses.apply(&mut self.max_uses);
        refill.apply(&mut self.refill);
        self.settle_uses(current, now);
        // Counts stay: a lowered limit applies to the window under way,
        // another period starts a new one (see `rate::standings`).
        rate_limits.apply(&mut self.rate_limits);
        if self.rate_limits.as_ref().is_some_and(Vec::is_empty) {
            self.rate_limits = None;
        }
    }

    /// What remains after a create (`current: None`) or a patch of the
    /// uses. `maxUses` counts uses in all: raising or lowering it keeps
    /// those already spent (counted from what remains now, a due refill
    /// applied). A refill set or changed counts its boundaries from now:
    /// the next one resets.
    pub fn settle_uses(&mut self, current: Option<&Limits>, now: OffsetDateTime) {
        let Some(max) = self.max_uses else {
            (self.remaining_uses, self.refilled_at) = (None, None);
            return;
        };
        let Some(cur) = current.filter(|c| c.uses_differ(self)) else {
            if current.is_none() {
                self.remaining_uses = Some(max);
                self.refilled_at = self.refill.map(|r| r.last_boundary(now));
            }
            return;
        };
        let remaining = match (cur.max_uses, cur.uses().standing(now)) {
            (Some(old_max), Some(s)) => max.saturating_sub(old_max.saturating_sub(s.remaining)),
            _ => max,
        };
        self.remaining_uses = Some(remaining);
        self.refilled_at = self.refill.map(|r| r.last_boundary(now));
    }

    /// The rules across the fields: a refill needs `maxUses` to count.
    pub fn check_fields(&self, errs: &mut FieldErrors) {
        if self.refill.is_some() && self.max_uses.is_none() {
            errs.add("refill", "needs maxUses: the uses it resets");
        }
    }

    /// The members an object shows: the uses (`maxUses`, `remainingUses`,
    /// `refill`, `nextRefillAt`) and `rateLimits` as set.
    pub fn show(&self, m: &mut Map<String, Value>, now: OffsetDateTime) {
        self.uses().show(m, now);
        if let Some(limits) = &self.rate_limits {
            let shown: Vec<Value> = limits
                .iter()
                .map(|l| json!({"name": l.name, "limit": l.limit, "periodSeconds": l.period_seconds}))
                .collect();
            m.insert("rateLimits".into(), Value::Array(shown));
            // Where each window stands now (read-only): what the console
            // and an owner's dashboard show beside the limits.
            let windows: Vec<Value> = rate::standings(limits, &self.rate_counts, now)
                .iter()
                .map(|s| s.answered(s.used.unwrap_or(0)))
                .collect();
            m.insert("rateLimitWindows".into(), Value::Array(windows));
        }
    }
}
