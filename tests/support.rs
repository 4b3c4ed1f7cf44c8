//! Helpers shared by the integration tests: the DynamoDB Local store, an
//! HTTP client for the API through the local gateway, the hostile
//! catalogue, and a record of every token string minted, for the secret
//! scan at the end.

// Test code slices strings it built itself.
#![allow(clippy::string_slice)]

use std::io::Write;
use std::sync::Arc;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tollgate::config::Config;
use tollgate::store::dynamo::{sdk_config, DynamoStore};

/// A variable `make test` sets.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests through `make test`, which starts the stack")
    })
}

/// The SDK configuration of a patient client (see [`dynamo_store`]), for
/// tests that add to it (an interceptor).
pub async fn patient_client_config() -> aws_sdk_dynamodb::config::Builder {
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    let sdk = sdk_config().await;
    aws_sdk_dynamodb::config::Builder::from(&sdk).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .operation_attempt_timeout(std::time::Duration::from_secs(20))
            .operation_timeout(std::time::Duration::from_secs(40))
            .build(),
    )
}

/// The store over the table `make test` created in DynamoDB Local, with a
/// patient client. DynamoDB Local on 2 shared cores, beside the rest of the
/// suite, sometimes answers in seconds, not DynamoDB's milliseconds, and the
/// SDK's timeouts (sized for DynamoDB: 1.5 s an attempt, 4 s in all) would
/// turn a slow answer into a failure; the tests using this store are about
/// conditional writes and caps under contention, `faults.rs` (with the
/// deployed timeouts) about timeouts.
pub async fn dynamo_store() -> DynamoStore {
    let patient = patient_client_config().await.build();
    DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(patient),
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
pub fn keyring() -> tollgate::credentials::Keyring {
    tollgate::credentials::Keyring::parse(&env("TOLLGATE_HASH_KEY"))
        .expect("a valid TOLLGATE_HASH_KEY")
}

pub async fn dynamo_app(lease_seconds: i64) -> Arc<tollgate::App> {
    Arc::new(tollgate::App::new(
        config(lease_seconds),
        keyring(),
        Arc::new(dynamo_store().await),
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

/// Talks to the API the way a client would: through the local API gateway
/// (`TOLLGATE_URL`), at the API's real routes.
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

    /// A request to `route`, the API's real route (with its query), through
    /// the local API gateway.
    pub fn request(&self, method: &str, route: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.http.request(m, format!("{}{route}", self.base))
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
                self.request("POST", "/tokens")
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

    /// `POST /validate/capabilities` with `token` as Bearer.
    pub async fn mint_capability(&self, token: &str, body: Value) -> Answer {
        self.send(
            self.request("POST", "/validate/capabilities")
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn validate(&self, body: Value) -> Value {
        let a = self
            .send(
                self.request("POST", "/validate")
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
                self.request("POST", "/validate")
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
            self.request("PATCH", &format!("/tokens/{id}"))
                .header("x-owner", owner)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn detail(&self, owner: &str, id: &str) -> Answer {
        self.send(
            self.request("GET", &format!("/tokens/{id}"))
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
            self.request("GET", &format!("/tokens{query}"))
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

/// An in-process app over `store`, configured as `make test`'s stack.
pub fn app_over(store: Arc<dyn tollgate::store::Store>) -> Arc<tollgate::App> {
    Arc::new(tollgate::App::new(config(300), keyring(), store))
}

/// A management request as the gateway hands it over, served in-process:
/// the JWT's `sub` (`owner`), a user agent, a request id, and the path's
/// id as its path parameter.
pub async fn manage(
    app: &tollgate::App,
    function: tollgate::Function,
    method: &str,
    path: &str,
    owner: &str,
    body: Value,
) -> (u16, Value) {
    let mut req = api_request(method, path, Some(owner), body);
    req.headers.insert(
        "user-agent",
        reqwest::header::HeaderValue::from_static("tollgate-tests/1"),
    );
    req.request_id = format!("req-{method}-{}", path.len());
    let route = path.split('?').next().unwrap_or(path);
    if let Some(id) = route.split('/').nth(2) {
        req.path_id = Some(id.to_owned());
    }
    call(app, function, &req).await
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

/// The hostile catalogue's bodies: malformed JSON, wrong types, huge
/// numbers, invalid UTF-8, NUL bytes, 70 KB, deep nesting, duplicate keys,
/// form junk. Sent in-process (`inprocess/hostile.rs`) and through the
/// local gateway (`over_http/gateway.rs`).
pub fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    vec![
        ("truncated JSON", b"{\"description\":".to_vec()),
        ("not JSON", b"nul".to_vec()),
        ("array", b"[1,2,3]".to_vec()),
        ("string", b"\"x\"".to_vec()),
        (
            "wrong types",
            br#"{"description":[],"write":"yes","tags":5,"maxUses":"7","token":5,"acquire":"x"}"#
                .to_vec(),
        ),
        (
            "huge float",
            br#"{"maxUses":1e400,"maxConcurrent":1e400}"#.to_vec(),
        ),
        (
            "huge integer",
            br#"{"maxUses":99999999999999999999999999,"ttlSeconds":9223372036854775808}"#.to_vec(),
        ),
        (
            "negative",
            br#"{"maxUses":-1,"maxConcurrent":-1e308,"ttlSeconds":-5}"#.to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"description\":\"\xff\xfe\xfd\"}".to_vec(),
        ),
        (
            "NUL in string",
            b"{\"description\":\"a\\u0000b\",\"token\":\"tgl_\\u0000\"}".to_vec(),
        ),
        ("raw NUL", b"{\"description\":\"a\x00b\"}".to_vec()),
        (
            "70 KB",
            format!("{{\"description\":\"{}\"}}", "x".repeat(70 * 1024)).into_bytes(),
        ),
        ("deep array", deep.into_bytes()),
        ("deep object", deep_obj.into_bytes()),
        (
            "duplicate keys",
            br#"{"description":"a","description":"b","maxUses":1,"maxUses":0}"#.to_vec(),
        ),
        (
            "rate limits",
            br#"{"rateLimits":[{"name":"a","limit":1e400,"periodSeconds":-1},{"name":{"x":1}},[],null,{"name":"a","limit":1,"periodSeconds":1}]}"#
                .to_vec(),
        ),
        (
            "form junk",
            b"token=%ff%fe&&&==&write=maybe&address=999.1.1.1".to_vec(),
        ),
    ]
}

/// The content types each hostile body is sent with (`""`: none).
pub const HOSTILE_CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "application/merge-patch+json",
    "",
];

/// A call to the local EventBridge or SQS (moto's JSON APIs), as the SDKs
/// make it: `target` is the `X-Amz-Target` (`AmazonSQS.ReceiveMessage`).
pub async fn local_aws(target: &str, body: Value) -> Value {
    let (service, version) = if target.starts_with("AmazonSQS.") {
        ("sqs", "1.0")
    } else {
        ("events", "1.1")
    };
    let resp = reqwest::Client::new()
        .post(env("AWS_ENDPOINT_URL_SQS"))
        .header("x-amz-target", target)
        .header("content-type", format!("application/x-amz-json-{version}"))
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=local/20261206/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(body.to_string())
        .send()
        .await
        .expect("moto answers");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "{target}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Messages from a queue (deleted as read), each body as JSON.
pub async fn receive(queue: &str, want: usize, within: Duration) -> Vec<Value> {
    let started = Instant::now();
    let mut got = Vec::new();
    while got.len() < want && started.elapsed() < within {
        let out = local_aws(
            "AmazonSQS.ReceiveMessage",
            json!({"QueueUrl": queue, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}),
        )
        .await;
        for m in out["Messages"].as_array().into_iter().flatten() {
            got.push(serde_json::from_str(m["Body"].as_str().unwrap_or("null")).unwrap());
            local_aws(
                "AmazonSQS.DeleteMessage",
                json!({"QueueUrl": queue, "ReceiptHandle": m["ReceiptHandle"]}),
            )
            .await;
        }
    }
    got
}
