//! `POST /validate/revoke`: the holder of a credential revokes it, with no
//! owner (RFC 7009's shape). A token string deletes its token, as `DELETE
//! /tokens/{id}` does, in one write conditioned on its secret; the previous
//! secret of a roll, still in its grace, ends only that grace. A capability
//! is refused from then on, until its `exp`, and its parent is untouched
//! (see `credentials::revocation`). The answer is 200 `{}` for every well-formed
//! request, whatever it named, so it tells a guesser nothing.

use std::net::IpAddr;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::{App, Result};
use crate::audit::{Actor, Target};
use crate::credentials::capability::{self, Claims};
use crate::credentials::{Keyring, TokenString};
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::store::{Deletion, StoreError};
use crate::token::TokenRecord;
use crate::validate::{capability_secret_state, input::bearer, token_secret_state};

/// What a revocation ended, with the token as it was, for its audit
/// record and the log (never for the answer).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Revoked {
    /// The token, deleted.
    Token(Box<TokenRecord>),
    /// Only the grace of its previous secret.
    Grace(Box<TokenRecord>),
    /// One capability of the token (its `jti` and `exp`).
    Capability(Box<TokenRecord>, String, i64),
    /// Nothing of ours, or nothing left to end.
    Nothing,
}

impl Revoked {
    /// The audit record's action and changes: the deleted token's fields
    /// to `null`, or what ended.
    pub(super) fn changes(
        &self,
        now: OffsetDateTime,
    ) -> Option<(&'static str, &TokenRecord, Map<String, Value>)> {
        let one = |field: &str, from: Value, to: Value| {
            Map::from_iter([(field.to_owned(), json!({"from": from, "to": to}))])
        };
        match self {
            Revoked::Token(rec) => Some((
                "token.revoked",
                rec,
                crate::audit::changes(Some(&rec.to_json(now)), None),
            )),
            Revoked::Grace(rec) => Some((
                "token.revoked",
                rec,
                one("previousSecret", json!("in grace"), json!("revoked")),
            )),
            Revoked::Capability(rec, jti, exp) => Some((
                "capability.revoked",
                rec,
                one(
                    "capability",
                    Value::Null,
                    json!({"jti": jti, "exp": exp, "state": "revoked"}),
                ),
            )),
            Revoked::Nothing => None,
        }
    }
}

/// Rounds of read and write before 503: each lost round means the token
/// changed in between.
const MAX_ROUNDS: usize = 16;

impl App {
    pub(super) async fn revoke(&self, req: &ApiRequest) -> Result<ApiResponse> {
        let text = revoke_input(req)?;
        let keys = self.keyring_for(&text).await;
        let now = crate::dates::now();
        let revoked = if capability::looks_like_capability(&text) {
            match capability::signed_claims(&keys, &self.config.issuer, &text) {
                Some(cap) if cap.expires > now.unix_timestamp() => {
                    self.revoke_capability(&cap, now).await?
                }
                _ => Revoked::Nothing,
            }
        } else {
            match keys.parse_token(&text) {
                Some(token) => self.revoke_token(&keys, &token, now).await?,
                None => Revoked::Nothing,
            }
        };
        if let Some((action, rec, changes)) = revoked.changes(now) {
            log_revocation(action, &rec.id, req.source_ip);
            let actor = Actor::service(&rec.owner, "holder", req);
            self.record_after(action, rec, actor, changes).await;
        }
        Ok(ApiResponse::document(
            200,
            req.format(),
            "revocation",
            &json!({}),
        ))
    }

    /// Records a change made without its owner's name: a revocation by
    /// the holder or a scanner's report. The request names no owner, so
    /// the record is written just after the change, once the change has
    /// told whose token it was; should that write fail, the change stands
    /// (it was asked for and made) and one `ERROR` line names the token.
    pub(super) async fn record_after(
        &self,
        action: &'static str,
        rec: &TokenRecord,
        actor: Actor,
        changes: Map<String, Value>,
    ) {
        let mut audit = self.audit_record(action, Target::Token(rec.id.clone()), actor, None, None);
        audit.changes = changes;
        if let Err(e) = self.store.record(&audit).await {
            tracing::error!(action, token_id = %rec.id, error = %e, "change not recorded in the audit trail");
        }
    }

    pub(super) async fn revoke_token(
        &self,
        keys: &Keyring,
        token: &TokenString,
        now: OffsetDateTime,
    ) -> std::result::Result<Revoked, StoreError> {
        let Some(hash) = keys.stored_hash(token) else {
            return Ok(Revoked::Nothing);
        };
        let mut found = match self
            .store
            .delete_by_secret(token.id.as_str(), &hash)
            .await?
        {
            Deletion::Deleted(rec) => return Ok(Revoked::Token(rec)),
            Deletion::Kept(found) => found,
        };
        for _ in 0..MAX_ROUNDS {
            let Some(rec) = found.take() else {
                return Ok(Revoked::Nothing);
            };
            // Only the previous secret, still in its grace, is left to end.
            if !matches!(token_secret_state(keys, token, &rec, now), Some(Some(_))) {
                return Ok(Revoked::Nothing);
            }
            if self.store.end_grace(&rec, now).await? {
                return Ok(Revoked::Grace(rec));
            }
            found = self.store.get(token.id.as_str()).await?.map(Box::new);
        }
        Err(StoreError::Unavailable(
            "the token kept changing during revocation".into(),
        ))
    }

    async fn revoke_capability(
        &self,
        cap: &Claims,
        now: OffsetDateTime,
    ) -> std::result::Result<Revoked, StoreError> {
        for _ in 0..MAX_ROUNDS {
            let Some(rec) = self.store.get(cap.parent.as_str()).await? else {
                return Ok(Revoked::Nothing);
            };
            // Already ended (its secret rolled away, or revoked before).
            if capability_secret_state(cap, &rec, now).is_none() {
                return Ok(Revoked::Nothing);
            }
            let revoked = rec.revoked_capabilities.with(cap, now.unix_timestamp());
            if self.store.revoke_capabilities(&rec, &revoked, now).await? {
                return Ok(Revoked::Capability(
                    Box::new(rec),
                    cap.id.clone(),
                    cap.expires,
                ));
            }
        }
        Err(StoreError::Unavailable(
            "the token kept changing during revocation".into(),
        ))
    }
}

/// The credential to revoke: `token` in a JSON or form body (RFC 7009's
/// name; its `token_type_hint` is accepted and not needed), or Bearer.
fn revoke_input(req: &ApiRequest) -> Result<String> {
    let mut fields: Vec<(String, Value)> = Vec::new();
    match req.content_type().as_deref() {
        _ if req.body.is_empty() => {}
        Some("application/x-www-form-urlencoded") => {
            if std::str::from_utf8(&req.body).is_err() {
                return Err(ApiError::field("body", "must be UTF-8"));
            }
            fields = form_urlencoded::parse(&req.body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
        }
        Some("application/json") | None => {
            let obj: Map<String, Value> = crate::http::json_object(&req.body)?;
            fields = obj.into_iter().collect();
        }
        Some(_) => {
            return Err(ApiError::UnsupportedMediaType(
                "application/json or application/x-www-form-urlencoded",
            ))
        }
    }
    let mut errors = crate::token::FieldErrors::default();
    let mut token = None;
    for (k, v) in fields {
        match (k.as_str(), v) {
            ("token", Value::String(s)) => token = Some(s),
            ("token_type_hint", Value::String(_) | Value::Null) | ("token", Value::Null) => {}
            ("token" | "token_type_hint", _) => errors.add(&k, "must be a string"),
            _ => errors.add(&k, "is not a field of a revocation request"),
        }
    }
    errors.into_result(()).map_err(ApiError::from)?;
    match token.or_else(|| bearer(req).map(str::to_owned)) {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(ApiError::field(
            "token",
            "a token is required, in the body or as Authorization: Bearer",
        )),
    }
}

/// The request log's line of a revocation: what ended, the token's id
/// (never its secret) and where the request came from.
fn log_revocation(action: &str, id: &str, source: Option<IpAddr>) {
    let source = source.map(|ip| ip.to_string());
    tracing::info!(
        action,
        actor = "holder",
        token_id = id,
        source = source.as_deref().unwrap_or_default(),
        "revoked by its holder"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{memory_app, Function};

    fn req(body: &str, ctype: &str) -> ApiRequest {
        let mut r = ApiRequest {
            method: http::Method::POST,
            path: "/validate/revoke".into(),
            body: body.as_bytes().to_vec(),
            ..Default::default()
        };
        r.headers.insert("content-type", ctype.parse().unwrap());
        r
    }

    #[tokio::test]
    async fn bad_requests_name_the_field_and_any_credential_is_200() {
        let app = memory_app();
        for (body, ctype, field) in [
            ("{}", "application/json", "token"),
            (r#"{"token": 5}"#, "application/json", "token"),
            (
                r#"{"token": "x", "scope": "a"}"#,
                "application/json",
                "scope",
            ),
            ("token=", "application/x-www-form-urlencoded", "token"),
        ] {
            let (_, r) = app.handle(Function::Validate, &req(body, ctype)).await;
            assert_eq!(r.status, 400, "{body}");
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["errors"][0]["field"], field, "{body}");
        }
        for (body, ctype) in [
            (r#"{"token": "garbage"}"#, "application/json"),
            (
                r#"{"token": "tgl_x", "token_type_hint": "access_token"}"#,
                "application/json",
            ),
            ("token=eyJ.eyJ.sig", "application/x-www-form-urlencoded"),
        ] {
            let (_, r) = app.handle(Function::Validate, &req(body, ctype)).await;
            assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]), "{body}");
        }
    }
}
