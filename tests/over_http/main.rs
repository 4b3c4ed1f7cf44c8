//! The tests over real HTTP and real Lambda events, one binary: every
//! route through `cargo lambda watch`, and the `events/` fixtures through
//! `cargo lambda invoke`, and the security review's findings.

// Test code slices strings it built itself.
#![allow(clippy::string_slice)]

mod capabilities;
mod e2e;
mod events;
mod lifecycle;
mod rate;
mod review;
