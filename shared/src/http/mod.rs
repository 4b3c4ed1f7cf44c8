//! The HTTP face of Tollgate without any AWS types: the request
//! (`request`), responses (`response`), problem documents (`problem`),
//! XML (`xml`) and the paging every list shares (`paging`).

pub mod paging;
pub mod problem;
pub mod request;
pub mod response;
pub mod xml;

pub use problem::ApiError;
pub use request::{canonical_json, json_object, ApiRequest, Format, Identity, MAX_BODY};
pub use response::ApiResponse;
