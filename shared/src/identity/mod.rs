//! Identities: the account holder's customers, each holding limits (see
//! `limits`) that every token pointing at it shares. The record and how
//! it is shown live here, with create and patch (`rules`); the tokens'
//! side is `TokenRecord::identity_id`, and the one decision over a token
//! and its identity is `validate::admission`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::codec;
use crate::dates;
use crate::limits::Limits;

pub mod query;
pub mod rules;

pub use query::IdentityQuery;

/// Bytes of an identity id (after its `id_` prefix, 26 base32 characters).
const IDENTITY_ID_BYTES: usize = 16;
const IDENTITY_ID_PREFIX: &str = "id_";

/// An identity id as minted: `id_` and 26 lower-case base32 characters.
/// Anything else names no identity, so callers answer without a read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityId(String);

impl IdentityId {
    pub const RULE: &'static str = "must be an identity id (id_ and 26 characters)";

    pub fn parse(text: &str) -> Option<IdentityId> {
        let rest = text.strip_prefix(IDENTITY_ID_PREFIX)?;
        codec::decode::<IDENTITY_ID_BYTES>(rest).map(|_| IdentityId(text.to_owned()))
    }

    pub fn random() -> IdentityId {
        let bytes = codec::random_bytes::<IDENTITY_ID_BYTES>();
        IdentityId(format!("{IDENTITY_ID_PREFIX}{}", codec::encode(&bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The account holder's own name for the customer: unique per owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalId(String);

impl ExternalId {
    pub const RULE: &'static str = "must match [A-Za-z0-9._:@-]{1,128}";
    pub const MAX_LEN: usize = 128;

    pub fn parse(text: &str) -> Option<ExternalId> {
        let ok = (1..=Self::MAX_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b));
        ok.then(|| ExternalId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdentityRecord {
    pub id: String,
    pub owner: String,
    pub external_id: String,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    /// The APIs its tokens are meant for: a token's audience must be one
    /// of these too (see `token::audience`).
    pub audiences: Option<Vec<String>>,
    /// Shared by every token pointing at it (see `limits`).
    pub limits: Limits,
    /// When set, what a secret scanner's report of any of its tokens does,
    /// instead of the token's own `onLeak`.
    pub on_leak: Option<crate::leaks::OnLeak>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Bumped by every change a client makes; the ETag.
    pub version: u64,
}

impl IdentityRecord {
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }

    pub fn audience_list(&self) -> &[String] {
        self.audiences.as_deref().unwrap_or_default()
    }

    /// The public identity object (camelCase).
    pub fn to_json(&self, now: OffsetDateTime) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("externalId".into(), json!(self.external_id));
        m.insert("description".into(), json!(self.description));
        m.insert("tags".into(), json!(self.tags));
        if let Some(a) = &self.audiences {
            m.insert("audiences".into(), json!(a));
        }
        self.limits.show(&mut m, now);
        if let Some(o) = self.on_leak {
            m.insert("onLeak".into(), json!(o.as_str()));
        }
        m.insert("createdAt".into(), json!(dates::format(self.created_at)));
        m.insert("updatedAt".into(), json!(dates::format(self.updated_at)));
        Value::Object(m)
    }
}

/// Position of an identity in its owner's list: creation time, then id.
pub fn list_position(rec: &IdentityRecord) -> String {
    format!("{:015}#{}", dates::millis(rec.created_at), rec.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_their_input() {
        let id = IdentityId::random();
        assert_eq!(IdentityId::parse(id.as_str()), Some(id.clone()));
        assert!(IdentityId::parse(&id.as_str()[3..]).is_none(), "no prefix");
        assert!(IdentityId::parse("id_x").is_none());
        assert!(ExternalId::parse("cust:42@acme.example-1_a").is_some());
        for bad in ["", "a b", "ü", "a/b", &"x".repeat(129)] {
            assert!(ExternalId::parse(bad).is_none(), "{bad:?}");
        }
        assert!(ExternalId::parse(&"x".repeat(128)).is_some());
    }
}
