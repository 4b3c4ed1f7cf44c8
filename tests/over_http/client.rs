//! The Rust client crate (`clients/rust`) against the local stack: its
//! calls, and an axum app behind its layer (admitted, refused by reason,
//! rate-limited with `Retry-After`, a capability verified offline with no
//! call to Tollgate). Its retry rules against a stub that answers 503.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate_client::{
    Authorize, Authorized, CallerAddress, Client, Error, MintRequest, Minted, Owners, Reason,
    ValidateRequest, Validation, Verifier,
};
use tollgate_tests::{env, owner, Api};

fn client(base: &str) -> Client {
    Client::builder(base)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client")
}

fn active(v: Validation) -> Box<tollgate_client::Active> {
    match v {
        Validation::Active(a) => a,
        Validation::Refused(r) => panic!("refused: {r:?}"),
    }
}

fn reason(v: Validation) -> Reason {
    match v {
        Validation::Refused(r) => r.reason,
        Validation::Active(a) => panic!("admitted: {a:?}"),
    }
}

#[tokio::test]
async fn the_client_validates_leases_and_mints() {
    let (api, o) = (Api::new(), owner("client"));
    let tollgate = client(&api.base);
    let (_, token) = api
        .mint(
            &o,
            json!({"resource": "/teams", "maxUses": 10, "maxConcurrent": 1,
                   "scopes": ["scope:client:incoming"]}),
        )
        .await;
    let ask = || ValidateRequest::new(token.clone()).resource("/teams/1");

    let a = active(tollgate.validate(&ask()).await.unwrap());
    assert_eq!((a.owner.as_str(), a.remaining_uses), (o.as_str(), Some(9)));
    assert_eq!(
        reason(tollgate.validate(&ask().resource("/other")).await.unwrap()),
        Reason::ResourceNotAllowed
    );
    assert_eq!(
        reason(tollgate.validate(&ask().write(true)).await.unwrap()),
        Reason::WriteNotAllowed
    );
    // Another owner's API: refused before anything is spent.
    let theirs = ask().owners(&Owners::one("someone-else"));
    assert_eq!(
        reason(tollgate.validate(&theirs).await.unwrap()),
        Reason::OwnerNotAllowed
    );
    let mine = ask().owners(&Owners::Listed(vec!["x".into(), o.clone()]));
    assert_eq!(
        active(tollgate.validate(&mine).await.unwrap()).remaining_uses,
        Some(8)
    );
    assert_eq!(
        reason(
            tollgate
                .validate(&ValidateRequest::new("tgl_nope"))
                .await
                .unwrap()
        ),
        Reason::Malformed
    );

    // A reservation held by a lease, renewed, then settled with `used`.
    let held = active(tollgate.acquire(&ask(), Some(3)).await.unwrap());
    let lease = held.lease.expect("an acquire answers its lease");
    assert_eq!(held.remaining_uses, Some(5));
    assert_eq!(
        reason(tollgate.acquire(&ask(), None).await.unwrap()),
        Reason::ConcurrencyLimit
    );
    let renewed = tollgate.renew(&token, &lease.id).await.unwrap();
    assert_eq!(renewed.map(|l| l.id), Some(lease.id.clone()));
    tollgate.release(&token, &lease.id, Some(1)).await.unwrap();
    tollgate.release(&token, &lease.id, Some(1)).await.unwrap();
    assert_eq!(tollgate.renew(&token, &lease.id).await.unwrap(), None);
    let a = active(tollgate.validate(&ask()).await.unwrap());
    assert_eq!(a.remaining_uses, Some(6), "two of the three given back");

    // A capability, minted and then presented as the credential.
    let minted = tollgate
        .mint(
            &token,
            &MintRequest::new()
                .ttl(Duration::from_secs(600))
                .resource("/teams/1")
                .scopes(["scope:client:incoming"]),
        )
        .await
        .unwrap();
    let Minted::Capability(minted) = minted else {
        panic!("refused: {minted:?}")
    };
    assert_eq!(minted.resource, "/teams/1");
    let a = active(
        tollgate
            .validate(
                &ValidateRequest::new(minted.capability.clone()).scope("scope:client:incoming"),
            )
            .await
            .unwrap(),
    );
    assert!(a.capability.is_some(), "{a:?}");
    // Asking for more than the parent holds is the request's 400, by field.
    match tollgate
        .mint(&token, &MintRequest::new().resource("/elsewhere"))
        .await
    {
        Err(Error::Rejected { status, problem }) => {
            assert_eq!(status, 400);
            assert!(
                problem.errors.iter().any(|e| e.field == "resource"),
                "{problem:?}"
            );
        }
        other => panic!("not a 400: {other:?}"),
    }
}

/// Forwards to the local gateway and counts `POST /validate` requests on
/// the way: what Tollgate is asked by the layer's client.
async fn counting_proxy(upstream: SocketAddr) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let validates = Arc::new(AtomicUsize::new(0));
    let counted = validates.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut up_read, mut up_write) = outbound.into_split();
                let (mut in_read, mut in_write) = inbound.split();
                let to_upstream = async {
                    const LINE: &[u8] = b"POST /validate ";
                    let mut buf = vec![0u8; 65536];
                    // The end of the previous read: a request line split
                    // across two reads is still counted, once.
                    let mut carried: Vec<u8> = Vec::new();
                    while let Ok(n) = in_read.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let chunk = &buf[..n];
                        let seen = [carried.as_slice(), chunk].concat();
                        let found = seen.windows(LINE.len()).filter(|w| *w == LINE).count();
                        counted.fetch_add(found, Ordering::SeqCst);
                        let keep = seen.len().min(LINE.len() - 1);
                        carried = seen[seen.len() - keep..].to_vec();
                        if up_write.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                    let _ = up_write.shutdown().await;
                };
                let to_client = tokio::io::copy(&mut up_read, &mut in_write);
                let _ = tokio::join!(to_upstream, to_client);
            });
        }
    });
    (format!("http://{addr}"), validates)
}

/// What the layer answered `method path` with `credential`.
async fn verdict(
    http: &reqwest::Client,
    app: &str,
    method: reqwest::Method,
    path: &str,
    credential: Option<&str>,
) -> (u16, String) {
    let mut request = http.request(method, format!("{app}{path}"));
    if let Some(c) = credential {
        request = request.bearer_auth(c);
    }
    status_and_reason(request.send().await.expect("the app answers")).await
}

/// A layer's answer: its status and the refusal's reason (empty when admitted).
async fn status_and_reason(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

/// An app behind the layer, on loopback: every route answers who the
/// layer admitted.
async fn protected_app(layer: Authorize) -> String {
    async fn who(who: Authorized) -> Json<Value> {
        Json(json!({
            "owner": who.owner(),
            "tokenId": who.token_id(),
            "offline": matches!(who, Authorized::Offline(_)),
        }))
    }
    let app = Router::new()
        .route("/reports/{*rest}", any(who))
        .route("/elsewhere", get(who))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_axum_app_behind_the_layer() {
    let (api, o) = (Api::new(), owner("layer"));
    let gateway: SocketAddr = api
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("the gateway's address");
    let (proxied, validates) = counting_proxy(gateway).await;
    let verifier = Verifier::builder(env("TOLLGATE_ISSUER"))
        .jwks_url(format!("{}/.well-known/jwks.json", api.base))
        .owners(Owners::one(o.clone()))
        .build()
        .unwrap();
    let app = protected_app(
        Authorize::new(client(&proxied), Owners::one(o.clone()))
            .verify_capabilities_offline(Arc::new(verifier)),
    )
    .await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, credential: Option<&str>| {
        let mut rb = http.request(method, format!("{app}{path}"));
        if let Some(c) = credential {
            rb = rb.bearer_auth(c);
        }
        rb.send()
    };

    // Admitted, with the answer in the request's extensions.
    let (id, token) = api
        .mint(
            &o,
            json!({"resource": "/reports",
                   "rateLimits": [{"name": "monthly", "limit": 3, "periodSeconds": 2592000}]}),
        )
        .await;
    let r = call(reqwest::Method::GET, "/reports/1", Some(&token))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"owner": o, "tokenId": id, "offline": false}));
    assert_eq!(
        validates.load(Ordering::SeqCst),
        1,
        "one validate per request"
    );

    // Refused by reason, each answered by the layer.
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    assert_eq!(
        verdict(&http, &app, post.clone(), "/reports/1", Some(&token)).await,
        (403, "WRITE_NOT_ALLOWED".into())
    );
    assert_eq!(
        verdict(&http, &app, get.clone(), "/elsewhere", Some(&token)).await,
        (403, "RESOURCE_NOT_ALLOWED".into())
    );
    let r = call(get.clone(), "/reports/1", None).await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(status_and_reason(r).await, (401, "MALFORMED".into()));
    assert_eq!(
        verdict(&http, &app, get.clone(), "/reports/1", Some("tgl_forged")).await,
        (401, "MALFORMED".into())
    );
    // Another owner's token: refused, and none of its uses spent.
    let (_, foreign) = api
        .mint(&owner("stranger"), json!({"resource": "/", "maxUses": 3}))
        .await;
    assert_eq!(
        verdict(&http, &app, get.clone(), "/reports/1", Some(&foreign)).await,
        (403, "OWNER_NOT_ALLOWED".into())
    );
    assert_eq!(
        api.validate(json!({"token": foreign})).await["remainingUses"],
        2
    );

    // Rate-limited: refusals counted nothing, so two more fill the window.
    for _ in 0..2 {
        let r = call(get.clone(), "/reports/2", Some(&token)).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = call(get.clone(), "/reports/2", Some(&token)).await.unwrap();
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2592000).contains(&retry_after), "{retry_after}");
    assert_eq!(status_and_reason(r).await, (429, "RATE_LIMITED".into()));

    // Capabilities, EdDSA and ES256, verified offline: admitted with no
    // validate at all, and still admitted once the parent is deleted
    // (offline checks cannot learn of it before `exp`: the trade).
    let (parent_id, parent) = api.mint(&o, json!({"resource": "/reports"})).await;
    let tollgate = client(&api.base);
    let mut capabilities = Vec::new();
    for request in [MintRequest::new(), MintRequest::new().es256()] {
        match tollgate
            .mint(&parent, &request.resource("/reports/9"))
            .await
            .unwrap()
        {
            Minted::Capability(m) => capabilities.push(m.capability),
            refused => panic!("{refused:?}"),
        }
    }
    let before = validates.load(Ordering::SeqCst);
    for capability in &capabilities {
        let r = call(get.clone(), "/reports/9/pages", Some(capability))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"owner": o, "tokenId": parent_id, "offline": true})
        );
        assert_eq!(
            verdict(&http, &app, get.clone(), "/reports/8", Some(capability)).await,
            (403, "RESOURCE_NOT_ALLOWED".into())
        );
        assert_eq!(
            verdict(&http, &app, post.clone(), "/reports/9", Some(capability)).await,
            (403, "WRITE_NOT_ALLOWED".into())
        );
        // A signature that is not Tollgate's.
        let (signed, signature) = capability.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let forged = format!("{signed}.{flipped}{}", &signature[1..]);
        assert_eq!(
            verdict(&http, &app, get.clone(), "/reports/9", Some(&forged)).await,
            (401, "MALFORMED".into())
        );
    }
    let deleted = api
        .send(
            api.request("DELETE", &format!("/tokens/{parent_id}"))
                .header("x-owner", &o),
        )
        .await;
    assert_eq!(deleted.status, 204);
    let r = call(get.clone(), "/reports/9", Some(&capabilities[0]))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "offline: accepted until exp");
    assert_eq!(
        validates.load(Ordering::SeqCst),
        before,
        "offline capability checks call Tollgate zero times"
    );
    // The key decides the algorithm, never the header: an EdDSA
    // capability relabelled ES256 (and the reverse, naming the other
    // key) is refused.
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    for (capability, alg) in [(&capabilities[0], "ES256"), (&capabilities[1], "EdDSA")] {
        let (header, rest) = capability.split_once('.').unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        let kid = header["kid"].as_str().unwrap();
        let relabelled = json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string();
        let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(relabelled));
        assert_eq!(
            verdict(&http, &app, get.clone(), "/reports/9", Some(&forged)).await,
            (401, "MALFORMED".into()),
            "{alg}"
        );
    }
    // A capability with an audience: this API states none, so it is
    // refused offline as online.
    let (_, audienced) = api
        .mint(
            &o,
            json!({"resource": "/reports", "audiences": ["billing"]}),
        )
        .await;
    let Minted::Capability(billing) = tollgate
        .mint(&audienced, &MintRequest::new())
        .await
        .unwrap()
    else {
        panic!("refused")
    };
    for credential in [&billing.capability, &audienced] {
        assert_eq!(
            verdict(&http, &app, get.clone(), "/reports/9", Some(credential)).await,
            (403, "AUDIENCE_NOT_ALLOWED".into())
        );
    }
    // Another owner's capability is refused offline too.
    let (_, strangers) = api.mint(&owner("stranger"), json!({})).await;
    let Minted::Capability(theirs) = tollgate
        .mint(&strangers, &MintRequest::new())
        .await
        .unwrap()
    else {
        panic!("refused")
    };
    assert_eq!(
        verdict(
            &http,
            &app,
            get.clone(),
            "/reports/9",
            Some(&theirs.capability)
        )
        .await,
        (403, "OWNER_NOT_ALLOWED".into())
    );
}

/// Made-up key ids cost one fetch of the keys a minute, not one a check;
/// a known key verifies from the cache.
#[tokio::test]
async fn the_verifier_fetches_the_keys_once_for_a_flood_of_unknown_key_ids() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let (api, o) = (Api::new(), owner("jwks"));
    let jwks = api
        .send(api.request("GET", "/.well-known/jwks.json"))
        .await
        .text;
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let served = Router::new().route(
        "/jwks.json",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { ([("content-type", "application/json")], jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, served).await });
    let verifier = Verifier::builder(env("TOLLGATE_ISSUER"))
        .jwks_url(jwks_url)
        .owners(Owners::one(o.clone()))
        .build()
        .unwrap();

    let (_, token) = api.mint(&o, json!({})).await;
    let Minted::Capability(minted) = client(&api.base)
        .mint(&token, &MintRequest::new())
        .await
        .unwrap()
    else {
        panic!("refused")
    };
    let capability = verifier.verify(&minted.capability).await.unwrap();
    assert_eq!(capability.owner, o);
    let (header, rest) = minted.capability.split_once('.').unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    for n in 0..20 {
        let made_up = json!({"alg": header["alg"], "typ": "JWT", "kid": format!("made-up-{n}")});
        let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(made_up.to_string()));
        assert!(verifier.verify(&forged).await.is_err());
        verifier.verify(&minted.capability).await.unwrap();
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

/// The layer behind a nested router, with a relay token: the caller's
/// address (here set by an outer middleware, as a trusted proxy's would
/// be) is the one Tollgate checks, and the path checked is the whole one.
#[tokio::test]
async fn with_a_relay_the_callers_address_counts_and_the_whole_path_is_checked() {
    use axum::extract::Request;
    use axum::middleware::{from_fn, Next};
    let (api, o) = (Api::new(), owner("relayed"));
    let (_, relay) = api
        .mint(
            &o,
            json!({"type": "relay", "scopes": ["scope:tollgate:relay"]}),
        )
        .await;
    let tollgate = Client::builder(&api.base).relay(relay).build().unwrap();
    async fn who(who: Authorized) -> String {
        who.token_id().to_owned()
    }
    let inner = Router::new()
        .route("/reports/{*rest}", get(who))
        .layer(Authorize::new(tollgate, Owners::one(o.clone())));
    let app = Router::new().nest("/api", inner).layer(from_fn(
        |mut request: Request, next: Next| async move {
            let caller = request
                .headers()
                .get("x-test-caller")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            if let Some(ip) = caller {
                request.extensions_mut().insert(CallerAddress(ip));
            }
            next.run(request).await
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (id, bound) = api
        .mint(
            &o,
            json!({"resource": "/api/reports", "allowedAddresses": ["203.0.113.0/24"]}),
        )
        .await;
    let (_, unprefixed) = api.mint(&o, json!({"resource": "/reports"})).await;
    let http = reqwest::Client::new();
    let call = |token: &str, caller: &str| {
        http.get(format!("{base}/api/reports/1"))
            .bearer_auth(token)
            .header("x-test-caller", caller)
            .send()
    };
    let r = call(&bound, "203.0.113.9").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), id);
    let r = call(&bound, "198.51.100.7").await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "ADDRESS_NOT_ALLOWED");
    // The nested router saw `/reports/1`; the layer checks `/api/reports/1`.
    let r = call(&unprefixed, "203.0.113.9").await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "RESOURCE_NOT_ALLOWED");
}

/// A stub Tollgate that answers every request `status`, after `delay`,
/// counting them.
async fn stub(status: u16, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    let app = Router::new().fallback(any(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("retry-after", "0")],
                "{}",
            )
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn an_admission_is_resent_only_when_it_never_ran_and_the_layer_fails_closed() {
    let retrying = |base: &str| {
        Client::builder(base)
            .retries(3, Duration::from_millis(1))
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };
    // A 503 may follow a spent use: the admission is not sent again; a
    // release is idempotent: sent again, up to the retries.
    let (base, seen) = stub(503, Duration::ZERO).await;
    let tollgate = retrying(&base);
    let answer = tollgate.validate(&ValidateRequest::new("tgl_x")).await;
    assert!(
        matches!(answer, Err(Error::Unavailable { .. })),
        "{answer:?}"
    );
    assert_eq!(seen.swap(0, Ordering::SeqCst), 1);
    let answer = tollgate.release("tgl_x", "lease1", Some(0)).await;
    assert!(
        matches!(answer, Err(Error::Unavailable { .. })),
        "{answer:?}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 4);

    // API Gateway's 429 comes before any function runs: resent.
    let (base, seen) = stub(429, Duration::ZERO).await;
    let answer = retrying(&base).mint("tgl_x", &MintRequest::new()).await;
    assert!(
        matches!(answer, Err(Error::Unavailable { .. })),
        "{answer:?}"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 4);

    // An admission whose answer is late may have run: not resent.
    let (base, seen) = stub(200, Duration::from_secs(2)).await;
    let tollgate = retrying(&base);
    let answer = tollgate.acquire(&ValidateRequest::new("tgl_x"), None).await;
    assert!(matches!(answer, Err(Error::Transport(_))), "{answer:?}");
    assert_eq!(seen.swap(0, Ordering::SeqCst), 1);
    let answer = tollgate.renew("tgl_x", "lease1").await;
    assert!(matches!(answer, Err(Error::Transport(_))), "{answer:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 4);

    // Nothing listening: the layer answers 503 and the app never runs.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = protected_app(Authorize::new(client(&nowhere), Owners::Any)).await;
    let r = reqwest::Client::new()
        .get(format!("{app}/reports/1"))
        .bearer_auth("tgl_anything")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
}
