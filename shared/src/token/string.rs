//! The token string: `tgl_` + id (16 bytes) + secret (32 bytes) + check
//! (10 bytes), each in lower-case base32: 4 + 26 + 52 + 16 = 98 characters.
//! The check is an HMAC of everything before it, so a mistyped or forged
//! string is refused without a database read; the store keeps only
//! HMAC-SHA256(secret) under another derived key.

use subtle::ConstantTimeEq;

use super::ids::{TokenId, TOKEN_ID_BYTES};
use super::keys::Keys;
use crate::codec;

pub const TOKEN_PREFIX: &str = "tgl_";
const SECRET_BYTES: usize = 32;
const CHECK_BYTES: usize = 10;
const ID_LEN: usize = codec::encoded_len(TOKEN_ID_BYTES);
const SECRET_LEN: usize = codec::encoded_len(SECRET_BYTES);
const CHECK_LEN: usize = codec::encoded_len(CHECK_BYTES);
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + ID_LEN + SECRET_LEN + CHECK_LEN;
/// Characters of the token string kept to recognise it (`start`).
pub const START_LEN: usize = 12;

/// A parsed token string: its id and secret, integrity already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenString {
    pub id: TokenId,
    secret: [u8; SECRET_BYTES],
}

/// A freshly minted token: the string to hand out once, and what to store.
pub struct Minted {
    pub id: TokenId,
    pub token: String,
    pub secret_hash: String,
}

impl Minted {
    /// The first characters of the string, kept to recognise it.
    pub fn start(&self) -> String {
        self.token.chars().take(START_LEN).collect()
    }
}

impl Keys {
    pub fn mint(&self) -> Minted {
        let id = TokenId::from_bytes(&codec::random_bytes::<TOKEN_ID_BYTES>());
        let secret = codec::random_bytes::<SECRET_BYTES>();
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(TOKEN_PREFIX);
        token.push_str(id.as_str());
        codec::encode_into(&secret, &mut token);
        let check = self.token_check(token.as_bytes());
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
        let expected = self.token_check(body.as_bytes());
        if !bool::from(expected[..CHECK_BYTES].ct_eq(&check)) {
            return None;
        }
        let id = TokenId::parse(body.get(TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + ID_LEN)?)?;
        let secret = codec::decode(body.get(TOKEN_PREFIX.len() + ID_LEN..)?)?;
        Some(TokenString { id, secret })
    }

    /// Constant-time comparison of a presented secret with the stored hash.
    pub fn secret_matches(&self, token: &TokenString, stored_hash: &str) -> bool {
        let Some(stored) = codec::decode::<32>(stored_hash) else {
            return false;
        };
        let computed = self.secret_digest(&token.secret);
        bool::from(computed.ct_eq(&stored))
    }

    fn hash_secret(&self, secret: &[u8]) -> String {
        codec::encode(&self.secret_digest(secret))
    }
}

/// Whether `text` is shaped like a Tollgate token string (prefix, length,
/// alphabet), whatever key made it: how management routes recognise a
/// token presented as a credential without mistaking a JWT for one.
pub fn looks_like_token(text: &str) -> bool {
    let text = text.trim();
    text.len() == TOKEN_LEN
        && text.starts_with(TOKEN_PREFIX)
        && text
            .bytes()
            .skip(TOKEN_PREFIX.len())
            .all(codec::is_alphabet)
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
        assert!(looks_like_token(&m.token));
        assert_eq!(m.start(), m.token[..START_LEN]);
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
                assert!(!looks_like_token(&s));
                assert!(k
                    .open_cursor(&super::super::Owner::parse("o").unwrap(), &s)
                    .is_none());
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
    fn a_jwt_is_not_taken_for_a_token() {
        // A JWT may hold `tgl_` anywhere in its base64url text.
        let jwt = format!("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.abc{}xyz", "tgl_");
        assert!(!looks_like_token(&jwt));
        assert!(!looks_like_token(&format!(
            "Bearer {}",
            keys().mint().token
        )));
    }
}
