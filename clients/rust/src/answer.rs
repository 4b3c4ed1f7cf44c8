//! What Tollgate answers: a validate's acceptance or refusal, a lease, a
//! minted capability. Unknown members are ignored, so a newer server's
//! additions do not break an older client.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The answer of a validate (or an acquire): the token was admitted, or
/// refused with a reason. Only a well-formed request gets one; anything
/// else is an [`Error`](crate::Error).
#[derive(Debug, Clone, PartialEq)]
pub enum Validation {
    Active(Box<Active>),
    Refused(Refusal),
}

impl Validation {
    /// The acceptance, if admitted.
    pub fn active(&self) -> Option<&Active> {
        match self {
            Validation::Active(a) => Some(a),
            Validation::Refused(_) => None,
        }
    }

    /// The refusal, if refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Validation::Active(_) => None,
            Validation::Refused(r) => Some(r),
        }
    }
}

/// A refusal: the reason and nothing else about the token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    pub reason: Reason,
    /// `RATE_LIMITED` only: whole seconds until a validate could next be
    /// admitted.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// `"identity"` when the token's identity's limits refused it.
    #[serde(default)]
    pub limited_by: Option<String>,
}

/// An admitted token (or capability, as its parent narrowed to it).
/// Dates are RFC 3339 strings, as Tollgate sends them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Active {
    /// The token's id (a capability's parent's).
    pub id: String,
    pub owner: String,
    #[serde(rename = "type", default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub resource: String,
    pub write: bool,
    #[serde(default)]
    pub tags: Map<String, Value>,
    #[serde(default)]
    pub caller: Option<String>,
    #[serde(default)]
    pub callee: Option<String>,
    #[serde(default)]
    pub start_date: Option<String>,
    pub end_date: String,
    /// `end_date` in unix seconds.
    pub expire: i64,
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    /// Uses left after this call; `None`: unlimited.
    #[serde(default)]
    pub remaining_uses: Option<u64>,
    #[serde(default)]
    pub audiences: Vec<String>,
    /// A rolled-away secret's last moment: switch to the new one before it.
    #[serde(default)]
    pub secret_expires_at: Option<String>,
    #[serde(default)]
    pub rate_limits: Vec<RateLimitState>,
    #[serde(default)]
    pub identity: Option<IdentityState>,
    /// The lease an acquire took (none for a token without
    /// `maxConcurrent` that reserved nothing).
    #[serde(default)]
    pub lease: Option<Lease>,
    /// Present when the credential was a capability.
    #[serde(default)]
    pub capability: Option<CapabilityState>,
}

/// One rate limit's window after this call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RateLimitState {
    pub name: String,
    pub limit: u64,
    pub remaining: u64,
    /// The window's end (RFC 3339).
    pub reset: String,
}

/// The identity the token shares limits with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityState {
    pub id: String,
    pub external_id: String,
    #[serde(default)]
    pub remaining_uses: Option<u64>,
    #[serde(default)]
    pub rate_limits: Vec<RateLimitState>,
}

/// A concurrency lease (or a reservation's hold).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub id: String,
    pub expires_at: String,
}

/// The capability an active answer was given for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityState {
    /// Its `jti`.
    pub id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub expires_at: String,
}

/// What a mint answers: the capability, or the parent's refusal.
#[derive(Debug, Clone, PartialEq)]
pub enum Minted {
    Capability(Box<MintedCapability>),
    Refused(Refusal),
}

/// A freshly minted capability (a compact JWS) and what it allows.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MintedCapability {
    pub capability: String,
    pub expires_at: String,
    pub expire: i64,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub resource: String,
    pub write: bool,
}

// The capability is a bearer credential: never in a log through `{:?}`.
impl std::fmt::Debug for MintedCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedCapability")
            .field("capability", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .field("resource", &self.resource)
            .field("write", &self.write)
            .finish()
    }
}

/// Why a credential was refused: Tollgate's reason codes. A code this
/// version does not know is kept as [`Reason::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Malformed,
    NotFound,
    Disabled,
    NotYetValid,
    Expired,
    AddressNotAllowed,
    OwnerNotAllowed,
    AudienceNotAllowed,
    ResourceNotAllowed,
    WriteNotAllowed,
    ScopeNotAllowed,
    UsageExhausted,
    RateLimited,
    ConcurrencyLimit,
    Other(String),
}

const CODES: [(Reason, &str); 14] = [
    (Reason::Malformed, "MALFORMED"),
    (Reason::NotFound, "NOT_FOUND"),
    (Reason::Disabled, "DISABLED"),
    (Reason::NotYetValid, "NOT_YET_VALID"),
    (Reason::Expired, "EXPIRED"),
    (Reason::AddressNotAllowed, "ADDRESS_NOT_ALLOWED"),
    (Reason::OwnerNotAllowed, "OWNER_NOT_ALLOWED"),
    (Reason::AudienceNotAllowed, "AUDIENCE_NOT_ALLOWED"),
    (Reason::ResourceNotAllowed, "RESOURCE_NOT_ALLOWED"),
    (Reason::WriteNotAllowed, "WRITE_NOT_ALLOWED"),
    (Reason::ScopeNotAllowed, "SCOPE_NOT_ALLOWED"),
    (Reason::UsageExhausted, "USAGE_EXHAUSTED"),
    (Reason::RateLimited, "RATE_LIMITED"),
    (Reason::ConcurrencyLimit, "CONCURRENCY_LIMIT"),
];

impl Reason {
    /// The code as Tollgate spells it (`"RATE_LIMITED"`).
    pub fn code(&self) -> &str {
        match self {
            Reason::Other(code) => code,
            known => CODES
                .iter()
                .find(|(r, _)| r == known)
                .map_or("", |(_, code)| code),
        }
    }

    pub fn from_code(code: &str) -> Reason {
        CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map_or_else(|| Reason::Other(code.to_owned()), |(r, _)| r.clone())
    }

    /// The HTTP status a protected API answers for it: 401 when the
    /// credential itself is no good, 429 when trying again later can
    /// succeed, 403 otherwise.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            Reason::Malformed
            | Reason::NotFound
            | Reason::Disabled
            | Reason::NotYetValid
            | Reason::Expired => StatusCode::UNAUTHORIZED,
            Reason::RateLimited | Reason::ConcurrencyLimit => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Reason::from_code(&String::deserialize(d)?))
    }
}

/// A validate's (or mint's) 200 answer: `active` decides which shape.
pub(crate) fn validation(body: Value) -> Result<Validation, serde_json::Error> {
    if body.get("active") == Some(&Value::Bool(true)) {
        Ok(Validation::Active(Box::new(serde_json::from_value(body)?)))
    } else {
        Ok(Validation::Refused(serde_json::from_value(body)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_code_reads_back_as_itself_and_unknown_ones_are_kept() {
        for (reason, code) in CODES {
            assert_eq!(Reason::from_code(code), reason);
            assert_eq!(reason.code(), code);
        }
        assert_eq!(
            Reason::from_code("SOMETHING_NEW"),
            Reason::Other("SOMETHING_NEW".into())
        );
        assert_eq!(Reason::Other("X".into()).code(), "X");
    }

    #[test]
    fn answers_decode_by_their_active_member() {
        let refused =
            validation(json!({"active": false, "reason": "RATE_LIMITED", "retryAfter": 7}))
                .unwrap();
        assert_eq!(
            refused.refusal().unwrap(),
            &Refusal {
                reason: Reason::RateLimited,
                retry_after: Some(7),
                limited_by: None
            }
        );
        let active = validation(json!({
            "active": true, "id": "t1", "owner": "alice", "type": "api", "resource": "/",
            "write": false, "tags": {}, "endDate": "2030-01-01T00:00:00Z", "expire": 1893456000,
            "remainingUses": 4, "lease": {"id": "l1", "expiresAt": "2030-01-01T00:05:00Z"},
            "somethingNew": [1, 2]
        }))
        .unwrap();
        let a = active.active().unwrap();
        assert_eq!((a.owner.as_str(), a.remaining_uses), ("alice", Some(4)));
        assert_eq!(a.lease.as_ref().unwrap().id, "l1");
    }
}
