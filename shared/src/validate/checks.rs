//! The ordered checks that the token item alone decides, before anything
//! is spent: the contract's table from `DISABLED` to `CONCURRENCY_LIMIT`.
//! The admission's conditional write holds the item to what they saw.

use std::net::IpAddr;

use time::OffsetDateTime;

use super::input::ValidateInput;
use super::Reason;
use crate::credentials::capability::Claims;
use crate::token::scopes::{self, Scope};
use crate::token::{address, audience, resource, TokenRecord};

use super::IdentityRefusal;
use crate::identity::IdentityRecord;
use crate::limits::Exceeded;
pub use crate::limits::Standings;

/// Every check of the contract, in order, on the token as read; on
/// success, where its limits stand. `address` is the one that counts
/// (see `validate::relay`). A capability (`cap`) narrows its parent: the
/// address, resource, write flag and scope must pass both.
pub fn check(
    rec: &TokenRecord,
    input: &ValidateInput,
    address: Option<IpAddr>,
    now: OffsetDateTime,
    cap: Option<&Claims>,
) -> Result<Standings, Reason> {
    check_standing(rec, address, now)?;
    if cap.is_some_and(|c| !c.allows_address(address)) {
        return Err(Reason::AddressNotAllowed);
    }
    check_binding(rec, input, cap)?;
    if let Some(requested) = &input.resource {
        let within = |scope: &str, r: &str| resource::covers(scope, r);
        match resource::normalise(requested) {
            Some(r) if within(&rec.resource, &r) && cap.is_none_or(|c| within(&c.resource, &r)) => {
            }
            _ => return Err(Reason::ResourceNotAllowed),
        }
    }
    if input.write && (!rec.write || cap.is_some_and(|c| !c.write)) {
        return Err(Reason::WriteNotAllowed);
    }
    if let Some(requested) = &input.scope {
        let granted =
            |list: &[String]| Scope::parse(requested).is_some_and(|s| scopes::any_covers(list, &s));
        if !granted(rec.scopes.as_deref().unwrap_or_default())
            || cap.is_some_and(|c| !granted(&c.scopes))
        {
            return Err(Reason::ScopeNotAllowed);
        }
    }
    check_limits(rec, input, now)
}

/// Right after the address: the protected API's owners (the authorize
/// function), then the audience, always checked for a protected API and
/// for validate when it names one. A capability's audiences narrow its
/// parent's.
fn check_binding(
    rec: &TokenRecord,
    input: &ValidateInput,
    cap: Option<&Claims>,
) -> Result<(), Reason> {
    let asked = match &input.binding {
        Some(b) if !b.accepts_owner(&rec.owner) => return Err(Reason::OwnerNotAllowed),
        Some(b) => Some(b.audience.as_deref()),
        None => input.audience.as_deref().map(Some),
    };
    if let Some(asked) = asked {
        if !audience::allows(rec.audience_list(), asked)
            || cap.is_some_and(|c| !audience::allows(&c.audiences, asked))
        {
            return Err(Reason::AudienceNotAllowed);
        }
    }
    Ok(())
}

/// The identity's checks, after the token's: its audiences, as the
/// token's, then its limits (uses, then windows), each refusal the
/// identity's.
pub fn check_identity(
    identity: &IdentityRecord,
    input: &ValidateInput,
    now: OffsetDateTime,
) -> Result<Standings, Reason> {
    let asked = match &input.binding {
        Some(b) => Some(b.audience.as_deref()),
        None => input.audience.as_deref().map(Some),
    };
    if asked.is_some_and(|asked| !audience::allows(identity.audience_list(), asked)) {
        return Err(Reason::ByIdentity {
            of: IdentityRefusal::AudienceNotAllowed,
        });
    }
    identity
        .limits
        .check(input.spend(), now)
        .map_err(|e| Reason::ByIdentity {
            of: match e {
                Exceeded::Uses => IdentityRefusal::UsageExhausted,
                Exceeded::Rate { retry_after } => IdentityRefusal::RateLimited { retry_after },
            },
        })
}

/// The stateful checks, in order: the call's cost in uses left (a due
/// refill applied), room in every rate limit's window, a free lease slot
/// (lapsed leases free theirs).
pub fn check_limits(
    rec: &TokenRecord,
    input: &ValidateInput,
    now: OffsetDateTime,
) -> Result<Standings, Reason> {
    let acquire = input.acquire;
    let standings = rec.limits.check(input.spend(), now).map_err(Reason::from)?;
    if acquire
        && rec
            .max_concurrent
            .is_some_and(|cap| rec.leases.counted(now) >= cap)
    {
        return Err(Reason::ConcurrencyLimit);
    }
    Ok(standings)
}

/// The checks that hold for the token whatever it is asked for: enabled,
/// its window and its address binding (also what a lease renewal and a
/// relay must pass).
pub fn check_standing(
    rec: &TokenRecord,
    address: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<(), Reason> {
    if !rec.enabled {
        return Err(Reason::Disabled);
    }
    if rec.start_date.is_some_and(|s| now < s) {
        return Err(Reason::NotYetValid);
    }
    if rec.is_expired(now) {
        return Err(Reason::Expired);
    }
    if let Some(nets) = &rec.allowed_addresses {
        match address {
            Some(ip) if address::allowed(nets, ip) => {}
            _ => return Err(Reason::AddressNotAllowed),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::dates;
    use crate::token::rules::{create, Lifetimes, NewToken};
    use serde_json::{json, Value};
    use time::Duration;

    /// A token of owner `o` made from a create body.
    pub(in crate::validate) fn token(body: Value) -> TokenRecord {
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

    fn input(resource: Option<&str>, write: bool) -> ValidateInput {
        ValidateInput {
            token: Some("t".into()),
            resource: resource.map(str::to_owned),
            write,
            ..Default::default()
        }
    }

    fn ip(a: &str) -> Option<IpAddr> {
        Some(a.parse().unwrap())
    }

    #[test]
    fn checks_run_in_contract_order() {
        // A token that fails every check reports the first one.
        let mut t =
            token(json!({"resource": "/a", "allowedAddresses": ["10.0.0.1"], "maxUses": 1}));
        t.limits.remaining_uses = Some(0);
        let now = dates::now();
        let bad = input(Some("/b"), true);
        t.enabled = false;
        assert_eq!(
            check(&t, &bad, ip("10.0.0.2"), now, None),
            Err(Reason::Disabled)
        );
        t.enabled = true;
        t.start_date = Some(now + Duration::hours(1));
        assert_eq!(
            check(&t, &bad, ip("10.0.0.2"), now, None),
            Err(Reason::NotYetValid)
        );
        t.start_date = None;
        assert_eq!(
            check(&t, &bad, ip("10.0.0.2"), t.end_date, None),
            Err(Reason::Expired)
        );
        assert_eq!(
            check(&t, &bad, ip("10.0.0.2"), now, None),
            Err(Reason::AddressNotAllowed)
        );
        assert_eq!(
            check(&t, &bad, ip("10.0.0.1"), now, None),
            Err(Reason::ResourceNotAllowed)
        );
        let bad = input(Some("/a/1"), true);
        assert_eq!(
            check(&t, &bad, ip("10.0.0.1"), now, None),
            Err(Reason::WriteNotAllowed)
        );
        let bad = input(Some("/a/1"), false);
        assert_eq!(
            check(&t, &bad, ip("10.0.0.1"), now, None),
            Err(Reason::UsageExhausted)
        );
        t.limits.remaining_uses = Some(1);
        t.limits.rate_limits = Some(vec![crate::limits::RateLimit {
            name: "m".into(),
            limit: 1,
            period_seconds: 60,
        }]);
        t.limits.rate_counts.insert(
            "m".into(),
            crate::limits::RateCount {
                period: 60,
                window: crate::limits::rate::window_of(60, now),
                count: 1,
            },
        );
        t.max_concurrent = Some(1);
        t.leases = crate::limits::LeaseLedger::from_buckets([(now.unix_timestamp() + 60, 1)]);
        let acquire = ValidateInput {
            acquire: true,
            ..bad.clone()
        };
        assert!(matches!(
            check(&t, &acquire, ip("10.0.0.1"), now, None),
            Err(Reason::RateLimited {
                retry_after: 1..=60
            })
        ));
        t.limits.rate_counts.clear();
        assert_eq!(
            check(&t, &acquire, ip("10.0.0.1"), now, None),
            Err(Reason::ConcurrencyLimit)
        );
        // A lapsed lease frees its slot.
        t.leases = crate::limits::LeaseLedger::from_buckets([(now.unix_timestamp(), 1)]);
        let standings = check(&t, &acquire, ip("10.0.0.1"), now, None).unwrap();
        assert_eq!(standings.rates[0].used, None);
    }

    #[test]
    fn a_capability_narrows_every_check_it_names() {
        let t = token(json!({"resource": "/teams", "write": true,
            "scopes": ["scope:client:incoming?clientName=alice", "scope:client:outgoing"]}));
        let now = dates::now();
        let cap = Claims {
            scopes: vec!["scope:client:incoming?clientName=alice".into()],
            resource: "/teams/1".into(),
            address: crate::token::address::parse_net("10.0.0.0/8"),
            ..Claims::for_tests()
        };
        let ask = |resource: Option<&str>, write: bool, scope: Option<&str>| ValidateInput {
            scope: scope.map(str::to_owned),
            ..input(resource, write)
        };
        let with_cap = |i: &ValidateInput, a: &str| check(&t, i, ip(a), now, Some(&cap));
        assert!(with_cap(&ask(Some("/teams/1/x"), false, None), "10.1.1.1").is_ok());
        assert_eq!(
            with_cap(&ask(None, false, None), "11.1.1.1"),
            Err(Reason::AddressNotAllowed)
        );
        assert_eq!(
            with_cap(&ask(Some("/teams/2"), false, None), "10.1.1.1"),
            Err(Reason::ResourceNotAllowed)
        );
        assert_eq!(
            with_cap(&ask(None, true, None), "10.1.1.1"),
            Err(Reason::WriteNotAllowed)
        );
        // The parent grants it; the capability does not.
        let outgoing = ask(None, false, Some("scope:client:outgoing"));
        assert!(check(&t, &outgoing, ip("10.1.1.1"), now, None).is_ok());
        assert_eq!(
            with_cap(&outgoing, "10.1.1.1"),
            Err(Reason::ScopeNotAllowed)
        );
        let incoming = ask(None, false, Some("scope:client:incoming?clientName=alice"));
        assert!(with_cap(&incoming, "10.1.1.1").is_ok());
    }

    #[test]
    fn the_address_that_counts_must_be_allowed() {
        let t = token(json!({"allowedAddresses": ["10.0.0.0/8"]}));
        let now = dates::now();
        let i = input(None, false);
        assert!(check(&t, &i, ip("10.1.2.3"), now, None).is_ok());
        assert_eq!(
            check(&t, &i, ip("11.1.2.3"), now, None),
            Err(Reason::AddressNotAllowed)
        );
        assert_eq!(
            check(&t, &i, None, now, None),
            Err(Reason::AddressNotAllowed)
        );
    }

    #[test]
    fn a_protected_api_accepts_its_owners_and_audience_only() {
        use crate::validate::binding::{Binding, Owners};
        let now = dates::now();
        let plain = token(json!({}));
        let billing = token(json!({"audiences": ["billing"]}));
        let at = |owners: Owners, audience: Option<&str>| ValidateInput {
            binding: Some(Binding {
                owners,
                audience: audience.map(str::to_owned),
                costs: Vec::new(),
            }),
            ..input(None, false)
        };
        let listed = |o: &[&str]| Owners::Listed(o.iter().map(|s| s.to_string()).collect());
        let check_at =
            |t: &TokenRecord, i: &ValidateInput| check(t, i, None, now, None).map(|_| ());
        assert_eq!(check_at(&plain, &at(listed(&["o"]), None)), Ok(()));
        assert_eq!(check_at(&plain, &at(Owners::Any, Some("x"))), Ok(()));
        assert_eq!(
            check_at(&plain, &at(listed(&["someone", "else"]), None)),
            Err(Reason::OwnerNotAllowed)
        );
        assert_eq!(
            check_at(&billing, &at(listed(&["o"]), Some("billing"))),
            Ok(())
        );
        for audience in [None, Some("search")] {
            assert_eq!(
                check_at(&billing, &at(Owners::Any, audience)),
                Err(Reason::AudienceNotAllowed),
                "{audience:?}"
            );
        }
        // Validate checks an audience only when it names one.
        let named = |a: &str| ValidateInput {
            audience: Some(a.into()),
            ..input(None, false)
        };
        assert_eq!(check_at(&billing, &input(None, false)), Ok(()));
        assert_eq!(check_at(&billing, &named("billing")), Ok(()));
        assert_eq!(
            check_at(&billing, &named("search")),
            Err(Reason::AudienceNotAllowed)
        );
        // Right after the address, before the resource.
        let bound = token(json!({"resource": "/a", "allowedAddresses": ["10.0.0.1"]}));
        let wrong_everything = ValidateInput {
            resource: Some("/b".into()),
            ..at(listed(&["x"]), None)
        };
        assert_eq!(
            check(&bound, &wrong_everything, ip("10.0.0.2"), now, None).map(|_| ()),
            Err(Reason::AddressNotAllowed)
        );
        assert_eq!(
            check(&bound, &wrong_everything, ip("10.0.0.1"), now, None).map(|_| ()),
            Err(Reason::OwnerNotAllowed)
        );
    }

    #[test]
    fn a_capability_narrows_the_audience() {
        let now = dates::now();
        let t = token(json!({}));
        let cap = Claims {
            audiences: vec!["billing".into()],
            ..Claims::for_tests()
        };
        let named = |a: &str| ValidateInput {
            audience: Some(a.into()),
            ..input(None, false)
        };
        assert!(check(&t, &named("billing"), None, now, Some(&cap)).is_ok());
        assert_eq!(
            check(&t, &named("search"), None, now, Some(&cap)).map(|_| ()),
            Err(Reason::AudienceNotAllowed)
        );
    }
}
