//! The limits an admission spends, one home for every holder of them:
//! uses as credits, with cost and refill (`uses`), rate limits counted in
//! aligned windows (`rate`) and concurrency leases in a ledger of the
//! instants they lapse (`leases`).

pub mod leases;
pub mod rate;
pub mod uses;

pub use leases::LeaseLedger;
pub use rate::{RateCount, RateLimit};
pub use uses::{Refill, Uses};
