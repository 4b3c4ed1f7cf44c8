//! Identifiers that parse their input: once one of these exists, it is
//! well formed, so no later code checks it again.

use crate::codec;

/// Bytes of a token id (26 base32 characters).
pub const TOKEN_ID_BYTES: usize = 16;
/// Bytes of a lease id: a random nonce and the bucket it was taken in,
/// plus a tag binding them to its token.
pub const LEASE_ID_BYTES: usize = 16;
/// Bytes of a reserving lease's id: the uses it reserved too, under the tag.
pub const RESERVING_LEASE_ID_BYTES: usize = LEASE_ID_BYTES + LEASE_RESERVE_BYTES;
pub(crate) const LEASE_NONCE_BYTES: usize = 5;
/// The bucket the lease was first taken in (unix seconds, big-endian).
pub(crate) const LEASE_BUCKET_BYTES: usize = 5;
/// The uses a lease reserved (big-endian; at most `MAX_COST`).
pub(crate) const LEASE_RESERVE_BYTES: usize = 4;
/// Bytes of a lease id under its tag.
pub(crate) const LEASE_TAG_BYTES: usize = LEASE_ID_BYTES - LEASE_NONCE_BYTES - LEASE_BUCKET_BYTES;

/// A token id as minted: 26 lower-case base32 characters. Anything else
/// cannot name a token, so callers answer 404 without a read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenId(String);

impl TokenId {
    pub fn parse(text: &str) -> Option<TokenId> {
        codec::decode::<TOKEN_ID_BYTES>(text).map(|_| TokenId(text.to_owned()))
    }

    pub(crate) fn from_bytes(bytes: &[u8; TOKEN_ID_BYTES]) -> TokenId {
        TokenId(codec::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who owns tokens: the authorizer's subject, trimmed, 1 to 256
/// characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    pub const MAX_LEN: usize = 256;

    pub fn parse(text: &str) -> Option<Owner> {
        let text = text.trim();
        let ok =
            !text.is_empty() && text.len() <= Self::MAX_LEN && !text.chars().any(char::is_control);
        ok.then(|| Owner(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MESSAGE: &'static str = "must be 1 to 255 visible ASCII characters";

    pub fn parse(text: &str) -> Option<IdempotencyKey> {
        let ok = (1..=255).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| IdempotencyKey(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A lease id as issued: 26 base32 characters, or 32 for a lease that
/// reserved uses (see `Keys::new_lease_id` for the tag that binds it to
/// one token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseId(String);

impl LeaseId {
    pub fn parse(text: &str) -> Option<LeaseId> {
        Self::bytes_of(text).map(|_| LeaseId(text.to_owned()))
    }

    /// `bytes` must be `LEASE_ID_BYTES` or `RESERVING_LEASE_ID_BYTES` long.
    pub(crate) fn from_bytes(bytes: &[u8]) -> LeaseId {
        LeaseId(codec::encode(bytes))
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        Self::bytes_of(&self.0).unwrap_or_else(|| vec![0; LEASE_ID_BYTES])
    }

    fn bytes_of(text: &str) -> Option<Vec<u8>> {
        match text.len() {
            26 => codec::decode::<LEASE_ID_BYTES>(text).map(|b| b.to_vec()),
            32 => codec::decode::<RESERVING_LEASE_ID_BYTES>(text).map(|b| b.to_vec()),
            _ => None,
        }
    }

    /// The uses the lease reserved (0 for one that reserved none). Trusted
    /// only once the lease is known to belong to its token.
    pub fn reserved(&self) -> u64 {
        let b = self.bytes();
        let start = LEASE_NONCE_BYTES + LEASE_BUCKET_BYTES;
        b.get(start..start + LEASE_RESERVE_BYTES)
            .filter(|_| b.len() == RESERVING_LEASE_ID_BYTES)
            .map_or(0, |r| {
                r.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
            })
    }

    /// The bucket (unix seconds) the lease was first taken in: where it is
    /// until a renewal or release moves it. Trusted only once the lease
    /// is known to belong to its token (`Keyring::lease_belongs_to`).
    pub fn first_bucket(&self) -> i64 {
        let b = self.bytes();
        b[LEASE_NONCE_BYTES..LEASE_NONCE_BYTES + LEASE_BUCKET_BYTES]
            .iter()
            .fold(0i64, |acc, x| (acc << 8) | i64::from(*x))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids() {
        let id = TokenId::from_bytes(&[7; TOKEN_ID_BYTES]);
        assert_eq!(TokenId::parse(id.as_str()), Some(id.clone()));
        for bad in [
            "",
            "abc",
            "..",
            &"a".repeat(27),
            &id.as_str().to_uppercase(),
        ] {
            assert!(TokenId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn owners() {
        assert_eq!(Owner::parse("  alice ").unwrap().as_str(), "alice");
        assert!(Owner::parse("").is_none());
        assert!(Owner::parse("   ").is_none());
        assert!(Owner::parse("a\u{7}b").is_none());
        assert!(Owner::parse(&"a".repeat(256)).is_some());
        assert!(Owner::parse(&"a".repeat(257)).is_none());
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::parse("order-17").is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_some());
        for bad in ["", "a b", "é", "a\tb", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn lease_ids() {
        let l = LeaseId::from_bytes(&[3; LEASE_ID_BYTES]);
        assert_eq!(LeaseId::parse(l.as_str()), Some(l.clone()));
        assert_eq!(l.bytes(), [3; LEASE_ID_BYTES]);
        assert_eq!(l.reserved(), 0);
        let r = LeaseId::from_bytes(&[1; RESERVING_LEASE_ID_BYTES]);
        assert_eq!(r.as_str().len(), 32);
        assert_eq!(LeaseId::parse(r.as_str()), Some(r.clone()));
        assert_eq!(r.reserved(), 0x0101_0101);
        assert!(LeaseId::parse("nope").is_none());
        assert!(LeaseId::parse("%2F..%2F").is_none());
    }
}
