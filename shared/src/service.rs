//! The six functions' behaviour over any `Store`: routing, owners, and the
//! flow of each operation. Handlers in `functions/*` only adapt events.

use std::sync::Arc;

use serde_json::{json, Value};
use time::Duration;

use crate::crypto::{Keys, START_LEN};
use crate::http::{json_object, ApiError, ApiRequest, ApiResponse, MAX_BODY};
use crate::model::TokenRecord;
use crate::rules::{self, NewToken};
use crate::store::{Admission, AdmitOutcome, CreateOutcome, IdempotencyRecord, Store, StoreError};
use crate::validate::{self, Reason};
use crate::{codec, config::Config, dates};

/// The Lambda function a binary is; each serves only its own routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    List,
    Create,
    Detail,
    Patch,
    Delete,
    Validate,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::List => "list",
            Function::Create => "create",
            Function::Detail => "detail",
            Function::Patch => "patch",
            Function::Delete => "delete",
            Function::Validate => "validate",
        }
    }
}

/// A matched route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    List,
    Create,
    Detail(String),
    Patch(String),
    Delete(String),
    Validate,
    Renew(String),
    Release(String),
}

impl Route {
    pub fn template(&self) -> &'static str {
        match self {
            Route::List => "GET /tokens",
            Route::Create => "POST /tokens",
            Route::Detail(_) => "GET /tokens/{id}",
            Route::Patch(_) => "PATCH /tokens/{id}",
            Route::Delete(_) => "DELETE /tokens/{id}",
            Route::Validate => "POST /validate",
            Route::Renew(_) => "PUT /validate/leases/{leaseId}",
            Route::Release(_) => "DELETE /validate/leases/{leaseId}",
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
    match segs.iter().position(|s| *s == "tokens" || *s == "validate") {
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
        (Function::Delete, ["tokens", _]) => (m == M::DELETE)
            .then(|| Route::Delete(id()))
            .ok_or(ApiError::MethodNotAllowed("DELETE")),
        (Function::Validate, ["validate"]) => (m == M::POST)
            .then_some(Route::Validate)
            .ok_or(ApiError::MethodNotAllowed("POST")),
        (Function::Validate, ["validate", "leases", _]) => match *m {
            M::PUT => Ok(Route::Renew(id())),
            M::DELETE => Ok(Route::Release(id())),
            _ => Err(ApiError::MethodNotAllowed("PUT, DELETE")),
        },
        _ => Err(ApiError::NotFound),
    }
}

/// A token id as minted: 26 base32 characters. Anything else is unknown.
fn valid_id(id: &str) -> bool {
    codec::decode::<16>(id).is_some()
}

pub struct App {
    pub config: Config,
    pub keys: Keys,
    pub store: Arc<dyn Store>,
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

type Result<T> = std::result::Result<T, ApiError>;

impl App {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Self {
        let keys = Keys::new(&config.hash_key);
        App {
            config,
            keys,
            store,
        }
    }

    /// Serves one request for `function`; never panics on input.
    pub async fn handle(
        &self,
        function: Function,
        req: &ApiRequest,
    ) -> (Option<Route>, ApiResponse) {
        let route = match route(function, req) {
            Ok(r) => r,
            Err(e) => return (None, e.into_response()),
        };
        let result = if req.body.len() > MAX_BODY {
            Err(ApiError::PayloadTooLarge)
        } else {
            self.dispatch(&route, req).await
        };
        (Some(route), result.unwrap_or_else(ApiError::into_response))
    }

    async fn dispatch(&self, route: &Route, req: &ApiRequest) -> Result<ApiResponse> {
        match route {
            Route::Validate => return self.validate(req).await,
            Route::Renew(lease) => return self.renew(req, lease).await,
            Route::Release(lease) => return self.release(req, lease).await,
            _ => {}
        }
        let owner = self.owner(req)?;
        match route {
            Route::List => self.list(req, &owner).await,
            Route::Create => self.create(req, &owner).await,
            Route::Detail(id) => self.detail(req, &owner, id).await,
            Route::Patch(id) => self.patch(req, &owner, id).await,
            Route::Delete(id) => self.delete(&owner, id).await,
            Route::Validate | Route::Renew(_) | Route::Release(_) => Err(ApiError::NotFound),
        }
    }

    /// The owner of a management request, from the gateway's authorizer;
    /// `X-Owner` only when `TOLLGATE_DEV_AUTH=1`.
    pub fn owner(&self, req: &ApiRequest) -> Result<String> {
        if let Some(auth) = req.header("authorization") {
            if auth.contains(crate::crypto::TOKEN_PREFIX) {
                return Err(ApiError::TokenOnManagementRoute);
            }
        }
        let id = &req.identity;
        let dev = if self.config.dev_auth {
            req.header("x-owner")
        } else {
            None
        };
        let owner = id
            .jwt_sub
            .as_deref()
            .or(id.authorizer_owner.as_deref())
            .or(id.iam_caller.as_deref())
            .or(dev)
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        if owner.len() > 256 || owner.chars().any(char::is_control) {
            return Err(ApiError::Unauthorized);
        }
        Ok(owner.to_owned())
    }

    fn token_response(
        &self,
        status: u16,
        req: &ApiRequest,
        rec: &TokenRecord,
        extra: Option<(&str, Value)>,
    ) -> ApiResponse {
        let mut doc = rec.to_json(dates::now());
        if let Some((k, v)) = extra {
            doc[k] = v;
        }
        ApiResponse::document(status, req.format(), "token", &doc).with_header("etag", rec.etag())
    }

    async fn owned(&self, owner: &str, id: &str) -> Result<TokenRecord> {
        if !valid_id(id) {
            return Err(ApiError::NotFound);
        }
        match self.store.get(id).await? {
            // Another owner's token answers exactly like an unknown one.
            Some(t) if t.owner == owner => Ok(t),
            _ => Err(ApiError::NotFound),
        }
    }

    fn require_json(req: &ApiRequest, merge_patch: bool) -> Result<()> {
        match req.content_type().as_deref() {
            None | Some("application/json") => Ok(()),
            Some("application/merge-patch+json") if merge_patch => Ok(()),
            _ if merge_patch => Err(ApiError::UnsupportedMediaType(
                "application/merge-patch+json or application/json",
            )),
            _ => Err(ApiError::UnsupportedMediaType("application/json")),
        }
    }

    async fn create(&self, req: &ApiRequest, owner: &str) -> Result<ApiResponse> {
        Self::require_json(req, false)?;
        let idem_key = match req.header("idempotency-key") {
            None if req.headers.contains_key("idempotency-key") => {
                return Err(ApiError::field("Idempotency-Key", "must be visible ASCII"))
            }
            None => None,
            Some(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
                Some(k)
            }
            Some(_) => {
                return Err(ApiError::field(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                ))
            }
        };
        let body = json_object(&req.body)?;
        let now = dates::now();
        let idem = idem_key.map(|k| {
            (
                self.keys.idempotency_key(owner, k),
                self.keys.fingerprint(&req.body),
            )
        });
        if let Some((key, fp)) = &idem {
            if let Some(prev) = self.store.idempotency(key, now.unix_timestamp()).await? {
                return self.replay(req, owner, &prev, fp).await;
            }
        }
        let minted = self.keys.mint();
        let rec = rules::create(NewToken {
            id: minted.id.clone(),
            owner: owner.to_owned(),
            start: minted.token[..START_LEN].to_owned(),
            secret_hash: minted.secret_hash,
            requester: req.source_ip,
            now,
            lifetimes: self.config.lifetimes,
            body: &body,
        })?;
        let idem_rec = idem.as_ref().map(|(key, fp)| IdempotencyRecord {
            key: key.clone(),
            token_id: rec.id.clone(),
            fingerprint: fp.clone(),
            snapshot: rec.to_json(now).to_string(),
            expires_at: (now + Duration::hours(24)).unix_timestamp(),
        });
        match self.store.put_new(&rec, idem_rec.as_ref()).await? {
            CreateOutcome::Created => Ok(self
                .token_response(201, req, &rec, Some(("token", json!(minted.token))))
                .with_header("location", format!("/tokens/{}", rec.id))),
            CreateOutcome::Replay(prev) => {
                let fp = idem.map(|(_, fp)| fp).unwrap_or_default();
                self.replay(req, owner, &prev, &fp).await
            }
        }
    }

    /// A repeated create: the first token's object, current if it still
    /// exists, else as first created; never its secret.
    async fn replay(
        &self,
        req: &ApiRequest,
        owner: &str,
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

    async fn detail(&self, req: &ApiRequest, owner: &str, id: &str) -> Result<ApiResponse> {
        let rec = self.owned(owner, id).await?;
        Ok(self.token_response(200, req, &rec, None))
    }

    async fn patch(&self, req: &ApiRequest, owner: &str, id: &str) -> Result<ApiResponse> {
        Self::require_json(req, true)?;
        let body = json_object(&req.body)?;
        let if_match = req.header("if-match").map(str::trim);
        if req.headers.contains_key("if-match") && if_match.is_none() {
            return Err(ApiError::PreconditionFailed);
        }
        // Optimistic concurrency: re-read and re-apply when a concurrent
        // write (a validate spending a use, another patch) moved the item.
        for _ in 0..5 {
            let current = self.owned(owner, id).await?;
            if let Some(tag) = if_match {
                let matches = tag == "*"
                    || tag
                        .split(',')
                        .any(|t| t.trim().trim_start_matches("W/") == current.etag());
                if !matches {
                    return Err(ApiError::PreconditionFailed);
                }
            }
            let new = rules::patch(&current, &body, dates::now(), self.config.lifetimes)?;
            if new == current || self.store.replace(&current, &new).await? {
                return Ok(self.token_response(200, req, &new, None));
            }
        }
        Err(ApiError::Unavailable)
    }

    async fn delete(&self, owner: &str, id: &str) -> Result<ApiResponse> {
        if valid_id(id) && self.store.delete(id, owner).await? {
            Ok(ApiResponse::empty(204))
        } else {
            Err(ApiError::NotFound)
        }
    }

    async fn list(&self, req: &ApiRequest, owner: &str) -> Result<ApiResponse> {
        let mut errs = rules::FieldErrors::default();
        let limit = match req.query_one("limit") {
            None => 50,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    errs.add("limit", "must be an integer from 1 to 100");
                    50
                }
            },
        };
        let after = match req.query_one("cursor") {
            None => None,
            Some(c) => match self.keys.open_cursor(owner, c) {
                Some(p) => Some(p),
                None => {
                    errs.add("cursor", "is not a cursor this API issued to you");
                    None
                }
            },
        };
        let state = req.query_one("state").unwrap_or("all");
        if !matches!(state, "active" | "expired" | "all") {
            errs.add("state", "must be active, expired or all");
        }
        let token_type = req.query_one("type");
        if token_type.is_some_and(|t| !(1..=32).contains(&t.len())) {
            errs.add("type", "must be 1 to 32 characters");
        }
        let mut tags = Vec::new();
        for t in req.query_all("tag") {
            match t.split_once(':') {
                Some((k, v)) if !k.is_empty() => tags.push((k, v)),
                _ => errs.add("tag", "must be key:value"),
            }
        }
        errs.into_result(())?;
        let page = self.store.list(owner, limit, after.as_deref()).await?;
        let now = dates::now();
        let items: Vec<Value> = page
            .items
            .iter()
            .filter(|t| token_type.is_none_or(|ty| t.token_type == ty))
            .filter(|t| {
                tags.iter()
                    .all(|(k, v)| t.tags.get(*k).map(String::as_str) == Some(*v))
            })
            .filter(|t| match state {
                "active" => !t.is_expired(now),
                "expired" => t.is_expired(now),
                _ => true,
            })
            .map(|t| t.to_json(now))
            .collect();
        let mut doc = json!({ "tokens": items });
        if let Some(next) = page.next {
            doc["nextCursor"] = json!(self.keys.sign_cursor(owner, &next));
        }
        Ok(ApiResponse::document(200, req.format(), "tokens", &doc))
    }

    /// Reads the presented token: `Err(reason)` for MALFORMED / NOT_FOUND.
    async fn presented(&self, text: &str) -> Result<std::result::Result<TokenRecord, Reason>> {
        let Some(parsed) = self.keys.parse_token(text) else {
            return Ok(Err(Reason::Malformed));
        };
        match self.store.get(&parsed.id).await? {
            Some(rec) if self.keys.secret_matches(&parsed, &rec.secret_hash) => Ok(Ok(rec)),
            _ => Ok(Err(Reason::NotFound)),
        }
    }

    fn validation(
        req: &ApiRequest,
        status: u16,
        doc: &Value,
        reason: Option<Reason>,
    ) -> ApiResponse {
        let mut r = ApiResponse::document(status, req.format(), "validation", doc);
        r.reason = reason.map(Reason::code);
        r
    }

    async fn validate(&self, req: &ApiRequest) -> Result<ApiResponse> {
        let input = validate::decode_input(req)?;
        let decided = self.decide(req, &input).await?;
        Ok(match decided {
            Ok(doc) => Self::validation(req, 200, &doc, None),
            Err(reason) => Self::validation(req, 200, &validate::refusal(reason), Some(reason)),
        })
    }

    async fn decide(
        &self,
        req: &ApiRequest,
        input: &ValidateInput,
    ) -> Result<std::result::Result<Value, Reason>> {
        let rec = match self
            .presented(input.token.as_deref().unwrap_or_default())
            .await?
        {
            Ok(r) => r,
            Err(reason) => return Ok(Err(reason)),
        };
        let now = dates::now();
        if let Err(reason) = validate::check(&rec, input, req.source_ip, now) {
            return Ok(Err(reason));
        }
        let now_ms = dates::millis(now);
        let touch = rec
            .last_used_at
            .is_none_or(|l| l <= now - Duration::minutes(1))
            .then_some(now);
        let consume = rec.max_uses.is_some();
        let lease_id = (input.acquire && rec.max_concurrent.is_some())
            .then(|| self.keys.new_lease_id(&rec.id));
        let expiry = now_ms + self.config.lease_seconds * 1000;
        if !consume && lease_id.is_none() {
            if let Some(t) = touch {
                self.store
                    .touch(&rec.id, t, now - Duration::minutes(1))
                    .await?;
            }
            return Ok(Ok(validate::acceptance(&rec, None, None)));
        }
        let attempt = codec::encode(&codec::random_bytes::<10>());
        let admission = Admission {
            id: &rec.id,
            attempt_id: &attempt,
            consume_use: consume,
            lease: lease_id.as_deref().map(|l| (l, expiry)),
            touch,
        };
        // Reclaiming lapsed leases frees slots; each round either admits,
        // refuses, or made progress freeing a slot, so a few rounds suffice.
        for _ in 0..6 {
            match self.store.admit(&admission).await? {
                AdmitOutcome::Admitted { remaining } => {
                    // The count the conditional write left, exact under races.
                    return Ok(Ok(validate::acceptance(&rec, remaining, admission.lease)));
                }
                AdmitOutcome::NotFound => return Ok(Err(Reason::NotFound)),
                AdmitOutcome::Exhausted => return Ok(Err(Reason::UsageExhausted)),
                AdmitOutcome::Limit(current) => {
                    if consume && current.remaining_uses.unwrap_or(0) == 0 {
                        return Ok(Err(Reason::UsageExhausted));
                    }
                    let now_ms = dates::millis(dates::now());
                    let lapsed: Vec<(String, i64)> = current
                        .leases
                        .iter()
                        .filter(|(_, &exp)| exp <= now_ms)
                        .map(|(l, &e)| (l.clone(), e))
                        .collect();
                    let cap = current.max_concurrent.map_or(0, |c| c as usize);
                    if lapsed.is_empty() && current.leases.len() >= cap {
                        return Ok(Err(Reason::ConcurrencyLimit));
                    }
                    if !lapsed.is_empty() {
                        self.store.reclaim(&rec.id, &lapsed).await?;
                    }
                }
            }
        }
        Ok(Err(Reason::ConcurrencyLimit))
    }

    /// The token presented with a lease call, or 404.
    async fn lease_owner(
        &self,
        req: &ApiRequest,
        lease: &str,
    ) -> Result<std::result::Result<TokenRecord, Reason>> {
        let input = validate::decode_input(req)?;
        let text = input.token.unwrap_or_default();
        let Some(parsed) = self.keys.parse_token(&text) else {
            return Err(ApiError::NotFound);
        };
        if !self.keys.lease_belongs_to(&parsed.id, lease) {
            return Err(ApiError::NotFound);
        }
        self.presented(&text).await
    }

    async fn renew(&self, req: &ApiRequest, lease: &str) -> Result<ApiResponse> {
        let rec = self
            .lease_owner(req, lease)
            .await?
            .map_err(|_| ApiError::NotFound)?;
        let now = dates::now();
        if rec.is_expired(now) {
            return Err(ApiError::NotFound);
        }
        let now_ms = dates::millis(now);
        let expiry = now_ms + self.config.lease_seconds * 1000;
        if !self.store.renew(&rec.id, lease, now_ms, expiry).await? {
            return Err(ApiError::NotFound);
        }
        let doc =
            json!({"lease": {"id": lease, "expiresAt": dates::format(dates::from_millis(expiry))}});
        Ok(ApiResponse::document(200, req.format(), "validation", &doc))
    }

    async fn release(&self, req: &ApiRequest, lease: &str) -> Result<ApiResponse> {
        match self.lease_owner(req, lease).await? {
            Ok(rec) => {
                self.store.release(&rec.id, lease).await?;
                Ok(ApiResponse::empty(204))
            }
            // The token is gone, and its leases with it.
            Err(Reason::NotFound) => Ok(ApiResponse::empty(204)),
            Err(_) => Err(ApiError::NotFound),
        }
    }
}

use validate::ValidateInput;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn app() -> App {
        let config = Config::from_lookup(|k| match k {
            "TOLLGATE_TABLE" => Some("t".into()),
            "TOLLGATE_HASH_KEY" => Some("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=".into()),
            "TOLLGATE_DEV_AUTH" => Some("1".into()),
            _ => None,
        })
        .unwrap();
        App::new(config, Arc::new(MemoryStore::new()))
    }

    fn req(method: http::Method, path: &str, body: &[u8]) -> ApiRequest {
        let mut r = ApiRequest {
            method,
            path: path.into(),
            body: body.to_vec(),
            ..Default::default()
        };
        r.headers
            .insert("content-type", "application/json".parse().unwrap());
        r.headers.insert("x-owner", "alice".parse().unwrap());
        r
    }

    #[tokio::test]
    async fn invalid_utf8_is_400_naming_body() {
        let app = app();
        for (f, m, p) in [
            (Function::Create, http::Method::POST, "/tokens"),
            (Function::Validate, http::Method::POST, "/validate"),
        ] {
            let (_, r) = app.handle(f, &req(m, p, b"\xff\xfe{}")).await;
            assert_eq!(r.status, 400);
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(v["errors"][0]["field"], "body");
        }
    }

    #[tokio::test]
    async fn routes_404_and_405() {
        let app = app();
        let (_, r) = app
            .handle(Function::Detail, &req(http::Method::GET, "/tokens", b""))
            .await;
        assert_eq!(r.status, 404);
        let (_, r) = app
            .handle(Function::List, &req(http::Method::DELETE, "/tokens", b""))
            .await;
        assert_eq!(r.status, 405);
        assert!(r.headers.iter().any(|(k, v)| *k == "allow" && v == "GET"));
        // A stage prefix is tolerated; the id comes from the last segment.
        let (route, _) = app
            .handle(
                Function::Detail,
                &req(http::Method::GET, "/prod/tokens/abc", b""),
            )
            .await;
        assert_eq!(route, Some(Route::Detail("abc".into())));
    }

    #[tokio::test]
    async fn x_owner_is_ignored_without_dev_auth() {
        let mut app = app();
        app.config.dev_auth = false;
        let (_, r) = app
            .handle(Function::List, &req(http::Method::GET, "/tokens", b""))
            .await;
        assert_eq!(r.status, 401);
        let mut with_jwt = req(http::Method::GET, "/tokens", b"");
        with_jwt.identity.jwt_sub = Some("user-1".into());
        let (_, r) = app.handle(Function::List, &with_jwt).await;
        assert_eq!(r.status, 200);
    }

    #[tokio::test]
    async fn owner_precedence_jwt_then_authorizer_then_iam() {
        let app = app();
        let mut r = req(http::Method::GET, "/tokens", b"");
        r.identity = crate::http::Identity {
            jwt_sub: None,
            authorizer_owner: Some("lambda-owner".into()),
            iam_caller: Some("arn:aws:iam::1:user/x".into()),
        };
        assert_eq!(app.owner(&r).unwrap(), "lambda-owner");
        r.identity.jwt_sub = Some("jwt-sub".into());
        assert_eq!(app.owner(&r).unwrap(), "jwt-sub");
        r.identity.jwt_sub = None;
        r.identity.authorizer_owner = None;
        assert_eq!(app.owner(&r).unwrap(), "arn:aws:iam::1:user/x");
    }
}
