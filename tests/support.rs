//! Helpers shared by the integration tests: the DynamoDB Local store, an
//! HTTP client for the functions under `cargo lambda watch`, and a record
//! of every token string minted, for the secret scan at the end.

// Test code slices strings it built itself.
#![allow(clippy::string_slice)]

use std::io::Write;
use std::sync::Arc;

use serde_json::Value;
use tollgate::config::Config;
use tollgate::store::dynamo::{sdk_config, DynamoStore};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests through `make test`, which starts the stack")
    })
}

/// The store over the table `make test` created in DynamoDB Local.
pub async fn dynamo_store() -> DynamoStore {
    let sdk = sdk_config().await;
    DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        env("TOLLGATE_TABLE"),
        86_400,
    )
}

/// A configuration for in-process apps over DynamoDB Local.
pub fn config(lease_seconds: i64) -> Config {
    let table = env("TOLLGATE_TABLE");
    let key = env("TOLLGATE_HASH_KEY");
    Config::from_lookup(move |k| match k {
        "TOLLGATE_TABLE" => Some(table.clone()),
        "TOLLGATE_HASH_KEY" => Some(key.clone()),
        "TOLLGATE_LEASE_SECONDS" => Some(lease_seconds.to_string()),
        _ => None,
    })
    .expect("valid test configuration")
}

/// The keyring of `TOLLGATE_HASH_KEY`, as in-process apps use it.
pub fn keyring() -> tollgate::token::Keyring {
    tollgate::token::Keyring::parse(&env("TOLLGATE_HASH_KEY")).expect("a valid TOLLGATE_HASH_KEY")
}

pub async fn dynamo_app(lease_seconds: i64) -> Arc<tollgate::App> {
    Arc::new(tollgate::App::new(
        config(lease_seconds),
        keyring(),
        Arc::new(dynamo_store().await),
    ))
}

/// An in-process app for storm tests: 200 truly simultaneous requests on
/// one client. DynamoDB Local on 2 shared cores answers such a storm in
/// seconds, not DynamoDB's milliseconds, so the SDK's per-attempt timeout
/// (1.5 s, sized for DynamoDB) would turn a slow answer into a 503; these
/// tests are about the caps under contention, `faults.rs` about timeouts.
pub async fn storm_app(lease_seconds: i64) -> Arc<tollgate::App> {
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    let sdk = sdk_config().await;
    let patient = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .operation_attempt_timeout(std::time::Duration::from_secs(20))
                .operation_timeout(std::time::Duration::from_secs(40))
                .build(),
        )
        .build();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(patient),
        env("TOLLGATE_TABLE"),
        86_400,
    );
    Arc::new(tollgate::App::new(
        config(lease_seconds),
        keyring(),
        Arc::new(store),
    ))
}

/// A unique owner per test, so tests never see each other's tokens.
pub fn owner(tag: &str) -> String {
    let n: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{tag}-{n:x}")
}

/// Appends minted token strings to the file the secret scan reads.
pub fn record_minted(token: &str) {
    if let Ok(path) = std::env::var("TOLLGATE_MINTED_FILE") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{token}");
        }
    }
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Talks to the six functions the way a client would.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

impl Api {
    pub fn new() -> Self {
        Api {
            base: env("TOLLGATE_URL"),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("http client"),
        }
    }

    /// `function` is the Lambda binary, `route` the API Gateway route.
    pub fn request(&self, method: &str, function: &str, route: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.http
            .request(m, format!("{}/{function}{route}", self.base))
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Answer {
        let resp = rb.send().await.expect("request reaches the stack");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        assert!(
            status < 500 || status == 503,
            "server error {status}: {text}"
        );
        assert!(!text.contains("panicked"), "panic leaked: {text}");
        Answer {
            status,
            headers,
            text,
        }
    }

    pub async fn create(&self, owner: &str, body: Value) -> Answer {
        let a = self
            .send(
                self.request("POST", "create", "/tokens")
                    .header("x-owner", owner)
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await;
        if a.status == 201 {
            if let Some(t) = a.json()["token"].as_str() {
                record_minted(t);
            }
        }
        a
    }

    /// Creates a token and returns (id, token string).
    pub async fn mint(&self, owner: &str, body: Value) -> (String, String) {
        let a = self.create(owner, body).await;
        assert_eq!(a.status, 201, "{}", a.text);
        let v = a.json();
        (
            v["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn validate(&self, body: Value) -> Value {
        let a = self
            .send(
                self.request("POST", "validate", "/validate")
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()
    }

    /// A validate with a relay credential in `Tollgate-Relay`.
    pub async fn validate_relayed(&self, body: Value, relay: &str) -> Value {
        let a = self
            .send(
                self.request("POST", "validate", "/validate")
                    .header("content-type", "application/json")
                    .header("tollgate-relay", relay)
                    .body(body.to_string()),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.json()
    }

    pub async fn patch(&self, owner: &str, id: &str, body: Value) -> Answer {
        self.send(
            self.request("PATCH", "patch", &format!("/tokens/{id}"))
                .header("x-owner", owner)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn detail(&self, owner: &str, id: &str) -> Answer {
        self.send(
            self.request("GET", "detail", &format!("/tokens/{id}"))
                .header("x-owner", owner),
        )
        .await
    }

    /// How many tokens the owner's first list page holds.
    pub async fn count(&self, owner: &str) -> usize {
        self.list(owner, "").await.json()["tokens"]
            .as_array()
            .map_or(0, Vec::len)
    }

    pub async fn list(&self, owner: &str, query: &str) -> Answer {
        self.send(
            self.request("GET", "list", &format!("/tokens{query}"))
                .header("x-owner", owner),
        )
        .await
    }
}

/// An in-process request as API Gateway hands it to a function: a query in
/// `path` is split off, `owner` plays the JWT authorizer's `sub` claim, a
/// non-null body is sent as JSON, and the source address is loopback.
pub fn api_request(
    method: &str,
    path: &str,
    owner: Option<&str>,
    body: Value,
) -> tollgate::http::ApiRequest {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut r = tollgate::http::ApiRequest {
        method: method.parse().expect("an HTTP method"),
        path: path.to_owned(),
        query: query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        source_ip: Some(std::net::IpAddr::from([127, 0, 0, 1])),
        ..Default::default()
    };
    r.identity.jwt_sub = owner.map(str::to_owned);
    if !body.is_null() {
        r.body = body.to_string().into_bytes();
        r.headers.insert(
            "content-type",
            reqwest::header::HeaderValue::from_static("application/json"),
        );
    }
    r
}

/// Serves `req` in-process: the status and the body as JSON (`Null` if none).
pub async fn call(
    app: &tollgate::App,
    function: tollgate::Function,
    req: &tollgate::http::ApiRequest,
) -> (u16, Value) {
    let (_, resp) = app.handle(function, req).await;
    (
        resp.status,
        serde_json::from_slice(&resp.body).unwrap_or(Value::Null),
    )
}

/// Creates a token in-process for `owner`; returns (id, token string), the
/// string recorded for the secret scan.
pub async fn mint_in_process(app: &tollgate::App, owner: &str, body: Value) -> (String, String) {
    let req = api_request("POST", "/tokens", Some(owner), body);
    let (status, v) = call(app, tollgate::Function::Create, &req).await;
    assert_eq!(status, 201, "{v}");
    let token = v["token"].as_str().expect("a token string").to_owned();
    record_minted(&token);
    (v["id"].as_str().expect("an id").to_owned(), token)
}
