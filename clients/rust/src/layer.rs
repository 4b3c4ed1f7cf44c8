//! A `tower` layer that authorizes each request as Tollgate's `authorize`
//! function does: the `Bearer` credential checked with `resource` = the
//! request's path, `write` = a method other than GET, HEAD or OPTIONS, the
//! owners (and audience) your API accepts, and the caller's address where
//! known. An admitted request reaches your service with [`Authorized`] in
//! its extensions; any other is answered by the layer (401, 403, 429 with
//! `Retry-After`, or 503 when Tollgate cannot be reached: it fails closed).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::json;
use tower_layer::Layer;
use tower_service::Service;

use crate::answer::{Active, Reason, Validation};
use crate::client::{Client, Owners, ValidateRequest};
use crate::error::Error;
use crate::verify::{Capability, Verifier, VerifyError};

/// What the layer admitted, in the request's extensions (and, with the
/// `axum` feature, an extractor).
#[derive(Debug, Clone, PartialEq)]
pub enum Authorized {
    /// Tollgate admitted the credential (a token, or a capability checked
    /// online), spending what it costs.
    Online(Box<Active>),
    /// A capability verified offline against the JWKS: no call was made.
    Offline(Box<Capability>),
}

impl Authorized {
    /// The owner of the token (a capability's parent's).
    pub fn owner(&self) -> &str {
        match self {
            Authorized::Online(a) => &a.owner,
            Authorized::Offline(c) => &c.owner,
        }
    }

    /// The token's id (a capability's parent's).
    pub fn token_id(&self) -> &str {
        match self {
            Authorized::Online(a) => &a.id,
            Authorized::Offline(c) => &c.token_id,
        }
    }
}

/// The caller's address, for a server that knows it better than the
/// connection does (behind a proxy it trusts): put it in the request's
/// extensions before the layer. Otherwise the layer reads axum's
/// `ConnectInfo<SocketAddr>` (with the `axum` feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallerAddress(pub IpAddr);

/// The layer: [`Authorize::new`], then `.layer(...)` it over your service
/// (or `Router::layer` in axum).
#[derive(Clone, Debug)]
pub struct Authorize {
    rules: Arc<Rules>,
}

/// A route's cost in uses: what `tollgateCosts` states for `authorize`.
type CostOf = dyn Fn(&http::Method, &str) -> u64 + Send + Sync;

struct Rules {
    client: Client,
    owners: Owners,
    audience: Option<String>,
    verifier: Option<Arc<Verifier>>,
    cost_of: Option<Arc<CostOf>>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("client", &self.client)
            .field("owners", &self.owners)
            .field("audience", &self.audience)
            .field("verifier", &self.verifier)
            .field("costs", &self.cost_of.is_some())
            .finish()
    }
}

impl Authorize {
    /// Checks every request with `client`, accepting the tokens of
    /// `owners` only (another owner's token is refused
    /// `OWNER_NOT_ALLOWED`, spending nothing).
    pub fn new(client: Client, owners: Owners) -> Self {
        Authorize {
            rules: Arc::new(Rules {
                client,
                owners,
                audience: None,
                verifier: None,
                cost_of: None,
            }),
        }
    }

    fn with(self, change: impl FnOnce(&mut Rules)) -> Self {
        let mut rules = Arc::try_unwrap(self.rules).unwrap_or_else(|shared| Rules {
            client: shared.client.clone(),
            owners: shared.owners.clone(),
            audience: shared.audience.clone(),
            verifier: shared.verifier.clone(),
            cost_of: shared.cost_of.clone(),
        });
        change(&mut rules);
        Authorize {
            rules: Arc::new(rules),
        }
    }

    /// Your API's audience: a token with audiences that do not include it
    /// is refused `AUDIENCE_NOT_ALLOWED`. Without it, as for a protected
    /// API that states none, every token with audiences is refused.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        self.with(|r| r.audience = Some(audience))
    }

    /// Check capabilities offline with `verifier` (no call to Tollgate, no
    /// revocation before their `exp`, no limits spent); tokens are still
    /// checked online. The layer's owners and audience apply to them too,
    /// beside the verifier's own.
    pub fn verify_capabilities_offline(self, verifier: Arc<Verifier>) -> Self {
        self.with(|r| r.verifier = Some(verifier))
    }

    /// Each route's cost in uses (what `tollgateCosts` states for
    /// `authorize`); 1 for every request without it.
    pub fn costs(
        self,
        cost_of: impl Fn(&http::Method, &str) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.with(|r| r.cost_of = Some(Arc::new(cost_of)))
    }
}

impl<S> Layer<S> for Authorize {
    type Service = AuthorizeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthorizeService {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// The service [`Authorize`] wraps yours in.
#[derive(Clone, Debug)]
pub struct AuthorizeService<S> {
    inner: S,
    rules: Arc<Rules>,
}

/// A refusal the layer answers itself.
struct Denial {
    status: StatusCode,
    reason: String,
    retry_after: Option<u64>,
}

impl Denial {
    fn of(reason: Reason, retry_after: Option<u64>) -> Denial {
        Denial {
            status: reason.status(),
            reason: reason.code().to_owned(),
            retry_after,
        }
    }

    fn unavailable(retry_after: Option<u64>) -> Denial {
        Denial {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "UNAVAILABLE".into(),
            retry_after,
        }
    }

    fn response<B: From<String>>(self) -> Response<B> {
        let body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or(""),
            "status": self.status.as_u16(),
            "reason": self.reason,
        });
        let mut response = Response::new(B::from(body.to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl Rules {
    /// The decision for one request: the flow `authorize` runs.
    async fn decide(
        &self,
        credential: Option<&str>,
        method: &http::Method,
        path: &str,
        caller: Option<IpAddr>,
    ) -> Result<Authorized, Denial> {
        let Some(credential) = credential else {
            return Err(Denial::of(Reason::Malformed, None));
        };
        let write = is_write(method);
        if let Some(verifier) = self
            .verifier
            .as_ref()
            .filter(|_| looks_like_jws(credential))
        {
            return self
                .offline(verifier, credential, path, write, caller)
                .await;
        }
        let mut request = ValidateRequest::new(credential)
            .resource(path)
            .write(write)
            .owners(&self.owners);
        if let Some(audience) = &self.audience {
            request = request.audience(audience.clone());
        }
        if let Some(cost_of) = &self.cost_of {
            request = request.cost(cost_of(method, path));
        }
        // Tollgate honours a named address beside a relay token only;
        // without one it checks this service's own address.
        if let Some(caller) = caller.filter(|_| self.client.has_relay()) {
            request = request.address(caller);
        }
        match self.client.validate(&request).await {
            Ok(Validation::Active(active)) => Ok(Authorized::Online(active)),
            Ok(Validation::Refused(r)) => Err(Denial::of(r.reason, r.retry_after)),
            Err(Error::Unavailable { retry_after }) => {
                Err(Denial::unavailable(retry_after.map(|d| d.as_secs())))
            }
            // A 400 here is the layer's own configuration (owners,
            // audience); that and anything unexpected fails closed.
            Err(_) => Err(Denial::unavailable(None)),
        }
    }

    /// A capability checked offline: the verifier's checks, the layer's
    /// owners and audience, then the request's address, path and method.
    async fn offline(
        &self,
        verifier: &Verifier,
        credential: &str,
        path: &str,
        write: bool,
        caller: Option<IpAddr>,
    ) -> Result<Authorized, Denial> {
        let capability = match verifier.verify(credential).await {
            Ok(c) => c,
            Err(VerifyError::Refused(reason)) => return Err(Denial::of(reason, None)),
            Err(VerifyError::KeysUnavailable(_)) => return Err(Denial::unavailable(None)),
        };
        let audience_ok = capability.audiences.is_empty()
            || self
                .audience
                .as_ref()
                .is_some_and(|a| capability.audiences.contains(a));
        let refusal = if !capability.allows_address(caller) {
            Some(Reason::AddressNotAllowed)
        } else if !self.owners.accepts(&capability.owner) {
            Some(Reason::OwnerNotAllowed)
        } else if !audience_ok {
            Some(Reason::AudienceNotAllowed)
        } else if !capability.covers(path) {
            Some(Reason::ResourceNotAllowed)
        } else if write && !capability.write {
            Some(Reason::WriteNotAllowed)
        } else {
            None
        };
        match refusal {
            Some(reason) => Err(Denial::of(reason, None)),
            None => Ok(Authorized::Offline(Box::new(capability))),
        }
    }
}

/// A compact JWS (a capability), not a `tgl_` token string.
fn looks_like_jws(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.bytes().filter(|b| *b == b'.').count() == 2
}

fn bearer<B>(request: &Request<B>) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, credential) = value.trim().split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

/// The request's path as the client sent it: axum's `OriginalUri` when a
/// router nested this one (it strips its prefix), else the URI's.
fn path_of<B>(request: &Request<B>) -> &str {
    #[cfg(feature = "axum")]
    if let Some(original) = request.extensions().get::<axum::extract::OriginalUri>() {
        return original.0.path();
    }
    request.uri().path()
}

fn caller_of<B>(request: &Request<B>) -> Option<IpAddr> {
    if let Some(CallerAddress(ip)) = request.extensions().get::<CallerAddress>() {
        return Some(*ip);
    }
    #[cfg(feature = "axum")]
    if let Some(info) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        return Some(info.0.ip());
    }
    None
}

/// Only GET, HEAD and OPTIONS read.
fn is_write(method: &http::Method) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

impl<S, B, R> Service<Request<B>> for AuthorizeService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: From<String>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The service polled ready is the one that serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let rules = self.rules.clone();
        Box::pin(async move {
            let decision = rules
                .decide(
                    bearer(&request),
                    request.method(),
                    path_of(&request),
                    caller_of(&request),
                )
                .await;
            match decision {
                Ok(authorized) => {
                    request.extensions_mut().insert(authorized);
                    inner.call(request).await
                }
                Err(denial) => Ok(denial.response()),
            }
        })
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Authorized {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Authorized>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "tollgate_client::Authorize is not in front of this route",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_answer_as_a_protected_api_does() {
        let r: Response<String> = Denial::of(Reason::RateLimited, Some(7)).response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert!(r.body().contains("\"reason\":\"RATE_LIMITED\""));
        let r: Response<String> = Denial::of(Reason::Expired, None).response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let r: Response<String> = Denial::of(Reason::OwnerNotAllowed, None).response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn credentials_and_methods() {
        let req = |auth: &str| {
            Request::builder()
                .header("authorization", auth)
                .body(())
                .unwrap()
        };
        assert_eq!(bearer(&req("Bearer tgl_x")), Some("tgl_x"));
        assert_eq!(bearer(&req("bearer  tgl_x ")), Some("tgl_x"));
        assert_eq!(bearer(&req("Basic abc")), None);
        assert_eq!(bearer(&req("Bearer ")), None);
        assert!(looks_like_jws("eyJh.eyJi.c2ln"));
        assert!(!looks_like_jws("tgl_abc"));
        assert!(!is_write(&http::Method::HEAD));
        assert!(is_write(&http::Method::PATCH));
    }
}
