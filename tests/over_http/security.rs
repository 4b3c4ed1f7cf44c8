//! Regression tests of the second security pass, over HTTP through the
//! local gateway: protected APIs bound to their owners and audiences,
//! capabilities ended by a roll, path segments that a server behind the
//! API could read as another path, a mint that spends only once it can
//! answer, scopes that must match themselves, and capabilities bound to
//! their parent's address.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tollgate_tests::{owner, Api};

use crate::gateway::{demo, demo_owner};

/// The example app bound to no one (a second gateway, `make test`).
fn unbound() -> Api {
    Api {
        base: std::env::var("TOLLGATE_UNBOUND_URL").expect("set by make test"),
        ..Api::new()
    }
}

fn claims_of(capability: &str) -> Value {
    let payload = capability.split('.').nth(1).expect("a JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

#[tokio::test]
async fn a_protected_api_admits_only_the_owners_and_audience_it_states() {
    let api = Api::new();
    let (_, mine) = api.mint(&demo_owner(), json!({"resource": "/demo"})).await;
    // Any account holder can mint a token for "/" that may write: refused
    // by an API that does not list its owner.
    let stranger = owner("stranger");
    let (_, foreign) = api
        .mint(&stranger, json!({"resource": "/", "write": true}))
        .await;
    assert_eq!(demo(&api, "GET", "/demo/x", Some(&mine)).await.0, 200);
    assert_eq!(demo(&api, "GET", "/demo/x", Some(&foreign)).await.0, 403);
    assert_eq!(demo(&api, "POST", "/demo/x", Some(&foreign)).await.0, 403);
    // Nor does a capability of the foreign token get in.
    let cap = api
        .mint_capability(&foreign, json!({"ttlSeconds": 300}))
        .await;
    assert_eq!(cap.status, 201, "{}", cap.text);
    let cap = cap.json()["capability"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&cap)["own"], stranger.as_str());
    assert_eq!(demo(&api, "GET", "/demo/x", Some(&cap)).await.0, 403);

    // An API that states no owners lets no one in, its own owner included.
    let none = unbound();
    assert_eq!(demo(&none, "GET", "/demo/x", Some(&mine)).await.0, 403);
    assert_eq!(demo(&none, "GET", "/demo/x", Some(&foreign)).await.0, 403);

    // Audiences: the example API's audience is `demo`.
    let (_, for_demo) = api
        .mint(
            &demo_owner(),
            json!({"resource": "/demo", "audiences": ["demo", "other"]}),
        )
        .await;
    let (_, for_billing) = api
        .mint(&demo_owner(), json!({"audiences": ["billing"]}))
        .await;
    assert_eq!(demo(&api, "GET", "/demo/x", Some(&for_demo)).await.0, 200);
    assert_eq!(
        demo(&api, "GET", "/demo/x", Some(&for_billing)).await.0,
        403
    );
    // A capability narrowed to another audience is refused there too.
    let narrowed = api
        .mint_capability(&for_demo, json!({"audience": "other"}))
        .await;
    assert_eq!(narrowed.status, 201, "{}", narrowed.text);
    let narrowed = narrowed.json()["capability"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&narrowed)["aud"], json!(["other"]));
    assert_eq!(demo(&api, "GET", "/demo/x", Some(&narrowed)).await.0, 403);

    // Validate checks a named audience, with its reason.
    let v = api
        .validate(json!({"token": for_billing, "audience": "demo"}))
        .await;
    assert_eq!(
        v,
        json!({"active": false, "reason": "AUDIENCE_NOT_ALLOWED"})
    );
    let v = api
        .validate(json!({"token": for_billing, "audience": "billing"}))
        .await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["audiences"], json!(["billing"]));
    let bad = api
        .send(
            api.request("POST", "/tokens")
                .header("x-owner", demo_owner())
                .header("content-type", "application/json")
                .body(r#"{"audiences": ["Not/An Audience"]}"#),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["errors"][0]["field"], "audiences[0]");
}

/// PyJWT, with the offline recipe of docs/api.md: `Ok(claims)` or the
/// reason it refused.
fn offline(jwks: &str, capability: &str, audience: &str, owners: &str) -> Result<Value, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/pyjwt_verify.py");
    let out = std::process::Command::new("python3")
        .args([
            script,
            jwks,
            capability,
            &tollgate_tests::env("TOLLGATE_ISSUER"),
            audience,
            owners,
        ])
        .output()
        .expect("python3 runs (make test puts the tools' venv first on PATH)");
    match out.status.success() {
        true => Ok(serde_json::from_slice(&out.stdout).expect("claims as JSON")),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
    }
}

#[tokio::test]
async fn an_offline_verifier_checks_audience_and_owner_too() {
    let api = Api::new();
    let o = owner("offline");
    let (_, token) = api
        .mint(&o, json!({"audiences": ["billing", "search"]}))
        .await;
    let cap = api
        .mint_capability(&token, json!({"audience": "billing"}))
        .await;
    let cap = cap.json()["capability"].as_str().unwrap().to_owned();
    let jwks = api
        .send(api.request("GET", "/.well-known/jwks.json"))
        .await
        .text;
    let claims = offline(&jwks, &cap, "billing", &o).expect("its own audience and owner");
    assert_eq!(
        (claims["aud"].clone(), claims["own"].clone()),
        (json!(["billing"]), json!(o))
    );
    assert_eq!(
        offline(&jwks, &cap, "search", &o),
        Err("AUDIENCE_NOT_ALLOWED".into())
    );
    assert_eq!(
        offline(&jwks, &cap, "-", &o),
        Err("AUDIENCE_NOT_ALLOWED".into())
    );
    assert_eq!(
        offline(&jwks, &cap, "billing", "someone-else"),
        Err("OWNER_NOT_ALLOWED".into())
    );
    // A capability of a token without audiences: any audience.
    let (_, free) = api.mint(&o, json!({})).await;
    let cap = api.mint_capability(&free, json!({})).await;
    let cap = cap.json()["capability"].as_str().unwrap().to_owned();
    assert!(offline(&jwks, &cap, "anything", &o).is_ok());
}

#[tokio::test]
async fn a_roll_ends_the_capabilities_of_the_secret_it_replaced() {
    let api = Api::new();
    let o = demo_owner();
    let (id, token) = api.mint(&o, json!({"resource": "/demo"})).await;
    let minted = api
        .mint_capability(&token, json!({"ttlSeconds": 86400}))
        .await;
    let cap = minted.json()["capability"].as_str().unwrap().to_owned();
    assert_eq!(api.validate(json!({"token": cap})).await["active"], true);
    assert_eq!(demo(&api, "GET", "/demo/x", Some(&cap)).await.0, 200);

    // Rolled with a grace: the old secret's capabilities last as long as it.
    let roll = |grace: u64| {
        let api = api.clone();
        let (o, id) = (o.clone(), id.clone());
        async move {
            let a = api
                .send(
                    api.request("POST", &format!("/tokens/{id}/roll"))
                        .header("x-owner", &o)
                        .header("content-type", "application/json")
                        .body(json!({"graceSeconds": grace}).to_string()),
                )
                .await;
            assert_eq!(a.status, 200, "{}", a.text);
            let new = a.json()["token"].as_str().unwrap().to_owned();
            tollgate_tests::record_minted(&new);
            new
        }
    };
    let second = roll(600).await;
    let v = api.validate(json!({"token": cap})).await;
    assert_eq!(v["active"], true, "{v}");
    assert!(v["secretExpiresAt"].is_string(), "{v}");
    let second_cap = api.mint_capability(&second, json!({})).await;
    let second_cap = second_cap.json()["capability"].as_str().unwrap().to_owned();

    // Rolled again with no grace: every capability of the first secret and
    // of the second one ends at once, online: validate, the authorizer and
    // leases.
    let third = roll(0).await;
    for old in [&cap, &second_cap] {
        assert_eq!(
            api.validate(json!({"token": old})).await,
            json!({"active": false, "reason": "NOT_FOUND"})
        );
        assert_eq!(demo(&api, "GET", "/demo/x", Some(old)).await.0, 403);
        let v = api.validate(json!({"token": old, "acquire": true})).await;
        assert_eq!(v["reason"], "NOT_FOUND");
    }
    // The new secret's capabilities work.
    let fresh = api.mint_capability(&third, json!({})).await;
    let fresh = fresh.json()["capability"].as_str().unwrap().to_owned();
    assert_eq!(api.validate(json!({"token": fresh})).await["active"], true);
}

#[tokio::test]
async fn path_segments_a_server_could_read_as_another_path_are_refused() {
    let api = Api::new();
    let (_, public) = api
        .mint(&demo_owner(), json!({"resource": "/demo/public"}))
        .await;
    assert_eq!(
        demo(&api, "GET", "/demo/public/a", Some(&public)).await.0,
        200
    );
    for trick in [
        "/demo/public/..;/admin",
        "/demo/public/..%3b/admin",
        "/demo/public/..%3B/admin",
        "/demo/public/%EF%BC%8E%EF%BC%8E/admin",
        "/demo/public/.%2e/admin",
        "/demo/public;x=1/admin",
        "/demo/public/...",
    ] {
        assert_eq!(
            demo(&api, "GET", trick, Some(&public)).await.0,
            403,
            "{trick} through the authorizer"
        );
        let v = api
            .validate(json!({"token": public, "resource": trick}))
            .await;
        assert_eq!(v["reason"], "RESOURCE_NOT_ALLOWED", "{trick}: {v}");
    }
    let v = api
        .validate(json!({"token": public, "resource": "/demo/public/\u{FF0E}\u{FF0E}/admin"}))
        .await;
    assert_eq!(v["reason"], "RESOURCE_NOT_ALLOWED");
}

/// 32 scopes that each normalise to just under the limit.
fn long_scopes() -> Vec<String> {
    (0..32)
        .map(|i| format!("scope:svc:p{i:02}?a={}", "x".repeat(490)))
        .collect()
}

#[tokio::test]
async fn a_mint_too_long_to_answer_spends_nothing() {
    let api = Api::new();
    let o = owner("mint-size");
    let (id, token) = api
        .mint(&o, json!({"maxUses": 3, "scopes": long_scopes()}))
        .await;
    let a = api
        .mint_capability(&token, json!({"scopes": long_scopes()}))
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json()["errors"][0]["field"], "scopes");
    assert_eq!(api.detail(&o, &id).await.json()["remainingUses"], 3);
    // A narrowing that fails spends nothing either.
    let a = api
        .mint_capability(&token, json!({"resource": "/x", "write": true}))
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(api.detail(&o, &id).await.json()["remainingUses"], 3);
}

#[tokio::test]
async fn a_scope_longer_than_the_limit_once_normalised_is_refused() {
    let api = Api::new();
    let o = owner("scope-len");
    // 495 characters as sent, 1451 once percent-encoded.
    let long = format!("scope:client:x?a={}", "!".repeat(478));
    let a = api.create(&o, json!({"scopes": [long]})).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json()["errors"][0]["field"], "scopes[0]");
    let (id, token) = api.mint(&o, json!({})).await;
    let a = api.patch(&o, &id, json!({"scopes": [long]})).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json()["errors"][0]["field"], "scopes[0]");
    let a = api
        .send(
            api.request("POST", "/validate")
                .header("content-type", "application/json")
                .body(json!({"token": token, "scope": long}).to_string()),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json()["errors"][0]["field"], "scope");
    // The longest that fits is stored and matches itself.
    let fits = format!("scope:client:x?a={}", "!".repeat(165));
    let (_, granted) = api.mint(&o, json!({"scopes": [fits]})).await;
    let v = api.validate(json!({"token": granted, "scope": fits})).await;
    assert_eq!(v["active"], true, "{v}");
}

#[tokio::test]
async fn a_capability_of_an_address_bound_parent_is_bound_offline_too() {
    let api = Api::new();
    let o = owner("addr-cap");
    // The gateway's callers come from 127.0.0.1.
    let (_, one) = api
        .mint(&o, json!({"allowedAddresses": ["127.0.0.1"]}))
        .await;
    let a = api.mint_capability(&one, json!({})).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json()["address"], "127.0.0.1");
    let cap = a.json()["capability"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&cap)["addr"], "127.0.0.1/32");
    let (_, several) = api
        .mint(&o, json!({"allowedAddresses": ["127.0.0.1", "10.0.0.0/8"]}))
        .await;
    let a = api.mint_capability(&several, json!({})).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json()["errors"][0]["field"], "address");
    let a = api
        .mint_capability(&several, json!({"address": "127.0.0.1"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
}
