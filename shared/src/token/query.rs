//! The query of `GET /tokens`, parsed with the same field errors as bodies.

use time::OffsetDateTime;

use super::fields::FieldErrors;
use super::ids::Owner;
use super::TokenRecord;
use crate::credentials::Keyring;
use crate::http::paging::Paging;

/// `GET /tokens` query parameters, parsed.
#[derive(Debug)]
pub struct ListQuery<'a> {
    pub limit: usize,
    /// The position after which the page starts, from a verified cursor.
    pub after: Option<String>,
    pub state: ListState,
    pub token_type: Option<&'a str>,
    /// `tag=key:value` filters; all must match.
    pub tags: Vec<(&'a str, &'a str)>,
    /// `identityId=`: only the tokens that share this identity's limits.
    pub identity_id: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListState {
    Active,
    Expired,
    All,
}

impl<'a> ListQuery<'a> {
    /// Parses the query parameters of a list request (name, value pairs);
    /// a cursor must have been issued to this owner.
    pub fn parse(
        params: &'a [(String, String)],
        keys: &Keyring,
        owner: &Owner,
    ) -> Result<ListQuery<'a>, FieldErrors> {
        let all = |name: &str| {
            params
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<&'a str>>()
        };
        let one = |name: &str| all(name).first().copied();
        let mut errs = FieldErrors::default();
        let Paging { limit, after } = Paging::parse(one, keys, owner, &mut errs);
        let state = match one("state").unwrap_or("all") {
            "active" => ListState::Active,
            "expired" => ListState::Expired,
            "all" => ListState::All,
            _ => {
                errs.add("state", "must be active, expired or all");
                ListState::All
            }
        };
        let token_type = one("type");
        if token_type.is_some_and(|t| !(1..=32).contains(&t.len())) {
            errs.add("type", "must be 1 to 32 characters");
        }
        let mut tags = Vec::new();
        for t in all("tag") {
            match t.split_once(':') {
                Some((k, v)) if !k.is_empty() => tags.push((k, v)),
                _ => errs.add("tag", "must be key:value"),
            }
        }
        let identity_id = one("identityId");
        if identity_id.is_some_and(|i| i.is_empty() || i.len() > 64) {
            errs.add("identityId", "must be an identity's id");
        }
        errs.into_result(ListQuery {
            limit,
            after,
            state,
            token_type,
            tags,
            identity_id,
        })
    }

    /// Whether a token of the page passes the filters.
    pub fn admits(&self, t: &TokenRecord, now: OffsetDateTime) -> bool {
        self.token_type.is_none_or(|ty| t.token_type == ty)
            && self
                .identity_id
                .is_none_or(|i| t.identity_id.as_deref() == Some(i))
            && self
                .tags
                .iter()
                .all(|(k, v)| t.tags.get(*k).map(String::as_str) == Some(*v))
            && match self.state {
                ListState::Active => !t.is_expired(now),
                ListState::Expired => t.is_expired(now),
                ListState::All => true,
            }
    }
}
