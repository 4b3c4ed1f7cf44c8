//! Which address counts for address binding. The request's own source
//! address, always, unless a trusted relay vouches for another: a protected
//! service that validates its clients' tokens can pass on its client's
//! address in the body (`address`) only when it also presents, in the
//! `Tollgate-Relay` header, a token of the same owner granted
//! `scope:tollgate:relay` that is itself valid from the service's own
//! source address. Whoever merely holds a token can never claim an address.

use std::net::IpAddr;

use time::OffsetDateTime;

use super::checks::check_standing;
use crate::token::scopes::{any_covers, Scope, RELAY_SCOPE};
use crate::token::TokenRecord;

/// Whether `relay` (already read and its secret matched) may vouch for an
/// address on behalf of `token`'s owner.
pub fn trusted(
    relay: &TokenRecord,
    token: &TokenRecord,
    source: Option<IpAddr>,
    now: OffsetDateTime,
) -> bool {
    let relay_scope = Scope::parse(RELAY_SCOPE).expect("the relay scope is a scope");
    relay.owner == token.owner
        && relay.id != token.id
        && relay
            .scopes
            .as_deref()
            .is_some_and(|granted| any_covers(granted, &relay_scope))
        && check_standing(relay, source, now).is_ok()
}

/// The address that counts: the claimed one beside a trusted relay, else
/// the request's source address.
pub fn address_that_counts(
    claimed: Option<IpAddr>,
    relay_trusted: bool,
    source: Option<IpAddr>,
) -> Option<IpAddr> {
    if relay_trusted {
        claimed.or(source)
    } else {
        source
    }
}
