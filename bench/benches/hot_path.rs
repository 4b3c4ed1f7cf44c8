//! hot_path_us: the core's CPU path of one validate with no I/O: decode the
//! token string, HMAC integrity check, secret hash check, window, scope,
//! address. capability_verify_us: a capability's offline verification.
//! emf_us: one request's metrics line (CloudWatch EMF), built and serialised.

// Test code slices strings it built itself.
#![allow(clippy::string_slice)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::json;
use tollgate::credentials::{capability, Keyring};
use tollgate::dates;
use tollgate::token::resource;
use tollgate::token::rules::{self, Lifetimes, NewToken};
use tollgate::validate::checks::check;
use tollgate::validate::ValidateInput;

fn hot_path(c: &mut Criterion) {
    let keys = Keyring::single(&[42u8; 32]);
    let minted = keys.mint();
    let body = json!({"resource": "/teams", "allowedAddresses": ["203.0.113.0/24", "2001:db8::/32"], "write": true});
    let rec = rules::create(NewToken {
        id: minted.id.to_string(),
        owner: "bench".into(),
        start: minted.start(),
        secret_hash: minted.secret_hash.clone(),
        requester: None,
        now: dates::now(),
        lifetimes: Lifetimes {
            default_ttl_seconds: 3600,
            max_ttl_seconds: 86_400,
        },
        body: body.as_object().unwrap(),
    })
    .unwrap();
    let input = ValidateInput {
        token: Some(minted.token.clone()),
        resource: Some("/teams/17dh0cf43jfgl8".into()),
        write: true,
        ..Default::default()
    };
    let source = Some("203.0.113.9".parse().unwrap());
    let now = dates::now();
    c.bench_function("hot_path", |b| {
        b.iter(|| {
            let parsed = keys.parse_token(black_box(&minted.token)).expect("valid");
            assert!(keys.secret_matches(&parsed, black_box(&rec.secret_hash)));
            check(black_box(&rec), black_box(&input), source, now, None).expect("admitted");
        })
    });
    // capability_verify_us: what a capability costs before any read:
    // format, strict Ed25519 signature, claims, window.
    // The token allows two networks: the capability names the one it binds.
    let claims = capability::MintRequest {
        address: Some("203.0.113.0/24".parse().expect("a network")),
        ..Default::default()
    }
    .narrow(&rec, None, now)
    .expect("a plain capability");
    let jws = capability::sign(&keys, "tollgate", &claims);
    c.bench_function("capability_verify", |b| {
        b.iter(|| capability::verify(&keys, "tollgate", black_box(&jws), now).expect("valid"))
    });
    // capability_verify_es256_us: the same with an ES256 capability (ECDSA
    // P-256 verification, the low-S check).
    let es256 = capability::sign_as(capability::Alg::Es256, &keys, "tollgate", &claims);
    c.bench_function("capability_verify_es256", |b| {
        b.iter(|| capability::verify(&keys, "tollgate", black_box(&es256), now).expect("valid"))
    });
    // emf_us: what a request's metrics cost: the EMF document built and
    // serialised (the write to stdout is the log line's cost).
    c.bench_function("emf_line", |b| {
        b.iter(|| {
            let m = tollgate::metrics::RequestMetrics {
                function: "validate",
                route: "POST /validate",
                status: 200,
                latency_ms: black_box(1.25),
                outcome: Some("ACTIVE"),
                request_id: "4ac2f8e1-0d5b-4f4e-9d4e-3c1f7a2b9e10",
                trace_id: Some("Root=1-5e1b4151-5ac6c58f5b5daa6532d5f7a4;Sampled=1"),
                ..Default::default()
            };
            tollgate::metrics::emf(&m, 1_795_356_000_000)
        })
    });
    c.bench_function("scope_normalise", |b| {
        b.iter(|| resource::normalise(black_box("/teams/17dh0cf43jfgl8/")))
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
