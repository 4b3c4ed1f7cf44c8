//! The keys derived from one key of the server keyring, one per purpose, so
//! a value made for one purpose (a cursor) can never pass for another (a
//! token), and the small signed values built on them: list cursors, lease
//! ids and idempotency record keys. `Keyring` holds one `Keys` per ring key.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::codec;
use crate::token::ids::{
    IdempotencyKey, LeaseId, Owner, TokenId, LEASE_BUCKET_BYTES, LEASE_NONCE_BYTES,
    LEASE_RESERVE_BYTES, LEASE_TAG_BYTES,
};

type HmacSha256 = Hmac<Sha256>;

const CURSOR_TAG_BYTES: usize = 12;

#[derive(Clone)]
pub struct Keys {
    token_check: HmacSha256,
    secret_hash: HmacSha256,
    cursor: HmacSha256,
    lease: HmacSha256,
    idempotency: HmacSha256,
    /// Signs capabilities (see `credentials::capability`).
    capability: SigningKey,
    /// Signs the capabilities minted with `"alg": "ES256"`: derived from
    /// `derived` on first use, so a function that never meets ES256 pays
    /// nothing for it at init (its public point is a scalar multiplication,
    /// and the base point's table is built on first use).
    es256: OnceLock<p256::ecdsa::SigningKey>,
    /// The ring key's HKDF pseudorandom key, whence the capability keys.
    derived: Hkdf<Sha256>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length")
}

fn derive(master: &[u8], label: &str) -> HmacSha256 {
    let mut m = keyed(master);
    m.update(b"tollgate/v1/");
    m.update(label.as_bytes());
    keyed(&m.finalize().into_bytes())
}

/// The Ed25519 key capabilities are signed with: HKDF-SHA256 of the ring
/// key under its own label, so rotating the server key rotates the
/// capability keys with it and no second secret has to be managed.
fn capability_key(derived: &Hkdf<Sha256>) -> SigningKey {
    let mut seed = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 8160: this cannot fail.
    if derived
        .expand(b"capability-signing-key", &mut seed)
        .is_err()
    {
        unreachable!("HKDF-SHA256 expands to 32 bytes");
    }
    SigningKey::from_bytes(&seed)
}

/// The P-256 key of the capabilities minted with `"alg": "ES256"` (what API
/// Gateway's JWT authorizers verify): HKDF-SHA256 of the ring key under a
/// label of its own, so it shares nothing with the Ed25519 key. A 32-byte
/// output is a valid scalar but for odds of about 2^-32; the next counter
/// is taken then.
fn es256_key(derived: &Hkdf<Sha256>) -> p256::ecdsa::SigningKey {
    let mut counter = 0u8;
    loop {
        let mut seed = [0u8; 32];
        let info = [b"capability-es256-key/".as_slice(), &[counter]].concat();
        if derived.expand(&info, &mut seed).is_ok() {
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&seed) {
                return key;
            }
        }
        counter = counter.wrapping_add(1);
    }
}

fn mac(key: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut m = key.clone();
    for p in parts {
        // Length-prefix each part so ("ab","c") and ("a","bc") differ.
        m.update(&(p.len() as u32).to_be_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

impl Keys {
    pub(super) fn new(master: &[u8]) -> Self {
        let derived = Hkdf::<Sha256>::new(Some(b"tollgate/v1"), master);
        Keys {
            token_check: derive(master, "token-check"),
            secret_hash: derive(master, "secret-hash"),
            cursor: derive(master, "list-cursor"),
            lease: derive(master, "lease-id"),
            idempotency: derive(master, "idempotency"),
            capability: capability_key(&derived),
            es256: OnceLock::new(),
            derived,
        }
    }

    /// The P-256 key this ring key signs `ES256` capabilities with.
    pub(super) fn es256(&self) -> &p256::ecdsa::SigningKey {
        self.es256.get_or_init(|| es256_key(&self.derived))
    }

    /// The Ed25519 key this ring key signs capabilities with.
    pub(super) fn capability(&self) -> &SigningKey {
        &self.capability
    }

    /// The integrity check of a token string's body (see `credentials::string`).
    pub(super) fn token_check(&self, body: &[u8]) -> [u8; 32] {
        mac(&self.token_check, &[body])
    }

    /// What the store keeps of a secret.
    pub(super) fn secret_digest(&self, secret: &[u8]) -> [u8; 32] {
        mac(&self.secret_hash, &[secret])
    }

    /// Signs an opaque value (a list cursor) for one owner.
    pub(super) fn sign_cursor(&self, owner: &Owner, position: &str) -> String {
        let tag = mac(
            &self.cursor,
            &[owner.as_str().as_bytes(), position.as_bytes()],
        );
        let mut s = codec::encode(&tag[..CURSOR_TAG_BYTES]);
        s.push_str(&codec::encode(position.as_bytes()));
        s
    }

    /// Verifies a cursor for this owner; a tampered or foreign one is `None`.
    pub(super) fn open_cursor(&self, owner: &Owner, cursor: &str) -> Option<String> {
        let tag_len = codec::encoded_len(CURSOR_TAG_BYTES);
        if cursor.len() <= tag_len || cursor.len() > 512 || !cursor.is_ascii() {
            return None;
        }
        let tag: [u8; CURSOR_TAG_BYTES] = codec::decode(cursor.get(..tag_len)?)?;
        let pos = String::from_utf8(codec::decode_vec(cursor.get(tag_len..)?)?).ok()?;
        let expected = mac(&self.cursor, &[owner.as_str().as_bytes(), pos.as_bytes()]);
        bool::from(expected[..CURSOR_TAG_BYTES].ct_eq(&tag)).then_some(pos)
    }

    /// A lease id bound to its token: a random nonce, the bucket the lease
    /// was taken in (see `limits::leases`) and the uses it reserved, if
    /// any, under a tag over them and the token id, so a lease id presented
    /// with another token is recognised as foreign without any read, and
    /// neither its first bucket nor its reservation can be forged.
    pub(super) fn new_lease_id(&self, token: &TokenId, bucket: i64, reserved: u64) -> LeaseId {
        let mut body = codec::random_bytes::<LEASE_NONCE_BYTES>().to_vec();
        body.extend_from_slice(&bucket.to_be_bytes()[8 - LEASE_BUCKET_BYTES..]);
        if reserved > 0 {
            body.extend_from_slice(&reserved.to_be_bytes()[8 - LEASE_RESERVE_BYTES..]);
        }
        let tag = self.lease_tag(token, &body);
        body.extend_from_slice(&tag);
        LeaseId::from_bytes(&body)
    }

    /// Whether `lease` was issued for `token`.
    pub(super) fn lease_belongs_to(&self, token: &TokenId, lease: &LeaseId) -> bool {
        let bytes = lease.bytes();
        let (body, tag) = bytes.split_at(bytes.len() - LEASE_TAG_BYTES);
        bool::from(self.lease_tag(token, body).ct_eq(tag))
    }

    fn lease_tag(&self, token: &TokenId, body: &[u8]) -> [u8; LEASE_TAG_BYTES] {
        let tag = mac(&self.lease, &[token.as_str().as_bytes(), body]);
        let mut out = [0u8; LEASE_TAG_BYTES];
        out.copy_from_slice(&tag[..LEASE_TAG_BYTES]);
        out
    }

    /// The store key of an idempotency record: neither the owner nor the
    /// client's key appears in clear.
    pub(super) fn idempotency_key(&self, owner: &Owner, key: &IdempotencyKey) -> String {
        let tag = mac(
            &self.idempotency,
            &[owner.as_str().as_bytes(), key.as_str().as_bytes()],
        );
        codec::encode(&tag[..20])
    }
}

/// A fingerprint of a create request, to tell a replay from a reuse of the
/// key with a different request: SHA-256 of the body in canonical form (see
/// `http::canonical_json`), so formatting and key order do not count, and
/// not keyed, so it survives a key rotation within the 24 hours.
pub fn request_fingerprint(canonical: &[u8]) -> String {
    use sha2::Digest;
    codec::encode(&Sha256::digest(canonical)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&[7u8; 32])
    }

    fn owner(s: &str) -> Owner {
        Owner::parse(s).unwrap()
    }

    #[test]
    fn cursors_bind_to_owner() {
        let k = keys();
        let c = k.sign_cursor(&owner("alice"), "0001700000000#abc");
        assert_eq!(
            k.open_cursor(&owner("alice"), &c).as_deref(),
            Some("0001700000000#abc")
        );
        assert!(k.open_cursor(&owner("bob"), &c).is_none());
        let mut t = c.clone().into_bytes();
        let last = t.len() - 3;
        t[last] = if t[last] == b'a' { b'b' } else { b'a' };
        assert!(k
            .open_cursor(&owner("alice"), &String::from_utf8(t).unwrap())
            .is_none());
        assert!(k.open_cursor(&owner("alice"), "garbage!").is_none());
    }

    #[test]
    fn lease_ids_bind_to_token() {
        let k = keys();
        let (a, b) = (TokenId::from_bytes(&[1; 16]), TokenId::from_bytes(&[2; 16]));
        let l = k.new_lease_id(&a, 1_700_000_010, 0);
        assert!(k.lease_belongs_to(&a, &l));
        assert!(!k.lease_belongs_to(&b, &l));
        assert_ne!(l, k.new_lease_id(&a, 1_700_000_010, 0));
        // A reservation is under the tag too.
        let r = k.new_lease_id(&a, 1_700_000_010, 1_000_000);
        assert_eq!((r.reserved(), r.first_bucket()), (1_000_000, 1_700_000_010));
        assert!(k.lease_belongs_to(&a, &r));
        let mut more = r.bytes();
        more[12] ^= 1;
        assert!(!k.lease_belongs_to(&a, &LeaseId::from_bytes(&more)));
        assert_eq!(l.first_bucket(), 1_700_000_010);
        // The first bucket is under the tag: another one is foreign.
        let mut forged = l.bytes();
        forged[9] ^= 1;
        assert!(!k.lease_belongs_to(&a, &LeaseId::from_bytes(&forged)));
    }

    #[test]
    fn purposes_do_not_mix() {
        let k = keys();
        let key = IdempotencyKey::parse("k").unwrap();
        assert_ne!(
            k.idempotency_key(&owner("a"), &key),
            k.idempotency_key(&owner("b"), &key)
        );
        assert_ne!(request_fingerprint(b"{}"), request_fingerprint(b"{ }"));
        assert_eq!(request_fingerprint(b"{}"), request_fingerprint(b"{}"));
    }
}
