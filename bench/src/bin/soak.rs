//! make soak: a bounded soak of the local stack (loopback only). Many
//! clients send thousands of mixed requests, then every write is reconciled:
//! each created token reads back whole, use counts and lease counts match.
//! Prints the latency distribution of the error-free requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;
use tollgate_bench::percentile;

const CLIENTS: usize = 16;
const TOKENS_PER_CLIENT: usize = 4;
const MAX_USES: i64 = 100_000;

#[derive(Default)]
struct Stats {
    latencies: HashMap<&'static str, Vec<f64>>,
    statuses: HashMap<u16, usize>,
    server_errors: Vec<String>,
}

struct Token {
    id: String,
    token: String,
    admitted: i64,
    description: String,
}

struct Client {
    http: reqwest::Client,
    base: String,
    owner: String,
    stats: Arc<Mutex<Stats>>,
}

impl Client {
    async fn call(&self, op: &'static str, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let started = Instant::now();
        let resp = rb.send().await;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let (status, body) = match resp {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.text().await.unwrap_or_default())
            }
            Err(e) => (599, e.to_string()),
        };
        let mut st = self.stats.lock().await;
        *st.statuses.entry(status).or_default() += 1;
        if status >= 500 {
            st.server_errors.push(format!("{op} {status} {body}"));
        } else {
            st.latencies.entry(op).or_default().push(elapsed);
        }
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// `base` is the local API gateway (scripts/local_gateway.py),
    /// which routes like API Gateway and plays its JWT authorizer, taking
    /// `X-Owner` as the verified `sub` (a development shorthand).
    fn at(&self, method: reqwest::Method, route: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{route}", self.base))
            .header("x-owner", &self.owner)
    }

    async fn create(&self) -> Option<Token> {
        let body = json!({"maxUses": MAX_USES, "maxConcurrent": 4, "description": "soak", "tags": {"soak": "1"}});
        let (s, v) = self
            .call(
                "create",
                self.at(reqwest::Method::POST, "/tokens").json(&body),
            )
            .await;
        (s == 201).then(|| Token {
            id: v["id"].as_str().unwrap_or_default().into(),
            token: v["token"].as_str().unwrap_or_default().into(),
            admitted: 0,
            description: "soak".into(),
        })
    }

    async fn validate(&self, t: &mut Token, acquire: bool) {
        let op = if acquire { "acquire" } else { "validate" };
        let (s, v) = self
            .call(
                op,
                self.at(reqwest::Method::POST, "/validate")
                    .json(&json!({"token": t.token, "acquire": acquire})),
            )
            .await;
        if s == 200 && v["active"] == true {
            t.admitted += 1;
            if let Some(lease) = v["lease"]["id"].as_str() {
                let (s, _) = self
                    .call(
                        "release",
                        self.at(
                            reqwest::Method::DELETE,
                            &format!("/validate/leases/{lease}"),
                        )
                        .bearer_auth(&t.token),
                    )
                    .await;
                assert!(s == 204 || s >= 500, "release answered {s}");
            }
        }
    }
}

fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

#[tokio::main]
async fn main() {
    let base = std::env::var("TOLLGATE_GATEWAY_URL")
        .expect("TOLLGATE_GATEWAY_URL (scripts/soak.sh starts the stack)");
    let total: usize = std::env::var("SOAK_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let max_time = Duration::from_secs(
        std::env::var("SOAK_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(240),
    );
    let stats = Arc::new(Mutex::new(Stats::default()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = Instant::now();
    let per_client = total / CLIENTS;
    let mut handles = Vec::new();
    for c in 0..CLIENTS {
        let client = Client {
            http: http.clone(),
            base: base.clone(),
            owner: format!("soak-{c}-{}", std::process::id()),
            stats: stats.clone(),
        };
        handles.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            for _ in 0..TOKENS_PER_CLIENT {
                tokens.extend(client.create().await);
            }
            let mut seed = c as u64 * 7919 + 17;
            let mut sent = TOKENS_PER_CLIENT;
            while sent < per_client && started.elapsed() < max_time && !tokens.is_empty() {
                sent += 1;
                let i = next(&mut seed) as usize % tokens.len();
                match next(&mut seed) % 10 {
                    0..=3 => client.validate(&mut tokens[i], false).await,
                    4 | 5 => client.validate(&mut tokens[i], true).await,
                    6 => tokens.extend(client.create().await),
                    7 => {
                        let d = format!("soak {sent}");
                        let t = &mut tokens[i];
                        let (s, _) = client
                            .call(
                                "patch",
                                client
                                    .at(reqwest::Method::PATCH, &format!("/tokens/{}", t.id))
                                    .json(&json!({"description": d})),
                            )
                            .await;
                        if s == 200 {
                            t.description = d;
                        }
                    }
                    8 => {
                        client
                            .call(
                                "detail",
                                client
                                    .at(reqwest::Method::GET, &format!("/tokens/{}", tokens[i].id)),
                            )
                            .await;
                    }
                    _ => {
                        client
                            .call("list", client.at(reqwest::Method::GET, "/tokens?limit=20"))
                            .await;
                    }
                }
            }
            (client, tokens)
        }));
    }
    let mut lost = Vec::new();
    let mut reconciled = 0;
    let mut clients = Vec::new();
    for h in handles {
        clients.push(h.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    // Reconcile every write.
    for (client, tokens) in &clients {
        let mut listed = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = cursor.as_ref().map_or("/tokens?limit=100".to_owned(), |c| {
                format!("/tokens?limit=100&cursor={c}")
            });
            let (s, v) = client
                .call("list", client.at(reqwest::Method::GET, &q))
                .await;
            assert_eq!(s, 200);
            listed.extend(
                v["tokens"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_str().unwrap().to_owned()),
            );
            match v["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        for t in tokens {
            let (s, v) = client
                .call(
                    "detail",
                    client.at(reqwest::Method::GET, &format!("/tokens/{}", t.id)),
                )
                .await;
            let expected_remaining = MAX_USES - t.admitted;
            if s != 200
                || v["description"] != t.description.as_str()
                || v["remainingUses"].as_i64() != Some(expected_remaining)
                || v["activeLeases"].as_i64() != Some(0)
                || !listed.contains(&t.id)
            {
                lost.push(format!(
                    "{}: status {s}, expected remaining {expected_remaining} and {:?}, got {v}",
                    t.id, t.description
                ));
            }
            reconciled += 1;
        }
    }
    let mut st = stats.lock().await;
    let requests: usize = st.statuses.values().sum();
    println!(
        "## Soak: {CLIENTS} clients, {requests} requests in {:.1} s ({:.0} req/s), loopback",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64()
    );
    println!();
    println!("| operation | count | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    let mut ops: Vec<_> = st.latencies.keys().copied().collect();
    ops.sort();
    for op in ops {
        let v = st.latencies.get_mut(op).unwrap();
        println!(
            "| {op} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 0.99),
            percentile(v, 1.0)
        );
    }
    let mut statuses: Vec<_> = st.statuses.iter().collect();
    statuses.sort();
    println!();
    println!("statuses: {statuses:?}");
    println!(
        "tokens reconciled: {reconciled}, lost or inconsistent writes: {}",
        lost.len()
    );
    println!("server errors (5xx): {}", st.server_errors.len());
    for e in st.server_errors.iter().take(5) {
        println!("  {e}");
    }
    for l in lost.iter().take(5) {
        println!("  {l}");
    }
    if !st.server_errors.is_empty() || !lost.is_empty() {
        std::process::exit(1);
    }
}
