//! The validate flow, read top-down in [`decide`]: the presented token is
//! parsed and read ([`presented`]), checked in the contract's order
//! (`checks`), admitted by spending what it must (`admission`) and
//! answered (`answer`). `input` decodes the request; the lease calls of
//! `service::leases` reuse `presented` and the checks.

use std::net::IpAddr;

use crate::store::{Store, StoreError};
use crate::token::{Keys, TokenRecord, TokenString};

pub mod admission;
pub mod answer;
pub mod checks;
pub mod input;

pub use admission::Admitted;
pub use input::ValidateInput;

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

/// A token that passed the checks and was admitted, or why not.
pub type Decision = Result<(TokenRecord, Admitted), Reason>;

/// The whole decision for one validate request, in the contract's order.
/// `source` is the request's own address.
pub async fn decide(
    keys: &Keys,
    store: &dyn Store,
    lease_seconds: i64,
    input: &ValidateInput,
    source: Option<IpAddr>,
) -> Result<Decision, StoreError> {
    let (parsed, rec) =
        match presented(keys, store, input.token.as_deref().unwrap_or_default()).await? {
            Ok(found) => found,
            Err(reason) => return Ok(Err(reason)),
        };
    let now = crate::dates::now();
    if let Err(reason) = checks::check(&rec, input, source, now) {
        return Ok(Err(reason));
    }
    Ok(admission::admit(
        store,
        keys,
        &parsed.id,
        &rec,
        input.acquire,
        lease_seconds,
        now,
    )
    .await?
    .map(|admitted| (rec, admitted)))
}

/// The presented token string, parsed (`MALFORMED` before any read) and
/// read with its secret compared (`NOT_FOUND`).
pub async fn presented(
    keys: &Keys,
    store: &dyn Store,
    text: &str,
) -> Result<Result<(TokenString, TokenRecord), Reason>, StoreError> {
    let Some(parsed) = keys.parse_token(text) else {
        return Ok(Err(Reason::Malformed));
    };
    match store.get(parsed.id.as_str()).await? {
        Some(rec) if keys.secret_matches(&parsed, &rec.secret_hash) => Ok(Ok((parsed, rec))),
        _ => Ok(Err(Reason::NotFound)),
    }
}
