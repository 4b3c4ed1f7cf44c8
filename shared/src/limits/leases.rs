//! Concurrency leases, counted in the token itself. The token keeps a
//! ledger: how many leases lapse at each instant of a coarse grid (a
//! bucket), and their total, `leaseTotal`. Taking a lease is then one
//! conditional write to the token: one more in the bucket it lapses in,
//! with the lapsed buckets seen removed in the same write, under the
//! condition `leaseTotal < maxConcurrent + (the counts removed)`. Renewals
//! and releases remove the lapsed buckets they saw too, so buckets left
//! empty by them never pile up.
//!
//! Why it never over-admits: every write to the ledger keeps `leaseTotal`
//! equal to the sum of the buckets, and an admitted acquire leaves that sum
//! at most the cap. Live leases are a part of it, so they never exceed the
//! cap, whatever interleaving. A slot whose holder vanished is free once
//! its bucket lapses: the next acquire removes the bucket, no TTL involved.
//!
//! The grid is a thirtieth of the lease period (at least a second), so a
//! lease lasts at least `TOLLGATE_LEASE_SECONDS` and at most a thirtieth
//! more, and the ledger holds about 31 live buckets at most: the item, and
//! the cost of every write to it, stays small whatever `maxConcurrent` is.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::dates;

/// A lease period spans this many grid steps.
const STEPS_PER_PERIOD: i64 = 30;

/// Lapsed buckets one write removes at most, those still counting leases
/// first. Every write to the ledger removes the lapsed buckets it saw, so
/// few lapse between two writes (about `STEPS_PER_PERIOD` + 1 at most are
/// live at a time): in practice all.
pub const PURGE_MAX: usize = 64;

/// Bucket (unix seconds at which its leases lapse) → leases in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseLedger(BTreeMap<i64, u32>);

/// The grid step for a lease period, in seconds.
fn step(lease_seconds: i64) -> i64 {
    ((lease_seconds + STEPS_PER_PERIOD - 1) / STEPS_PER_PERIOD).max(1)
}

/// The bucket of a lease taken or renewed at `now`: `lease_seconds` later,
/// rounded up to the grid.
pub fn bucket_for(now: OffsetDateTime, lease_seconds: i64) -> i64 {
    let end_ms = dates::millis(now) + lease_seconds * 1000;
    let end = (end_ms + 999).div_euclid(1000);
    let g = step(lease_seconds);
    (end + g - 1).div_euclid(g) * g
}

/// Whether a lease in `bucket` is still live at `now`.
pub fn is_live(bucket: i64, now: OffsetDateTime) -> bool {
    bucket * 1000 > dates::millis(now)
}

impl LeaseLedger {
    pub fn from_buckets(buckets: impl IntoIterator<Item = (i64, u32)>) -> Self {
        LeaseLedger(buckets.into_iter().collect())
    }

    pub fn buckets(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.0.iter().map(|(b, n)| (*b, *n))
    }

    pub fn count_in(&self, bucket: i64) -> u32 {
        self.0.get(&bucket).copied().unwrap_or(0)
    }

    /// Leases counted, live or lapsed (what `leaseTotal` stores).
    pub fn held(&self) -> u32 {
        self.0.values().sum()
    }

    /// Leases live at `now` (`activeLeases`, and what the cap is checked on).
    pub fn live(&self, now: OffsetDateTime) -> u32 {
        self.0
            .iter()
            .filter(|(b, _)| is_live(**b, now))
            .map(|(_, n)| n)
            .sum()
    }

    /// The lapsed buckets a write at `now` removes, with their counts:
    /// those still counting leases first (they hold slots), oldest first.
    pub fn lapsed(&self, now: OffsetDateTime) -> Vec<(i64, u32)> {
        let mut lapsed: Vec<(i64, u32)> = self
            .buckets()
            .take_while(|(b, _)| !is_live(*b, now))
            .collect();
        lapsed.sort_by_key(|(_, n)| *n == 0); // stable: oldest first within
        lapsed.truncate(PURGE_MAX);
        lapsed
    }

    /// The leases an acquire at `now` counts against the cap: all but
    /// those in the lapsed buckets it removes (so every live one, and a
    /// lapsed one only past `PURGE_MAX` lapsed buckets). The write's own
    /// condition, so a check never passes what the write refuses.
    pub fn counted(&self, now: OffsetDateTime) -> u32 {
        let removed: u32 = self.lapsed(now).iter().map(|(_, n)| n).sum();
        self.held() - removed
    }

    /// Whether every bucket of `seen` still holds the count seen: what a
    /// write removing them is conditioned on.
    pub fn still_holds(&self, seen: &[(i64, u32)]) -> bool {
        seen.iter().all(|(b, n)| self.0.get(b) == Some(n))
    }

    /// Removes `purged` buckets (lapsed, as a write removes them).
    pub fn purge(&mut self, purged: &[(i64, u32)]) {
        for (b, _) in purged {
            self.0.remove(b);
        }
    }

    /// The ledger after an acquire: one more in `bucket`, `purged` removed.
    pub fn take(&mut self, bucket: i64, purged: &[(i64, u32)]) {
        self.purge(purged);
        *self.0.entry(bucket).or_insert(0) += 1;
    }

    /// The ledger after a lease moved from `from` to `to` (`None`: released).
    pub fn shift(&mut self, from: i64, to: Option<i64>) {
        if let Some(n) = self.0.get_mut(&from) {
            *n = n.saturating_sub(1);
        }
        if let Some(to) = to {
            *self.0.entry(to).or_insert(0) += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix_ms: i64) -> OffsetDateTime {
        dates::from_millis(unix_ms)
    }

    #[test]
    fn a_lease_lasts_at_least_its_period_and_at_most_a_step_more() {
        for period in [1, 3, 29, 30, 31, 300, 3600] {
            for ms in [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_999] {
                let b = bucket_for(at(ms), period);
                let lasts = b * 1000 - ms;
                assert!(lasts >= period * 1000, "{period} s from {ms}: {lasts} ms");
                assert!(lasts < (period + step(period)) * 1000 + 1000);
                assert_eq!(b % step(period), 0);
            }
        }
        assert_eq!(step(3), 1);
        assert_eq!(step(300), 10);
    }

    #[test]
    fn live_lapsed_and_held() {
        let now = at(1_000_000);
        let mut l = LeaseLedger::from_buckets([(990, 2), (1000, 1), (1001, 3), (1010, 0)]);
        assert_eq!(l.held(), 6);
        assert_eq!(l.live(now), 3, "a bucket lapses at its instant");
        assert_eq!(l.lapsed(now), [(990, 2), (1000, 1)]);
        let purged = l.lapsed(now);
        l.take(1010, &purged);
        assert_eq!(l.held(), 4);
        assert_eq!(l.live(now), 4);
        l.shift(1001, Some(1020));
        l.shift(1020, None);
        assert_eq!(l.held(), 3);
        assert_eq!(l.count_in(1020), 0);
    }

    #[test]
    fn a_write_removes_at_most_purge_max_buckets_counting_ones_first() {
        let now = at(1_000_000);
        let l = LeaseLedger::from_buckets((0..100).map(|b| (b, 1)));
        assert_eq!(l.lapsed(now).len(), PURGE_MAX);
        assert_eq!(l.lapsed(now)[0], (0, 1), "oldest first");
        assert_eq!(l.counted(now), 100 - PURGE_MAX as u32);
        // A crashed holder's count behind many emptied buckets: it goes first.
        let mut l = LeaseLedger::from_buckets((0..100).map(|b| (b, 0)));
        l.take(99, &[]);
        l.take(2000, &[]);
        assert_eq!(l.lapsed(now)[0], (99, 1));
        assert_eq!(l.counted(now), 1, "only the live one counts");
    }
}
