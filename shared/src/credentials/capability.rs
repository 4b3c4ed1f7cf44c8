//! Capabilities: short-lived, narrowed credentials minted from a token
//! (Twilio's capability tokens, done so anyone can verify them offline).
//! A capability is a compact JWS (RFC 7515) signed with Ed25519
//! (`alg: EdDSA`, RFC 8037, the default) or, when the mint asks, ECDSA
//! P-256 (`alg: ES256`, RFC 7518: what API Gateway's JWT authorizers
//! verify), under a key derived from a server ring key (`kid`), whose
//! public half `GET /.well-known/jwks.json` publishes.
//!
//! Verification here decides signature, format, `nbf` and `exp` with no
//! read; the parent token is then read and checked as for any validate,
//! narrowed by the claims (see `validate`). Minting narrows a parent:
//! [`MintRequest::narrow`] holds the rules.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer};
use ipnet::IpNet;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use super::claims::Claims;
use super::claims::VERIFIED_MAX_LEN;
use super::keyring::Keyring;
use crate::codec;
use crate::token::ids::TokenId;
use crate::token::scopes::{self, Scope, MAX_SCOPES};
use crate::token::{address, audience, resource, FieldErrors, TokenRecord};

/// A capability is refused unread past this length.
pub const MAX_CAPABILITY_LEN: usize = 8192;
/// `ttlSeconds`: 1 to 86400, 3600 when absent (Twilio's default).
pub const MAX_TTL_SECONDS: i64 = 86_400;
pub const DEFAULT_TTL_SECONDS: i64 = 3_600;
/// `nbf` is this much before `iat`, for clocks a little apart.
const NBF_LEEWAY_SECONDS: i64 = 30;

#[cfg(test)]
impl Claims {
    /// A capability of a fresh parent, open-ended, unbound and narrowing
    /// nothing: what a test changes the fields it is about from.
    pub(crate) fn for_tests() -> Claims {
        Claims {
            parent: Keyring::single(&[1; 32]).mint().id,
            id: "j".into(),
            issued_at: 0,
            not_before: 0,
            expires: i64::MAX,
            scopes: Vec::new(),
            resource: "/".into(),
            write: false,
            address: None,
            audiences: Vec::new(),
            owner: "o".into(),
            generation: 0,
        }
    }
}

/// Why a presented capability is refused without any read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    NotYetValid,
    Expired,
}

/// Whether `text` is shaped like a JWS (three base64url parts), so it is
/// taken for a capability rather than a token string.
pub fn looks_like_capability(text: &str) -> bool {
    text.len() <= MAX_CAPABILITY_LEN
        && text.split('.').count() == 3
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `text` is a capability of this deployment (its `iss`), read
/// without verifying: what a management route refuses with 403 (a
/// signature check is not needed to refuse).
pub fn is_ours(text: &str, issuer: &str) -> bool {
    looks_like_capability(text)
        && text
            .split('.')
            .nth(1)
            .and_then(json_part)
            .is_some_and(|claims| claims.get("iss").and_then(Value::as_str) == Some(issuer))
}

/// The key id a capability's header names, if it is shaped like one: so a
/// function that does not know the key yet re-reads its keyring first.
pub fn kid_of(text: &str) -> Option<String> {
    if !looks_like_capability(text) {
        return None;
    }
    let header = json_part(text.split('.').next()?)?;
    let kid = header.get("kid")?.as_str()?;
    // An ES256 key is named after its ring key.
    Some(
        kid.strip_suffix(super::keyring::ES256_KID_SUFFIX)
            .unwrap_or(kid)
            .to_owned(),
    )
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn json_part(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// [`verify`], remembering what `keys` verified: what the validate flow
/// calls, so a client presenting one capability over and over pays its
/// signature check once per function instance.
pub fn verify_remembered(
    keys: &Keyring,
    issuer: &str,
    text: &str,
    now: OffsetDateTime,
) -> Result<Claims, Refusal> {
    if text.len() > VERIFIED_MAX_LEN {
        return verify(keys, issuer, text, now);
    }
    let key: [u8; 32] = Sha256::new()
        .chain_update(issuer.as_bytes())
        .chain_update([0u8])
        .chain_update(text.as_bytes())
        .finalize()
        .into();
    let claims = match keys.verified().get(&key) {
        Some(c) => c,
        None => {
            let c = verify_signed(keys, issuer, text).ok_or(Refusal::Malformed)?;
            keys.verified().keep(key, &c);
            c
        }
    };
    within_window(claims, now)
}

/// A capability's signature algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Alg {
    /// Ed25519 (RFC 8037): the default.
    #[default]
    EdDSA,
    /// ECDSA P-256 with SHA-256 (RFC 7518), low-S: what API Gateway's JWT
    /// authorizers accept.
    Es256,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::Es256 => "ES256",
        }
    }

    fn named(name: &str) -> Option<Alg> {
        [Alg::EdDSA, Alg::Es256]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

/// Signs `claims` under the ring's current key with Ed25519: the compact JWS.
pub fn sign(keys: &Keyring, issuer: &str, claims: &Claims) -> String {
    sign_as(Alg::EdDSA, keys, issuer, claims)
}

/// Signs `claims` under the ring's current key with `alg`.
pub fn sign_as(alg: Alg, keys: &Keyring, issuer: &str, claims: &Claims) -> String {
    let signing_input = |kid: &str| {
        let header = json!({"alg": alg.name(), "typ": "JWT", "kid": kid});
        let payload = claims.to_json(issuer).to_string();
        format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.as_bytes())
        )
    };
    let (input, signature) = match alg {
        Alg::EdDSA => {
            let (kid, key) = keys.capability_signer();
            let input = signing_input(kid);
            let signature: Signature = key.sign(input.as_bytes());
            (input, signature.to_bytes().to_vec())
        }
        Alg::Es256 => {
            let (kid, key) = keys.es256_signer();
            let input = signing_input(&kid);
            let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
            // Low-S: the one form `verify` accepts.
            (input, signature.normalize_s().to_bytes().to_vec())
        }
    };
    format!("{input}.{}", b64(&signature))
}

/// Verifies a presented capability: the header names `EdDSA` or `ES256`
/// and a key of the ring of that kind (nothing else is accepted: no
/// `none`, no HMAC, no embedded key), the signature holds (strict Ed25519;
/// ECDSA P-256 in low-S form only), the claims are Tollgate's for this
/// issuer, and `now` is inside `[nbf, exp)`. No read.
pub fn verify(
    keys: &Keyring,
    issuer: &str,
    text: &str,
    now: OffsetDateTime,
) -> Result<Claims, Refusal> {
    within_window(
        verify_signed(keys, issuer, text).ok_or(Refusal::Malformed)?,
        now,
    )
}

fn within_window(claims: Claims, now: OffsetDateTime) -> Result<Claims, Refusal> {
    let now = now.unix_timestamp();
    if now < claims.not_before {
        return Err(Refusal::NotYetValid);
    }
    if now >= claims.expires {
        return Err(Refusal::Expired);
    }
    Ok(claims)
}

/// A capability's claims if its signature holds, whatever its window: what
/// a revocation needs (a capability not valid yet can be revoked too).
pub fn signed_claims(keys: &Keyring, issuer: &str, text: &str) -> Option<Claims> {
    verify_signed(keys, issuer, text)
}

fn verify_signed(keys: &Keyring, issuer: &str, text: &str) -> Option<Claims> {
    if !looks_like_capability(text) {
        return None;
    }
    let (signing_input, signature) = text.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    let header = json_part(header)?;
    let only_known = header
        .keys()
        .all(|k| matches!(k.as_str(), "alg" | "typ" | "kid"));
    if !only_known || header.get("typ").is_some_and(|t| t.as_str() != Some("JWT")) {
        return None;
    }
    let kid = header.get("kid")?.as_str()?;
    let signature: [u8; 64] = URL_SAFE_NO_PAD.decode(signature).ok()?.try_into().ok()?;
    match Alg::named(header.get("alg")?.as_str()?)? {
        Alg::EdDSA => keys
            .capability_verifier(kid)?
            .verify_strict(signing_input.as_bytes(), &Signature::from_bytes(&signature))
            .ok()?,
        Alg::Es256 => {
            // Zero scalars are refused here; a high S (the same signature
            // made malleable) below.
            let parsed = p256::ecdsa::Signature::from_slice(&signature).ok()?;
            if parsed.normalize_s() != parsed {
                return None;
            }
            // ring's P-256 verification (assembly, the one the TLS stack
            // already links) is about four times RustCrypto's.
            let point = keys.es256_verifier(kid)?.to_sec1_point(false);
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point.as_bytes(),
            )
            .verify(signing_input.as_bytes(), &signature)
            .ok()?
        }
    }
    Claims::from_json(&json_part(payload)?, issuer)
}

/// `GET /.well-known/jwks.json`: every ring key's capability public keys
/// (RFC 8037 `OKP`/`Ed25519`, and RFC 7518 `EC`/`P-256` under the
/// `-es256` key id), so any JWT library, and API Gateway, verifies offline.
pub fn jwks(keys: &Keyring) -> Value {
    let mut list: Vec<Value> = keys
        .capability_verifiers()
        .map(|(kid, key)| {
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(key.as_bytes()),
                   "kid": kid, "alg": "EdDSA", "use": "sig"})
        })
        .collect();
    for (kid, key) in keys.es256_verifiers() {
        let point = key.to_sec1_point(false);
        if let (Some(x), Some(y)) = (point.x(), point.y()) {
            list.push(
                json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y),
                             "kid": kid, "alg": "ES256", "use": "sig"}),
            );
        }
    }
    json!({ "keys": list })
}

/// `GET /.well-known/openid-configuration`: where an OpenID-style verifier
/// (API Gateway's JWT authorizer) finds the keys of `issuer`'s capabilities.
pub fn discovery(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
        "id_token_signing_alg_values_supported": [Alg::EdDSA.name(), Alg::Es256.name()],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "resource", "write", "addr", "own", "gen"],
    })
}

/// A `POST /validate/capabilities` body, parsed (the token aside).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MintRequest {
    pub ttl_seconds: Option<i64>,
    /// Normalised scopes asked for.
    pub scopes: Vec<String>,
    /// Normalised resource asked for.
    pub resource: Option<String>,
    pub write: Option<bool>,
    pub address: Option<IpNet>,
    /// The one audience asked for, among the parent's.
    pub audience: Option<String>,
    /// Uses of the parent the mint spends (default 1).
    pub cost: Option<u64>,
    /// `alg`: how it is signed (default `EdDSA`).
    pub alg: Alg,
}

impl MintRequest {
    /// Parses the body's capability fields; every bad one named. `token`
    /// is the credential (read by the validate decoder), not checked here.
    pub fn parse(body: &Map<String, Value>) -> Result<MintRequest, FieldErrors> {
        let mut req = MintRequest::default();
        let mut errors = FieldErrors::default();
        for (k, v) in body {
            match (k.as_str(), v) {
                ("token", _) | (_, Value::Null) => {}
                ("ttlSeconds", v) => match v.as_i64() {
                    Some(n) if (1..=MAX_TTL_SECONDS).contains(&n) => req.ttl_seconds = Some(n),
                    _ => errors.add(k, "must be an integer from 1 to 86400"),
                },
                ("scopes", Value::Array(list)) if list.len() <= MAX_SCOPES => {
                    for (i, s) in list.iter().enumerate() {
                        match s.as_str().and_then(scopes::normalise) {
                            Some(s) if !req.scopes.contains(&s) => req.scopes.push(s),
                            Some(_) => {}
                            None => errors.add(
                                format!("scopes[{i}]"),
                                "must be a scope: scope:<service>:<privilege>[?<params>]",
                            ),
                        }
                    }
                }
                ("scopes", _) => errors.add(k, "must be a list of at most 32 scopes"),
                ("resource", Value::String(s)) => match resource::normalise(s) {
                    Some(r) => req.resource = Some(r),
                    None => errors.add(k, "must be a path without '..', '//', '?' or '#'"),
                },
                ("write", Value::Bool(b)) => req.write = Some(*b),
                ("alg", v) => match v.as_str().and_then(Alg::named) {
                    Some(alg) => req.alg = alg,
                    None => errors.add(k, "must be EdDSA or ES256"),
                },
                ("cost", v) => req.cost = crate::limits::uses::parse_cost(k, v, &mut errors),
                ("audience", Value::String(s)) if audience::is_audience(s) => {
                    req.audience = Some(s.clone())
                }
                ("audience", _) => errors.add(k, audience::AUDIENCE_RULE),
                ("address", Value::String(s)) => match address::parse_net(s) {
                    Some(a) => req.address = Some(a),
                    None => errors.add(k, "must be an IPv4 or IPv6 address or CIDR network"),
                },
                ("resource" | "address", _) => errors.add(k, "must be a string"),
                ("write", _) => errors.add(k, "must be true or false"),
                _ => errors.add(k, "is not a field of a capability request"),
            }
        }
        errors.into_result(req)
    }

    /// The claims of a capability of `parent` minted at `now`, or the
    /// fields that ask for more than the parent has: every scope covered by
    /// one of the parent's, the resource within the parent's, `write` only
    /// from a writable parent, the address inside the parent's allowed
    /// addresses when it has some. It never outlives the parent, nor the
    /// secret presented (`secret_end`: a rolled-away secret's grace).
    pub fn narrow(
        &self,
        parent: &TokenRecord,
        secret_end: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Claims, FieldErrors> {
        let mut errors = FieldErrors::default();
        let granted = parent.scopes.as_deref().unwrap_or_default();
        for (i, s) in self.scopes.iter().enumerate() {
            if !Scope::parse(s).is_some_and(|s| scopes::any_covers(granted, &s)) {
                errors.add(
                    format!("scopes[{i}]"),
                    "is not covered by the token's scopes",
                );
            }
        }
        let resource = self.resource.clone().unwrap_or(parent.resource.clone());
        if !resource::covers(&parent.resource, &resource) {
            errors.add("resource", "is outside the token's resource");
        }
        let write = self.write.unwrap_or(parent.write);
        if write && !parent.write {
            errors.add("write", "needs a token that may write");
        }
        // An address-bound parent binds its capabilities too, so an
        // offline verifier sees the binding: to the one network it allows,
        // or to the one the mint names among several.
        let address = match (self.address, parent.allowed_addresses.as_deref()) {
            (Some(net), Some(allowed)) => {
                let inside = allowed
                    .iter()
                    .any(|a| a.contains(&net.network()) && a.prefix_len() <= net.prefix_len());
                if !inside {
                    errors.add("address", "is outside the token's allowed addresses");
                }
                Some(net)
            }
            (None, Some([only])) => Some(*only),
            (None, Some(_)) => {
                errors.add(
                    "address",
                    "is required: the token allows several networks, name the one to bind",
                );
                None
            }
            (asked, None) => asked,
        };
        let granted_audiences = parent.audience_list();
        let audiences = match &self.audience {
            Some(a) if audience::allows(granted_audiences, Some(a)) => vec![a.clone()],
            Some(_) => {
                errors.add("audience", "is not one of the token's audiences");
                Vec::new()
            }
            None => granted_audiences.to_vec(),
        };
        // The previous secret, in its grace, mints under the generation
        // before the current one.
        let generation = match secret_end {
            Some(_) => parent.secret_generation.saturating_sub(1),
            None => parent.secret_generation,
        };
        let now = now.unix_timestamp();
        let ttl = self.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        let end = match secret_end {
            Some(s) => parent.end_date.min(s),
            None => parent.end_date,
        };
        let claims = Claims {
            parent: TokenId::parse(&parent.id)
                .unwrap_or_else(|| unreachable!("a stored token's id is a token id")),
            id: codec::encode(&codec::random_bytes::<10>()),
            issued_at: now,
            // A function whose clock is a little behind still takes it.
            not_before: now - NBF_LEEWAY_SECONDS,
            expires: (now + ttl).min(end.unix_timestamp()),
            scopes: self.scopes.clone(),
            resource,
            write,
            address,
            audiences,
            owner: parent.owner.clone(),
            generation,
        };
        errors.into_result(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    const ISSUER: &str = "tollgate";

    fn ring() -> Keyring {
        Keyring::single(&[7u8; 32])
    }

    fn claims(now: i64) -> Claims {
        Claims {
            parent: ring().mint().id,
            id: "jti1".into(),
            issued_at: now,
            not_before: now,
            expires: now + 600,
            scopes: vec!["scope:client:incoming?clientName=alice".into()],
            resource: "/teams".into(),
            write: false,
            address: address::parse_net("203.0.113.0/24"),
            audiences: vec!["billing".into()],
            owner: "alice".into(),
            generation: 2,
        }
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    #[test]
    fn signs_and_verifies_and_knows_its_window() {
        let keys = ring();
        let c = claims(1_800_000_000);
        let jws = sign(&keys, ISSUER, &c);
        assert!(looks_like_capability(&jws));
        assert_eq!(
            verify(&keys, ISSUER, &jws, at(1_800_000_000)),
            Ok(c.clone())
        );
        assert_eq!(
            verify(&keys, ISSUER, &jws, at(1_799_999_999)),
            Err(Refusal::NotYetValid)
        );
        assert_eq!(
            verify(&keys, ISSUER, &jws, at(1_800_000_600)),
            Err(Refusal::Expired)
        );
        assert_eq!(
            verify(&keys, "another", &jws, at(1_800_000_000)),
            Err(Refusal::Malformed),
            "another deployment's capability"
        );
        assert_eq!(
            verify(
                &Keyring::single(&[8u8; 32]),
                ISSUER,
                &jws,
                at(1_800_000_000)
            ),
            Err(Refusal::Malformed),
            "a key outside the ring"
        );
    }

    #[test]
    fn a_remembered_capability_still_has_its_window_and_issuer_checked() {
        let keys = ring();
        let c = claims(1_800_000_000);
        let jws = sign(&keys, ISSUER, &c);
        let remembered = |iss: &str, at_: i64| verify_remembered(&keys, iss, &jws, at(at_));
        assert_eq!(remembered(ISSUER, 1_800_000_000), Ok(c.clone()));
        assert_eq!(remembered(ISSUER, 1_800_000_100), Ok(c));
        assert_eq!(remembered(ISSUER, 1_800_000_600), Err(Refusal::Expired));
        assert_eq!(
            remembered("another", 1_800_000_000),
            Err(Refusal::Malformed)
        );
        // Forgeries are not remembered as verified.
        let mut forged = jws.clone();
        forged.push('x');
        for _ in 0..2 {
            assert_eq!(
                verify_remembered(&keys, ISSUER, &forged, at(1_800_000_000)),
                Err(Refusal::Malformed)
            );
        }
        assert_eq!(kid_of(&jws).as_deref(), Some("v1"));
    }

    #[test]
    fn es256_capabilities_verify_and_their_keys_are_in_the_jwks() {
        let keys = ring();
        let c = claims(1_800_000_000);
        let jws = sign_as(Alg::Es256, &keys, ISSUER, &c);
        let header = json_part(jws.split('.').next().unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "v1-es256");
        assert_eq!(verify(&keys, ISSUER, &jws, at(1_800_000_000)), Ok(c));
        assert_eq!(
            kid_of(&jws).as_deref(),
            Some("v1"),
            "named after its ring key"
        );
        // Always low-S, so verifiers that insist on it take every one.
        for _ in 0..20 {
            let jws = sign_as(Alg::Es256, &keys, ISSUER, &claims(1_800_000_000));
            let sig = URL_SAFE_NO_PAD
                .decode(jws.rsplit('.').next().unwrap())
                .unwrap();
            let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
            assert_eq!(sig.normalize_s(), sig);
        }
        let set = jwks(&keys);
        let ec: Vec<&Value> = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["kty"] == "EC")
            .collect();
        assert_eq!(ec.len(), 1);
        assert_eq!(
            (&ec[0]["crv"], &ec[0]["alg"], &ec[0]["kid"]),
            (&json!("P-256"), &json!("ES256"), &json!("v1-es256"))
        );
        // The published point is the verifying key.
        let mut sec1 = vec![4u8];
        sec1.extend(
            URL_SAFE_NO_PAD
                .decode(ec[0]["x"].as_str().unwrap())
                .unwrap(),
        );
        sec1.extend(
            URL_SAFE_NO_PAD
                .decode(ec[0]["y"].as_str().unwrap())
                .unwrap(),
        );
        assert_eq!(
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap(),
            keys.es256_verifier("v1-es256").unwrap()
        );
        let doc = discovery("https://api.example.com/");
        assert_eq!(
            doc["jwks_uri"],
            "https://api.example.com/.well-known/jwks.json"
        );
        assert_eq!(doc["issuer"], "https://api.example.com/");
    }

    #[test]
    fn refuses_es256_forgeries() {
        let keys = ring();
        let now = 1_800_000_000;
        let jws = sign_as(Alg::Es256, &keys, ISSUER, &claims(now));
        let payload = jws.split('.').nth(1).unwrap().to_owned();
        let real: [u8; 64] = URL_SAFE_NO_PAD
            .decode(jws.rsplit('.').next().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let p256_sign = |m: &[u8]| {
            let sig: p256::ecdsa::Signature = keys.es256_signer().1.sign(m);
            sig.normalize_s().to_bytes().to_vec()
        };
        let sound = forge(
            json!({"alg": "ES256", "typ": "JWT", "kid": "v1-es256"}),
            &payload,
            p256_sign,
        );
        assert!(verify(&keys, ISSUER, &sound, at(now)).is_ok());
        let public = keys.es256_verifier("v1-es256").unwrap().to_sec1_bytes();
        let high_s = {
            let sig = p256::ecdsa::Signature::from_slice(&real).unwrap();
            let (r, s) = sig.split_scalars();
            let flipped =
                p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
            b64(&flipped.to_bytes())
        };
        let other = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap();
        let forgeries = [
            // HS256 keyed with the EC public key (SEC1 bytes)
            forge(
                json!({"alg": "HS256", "typ": "JWT", "kid": "v1-es256"}),
                &payload,
                |m| {
                    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&public).unwrap();
                    mac.update(m);
                    mac.finalize().into_bytes().to_vec()
                },
            ),
            // alg none
            format!(
                "{}.{payload}.",
                b64(json!({"alg": "none", "typ": "JWT", "kid": "v1-es256"})
                    .to_string()
                    .as_bytes())
            ),
            // the same signature made high-S (malleated)
            format!("{}.{high_s}", jws.rsplit_once('.').unwrap().0),
            // a zero signature
            format!("{}.{}", jws.rsplit_once('.').unwrap().0, b64(&[0u8; 64])),
            // signed by another P-256 key
            forge(
                json!({"alg": "ES256", "typ": "JWT", "kid": "v1-es256"}),
                &payload,
                |m| {
                    let sig: p256::ecdsa::Signature = other.sign(m);
                    sig.normalize_s().to_bytes().to_vec()
                },
            ),
            // an embedded key (an off-curve point) the verifier would use
            forge(
                json!({"alg": "ES256", "typ": "JWT", "kid": "v1-es256",
                       "jwk": {"kty": "EC", "crv": "P-256", "x": b64(&[1u8; 32]), "y": b64(&[2u8; 32])}}),
                &payload,
                p256_sign,
            ),
            // an ES256 signature under the Ed25519 key's id, and the reverse
            forge(
                json!({"alg": "ES256", "typ": "JWT", "kid": "v1"}),
                &payload,
                p256_sign,
            ),
            forge(
                json!({"alg": "EdDSA", "typ": "JWT", "kid": "v1-es256"}),
                &payload,
                |m| keys.capability_signer().1.sign(m).to_bytes().to_vec(),
            ),
            // the ES256 signature presented as EdDSA
            format!(
                "{}.{payload}.{}",
                b64(json!({"alg": "EdDSA", "typ": "JWT", "kid": "v1"})
                    .to_string()
                    .as_bytes()),
                b64(&real)
            ),
        ];
        for f in forgeries {
            assert_eq!(
                verify(&keys, ISSUER, &f, at(now)),
                Err(Refusal::Malformed),
                "{f}"
            );
        }
    }

    fn forge(header: Value, payload: &str, sign_with: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), payload);
        format!("{input}.{}", b64(&sign_with(input.as_bytes())))
    }

    #[test]
    fn refuses_every_classic_forgery() {
        let keys = ring();
        let now = 1_800_000_000;
        let jws = sign(&keys, ISSUER, &claims(now));
        let payload = jws.split('.').nth(1).unwrap().to_owned();
        let real_sig = URL_SAFE_NO_PAD
            .decode(jws.rsplit('.').next().unwrap())
            .unwrap();
        let public = keys.capability_verifier("v1").unwrap().to_bytes();
        let ed25519 = |m: &[u8]| keys.capability_signer().1.sign(m).to_bytes().to_vec();
        // The forge itself is sound: the real header so signed verifies.
        let sound = forge(
            json!({"alg": "EdDSA", "typ": "JWT", "kid": "v1"}),
            &payload,
            ed25519,
        );
        assert!(verify(&keys, ISSUER, &sound, at(now)).is_ok());
        let forgeries = [
            // alg none, empty signature
            format!(
                "{}.{payload}.",
                b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes())
            ),
            // HS256 keyed with the public key (the classic confusion)
            forge(
                json!({"alg": "HS256", "typ": "JWT", "kid": "v1"}),
                &payload,
                |m| {
                    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&public).unwrap();
                    mac.update(m);
                    mac.finalize().into_bytes().to_vec()
                },
            ),
            // Signed with the real key, so only the header is at fault:
            // a kid the ring does not know,
            forge(
                json!({"alg": "EdDSA", "typ": "JWT", "kid": "v9"}),
                &payload,
                ed25519,
            ),
            // an embedded key,
            forge(
                json!({"alg": "EdDSA", "kid": "v1", "jwk": {"kty": "OKP"}}),
                &payload,
                ed25519,
            ),
            // another type, another algorithm name, no kid.
            forge(
                json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "v1"}),
                &payload,
                ed25519,
            ),
            forge(
                json!({"alg": "Ed25519", "typ": "JWT", "kid": "v1"}),
                &payload,
                ed25519,
            ),
            forge(json!({"alg": "EdDSA", "typ": "JWT"}), &payload, ed25519),
            // a claim changed after signing
            {
                let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
                let mut m = json_part(&parts[1]).unwrap();
                m.insert("write".into(), json!(true));
                parts[1] = b64(Value::Object(m).to_string().as_bytes());
                parts.join(".")
            },
            // a flipped signature bit
            {
                let mut sig = real_sig.clone();
                sig[0] ^= 1;
                format!("{}.{}", jws.rsplit_once('.').unwrap().0, b64(&sig))
            },
            "a.b".into(),
            "..".into(),
            format!("{jws}.x"),
        ];
        for f in forgeries {
            assert_eq!(
                verify(&keys, ISSUER, &f, at(now)),
                Err(Refusal::Malformed),
                "{f}"
            );
        }
    }

    #[test]
    fn the_jwks_lists_every_ring_key() {
        let ring = Keyring::parse(
            r#"{"current": "b", "keys": {"a": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                                         "b": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}}"#,
        )
        .unwrap();
        let doc = jwks(&ring);
        let kids: Vec<&str> = doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["b", "a", "b-es256", "a-es256"]);
        assert_eq!(doc["keys"][0]["crv"], "Ed25519");
        assert_eq!(doc["keys"][2]["crv"], "P-256");
        assert_eq!(doc["keys"][0]["x"].as_str().unwrap().len(), 43);
    }

    fn parent(body: Value) -> TokenRecord {
        let keys = ring();
        let m = keys.mint();
        crate::token::rules::create(crate::token::rules::NewToken {
            id: m.id.to_string(),
            owner: "o".into(),
            start: m.start(),
            secret_hash: m.secret_hash,
            requester: None,
            now: crate::dates::now(),
            lifetimes: crate::token::rules::Lifetimes {
                default_ttl_seconds: 3600,
                max_ttl_seconds: 86_400,
            },
            body: body.as_object().unwrap(),
        })
        .unwrap()
    }

    fn mint_request(body: Value) -> Result<MintRequest, FieldErrors> {
        MintRequest::parse(body.as_object().unwrap())
    }

    fn fields(e: FieldErrors) -> Vec<String> {
        e.0.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn minting_narrows_and_names_what_asks_too_much() {
        let p = parent(json!({"resource": "/teams", "write": false,
            "scopes": ["scope:client:outgoing?appSid=AP1"],
            "allowedAddresses": ["203.0.113.0/24"]}));
        let now = crate::dates::now();
        let ok = mint_request(json!({"ttlSeconds": 600, "resource": "/teams/1",
            "scopes": ["scope:client:outgoing?appSid=AP1&appParams=x%3D1"],
            "address": "203.0.113.64/26"}))
        .unwrap()
        .narrow(&p, None, now)
        .unwrap();
        assert_eq!(ok.resource, "/teams/1");
        assert_eq!(ok.expires - ok.issued_at, 600);
        assert!(!ok.write);
        let bad = mint_request(json!({"resource": "/other", "write": true,
            "scopes": ["scope:client:incoming"], "address": "10.0.0.0/8"}))
        .unwrap()
        .narrow(&p, None, now)
        .unwrap_err();
        assert_eq!(fields(bad), ["scopes[0]", "resource", "write", "address"]);
        // Never past the parent's end, nor a rolled-away secret's grace.
        let long = mint_request(json!({"ttlSeconds": 86_400})).unwrap();
        let claims = long.narrow(&p, None, now).unwrap();
        assert_eq!(claims.expires, p.end_date.unix_timestamp());
        let grace_end = now + time::Duration::seconds(90);
        let claims = long.narrow(&p, Some(grace_end), now).unwrap();
        assert_eq!(claims.expires, grace_end.unix_timestamp());
        // Shape errors name their field.
        let e = mint_request(json!({"ttlSeconds": 0, "scopes": ["nope"], "write": "yes",
            "extra": 1}))
        .unwrap_err();
        assert_eq!(fields(e), ["extra", "scopes[0]", "ttlSeconds", "write"]);
    }

    #[test]
    fn an_address_bound_parent_binds_its_capabilities() {
        let now = crate::dates::now();
        let one = parent(json!({"allowedAddresses": ["203.0.113.0/24"]}));
        let claims = MintRequest::default().narrow(&one, None, now).unwrap();
        assert_eq!(claims.address, address::parse_net("203.0.113.0/24"));
        let several = parent(json!({"allowedAddresses": ["203.0.113.0/24", "10.0.0.1"]}));
        let e = MintRequest::default()
            .narrow(&several, None, now)
            .unwrap_err();
        assert_eq!(fields(e), ["address"]);
        let named = mint_request(json!({"address": "10.0.0.1"})).unwrap();
        let claims = named.narrow(&several, None, now).unwrap();
        assert_eq!(claims.address, address::parse_net("10.0.0.1"));
        let unbound = parent(json!({}));
        let claims = MintRequest::default().narrow(&unbound, None, now).unwrap();
        assert_eq!(claims.address, None);
    }

    #[test]
    fn audiences_owner_and_generation_travel_in_the_claims() {
        let now = crate::dates::now();
        let mut p = parent(json!({"audiences": ["billing", "search"]}));
        p.secret_generation = 3;
        let all = MintRequest::default().narrow(&p, None, now).unwrap();
        assert_eq!(all.audiences, ["billing", "search"]);
        assert_eq!((all.owner.as_str(), all.generation), ("o", 3));
        let one = mint_request(json!({"audience": "search"})).unwrap();
        assert_eq!(one.narrow(&p, None, now).unwrap().audiences, ["search"]);
        // Minted with the previous secret, in its grace: the generation before.
        let grace = now + time::Duration::seconds(60);
        assert_eq!(one.narrow(&p, Some(grace), now).unwrap().generation, 2);
        let other = mint_request(json!({"audience": "admin"})).unwrap();
        assert_eq!(
            fields(other.narrow(&p, None, now).unwrap_err()),
            ["audience"]
        );
        assert_eq!(
            fields(mint_request(json!({"audience": "Not An Audience"})).unwrap_err()),
            ["audience"]
        );
        // An unrestricted parent: the mint's audience restricts the capability.
        let free = parent(json!({}));
        assert_eq!(one.narrow(&free, None, now).unwrap().audiences, ["search"]);
        // Signed and verified, the claims come back whole.
        let keys = ring();
        let text = sign(&keys, ISSUER, &all);
        let back = verify(&keys, ISSUER, &text, now).unwrap();
        assert_eq!(back, all);
        let payload = json_part(text.split('.').nth(1).unwrap()).unwrap();
        assert_eq!(payload["aud"], json!(["billing", "search"]));
        assert_eq!(payload["own"], "o");
    }
}
