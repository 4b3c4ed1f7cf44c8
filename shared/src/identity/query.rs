//! The query of `GET /identities`, parsed with the same field errors as
//! bodies: `limit`, `cursor` (one this API issued to the owner) and
//! `externalId` (at most one identity answers it).

use super::ExternalId;
use crate::credentials::Keyring;
use crate::token::fields::FieldErrors;
use crate::token::Owner;

#[derive(Debug)]
pub struct IdentityQuery {
    pub limit: usize,
    pub after: Option<String>,
    pub external_id: Option<ExternalId>,
}

impl IdentityQuery {
    pub const DEFAULT_LIMIT: usize = 50;

    pub fn parse(
        params: &[(String, String)],
        keys: &Keyring,
        owner: &Owner,
    ) -> Result<IdentityQuery, FieldErrors> {
        let one = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut errs = FieldErrors::default();
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
        let external_id = one("externalId").and_then(|e| {
            let parsed = ExternalId::parse(e);
            if parsed.is_none() {
                errs.add("externalId", ExternalId::RULE);
            }
            parsed
        });
        errs.into_result(IdentityQuery {
            limit,
            after,
            external_id,
        })
    }
}
