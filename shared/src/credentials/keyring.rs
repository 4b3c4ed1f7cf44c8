//! The server keyring: every key the deployment accepts, one of them
//! current. New values (token strings, cursors, lease ids, idempotency
//! records) are made under the current key; values made under any key in
//! the ring are accepted, so the key can rotate without invalidating tokens.
//!
//! Two forms, from `TOLLGATE_HASH_KEY` or the Secrets Manager secret named
//! by `TOLLGATE_HASH_KEY_SECRET`:
//! - v1: one base64 key of at least 32 bytes. Its id is `v1`, and its token
//!   strings carry no key id (as v1 made them);
//! - JSON: `{"current": "<kid>", "keys": {"<kid>": "<base64>", ...}}`, key ids
//!   `[0-9a-z]{1,16}`. Put a v1 key in it under `v1` to keep its tokens.

use std::sync::Arc;

use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::claims::Verified;
use super::keys::Keys;
use super::string::{split, valid_kid, Minted, TokenString};
use crate::codec;
use crate::token::ids::{IdempotencyKey, LeaseId, Owner, TokenId, TOKEN_ID_BYTES};

/// The id of a v1-form key, whose token strings carry no key id.
pub const V1_KID: &str = "v1";

#[derive(Clone)]
pub struct Keyring {
    current: String,
    /// (key id, its keys), the current first: a ring holds a few keys, so a
    /// scan beats a map on the validate hot path.
    keys: Vec<(String, Keys)>,
    /// Capabilities verified under this ring (see `claims::Verified`).
    verified: Arc<Verified>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: never key material.
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field(
                "kids",
                &self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What is wrong with a keyring, in words that never quote key material.
#[derive(Debug, PartialEq, Eq)]
pub struct KeyringError(pub String);

impl std::fmt::Display for KeyringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn decode_key(what: &str, text: &str) -> Result<Vec<u8>, KeyringError> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| KeyringError(format!("{what} is not base64")))?;
    if key.len() < 32 {
        return Err(KeyringError(format!(
            "{what} must decode to at least 32 bytes"
        )));
    }
    Ok(key)
}

/// An `ES256` key's id: its ring key's, with this suffix, so a JWKS holds
/// one key per id (libraries and API Gateway pick keys by `kid`).
pub const ES256_KID_SUFFIX: &str = "-es256";

fn es256_kid(ring_kid: &str) -> String {
    format!("{ring_kid}{ES256_KID_SUFFIX}")
}

impl Keyring {
    /// A v1 ring of one key.
    pub fn single(master: &[u8]) -> Keyring {
        Keyring {
            current: V1_KID.to_owned(),
            keys: vec![(V1_KID.to_owned(), Keys::new(master))],
            verified: Arc::default(),
        }
    }

    /// Parses either form (see the module documentation).
    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        let text = text.trim();
        if !text.starts_with('{') {
            return Ok(Keyring::single(&decode_key("the key", text)?));
        }
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            KeyringError(format!(
                "the keyring is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let current = doc
            .get("current")
            .and_then(|c| c.as_str())
            .ok_or_else(|| KeyringError("the keyring has no \"current\" key id".into()))?;
        let entries = doc
            .get("keys")
            .and_then(|k| k.as_object())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| KeyringError("the keyring has no \"keys\" object".into()))?;
        let mut keys = Vec::with_capacity(entries.len());
        for (kid, value) in entries {
            if !valid_kid(kid) {
                return Err(KeyringError(format!(
                    "key id {kid:?} must be 1 to 16 of [0-9a-z]"
                )));
            }
            let text = value
                .as_str()
                .ok_or_else(|| KeyringError(format!("key {kid} must be a base64 string")))?;
            let derived = Keys::new(&decode_key(&format!("key {kid}"), text)?);
            keys.push((kid.clone(), derived));
        }
        // The current key first: new values are made under it.
        keys.sort_by_key(|(kid, _)| kid != current);
        if keys.first().is_none_or(|(kid, _)| kid != current) {
            return Err(KeyringError(format!(
                "the current key id {current:?} is not among the keys"
            )));
        }
        Ok(Keyring {
            current: current.to_owned(),
            keys,
            verified: Arc::default(),
        })
    }

    pub fn current_kid(&self) -> &str {
        &self.current
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.get(kid).is_some()
    }

    fn get(&self, kid: &str) -> Option<&Keys> {
        self.keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, keys)| keys)
    }

    fn current(&self) -> &Keys {
        // `parse` and `single` put the current key first.
        self.keys
            .first()
            .map(|(_, keys)| keys)
            .unwrap_or_else(|| unreachable!("a keyring holds its current key"))
    }

    /// A new token under the current key.
    pub fn mint(&self) -> Minted {
        self.mint_for(TokenId::from_bytes(&codec::random_bytes::<TOKEN_ID_BYTES>()))
    }

    /// A new secret for an existing token id (roll), under the current key.
    pub fn mint_for(&self, id: TokenId) -> Minted {
        let kid = (self.current != V1_KID).then_some(self.current.as_str());
        self.current().mint_for(kid, id)
    }

    /// Parses and integrity-checks a token string under the key it names.
    /// `None` means `MALFORMED` (an unknown key included).
    pub fn parse_token(&self, text: &str) -> Option<TokenString> {
        let parts = split(text)?;
        self.get(parts.kid.unwrap_or(V1_KID))?.check_parts(&parts)
    }

    /// Constant-time comparison of a presented secret with a stored hash
    /// (made under the key the string names).
    pub fn secret_matches(&self, token: &TokenString, stored_hash: &str) -> bool {
        self.get(token.kid.as_deref().unwrap_or(V1_KID))
            .is_some_and(|k| k.secret_matches(token, stored_hash))
    }

    /// The hash the store keeps of a presented secret (under the key the
    /// string names): what a revocation's conditional delete compares.
    pub fn stored_hash(&self, token: &TokenString) -> Option<String> {
        self.get(token.kid.as_deref().unwrap_or(V1_KID))
            .map(|k| k.stored_hash(token))
    }

    /// Signs a list cursor for one owner under the current key.
    pub fn sign_cursor(&self, owner: &Owner, position: &str) -> String {
        self.current().sign_cursor(owner, position)
    }

    /// Opens a cursor made under any key of the ring.
    pub fn open_cursor(&self, owner: &Owner, cursor: &str) -> Option<String> {
        self.keys
            .iter()
            .find_map(|(_, k)| k.open_cursor(owner, cursor))
    }

    /// The current key's id and capability signing key.
    pub(super) fn capability_signer(&self) -> (&str, &SigningKey) {
        (&self.current, self.current().capability())
    }

    /// The current key's `ES256` key id and P-256 signing key.
    pub(super) fn es256_signer(&self) -> (String, &p256::ecdsa::SigningKey) {
        (es256_kid(&self.current), self.current().es256())
    }

    /// The `ES256` verifying key named by a capability's `kid`.
    pub(super) fn es256_verifier(&self, kid: &str) -> Option<p256::ecdsa::VerifyingKey> {
        let ring_kid = kid.strip_suffix(ES256_KID_SUFFIX)?;
        self.get(ring_kid).map(|k| *k.es256().verifying_key())
    }

    /// Every ring key's `ES256` key id and verifying key (the JWKS).
    pub fn es256_verifiers(
        &self,
    ) -> impl Iterator<Item = (String, p256::ecdsa::VerifyingKey)> + '_ {
        self.keys
            .iter()
            .map(|(kid, k)| (es256_kid(kid), *k.es256().verifying_key()))
    }

    /// The capabilities this ring has verified.
    pub(super) fn verified(&self) -> &Verified {
        &self.verified
    }

    /// The capability verifying key of a ring key, by id.
    pub(super) fn capability_verifier(&self, kid: &str) -> Option<VerifyingKey> {
        self.get(kid).map(|k| k.capability().verifying_key())
    }

    /// Every ring key's id and capability verifying key (the JWKS).
    pub fn capability_verifiers(&self) -> impl Iterator<Item = (&str, VerifyingKey)> {
        self.keys
            .iter()
            .map(|(kid, k)| (kid.as_str(), k.capability().verifying_key()))
    }

    pub fn new_lease_id(&self, token: &TokenId, bucket: i64, reserved: u64) -> LeaseId {
        self.current().new_lease_id(token, bucket, reserved)
    }

    /// Whether `lease` was issued for `token` under any key of the ring.
    pub fn lease_belongs_to(&self, token: &TokenId, lease: &LeaseId) -> bool {
        self.keys
            .iter()
            .any(|(_, k)| k.lease_belongs_to(token, lease))
    }

    /// The store key of a new idempotency record (current key).
    pub fn idempotency_key(&self, owner: &Owner, key: &IdempotencyKey) -> String {
        self.current().idempotency_key(owner, key)
    }

    /// Every store key an earlier record for (owner, key) may have, one per
    /// key of the ring, the current first.
    pub fn idempotency_keys(&self, owner: &Owner, key: &IdempotencyKey) -> Vec<String> {
        self.keys
            .iter()
            .map(|(_, k)| k.idempotency_key(owner, key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_secrets_manager_generates_is_a_one_key_ring() {
        // 64 letters and digits (the template's GenerateSecretString): valid
        // base64 of a 48-byte key.
        let generated = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7DEF0HIJ3LMN6PQR9TUV2WXY5Zabcd";
        assert_eq!(generated.len(), 64);
        let ring = Keyring::parse(generated).expect("a keyring");
        let minted = ring.mint();
        assert!(ring.parse_token(&minted.token).is_some());
    }

    fn b64(b: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([b; 32])
    }

    #[test]
    fn both_forms_parse() {
        let v1 = Keyring::parse(&b64(1)).unwrap();
        assert_eq!(v1.current_kid(), "v1");
        let json = format!(
            r#"{{"current":"k2","keys":{{"v1":"{}","k2":"{}"}}}}"#,
            b64(1),
            b64(2)
        );
        let ring = Keyring::parse(&json).unwrap();
        assert_eq!(ring.current_kid(), "k2");
        assert!(ring.knows("v1") && ring.knows("k2") && !ring.knows("k3"));
    }

    #[test]
    fn malformed_rings_say_what_is_wrong_without_the_key() {
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        for (text, says) in [
            ("not base64!".to_owned(), "not base64"),
            (short.clone(), "at least 32 bytes"),
            ("{".to_owned(), "not JSON"),
            (r#"{"keys":{}}"#.to_owned(), "no \"current\""),
            (r#"{"current":"a"}"#.to_owned(), "no \"keys\""),
            (
                format!(r#"{{"current":"a","keys":{{"b":"{}"}}}}"#, b64(1)),
                "not among the keys",
            ),
            (
                format!(r#"{{"current":"A","keys":{{"A":"{}"}}}}"#, b64(1)),
                "key id",
            ),
            (
                format!(r#"{{"current":"a","keys":{{"a":"{short}"}}}}"#),
                "key a must decode",
            ),
            (
                r#"{"current":"a","keys":{"a":5}}"#.to_owned(),
                "key a must be",
            ),
        ] {
            let e = Keyring::parse(&text).unwrap_err();
            assert!(e.0.contains(says), "{text}: {e}");
            assert!(!e.0.contains(&short) && !e.0.contains(&b64(1)), "{e}");
        }
        let ring = Keyring::parse(&b64(3)).unwrap();
        assert!(!format!("{ring:?}").contains(&b64(3)));
    }

    #[test]
    fn values_made_under_any_ring_key_are_accepted() {
        let old = Keyring::parse(&b64(1)).unwrap();
        let both = Keyring::parse(&format!(
            r#"{{"current":"k2","keys":{{"v1":"{}","k2":"{}"}}}}"#,
            b64(1),
            b64(2)
        ))
        .unwrap();
        let owner = Owner::parse("alice").unwrap();
        let cursor = old.sign_cursor(&owner, "pos");
        assert_eq!(both.open_cursor(&owner, &cursor).as_deref(), Some("pos"));
        let id = old.mint().id;
        let lease = old.new_lease_id(&id, 1_700_000_000, 0);
        assert!(both.lease_belongs_to(&id, &lease));
        let key = IdempotencyKey::parse("k").unwrap();
        assert!(both
            .idempotency_keys(&owner, &key)
            .contains(&old.idempotency_key(&owner, &key)));
        assert_eq!(
            crate::credentials::kid_of(&both.mint().token).as_deref(),
            Some("k2")
        );
        assert_eq!(
            crate::credentials::kid_of(&old.mint().token).as_deref(),
            Some("v1")
        );
    }
}
