//! The query of `GET /audit`, parsed with the same field errors as bodies.

use time::OffsetDateTime;

use super::AuditRecord;
use crate::credentials::Keyring;
use crate::http::paging::Paging;
use crate::identity::IdentityId;
use crate::token::fields::FieldErrors;
use crate::token::{Owner, TokenId};

#[derive(Debug, Default)]
pub struct AuditQuery {
    pub limit: usize,
    pub after: Option<String>,
    pub token_id: Option<String>,
    pub identity_id: Option<String>,
    pub action: Option<&'static str>,
    pub since: Option<OffsetDateTime>,
}

impl AuditQuery {
    pub fn parse(
        params: &[(String, String)],
        keys: &Keyring,
        owner: &Owner,
    ) -> Result<AuditQuery, FieldErrors> {
        let one = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let mut errs = FieldErrors::default();
        let Paging { limit, after } = Paging::parse(one, keys, owner, &mut errs);
        let mut q = AuditQuery {
            limit,
            after,
            ..Default::default()
        };
        q.token_id = one("tokenId").and_then(|t| match TokenId::parse(t) {
            Some(t) => Some(t.as_str().to_owned()),
            None => {
                errs.add("tokenId", "must be a token id (26 characters)");
                None
            }
        });
        q.identity_id = one("identityId").and_then(|i| match IdentityId::parse(i) {
            Some(i) => Some(i.as_str().to_owned()),
            None => {
                errs.add("identityId", IdentityId::RULE);
                None
            }
        });
        if q.token_id.is_some() && q.identity_id.is_some() {
            errs.add(
                "identityId",
                "cannot be combined with tokenId: one history at a time",
            );
        }
        q.action = one("action").and_then(|a| {
            let found = AuditRecord::action_named(a);
            if found.is_none() {
                errs.add(
                    "action",
                    format!("must be one of {}", super::ACTIONS.join(", ")),
                );
            }
            found
        });
        q.since = one("since").and_then(|s| {
            let parsed = crate::dates::parse(s);
            if parsed.is_none() {
                errs.add("since", "must be an RFC 3339 date-time");
            }
            parsed
        });
        errs.into_result(q)
    }

    /// The history asked for: a token's or an identity's, else the owner's.
    pub fn target(&self) -> Option<&str> {
        self.token_id.as_deref().or(self.identity_id.as_deref())
    }
}
