//! `client_validate_overhead_us`: what `tollgate_client::Client::validate`
//! costs beside the HTTP round trip it makes. Both sides talk to the same
//! loopback server answering a validate's active answer (fixed bytes, so
//! the server's time is the same for both): a raw `reqwest` POST of the
//! request's JSON, read as bytes, against the client's call (the request
//! built, sent, the answer decoded into its types). Interleaved; medians.

use std::time::Instant;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_client::{Client, ValidateRequest, Validation};

/// An HTTP/1.1 keep-alive server that answers every request `body`.
async fn serve(body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    // One whole request (headers, then content-length bytes).
                    let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while pending.len() < end + 4 + length {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    }
                    pending.drain(..end + 4 + length);
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let token = "tgl_v1_0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij";
    let answer = json!({
        "active": true, "id": "d9stjsf11r25741nztb6fj3b58", "owner": "alice", "type": "api",
        "description": "reports service", "resource": "/teams", "write": false,
        "tags": {"team": "reports", "env": "prod"}, "caller": null, "callee": null,
        "startDate": null, "endDate": "2027-12-06T12:00:00.000Z", "expire": 1828180800,
        "maxConcurrent": null, "remainingUses": 941,
        "rateLimits": [{"name": "per-second", "limit": 10, "remaining": 9,
                        "reset": "2026-12-06T12:00:01.000Z"}]
    });
    let base = serve(answer.to_string()).await;
    let client = Client::builder(&base).build().expect("client");
    let request = ValidateRequest::new(token)
        .resource("/teams/1")
        .write(false);
    let raw_body = json!({"token": token, "resource": "/teams/1", "write": false}).to_string();
    let raw = reqwest::Client::new();
    let url = format!("{base}/validate");

    let (mut with_client, mut with_raw) = (Vec::new(), Vec::new());
    for i in 0..iterations + 500 {
        let t = Instant::now();
        let a = client.validate(&request).await.expect("validate");
        let client_us = t.elapsed().as_secs_f64() * 1e6;
        assert!(matches!(a, Validation::Active(_)));
        let t = Instant::now();
        let bytes = raw
            .post(&url)
            .header("content-type", "application/json")
            .body(raw_body.clone())
            .send()
            .await
            .expect("post")
            .bytes()
            .await
            .expect("body");
        let raw_us = t.elapsed().as_secs_f64() * 1e6;
        assert!(!bytes.is_empty());
        if i >= 500 {
            with_client.push(client_us);
            with_raw.push(raw_us);
        }
    }
    let (c, r) = (median(with_client), median(with_raw));
    println!("client_validate_us {c:.1}");
    println!("raw_post_us {r:.1}");
    println!("client_validate_overhead_us {:.1}", c - r);
}
