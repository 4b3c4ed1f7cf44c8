//! Capabilities their holders revoked before their `exp`. The list lives in
//! the parent token's item, which every validate of a capability reads (or
//! writes) anyway, so refusing a revoked one costs no extra request. Each
//! entry lasts only until its capability would have expired, and the list
//! is bounded: past `MAX_REVOKED` live entries it becomes one cut-off that
//! refuses every capability of the token issued up to that second.

use std::collections::BTreeMap;

use super::capability::Claims;

/// Live revoked capabilities one token keeps by id (about 40 bytes each in
/// its item, read by every validate of the token).
pub const MAX_REVOKED: usize = 32;

/// What a token refuses of the capabilities minted from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokedCapabilities {
    /// `jti` → `exp` (unix seconds) of each capability revoked by id.
    pub ids: BTreeMap<String, i64>,
    /// Every capability issued (`iat`) at or before this second is refused.
    pub issued_until: Option<i64>,
}

impl RevokedCapabilities {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.issued_until.is_none()
    }

    pub fn refuses(&self, cap: &Claims) -> bool {
        self.ids.contains_key(&cap.id) || self.issued_until.is_some_and(|t| cap.issued_at <= t)
    }

    /// The list with `cap` refused from `now` on, the entries of
    /// capabilities expired by then dropped.
    pub fn with(&self, cap: &Claims, now: i64) -> RevokedCapabilities {
        let mut ids: BTreeMap<String, i64> = self
            .ids
            .iter()
            .filter(|(_, exp)| **exp > now)
            .map(|(id, exp)| (id.clone(), *exp))
            .collect();
        ids.insert(cap.id.clone(), cap.expires);
        if ids.len() <= MAX_REVOKED {
            return RevokedCapabilities {
                ids,
                issued_until: self.issued_until,
            };
        }
        // Too many live at once: one cut-off refuses them all (and any
        // other capability of this token issued so far).
        RevokedCapabilities {
            ids: BTreeMap::new(),
            issued_until: Some(now.max(cap.issued_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(id: &str, issued_at: i64, expires: i64) -> Claims {
        Claims {
            id: id.into(),
            issued_at,
            not_before: issued_at,
            expires,
            ..Claims::for_tests()
        }
    }

    #[test]
    fn refuses_what_it_names_and_forgets_what_expired() {
        let none = RevokedCapabilities::default();
        let a = cap("a", 100, 200);
        let b = cap("b", 100, 300);
        assert!(!none.refuses(&a));
        let one = none.with(&a, 150);
        assert!(one.refuses(&a) && !one.refuses(&b));
        // At 250 `a` has expired: its entry goes when `b` is added.
        let two = one.with(&b, 250);
        assert_eq!(two.ids.keys().collect::<Vec<_>>(), ["b"]);
        assert!(two.refuses(&b));
    }

    #[test]
    fn past_the_bound_one_cut_off_refuses_every_capability_issued_so_far() {
        let mut list = RevokedCapabilities::default();
        for i in 0..MAX_REVOKED {
            list = list.with(&cap(&format!("c{i}"), 100, 1000), 150);
        }
        assert_eq!(list.ids.len(), MAX_REVOKED);
        let full = list.with(&cap("last", 140, 1000), 150);
        assert!(full.ids.is_empty());
        assert_eq!(full.issued_until, Some(150));
        assert!(full.refuses(&cap("c0", 100, 1000)) && full.refuses(&cap("last", 140, 1000)));
        // A capability minted after the cut-off still works.
        assert!(!full.refuses(&cap("later", 151, 1000)));
    }
}
