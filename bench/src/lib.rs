//! Shared by the benchmark binaries: API Gateway events and statistics.

// Test code slices strings it built itself.
#![allow(clippy::string_slice)]

use serde_json::{json, Value};

/// An API Gateway HTTP API (payload 2.0) event for `POST /validate`.
pub fn validate_event(body: &Value) -> String {
    json!({
        "version": "2.0",
        "routeKey": "POST /validate",
        "rawPath": "/validate",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "bench.example.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.example.com",
            "domainPrefix": "bench", "requestId": "bench-request", "routeKey": "POST /validate",
            "stage": "$default", "time": "22/Nov/2026:10:00:00 +0000", "timeEpoch": 1_795_356_000_000u64,
            "http": {"method": "POST", "path": "/validate", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "bench"}
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    })
    .to_string()
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

/// The keyring the bench mints with: `TOLLGATE_HASH_KEY` (either form).
pub fn keyring_from_env() -> tollgate::credentials::Keyring {
    let text = std::env::var("TOLLGATE_HASH_KEY").expect("TOLLGATE_HASH_KEY is set by make bench");
    tollgate::credentials::Keyring::parse(&text).expect("a valid TOLLGATE_HASH_KEY")
}
