//! The token as stored, and how it is shown.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::credentials::RevokedCapabilities;
use crate::dates;
use crate::limits::{LeaseLedger, Limits};

#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    pub owner: String,
    pub token_type: String,
    pub description: String,
    pub resource: String,
    pub write: bool,
    /// `false` refuses every validate with `DISABLED`.
    pub enabled: bool,
    pub tags: BTreeMap<String, String>,
    pub caller: Option<String>,
    pub callee: Option<String>,
    pub max_concurrent: Option<u32>,
    /// The identity whose limits the token shares too (see `identity`).
    pub identity_id: Option<String>,
    /// Uses, refill and rate limits, with their counts (see `limits`).
    pub limits: Limits,
    pub allowed_addresses: Option<Vec<IpNet>>,
    /// Capability scopes granted, normalised (see `token::scopes`).
    pub scopes: Option<Vec<String>>,
    /// The APIs the token is meant for (see `token::audience`).
    pub audiences: Option<Vec<String>>,
    pub start_date: Option<OffsetDateTime>,
    pub end_date: OffsetDateTime,
    /// First characters of the token string, to recognise it.
    pub start: String,
    /// HMAC-SHA256 of the secret under the derived secret-hash key.
    pub secret_hash: String,
    /// The secret rolled away, while it still validates (roll with grace).
    pub prev_secret_hash: Option<String>,
    /// When the previous secret stops validating.
    pub prev_secret_expires_at: Option<OffsetDateTime>,
    /// Counts the token's secrets: bumped by every roll. A capability
    /// carries the generation it was minted under, so a roll ends the
    /// capabilities of the secret it replaced with that secret's grace.
    pub secret_generation: u64,
    /// What a secret scanner's report of this token's string does.
    pub on_leak: crate::leaks::OnLeak,
    /// Capabilities of this token their holders revoked (see
    /// `credentials::revocation`): written only by `POST /validate/revoke`.
    pub revoked_capabilities: RevokedCapabilities,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    /// Bumped by every change a client makes; the ETag.
    pub version: u64,
    /// The token's leases, by the instant they lapse (see `limits::leases`):
    /// written only by acquires, renewals and releases.
    pub leases: LeaseLedger,
}

impl TokenRecord {
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.end_date
    }

    /// The audiences the token is restricted to (empty: none).
    pub fn audience_list(&self) -> &[String] {
        self.audiences.as_deref().unwrap_or_default()
    }

    /// The public token object (camelCase), never the secret hash.
    pub fn to_json(&self, now: OffsetDateTime) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("type".into(), json!(self.token_type));
        m.insert("description".into(), json!(self.description));
        m.insert("resource".into(), json!(self.resource));
        m.insert("write".into(), json!(self.write));
        m.insert("enabled".into(), json!(self.enabled));
        m.insert("tags".into(), json!(self.tags));
        if let Some(c) = &self.caller {
            m.insert("caller".into(), json!(c));
        }
        if let Some(c) = &self.callee {
            m.insert("callee".into(), json!(c));
        }
        if let Some(n) = self.max_concurrent {
            m.insert("maxConcurrent".into(), json!(n));
            m.insert("activeLeases".into(), json!(self.leases.live(now)));
        }
        if let Some(i) = &self.identity_id {
            m.insert("identityId".into(), json!(i));
        }
        self.limits.show(&mut m, now);
        if let Some(a) = &self.allowed_addresses {
            m.insert("allowedAddresses".into(), json!(address_strings(a)));
        }
        if let Some(s) = &self.scopes {
            m.insert("scopes".into(), json!(s));
        }
        if let Some(a) = &self.audiences {
            m.insert("audiences".into(), json!(a));
        }
        m.insert("onLeak".into(), json!(self.on_leak.as_str()));
        if let Some(s) = self.start_date {
            m.insert("startDate".into(), json!(dates::format(s)));
        }
        m.insert("endDate".into(), json!(dates::format(self.end_date)));
        m.insert("expire".into(), json!(self.end_date.unix_timestamp()));
        m.insert("start".into(), json!(self.start));
        m.insert("createdAt".into(), json!(dates::format(self.created_at)));
        m.insert("updatedAt".into(), json!(dates::format(self.updated_at)));
        if let Some(t) = self.last_used_at {
            m.insert("lastUsedAt".into(), json!(dates::format(t)));
        }
        if let Some(end) = self.prev_secret_expires_at.filter(|end| *end > now) {
            m.insert("previousSecretExpiresAt".into(), json!(dates::format(end)));
        }
        Value::Object(m)
    }
}

/// Host networks print as plain addresses, others in CIDR notation.
pub fn address_strings(nets: &[IpNet]) -> Vec<String> {
    nets.iter()
        .map(|n| {
            if n.prefix_len() == n.max_prefix_len() {
                n.addr().to_string()
            } else {
                n.to_string()
            }
        })
        .collect()
}
