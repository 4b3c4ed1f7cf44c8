//! The ordered checks that the token item alone decides, before anything
//! is spent: the contract's table from `NOT_YET_VALID` to `USAGE_EXHAUSTED`.

use std::net::IpAddr;

use time::OffsetDateTime;

use super::input::ValidateInput;
use super::Reason;
use crate::token::{address, scope, TokenRecord};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dates;
    use crate::token::rules::{create, Lifetimes, NewToken};
    use serde_json::{json, Value};
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
}
