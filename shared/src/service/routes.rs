//! Routing: which of a function's routes a request is, or 404/405.

use super::Function;
use crate::http::{ApiError, ApiRequest};

/// A matched route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    List,
    Create,
    Detail(String),
    Patch(String),
    Roll(String),
    Delete(String),
    Validate,
    Renew(String),
    Release(String),
    MintCapability,
    Jwks,
    Discovery,
    Revoke,
    GithubLeaks,
    IdentityList,
    IdentityCreate,
    IdentityDetail(String),
    IdentityPatch(String),
    IdentityDelete(String),
    Audit,
}

impl Route {
    pub fn template(&self) -> &'static str {
        match self {
            Route::List => "GET /tokens",
            Route::Create => "POST /tokens",
            Route::Detail(_) => "GET /tokens/{id}",
            Route::Patch(_) => "PATCH /tokens/{id}",
            Route::Roll(_) => "POST /tokens/{id}/roll",
            Route::Delete(_) => "DELETE /tokens/{id}",
            Route::Validate => "POST /validate",
            Route::Renew(_) => "PUT /validate/leases/{leaseId}",
            Route::Release(_) => "DELETE /validate/leases/{leaseId}",
            Route::MintCapability => "POST /validate/capabilities",
            Route::Jwks => "GET /.well-known/jwks.json",
            Route::Discovery => "GET /.well-known/openid-configuration",
            Route::Revoke => "POST /validate/revoke",
            Route::GithubLeaks => "POST /leaks/github",
            Route::IdentityList => "GET /identities",
            Route::IdentityCreate => "POST /identities",
            Route::IdentityDetail(_) => "GET /identities/{id}",
            Route::IdentityPatch(_) => "PATCH /identities/{id}",
            Route::IdentityDelete(_) => "DELETE /identities/{id}",
            Route::Audit => "GET /audit",
        }
    }
}

/// Path segments after any API Gateway stage prefix.
fn segments(path: &str) -> Vec<&str> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let first = |s: &&str| {
        matches!(
            *s,
            "tokens" | "identities" | "audit" | "validate" | "leaks" | ".well-known"
        )
    };
    match segs.iter().position(first) {
        Some(i) => segs[i..].to_vec(),
        None => segs,
    }
}

/// Matches the request to one of `function`'s routes: 404 for a path it
/// does not serve, 405 for a method it does not allow there.
pub fn route(function: Function, req: &ApiRequest) -> std::result::Result<Route, ApiError> {
    let segs = segments(&req.path);
    let id = || {
        req.path_id
            .clone()
            .or_else(|| segs.last().map(|s| s.to_string()))
            .unwrap_or_default()
    };
    let m = &req.method;
    use http::Method as M;
    match (function, segs.as_slice()) {
        (Function::List, ["tokens"]) => (m == M::GET)
            .then_some(Route::List)
            .ok_or(ApiError::MethodNotAllowed("GET")),
        (Function::Create, ["tokens"]) => (m == M::POST)
            .then_some(Route::Create)
            .ok_or(ApiError::MethodNotAllowed("POST")),
        (Function::Detail, ["tokens", _]) => (m == M::GET)
            .then(|| Route::Detail(id()))
            .ok_or(ApiError::MethodNotAllowed("GET")),
        (Function::Patch, ["tokens", _]) => (m == M::PATCH)
            .then(|| Route::Patch(id()))
            .ok_or(ApiError::MethodNotAllowed("PATCH")),
        (Function::Patch, ["tokens", token, "roll"]) => (m == M::POST)
            .then(|| Route::Roll(req.path_id.clone().unwrap_or_else(|| token.to_string())))
            .ok_or(ApiError::MethodNotAllowed("POST")),
        (Function::Delete, ["tokens", _]) => (m == M::DELETE)
            .then(|| Route::Delete(id()))
            .ok_or(ApiError::MethodNotAllowed("DELETE")),
        // Each management function serves the identities' route of its verb.
        (Function::List, ["identities"]) => (m == M::GET)
            .then_some(Route::IdentityList)
            .ok_or(ApiError::MethodNotAllowed("GET")),
        // The audit trail is read by the reading function.
        (Function::List, ["audit"]) => (m == M::GET)
            .then_some(Route::Audit)
            .ok_or(ApiError::MethodNotAllowed("GET")),
        (Function::Create, ["identities"]) => (m == M::POST)
            .then_some(Route::IdentityCreate)
            .ok_or(ApiError::MethodNotAllowed("POST")),
        (Function::Detail, ["identities", _]) => (m == M::GET)
            .then(|| Route::IdentityDetail(id()))
            .ok_or(ApiError::MethodNotAllowed("GET")),
        (Function::Patch, ["identities", _]) => (m == M::PATCH)
            .then(|| Route::IdentityPatch(id()))
            .ok_or(ApiError::MethodNotAllowed("PATCH")),
        (Function::Delete, ["identities", _]) => (m == M::DELETE)
            .then(|| Route::IdentityDelete(id()))
            .ok_or(ApiError::MethodNotAllowed("DELETE")),
        (Function::Validate, ["validate"]) => (m == M::POST)
            .then_some(Route::Validate)
            .ok_or(ApiError::MethodNotAllowed("POST")),
        (Function::Validate, ["validate", "capabilities"]) => (m == M::POST)
            .then_some(Route::MintCapability)
            .ok_or(ApiError::MethodNotAllowed("POST")),
        (Function::Validate, ["leaks", "github"]) => (m == M::POST)
            .then_some(Route::GithubLeaks)
            .ok_or(ApiError::MethodNotAllowed("POST")),
        (Function::Validate, ["validate", "revoke"]) => (m == M::POST)
            .then_some(Route::Revoke)
            .ok_or(ApiError::MethodNotAllowed("POST")),
        (Function::Validate, [".well-known", "jwks.json"]) => (m == M::GET)
            .then_some(Route::Jwks)
            .ok_or(ApiError::MethodNotAllowed("GET")),
        (Function::Validate, [".well-known", "openid-configuration"]) => (m == M::GET)
            .then_some(Route::Discovery)
            .ok_or(ApiError::MethodNotAllowed("GET")),
        (Function::Validate, ["validate", "leases", _]) => match *m {
            M::PUT => Ok(Route::Renew(id())),
            M::DELETE => Ok(Route::Release(id())),
            _ => Err(ApiError::MethodNotAllowed("PUT, DELETE")),
        },
        _ => Err(ApiError::NotFound),
    }
}
