//! What a capability grants (its claims, as the JWT carries them) and the
//! capabilities a keyring has verified. Apart from `capability` (signing,
//! verifying, minting) so that the keyring, which holds the verified ones,
//! needs nothing of the signing code.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use ipnet::IpNet;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::token::address;
use crate::token::ids::TokenId;

/// What a capability grants: its parent, narrowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    /// The parent token (`sub`).
    pub parent: TokenId,
    /// `jti`, the capability's own id.
    pub id: String,
    pub issued_at: i64,
    pub not_before: i64,
    pub expires: i64,
    /// Normalised scopes (`scope`, space-separated in the JWT).
    pub scopes: Vec<String>,
    pub resource: String,
    pub write: bool,
    /// `addr`: the network the capability is bound to, if any.
    pub address: Option<IpNet>,
    /// `aud`: the audiences it may be used for (empty: any; see
    /// `token::audience`).
    pub audiences: Vec<String>,
    /// `own`: the parent's owner, for offline verifiers (online, the
    /// parent as read decides).
    pub owner: String,
    /// `gen`: the parent's secret generation it was minted under: a roll
    /// ends it once that secret's grace is over (see `validate`).
    pub generation: u64,
}

impl Claims {
    pub(super) fn to_json(&self, issuer: &str) -> Value {
        let mut v = json!({
            "iss": issuer,
            "sub": self.parent.as_str(),
            "jti": self.id,
            "iat": self.issued_at,
            "nbf": self.not_before,
            "exp": self.expires,
            "scope": self.scopes.join(" "),
            "resource": self.resource,
            "write": self.write,
        });
        if let Some(a) = self.address {
            v["addr"] = json!(a.to_string());
        }
        if !self.audiences.is_empty() {
            v["aud"] = json!(self.audiences);
        }
        v["own"] = json!(self.owner);
        v["gen"] = json!(self.generation);
        v
    }

    pub(super) fn from_json(m: &Map<String, Value>, issuer: &str) -> Option<Claims> {
        let int = |k: &str| m.get(k)?.as_i64();
        let text = |k: &str| m.get(k)?.as_str();
        if text("iss")? != issuer {
            return None;
        }
        let scopes: Vec<String> = text("scope")?
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let address = match m.get("addr") {
            None => None,
            Some(a) => Some(address::parse_net(a.as_str()?)?),
        };
        // RFC 7519: `aud` is one string or a list of them.
        let audiences = match m.get("aud") {
            None => Vec::new(),
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?,
            Some(_) => return None,
        };
        Some(Claims {
            parent: TokenId::parse(text("sub")?)?,
            id: text("jti")?.to_owned(),
            issued_at: int("iat")?,
            not_before: int("nbf")?,
            expires: int("exp")?,
            scopes,
            resource: text("resource")?.to_owned(),
            write: m.get("write")?.as_bool()?,
            address,
            audiences,
            owner: match m.get("own") {
                None => String::new(),
                Some(o) => o.as_str()?.to_owned(),
            },
            generation: match m.get("gen") {
                None => 0,
                Some(g) => g.as_u64()?,
            },
        })
    }

    pub fn expires_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.expires).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Whether the capability allows `address` (unbound: any).
    pub fn allows_address(&self, address: Option<IpAddr>) -> bool {
        match self.address {
            None => true,
            Some(net) => address.is_some_and(|a| address::allowed(&[net], a)),
        }
    }
}

/// Capabilities a keyring has verified (signature, header, claims), by a
/// SHA-256 of issuer and text: a capability presented again skips the
/// signature check (its text cannot change; its window is checked every
/// time). The keyring holds it, so a re-read ring (a rotation, a removed
/// key) starts empty. Only capabilities of ordinary size are kept, at most
/// `VERIFIED_CAPACITY`, so it stays within a few MB.
#[derive(Default)]
pub struct Verified(Mutex<HashMap<[u8; 32], Claims>>);

/// Verified capabilities kept per ring; past it the memory starts over.
const VERIFIED_CAPACITY: usize = 1024;
/// Longer capabilities (many long scopes) are verified every time.
pub(super) const VERIFIED_MAX_LEN: usize = 2048;

impl Verified {
    pub(super) fn get(&self, key: &[u8; 32]) -> Option<Claims> {
        self.0.lock().ok()?.get(key).cloned()
    }

    pub(super) fn keep(&self, key: [u8; 32], claims: &Claims) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= VERIFIED_CAPACITY {
                m.clear();
            }
            m.insert(key, claims.clone());
        }
    }
}
