//! Capabilities over real HTTP: minted from a token, validated as the
//! token narrowed, verified offline by PyJWT (an independent JWT library)
//! against the served JWKS, revoked through their parent, and refused
//! where a capability may not go.

use serde_json::{json, Value};
use tollgate_tests::{owner, Answer, Api};

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
        .args([script, jwks, capability, "tollgate"])
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
