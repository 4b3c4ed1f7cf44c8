//! The tests over real HTTP and real Lambda events, one binary: every
//! route through the local API gateway to the functions under `cargo
//! lambda watch`, the example app behind `authorize`, the `events/`
//! fixtures through `cargo lambda invoke`, credits (cost, refill, reserve
//! and settle), a holder's revocation, GitHub's
//! leak reports, the Rust client crate and its layer, and the security
//! findings' regression tests.

// Test code slices strings it built itself.
#![allow(clippy::string_slice)]

mod capabilities;
mod client;
mod credits;
mod e2e;
mod events;
mod gateway;
mod identities;
mod leaks;
mod lifecycle;
mod rate;
mod review;
mod revoke;
mod security;
mod stream_events;
