//! Capabilities over real HTTP: minted from a token, validated as the
//! token narrowed, verified offline by PyJWT (an independent JWT library)
//! against the served JWKS, revoked through their parent, and refused
//! where a capability may not go.

use serde_json::{json, Value};
use tollgate_tests::{env, owner, Answer, Api};

/// The fields a 400 names, sorted.
fn error_fields(a: &Answer) -> Vec<String> {
    let mut fields: Vec<String> = a.json()["errors"]
        .as_array()
        .expect("a 400 lists its errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect();
    fields.sort();
    fields
}

/// PyJWT's verdict on `capability` against the JWKS the stack serves.
fn pyjwt_claims(jwks: &str, capability: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/pyjwt_verify.py");
    let out = std::process::Command::new("python3")
        .args([script, jwks, capability, &env("TOLLGATE_ISSUER")])
        .output()
        .expect("python3 runs (make test puts the tools' venv first on PATH)");
    assert!(
        out.status.success(),
        "PyJWT refused the capability: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("claims as JSON")
}

#[tokio::test]
async fn a_capability_is_its_parent_narrowed_verified_offline_and_revoked_online() {
    let api = Api::new();
    let o = owner("cap");
    let (id, token) = api
        .mint(
            &o,
            json!({"resource": "/teams", "write": true, "maxUses": 10,
                   "scopes": ["scope:client:incoming?clientName=alice",
                              "scope:client:outgoing?appSid=AP1"]}),
        )
        .await;
    let minted = api
        .mint_capability(
            &token,
            json!({"ttlSeconds": 600, "resource": "/teams/1", "write": false,
               "scopes": ["scope:client:incoming?clientName=alice"]}),
        )
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    let m = minted.json();
    let cap = m["capability"].as_str().unwrap().to_owned();
    assert_eq!(
        (m["resource"].clone(), m["write"].clone()),
        (json!("/teams/1"), json!(false))
    );
    let lifetime = m["expire"].as_i64().unwrap() - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((590..=600).contains(&lifetime), "{lifetime}");

    // Validated as the parent narrowed: minting spent a use, so does this.
    let v = api
        .validate(json!({"token": cap, "resource": "/teams/1/x",
                         "scope": "scope:client:incoming?clientName=alice"}))
        .await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(
        (v["id"].as_str(), v["remainingUses"].as_i64()),
        (Some(id.as_str()), Some(8))
    );
    assert_eq!(
        v["capability"]["scopes"],
        json!(["scope:client:incoming?clientName=alice"])
    );
    assert!(v["capability"]["id"].is_string() && v["capability"]["expiresAt"].is_string());
    // The answer is the parent narrowed: the capability's resource, write
    // flag and end.
    assert_eq!(
        (v["resource"].as_str(), v["write"].as_bool()),
        (Some("/teams/1"), Some(false))
    );
    assert_eq!(v["expire"], m["expire"]);
    for (ask, reason) in [
        (json!({"write": true}), "WRITE_NOT_ALLOWED"),
        (json!({"resource": "/teams/2"}), "RESOURCE_NOT_ALLOWED"),
        // The parent has this scope; the capability does not.
        (
            json!({"scope": "scope:client:outgoing?appSid=AP1"}),
            "SCOPE_NOT_ALLOWED",
        ),
    ] {
        let mut body = ask.clone();
        body["token"] = json!(cap);
        assert_eq!(api.validate(body).await["reason"], reason, "{ask}");
    }
    // As a Bearer credential too.
    let bearer = api
        .send(
            api.request("POST", "/validate")
                .header("authorization", format!("Bearer {cap}")),
        )
        .await;
    assert_eq!(bearer.json()["active"], true, "{}", bearer.text);

    // Offline: the JWKS, cacheable, and an independent library verifies.
    let jwks = api.send(api.request("GET", "/.well-known/jwks.json")).await;
    assert_eq!(jwks.status, 200);
    assert!(jwks
        .header("cache-control")
        .is_some_and(|c| c.contains("max-age=300")));
    let claims = pyjwt_claims(&jwks.text, &cap);
    assert_eq!(claims["sub"], json!(id));
    assert_eq!(claims["scope"], "scope:client:incoming?clientName=alice");
    assert_eq!(claims["resource"], "/teams/1");

    // ES256, for verifiers that take only RS*/ES* (API Gateway's JWT
    // authorizers): online and offline alike, its key found in the JWKS
    // through the discovery document.
    let es = api
        .mint_capability(
            &token,
            json!({"alg": "ES256", "resource": "/teams/1", "ttlSeconds": 600}),
        )
        .await;
    assert_eq!(es.status, 201, "{}", es.text);
    assert_eq!(es.json()["alg"], "ES256");
    let es = es.json()["capability"].as_str().unwrap().to_owned();
    assert_eq!(api.validate(json!({"token": es})).await["active"], true);
    let discovery = api
        .send(api.request("GET", "/.well-known/openid-configuration"))
        .await;
    assert_eq!(discovery.status, 200, "{}", discovery.text);
    let discovery = discovery.json();
    // The stack's issuer is the gateway's URL, as a deployment's is its API's.
    let issuer = env("TOLLGATE_ISSUER");
    assert_eq!(discovery["issuer"], issuer.as_str());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json")
    );
    assert!(discovery["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("ES256")));
    let claims = pyjwt_claims(&jwks.text, &es);
    assert_eq!(claims["sub"], json!(id));
    assert_eq!(claims["resource"], "/teams/1");

    // What a capability may not do.
    let again = api.mint_capability(&cap, json!({})).await;
    assert_eq!(again.status, 400, "{}", again.text);
    assert_eq!(again.json()["errors"][0]["field"], "token");
    let manage = api
        .send(
            api.request("GET", "/tokens")
                .header("x-owner", &o)
                .header("authorization", format!("Bearer {cap}")),
        )
        .await;
    assert_eq!(manage.status, 403, "{}", manage.text);

    // Online checks read the parent: disabling or deleting it revokes.
    assert_eq!(
        api.patch(&o, &id, json!({"enabled": false})).await.status,
        200
    );
    assert_eq!(
        api.validate(json!({"token": cap})).await["reason"],
        "DISABLED"
    );
    assert_eq!(
        api.patch(&o, &id, json!({"enabled": true})).await.status,
        200
    );
    assert_eq!(api.validate(json!({"token": cap})).await["active"], true);
    let deleted = api
        .send(
            api.request("DELETE", &format!("/tokens/{id}"))
                .header("x-owner", &o),
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        api.validate(json!({"token": cap})).await["reason"],
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn minting_asks_no_more_than_the_parent_has_and_spends_its_uses() {
    let api = Api::new();
    let o = owner("capmint");
    let (_, token) = api
        .mint(
            &o,
            json!({"resource": "/teams", "maxUses": 2,
                   "scopes": ["scope:client:outgoing?appSid=AP1"],
                   "allowedAddresses": ["127.0.0.0/8"]}),
        )
        .await;
    let too_much = api
        .mint_capability(
            &token,
            json!({"resource": "/other", "write": true, "address": "10.0.0.0/8",
               "scopes": ["scope:client:incoming"], "ttlSeconds": 0}),
        )
        .await;
    assert_eq!(too_much.status, 400, "{}", too_much.text);
    let fields = error_fields(&too_much);
    assert_eq!(fields, ["ttlSeconds"], "shape errors come first");
    let too_much = api
        .mint_capability(
            &token,
            json!({"resource": "/other", "write": true, "address": "10.0.0.0/8",
               "scopes": ["scope:client:incoming"]}),
        )
        .await;
    assert_eq!(too_much.status, 400, "{}", too_much.text);
    let fields = error_fields(&too_much);
    assert_eq!(fields, ["address", "resource", "scopes[0]", "write"]);
    // A refused mint spent nothing: two capabilities, then the parent is spent.
    let bound = json!({"address": "127.0.0.1", "scopes": ["scope:client:outgoing?appSid=AP1&appParams=a%3Db"]});
    let first = api.mint_capability(&token, bound.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let cap = first.json()["capability"].as_str().unwrap().to_owned();
    assert_eq!(api.mint_capability(&token, json!({})).await.status, 201);
    // The capability's validates spend the parent's uses: none left.
    let spent = api.mint_capability(&token, json!({})).await;
    assert_eq!(
        (spent.status, spent.json()["reason"].clone()),
        (200, json!("USAGE_EXHAUSTED"))
    );
    assert_eq!(
        api.validate(json!({"token": cap})).await["reason"],
        "USAGE_EXHAUSTED"
    );
}

#[tokio::test]
async fn a_capability_takes_renews_and_releases_its_parents_leases_and_validates_by_form() {
    let api = Api::new();
    let o = owner("caplease");
    let (id, token) = api.mint(&o, json!({"maxConcurrent": 1})).await;
    let minted = api
        .mint_capability(&token, json!({"ttlSeconds": 300}))
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    let cap = minted.json()["capability"].as_str().unwrap().to_owned();
    let taken = api.validate(json!({"token": cap, "acquire": true})).await;
    let lease = taken["lease"]["id"].as_str().expect("a lease").to_owned();
    // The parent's slot is the capability's: the parent is at its cap.
    let parent = api.validate(json!({"token": token, "acquire": true})).await;
    assert_eq!(parent["reason"], "CONCURRENCY_LIMIT");
    let call = |method: &str| {
        api.request(method, &format!("/validate/leases/{lease}"))
            .header("authorization", format!("Bearer {cap}"))
    };
    assert_eq!(api.send(call("PUT")).await.status, 200);
    assert_eq!(api.send(call("DELETE")).await.status, 204);
    assert_eq!(api.detail(&o, &id).await.json()["activeLeases"], 0);
    // Form-encoded, as any validate.
    let form = api
        .send(
            api.request("POST", "/validate")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={cap}&resource=%2Fanything")),
        )
        .await;
    assert_eq!(form.json()["active"], true, "{}", form.text);
}

/// Authorize invocations the gateway has made for a route, from its log.
fn authorizer_calls(route: &str) -> usize {
    std::fs::read_to_string(env("TOLLGATE_GATEWAY_LOG"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("authorizer ") && l.ends_with(&format!(" for {route}")))
        .count()
}

/// The example app's `/verified/*` sits behind a JWT authorizer whose
/// issuer is the stack's: the gateway finds the keys through Tollgate's
/// discovery document and JWKS, over HTTP, as API Gateway does, and
/// verifies with PyJWT. ES256 capabilities with the app's audience and
/// scope pass with no call to `authorize`; anything else is refused.
#[tokio::test]
async fn api_gateway_verifies_es256_capabilities_with_no_lambda_call() {
    let api = Api::new();
    let o = owner("cap-jwt");
    let (_, token) = api
        .mint(
            &o,
            json!({"audiences": ["demo"], "scopes": ["scope:demo:read"]}),
        )
        .await;
    let cap = |body: Value| {
        let (api, token) = (api.clone(), token.clone());
        async move {
            let a = api.mint_capability(&token, body).await;
            assert_eq!(a.status, 201, "{}", a.text);
            a.json()["capability"].as_str().unwrap().to_owned()
        }
    };
    let call = |credential: String| {
        let api = api.clone();
        async move {
            api.send(
                api.request("GET", "/verified/reports")
                    .bearer_auth(credential),
            )
            .await
            .status
        }
    };
    let route = "GET /verified/{proxy+}";
    let before = authorizer_calls(route);
    let read = json!(["scope:demo:read"]);
    let good =
        cap(json!({"alg": "ES256", "audience": "demo", "scopes": read, "ttlSeconds": 600})).await;
    assert_eq!(call(good.clone()).await, 200);
    assert_eq!(call(good).await, 200);

    // Refused: an EdDSA capability (API Gateway takes RS*/ES* only),
    let eddsa = cap(json!({"audience": "demo", "scopes": read})).await;
    assert_eq!(call(eddsa).await, 401);
    // another audience,
    let (_, elsewhere) = api
        .mint(
            &o,
            json!({"audiences": ["billing"], "scopes": ["scope:demo:read"]}),
        )
        .await;
    let other_aud = api
        .mint_capability(&elsewhere, json!({"alg": "ES256", "scopes": read}))
        .await
        .json()["capability"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(call(other_aud).await, 401);
    // an expired one,
    let brief =
        cap(json!({"alg": "ES256", "audience": "demo", "scopes": read, "ttlSeconds": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(call(brief).await, 401);
    // one signed by another P-256 key under Tollgate's key id,
    let real = cap(json!({"alg": "ES256", "audience": "demo", "scopes": read})).await;
    let (input, _) = real.rsplit_once('.').unwrap();
    let other = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let sig: p256::ecdsa::Signature =
        p256::ecdsa::signature::Signer::sign(&other, input.as_bytes());
    use base64::Engine;
    let forged = format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.normalize_s().to_bytes())
    );
    assert_eq!(call(forged).await, 401);
    // and one without the route's scope (403).
    let unscoped = api
        .mint_capability(&token, json!({"alg": "ES256", "audience": "demo"}))
        .await
        .json()["capability"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(call(unscoped).await, 403);
    assert_eq!(authorizer_calls(route), before, "authorize was invoked");
}
