//! The token: its record and how it is shown (`record`), the identifiers
//! that parse their input (`ids`), the APIs it is meant for (`audience`),
//! the client fields and list query (`fields`, `query`), create and patch
//! (`rules`), resource scopes and address binding (`resource`,
//! `address`) and capability scopes (`scopes`). Its secrets live in
//! `credentials`, what it spends in `limits`.

pub mod address;
pub mod audience;
pub mod fields;
pub mod ids;
pub mod query;
mod record;
pub mod resource;
pub mod rules;
pub mod scopes;

pub use fields::{FieldError, FieldErrors};
pub use ids::{IdempotencyKey, LeaseId, Owner, TokenId};
pub use record::{address_strings, TokenRecord};
