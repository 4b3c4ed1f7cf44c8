//! `POST /validate/capabilities` mints a capability of the presented
//! token; `GET /.well-known/jwks.json` publishes the keys that verify one
//! (see `credentials::capability`).

use serde_json::json;

use super::{App, Result};
use crate::credentials::capability::{self, MintRequest};
use crate::dates;
use crate::http::{json_object, ApiError, ApiRequest, ApiResponse, Format};
use crate::validate::{self, checks, input, ValidateInput};

impl App {
    /// Minting is a validate of the parent (every check; it spends its
    /// `cost` in uses, one by default, and a count of each rate limit), then the capability narrowed from
    /// it. The parent's checks and the narrowing run on the token as read
    /// before anything is spent; the narrowing again on the version the
    /// validate admitted.
    pub(super) async fn mint_capability(&self, req: &ApiRequest) -> Result<ApiResponse> {
        let body = match req.content_type().as_deref() {
            // A Bearer token alone asks for the defaults.
            None if req.body.is_empty() => serde_json::Map::new(),
            Some("application/json") | None => json_object(&req.body)?,
            Some(_) => return Err(ApiError::UnsupportedMediaType("application/json")),
        };
        let mint = MintRequest::parse(&body)?;
        let token = match body.get("token") {
            None | Some(serde_json::Value::Null) => input::bearer(req).map(str::to_owned),
            Some(serde_json::Value::String(t)) => Some(t.clone()),
            Some(_) => return Err(ApiError::field("token", "must be a string")),
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(ApiError::field(
                "token",
                "a token is required, in the body or as Authorization: Bearer",
            ));
        };
        if capability::looks_like_capability(&token) {
            return Err(ApiError::field(
                "token",
                "a capability cannot mint a capability: present its token",
            ));
        }
        let input = ValidateInput {
            token: Some(token),
            cost: mint.cost,
            relay: req.header(input::RELAY_HEADER).map(str::to_owned),
            ..Default::default()
        };
        let keyring = self.keyring_for_input(&input).await;
        let issuer = &self.config.issuer;
        // The parent's own checks first, on the token as read (a refusal
        // answers as validate does), then the narrowing (400 naming each
        // field): both before anything is spent.
        let now = dates::now();
        let store = self.store.as_ref();
        let read = validate::presented(&keyring, issuer, store, &input, req.source_ip, now);
        let parent = match read.await? {
            Ok(p) => p,
            Err(reason) => return Ok(super::validate::refused(req, reason)),
        };
        if let Err(reason) = checks::check(&parent.rec, &input, parent.address, now, None) {
            return Ok(super::validate::refused(req, reason));
        }
        // The capability it would be, signed, so one too long is refused
        // before a use is spent.
        let draft = mint.narrow(&parent.rec, parent.secret_expires_at, now)?;
        fits(&capability::sign_as(mint.alg, &keyring, issuer, &draft))?;
        let accepted = match self.decide(&keyring, &input, req.source_ip).await? {
            Ok(accepted) => accepted,
            Err(reason) => return Ok(super::validate::refused(req, reason)),
        };
        // Again on the version admitted (a patch may have landed between).
        let claims = mint.narrow(&accepted.rec, accepted.secret_expires_at, dates::now())?;
        let capability = capability::sign_as(mint.alg, &keyring, issuer, &claims);
        fits(&capability)?;
        let mut doc = json!({
            "capability": capability,
            "alg": mint.alg.name(),
            "expiresAt": dates::format(claims.expires_at()),
            "expire": claims.expires,
            "scopes": claims.scopes,
            "resource": claims.resource,
            "write": claims.write,
        });
        if let Some(net) = claims.address {
            doc["address"] = json!(crate::token::address_strings(&[net]).pop());
        }
        if !claims.audiences.is_empty() {
            doc["audiences"] = json!(claims.audiences);
        }
        Ok(ApiResponse::document(201, req.format(), "capability", &doc))
    }

    /// Where the capability keys are, for OpenID-style verifiers (API
    /// Gateway's JWT authorizers): the issuer is `TOLLGATE_ISSUER`.
    pub(super) async fn discovery(&self) -> Result<ApiResponse> {
        let doc = capability::discovery(&self.config.issuer);
        Ok(ApiResponse::document(200, Format::Json, "discovery", &doc)
            .with_header("cache-control", "public, max-age=300"))
    }

    /// The capability public keys, one per key of the server keyring.
    pub(super) async fn jwks(&self) -> Result<ApiResponse> {
        let doc = capability::jwks(&self.keyring());
        Ok(ApiResponse::document(200, Format::Json, "jwks", &doc)
            .with_header("cache-control", "public, max-age=300"))
    }
}

/// A capability longer than a presented one may be is refused (400 on
/// `scopes`, what makes one long).
fn fits(capability: &str) -> Result<()> {
    if capability.len() > capability::MAX_CAPABILITY_LEN {
        return Err(ApiError::field(
            "scopes",
            "make the capability longer than 8192 characters: ask for fewer",
        ));
    }
    Ok(())
}
