//! Rate limits: named limits on admitted validates per aligned window
//! `[k·period, (k+1)·period)` of unix time. The counts live in the token
//! item, one per limit, so deletion, roll and patch treat them as the rest
//! of the token; the store spends them in the same conditional write as a
//! use or a lease (see `store::Admission`).

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::dates;

pub const MAX_RATE_LIMITS: usize = 4;
pub const MAX_RATE_LIMIT: u32 = 1_000_000;
/// Thirty days: a limit can be a daily or a monthly quota.
pub const MAX_PERIOD_SECONDS: u32 = 2_592_000;
pub const MAX_NAME: usize = 32;

/// One limit as the client set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub name: String,
    pub limit: u32,
    pub period_seconds: u32,
}

/// The stored count of one limit: admissions in window `window` of a
/// period of `period` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCount {
    pub period: u32,
    pub window: i64,
    pub count: u32,
}

/// Where a limit stands for an admission at some instant: the window that
/// counts and how much of it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub name: String,
    pub limit: u32,
    pub period: u32,
    pub window: i64,
    /// The stored count of this window; `None` when the window starts
    /// over (no count stored, an older window, or another period).
    pub used: Option<u32>,
}

impl Standing {
    pub fn is_full(&self) -> bool {
        self.used.unwrap_or(0) >= self.limit
    }

    /// The window's end.
    pub fn reset(&self) -> OffsetDateTime {
        window_end(self.period, self.window)
    }

    /// The limit as an active answer shows it, with `used` admissions
    /// counted (this one included).
    pub fn answered(&self, used: u32) -> Value {
        json!({
            "name": self.name,
            "limit": self.limit,
            "remaining": self.limit.saturating_sub(used),
            "reset": dates::format(self.reset()),
        })
    }
}

pub fn window_of(period: u32, now: OffsetDateTime) -> i64 {
    now.unix_timestamp().div_euclid(i64::from(period.max(1)))
}

fn window_end(period: u32, window: i64) -> OffsetDateTime {
    let end = (window + 1).saturating_mul(i64::from(period));
    OffsetDateTime::from_unix_timestamp(end).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Every limit's standing at `now`. A stored window ahead of `now` (another
/// function's clock runs ahead) still counts, so a clock behind never
/// starts a window over.
pub fn standings(
    limits: &[RateLimit],
    counts: &std::collections::BTreeMap<String, RateCount>,
    now: OffsetDateTime,
) -> Vec<Standing> {
    limits
        .iter()
        .map(|l| {
            let current = window_of(l.period_seconds, now);
            let stored = counts
                .get(&l.name)
                .filter(|c| c.period == l.period_seconds && c.window >= current);
            Standing {
                name: l.name.clone(),
                limit: l.limit,
                period: l.period_seconds,
                window: stored.map_or(current, |c| c.window),
                used: stored.map(|c| c.count),
            }
        })
        .collect()
}

/// Whole seconds until every full limit has a free slot again (at least 1).
pub fn retry_after(standings: &[Standing], now: OffsetDateTime) -> i64 {
    standings
        .iter()
        .filter(|s| s.is_full())
        .map(|s| {
            let wait = s.reset() - now;
            // Round up: retrying before the window ends is refused again.
            let secs = wait.whole_seconds() + i64::from(wait.subsec_nanoseconds() > 0);
            secs.max(1)
        })
        .max()
        .unwrap_or(1)
}

pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use time::Duration;

    fn limit(name: &str, limit: u32, period: u32) -> RateLimit {
        RateLimit {
            name: name.into(),
            limit,
            period_seconds: period,
        }
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    #[test]
    fn windows_are_aligned_to_unix_time() {
        assert_eq!(window_of(60, at(119)), 1);
        assert_eq!(window_of(60, at(120)), 2);
        assert_eq!(window_of(86_400, at(86_399)), 0);
        let s = &standings(&[limit("m", 5, 60)], &BTreeMap::new(), at(125))[0];
        assert_eq!(s.reset(), at(180));
        assert_eq!(s.used, None);
    }

    #[test]
    fn a_count_holds_for_its_window_only() {
        let limits = [limit("m", 5, 60)];
        let counts = BTreeMap::from([(
            "m".to_owned(),
            RateCount {
                period: 60,
                window: 2,
                count: 5,
            },
        )]);
        let now = standings(&limits, &counts, at(150));
        assert!(now[0].is_full());
        assert_eq!(retry_after(&now, at(150)), 30);
        assert_eq!(retry_after(&now, at(179) + Duration::milliseconds(1)), 1);
        // The next window starts over.
        let later = standings(&limits, &counts, at(180));
        assert_eq!((later[0].window, later[0].used), (3, None));
        // A clock behind the stored window still counts it.
        let behind = standings(&limits, &counts, at(110));
        assert_eq!((behind[0].window, behind[0].used), (2, Some(5)));
        // Another period starts a new window at once.
        let changed = standings(&[limit("m", 5, 120)], &counts, at(150));
        assert_eq!(changed[0].used, None);
    }

    #[test]
    fn retry_after_waits_for_every_full_limit() {
        let limits = [limit("a", 1, 10), limit("b", 1, 100), limit("c", 9, 1000)];
        let counts: BTreeMap<_, _> = [("a", 10, 1), ("b", 100, 1), ("c", 1000, 1)]
            .into_iter()
            .map(|(n, p, c)| {
                (
                    n.to_owned(),
                    RateCount {
                        period: p,
                        window: window_of(p, at(5)),
                        count: c,
                    },
                )
            })
            .collect();
        let s = standings(&limits, &counts, at(5));
        assert_eq!(retry_after(&s, at(5)), 95);
        assert_eq!(s[2].answered(1)["remaining"], 8);
    }

    #[test]
    fn names() {
        assert!(valid_name("per-minute_1"));
        assert!(!valid_name(""));
        assert!(!valid_name("Upper"));
        assert!(!valid_name(&"x".repeat(33)));
    }
}
