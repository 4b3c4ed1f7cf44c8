//! The query of `GET /identities`, parsed with the same field errors as
//! bodies: `limit`, `cursor` (one this API issued to the owner) and
//! `externalId` (at most one identity answers it).

use super::ExternalId;
use crate::credentials::Keyring;
use crate::http::paging::Paging;
use crate::token::fields::FieldErrors;
use crate::token::Owner;

#[derive(Debug)]
pub struct IdentityQuery {
    pub limit: usize,
    pub after: Option<String>,
    pub external_id: Option<ExternalId>,
}

impl IdentityQuery {
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
        let Paging { limit, after } = Paging::parse(one, keys, owner, &mut errs);
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
