//! The client fields of a token and of a list query, parsed: every bad
//! field is reported at once, each error naming its field.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::{address, resource};
use crate::dates;
use crate::limits::rate::{self, RateLimit};

pub const MAX_DESCRIPTION: usize = 256;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_KEY: usize = 64;
pub const MAX_TAG_VALUE: usize = 256;
pub const MAX_PARTY: usize = 64;
pub const MAX_CONCURRENT: u64 = 10_000;
/// Largest integer every JSON client represents exactly.
pub const MAX_USES: u64 = (1 << 53) - 1;
pub const MAX_ADDRESSES: usize = 16;
pub use super::scopes::MAX_SCOPES;
pub use crate::limits::rate::{MAX_PERIOD_SECONDS, MAX_RATE_LIMIT, MAX_RATE_LIMITS};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_result<T>(self, ok: T) -> Result<T, FieldErrors> {
        if self.0.is_empty() {
            Ok(ok)
        } else {
            Err(self)
        }
    }
}

/// Lifetime settings from the environment.

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl Change<BTreeMap<String, Option<String>>> {
    /// Merges tag changes into `tags`: a `null` value removes its key,
    /// `null` for all of them removes every tag.
    pub fn merge_tags(self, tags: &mut BTreeMap<String, String>) {
        match self {
            Change::Keep => {}
            Change::Clear => tags.clear(),
            Change::Set(changes) => {
                for (k, v) in changes {
                    match v {
                        Some(v) => tags.insert(k, v),
                        None => tags.remove(&k),
                    };
                }
            }
        }
    }
}

/// At most `MAX_TAGS` tags once merged.
pub fn check_tag_count(tags: &BTreeMap<String, String>, errs: &mut FieldErrors) {
    if tags.len() > MAX_TAGS {
        errs.add("tags", format!("at most {MAX_TAGS} tags"));
    }
}

impl<T> Change<T> {
    pub fn apply(self, slot: &mut Option<T>) {
        match self {
            Change::Keep => {}
            Change::Clear => *slot = None,
            Change::Set(v) => *slot = Some(v),
        }
    }
    pub fn is_keep(&self) -> bool {
        matches!(self, Change::Keep)
    }
}

/// The client-settable fields of a create or patch body, parsed.
#[derive(Debug, Default)]
pub struct Changes {
    pub token_type: Change<String>,
    pub description: Change<String>,
    pub resource: Change<String>,
    pub write: Change<bool>,
    pub enabled: Change<bool>,
    /// Tag key → `Some(value)` to set, `None` to remove.
    pub tags: Change<BTreeMap<String, Option<String>>>,
    pub caller: Change<String>,
    pub callee: Change<String>,
    pub max_concurrent: Change<u32>,
    pub identity_id: Change<crate::identity::IdentityId>,
    pub max_uses: Change<u64>,
    pub refill: Change<crate::limits::Refill>,
    pub allowed_addresses: Change<Vec<IpNet>>,
    pub scopes: Change<Vec<String>>,
    pub audiences: Change<Vec<String>>,
    pub on_leak: Change<crate::leaks::OnLeak>,
    pub rate_limits: Change<Vec<RateLimit>>,
    pub start_date: Change<OffsetDateTime>,
    pub end_date: Change<OffsetDateTime>,
    pub ttl_seconds: Option<i64>,
    pub bind_to_requester: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Create,
    Patch,
}

const SERVER_FIELDS: &[&str] = &[
    "id",
    "remainingUses",
    "nextRefillAt",
    "rateLimitWindows",
    "expire",
    "activeLeases",
    "start",
    "createdAt",
    "updatedAt",
    "lastUsedAt",
    "token",
    "owner",
];
const CREATE_ONLY: &[&str] = &["type", "ttlSeconds", "bindToRequester"];

fn parse_string(field: &str, v: &Value, max: usize, errs: &mut FieldErrors) -> Option<String> {
    match v.as_str() {
        Some(s) if s.chars().count() > max => {
            errs.add(field, format!("must be at most {max} characters"));
            None
        }
        Some(s) if s.contains('\0') => {
            errs.add(field, "must not contain NUL characters");
            None
        }
        Some(s) => Some(s.to_owned()),
        None => {
            errs.add(field, "must be a string");
            None
        }
    }
}

fn parse_int(field: &str, v: &Value, min: u64, max: u64, errs: &mut FieldErrors) -> Option<u64> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ if v.is_number() && (v.as_i64().is_some() || v.as_u64().is_some()) => {
            errs.add(field, format!("must be between {min} and {max}"));
            None
        }
        _ => {
            errs.add(field, format!("must be an integer between {min} and {max}"));
            None
        }
    }
}

fn parse_date(field: &str, v: &Value, errs: &mut FieldErrors) -> Option<OffsetDateTime> {
    match v.as_str().and_then(dates::parse) {
        Some(t) => Some(t),
        None => {
            errs.add(
                field,
                "must be an RFC 3339 date-time such as 2030-01-02T03:04:05Z",
            );
            None
        }
    }
}

fn valid_type(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Turns `Option<T>` from a parser into a change, with `null` → `Clear`.
fn field<T>(v: &Value, parse: impl FnOnce(&Value) -> Option<T>) -> Change<T> {
    if v.is_null() {
        return Change::Clear;
    }
    match parse(v) {
        Some(t) => Change::Set(t),
        None => Change::Keep,
    }
}

pub(crate) fn parse_changes(body: &Map<String, Value>, mode: Mode) -> Result<Changes, FieldErrors> {
    let mut errs = FieldErrors::default();
    let mut c = Changes::default();
    for (key, v) in body {
        let k = key.as_str();
        if SERVER_FIELDS.contains(&k) {
            errs.add(k, "is set by the server and cannot be sent");
            continue;
        }
        if mode == Mode::Patch && CREATE_ONLY.contains(&k) {
            errs.add(k, "cannot be changed after create");
            continue;
        }
        let e = &mut errs;
        match k {
            "type" => {
                c.token_type = field(v, |v| match v.as_str() {
                    Some(s) if valid_type(s) => Some(s.to_owned()),
                    _ => {
                        e.add(k, "must match [A-Za-z0-9_-]{1,32}");
                        None
                    }
                })
            }
            "description" => c.description = field(v, |v| parse_string(k, v, MAX_DESCRIPTION, e)),
            "resource" => {
                c.resource = field(v, |v| match v.as_str().and_then(resource::normalise) {
                    Some(r) => Some(r),
                    None => {
                        e.add(k, "must be a path starting with / without .., //, ? or #");
                        None
                    }
                })
            }
            "write" => {
                c.write = field(v, |v| {
                    v.as_bool().or_else(|| {
                        e.add(k, "must be true or false");
                        None
                    })
                })
            }
            "enabled" => {
                c.enabled = field(v, |v| {
                    v.as_bool().or_else(|| {
                        e.add(k, "must be true or false");
                        None
                    })
                })
            }
            "tags" => c.tags = field(v, |v| parse_tags(v, e)),
            "caller" => c.caller = field(v, |v| parse_string(k, v, MAX_PARTY, e)),
            "callee" => c.callee = field(v, |v| parse_string(k, v, MAX_PARTY, e)),
            "maxConcurrent" => {
                c.max_concurrent = field(v, |v| {
                    parse_int(k, v, 1, MAX_CONCURRENT, e).map(|n| n as u32)
                })
            }
            "identityId" => {
                c.identity_id = field(v, |v| {
                    v.as_str()
                        .and_then(crate::identity::IdentityId::parse)
                        .or_else(|| {
                            e.add(k, crate::identity::IdentityId::RULE);
                            None
                        })
                })
            }
            "maxUses" => c.max_uses = field(v, |v| parse_int(k, v, 1, MAX_USES, e)),
            "refill" => c.refill = field(v, |v| crate::limits::Refill::parse(v, e)),
            "allowedAddresses" => c.allowed_addresses = field(v, |v| parse_addresses(v, e)),
            "scopes" => c.scopes = field(v, |v| parse_scopes(v, e)),
            "audiences" => c.audiences = field(v, |v| parse_audiences(v, e)),
            "onLeak" => {
                c.on_leak = field(v, |v| {
                    v.as_str()
                        .and_then(crate::leaks::OnLeak::parse)
                        .or_else(|| {
                            e.add(k, crate::leaks::OnLeak::RULE);
                            None
                        })
                })
            }
            "rateLimits" => c.rate_limits = field(v, |v| parse_rate_limits(v, e)),
            "startDate" => c.start_date = field(v, |v| parse_date(k, v, e)),
            "endDate" => {
                if v.is_null() && mode == Mode::Patch {
                    e.add(k, "cannot be removed: every token has an end of life");
                } else {
                    c.end_date = field(v, |v| parse_date(k, v, e));
                }
            }
            "ttlSeconds" => {
                if !v.is_null() {
                    c.ttl_seconds = parse_int(k, v, 1, i64::MAX as u64, e).map(|n| n as i64);
                }
            }
            "bindToRequester" => match v {
                Value::Null => {}
                Value::Bool(b) => c.bind_to_requester = *b,
                _ => e.add(k, "must be true or false"),
            },
            _ => errs.add(k, "is not a field of a token"),
        }
    }
    errs.into_result(c)
}

fn parse_tags(v: &Value, errs: &mut FieldErrors) -> Option<BTreeMap<String, Option<String>>> {
    let Some(obj) = v.as_object() else {
        errs.add("tags", "must be an object of string values");
        return None;
    };
    let before = errs.0.len();
    let mut tags = BTreeMap::new();
    for (key, val) in obj {
        let klen = key.chars().count();
        if klen == 0 || klen > MAX_TAG_KEY || key.contains('\0') {
            errs.add(
                format!("tags.{key}"),
                format!("tag keys must be 1 to {MAX_TAG_KEY} characters"),
            );
            continue;
        }
        match val {
            Value::Null => {
                tags.insert(key.clone(), None);
            }
            Value::String(s) if s.chars().count() <= MAX_TAG_VALUE && !s.contains('\0') => {
                tags.insert(key.clone(), Some(s.clone()));
            }
            Value::String(_) => errs.add(
                format!("tags.{key}"),
                format!("tag values must be at most {MAX_TAG_VALUE} characters"),
            ),
            _ => errs.add(
                format!("tags.{key}"),
                "tag values must be strings (or null to remove)",
            ),
        }
    }
    (errs.0.len() == before).then_some(tags)
}

fn parse_addresses(v: &Value, errs: &mut FieldErrors) -> Option<Vec<IpNet>> {
    let Some(items) = v.as_array() else {
        errs.add(
            "allowedAddresses",
            "must be a list of IP addresses or CIDR blocks",
        );
        return None;
    };
    if items.is_empty() || items.len() > MAX_ADDRESSES {
        errs.add(
            "allowedAddresses",
            format!("must hold 1 to {MAX_ADDRESSES} entries (null removes the binding)"),
        );
        return None;
    }
    let before = errs.0.len();
    let mut nets = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str().and_then(address::parse_net) {
            Some(n) if !nets.contains(&n) => nets.push(n),
            Some(_) => {}
            None => errs.add(
                format!("allowedAddresses[{i}]"),
                "must be an IPv4 or IPv6 address or CIDR block",
            ),
        }
    }
    (errs.0.len() == before).then_some(nets)
}

/// Rate limits: a list of at most 4 `{name, limit, periodSeconds}` with
/// unique names; an empty list is no limits. Errors name the item's field.
fn parse_rate_limits(v: &Value, errs: &mut FieldErrors) -> Option<Vec<RateLimit>> {
    let Some(items) = v.as_array() else {
        errs.add(
            "rateLimits",
            "must be a list of {name, limit, periodSeconds}",
        );
        return None;
    };
    if items.len() > MAX_RATE_LIMITS {
        errs.add(
            "rateLimits",
            format!("must hold at most {MAX_RATE_LIMITS} limits"),
        );
        return None;
    }
    let before = errs.0.len();
    let mut limits: Vec<RateLimit> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = |f: &str| format!("rateLimits[{i}].{f}");
        let Some(obj) = item.as_object() else {
            errs.add(
                format!("rateLimits[{i}]"),
                "must be an object {name, limit, periodSeconds}",
            );
            continue;
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !["name", "limit", "periodSeconds"].contains(&k.as_str()))
        {
            errs.add(at(k), "is not a field of a rate limit");
        }
        let name = match obj.get("name").and_then(Value::as_str) {
            Some(n) if rate::valid_name(n) => {
                if limits.iter().any(|l| l.name == n) {
                    errs.add(at("name"), "must be unique among the token's limits");
                }
                Some(n.to_owned())
            }
            _ => {
                errs.add(at("name"), "must be 1-32 characters of a-z, 0-9, _ and -");
                None
            }
        };
        let null = Value::Null;
        let limit = parse_int(
            &at("limit"),
            obj.get("limit").unwrap_or(&null),
            1,
            u64::from(MAX_RATE_LIMIT),
            errs,
        );
        let period = parse_int(
            &at("periodSeconds"),
            obj.get("periodSeconds").unwrap_or(&null),
            1,
            u64::from(MAX_PERIOD_SECONDS),
            errs,
        );
        if let (Some(name), Some(limit), Some(period)) = (name, limit, period) {
            limits.push(RateLimit {
                name,
                limit: limit as u32,
                period_seconds: period as u32,
            });
        }
    }
    (errs.0.len() == before).then_some(limits)
}

/// Audiences: a list of at most 8 audience names; duplicates collapse; an
/// empty list is no restriction.
fn parse_audiences(v: &Value, errs: &mut FieldErrors) -> Option<Vec<String>> {
    use super::audience::{is_audience, AUDIENCE_RULE, MAX_AUDIENCES};
    let Some(items) = v.as_array() else {
        errs.add("audiences", "must be a list of audience names");
        return None;
    };
    if items.len() > MAX_AUDIENCES {
        errs.add(
            "audiences",
            format!("must hold at most {MAX_AUDIENCES} audiences"),
        );
        return None;
    }
    let before = errs.0.len();
    let mut list = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(a) if is_audience(a) => {
                if !list.iter().any(|x: &String| x == a) {
                    list.push(a.to_owned());
                }
            }
            _ => errs.add(format!("audiences[{i}]"), AUDIENCE_RULE),
        }
    }
    (errs.0.len() == before).then_some(list)
}

/// Capability scopes: a list of at most 32 scope strings, each stored in
/// its normalised form; duplicates collapse; an empty list is no scopes.
fn parse_scopes(v: &Value, errs: &mut FieldErrors) -> Option<Vec<String>> {
    let Some(items) = v.as_array() else {
        errs.add("scopes", "must be a list of scope strings");
        return None;
    };
    if items.len() > MAX_SCOPES {
        errs.add("scopes", format!("must hold at most {MAX_SCOPES} scopes"));
        return None;
    }
    let before = errs.0.len();
    let mut scopes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str().and_then(super::scopes::normalise) {
            Some(s) if !scopes.contains(&s) => scopes.push(s),
            Some(_) => {}
            None => errs.add(
                format!("scopes[{i}]"),
                "must be scope:<service>:<privilege>[?params], service and privilege [a-z0-9_-]{1,32}, at most 512 characters",
            ),
        }
    }
    (errs.0.len() == before).then_some(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::rules::tests::{create_with, fields};
    use serde_json::json;

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let e = create_with(
            json!({"type": "a b", "description": 1, "maxUses": 0, "maxConcurrent": 10_001,
            "caller": "x".repeat(65), "id": "x", "bogus": true}),
        )
        .unwrap_err();
        let mut f = fields(e);
        f.sort();
        assert_eq!(
            f,
            [
                "bogus",
                "caller",
                "description",
                "id",
                "maxConcurrent",
                "maxUses",
                "type"
            ]
        );
    }

    #[test]
    fn rate_limits_name_the_bad_item_field() {
        let ok = create_with(json!({"rateLimits": [
            {"name": "per-minute", "limit": 1_000_000, "periodSeconds": 60},
            {"name": "month_1", "limit": 1, "periodSeconds": 2_592_000}]}))
        .unwrap();
        assert_eq!(ok.limits.rate_limits.as_ref().map(Vec::len), Some(2));
        assert_eq!(
            ok.to_json(dates::now())["rateLimits"][0]["periodSeconds"],
            60
        );
        let mut f = fields(
            create_with(json!({"rateLimits": [
                {"name": "A", "limit": 0, "periodSeconds": 2_592_001},
                {"name": "b", "limit": 1, "periodSeconds": 1, "burst": 2},
                {"name": "b", "limit": 1.5, "periodSeconds": 1},
                "x"]}))
            .unwrap_err(),
        );
        f.sort();
        assert_eq!(
            f,
            [
                "rateLimits[0].limit",
                "rateLimits[0].name",
                "rateLimits[0].periodSeconds",
                "rateLimits[1].burst",
                "rateLimits[2].limit",
                "rateLimits[2].name",
                "rateLimits[3]"
            ]
        );
        let five = Value::Array(vec![
            json!({"name": "a", "limit": 1, "periodSeconds": 1});
            5
        ]);
        assert_eq!(
            fields(create_with(json!({ "rateLimits": five })).unwrap_err()),
            ["rateLimits"]
        );
        assert_eq!(
            create_with(json!({"rateLimits": []}))
                .unwrap()
                .limits
                .rate_limits,
            None
        );
    }

    #[test]
    fn limits_at_the_edges() {
        assert!(create_with(json!({"description": "d".repeat(256)})).is_ok());
        assert!(create_with(json!({"description": "d".repeat(257)})).is_err());
        assert!(create_with(json!({"type": "x".repeat(32)})).is_ok());
        assert!(create_with(json!({"maxConcurrent": 10_000})).is_ok());
        assert!(create_with(json!({"maxUses": MAX_USES})).is_ok());
        assert!(create_with(json!({"maxUses": MAX_USES + 1})).is_err());
        let tags: serde_json::Map<String, Value> =
            (0..32).map(|i| (format!("k{i}"), json!(""))).collect();
        assert!(create_with(json!({ "tags": tags })).is_ok());
        assert_eq!(
            fields(create_with(json!({"tags": {"k": "v".repeat(257)}})).unwrap_err()),
            ["tags.k"]
        );
        assert_eq!(
            fields(create_with(json!({"tags": {"k".repeat(65): "v"}})).unwrap_err()).len(),
            1
        );
    }
}
