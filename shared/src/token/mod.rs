//! The token: its record and how it is shown (`record`), the identifiers
//! that parse their input (`ids`), the APIs it is meant for (`audience`), the client fields and list query
//! (`fields`, `query`), create and patch (`rules`), resource scopes and
//! address binding (`resource`, `address`), capability scopes (`scopes`)
//! and the capabilities minted from a token (`capability`) and those
//! revoked before their end (`revocation`),
//! rate limits (`rate`), concurrency leases (`leases`),
//! and the secrets: the server keyring (`keyring`), the keys derived from
//! each of its keys (`keys`) and the token string (`string`).

pub mod address;
pub mod audience;
pub mod capability;
pub mod fields;
pub mod ids;
pub mod keyring;
pub mod keys;
pub mod leases;
pub mod query;
pub mod rate;
mod record;
pub mod resource;
pub mod revocation;
pub mod rules;
pub mod scopes;
pub mod string;

pub use fields::{FieldError, FieldErrors};
pub use ids::{IdempotencyKey, LeaseId, Owner, TokenId};
pub use keyring::{Keyring, KeyringError};
pub use keys::request_fingerprint;
pub use leases::LeaseLedger;
pub use rate::{RateCount, RateLimit};
pub use record::{address_strings, TokenRecord};
pub use revocation::RevokedCapabilities;
pub use string::{
    looks_like_token, Minted, TokenString, MAX_TOKEN_LEN, START_LEN, TOKEN_LEN, TOKEN_PREFIX,
};
