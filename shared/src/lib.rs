//! Tollgate's core: the token model and every rule of the API contract,
//! the token string format, the validate flow, the stores, and the HTTP
//! mapping. Nothing here but `lambda` and `store::dynamo` knows about AWS.
//!
//! - `token`: the record, field rules, ids, scopes and addresses;
//! - `credentials`: the keyring, the token string and capabilities;
//! - `limits`: rate windows and concurrency leases, what admissions spend;
//! - `validate`: the validate flow, from input to answer;
//! - `http`: requests, responses, problem documents, XML;
//! - `service`: routing, owners, and one file per operation family;
//! - `store`: the `Store` trait, the memory store and DynamoDB;
//! - `lambda`: the AWS Lambda adapter, and `keysource`: the keyring from
//!   Secrets Manager;
//! - `leaks`: what a reported leak does, and GitHub's secret-scanning
//!   protocol;
//! - `events`: lifecycle events from the table's stream, for EventBridge;
//! - `metrics`: CloudWatch Embedded Metric Format lines;
//! - `config`, `dates`, `codec`: configuration, RFC 3339, base32.

// Tests slice strings they built themselves.
#![cfg_attr(test, allow(clippy::string_slice))]

pub mod audit;
pub mod codec;
pub mod config;
pub mod console;
pub mod credentials;
pub mod dates;
pub mod events;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod http;
pub mod identity;
#[cfg(feature = "aws")]
pub mod keysource;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod leaks;
pub mod limits;
pub mod metrics;
pub mod service;
pub mod store;
pub mod token;
pub mod validate;

pub use service::{App, Function};
