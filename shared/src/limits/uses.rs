//! Uses as credits: `maxUses` gives a holder a number of uses, each
//! admission spends its `cost` of them (one by default), and a `refill`
//! resets what remains to its `amount` at each boundary (00:00 UTC, daily,
//! or monthly on a day, the month's last when shorter).
//!
//! A refill is applied lazily, never by a scheduled job: the stored
//! `refilledAt` is the last boundary applied, and the first admission past
//! a later boundary writes the reset and its own spend in one conditional
//! write, pinned to the `refilledAt` it saw. Two admissions racing across a
//! boundary both see it due; one write applies, the other's condition fails
//! and it decides again on the refilled item: one refill, no spend lost.
//! Reads show the reset as due, so a read never waits for an admission.

use serde_json::{json, Map, Value};
use time::{Date, Month, OffsetDateTime, Time};

use crate::dates;
use crate::token::FieldErrors;

/// The most one call may spend (`cost`, `reserve`).
pub const MAX_COST: u64 = 1_000_000;
pub const COST_RULE: &str = "must be an integer from 0 to 1000000";
/// The most a refill may reset to (as `maxUses`).
pub const MAX_REFILL: u64 = crate::token::fields::MAX_USES;

/// When a refill comes round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Daily,
    /// On this day of each month (1–31; the month's last day when shorter).
    Monthly {
        day: u8,
    },
}

/// A reset of `remainingUses` to `amount` at every boundary of `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refill {
    pub amount: u64,
    pub interval: Interval,
}

const DAY: i64 = 86_400;

/// 00:00 UTC of `day` (clamped to the month's length) of a month.
fn monthly_boundary(year: i32, month: Month, day: u8) -> OffsetDateTime {
    let last = month.length(year);
    Date::from_calendar_date(year, month, day.min(last))
        .map(|d| d.with_time(Time::MIDNIGHT).assume_utc())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The month before (`-1`) or after (`1`) one, with its year.
fn shift_month(year: i32, month: Month, by: i8) -> (i32, Month) {
    match (by, month) {
        (-1, Month::January) => (year - 1, Month::December),
        (-1, m) => (year, m.previous()),
        (_, Month::December) => (year + 1, Month::January),
        (_, m) => (year, m.next()),
    }
}

impl Refill {
    /// The latest boundary at or before `now`, in unix seconds.
    pub fn last_boundary(&self, now: OffsetDateTime) -> i64 {
        match self.interval {
            Interval::Daily => now.unix_timestamp().div_euclid(DAY) * DAY,
            Interval::Monthly { day } => {
                let this = monthly_boundary(now.year(), now.month(), day);
                if now >= this {
                    return this.unix_timestamp();
                }
                let (y, m) = shift_month(now.year(), now.month(), -1);
                monthly_boundary(y, m, day).unix_timestamp()
            }
        }
    }

    /// The first boundary after `now`.
    pub fn next_boundary(&self, now: OffsetDateTime) -> OffsetDateTime {
        match self.interval {
            Interval::Daily => dates::from_millis((self.last_boundary(now) + DAY) * 1000),
            Interval::Monthly { day } => {
                let this = monthly_boundary(now.year(), now.month(), day);
                if now < this {
                    return this;
                }
                let (y, m) = shift_month(now.year(), now.month(), 1);
                monthly_boundary(y, m, day)
            }
        }
    }

    pub fn to_json(&self) -> Value {
        match self.interval {
            Interval::Daily => json!({"amount": self.amount, "interval": "daily"}),
            Interval::Monthly { day } => {
                json!({"amount": self.amount, "interval": "monthly", "day": day})
            }
        }
    }

    /// As stored: `daily` or `monthly:<day>`.
    pub fn interval_text(&self) -> String {
        match self.interval {
            Interval::Daily => "daily".into(),
            Interval::Monthly { day } => format!("monthly:{day}"),
        }
    }

    pub fn from_stored(amount: u64, interval: &str) -> Option<Refill> {
        let interval = match interval.split_once(':') {
            None if interval == "daily" => Interval::Daily,
            Some(("monthly", day)) => Interval::Monthly {
                day: day.parse().ok().filter(|d| (1..=31).contains(d))?,
            },
            _ => return None,
        };
        Some(Refill { amount, interval })
    }

    /// Parses a client's `refill` object, every bad member named
    /// (`refill.amount`, `refill.interval`, `refill.day`).
    pub fn parse(v: &Value, errors: &mut FieldErrors) -> Option<Refill> {
        let Some(m) = v.as_object() else {
            errors.add(
                "refill",
                "must be an object: {\"amount\", \"interval\", \"day\"}",
            );
            return None;
        };
        let mut ok = true;
        for k in m.keys() {
            if !matches!(k.as_str(), "amount" | "interval" | "day") {
                errors.add(format!("refill.{k}"), "is not a member of refill");
                ok = false;
            }
        }
        let amount = match m.get("amount").and_then(Value::as_u64) {
            Some(a) if (1..=MAX_REFILL).contains(&a) => Some(a),
            _ => {
                errors.add(
                    "refill.amount",
                    format!("must be an integer from 1 to {MAX_REFILL}"),
                );
                None
            }
        };
        let day = match m.get("day") {
            None | Some(Value::Null) => None,
            Some(d) => match d.as_u64().filter(|d| (1..=31).contains(d)) {
                Some(d) => Some(d as u8),
                None => {
                    errors.add("refill.day", "must be an integer from 1 to 31");
                    ok = false;
                    None
                }
            },
        };
        let interval = match m.get("interval").and_then(Value::as_str) {
            Some("daily") if day.is_some() => {
                errors.add("refill.day", "is only for a monthly refill");
                None
            }
            Some("daily") => Some(Interval::Daily),
            Some("monthly") => Some(Interval::Monthly {
                day: day.unwrap_or(1),
            }),
            _ => {
                errors.add("refill.interval", "must be \"daily\" or \"monthly\"");
                None
            }
        };
        match (amount, interval, ok) {
            (Some(amount), Some(interval), true) => Some(Refill { amount, interval }),
            _ => None,
        }
    }
}

/// Parses a call's `cost` (or `reserve`): an integer 0–1000000.
pub fn parse_cost(field: &str, v: &Value, errors: &mut FieldErrors) -> Option<u64> {
    match v.as_u64().filter(|c| *c <= MAX_COST) {
        Some(c) => Some(c),
        None => {
            errors.add(field, COST_RULE);
            None
        }
    }
}

/// A holder's uses as stored: `maxUses`, what remains, its refill and
/// the last boundary applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Uses {
    pub max: Option<u64>,
    pub remaining: Option<u64>,
    pub refill: Option<Refill>,
    /// Unix seconds of the last refill boundary applied.
    pub refilled_at: Option<i64>,
}

/// Where a holder's uses stand for an admission at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsesStanding {
    /// What remains now, a due refill applied.
    pub remaining: u64,
    /// A refill due: the boundary to record, with the `refilledAt` seen.
    pub refill_due: Option<RefillDue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefillDue {
    pub boundary: i64,
    pub amount: u64,
    pub seen: Option<i64>,
}

impl Uses {
    /// `None` when the holder has no `maxUses` (nothing to count).
    pub fn standing(&self, now: OffsetDateTime) -> Option<UsesStanding> {
        self.max?;
        let stored = self.remaining.unwrap_or(0);
        let due = self.refill.and_then(|r| {
            let boundary = r.last_boundary(now);
            (self.refilled_at.is_none_or(|at| at < boundary)).then_some(RefillDue {
                boundary,
                amount: r.amount,
                seen: self.refilled_at,
            })
        });
        Some(UsesStanding {
            remaining: due.map_or(stored, |d| d.amount),
            refill_due: due,
        })
    }

    /// The most `remainingUses` may hold: a refund never lifts it higher.
    pub fn ceiling(&self) -> u64 {
        let max = self.max.unwrap_or(0);
        self.refill.map_or(max, |r| max.max(r.amount))
    }

    /// Of `unused` reserved uses, what a settling release gives back: what
    /// fits under the ceiling (a refill or a patch since may have reset
    /// what remains); `None` when that is nothing or no uses are counted.
    pub fn refundable(&self, unused: u64) -> Option<u64> {
        self.max?;
        let room = self.ceiling().saturating_sub(self.remaining.unwrap_or(0));
        Some(unused.min(room)).filter(|give| *give > 0)
    }

    /// The members an answer or a token object shows: `maxUses`,
    /// `remainingUses` (a due refill applied), `refill`, `nextRefillAt`.
    pub fn show(&self, m: &mut Map<String, Value>, now: OffsetDateTime) {
        let (Some(max), Some(standing)) = (self.max, self.standing(now)) else {
            return;
        };
        m.insert("maxUses".into(), json!(max));
        m.insert("remainingUses".into(), json!(standing.remaining));
        self.show_refill(m, now);
    }

    /// `refill` and `nextRefillAt`, when set.
    pub fn show_refill(&self, m: &mut Map<String, Value>, now: OffsetDateTime) {
        if let Some(r) = &self.refill {
            m.insert("refill".into(), r.to_json());
            m.insert(
                "nextRefillAt".into(),
                json!(dates::format(r.next_boundary(now))),
            );
        }
    }
}

/// Whether `cost` can be spent from what stands: a holder with no use
/// left is exhausted whatever the cost (cost 0 included: a check of an
/// exhausted holder fails), and a cost above what remains spends nothing.
pub fn affordable(standing: &UsesStanding, cost: u64) -> bool {
    standing.remaining > 0 && standing.remaining >= cost
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn monthly(day: u8) -> Refill {
        Refill {
            amount: 10,
            interval: Interval::Monthly { day },
        }
    }

    #[test]
    fn monthly_boundaries_clamp_to_short_months() {
        let r = monthly(31);
        let feb = datetime!(2027-02-15 12:00 UTC);
        assert_eq!(
            r.last_boundary(feb),
            datetime!(2027-01-31 00:00 UTC).unix_timestamp()
        );
        assert_eq!(r.next_boundary(feb), datetime!(2027-02-28 00:00 UTC));
        let leap = datetime!(2028-02-29 00:00 UTC);
        assert_eq!(r.last_boundary(leap), leap.unix_timestamp());
        assert_eq!(r.next_boundary(leap), datetime!(2028-03-31 00:00 UTC));
        // December rolls into January.
        let dec = datetime!(2026-12-31 23:59:59 UTC);
        assert_eq!(
            monthly(1).next_boundary(dec),
            datetime!(2027-01-01 00:00 UTC)
        );
        assert_eq!(
            monthly(1).last_boundary(datetime!(2027-01-01 00:00 UTC)),
            datetime!(2027-01-01 00:00 UTC).unix_timestamp()
        );
    }

    #[test]
    fn daily_boundaries_are_midnight_utc() {
        let r = Refill {
            amount: 5,
            interval: Interval::Daily,
        };
        let t = datetime!(2026-12-03 19:40 UTC);
        assert_eq!(
            r.last_boundary(t),
            datetime!(2026-12-03 00:00 UTC).unix_timestamp()
        );
        assert_eq!(r.next_boundary(t), datetime!(2026-12-04 00:00 UTC));
    }

    #[test]
    fn a_due_refill_resets_not_adds() {
        let r = Refill {
            amount: 5,
            interval: Interval::Daily,
        };
        let day = datetime!(2026-12-03 00:00 UTC).unix_timestamp();
        let uses = Uses {
            max: Some(100),
            remaining: Some(3),
            refill: Some(r),
            refilled_at: Some(day),
        };
        let same_day = datetime!(2026-12-03 23:59:59 UTC);
        assert_eq!(uses.standing(same_day).map(|s| s.remaining), Some(3));
        let next = uses.standing(datetime!(2026-12-04 00:00 UTC)).unwrap();
        assert_eq!(next.remaining, 5);
        assert_eq!(next.refill_due.map(|d| d.seen), Some(Some(day)));
        assert!(affordable(&next, 5) && !affordable(&next, 6));
        let none = UsesStanding {
            remaining: 0,
            refill_due: None,
        };
        assert!(
            !affordable(&none, 0),
            "an exhausted holder fails even a check"
        );
    }

    #[test]
    fn a_refund_fits_under_the_ceiling() {
        let uses = Uses {
            max: Some(100),
            remaining: Some(95),
            refill: None,
            refilled_at: None,
        };
        assert_eq!(uses.refundable(3), Some(3));
        assert_eq!(uses.refundable(10), Some(5), "never above maxUses");
        assert_eq!(uses.refundable(0), None);
        let full = Uses {
            remaining: Some(100),
            ..uses
        };
        assert_eq!(full.refundable(10), None);
        assert_eq!(Uses::default().refundable(10), None, "no uses counted");
    }

    #[test]
    fn refill_is_parsed_member_by_member() {
        let parse = |v: Value| {
            let mut e = FieldErrors::default();
            let r = Refill::parse(&v, &mut e);
            let fields: Vec<String> = e.0.into_iter().map(|f| f.field).collect();
            (r, fields)
        };
        assert_eq!(
            parse(json!({"amount": 3, "interval": "monthly"})).0,
            Some(monthly(1)).map(|r| Refill { amount: 3, ..r })
        );
        let (r, fields) = parse(json!({"amount": 0, "interval": "weekly", "day": 32, "x": 1}));
        assert!(r.is_none());
        assert_eq!(
            fields,
            ["refill.x", "refill.amount", "refill.day", "refill.interval"]
        );
        assert_eq!(
            parse(json!({"amount": 1, "interval": "daily", "day": 2})).1,
            ["refill.day"]
        );
        assert_eq!(parse(json!(5)).1, ["refill"]);
        let stored = monthly(31);
        assert_eq!(
            Refill::from_stored(10, &stored.interval_text()),
            Some(stored)
        );
        assert_eq!(Refill::from_stored(10, "monthly:0"), None);
    }
}
