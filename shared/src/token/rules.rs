//! Create and patch: a token record built from, or changed by, a request
//! body, with the rules that span fields (lifetime, tag count, uses).

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use super::fields::{
    check_tag_count, parse_changes, Change, Changes, FieldErrors, Mode, MAX_ADDRESSES,
};
use super::TokenRecord;
use crate::limits::Limits;

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub default_ttl_seconds: i64,
    pub max_ttl_seconds: i64,
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
        enabled: true,
        tags: BTreeMap::new(),
        caller: None,
        callee: None,
        max_concurrent: None,
        identity_id: None,
        limits: Limits::default(),
        allowed_addresses: None,
        scopes: None,
        audiences: None,
        start_date: None,
        end_date: now,
        start: input.start,
        secret_hash: input.secret_hash,
        prev_secret_hash: None,
        prev_secret_expires_at: None,
        secret_generation: 0,
        on_leak: Default::default(),
        revoked_capabilities: Default::default(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
        version: 1,
        leases: Default::default(),
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
            errs.add(
                "endDate",
                "the default lifetime ends beyond the representable dates",
            );
            None
        }),
    };
    let bind = c.bind_to_requester;
    apply(&mut rec, c, None, now);
    check_tag_count(&rec.tags, &mut errs);
    rec.limits.check_fields(&mut errs);
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
    apply(&mut rec, c, Some(current), now);
    let mut errs = FieldErrors::default();
    check_tag_count(&rec.tags, &mut errs);
    rec.limits.check_fields(&mut errs);
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

/// The longest grace a rolled-away secret may keep (30 days).
pub const MAX_GRACE_SECONDS: u64 = 2_592_000;

/// The roll body's `graceSeconds`: 0 (the default) to 30 days.
pub fn grace_seconds(body: &Map<String, Value>) -> Result<u64, FieldErrors> {
    let mut errs = FieldErrors::default();
    let mut grace = 0;
    for (k, v) in body {
        match (k.as_str(), v) {
            ("graceSeconds", Value::Null) => {}
            ("graceSeconds", v) => match v.as_u64() {
                Some(n) if n <= MAX_GRACE_SECONDS => grace = n,
                _ => errs.add(
                    k,
                    format!("must be an integer from 0 to {MAX_GRACE_SECONDS}"),
                ),
            },
            _ => errs.add(k, "is not a field of a roll request"),
        }
    }
    errs.into_result(grace)
}

/// The token after a roll: the new secret current; the old one kept for
/// `grace` seconds, never past the token's end, and only the one just
/// replaced (an older previous secret ends at once).
pub fn roll(
    current: &TokenRecord,
    minted: &crate::credentials::Minted,
    grace: u64,
    now: OffsetDateTime,
) -> TokenRecord {
    let mut rec = current.clone();
    let grace_end = i64::try_from(grace)
        .ok()
        .and_then(|g| after_seconds(now, g))
        .map_or(current.end_date, |end| end.min(current.end_date));
    (rec.prev_secret_hash, rec.prev_secret_expires_at) = if grace_end > now {
        (Some(current.secret_hash.clone()), Some(grace_end))
    } else {
        (None, None)
    };
    rec.secret_hash = minted.secret_hash.clone();
    rec.secret_generation = current.secret_generation + 1;
    rec.start = minted.start();
    rec.version = current.version + 1;
    rec.updated_at = now;
    rec
}

fn apply(rec: &mut TokenRecord, c: Changes, current: Option<&TokenRecord>, now: OffsetDateTime) {
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
    let mut enabled = Some(rec.enabled);
    c.enabled.apply(&mut enabled);
    rec.enabled = enabled.unwrap_or(true);
    c.tags.merge_tags(&mut rec.tags);
    c.caller.apply(&mut rec.caller);
    c.callee.apply(&mut rec.callee);
    c.max_concurrent.apply(&mut rec.max_concurrent);
    match c.identity_id {
        Change::Keep => {}
        Change::Clear => rec.identity_id = None,
        Change::Set(id) => rec.identity_id = Some(id.as_str().to_owned()),
    }
    let current_limits = current.map(|c| &c.limits);
    rec.limits
        .apply(c.max_uses, c.refill, c.rate_limits, current_limits, now);
    c.allowed_addresses.apply(&mut rec.allowed_addresses);
    c.scopes.apply(&mut rec.scopes);
    if rec.scopes.as_ref().is_some_and(Vec::is_empty) {
        rec.scopes = None;
    }
    let mut on_leak = Some(rec.on_leak);
    c.on_leak.apply(&mut on_leak);
    rec.on_leak = on_leak.unwrap_or_default();
    c.audiences.apply(&mut rec.audiences);
    if rec.audiences.as_ref().is_some_and(Vec::is_empty) {
        rec.audiences = None;
    }
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
pub(crate) mod tests {
    use super::*;
    use crate::dates;
    use serde_json::json;

    const L: Lifetimes = Lifetimes {
        default_ttl_seconds: 43_200,
        max_ttl_seconds: 31_536_000,
    };

    pub(crate) fn create_with(body: Value) -> Result<TokenRecord, FieldErrors> {
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

    pub(crate) fn fields(e: FieldErrors) -> Vec<String> {
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
            r.limits.max_uses.is_none()
                && r.limits.remaining_uses.is_none()
                && r.allowed_addresses.is_none()
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
        let create_huge = |body: Value| {
            create(NewToken {
                id: "id".into(),
                owner: "o".into(),
                start: "tgl_12345678".into(),
                secret_hash: "h".into(),
                requester: None,
                now: dates::now(),
                lifetimes: huge,
                body: body.as_object().unwrap(),
            })
        };
        let far = json!({"startDate": "9999-12-30T00:00:00Z", "endDate": "9999-12-31T00:00:00Z"});
        assert!(create_huge(far).is_ok());
        let r = create_huge(json!({}));
        assert_eq!(fields(r.unwrap_err()), ["endDate"]);
    }

    #[test]
    fn bind_to_requester_adds_source_address() {
        let r = create_with(json!({"bindToRequester": true})).unwrap();
        assert_eq!(
            crate::token::address_strings(r.allowed_addresses.as_ref().unwrap()),
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
        spent.limits.remaining_uses = Some(2);
        let p = |b: Value| patch(&spent, b.as_object().unwrap(), dates::now(), L);
        let r = p(json!({"tags": {"a": null, "c": "3"}, "caller": null})).unwrap();
        assert_eq!(r.tags.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(r.caller, None);
        assert_eq!(r.version, cur.version + 1);
        let r = p(json!({"maxUses": 10})).unwrap();
        assert_eq!(
            r.limits.remaining_uses,
            Some(7),
            "uses already spent stay spent"
        );
        let r = p(json!({"maxUses": 2})).unwrap();
        assert_eq!(r.limits.remaining_uses, Some(0));
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
