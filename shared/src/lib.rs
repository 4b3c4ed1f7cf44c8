//! Tollgate's core: the token model and every rule of the API contract,
//! the token string format, the stores, and the HTTP mapping. Nothing here
//! but `lambda` and `store::dynamo` knows about AWS.

pub mod address;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod dates;
pub mod fuzzing;
pub mod http;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod model;
pub mod rules;
pub mod scope;
pub mod service;
pub mod store;
pub mod validate;

pub use service::{App, Function};
