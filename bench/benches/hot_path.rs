//! hot_path_us: the core's CPU path of one validate with no I/O: decode the
//! token string, HMAC integrity check, secret hash check, window, scope,
//! address. capability_verify_us: a capability's offline verification.

// Test code slices strings it built itself.
#![allow(clippy::string_slice)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::json;
use tollgate::dates;
use tollgate::token::rules::{self, Lifetimes, NewToken};
use tollgate::token::{capability, resource, Keyring};
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
    let claims = capability::MintRequest::default()
        .narrow(&rec, None, now)
        .expect("a plain capability");
    let jws = capability::sign(&keys, "tollgate", &claims);
    c.bench_function("capability_verify", |b| {
        b.iter(|| capability::verify(&keys, "tollgate", black_box(&jws), now).expect("valid"))
    });
    c.bench_function("scope_normalise", |b| {
        b.iter(|| resource::normalise(black_box("/teams/17dh0cf43jfgl8/")))
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
