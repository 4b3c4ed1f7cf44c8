//! Token items: the table's keys and the mapping between a `TokenRecord`
//! and its DynamoDB attributes.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use crate::credentials::RevokedCapabilities;
use crate::dates;
use crate::leaks::OnLeak;
use crate::limits::{LeaseLedger, Limits, RateCount, RateLimit, Refill};
use crate::store::{list_position, StoreError};
use crate::token::{address, TokenRecord};

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A lease's own item beside its token (same partition key): where a
/// renewal or release moved it (see `limits::leases`).
pub fn lease_key(id: &str, lease: &str) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("T#{id}"))),
        ("sk".into(), s(format!("{LEASE_SK_PREFIX}{lease}"))),
    ])
}

const LEASE_SK_PREFIX: &str = "L#";

/// The token attribute counting the leases in one bucket of its ledger.
pub fn lease_bucket_name(bucket: i64) -> String {
    format!("{LEASE_BUCKET_PREFIX}{bucket}")
}

const LEASE_BUCKET_PREFIX: &str = "lx_";

/// The token attribute holding the sum of its ledger's buckets.
pub const LEASE_TOTAL: &str = "leaseTotal";

/// The token attribute holding the last refill boundary applied (unix
/// seconds; see `limits::uses`): written with `remainingUses`.
pub const REFILLED_AT: &str = "refilledAt";

/// The token attribute counting its secrets (bumped by each roll).
pub const SECRET_GENERATION: &str = "secretGen";

/// The token attributes of its revoked capabilities (see
/// `credentials::revocation`): `jti` → `exp`, and the issued-until cut-off.
pub const REVOKED_CAPABILITIES: &str = "revokedCaps";
pub const CAPABILITIES_ISSUED_UNTIL: &str = "capsIssuedUntil";

/// `revokedCaps` as stored, and the cut-off (`None`: remove it).
pub fn revoked_attrs(r: &RevokedCapabilities) -> (AttributeValue, Option<AttributeValue>) {
    let ids = r.ids.iter().map(|(id, exp)| (id.clone(), n(exp))).collect();
    (AttributeValue::M(ids), r.issued_until.map(n))
}

fn revoked_capabilities(item: &Item) -> RevokedCapabilities {
    RevokedCapabilities {
        ids: item
            .get(REVOKED_CAPABILITIES)
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                m.iter()
                    .filter_map(|(id, exp)| Some((id.clone(), exp.as_n().ok()?.parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default(),
        issued_until: get_n(item, CAPABILITIES_ISSUED_UNTIL),
    }
}

pub fn token_key(id: &str) -> Item {
    HashMap::from([("pk".into(), s(format!("T#{id}"))), ("sk".into(), s("T"))])
}

/// The TTL attribute: end of life plus the retention period.
pub fn ttl_of(rec: &TokenRecord, retention: i64) -> AttributeValue {
    n(rec.end_date.unix_timestamp() + retention)
}

/// The client-settable attributes; `None` means "remove".
pub fn client_attrs(
    rec: &TokenRecord,
    retention: i64,
    with_remaining: bool,
) -> Vec<(&'static str, Option<AttributeValue>)> {
    let mut v = vec![
        ("type", Some(s(&rec.token_type))),
        ("description", Some(s(&rec.description))),
        ("resource", Some(s(&rec.resource))),
        ("write", Some(AttributeValue::Bool(rec.write))),
        ("enabled", Some(AttributeValue::Bool(rec.enabled))),
        (
            "tags",
            Some(AttributeValue::M(
                rec.tags.iter().map(|(k, v)| (k.clone(), s(v))).collect(),
            )),
        ),
        ("caller", rec.caller.as_ref().map(s)),
        ("callee", rec.callee.as_ref().map(s)),
        ("maxConcurrent", rec.max_concurrent.map(n)),
        ("identityId", rec.identity_id.as_ref().map(s)),
        (
            "allowedAddresses",
            rec.allowed_addresses
                .as_ref()
                .map(|a| AttributeValue::L(a.iter().map(|n| s(n.to_string())).collect())),
        ),
        (
            "scopes",
            rec.scopes
                .as_ref()
                .map(|l| AttributeValue::L(l.iter().map(s).collect())),
        ),
        (
            "audiences",
            rec.audiences
                .as_ref()
                .map(|l| AttributeValue::L(l.iter().map(s).collect())),
        ),
        // Only what differs from the default is stored.
        (
            "onLeak",
            (rec.on_leak != OnLeak::default()).then(|| s(rec.on_leak.as_str())),
        ),
        ("startDate", rec.start_date.map(|d| n(dates::millis(d)))),
        ("endDate", Some(n(dates::millis(rec.end_date)))),
        ("updatedAt", Some(n(dates::millis(rec.updated_at)))),
        ("version", Some(n(rec.version))),
        ("ttl", Some(ttl_of(rec, retention))),
    ];
    v.extend(limit_attrs(&rec.limits, with_remaining));
    v
}

/// A holder's limits as client-settable attributes (`None`: remove), with
/// what remains of its uses when `with_remaining`.
pub fn limit_attrs(
    limits: &Limits,
    with_remaining: bool,
) -> Vec<(&'static str, Option<AttributeValue>)> {
    let mut v = vec![
        ("maxUses", limits.max_uses.map(n)),
        ("refillAmount", limits.refill.map(|r| n(r.amount))),
        (
            "refillInterval",
            limits.refill.map(|r| s(r.interval_text())),
        ),
        (
            "rateLimits",
            limits.rate_limits.as_ref().map(|l| {
                AttributeValue::L(
                    l.iter()
                        .map(|r| {
                            AttributeValue::M(HashMap::from([
                                ("name".to_owned(), s(&r.name)),
                                ("limit".to_owned(), n(r.limit)),
                                ("periodSeconds".to_owned(), n(r.period_seconds)),
                            ]))
                        })
                        .collect(),
                )
            }),
        ),
    ];
    if with_remaining {
        v.push(("remainingUses", limits.remaining_uses.map(n)));
        v.push((REFILLED_AT, limits.refilled_at.map(n)));
    }
    v
}

/// Every attribute of a holder's limits, for a whole new item: the
/// client's settings, what remains and each window's count.
pub fn insert_limits(item: &mut Item, limits: &Limits) {
    for (name, c) in &limits.rate_counts {
        let [p, w, k] = rate_count_names(name);
        item.insert(p, n(c.period));
        item.insert(w, n(c.window));
        item.insert(k, n(c.count));
    }
    for (k, v) in limit_attrs(limits, true) {
        if let Some(v) = v {
            item.insert(k.into(), v);
        }
    }
}

/// A holder's limits as stored.
pub fn limits_of(item: &Item) -> Limits {
    Limits {
        max_uses: get_n(item, "maxUses"),
        remaining_uses: get_n(item, "remainingUses"),
        refill: get_n(item, "refillAmount")
            .zip(get_s(item, "refillInterval"))
            .and_then(|(amount, interval)| Refill::from_stored(amount, interval)),
        refilled_at: get_n(item, REFILLED_AT),
        rate_limits: rate_limits(item),
        rate_counts: rate_counts(item),
    }
}

/// A rate limit's count is three top-level attributes (period, window,
/// count), so an admission updates them with plain `SET`s whether or not
/// they exist yet; patch never writes them.
pub fn rate_count_names(limit: &str) -> [String; 3] {
    [
        format!("{RATE_PERIOD}{limit}"),
        format!("{RATE_WINDOW}{limit}"),
        format!("{RATE_COUNT}{limit}"),
    ]
}

const RATE_PERIOD: &str = "rlp_";
const RATE_WINDOW: &str = "rlw_";
const RATE_COUNT: &str = "rln_";

fn rate_counts(item: &Item) -> BTreeMap<String, RateCount> {
    item.keys()
        .filter_map(|k| k.strip_prefix(RATE_COUNT))
        .filter_map(|name| {
            let [p, w, k] = rate_count_names(name);
            Some((
                name.to_owned(),
                RateCount {
                    period: get_n(item, &p)?,
                    window: get_n(item, &w)?,
                    count: get_n(item, &k)?,
                },
            ))
        })
        .collect()
}

fn rate_limits(item: &Item) -> Option<Vec<RateLimit>> {
    let list = item.get("rateLimits")?.as_l().ok()?;
    Some(
        list.iter()
            .filter_map(|v| {
                let m = v.as_m().ok()?;
                Some(RateLimit {
                    name: get_s(m, "name")?.to_owned(),
                    limit: get_n(m, "limit")?,
                    period_seconds: get_n(m, "periodSeconds")?,
                })
            })
            .collect(),
    )
}

pub fn to_item(rec: &TokenRecord, retention: i64) -> Item {
    let mut item = token_key(&rec.id);
    item.insert("gsi1pk".into(), s(format!("O#{}", rec.owner)));
    item.insert("gsi1sk".into(), s(list_position(rec)));
    item.insert("id".into(), s(&rec.id));
    item.insert("owner".into(), s(&rec.owner));
    item.insert("start".into(), s(&rec.start));
    item.insert("secretHash".into(), s(&rec.secret_hash));
    item.insert(SECRET_GENERATION.into(), n(rec.secret_generation));
    if !rec.revoked_capabilities.is_empty() {
        let (ids, until) = revoked_attrs(&rec.revoked_capabilities);
        item.insert(REVOKED_CAPABILITIES.into(), ids);
        if let Some(until) = until {
            item.insert(CAPABILITIES_ISSUED_UNTIL.into(), until);
        }
    }
    if let (Some(prev), Some(end)) = (&rec.prev_secret_hash, rec.prev_secret_expires_at) {
        item.insert("prevSecretHash".into(), s(prev));
        item.insert("prevSecretExpiresAt".into(), n(dates::millis(end)));
    }
    item.insert("createdAt".into(), n(dates::millis(rec.created_at)));
    if let Some(t) = rec.last_used_at {
        item.insert("lastUsedAt".into(), n(dates::millis(t)));
    }
    item.insert(LEASE_TOTAL.into(), n(rec.leases.held()));
    for (bucket, count) in rec.leases.buckets() {
        item.insert(lease_bucket_name(bucket), n(count));
    }
    insert_limits(&mut item, &rec.limits);
    for (k, v) in client_attrs(rec, retention, false) {
        if let Some(v) = v {
            item.insert(k.into(), v);
        }
    }
    item
}

pub fn bad(field: &str) -> StoreError {
    StoreError::Internal(format!("stored item has a bad or missing {field}"))
}

pub fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}
pub fn get_n<T: std::str::FromStr>(item: &Item, k: &str) -> Option<T> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}
pub fn req_s(item: &Item, k: &str) -> Result<String, StoreError> {
    get_s(item, k).map(str::to_owned).ok_or_else(|| bad(k))
}
pub fn date(item: &Item, k: &str) -> Option<OffsetDateTime> {
    get_n::<i64>(item, k).map(dates::from_millis)
}

pub fn from_item(item: &Item) -> Result<TokenRecord, StoreError> {
    let str_map = |k: &str| -> BTreeMapS {
        item.get(k)
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(TokenRecord {
        id: req_s(item, "id")?,
        owner: req_s(item, "owner")?,
        token_type: req_s(item, "type")?,
        description: get_s(item, "description").unwrap_or_default().to_owned(),
        resource: req_s(item, "resource")?,
        write: item
            .get("write")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        // Items written before `enabled` existed are enabled.
        enabled: item
            .get("enabled")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(true),
        tags: str_map("tags"),
        caller: get_s(item, "caller").map(str::to_owned),
        callee: get_s(item, "callee").map(str::to_owned),
        max_concurrent: get_n(item, "maxConcurrent"),
        identity_id: get_s(item, "identityId").map(str::to_owned),
        limits: limits_of(item),
        allowed_addresses: item
            .get("allowedAddresses")
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|a| a.as_s().ok().and_then(|a| address::parse_net(a)))
                    .collect()
            }),
        scopes: item
            .get("scopes")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect()),
        audiences: item
            .get("audiences")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect()),
        start_date: date(item, "startDate"),
        end_date: date(item, "endDate").ok_or_else(|| bad("endDate"))?,
        start: req_s(item, "start")?,
        secret_hash: req_s(item, "secretHash")?,
        prev_secret_hash: get_s(item, "prevSecretHash").map(str::to_owned),
        prev_secret_expires_at: date(item, "prevSecretExpiresAt"),
        // Items written before rolls were counted hold their first secret's.
        secret_generation: get_n(item, SECRET_GENERATION).unwrap_or(0),
        on_leak: get_s(item, "onLeak")
            .and_then(OnLeak::parse)
            .unwrap_or_default(),
        revoked_capabilities: revoked_capabilities(item),
        created_at: date(item, "createdAt").ok_or_else(|| bad("createdAt"))?,
        updated_at: date(item, "updatedAt").ok_or_else(|| bad("updatedAt"))?,
        last_used_at: date(item, "lastUsedAt"),
        version: get_n(item, "version").ok_or_else(|| bad("version"))?,
        leases: LeaseLedger::from_buckets(item.iter().filter_map(|(k, v)| {
            let bucket = k.strip_prefix(LEASE_BUCKET_PREFIX)?.parse().ok()?;
            Some((bucket, v.as_n().ok()?.parse().ok()?))
        })),
    })
}

type BTreeMapS = BTreeMap<String, String>;
