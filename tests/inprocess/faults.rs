//! Faults: DynamoDB unreachable, hanging or throttling in the middle of a
//! run. A small HTTP proxy in front of DynamoDB Local injects the fault; the
//! app runs in-process over it. Every route must answer 503 with
//! `Retry-After` within the SDK timeouts (never a hang, never a 500), and
//! once DynamoDB is back nothing was half written.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tollgate::http::ApiRequest;
use tollgate::store::dynamo::{sdk_config, DynamoStore};
use tollgate::{App, Function};
use tollgate_tests::{api_request, config, owner, record_minted};

const PASS: u8 = 0;
const DOWN: u8 = 1;
const HANG: u8 = 2;
const THROTTLE: u8 = 3;

struct Proxy {
    mode: AtomicU8,
    requests: AtomicUsize,
    upstream: String,
    /// The DynamoDB operation (`PutItem`, ...) whose next answer is lost:
    /// the request reaches DynamoDB and applies, the connection drops
    /// before its answer, and the SDK sends it again.
    lose_answer_of: std::sync::Mutex<Option<&'static str>>,
    answers_lost: AtomicUsize,
    /// Requests being forwarded right now: a step waits for none, so a
    /// slow attempt of the step before (one the SDK already gave up on)
    /// cannot take the loss meant for the next step's write.
    forwarding: AtomicUsize,
}

/// Counts a forwarded request until it is done, whichever way it ends.
struct Forwarding<'a>(&'a AtomicUsize);

impl Drop for Forwarding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Proxy {
    /// Arms the loss once nothing is being forwarded.
    async fn lose_next_answer_of(&self, operation: &'static str) {
        for _ in 0..3000 {
            if self.forwarding.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        *self.lose_answer_of.lock().unwrap() = Some(operation);
    }

    /// Whether this request's answer is the one to lose (and disarms).
    fn loses_answer(&self, head: &str) -> bool {
        let mut armed = self.lose_answer_of.lock().unwrap();
        let target = head.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
                .map(|(_, v)| v.trim().to_owned())
        });
        match (*armed, target) {
            (Some(op), Some(t)) if t.ends_with(&format!(".{op}")) => {
                *armed = None;
                true
            }
            _ => false,
        }
    }
}

async fn read_message<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        })
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.ok()?;
    Some((head, body))
}

async fn serve(conn: TcpStream, proxy: Arc<Proxy>) {
    let (rd, mut wr) = conn.into_split();
    let mut rd = BufReader::new(rd);
    while let Some((head, body)) = read_message(&mut rd).await {
        proxy.requests.fetch_add(1, Ordering::SeqCst);
        match proxy.mode.load(Ordering::SeqCst) {
            DOWN => return, // connection dropped: DynamoDB gone
            HANG => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            THROTTLE => {
                let b = br#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
                let resp = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: fault\r\ncontent-length: {}\r\n\r\n",
                    b.len()
                );
                let mut out = resp.into_bytes();
                out.extend_from_slice(b);
                if wr.write_all(&out).await.is_err() {
                    return;
                }
            }
            _ => {
                proxy.forwarding.fetch_add(1, Ordering::SeqCst);
                let _forwarding = Forwarding(&proxy.forwarding);
                let Ok(up) = TcpStream::connect(&proxy.upstream).await else {
                    return;
                };
                let (urd, mut uwr) = up.into_split();
                let head_text = head.clone();
                let mut req = head.into_bytes();
                req.extend_from_slice(&body);
                if uwr.write_all(&req).await.is_err() {
                    return;
                }
                let lose = proxy.loses_answer(&head_text);
                let mut urd = BufReader::new(urd);
                let Some((rhead, rbody)) = read_message(&mut urd).await else {
                    return;
                };
                if lose {
                    proxy.answers_lost.fetch_add(1, Ordering::SeqCst);
                    return; // applied upstream; the answer never arrives
                }
                let mut out = rhead.into_bytes();
                out.extend_from_slice(&rbody);
                if wr.write_all(&out).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn start_proxy() -> (Arc<Proxy>, String) {
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("set by make test");
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let proxy = Arc::new(Proxy {
        mode: AtomicU8::new(PASS),
        requests: AtomicUsize::new(0),
        upstream,
        lose_answer_of: std::sync::Mutex::new(None),
        answers_lost: AtomicUsize::new(0),
        forwarding: AtomicUsize::new(0),
    });
    let p = proxy.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            if p.mode.load(Ordering::SeqCst) == DOWN {
                continue; // accept and drop: connection reset
            }
            tokio::spawn(serve(conn, p.clone()));
        }
    });
    (proxy, format!("http://{addr}"))
}

async fn app_via(endpoint: &str) -> App {
    let sdk = sdk_config().await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .build();
    let cfg = config(300);
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(conf),
        &cfg.table,
        86_400,
    );
    App::new(cfg, tollgate_tests::keyring(), Arc::new(store))
}

fn req(method: &str, path: &str, body: Value, owner: &str) -> ApiRequest {
    api_request(method, path, Some(owner), body)
}

async fn call(app: &App, f: Function, r: ApiRequest) -> (u16, Value, Vec<(&'static str, String)>) {
    let (_, resp) = app.handle(f, &r).await;
    (
        resp.status,
        serde_json::from_slice(&resp.body).unwrap_or(Value::Null),
        resp.headers,
    )
}

/// Every route, as (function, request).
fn every_route(o: &str, id: &str, token: &str, lease: &str) -> Vec<(Function, ApiRequest)> {
    vec![
        (Function::List, req("GET", "/tokens", Value::Null, o)),
        (
            Function::Create,
            req(
                "POST",
                "/tokens",
                json!({"description": "during the fault"}),
                o,
            ),
        ),
        (
            Function::Detail,
            req("GET", &format!("/tokens/{id}"), Value::Null, o),
        ),
        (
            Function::Patch,
            req(
                "PATCH",
                &format!("/tokens/{id}"),
                json!({"description": "changed during the fault"}),
                o,
            ),
        ),
        (
            Function::Delete,
            req("DELETE", &format!("/tokens/{id}"), Value::Null, o),
        ),
        (
            Function::Validate,
            req(
                "POST",
                "/validate",
                json!({"token": token, "acquire": true}),
                o,
            ),
        ),
        (
            Function::Validate,
            req(
                "PUT",
                &format!("/validate/leases/{lease}"),
                json!({"token": token}),
                o,
            ),
        ),
        (
            Function::Validate,
            req(
                "DELETE",
                &format!("/validate/leases/{lease}"),
                json!({"token": token}),
                o,
            ),
        ),
    ]
}

async fn assert_all_unavailable(app: &App, routes: Vec<(Function, ApiRequest)>, within: Duration) {
    for (f, r) in routes {
        let what = format!("{:?} {} {}", f, r.method, r.path);
        let started = Instant::now();
        let (status, body, headers) = call(app, f, r).await;
        let took = started.elapsed();
        assert_eq!(status, 503, "{what}: {body}");
        assert!(
            headers.iter().any(|(k, v)| *k == "retry-after" && v == "1"),
            "{what}"
        );
        assert!(took < within, "{what} took {took:?}");
        let text = body.to_string().to_lowercase();
        for leak in [
            "dynamodb",
            "dispatch",
            "sdk",
            "timeout",
            "127.0.0.1",
            "throttl",
        ] {
            assert!(
                !text.contains(leak),
                "{what}: internal detail {leak:?} in {body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_down_hanging_or_throttling_answers_503_and_loses_nothing() {
    let (proxy, endpoint) = start_proxy().await;
    let app = app_via(&endpoint).await;
    let o = owner("faults");
    let (s, v, _) = call(
        &app,
        Function::Create,
        req(
            "POST",
            "/tokens",
            json!({"maxConcurrent": 2, "maxUses": 10}),
            &o,
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (id, token) = (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    );
    record_minted(&token);
    let (_, v, _) = call(
        &app,
        Function::Validate,
        req(
            "POST",
            "/validate",
            json!({"token": token, "acquire": true}),
            &o,
        ),
    )
    .await;
    let lease = v["lease"]["id"].as_str().unwrap().to_owned();

    // Down: connections dropped.
    proxy.mode.store(DOWN, Ordering::SeqCst);
    assert_all_unavailable(
        &app,
        every_route(&o, &id, &token, &lease),
        Duration::from_secs(6),
    )
    .await;

    // Throttled: retried with backoff (3 attempts), then 503.
    proxy.mode.store(THROTTLE, Ordering::SeqCst);
    let before = proxy.requests.load(Ordering::SeqCst);
    assert_all_unavailable(
        &app,
        vec![(
            Function::Detail,
            req("GET", &format!("/tokens/{id}"), Value::Null, &o),
        )],
        Duration::from_secs(6),
    )
    .await;
    assert_eq!(
        proxy.requests.load(Ordering::SeqCst) - before,
        3,
        "bounded retries"
    );
    assert_all_unavailable(
        &app,
        every_route(&o, &id, &token, &lease),
        Duration::from_secs(6),
    )
    .await;

    // Hanging: the per-attempt and operation timeouts cut it short.
    proxy.mode.store(HANG, Ordering::SeqCst);
    let routes = every_route(&o, &id, &token, &lease);
    assert_all_unavailable(
        &app,
        vec![routes[1].clone_req(), routes[5].clone_req()],
        Duration::from_secs(6),
    )
    .await;

    // Back: the token is whole, nothing the failed calls tried was written.
    proxy.mode.store(PASS, Ordering::SeqCst);
    let (s, v, _) = call(
        &app,
        Function::Detail,
        req("GET", &format!("/tokens/{id}"), Value::Null, &o),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["description"], "",
        "the patch during the fault did not land"
    );
    assert_eq!(
        v["remainingUses"], 9,
        "one use, by the one admitted acquire"
    );
    assert_eq!(v["activeLeases"], 1, "lease count matches the live lease");
    let (_, list, _) = call(&app, Function::List, req("GET", "/tokens", Value::Null, &o)).await;
    assert_eq!(
        list["tokens"].as_array().unwrap().len(),
        1,
        "no token was created during the fault"
    );
    let (s, _, _) = call(
        &app,
        Function::Validate,
        every_route(&o, &id, &token, &lease).remove(7).1,
    )
    .await;
    assert_eq!(s, 204);
}

trait CloneReq {
    fn clone_req(&self) -> (Function, ApiRequest);
}

impl CloneReq for (Function, ApiRequest) {
    fn clone_req(&self) -> (Function, ApiRequest) {
        (self.0, self.1.clone())
    }
}

/// A write whose answer is lost after it applied is sent again by the SDK:
/// create, roll and delete (each a transaction with its audit record)
/// carry an idempotency token, so the resend answers as applied, once (no
/// second roll, no 500 after creating, no 404 after deleting, no second
/// audit record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_is_lost_is_answered_as_applied_once() {
    let (proxy, endpoint) = start_proxy().await;
    let app = app_via(&endpoint).await;
    let o = owner("resend");
    let lost = || proxy.answers_lost.load(Ordering::SeqCst);

    // Create: 201 with the secret, and the token validates.
    proxy.lose_next_answer_of("TransactWriteItems").await;
    let (s, v, _) = call(
        &app,
        Function::Create,
        req("POST", "/tokens", json!({}), &o),
    )
    .await;
    assert_eq!((s, lost()), (201, 1), "{v}");
    let (id, first) = (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    );
    record_minted(&first);
    let validate = |token: &str| req("POST", "/validate", json!({"token": token}), &o);
    let (_, v, _) = call(&app, Function::Validate, validate(&first)).await;
    assert_eq!(v["active"], true, "{v}");

    // An idempotent create (TransactWriteItems): 201 with the secret, not
    // a replay of itself without one.
    proxy.lose_next_answer_of("TransactWriteItems").await;
    let mut keyed = req("POST", "/tokens", json!({}), &o);
    keyed.headers.insert(
        "idempotency-key",
        http::HeaderValue::from_static("resend-once-1"),
    );
    let (s, v, _) = call(&app, Function::Create, keyed).await;
    assert_eq!((s, lost()), (201, 2), "{v}");
    let keyed_token = v["token"]
        .as_str()
        .expect("the secret, shown once")
        .to_owned();
    record_minted(&keyed_token);

    // Roll with a grace: rolled once, so the first secret is the previous
    // one, in its grace, and the answered secret is current.
    proxy.lose_next_answer_of("TransactWriteItems").await;
    let (s, v, _) = call(
        &app,
        Function::Patch,
        req(
            "POST",
            &format!("/tokens/{id}/roll"),
            json!({"graceSeconds": 600}),
            &o,
        ),
    )
    .await;
    assert_eq!((s, lost()), (200, 3), "{v}");
    let second = v["token"].as_str().unwrap().to_owned();
    record_minted(&second);
    let (_, v, _) = call(&app, Function::Validate, validate(&second)).await;
    assert_eq!(v["active"], true, "{v}");
    let (_, v, _) = call(&app, Function::Validate, validate(&first)).await;
    assert_eq!(v["active"], true, "the first secret keeps its grace: {v}");
    assert!(v["secretExpiresAt"].is_string(), "{v}");

    // Delete: 204, and the token is gone.
    proxy.lose_next_answer_of("TransactWriteItems").await;
    let (s, v, _) = call(
        &app,
        Function::Delete,
        req("DELETE", &format!("/tokens/{id}"), Value::Null, &o),
    )
    .await;
    assert_eq!((s, lost()), (204, 4), "{v}");
    let (_, v, _) = call(&app, Function::Validate, validate(&second)).await;
    assert_eq!(v["reason"], "NOT_FOUND");
    // An unknown id is still 404.
    let (s, _, _) = call(
        &app,
        Function::Delete,
        req("DELETE", &format!("/tokens/{id}"), Value::Null, &o),
    )
    .await;
    assert_eq!(s, 404);
    // One record per change, none for a resend.
    let query = tollgate::audit::AuditQuery {
        token_id: Some(id.clone()),
        limit: 10,
        ..Default::default()
    };
    let trail = app.store.audit(&o, &query).await.unwrap();
    let actions: Vec<&str> = trail.records.iter().map(|r| r.action).collect();
    assert_eq!(actions, ["token.deleted", "token.rolled", "token.created"]);
}
