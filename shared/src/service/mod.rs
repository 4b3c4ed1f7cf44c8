//! The functions' behaviour over any `Store`. A request is routed
//! (`routes`), its owner established for management routes (`owner`), and
//! served by one operation family: `tokens` (list, create, detail, patch,
//! roll, delete), `identities` (the same for identities), `validate`, `leases` (renew, release), `capabilities`
//! (mint, the JWKS), `revoke` (a holder's revocation), `leaks` (a secret
//! scanner's report), and `authorize` (the Lambda authorizer's decision).
//! Handlers in
//! `functions/*` only adapt events (see `lambda`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::{Config, KeyringSource};
use crate::credentials::Keyring;
use crate::http::{ApiError, ApiRequest, ApiResponse, MAX_BODY};
use crate::store::Store;
use crate::validate::Snapshots;

mod audit;
pub mod authorize;
mod capabilities;
mod identities;
mod leaks;
mod leases;
pub mod owner;
mod revoke;
pub mod routes;
mod tokens;
mod validate;

pub use routes::{route, Route};

/// The Lambda function a binary is; each serves only its own routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    List,
    Create,
    Detail,
    Patch,
    Delete,
    Validate,
    /// The Lambda authorizer: no routes; see `authorize`.
    Authorize,
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
            Function::Authorize => "authorize",
        }
    }
}

pub struct App {
    pub config: Config,
    keyring: RwLock<Arc<Keyring>>,
    refresh: Option<Refresh>,
    pub store: Arc<dyn Store>,
    /// Tokens this instance last admitted: guesses that let a validate go
    /// straight to its one write (see `validate::snapshots`).
    snapshots: Snapshots,
    /// GitHub's secret-scanning keys, when this function takes its reports.
    leak_keys: Option<crate::leaks::github::Keys>,
}

/// Re-reading the keyring, so a rotation reaches warm functions: at once
/// (at most once per interval) when a token names a key id the ring does
/// not know, and in any case once the ring is older than `MAX_AGE_ROUNDS`
/// intervals (so a removed key stops being accepted).
struct Refresh {
    source: Arc<dyn KeyringSource>,
    every_ms: i64,
    /// When the ring was last read, unix ms.
    last_ms: AtomicI64,
    reading: tokio::sync::Mutex<()>,
}

/// A ring older than this many refresh intervals is read again (5 minutes
/// with the default interval of 60 seconds).
const MAX_AGE_ROUNDS: i64 = 5;

type Result<T> = std::result::Result<T, ApiError>;

impl App {
    /// The audit record of `action` on `target` by `actor` now, its changes
    /// from the public objects before and after it.
    pub(crate) fn audit_record(
        &self,
        action: &'static str,
        target: crate::audit::Target,
        actor: crate::audit::Actor,
        before: Option<&serde_json::Value>,
        after: Option<&serde_json::Value>,
    ) -> crate::audit::AuditRecord {
        crate::audit::AuditRecord::new(
            action,
            target,
            actor,
            before,
            after,
            // Full precision: the trail is ordered by it.
            time::OffsetDateTime::now_utc(),
            self.config.audit_retention_days,
        )
    }

    pub fn new(config: Config, keyring: Keyring, store: Arc<dyn Store>) -> Self {
        App {
            config,
            keyring: RwLock::new(Arc::new(keyring)),
            refresh: None,
            store,
            snapshots: Snapshots::new(),
            leak_keys: None,
        }
    }

    /// Lets the app take GitHub's secret-scanning reports, checked against
    /// the keys `source` publishes.
    pub fn taking_leak_reports(mut self, source: Arc<dyn crate::leaks::KeySource>) -> Self {
        self.leak_keys = Some(crate::leaks::github::Keys::new(source));
        self
    }

    /// Lets the app re-read its keyring from `source` (see [`Self::keyring_for`]).
    pub fn refreshing_from(mut self, source: Arc<dyn KeyringSource>) -> Self {
        self.refresh = Some(Refresh {
            source,
            every_ms: self.config.keyring_refresh_seconds * 1000,
            last_ms: AtomicI64::new(crate::dates::millis(crate::dates::now())),
            reading: tokio::sync::Mutex::new(()),
        });
        self
    }

    /// The keyring for a validate or lease request: knowing the key ids of
    /// the token and of the relay credential presented, if it can.
    pub(super) async fn keyring_for_input(
        &self,
        input: &crate::validate::ValidateInput,
    ) -> Arc<Keyring> {
        let ring = self
            .keyring_for(input.token.as_deref().unwrap_or_default())
            .await;
        match input.relay.as_deref() {
            Some(relay) => self.keyring_for(relay).await,
            None => ring,
        }
    }

    /// The keyring as it is now.
    pub fn keyring(&self) -> Arc<Keyring> {
        match self.keyring.read() {
            Ok(ring) => ring.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The keyring, re-read first when `token` names a key id it does not
    /// know (at most once per refresh interval) or when it is older than
    /// `MAX_AGE_ROUNDS` intervals. A failed read keeps the ring it has (an
    /// unknown key then answers `MALFORMED`).
    pub async fn keyring_for(&self, token: &str) -> Arc<Keyring> {
        let ring = self.keyring();
        let Some(refresh) = &self.refresh else {
            return ring;
        };
        let unknown = crate::credentials::kid_of(token).filter(|kid| !ring.knows(kid));
        let due = |now: i64| {
            let age = now - refresh.last_ms.load(Ordering::Acquire);
            age >= refresh.every_ms * MAX_AGE_ROUNDS
                || (unknown.is_some() && age >= refresh.every_ms)
        };
        if !due(crate::dates::millis(crate::dates::now())) {
            return ring;
        }
        let _reading = refresh.reading.lock().await;
        let now = crate::dates::millis(crate::dates::now());
        if !due(now) {
            return self.keyring(); // another request just read it
        }
        refresh.last_ms.store(now, Ordering::Release);
        match refresh.source.load().await {
            Ok(fresh) => {
                tracing::info!(current = fresh.current_kid(), "keyring re-read");
                let fresh = Arc::new(fresh);
                if let Ok(mut slot) = self.keyring.write() {
                    *slot = fresh.clone();
                }
                fresh
            }
            Err(e) => {
                tracing::error!(error = %e, "keyring re-read failed; keeping the current one");
                ring
            }
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
        let owner = || owner::owner(&self.config, req);
        match route {
            Route::Validate => self.validate(req).await,
            Route::Renew(lease) => self.renew(req, lease).await,
            Route::Release(lease) => self.release(req, lease).await,
            Route::MintCapability => self.mint_capability(req).await,
            Route::Jwks => self.jwks().await,
            Route::Discovery => self.discovery().await,
            Route::Revoke => self.revoke(req).await,
            Route::GithubLeaks => self.github_leaks(req).await,
            Route::List => self.list(req, &owner()?).await,
            Route::Create => self.create(req, &owner()?).await,
            Route::Detail(id) => self.detail(req, &owner()?, id).await,
            Route::Patch(id) => self.patch(req, &owner()?, id).await,
            Route::Roll(id) => self.roll(req, &owner()?, id).await,
            Route::Delete(id) => self.delete(req, &owner()?, id).await,
            Route::IdentityList => self.list_identities(req, &owner()?).await,
            Route::Audit => self.audit(req, &owner()?).await,
            Route::IdentityCreate => self.create_identity(req, &owner()?).await,
            Route::IdentityDetail(id) => self.identity_detail(req, &owner()?, id).await,
            Route::IdentityPatch(id) => self.patch_identity(req, &owner()?, id).await,
            Route::IdentityDelete(id) => self.delete_identity(req, &owner()?, id).await,
        }
    }
}

/// An app over the memory store with a fixed key, for unit tests.
#[cfg(test)]
pub(crate) fn memory_app() -> App {
    let config = Config::from_lookup(|k| match k {
        "TOLLGATE_TABLE" => Some("t".into()),
        "TOLLGATE_HASH_KEY" => Some("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=".into()),
        _ => None,
    })
    .expect("a valid test configuration");
    let ring = Keyring::single(b"01234567890123456789012345678901");
    App::new(
        config,
        ring,
        Arc::new(crate::store::memory::MemoryStore::new()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn app() -> App {
        memory_app()
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
        r.identity.jwt_sub = Some("alice".into());
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
    async fn an_owner_named_by_the_client_is_never_trusted() {
        let app = app();
        // X-Owner and no authorizer, as a deployed function would see it.
        let mut named = req(http::Method::GET, "/tokens", b"");
        named.identity = crate::http::Identity::default();
        named.headers.insert("x-owner", "alice".parse().unwrap());
        let (_, r) = app.handle(Function::List, &named).await;
        assert_eq!(r.status, 401);
        // A Lambda authorizer context from Tollgate's own authorize: 403,
        // even beside an owner.
        let mut by_token = req(http::Method::GET, "/tokens", b"");
        by_token.identity.authorizer_owner = Some("alice".into());
        by_token.identity.authorizer_token_id = Some("tok".into());
        let (_, r) = app.handle(Function::List, &by_token).await;
        assert_eq!(r.status, 403);
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
            authorizer_token_id: None,
        };
        assert_eq!(
            owner::owner(&app.config, &r).unwrap().as_str().to_owned(),
            "lambda-owner"
        );
        r.identity.jwt_sub = Some("jwt-sub".into());
        assert_eq!(
            owner::owner(&app.config, &r).unwrap().as_str().to_owned(),
            "jwt-sub"
        );
        r.identity.jwt_sub = None;
        r.identity.authorizer_owner = None;
        assert_eq!(
            owner::owner(&app.config, &r).unwrap().as_str().to_owned(),
            "arn:aws:iam::1:user/x"
        );
    }
}
