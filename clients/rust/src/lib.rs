#![doc = include_str!("../README.md")]

mod answer;
mod client;
mod error;
mod layer;
mod verify;

pub use answer::{
    Active, CapabilityState, IdentityState, Lease, Minted, MintedCapability, RateLimitState,
    Reason, Refusal, Validation,
};
pub use client::{Client, ClientBuilder, MintRequest, Owners, ValidateRequest};
pub use error::{Error, FieldError, Problem};
pub use layer::{Authorize, AuthorizeService, Authorized, CallerAddress};
pub use verify::{Capability, Verifier, VerifierBuilder, VerifyError};
