//! `limit` and `cursor`, as every list takes them: 1 to 100 items a page
//! (50 by default), and a cursor this API signed for the same owner.

use crate::credentials::Keyring;
use crate::token::{FieldErrors, Owner};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub limit: usize,
    /// The position after which the page starts, from a verified cursor.
    pub after: Option<String>,
}

impl Paging {
    pub const DEFAULT_LIMIT: usize = 50;

    /// Reads `limit` and `cursor` through `one` (a parameter's first
    /// value), adding each bad one to `errs` by name.
    pub fn parse<'a>(
        one: impl Fn(&str) -> Option<&'a str>,
        keys: &Keyring,
        owner: &Owner,
        errs: &mut FieldErrors,
    ) -> Paging {
        let limit = match one("limit") {
            None => Self::DEFAULT_LIMIT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    errs.add("limit", "must be an integer from 1 to 100");
                    Self::DEFAULT_LIMIT
                }
            },
        };
        let after = one("cursor").and_then(|c| {
            let position = keys.open_cursor(owner, c);
            if position.is_none() {
                errs.add("cursor", "is not a cursor this API issued to you");
            }
            position
        });
        Paging { limit, after }
    }
}
