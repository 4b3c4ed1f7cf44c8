//! Field rules for create and patch: every bad field is reported at once.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::model::TokenRecord;
use crate::{address, dates, scope};

pub const MAX_DESCRIPTION: usize = 256;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_KEY: usize = 64;
pub const MAX_TAG_VALUE: usize = 256;
pub const MAX_PARTY: usize = 64;
pub const MAX_CONCURRENT: u64 = 10_000;
/// Largest integer every JSON client represents exactly.
pub const MAX_USES: u64 = (1 << 53) - 1;
pub const MAX_ADDRESSES: usize = 16;

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
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub default_ttl_seconds: i64,
    pub max_ttl_seconds: i64,
}

/// A field in a request: absent, `null`, or a value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Change<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Change<T> {
    fn apply(self, slot: &mut Option<T>) {
        match self {
            Change::Keep => {}
            Change::Clear => *slot = None,
            Change::Set(v) => *slot = Some(v),
        }
    }
    fn is_keep(&self) -> bool {
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
    /// Tag key → `Some(value)` to set, `None` to remove.
    pub tags: Change<BTreeMap<String, Option<String>>>,
    pub caller: Change<String>,
    pub callee: Change<String>,
    pub max_concurrent: Change<u32>,
    pub max_uses: Change<u64>,
    pub allowed_addresses: Change<Vec<IpNet>>,
    pub start_date: Change<OffsetDateTime>,
    pub end_date: Change<OffsetDateTime>,
    pub ttl_seconds: Option<i64>,
    pub bind_to_requester: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Patch,
}

const SERVER_FIELDS: &[&str] = &[
    "id",
    "remainingUses",
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

fn parse_changes(body: &Map<String, Value>, mode: Mode) -> Result<Changes, FieldErrors> {
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
                c.resource = field(v, |v| match v.as_str().and_then(scope::normalise) {
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
            "tags" => c.tags = field(v, |v| parse_tags(v, e)),
            "caller" => c.caller = field(v, |v| parse_string(k, v, MAX_PARTY, e)),
            "callee" => c.callee = field(v, |v| parse_string(k, v, MAX_PARTY, e)),
            "maxConcurrent" => {
                c.max_concurrent = field(v, |v| {
                    parse_int(k, v, 1, MAX_CONCURRENT, e).map(|n| n as u32)
                })
            }
            "maxUses" => c.max_uses = field(v, |v| parse_int(k, v, 1, MAX_USES, e)),
            "allowedAddresses" => c.allowed_addresses = field(v, |v| parse_addresses(v, e)),
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

pub struct NewToken<'a> {
    pub id: String,
    pub owner: String,
    pub start: String,
    pub secret_hash: String,
    pub requester: Option<std::net::IpAddr>,
    pub now: OffsetDateTime,
    pub lifetimes: Lifetimes,
    pub body: &'a Map<String, Value>,
}

/// Builds a new token record from a create body, or every field error.
pub fn create(input: NewToken<'_>) -> Result<TokenRecord, FieldErrors> {
    let c = parse_changes(input.body, Mode::Create)?;
    let now = input.now;
    let mut errs = FieldErrors::default();
    let mut rec = TokenRecord {
        id: input.id,
        owner: input.owner,
        token_type: "api".into(),
        description: String::new(),
        resource: "/".into(),
        write: false,
        tags: BTreeMap::new(),
        caller: None,
        callee: None,
        max_concurrent: None,
        max_uses: None,
        remaining_uses: None,
        allowed_addresses: None,
        start_date: None,
        end_date: now,
        start: input.start,
        secret_hash: input.secret_hash,
        created_at: now,
        updated_at: now,
        last_used_at: None,
        version: 1,
        leases: BTreeMap::new(),
    };
    let end = match (&c.end_date, c.ttl_seconds) {
        (Change::Set(_), Some(_)) => {
            errs.add("ttlSeconds", "give either endDate or ttlSeconds, not both");
            None
        }
        (Change::Set(e), None) => Some(*e),
        (_, Some(ttl)) => match ttl <= input.lifetimes.max_ttl_seconds {
            true => after_seconds(now, ttl).or_else(|| {
                errs.add("ttlSeconds", "ends beyond the representable dates");
                None
            }),
            false => {
                errs.add(
                    "ttlSeconds",
                    format!(
                        "must be at most {} (TOLLGATE_MAX_TTL_SECONDS)",
                        input.lifetimes.max_ttl_seconds
                    ),
                );
                None
            }
        },
        (_, None) => after_seconds(now, input.lifetimes.default_ttl_seconds).or_else(|| {
            errs.add("endDate", "the default lifetime ends beyond the representable dates");
            None
        }),
    };
    let bind = c.bind_to_requester;
    apply(&mut rec, c, None);
    check_tag_count(&rec, &mut errs);
    if bind {
        match input.requester {
            Some(ip) => {
                let list = rec.allowed_addresses.get_or_insert_with(Vec::new);
                let net = IpNet::from(ip);
                if !list.contains(&net) {
                    list.push(net);
                }
                if list.len() > MAX_ADDRESSES {
                    errs.add(
                        "allowedAddresses",
                        format!("must hold at most {MAX_ADDRESSES} entries"),
                    );
                }
            }
            None => errs.add("bindToRequester", "the request's source address is unknown"),
        }
    }
    if let Some(end) = end {
        rec.end_date = end;
        check_lifetime(&rec, now, input.lifetimes, &mut errs, true);
    }
    errs.into_result(rec)
}

/// Applies a merge-patch body to a copy of `current`, or every field error.
pub fn patch(
    current: &TokenRecord,
    body: &Map<String, Value>,
    now: OffsetDateTime,
    lifetimes: Lifetimes,
) -> Result<TokenRecord, FieldErrors> {
    let c = parse_changes(body, Mode::Patch)?;
    let window_changed = !c.start_date.is_keep() || !c.end_date.is_keep();
    let mut rec = current.clone();
    apply(&mut rec, c, Some(current));
    let mut errs = FieldErrors::default();
    check_tag_count(&rec, &mut errs);
    if window_changed {
        check_lifetime(
            &rec,
            now,
            lifetimes,
            &mut errs,
            !current.end_date.eq(&rec.end_date),
        );
    }
    if rec != *current {
        rec.version = current.version + 1;
        rec.updated_at = now;
    }
    errs.into_result(rec)
}

fn check_tag_count(rec: &TokenRecord, errs: &mut FieldErrors) {
    if rec.tags.len() > MAX_TAGS {
        errs.add("tags", format!("at most {MAX_TAGS} tags"));
    }
}

fn apply(rec: &mut TokenRecord, c: Changes, current: Option<&TokenRecord>) {
    if let Change::Set(t) = c.token_type {
        rec.token_type = t;
    }
    let mut description = Some(std::mem::take(&mut rec.description));
    c.description.apply(&mut description);
    rec.description = description.unwrap_or_default();
    let mut resource = Some(std::mem::take(&mut rec.resource));
    c.resource.apply(&mut resource);
    rec.resource = resource.unwrap_or_else(|| "/".into());
    let mut write = Some(rec.write);
    c.write.apply(&mut write);
    rec.write = write.unwrap_or(false);
    match c.tags {
        Change::Keep => {}
        Change::Clear => rec.tags.clear(),
        Change::Set(tags) => {
            for (k, v) in tags {
                match v {
                    Some(v) => rec.tags.insert(k, v),
                    None => rec.tags.remove(&k),
                };
            }
        }
    }
    c.caller.apply(&mut rec.caller);
    c.callee.apply(&mut rec.callee);
    c.max_concurrent.apply(&mut rec.max_concurrent);
    let old_max = rec.max_uses;
    c.max_uses.apply(&mut rec.max_uses);
    // maxUses counts validations in all: raising or lowering it keeps the
    // uses already spent.
    rec.remaining_uses = match (rec.max_uses, current) {
        (None, _) => None,
        (Some(max), Some(cur)) if old_max.is_some() => {
            let spent = cur
                .max_uses
                .unwrap_or(0)
                .saturating_sub(cur.remaining_uses.unwrap_or(0));
            Some(max.saturating_sub(spent))
        }
        (Some(max), _) => Some(max),
    };
    c.allowed_addresses.apply(&mut rec.allowed_addresses);
    c.start_date.apply(&mut rec.start_date);
    if let Change::Set(e) = c.end_date {
        rec.end_date = e;
    }
}

/// `t` plus `seconds`, or `None` past the dates `time` can represent:
/// client dates reach year 9999, so plain `+` could panic.
pub fn after_seconds(t: OffsetDateTime, seconds: i64) -> Option<OffsetDateTime> {
    t.checked_add(Duration::seconds(seconds))
}

/// The window's rules. The lifetime is measured from when the token becomes
/// usable: `startDate` when later than now, else now.
fn check_lifetime(
    rec: &TokenRecord,
    now: OffsetDateTime,
    l: Lifetimes,
    errs: &mut FieldErrors,
    end_changed: bool,
) {
    if end_changed && rec.end_date <= now {
        errs.add("endDate", "must be in the future");
    }
    if let Some(start) = rec.start_date {
        if rec.end_date <= start {
            errs.add("endDate", "must be after startDate");
        }
    }
    let usable_from = rec.start_date.map_or(now, |s| s.max(now));
    // Past the last representable date nothing can exceed the maximum.
    let latest_end = after_seconds(usable_from, l.max_ttl_seconds);
    if latest_end.is_some_and(|latest| rec.end_date > latest) {
        errs.add(
            "endDate",
            format!(
                "lifetime must be at most {} seconds (TOLLGATE_MAX_TTL_SECONDS)",
                l.max_ttl_seconds
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const L: Lifetimes = Lifetimes {
        default_ttl_seconds: 43_200,
        max_ttl_seconds: 31_536_000,
    };

    fn create_with(body: Value) -> Result<TokenRecord, FieldErrors> {
        create(NewToken {
            id: "id".into(),
            owner: "o".into(),
            start: "tgl_12345678".into(),
            secret_hash: "h".into(),
            requester: Some("198.51.100.7".parse().unwrap()),
            now: dates::now(),
            lifetimes: L,
            body: body.as_object().unwrap(),
        })
    }

    fn fields(e: FieldErrors) -> Vec<String> {
        e.0.into_iter().map(|f| f.field).collect()
    }

    #[test]
    fn defaults() {
        let r = create_with(json!({})).unwrap();
        assert_eq!(
            (r.token_type.as_str(), r.resource.as_str(), r.write),
            ("api", "/", false)
        );
        assert_eq!(r.end_date - r.created_at, Duration::seconds(43_200));
        assert!(
            r.max_uses.is_none() && r.remaining_uses.is_none() && r.allowed_addresses.is_none()
        );
    }

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

    #[test]
    fn lifetime_rules() {
        assert_eq!(
            fields(create_with(json!({"ttlSeconds": 31_536_001})).unwrap_err()),
            ["ttlSeconds"]
        );
        assert!(create_with(json!({"ttlSeconds": 31_536_000})).is_ok());
        assert_eq!(
            fields(create_with(json!({"endDate": "2000-01-01T00:00:00Z"})).unwrap_err()),
            ["endDate"]
        );
        let start = dates::format(dates::now() + Duration::days(30));
        let end = dates::format(dates::now() + Duration::days(29));
        assert_eq!(
            fields(create_with(json!({"startDate": start, "endDate": end})).unwrap_err()),
            ["endDate"]
        );
        // The lifetime counts from startDate when that is later than now.
        let start = dates::now() + Duration::days(300);
        let end = start + Duration::days(300);
        let r =
            create_with(json!({"startDate": dates::format(start), "endDate": dates::format(end)}))
                .unwrap();
        assert_eq!(r.end_date, end);
    }

    #[test]
    fn dates_near_both_ends_of_the_range_are_400_not_a_panic() {
        for start in [
            "9999-12-30T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999Z",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+23:59",
        ] {
            for body in [
                json!({ "startDate": start }),
                json!({ "startDate": start, "endDate": "9999-12-31T23:59:59Z" }),
                json!({ "endDate": start }),
                json!({ "startDate": start, "ttlSeconds": 31_536_000 }),
            ] {
                let _ = create_with(body.clone());
                let base = create_with(json!({})).unwrap();
                let _ = patch(&base, body.as_object().unwrap(), dates::now(), L);
            }
        }
        // A maximum lifetime past the end of the calendar is no limit.
        let huge = Lifetimes {
            default_ttl_seconds: i64::MAX,
            max_ttl_seconds: i64::MAX,
        };
        let body = json!({"startDate": "9999-12-30T00:00:00Z", "endDate": "9999-12-31T00:00:00Z"});
        let r = create(NewToken {
            id: "id".into(),
            owner: "o".into(),
            start: "tgl_12345678".into(),
            secret_hash: "h".into(),
            requester: None,
            now: dates::now(),
            lifetimes: huge,
            body: body.as_object().unwrap(),
        });
        assert!(r.is_ok());
        let r = create(NewToken {
            id: "id".into(),
            owner: "o".into(),
            start: "tgl_12345678".into(),
            secret_hash: "h".into(),
            requester: None,
            now: dates::now(),
            lifetimes: huge,
            body: json!({}).as_object().unwrap(),
        });
        assert_eq!(fields(r.unwrap_err()), ["endDate"]);
    }

    #[test]
    fn bind_to_requester_adds_source_address() {
        let r = create_with(json!({"bindToRequester": true})).unwrap();
        assert_eq!(
            crate::model::address_strings(r.allowed_addresses.as_ref().unwrap()),
            ["198.51.100.7"]
        );
    }

    #[test]
    fn merge_patch_semantics() {
        let cur = create_with(
            json!({"tags": {"a": "1", "b": "2"}, "caller": "c", "maxUses": 5,
            "description": "d", "resource": "/x", "write": true}),
        )
        .unwrap();
        let mut spent = cur.clone();
        spent.remaining_uses = Some(2);
        let p = |b: Value| patch(&spent, b.as_object().unwrap(), dates::now(), L);
        let r = p(json!({"tags": {"a": null, "c": "3"}, "caller": null})).unwrap();
        assert_eq!(r.tags.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(r.caller, None);
        assert_eq!(r.version, cur.version + 1);
        let r = p(json!({"maxUses": 10})).unwrap();
        assert_eq!(r.remaining_uses, Some(7), "uses already spent stay spent");
        let r = p(json!({"maxUses": 2})).unwrap();
        assert_eq!(r.remaining_uses, Some(0));
        let r =
            p(json!({"description": null, "resource": null, "write": null, "tags": null})).unwrap();
        assert_eq!(
            (
                r.description.as_str(),
                r.resource.as_str(),
                r.write,
                r.tags.len()
            ),
            ("", "/", false, 0)
        );
        let r = p(json!({"description": "d"})).unwrap();
        assert_eq!(r.version, cur.version, "no change, no new version");
        assert_eq!(
            fields(p(json!({"endDate": null})).unwrap_err()),
            ["endDate"]
        );
        assert_eq!(
            fields(p(json!({"type": "x", "ttlSeconds": 1})).unwrap_err()).len(),
            2
        );
    }
}
