//! The in-process integration tests, one binary: the app and the stores
//! called directly, over DynamoDB Local (and the memory store), without
//! HTTP in between.

// Test code slices strings it built itself.
#![allow(clippy::string_slice)]

mod audit;
mod capabilities;
mod console;
mod credits;
mod faults;
mod fuzz_corpus;
mod hostile;
mod identities;
mod isolation;
mod keyring;
mod lease_cost;
mod lease_lapse;
mod least_privilege;
mod store_contract;
mod trace_logs;
