//! The validate decision: pure, no I/O, in the contract's order.

use std::net::IpAddr;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::http::{ApiError, ApiRequest};
use crate::model::TokenRecord;
use crate::{address, dates, scope};

/// Refusal reasons, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Malformed,
    NotFound,
    NotYetValid,
    Expired,
    AddressNotAllowed,
    ResourceNotAllowed,
    WriteNotAllowed,
    UsageExhausted,
    ConcurrencyLimit,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "MALFORMED",
            Reason::NotFound => "NOT_FOUND",
            Reason::NotYetValid => "NOT_YET_VALID",
            Reason::Expired => "EXPIRED",
            Reason::AddressNotAllowed => "ADDRESS_NOT_ALLOWED",
            Reason::ResourceNotAllowed => "RESOURCE_NOT_ALLOWED",
            Reason::WriteNotAllowed => "WRITE_NOT_ALLOWED",
            Reason::UsageExhausted => "USAGE_EXHAUSTED",
            Reason::ConcurrencyLimit => "CONCURRENCY_LIMIT",
        }
    }
}

/// A validate (or lease) request body, decoded.
#[derive(Debug, Default, Clone)]
pub struct ValidateInput {
    pub token: Option<String>,
    /// The requested resource as sent; normalised during the check.
    pub resource: Option<String>,
    pub write: bool,
    pub address: Option<IpAddr>,
    pub acquire: bool,
}

fn parse_bool(field: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(ApiError::field(field, "must be true or false")),
    }
}

/// Decodes a validate body: JSON, form-encoded, or empty (Bearer only).
/// The token may also come as `Authorization: Bearer`.
pub fn decode_input(req: &ApiRequest) -> Result<ValidateInput, ApiError> {
    let mut input = ValidateInput::default();
    let ctype = req.content_type();
    if !req.body.is_empty() || ctype.is_some() {
        match ctype.as_deref() {
            Some("application/x-www-form-urlencoded") => {
                if std::str::from_utf8(&req.body).is_err() {
                    return Err(ApiError::field("body", "must be UTF-8"));
                }
                let mut errors = Vec::new();
                for (k, v) in form_urlencoded::parse(&req.body) {
                    let r = match k.as_ref() {
                        "token" => {
                            input.token = Some(v.into_owned());
                            Ok(())
                        }
                        "resource" => {
                            input.resource = Some(v.into_owned());
                            Ok(())
                        }
                        "write" => parse_bool("write", &v).map(|b| input.write = b),
                        "acquire" => parse_bool("acquire", &v).map(|b| input.acquire = b),
                        "address" => parse_address(&v).map(|a| input.address = Some(a)),
                        other => Err(ApiError::field(
                            other,
                            "is not a field of a validate request",
                        )),
                    };
                    if let Err(ApiError::BadRequest(mut e)) = r {
                        errors.append(&mut e);
                    }
                }
                if !errors.is_empty() {
                    return Err(ApiError::BadRequest(errors));
                }
            }
            Some("application/json") | None => {
                let obj = crate::http::json_object(&req.body)?;
                input = from_json(&obj)?;
            }
            Some(_) => {
                return Err(ApiError::UnsupportedMediaType(
                    "application/json or application/x-www-form-urlencoded",
                ))
            }
        }
    }
    if input.token.is_none() {
        input.token = bearer(req).map(str::to_owned);
    }
    if input.token.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::field(
            "token",
            "a token is required, in the body or as Authorization: Bearer",
        ));
    }
    Ok(input)
}

pub fn bearer(req: &ApiRequest) -> Option<&str> {
    let h = req.header("authorization")?;
    let (scheme, rest) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn parse_address(v: &str) -> Result<IpAddr, ApiError> {
    address::parse_ip(v)
        .ok_or_else(|| ApiError::field("address", "must be an IPv4 or IPv6 address"))
}

fn from_json(obj: &Map<String, Value>) -> Result<ValidateInput, ApiError> {
    let mut input = ValidateInput::default();
    let mut errors = crate::rules::FieldErrors::default();
    for (k, v) in obj {
        match (k.as_str(), v) {
            (_, Value::Null) => {}
            ("token", Value::String(s)) => input.token = Some(s.clone()),
            ("resource", Value::String(s)) => input.resource = Some(s.clone()),
            ("write", Value::Bool(b)) => input.write = *b,
            ("acquire", Value::Bool(b)) => input.acquire = *b,
            ("address", Value::String(s)) => match address::parse_ip(s) {
                Some(a) => input.address = Some(a),
                None => errors.add("address", "must be an IPv4 or IPv6 address"),
            },
            ("token" | "resource" | "address", _) => errors.add(k, "must be a string"),
            ("write" | "acquire", _) => errors.add(k, "must be true or false"),
            _ => errors.add(k, "is not a field of a validate request"),
        }
    }
    errors.into_result(input).map_err(Into::into)
}

/// Every check of the contract but the stateful ones (uses, leases), in
/// order. `source` is the validate request's own address.
pub fn check(
    rec: &TokenRecord,
    input: &ValidateInput,
    source: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<(), Reason> {
    if rec.start_date.is_some_and(|s| now < s) {
        return Err(Reason::NotYetValid);
    }
    if rec.is_expired(now) {
        return Err(Reason::Expired);
    }
    if let Some(nets) = &rec.allowed_addresses {
        match input.address.or(source) {
            Some(ip) if address::allowed(nets, ip) => {}
            _ => return Err(Reason::AddressNotAllowed),
        }
    }
    if let Some(requested) = &input.resource {
        match scope::normalise(requested) {
            Some(r) if scope::covers(&rec.resource, &r) => {}
            _ => return Err(Reason::ResourceNotAllowed),
        }
    }
    if input.write && !rec.write {
        return Err(Reason::WriteNotAllowed);
    }
    if rec.max_uses.is_some() && rec.remaining_uses.unwrap_or(0) == 0 {
        return Err(Reason::UsageExhausted);
    }
    Ok(())
}

pub fn refusal(reason: Reason) -> Value {
    json!({"active": false, "reason": reason.code()})
}

/// The answer for a valid token: what a calling service needs, nothing more.
pub fn acceptance(rec: &TokenRecord, remaining: Option<u64>, lease: Option<(&str, i64)>) -> Value {
    let opt_date = |d: Option<OffsetDateTime>| d.map(dates::format);
    let mut v = json!({
        "active": true,
        "id": rec.id,
        "owner": rec.owner,
        "type": rec.token_type,
        "description": rec.description,
        "resource": rec.resource,
        "write": rec.write,
        "tags": rec.tags,
        "caller": rec.caller,
        "callee": rec.callee,
        "startDate": opt_date(rec.start_date),
        "endDate": dates::format(rec.end_date),
        "expire": rec.end_date.unix_timestamp(),
        "maxConcurrent": rec.max_concurrent,
        "remainingUses": remaining,
    });
    if let Some((id, expiry)) = lease {
        v["lease"] = json!({"id": id, "expiresAt": dates::format(dates::from_millis(expiry))});
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{create, Lifetimes, NewToken};
    use time::Duration;

    fn token(body: Value) -> TokenRecord {
        create(NewToken {
            id: "id".into(),
            owner: "o".into(),
            start: "tgl_12345678".into(),
            secret_hash: "h".into(),
            requester: None,
            now: dates::now(),
            lifetimes: Lifetimes {
                default_ttl_seconds: 3600,
                max_ttl_seconds: 86_400,
            },
            body: body.as_object().unwrap(),
        })
        .unwrap()
    }

    fn input(resource: Option<&str>, write: bool, address: Option<&str>) -> ValidateInput {
        ValidateInput {
            token: Some("t".into()),
            resource: resource.map(str::to_owned),
            write,
            address: address.map(|a| a.parse().unwrap()),
            acquire: false,
        }
    }

    #[test]
    fn checks_run_in_contract_order() {
        // A token that fails every check reports the first one.
        let mut t =
            token(json!({"resource": "/a", "allowedAddresses": ["10.0.0.1"], "maxUses": 1}));
        t.remaining_uses = Some(0);
        let now = dates::now();
        let bad = input(Some("/b"), true, Some("10.0.0.2"));
        t.start_date = Some(now + Duration::hours(1));
        assert_eq!(check(&t, &bad, None, now), Err(Reason::NotYetValid));
        t.start_date = None;
        assert_eq!(check(&t, &bad, None, t.end_date), Err(Reason::Expired));
        assert_eq!(check(&t, &bad, None, now), Err(Reason::AddressNotAllowed));
        let bad = input(Some("/b"), true, Some("10.0.0.1"));
        assert_eq!(check(&t, &bad, None, now), Err(Reason::ResourceNotAllowed));
        let bad = input(Some("/a/1"), true, Some("10.0.0.1"));
        assert_eq!(check(&t, &bad, None, now), Err(Reason::WriteNotAllowed));
        let bad = input(Some("/a/1"), false, Some("10.0.0.1"));
        assert_eq!(check(&t, &bad, None, now), Err(Reason::UsageExhausted));
        t.remaining_uses = Some(1);
        assert_eq!(check(&t, &bad, None, now), Ok(()));
    }

    #[test]
    fn address_defaults_to_the_request_source() {
        let t = token(json!({"allowedAddresses": ["10.0.0.0/8"]}));
        let now = dates::now();
        let i = input(None, false, None);
        assert_eq!(
            check(&t, &i, Some("10.1.2.3".parse().unwrap()), now),
            Ok(())
        );
        assert_eq!(
            check(&t, &i, Some("11.1.2.3".parse().unwrap()), now),
            Err(Reason::AddressNotAllowed)
        );
        assert_eq!(check(&t, &i, None, now), Err(Reason::AddressNotAllowed));
    }

    #[test]
    fn refusal_reveals_nothing_else() {
        assert_eq!(
            refusal(Reason::Expired),
            json!({"active": false, "reason": "EXPIRED"})
        );
    }
}
