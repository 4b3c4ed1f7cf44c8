//! The management operations, one owner's tokens: list, create (with
//! `Idempotency-Key`), detail, patch (merge patch, `If-Match`) and delete.

use serde_json::{json, Value};
use time::Duration;

use super::{App, Result};
use crate::audit::{Actor, Target};
use crate::credentials::request_fingerprint;
use crate::dates;
use crate::http::{canonical_json, json_object, ApiError, ApiRequest, ApiResponse};
use crate::store::{CreateOutcome, IdempotencyRecord, Replaced};
use crate::token::query::ListQuery;
use crate::token::rules::{self, NewToken};
use crate::token::{IdempotencyKey, Owner, TokenId, TokenRecord};

/// How long an `Idempotency-Key` is remembered.
const IDEMPOTENCY_WINDOW: Duration = Duration::hours(24);

impl App {
    pub(super) async fn list(&self, req: &ApiRequest, owner: &Owner) -> Result<ApiResponse> {
        let keyring = self.keyring_for("").await;
        let query = ListQuery::parse(&req.query, &keyring, owner)?;
        let page = self
            .store
            .list(owner.as_str(), query.limit, query.after.as_deref())
            .await?;
        let now = dates::now();
        let mut items = Vec::with_capacity(page.items.len());
        for t in page.items.into_iter().filter(|t| query.admits(t, now)) {
            items.push(t.to_json(now));
        }
        let mut doc = json!({ "tokens": items });
        if let Some(next) = page.next {
            doc["nextCursor"] = json!(keyring.sign_cursor(owner, &next));
        }
        Ok(ApiResponse::document(200, req.format(), "tokens", &doc))
    }

    pub(super) async fn create(&self, req: &ApiRequest, owner: &Owner) -> Result<ApiResponse> {
        require_json(req, false)?;
        let idem_key = match req.headers.get("idempotency-key") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(IdempotencyKey::parse)
                    .ok_or_else(|| ApiError::field("Idempotency-Key", IdempotencyKey::MESSAGE))?,
            ),
        };
        let body = json_object(&req.body)?;
        let now = dates::now();
        let keyring = self.keyring_for("").await;
        let fingerprint =
            request_fingerprint(canonical_json(&Value::Object(body.clone())).as_bytes());
        let idem = idem_key.map(|k| (keyring.idempotency_keys(owner, &k), fingerprint));
        if let Some((keys, fp)) = &idem {
            // A record made before a key rotation sits under an older key.
            for key in keys {
                if let Some(prev) = self.store.idempotency(key, now.unix_timestamp()).await? {
                    return self.replay(req, owner, &prev, fp).await;
                }
            }
        }
        let minted = keyring.mint();
        let rec = rules::create(NewToken {
            id: minted.id.to_string(),
            owner: owner.as_str().to_owned(),
            start: minted.start(),
            secret_hash: minted.secret_hash.clone(),
            requester: req.source_ip,
            now,
            lifetimes: self.config.lifetimes,
            body: &body,
        })?;
        let idem_rec = idem.as_ref().map(|(keys, fp)| IdempotencyRecord {
            key: keys.first().cloned().unwrap_or_default(),
            token_id: rec.id.clone(),
            fingerprint: fp.clone(),
            snapshot: rec.to_json(now).to_string(),
            expires_at: (now + IDEMPOTENCY_WINDOW).unix_timestamp(),
        });
        let audit = self.audit_record(
            "token.created",
            Target::Token(rec.id.clone()),
            Actor::of(req, owner.as_str()),
            None,
            Some(&rec.to_json(now)),
        );
        match self.store.put_new(&rec, idem_rec.as_ref(), &audit).await? {
            CreateOutcome::Created => Ok(self
                .token_response(201, req, &rec, Some(("token", json!(minted.token))))
                .with_header("location", format!("/tokens/{}", rec.id))),
            CreateOutcome::Replay(prev) => {
                let fp = idem.map(|(_, fp)| fp).unwrap_or_default();
                self.replay(req, owner, &prev, &fp).await
            }
            CreateOutcome::NoSuchIdentity => Err(no_such_identity()),
        }
    }

    /// A repeated create: the first token's object, current if it still
    /// exists, else as first created; never its secret.
    async fn replay(
        &self,
        req: &ApiRequest,
        owner: &Owner,
        prev: &IdempotencyRecord,
        fingerprint: &str,
    ) -> Result<ApiResponse> {
        if prev.fingerprint != fingerprint {
            return Err(ApiError::IdempotencyMismatch);
        }
        if let Ok(rec) = self.owned(owner, &prev.token_id).await {
            return Ok(self
                .token_response(200, req, &rec, None)
                .with_header("location", format!("/tokens/{}", rec.id)));
        }
        let doc: Value = serde_json::from_str(&prev.snapshot).map_err(|_| ApiError::Internal)?;
        Ok(ApiResponse::document(200, req.format(), "token", &doc).with_header("etag", "\"1\""))
    }

    pub(super) async fn detail(
        &self,
        req: &ApiRequest,
        owner: &Owner,
        id: &str,
    ) -> Result<ApiResponse> {
        let rec = self.owned(owner, id).await?;
        Ok(self.token_response(200, req, &rec, None))
    }

    pub(super) async fn patch(
        &self,
        req: &ApiRequest,
        owner: &Owner,
        id: &str,
    ) -> Result<ApiResponse> {
        require_json(req, true)?;
        let body = json_object(&req.body)?;
        // Optimistic concurrency: re-read and re-apply when a concurrent
        // write (a validate spending a use, another patch) moved the item.
        for _ in 0..5 {
            let current = self.owned(owner, id).await?;
            check_if_match(req, &current.etag())?;
            let new = rules::patch(&current, &body, dates::now(), self.config.lifetimes)?;
            if new == current {
                return Ok(self.token_response(200, req, &new, None));
            }
            let now = dates::now();
            let audit = self.audit_record(
                "token.updated",
                Target::Token(current.id.clone()),
                Actor::of(req, owner.as_str()),
                Some(&current.to_json(now)),
                Some(&new.to_json(now)),
            );
            match self.store.replace(&current, &new, &audit).await? {
                Replaced::Done => return Ok(self.token_response(200, req, &new, None)),
                Replaced::NoSuchIdentity => return Err(no_such_identity()),
                Replaced::Moved => {}
            }
        }
        Err(ApiError::Unavailable)
    }

    /// `POST /tokens/{id}/roll`: a new secret for the same token under the
    /// current key, shown once; the previous secret keeps validating until
    /// `min(now + graceSeconds, endDate)`, one previous secret at most.
    pub(super) async fn roll(
        &self,
        req: &ApiRequest,
        owner: &Owner,
        id: &str,
    ) -> Result<ApiResponse> {
        require_json(req, false)?;
        let grace = if req.body.is_empty() {
            0
        } else {
            rules::grace_seconds(&json_object(&req.body)?)?
        };
        let keyring = self.keyring_for("").await;
        for _ in 0..5 {
            let current = self.owned(owner, id).await?;
            check_if_match(req, &current.etag())?;
            let id = TokenId::parse(&current.id).ok_or(ApiError::NotFound)?;
            let minted = keyring.mint_for(id);
            let rolled = rules::roll(&current, &minted, grace, dates::now());
            let now = dates::now();
            let audit = self.audit_record(
                "token.rolled",
                Target::Token(current.id.clone()),
                Actor::of(req, owner.as_str()),
                Some(&current.to_json(now)),
                Some(&rolled.to_json(now)),
            );
            if self.store.roll(&current, &rolled, &audit).await? {
                return Ok(self.token_response(
                    200,
                    req,
                    &rolled,
                    Some(("token", json!(minted.token))),
                ));
            }
        }
        Err(ApiError::Unavailable)
    }

    /// Deletes the token as read, with its record: a token changed in
    /// between is read again, one gone is 404.
    pub(super) async fn delete(
        &self,
        req: &ApiRequest,
        owner: &Owner,
        id: &str,
    ) -> Result<ApiResponse> {
        for _ in 0..5 {
            let current = self.owned(owner, id).await?;
            let audit = self.audit_record(
                "token.deleted",
                Target::Token(current.id.clone()),
                Actor::of(req, owner.as_str()),
                Some(&current.to_json(dates::now())),
                None,
            );
            if self.store.delete(&current, &audit).await? {
                return Ok(ApiResponse::empty(204));
            }
        }
        Err(ApiError::Unavailable)
    }

    /// The owner's token `id`: another owner's answers exactly like an
    /// unknown one, and an id that is not one is unknown without a read.
    async fn owned(&self, owner: &Owner, id: &str) -> Result<TokenRecord> {
        let id = TokenId::parse(id).ok_or(ApiError::NotFound)?;
        match self.store.get(id.as_str()).await? {
            Some(t) if t.owner == owner.as_str() => Ok(t),
            _ => Err(ApiError::NotFound),
        }
    }

    fn token_response(
        &self,
        status: u16,
        req: &ApiRequest,
        rec: &TokenRecord,
        extra: Option<(&str, Value)>,
    ) -> ApiResponse {
        let mut doc = rec.to_json(dates::now());
        let carries_secret = extra.as_ref().is_some_and(|(k, _)| *k == "token");
        if let Some((k, v)) = extra {
            doc[k] = v;
        }
        let resp = ApiResponse::document(status, req.format(), "token", &doc)
            .with_header("etag", rec.etag());
        // A secret shown once is kept by no cache along the way.
        match carries_secret {
            true => resp.with_header("cache-control", "no-store"),
            false => resp,
        }
    }
}

/// The 400 for an `identityId` that names none of the owner's identities.
fn no_such_identity() -> ApiError {
    ApiError::field("identityId", "is not one of your identities")
}

/// `If-Match`: 412 unless it names the current ETag (or `*`).
pub(super) fn check_if_match(req: &ApiRequest, etag: &str) -> Result<()> {
    if !req.headers.contains_key("if-match") {
        return Ok(());
    }
    let tag = req.header("if-match").map(str::trim).unwrap_or_default();
    let matches = tag == "*"
        || tag
            .split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag);
    if matches {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed)
    }
}

pub(super) fn require_json(req: &ApiRequest, merge_patch: bool) -> Result<()> {
    match req.content_type().as_deref() {
        None | Some("application/json") => Ok(()),
        Some("application/merge-patch+json") if merge_patch => Ok(()),
        _ if merge_patch => Err(ApiError::UnsupportedMediaType(
            "application/merge-patch+json or application/json",
        )),
        _ => Err(ApiError::UnsupportedMediaType("application/json")),
    }
}
