//! The validate flow, read top-down in [`decide`]: the presented token is
//! parsed and read ([`presented`], with the address that counts from
//! `relay`), checked in the contract's order (`checks`), admitted by
//! spending what it must (`admission`) and answered (`answer`). `input`
//! decodes the request; the lease calls of `service::leases` reuse
//! `presented` and the checks.

use std::net::IpAddr;

use time::OffsetDateTime;

use crate::store::{Store, StoreError};
use crate::token::TokenString;
use crate::token::{Keyring, TokenId, TokenRecord};

pub mod admission;
pub mod answer;
pub mod checks;
pub mod input;
pub mod relay;

pub use admission::{Admitted, NotAdmitted};
pub use input::ValidateInput;

/// Refusal reasons, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Malformed,
    NotFound,
    Disabled,
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
            Reason::Disabled => "DISABLED",
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

/// A token that passed the checks and was admitted, or why not.
pub type Decision = Result<Accepted, Reason>;

/// An admitted validate: the token, what it spent, and when the secret
/// presented stops validating if it is one rolled away.
#[derive(Debug)]
pub struct Accepted {
    pub rec: TokenRecord,
    pub admitted: Admitted,
    pub secret_expires_at: Option<OffsetDateTime>,
}

/// The presented token, read, with the address that counts for it.
#[derive(Debug)]
pub struct Presented {
    pub id: TokenId,
    pub rec: TokenRecord,
    pub address: Option<IpAddr>,
    /// Set when the secret presented is the previous one, in its grace.
    pub secret_expires_at: Option<OffsetDateTime>,
}

/// The whole decision for one validate request, in the contract's order.
/// `source` is the request's own address.
pub async fn decide(
    keys: &Keyring,
    store: &dyn Store,
    lease_seconds: i64,
    input: &ValidateInput,
    source: Option<IpAddr>,
) -> Result<Decision, StoreError> {
    // A write is pinned to the version read; when a patch moved the token
    // in between, the whole decision is made again on the new version.
    for _ in 0..MAX_ROUNDS {
        let now = crate::dates::now();
        let found = match presented(keys, store, input, source, now).await? {
            Ok(found) => found,
            Err(reason) => return Ok(Err(reason)),
        };
        if let Err(reason) = checks::check(&found.rec, input, found.address, now) {
            return Ok(Err(reason));
        }
        let Presented {
            id,
            rec,
            secret_expires_at,
            ..
        } = found;
        match admission::admit(store, keys, &id, &rec, input.acquire, lease_seconds, now).await? {
            Ok(admitted) => {
                return Ok(Ok(Accepted {
                    rec,
                    admitted,
                    secret_expires_at,
                }))
            }
            Err(NotAdmitted::Refused(reason)) => return Ok(Err(reason)),
            Err(NotAdmitted::Moved) => continue,
        }
    }
    Err(StoreError::Unavailable(
        "the token kept changing during admission".into(),
    ))
}

/// Rounds of read, check and write before giving up with 503: each lost
/// round means another request changed the token in between.
const MAX_ROUNDS: usize = 8;

/// The presented token string, parsed (`MALFORMED` before any read) and
/// read with its secret compared (`NOT_FOUND`). A relay credential, when
/// presented, is read in the same strongly consistent request.
pub async fn presented(
    keys: &Keyring,
    store: &dyn Store,
    input: &ValidateInput,
    source: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<Result<Presented, Reason>, StoreError> {
    let text = input.token.as_deref().unwrap_or_default();
    let Some(parsed) = keys.parse_token(text) else {
        return Ok(Err(Reason::Malformed));
    };
    let relay = input.relay.as_deref().and_then(|r| keys.parse_token(r));
    let (rec, relay_rec) = match &relay {
        Some(r) => {
            let mut both = store.get_many(&[parsed.id.as_str(), r.id.as_str()]).await?;
            let relay_rec = both.pop().flatten();
            (both.pop().flatten(), relay_rec)
        }
        None => (store.get(parsed.id.as_str()).await?, None),
    };
    let Some((rec, secret_expires_at)) = rec.and_then(|rec| {
        let grace = secret_state(keys, &parsed, &rec, now)?;
        Some((rec, grace))
    }) else {
        return Ok(Err(Reason::NotFound));
    };
    let relay_trusted = match (&relay, &relay_rec) {
        (Some(r), Some(relay_rec)) => {
            secret_state(keys, r, relay_rec, now).is_some()
                && relay::trusted(relay_rec, &rec, source, now)
        }
        _ => false,
    };
    Ok(Ok(Presented {
        id: parsed.id,
        secret_expires_at,
        address: relay::address_that_counts(input.address, relay_trusted, source),
        rec,
    }))
}

/// Whether the presented secret is the token's: `Some(None)` for the
/// current secret, `Some(Some(end))` for the previous one during its grace
/// (it stops at `end`), `None` for neither (`NOT_FOUND`: a secret rolled
/// away is gone).
fn secret_state(
    keys: &Keyring,
    parsed: &TokenString,
    rec: &TokenRecord,
    now: OffsetDateTime,
) -> Option<Option<OffsetDateTime>> {
    if keys.secret_matches(parsed, &rec.secret_hash) {
        return Some(None);
    }
    match (&rec.prev_secret_hash, rec.prev_secret_expires_at) {
        (Some(hash), Some(end)) if now < end && keys.secret_matches(parsed, hash) => {
            Some(Some(end))
        }
        _ => None,
    }
}
