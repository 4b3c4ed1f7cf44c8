//! The token string: `tgl_` + the ring key id and `_` + id (16 bytes) +
//! secret (32 bytes) + check (10 bytes), each in lower-case base32. A v1
//! string has no key id: 4 + 26 + 52 + 16 = 98 characters. The check is an
//! HMAC of everything before it under the named key, so a mistyped or forged
//! string is refused without a database read; the store keeps only
//! HMAC-SHA256(secret) under another key derived from the same ring key.

use subtle::ConstantTimeEq;

use super::keys::Keys;
use crate::codec;
use crate::token::ids::{TokenId, TOKEN_ID_BYTES};

pub const TOKEN_PREFIX: &str = "tgl_";
const SECRET_BYTES: usize = 32;
const CHECK_BYTES: usize = 10;
const ID_LEN: usize = codec::encoded_len(TOKEN_ID_BYTES);
const SECRET_LEN: usize = codec::encoded_len(SECRET_BYTES);
const CHECK_LEN: usize = codec::encoded_len(CHECK_BYTES);
/// The length of a v1 string (no key id).
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + ID_LEN + SECRET_LEN + CHECK_LEN;
const MAX_KID_LEN: usize = 16;
const KID_SEPARATOR: char = '_';
/// The longest string: one naming a 16-character key id.
pub const MAX_TOKEN_LEN: usize = TOKEN_LEN + MAX_KID_LEN + 1;
/// Characters of the token string kept to recognise it (`start`).
pub const START_LEN: usize = 12;

/// A parsed token string: its id, the ring key it names and its secret,
/// integrity already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenString {
    pub id: TokenId,
    /// `None`: a v1 string (see `Keyring`).
    pub kid: Option<String>,
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
    /// Mints a token string for `id` with a new secret; `kid` names the ring
    /// key this is (none for the v1 key, whose strings carry no key id).
    pub(super) fn mint_for(&self, kid: Option<&str>, id: TokenId) -> Minted {
        let secret = codec::random_bytes::<SECRET_BYTES>();
        let mut token = String::with_capacity(MAX_TOKEN_LEN);
        token.push_str(TOKEN_PREFIX);
        if let Some(kid) = kid {
            token.push_str(kid);
            token.push(KID_SEPARATOR);
        }
        token.push_str(id.as_str());
        codec::encode_into(&secret, &mut token);
        let check = self.token_check(token.as_bytes());
        codec::encode_into(&check[..CHECK_BYTES], &mut token);
        Minted {
            secret_hash: codec::encode(&self.secret_digest(&secret)),
            id,
            token,
        }
    }

    /// Integrity-checks the parts of a token string split by [`split`].
    pub(super) fn check_parts(&self, parts: &Parts<'_>) -> Option<TokenString> {
        let expected = self.token_check(parts.checked.as_bytes());
        let check: [u8; CHECK_BYTES] = codec::decode(parts.check)?;
        if !bool::from(expected[..CHECK_BYTES].ct_eq(&check)) {
            return None;
        }
        let id = TokenId::parse(parts.body.get(..ID_LEN)?)?;
        let secret = codec::decode(parts.body.get(ID_LEN..)?)?;
        Some(TokenString {
            id,
            kid: parts.kid.map(str::to_owned),
            secret,
        })
    }

    /// The hash the store keeps of a presented token's secret.
    pub(super) fn stored_hash(&self, token: &TokenString) -> String {
        codec::encode(&self.secret_digest(&token.secret))
    }

    /// Constant-time comparison of a presented secret with a stored hash.
    pub(super) fn secret_matches(&self, token: &TokenString, stored_hash: &str) -> bool {
        let Some(stored) = codec::decode::<32>(stored_hash) else {
            return false;
        };
        bool::from(self.secret_digest(&token.secret).ct_eq(&stored))
    }
}

/// A token string taken apart, before its integrity check.
pub(super) struct Parts<'a> {
    /// The ring key id it names (`None`: a v1 string, made by the v1 key).
    pub kid: Option<&'a str>,
    /// Everything the check covers: prefix, key id, id and secret.
    pub checked: &'a str,
    /// The id and the secret.
    body: &'a str,
    check: &'a str,
}

/// Takes a token string apart by its shape: `tgl_` + [key id + `_`] + id +
/// secret + check. `None` for anything else: not ASCII (checked first, so
/// no offset below can fall inside a character), the wrong length, a bad
/// key id. The parts' alphabet is left to their decoders.
pub(super) fn split(text: &str) -> Option<Parts<'_>> {
    let text = text.trim();
    if !text.is_ascii() || text.len() < TOKEN_LEN || text.len() > MAX_TOKEN_LEN {
        return None;
    }
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    let (kid, tail) = match rest.split_once(KID_SEPARATOR) {
        Some((kid, tail)) if valid_kid(kid) => (Some(kid), tail),
        Some(_) => return None,
        None => (None, rest),
    };
    // The alphabet is checked by the decoders (and by `looks_like_token`).
    if tail.len() != ID_LEN + SECRET_LEN + CHECK_LEN {
        return None;
    }
    let checked_len = text.len() - CHECK_LEN;
    Some(Parts {
        kid,
        checked: text.get(..checked_len)?,
        body: tail.get(..ID_LEN + SECRET_LEN)?,
        check: text.get(checked_len..)?,
    })
}

/// A ring key id: 1 to 16 of `[0-9a-z]`.
pub fn valid_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Whether `text` is shaped like a Tollgate token string (prefix, length,
/// alphabet), whatever key made it: how management routes recognise a
/// token presented as a credential without mistaking a JWT for one.
pub fn looks_like_token(text: &str) -> bool {
    split(text).is_some_and(|p| {
        p.body.bytes().all(codec::is_alphabet) && p.check.bytes().all(codec::is_alphabet)
    })
}

#[cfg(test)]
mod tests {
    use super::super::keyring::Keyring;
    use super::*;

    fn ring() -> Keyring {
        Keyring::single(&[7u8; 32])
    }

    fn two() -> Keyring {
        Keyring::parse(&format!(
            r#"{{"current": "k2", "keys": {{"v1": "{}", "k2": "{}"}}}}"#,
            base64_of(&[7u8; 32]),
            base64_of(&[9u8; 32])
        ))
        .unwrap()
    }

    fn base64_of(b: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn minted_token_parses_and_matches() {
        for k in [ring(), two()] {
            let m = k.mint();
            assert!(m.token.starts_with("tgl_"));
            assert!(m.token[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_'));
            let t = k.parse_token(&m.token).expect("parses");
            assert_eq!(t.id, m.id);
            assert!(k.secret_matches(&t, &m.secret_hash));
            assert!(!m.secret_hash.contains(&m.token[40..80]));
            assert!(looks_like_token(&m.token));
            assert_eq!(m.start(), m.token[..START_LEN]);
        }
        assert_eq!(
            ring().mint().token.len(),
            TOKEN_LEN,
            "a v1 ring mints v1 strings"
        );
        assert!(two().mint().token.starts_with("tgl_k2_"));
    }

    #[test]
    fn any_single_character_change_is_refused() {
        for k in [ring(), two()] {
            let m = k.mint();
            for i in 0..m.token.len() {
                let mut b = m.token.clone().into_bytes();
                b[i] = if b[i] == b'a' { b'b' } else { b'a' };
                let s = String::from_utf8(b).unwrap();
                assert!(k.parse_token(&s).is_none(), "position {i}");
            }
            assert!(k.parse_token(&m.token[..m.token.len() - 1]).is_none());
            assert!(k.parse_token(&format!("{}0", m.token)).is_none());
        }
        assert!(ring().parse_token("").is_none());
    }

    #[test]
    fn multi_byte_characters_at_every_position_are_refused_not_a_panic() {
        // 98 bytes with a 2-, 3- or 4-byte character straddling every
        // offset, the check boundary (82) among them.
        let k = two();
        for ch in ['é', '€', '𝄞'] {
            let w = ch.len_utf8();
            for len in [TOKEN_LEN, TOKEN_LEN + 3] {
                for at in TOKEN_PREFIX.len()..=len - w {
                    let s = format!(
                        "{TOKEN_PREFIX}{}{ch}{}",
                        "a".repeat(at - TOKEN_PREFIX.len()),
                        "a".repeat(len - at - w)
                    );
                    assert_eq!(s.len(), len);
                    assert!(k.parse_token(&s).is_none(), "{ch} at {at}");
                    assert!(!looks_like_token(&s));
                }
            }
        }
    }

    #[test]
    fn a_token_validates_while_its_key_is_in_the_ring() {
        let old = ring().mint();
        // The v1 key, kept in a JSON ring under `v1`, still accepts it.
        let t = two()
            .parse_token(&old.token)
            .expect("v1 string under the v1 key");
        assert!(two().secret_matches(&t, &old.secret_hash));
        let new = two().mint();
        assert!(
            ring().parse_token(&new.token).is_none(),
            "k2 is not in a v1 ring"
        );
        let other = Keyring::single(&[8u8; 32]);
        assert!(
            other.parse_token(&old.token).is_none(),
            "another key refuses it"
        );
    }

    #[test]
    fn secret_mismatch_detected() {
        let k = ring();
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
            ring().mint().token
        )));
        assert!(!looks_like_token(&format!("tgl_{}", "A".repeat(94))));
    }
}
