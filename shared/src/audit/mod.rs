//! The audit trail: one record per change made through the management
//! API, written in the change's own transaction (see `store`), so there is
//! no change without its record and no record without its change. A
//! record names who acted (`Actor`), what was done (`action`), to which
//! token or identity, and each field that changed, from and to, taken
//! from the public objects before and after: no secret, hash, token string
//! or key is ever in one, because the objects never hold them.

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::codec;
use crate::dates;
use crate::http::ApiRequest;

pub mod query;

pub use query::AuditQuery;

/// Who made a change: the owner it was made for, and what the gateway
/// told of the caller. `sub` is the JWT's subject; a change made by the
/// service itself (a scanner's report) names that actor instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub owner: String,
    pub sub: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// One of [`ACTOR_KINDS`]: `"user"` for the management API, else who
    /// acted (`"github"`: a secret-scanning report; `"holder"`: whoever
    /// held the credential, revoking it; `"service"`: Tollgate itself,
    /// recording a TTL removal).
    pub kind: &'static str,
}

/// At most this many characters of a user agent are kept.
const MAX_USER_AGENT: usize = 256;

/// Who may act: see [`Actor::kind`].
pub const ACTOR_KINDS: &[&str] = &["user", "github", "holder", "service"];

impl Actor {
    /// The kind's name as stored, back to its `'static` form.
    pub fn kind_named(name: &str) -> Option<&'static str> {
        ACTOR_KINDS.iter().copied().find(|k| *k == name)
    }

    /// The caller of a management request, acting for `owner`.
    pub fn of(req: &ApiRequest, owner: &str) -> Actor {
        Actor {
            owner: owner.to_owned(),
            sub: req.identity.jwt_sub.clone(),
            source_ip: req.source_ip.map(|ip| ip.to_string()),
            user_agent: req
                .header("user-agent")
                .map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
            request_id: Some(req.request_id.clone()).filter(|r| !r.is_empty()),
            kind: "user",
        }
    }

    /// A change the service made on `owner`'s token for `kind`'s request.
    pub fn service(owner: &str, kind: &'static str, req: &ApiRequest) -> Actor {
        Actor {
            sub: None,
            kind,
            ..Actor::of(req, owner)
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "type": self.kind,
            "owner": self.owner,
            "sub": self.sub,
            "sourceIp": self.source_ip,
            "userAgent": self.user_agent,
            "requestId": self.request_id,
        })
    }
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Token(String),
    Identity(String),
}

impl Target {
    pub fn id(&self) -> &str {
        match self {
            Target::Token(id) | Target::Identity(id) => id,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: String,
    pub at: OffsetDateTime,
    /// One of [`ACTIONS`].
    pub action: &'static str,
    pub target: Target,
    pub actor: Actor,
    /// Field → `{"from", "to"}`.
    pub changes: Map<String, Value>,
    /// Unix seconds after which TTL removes it.
    pub expires_at: i64,
}

/// Members of the public objects that are not the client's changes: the
/// id (the record names it), times the server keeps, and `start` (the
/// token string's first characters, which a record has no need of).
const NOT_CHANGES: &[&str] = &[
    "id",
    "createdAt",
    "updatedAt",
    "lastUsedAt",
    "expire",
    "start",
    "activeLeases",
    "nextRefillAt",
    "rateLimitWindows",
    "token",
];

/// Each member that differs between two public objects, `from` and `to`
/// (`null` where absent).
pub fn changes(before: Option<&Value>, after: Option<&Value>) -> Map<String, Value> {
    let empty = Map::new();
    let members = |v: Option<&Value>| v.and_then(Value::as_object).unwrap_or(&empty).clone();
    let (before, after) = (members(before), members(after));
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Map::new();
    for k in keys {
        if NOT_CHANGES.contains(&k.as_str()) {
            continue;
        }
        let (from, to) = (
            before.get(k).cloned().unwrap_or(Value::Null),
            after.get(k).cloned().unwrap_or(Value::Null),
        );
        if from != to {
            out.insert(k.clone(), json!({"from": from, "to": to}));
        }
    }
    out
}

impl AuditRecord {
    /// A record of `action` on `target` by `actor` at `now`, its changes
    /// from the public objects `before` and `after`, kept `retention_days`.
    pub fn new(
        action: &'static str,
        target: Target,
        actor: Actor,
        before: Option<&Value>,
        after: Option<&Value>,
        now: OffsetDateTime,
        retention_days: i64,
    ) -> AuditRecord {
        AuditRecord {
            id: codec::encode(&codec::random_bytes::<12>()),
            at: now,
            action,
            target,
            actor,
            changes: changes(before, after),
            expires_at: now.unix_timestamp() + retention_days * 86_400,
        }
    }

    /// Position in its owner's trail: time in microseconds, then id
    /// (newest first when read backwards).
    pub fn position(&self) -> String {
        format!("{}#{}", position_of(self.at), self.id)
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "at": dates::format(self.at),
            "action": self.action,
            "actor": self.actor.to_json(),
            "changes": self.changes,
        });
        match &self.target {
            Target::Token(id) => v["tokenId"] = json!(id),
            Target::Identity(id) => v["identityId"] = json!(id),
        }
        v
    }

    /// The action's name as stored, back to its `'static` form.
    pub fn action_named(name: &str) -> Option<&'static str> {
        ACTIONS.iter().copied().find(|a| *a == name)
    }
}

/// The time part of a position: unix microseconds, 17 digits, so that
/// positions sort as times do.
pub fn position_of(at: OffsetDateTime) -> String {
    let micros = (at.unix_timestamp_nanos() / 1_000).max(0);
    format!("{micros:017}")
}

pub const ACTIONS: &[&str] = &[
    "token.created",
    "token.updated",
    "token.rolled",
    "token.deleted",
    "token.expired",
    "token.revoked",
    "token.leaked",
    "capability.revoked",
    "identity.created",
    "identity.updated",
    "identity.deleted",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_each_field_that_moved_and_nothing_else() {
        let before = json!({"id": "a", "description": "x", "tags": {"a": "1"}, "updatedAt": "t1", "start": "tgl_abcdefgh"});
        let after = json!({"id": "a", "description": "y", "tags": {"a": "1"}, "maxUses": 5, "updatedAt": "t2", "start": "tgl_abcdefgh"});
        let c = changes(Some(&before), Some(&after));
        assert_eq!(
            Value::Object(c),
            json!({"description": {"from": "x", "to": "y"}, "maxUses": {"from": null, "to": 5}})
        );
        let created = changes(
            None,
            Some(&json!({"id": "a", "token": "tgl_secret", "write": true})),
        );
        assert_eq!(
            Value::Object(created),
            json!({"write": {"from": null, "to": true}})
        );
    }
}
