//! Calls to Tollgate's `/validate` routes: validate, mint, and a lease's
//! acquire, renew and release.
//!
//! Retries are where a resend cannot spend twice. An admission (validate,
//! acquire, mint) spends uses and rate-limit counts, and Tollgate's 503
//! may come after the write went through (its answer lost), so an
//! admission is resent only when it provably never reached Tollgate: the
//! connection was refused, or API Gateway throttled it (429, answered
//! before any integration runs). A renew and a release are idempotent and
//! are also resent after a 503 or a timeout.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::answer::{self, Lease, Minted, MintedCapability, Validation};
use crate::error::{Error, Problem};

/// The header that carries a relay token (see [`ClientBuilder::relay`]).
const RELAY_HEADER: &str = "tollgate-relay";

/// A Tollgate client: cheap to clone (one connection pool), built once
/// and shared, never per request.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    retries: u32,
    backoff: Duration,
    relay: Option<String>,
}

/// Builds a [`Client`]: [`Client::builder`].
pub struct ClientBuilder {
    base: String,
    timeout: Duration,
    connect_timeout: Duration,
    retries: u32,
    backoff: Duration,
    relay: Option<String>,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// Each attempt's limit (default 3 s; a renew or release may make up
    /// to `retries + 1` attempts). A call that runs out is
    /// [`Error::Transport`]: not admitted.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The limit on opening a connection (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many times a call may be resent where that is safe (default 2),
    /// and the first pause (default 100 ms, doubled each time, or the
    /// server's `Retry-After` up to 2 s).
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// A relay token (one of the same owner holding the scope
    /// `scope:tollgate:relay`), sent as `Tollgate-Relay` with every call:
    /// without it Tollgate checks address-bound tokens against this
    /// service's own address, not the `address` it names.
    pub fn relay(mut self, relay_token: impl Into<String>) -> Self {
        self.relay = Some(relay_token.into());
        self
    }

    /// Use this `reqwest` client (its own TLS roots, proxy, pool);
    /// `timeout` and `connect_timeout` are then its own.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let base = self.base.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err(Error::Config(format!("{base:?} is not an http(s) URL"))),
        }
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.connect_timeout)
                .build()
                .map_err(Error::Transport)?,
        };
        Ok(Client {
            http,
            base,
            retries: self.retries,
            backoff: self.backoff,
            relay: self.relay,
        })
    }
}

/// A validate's question: the credential and what it is checked for.
/// Everything but the token is optional.
#[derive(Clone, Default)]
pub struct ValidateRequest {
    token: String,
    body: Map<String, Value>,
}

// Credentials never reach a log through `{:?}`.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("retries", &self.retries)
            .field("relay", &self.relay.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("relay", &self.relay.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ValidateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidateRequest")
            .field("token", &"<redacted>")
            .field("body", &self.body)
            .finish()
    }
}

impl ValidateRequest {
    /// A token string or a capability.
    pub fn new(token: impl Into<String>) -> Self {
        ValidateRequest {
            token: token.into(),
            body: Map::new(),
        }
    }

    fn set(mut self, key: &str, value: Value) -> Self {
        self.body.insert(key.to_owned(), value);
        self
    }

    /// The path asked for, matched by whole segments against the token's.
    pub fn resource(self, path: impl Into<String>) -> Self {
        self.set("resource", json!(path.into()))
    }

    pub fn write(self, write: bool) -> Self {
        self.set("write", json!(write))
    }

    /// Your client's address (honoured beside a relay token only).
    pub fn address(self, address: IpAddr) -> Self {
        self.set("address", json!(address.to_string()))
    }

    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.set("scope", json!(scope.into()))
    }

    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.set("audience", json!(audience.into()))
    }

    /// Accept only these owners' tokens, as a protected API does: another
    /// owner's token is refused `OWNER_NOT_ALLOWED` and spends nothing.
    pub fn owners(self, owners: &Owners) -> Self {
        self.set("owners", owners.to_json())
    }

    /// Uses to spend (default 1; 0 checks without spending).
    pub fn cost(self, cost: u64) -> Self {
        self.set("cost", json!(cost))
    }

    fn into_body(mut self) -> Value {
        self.body.insert("token".into(), json!(self.token));
        Value::Object(self.body)
    }
}

/// The owners whose tokens a service accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owners {
    /// Every account holder's (a platform API).
    Any,
    Listed(Vec<String>),
}

impl Owners {
    pub fn one(owner: impl Into<String>) -> Owners {
        Owners::Listed(vec![owner.into()])
    }

    pub fn accepts(&self, owner: &str) -> bool {
        match self {
            Owners::Any => true,
            Owners::Listed(list) => list.iter().any(|o| o == owner),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Owners::Any => json!("*"),
            Owners::Listed(list) => json!(list),
        }
    }
}

/// What a capability is minted for; every field optional.
#[derive(Debug, Clone, Default)]
pub struct MintRequest {
    body: Map<String, Value>,
}

impl MintRequest {
    pub fn new() -> Self {
        Self::default()
    }

    fn set(mut self, key: &str, value: Value) -> Self {
        self.body.insert(key.to_owned(), value);
        self
    }

    /// 1–86400 (default 3600), never past the parent's end.
    pub fn ttl(self, ttl: Duration) -> Self {
        self.set("ttlSeconds", json!(ttl.as_secs()))
    }

    pub fn scopes<S: Into<String>>(self, scopes: impl IntoIterator<Item = S>) -> Self {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.set("scopes", json!(scopes))
    }

    pub fn resource(self, path: impl Into<String>) -> Self {
        self.set("resource", json!(path.into()))
    }

    pub fn write(self, write: bool) -> Self {
        self.set("write", json!(write))
    }

    /// An address or CIDR the capability is bound to.
    pub fn address(self, address: impl Into<String>) -> Self {
        self.set("address", json!(address.into()))
    }

    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.set("audience", json!(audience.into()))
    }

    /// `ES256`, which API Gateway's JWT authorizers verify, instead of the
    /// default `EdDSA`.
    pub fn es256(self) -> Self {
        self.set("alg", json!("ES256"))
    }

    /// Uses to spend (default 1).
    pub fn cost(self, cost: u64) -> Self {
        self.set("cost", json!(cost))
    }
}

/// Whether a call may be resent after an answer that was not its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Spends: only when it never reached Tollgate.
    Admission,
    /// Idempotent: also after a 503 or a timeout.
    Idempotent,
}

impl Client {
    /// A client of the Tollgate API at `base_url` (the stack's `ApiUrl`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base: base_url.into(),
            timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(1),
            retries: 2,
            backoff: Duration::from_millis(100),
            relay: None,
            http: None,
        }
    }

    /// Whether calls carry a relay token (so a named `address` counts).
    pub fn has_relay(&self) -> bool {
        self.relay.is_some()
    }

    /// `POST /validate`: every check, spending what an admission spends.
    pub async fn validate(&self, request: &ValidateRequest) -> Result<Validation, Error> {
        let body = request.clone().into_body();
        let (status, answer) = self
            .send(Method::POST, "/validate", Some(&body), Resend::Admission)
            .await?;
        expect(status, StatusCode::OK)?;
        decode(answer, answer::validation)
    }

    /// A validate that takes a lease (`acquire: true`); `reserve` spends
    /// that many uses at once and holds them with the lease, for
    /// [`release`](Self::release) to settle.
    pub async fn acquire(
        &self,
        request: &ValidateRequest,
        reserve: Option<u64>,
    ) -> Result<Validation, Error> {
        let mut request = request.clone().set("acquire", json!(true));
        if let Some(reserve) = reserve {
            request = request.set("reserve", json!(reserve));
        }
        self.validate(&request).await
    }

    /// `PUT /validate/leases/{id}`: extends a lease by its period. `None`:
    /// the lease had lapsed or was released (404).
    pub async fn renew(&self, token: &str, lease_id: &str) -> Result<Option<Lease>, Error> {
        let path = format!("/validate/leases/{}", path_segment(lease_id)?);
        let body = json!({ "token": token });
        let (status, answer) = self
            .send(Method::PUT, &path, Some(&body), Resend::Idempotent)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        expect(status, StatusCode::OK)?;
        let lease = answer.get("lease").cloned().unwrap_or_default();
        decode(lease, serde_json::from_value).map(Some)
    }

    /// `DELETE /validate/leases/{id}`: frees the slot; `used` settles a
    /// reservation (0 ≤ used ≤ the reserve; the rest is given back, once).
    /// Releasing a lease already released or lapsed succeeds too.
    pub async fn release(
        &self,
        token: &str,
        lease_id: &str,
        used: Option<u64>,
    ) -> Result<(), Error> {
        let path = format!("/validate/leases/{}", path_segment(lease_id)?);
        let mut body = json!({ "token": token });
        if let Some(used) = used {
            body["used"] = json!(used);
        }
        let (status, _) = self
            .send(Method::DELETE, &path, Some(&body), Resend::Idempotent)
            .await?;
        expect(status, StatusCode::NO_CONTENT)
    }

    /// `POST /validate/capabilities`: a capability of `token`, narrowed to
    /// `request`. Minting is an admission of the parent (it spends a use
    /// and a rate-limit count), refused as a validate is.
    pub async fn mint(&self, token: &str, request: &MintRequest) -> Result<Minted, Error> {
        let mut body = request.body.clone();
        body.insert("token".into(), json!(token));
        let body = Value::Object(body);
        let (status, answer) = self
            .send(
                Method::POST,
                "/validate/capabilities",
                Some(&body),
                Resend::Admission,
            )
            .await?;
        if status == StatusCode::OK {
            return match decode(answer, answer::validation)? {
                Validation::Refused(r) => Ok(Minted::Refused(r)),
                Validation::Active(_) => Err(Error::Unexpected {
                    status: 200,
                    detail: "an active answer to a mint".into(),
                }),
            };
        }
        expect(status, StatusCode::CREATED)?;
        let minted: MintedCapability = decode(answer, serde_json::from_value)?;
        Ok(Minted::Capability(Box::new(minted)))
    }

    /// One call, resent as `resend` allows. Answers the status and the
    /// body (JSON, or `Null` when empty); a 4xx problem or a final
    /// 503/429 is an error.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        resend: Resend,
    ) -> Result<(StatusCode, Value), Error> {
        let url = format!("{}{}", self.base, path);
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(relay) = &self.relay {
                request = request.header(RELAY_HEADER, relay);
            }
            let outcome = request.send().await;
            let (retryable, pause) = match &outcome {
                Err(e) => (
                    e.is_connect() || (resend == Resend::Idempotent && e.is_timeout()),
                    None,
                ),
                Ok(r) => {
                    let throttled = r.status() == StatusCode::TOO_MANY_REQUESTS;
                    let unavailable = r.status() == StatusCode::SERVICE_UNAVAILABLE;
                    (
                        throttled || (unavailable && resend == Resend::Idempotent),
                        retry_after(r),
                    )
                }
            };
            if retryable && attempt < self.retries {
                let backoff = self.backoff.saturating_mul(1 << attempt.min(10));
                tokio::time::sleep(pause.unwrap_or(backoff).min(Duration::from_secs(2))).await;
                attempt += 1;
                continue;
            }
            let response = outcome.map_err(Error::Transport)?;
            let status = response.status();
            if matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ) {
                return Err(Error::Unavailable {
                    retry_after: retry_after(&response),
                });
            }
            let bytes = response.bytes().await.map_err(Error::Transport)?;
            let value = match bytes.is_empty() {
                true => Value::Null,
                false => serde_json::from_slice(&bytes).map_err(|e| Error::Unexpected {
                    status: status.as_u16(),
                    detail: format!("not JSON: {e}"),
                })?,
            };
            if status.is_client_error() && status != StatusCode::NOT_FOUND {
                return Err(Error::Rejected {
                    status: status.as_u16(),
                    problem: serde_json::from_value(value).unwrap_or_default(),
                });
            }
            return Ok((status, value));
        }
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

fn expect(status: StatusCode, wanted: StatusCode) -> Result<(), Error> {
    match status == wanted {
        true => Ok(()),
        false => Err(Error::Unexpected {
            status: status.as_u16(),
            detail: format!("expected {wanted}"),
        }),
    }
}

fn decode<T>(
    value: Value,
    read: impl FnOnce(Value) -> Result<T, serde_json::Error>,
) -> Result<T, Error> {
    read(value).map_err(|e| Error::Unexpected {
        status: 200,
        detail: format!("unreadable answer: {e}"),
    })
}

/// A lease id as one path segment: Tollgate's ids are URL-safe; anything
/// else is refused here rather than sent somewhere unintended.
fn path_segment(id: &str) -> Result<&str, Error> {
    let plain = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match plain {
        true => Ok(id),
        false => Err(Error::Rejected {
            status: 400,
            problem: Problem {
                title: "Bad Request".into(),
                detail: "a lease id is letters, digits, - and _".into(),
                errors: vec![crate::error::FieldError {
                    field: "leaseId".into(),
                    message: "must be a lease id Tollgate answered".into(),
                }],
                ..Problem::default()
            },
        }),
    }
}
