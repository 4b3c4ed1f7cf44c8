//! A validate (or lease) request, decoded from JSON, a form or a Bearer
//! header into one `ValidateInput`.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::http::{ApiError, ApiRequest};
use crate::limits::uses;
use crate::token::{address, audience, scopes};
use crate::validate::binding::{Binding, Owners};

/// A validate (or lease) request body, decoded.
#[derive(Debug, Default, Clone)]
pub struct ValidateInput {
    pub token: Option<String>,
    /// The requested resource as sent; normalised during the check.
    pub resource: Option<String>,
    pub write: bool,
    /// The address the caller claims for its own client: honoured only
    /// beside a trusted relay credential (see `validate::relay`).
    pub address: Option<IpAddr>,
    pub acquire: bool,
    /// Uses the call spends (`cost`, 0–1000000): one when not given.
    pub cost: Option<u64>,
    /// Uses a reserving acquire spends and holds with its lease, for the
    /// release to settle (see `limits::uses`).
    pub reserve: Option<u64>,
    /// A release's settlement: the uses of its lease's reserve used, the
    /// rest given back. Only a release takes it.
    pub used: Option<u64>,
    /// The capability scope asked for, normalised (see `token::scopes`).
    pub scope: Option<String>,
    /// The `Tollgate-Relay` header: a token of the same owner holding the
    /// relay scope, which vouches for `address`.
    pub relay: Option<String>,
    /// The audience the caller checks the token for (validate's
    /// `audience`): checked only when named.
    pub audience: Option<String>,
    /// A protected API's binding (the authorize function, or a validate
    /// naming `owners`): its owners and audience are always checked.
    pub binding: Option<super::binding::Binding>,
    /// Validate's `owners`, made the binding once the body is read.
    pub owners: Option<Owners>,
}

impl ValidateInput {
    /// The uses this call spends: its reserve, its cost, or one.
    pub fn spend(&self) -> u64 {
        self.reserve.or(self.cost).unwrap_or(1)
    }

    /// `used` settles a release: anywhere else it is refused by name.
    pub fn refuse_used(&self) -> Result<(), ApiError> {
        match self.used {
            Some(_) => Err(ApiError::field(
                "used",
                "settles a release only: DELETE /validate/leases/{leaseId}",
            )),
            None => Ok(()),
        }
    }

    /// The rules that span fields: a reserve is held by a lease (it needs
    /// `acquire`), and is the call's spend (so not beside a `cost`).
    fn check_spend(self) -> Result<ValidateInput, ApiError> {
        let mut errors = crate::token::FieldErrors::default();
        if self.reserve.is_some() && !self.acquire {
            errors.add(
                "reserve",
                "needs acquire: true (the lease holds the reservation)",
            );
        }
        if self.reserve.is_some() && self.cost.is_some() {
            errors.add(
                "cost",
                "give cost or reserve, not both: a reserve is what the call spends",
            );
        }
        errors.into_result(self).map_err(Into::into)
    }
}

/// The header that carries a relay credential.
pub const RELAY_HEADER: &str = "tollgate-relay";

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
                        "scope" => parse_scope(&v).map(|s| input.scope = Some(s)),
                        "audience" => parse_audience(&v).map(|a| input.audience = Some(a)),
                        "cost" => parse_cost_text("cost", &v).map(|c| input.cost = Some(c)),
                        "reserve" => {
                            parse_cost_text("reserve", &v).map(|c| input.reserve = Some(c))
                        }
                        "used" => parse_cost_text("used", &v).map(|c| input.used = Some(c)),
                        "owners" => Owners::from_text(&v)
                            .map(|o| input.owners = Some(o))
                            .ok_or_else(|| ApiError::field("owners", Owners::RULE)),
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
    input.relay = req.header(RELAY_HEADER).map(str::to_owned);
    if let Some(owners) = input.owners.take() {
        input.binding = Some(Binding::of_validate(owners, input.audience.clone()));
    }
    if input.token.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::field(
            "token",
            "a token is required, in the body or as Authorization: Bearer",
        ));
    }
    input.check_spend()
}

pub fn bearer(req: &ApiRequest) -> Option<&str> {
    let h = req.header("authorization")?;
    let (scheme, rest) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn parse_scope(v: &str) -> Result<String, ApiError> {
    scopes::normalise(v).ok_or_else(|| ApiError::field("scope", SCOPE_MESSAGE))
}

fn parse_audience(v: &str) -> Result<String, ApiError> {
    match audience::is_audience(v) {
        true => Ok(v.to_owned()),
        false => Err(ApiError::field("audience", audience::AUDIENCE_RULE)),
    }
}

const SCOPE_MESSAGE: &str = "must be a scope: scope:<service>:<privilege>[?<params>]";

/// A form's `cost` or `reserve`.
fn parse_cost_text(field: &str, v: &str) -> Result<u64, ApiError> {
    v.parse::<u64>()
        .ok()
        .filter(|c| *c <= uses::MAX_COST)
        .ok_or_else(|| ApiError::field(field, uses::COST_RULE))
}

fn parse_address(v: &str) -> Result<IpAddr, ApiError> {
    address::parse_ip(v)
        .ok_or_else(|| ApiError::field("address", "must be an IPv4 or IPv6 address"))
}

fn from_json(obj: &Map<String, Value>) -> Result<ValidateInput, ApiError> {
    let mut input = ValidateInput::default();
    let mut errors = crate::token::FieldErrors::default();
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
            ("scope", Value::String(s)) => match scopes::normalise(s) {
                Some(s) => input.scope = Some(s),
                None => errors.add("scope", SCOPE_MESSAGE),
            },
            ("audience", Value::String(s)) => match parse_audience(s) {
                Ok(a) => input.audience = Some(a),
                Err(_) => errors.add("audience", audience::AUDIENCE_RULE),
            },
            ("token" | "resource" | "address" | "scope" | "audience", _) => {
                errors.add(k, "must be a string")
            }
            ("write" | "acquire", _) => errors.add(k, "must be true or false"),
            ("cost", v) => input.cost = uses::parse_cost(k, v, &mut errors),
            ("reserve", v) => input.reserve = uses::parse_cost(k, v, &mut errors),
            ("used", v) => input.used = uses::parse_cost(k, v, &mut errors),
            ("owners", v) => match Owners::from_json(v) {
                Some(o) => input.owners = Some(o),
                None => errors.add("owners", Owners::RULE),
            },
            _ => errors.add(k, "is not a field of a validate request"),
        }
    }
    errors.into_result(input).map_err(Into::into)
}
