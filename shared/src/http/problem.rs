//! `ApiError`: every way a request can fail, mapped to HTTP and to an
//! RFC 9457 problem document in one place.

use serde_json::json;

use super::request::MAX_BODY;
use super::response::ApiResponse;
use crate::store::StoreError;
use crate::token::{FieldError, FieldErrors};

/// Every way a request can fail, mapped to HTTP in one place.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(Vec<FieldError>),
    Unauthorized,
    /// A scanner's report without a valid signature of one of its keys.
    BadSignature,
    TokenOnManagementRoute,
    NotFound,
    MethodNotAllowed(&'static str),
    PreconditionFailed,
    IdempotencyMismatch,
    /// The owner already has an identity of that `externalId`.
    IdentityExists,
    /// A token still points at the identity.
    IdentityInUse,
    PayloadTooLarge,
    UnsupportedMediaType(&'static str),
    Unavailable,
    Internal,
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl ApiError {
    pub fn field(field: &str, message: &str) -> Self {
        ApiError::BadRequest(vec![FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        }])
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized | ApiError::BadSignature => 401,
            ApiError::TokenOnManagementRoute => 403,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::PreconditionFailed => 412,
            ApiError::IdempotencyMismatch => 422,
            ApiError::IdentityExists | ApiError::IdentityInUse => 409,
            ApiError::PayloadTooLarge => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Unavailable => 503,
            ApiError::Internal => 500,
        }
    }

    /// RFC 9457 problem document: never a stack trace, AWS detail or secret.
    pub fn into_response(self) -> ApiResponse {
        let status = self.status();
        let (slug, title, detail): (&str, &str, String) = match &self {
            ApiError::BadRequest(_) => (
                "invalid-request",
                "Invalid request",
                "One or more fields are invalid.".into(),
            ),
            ApiError::Unauthorized => (
                "unauthorized",
                "Unauthorized",
                "No owner could be established for this request.".into(),
            ),
            ApiError::BadSignature => (
                "bad-signature",
                "Unauthorized",
                "The report is not signed by one of the scanner's published keys.".into(),
            ),
            ApiError::TokenOnManagementRoute => (
                "token-not-allowed",
                "Forbidden",
                "A Tollgate token or capability cannot be used to manage tokens.".into(),
            ),
            ApiError::NotFound => ("not-found", "Not Found", "No such resource.".into()),
            ApiError::MethodNotAllowed(allow) => (
                "method-not-allowed",
                "Method Not Allowed",
                format!("Allowed methods: {allow}."),
            ),
            ApiError::PreconditionFailed => (
                "precondition-failed",
                "Precondition Failed",
                "If-Match does not match the token's current ETag.".into(),
            ),
            ApiError::IdempotencyMismatch => (
                "idempotency-key-reused",
                "Unprocessable Content",
                "This Idempotency-Key was used with a different request body.".into(),
            ),
            ApiError::IdentityExists => (
                "identity-exists",
                "Conflict",
                "You already have an identity with this externalId.".into(),
            ),
            ApiError::IdentityInUse => (
                "identity-in-use",
                "Conflict",
                "Tokens still point at this identity: delete them or patch their identityId first."
                    .into(),
            ),
            ApiError::PayloadTooLarge => (
                "payload-too-large",
                "Content Too Large",
                format!("Bodies are limited to {MAX_BODY} bytes."),
            ),
            ApiError::UnsupportedMediaType(allowed) => (
                "unsupported-media-type",
                "Unsupported Media Type",
                format!("Content-Type must be {allowed}."),
            ),
            ApiError::Unavailable => (
                "unavailable",
                "Service Unavailable",
                "The token store is unavailable; retry shortly.".into(),
            ),
            ApiError::Internal => (
                "internal",
                "Internal Server Error",
                "An unexpected error occurred.".into(),
            ),
        };
        let mut doc = json!({
            "type": format!("/problems/{slug}"),
            "title": title,
            "status": status,
            "detail": detail,
        });
        match &self {
            ApiError::BadRequest(errors) => doc["errors"] = json!(errors),
            ApiError::IdentityExists => doc["code"] = json!("IDENTITY_EXISTS"),
            ApiError::IdentityInUse => doc["code"] = json!("IDENTITY_IN_USE"),
            _ => {}
        }
        let mut resp = ApiResponse {
            status,
            headers: vec![("content-type", "application/problem+json".to_owned())],
            body: serde_json::to_vec(&doc).unwrap_or_default(),
            reason: None,
        };
        match self {
            ApiError::MethodNotAllowed(allow) => resp.headers.push(("allow", allow.to_owned())),
            ApiError::Unavailable => resp.headers.push(("retry-after", "1".to_owned())),
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "token store unavailable");
                ApiError::Unavailable
            }
            StoreError::Internal(detail) => {
                tracing::error!(error = %detail, "token store error");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn problems_have_no_internal_detail() {
        let r = ApiError::Unavailable.into_response();
        assert_eq!(r.status, 503);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "retry-after" && v == "1"));
        let r = ApiError::field("maxUses", "bad").into_response();
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["errors"][0]["field"], "maxUses");
        assert_eq!(v["status"], 400);
    }
}
