//! Keys derived from the server hash key, and the token string format.
//!
//! `tgl_` + id (16 bytes) + secret (32 bytes) + check (10 bytes), each in
//! lower-case base32: 4 + 26 + 52 + 16 = 98 characters. The check is an HMAC
//! of everything before it, so a mistyped or forged string is refused without
//! a database read; the store keeps only HMAC-SHA256(secret) under another
//! derived key.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::codec;

type HmacSha256 = Hmac<Sha256>;

pub const TOKEN_PREFIX: &str = "tgl_";
const ID_BYTES: usize = 16;
const SECRET_BYTES: usize = 32;
const CHECK_BYTES: usize = 10;
const ID_LEN: usize = codec::encoded_len(ID_BYTES);
const SECRET_LEN: usize = codec::encoded_len(SECRET_BYTES);
const CHECK_LEN: usize = codec::encoded_len(CHECK_BYTES);
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + ID_LEN + SECRET_LEN + CHECK_LEN;
/// Characters of the token string kept to recognise it (`start`).
pub const START_LEN: usize = 12;

const LEASE_NONCE_BYTES: usize = 10;
const LEASE_TAG_BYTES: usize = 6;

/// Keys derived once from `TOLLGATE_HASH_KEY`, one per purpose, so a value
/// made for one purpose (a cursor) can never pass for another (a token).
#[derive(Clone)]
pub struct Keys {
    token_check: HmacSha256,
    secret_hash: HmacSha256,
    cursor: HmacSha256,
    lease: HmacSha256,
    idempotency: HmacSha256,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    HmacSha256::new_from_slice(key).expect("HMAC accepts any key length")
}

fn derive(master: &[u8], label: &str) -> HmacSha256 {
    let mut m = keyed(master);
    m.update(b"tollgate/v1/");
    m.update(label.as_bytes());
    keyed(&m.finalize().into_bytes())
}

/// A parsed token string: its id and secret, integrity already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenString {
    pub id: String,
    secret: [u8; SECRET_BYTES],
}

/// A freshly minted token: the string to hand out once, and what to store.
pub struct Minted {
    pub id: String,
    pub token: String,
    pub secret_hash: String,
}

impl Keys {
    pub fn new(master: &[u8]) -> Self {
        Keys {
            token_check: derive(master, "token-check"),
            secret_hash: derive(master, "secret-hash"),
            cursor: derive(master, "list-cursor"),
            lease: derive(master, "lease-id"),
            idempotency: derive(master, "idempotency"),
        }
    }

    fn mac(&self, key: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = key.clone();
        for p in parts {
            // Length-prefix each part so ("ab","c") and ("a","bc") differ.
            m.update(&(p.len() as u32).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    pub fn mint(&self) -> Minted {
        let id = codec::encode(&codec::random_bytes::<ID_BYTES>());
        let secret = codec::random_bytes::<SECRET_BYTES>();
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(TOKEN_PREFIX);
        token.push_str(&id);
        codec::encode_into(&secret, &mut token);
        let check = self.mac(&self.token_check, &[token.as_bytes()]);
        codec::encode_into(&check[..CHECK_BYTES], &mut token);
        Minted {
            secret_hash: self.hash_secret(&secret),
            id,
            token,
        }
    }

    /// Parses and integrity-checks a token string. `None` means `MALFORMED`.
    pub fn parse_token(&self, text: &str) -> Option<TokenString> {
        let text = text.trim();
        // ASCII first: every offset below is then a character boundary, so
        // no slicing can panic whatever the client sent.
        if text.len() != TOKEN_LEN || !text.is_ascii() || !text.starts_with(TOKEN_PREFIX) {
            return None;
        }
        let body = text.get(..TOKEN_LEN - CHECK_LEN)?;
        let check: [u8; CHECK_BYTES] = codec::decode(text.get(TOKEN_LEN - CHECK_LEN..)?)?;
        let expected = self.mac(&self.token_check, &[body.as_bytes()]);
        if !bool::from(expected[..CHECK_BYTES].ct_eq(&check)) {
            return None;
        }
        let id = body.get(TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + ID_LEN)?;
        codec::decode::<ID_BYTES>(id)?;
        let secret = codec::decode(body.get(TOKEN_PREFIX.len() + ID_LEN..)?)?;
        Some(TokenString {
            id: id.to_owned(),
            secret,
        })
    }

    fn hash_secret(&self, secret: &[u8]) -> String {
        codec::encode(&self.mac(&self.secret_hash, &[secret]))
    }

    /// Constant-time comparison of a presented secret with the stored hash.
    pub fn secret_matches(&self, token: &TokenString, stored_hash: &str) -> bool {
        let Some(stored) = codec::decode::<32>(stored_hash) else {
            return false;
        };
        let computed = self.mac(&self.secret_hash, &[&token.secret]);
        bool::from(computed.ct_eq(&stored))
    }

    /// Signs an opaque value (a list cursor) for one owner.
    pub fn sign_cursor(&self, owner: &str, position: &str) -> String {
        let tag = self.mac(&self.cursor, &[owner.as_bytes(), position.as_bytes()]);
        let mut s = codec::encode(&tag[..12]);
        s.push_str(&codec::encode(position.as_bytes()));
        s
    }

    /// Verifies a cursor for this owner; a tampered or foreign one is `None`.
    pub fn open_cursor(&self, owner: &str, cursor: &str) -> Option<String> {
        let tag_len = codec::encoded_len(12);
        if cursor.len() <= tag_len || cursor.len() > 512 || !cursor.is_ascii() {
            return None;
        }
        let (tag, pos) = cursor.split_at(tag_len);
        let tag: [u8; 12] = codec::decode(tag)?;
        let pos = decode_vec(pos)?;
        let pos = String::from_utf8(pos).ok()?;
        let expected = self.mac(&self.cursor, &[owner.as_bytes(), pos.as_bytes()]);
        bool::from(expected[..12].ct_eq(&tag)).then_some(pos)
    }

    /// A lease id bound to its token: a random nonce plus a tag over the
    /// token id, so a lease id presented with another token is recognised as
    /// foreign without any read.
    pub fn new_lease_id(&self, token_id: &str) -> String {
        let nonce = codec::random_bytes::<LEASE_NONCE_BYTES>();
        self.lease_id_from_nonce(token_id, &nonce)
    }

    fn lease_id_from_nonce(&self, token_id: &str, nonce: &[u8]) -> String {
        let tag = self.mac(&self.lease, &[token_id.as_bytes(), nonce]);
        let mut bytes = [0u8; LEASE_NONCE_BYTES + LEASE_TAG_BYTES];
        bytes[..LEASE_NONCE_BYTES].copy_from_slice(nonce);
        bytes[LEASE_NONCE_BYTES..].copy_from_slice(&tag[..LEASE_TAG_BYTES]);
        codec::encode(&bytes)
    }

    /// Whether `lease_id` was issued for `token_id`.
    pub fn lease_belongs_to(&self, token_id: &str, lease_id: &str) -> bool {
        let Some(bytes) = codec::decode::<{ LEASE_NONCE_BYTES + LEASE_TAG_BYTES }>(lease_id) else {
            return false;
        };
        let tag = self.mac(
            &self.lease,
            &[token_id.as_bytes(), &bytes[..LEASE_NONCE_BYTES]],
        );
        bool::from(tag[..LEASE_TAG_BYTES].ct_eq(&bytes[LEASE_NONCE_BYTES..]))
    }

    /// The store key of an idempotency record: neither the owner nor the
    /// client's key appears in clear.
    pub fn idempotency_key(&self, owner: &str, key: &str) -> String {
        codec::encode(&self.mac(&self.idempotency, &[owner.as_bytes(), key.as_bytes()])[..20])
    }

    /// A fingerprint of a request body, to tell a replay from a reuse of the
    /// key with a different request.
    pub fn fingerprint(&self, body: &[u8]) -> String {
        codec::encode(&self.mac(&self.idempotency, &[b"body", body])[..16])
    }
}

fn decode_vec(text: &str) -> Option<Vec<u8>> {
    // Variable-length decode for cursors: reuse fixed decode in 5-byte blocks.
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    for chunk in bytes.chunks(8) {
        let s = std::str::from_utf8(chunk).ok()?;
        match chunk.len() {
            8 => out.extend_from_slice(&codec::decode::<5>(s)?),
            7 => out.extend_from_slice(&codec::decode::<4>(s)?),
            5 => out.extend_from_slice(&codec::decode::<3>(s)?),
            4 => out.extend_from_slice(&codec::decode::<2>(s)?),
            2 => out.extend_from_slice(&codec::decode::<1>(s)?),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&[7u8; 32])
    }

    #[test]
    fn minted_token_parses_and_matches() {
        let k = keys();
        let m = k.mint();
        assert_eq!(m.token.len(), TOKEN_LEN);
        assert!(m.token.starts_with("tgl_"));
        assert!(m.token[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        let t = k.parse_token(&m.token).expect("parses");
        assert_eq!(t.id, m.id);
        assert!(k.secret_matches(&t, &m.secret_hash));
        assert!(!m.secret_hash.contains(&m.token[30..80]));
    }

    #[test]
    fn any_single_character_change_is_refused() {
        let k = keys();
        let m = k.mint();
        for i in 0..m.token.len() {
            let mut b = m.token.clone().into_bytes();
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            let s = String::from_utf8(b).unwrap();
            assert!(k.parse_token(&s).is_none(), "position {i}");
        }
        assert!(k.parse_token(&m.token[..97]).is_none());
        assert!(k.parse_token(&format!("{}0", m.token)).is_none());
        assert!(k.parse_token("").is_none());
    }

    #[test]
    fn multi_byte_characters_at_every_position_are_refused_not_a_panic() {
        // 98 bytes with a 2-, 3- or 4-byte character straddling every
        // offset, the check boundary (82) among them.
        let k = keys();
        for ch in ['é', '€', '𝄞'] {
            let w = ch.len_utf8();
            for at in TOKEN_PREFIX.len()..=TOKEN_LEN - w {
                let s = format!(
                    "{TOKEN_PREFIX}{}{ch}{}",
                    "a".repeat(at - TOKEN_PREFIX.len()),
                    "a".repeat(TOKEN_LEN - at - w)
                );
                assert_eq!(s.len(), TOKEN_LEN);
                assert!(k.parse_token(&s).is_none(), "{ch} at {at}");
                assert!(!k.lease_belongs_to("id", &s));
                assert!(k.open_cursor("o", &s).is_none());
            }
        }
    }

    #[test]
    fn another_key_refuses_the_token() {
        let m = keys().mint();
        assert!(Keys::new(&[8u8; 32]).parse_token(&m.token).is_none());
    }

    #[test]
    fn secret_mismatch_detected() {
        let k = keys();
        let a = k.mint();
        let b = k.mint();
        let ta = k.parse_token(&a.token).unwrap();
        assert!(!k.secret_matches(&ta, &b.secret_hash));
    }

    #[test]
    fn cursors_bind_to_owner() {
        let k = keys();
        let c = k.sign_cursor("alice", "0001700000000#abc");
        assert_eq!(
            k.open_cursor("alice", &c).as_deref(),
            Some("0001700000000#abc")
        );
        assert!(k.open_cursor("bob", &c).is_none());
        let mut t = c.clone().into_bytes();
        let last = t.len() - 3;
        t[last] = if t[last] == b'a' { b'b' } else { b'a' };
        assert!(k
            .open_cursor("alice", &String::from_utf8(t).unwrap())
            .is_none());
        assert!(k.open_cursor("alice", "garbage!").is_none());
    }

    #[test]
    fn lease_ids_bind_to_token() {
        let k = keys();
        let l = k.new_lease_id("tok1");
        assert!(k.lease_belongs_to("tok1", &l));
        assert!(!k.lease_belongs_to("tok2", &l));
        assert!(!k.lease_belongs_to("tok1", "nope"));
        assert_ne!(l, k.new_lease_id("tok1"));
    }
}
