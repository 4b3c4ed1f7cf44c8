//! Through the local API gateway as a client of the deployed stack would
//! see it: the management routes behind the JWT authorizer (played against
//! the local development issuer), the example app's route behind
//! Tollgate's own `authorize`, 500 concurrent requests, and the hostile
//! catalogue's bodies on the real routes.

use futures::future::join_all;
use futures::StreamExt;
use serde_json::{json, Value};
use tollgate_tests::{hostile_bodies, owner, Api, HOSTILE_CONTENT_TYPES};

/// A JWT of the local development issuer, from `scripts/dev_issuer.py`
/// (the key `make test` made); `extra` are its flags (`--aud x`, ...).
fn dev_jwt(sub: &str, extra: &[&str]) -> String {
    let key = std::env::var("TOLLGATE_DEV_ISSUER_KEY").expect("set by make test");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/dev_issuer.py");
    let out = std::process::Command::new("python3")
        .args([script, "token", "--key", &key, "--sub", sub])
        .args(extra)
        .output()
        .expect("python3 runs (make test puts the tools' venv first on PATH)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn management_routes_behind_the_jwt_authorizer() {
    let api = Api::new();
    let o = owner("jwt");
    let good = dev_jwt(&o, &[]);
    let created = api
        .send(
            api.request("POST", "/tokens")
                .bearer_auth(&good)
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    tollgate_tests::record_minted(created.json()["token"].as_str().unwrap());
    let routes = [
        ("GET", "/tokens".to_owned()),
        ("POST", "/tokens".into()),
        ("GET", format!("/tokens/{id}")),
        ("PATCH", format!("/tokens/{id}")),
        ("POST", format!("/tokens/{id}/roll")),
        ("DELETE", format!("/tokens/{id}")),
    ];
    let expired = dev_jwt(&o, &["--exp-offset", "-60"]);
    let early = dev_jwt(&o, &["--nbf-offset", "300"]);
    let wrong_aud = dev_jwt(&o, &["--aud", "someone-else"]);
    let wrong_iss = dev_jwt(&o, &["--iss", "https://issuer.invalid"]);
    for (m, r) in &routes {
        for (what, credential) in [
            ("expired", Some(&expired)),
            ("not yet valid", Some(&early)),
            ("wrong audience", Some(&wrong_aud)),
            ("wrong issuer", Some(&wrong_iss)),
            ("no credential", None),
        ] {
            let mut rb = api.request(m, r).header("content-type", "application/json");
            if let Some(c) = credential {
                rb = rb.bearer_auth(c);
            }
            let a = api.send(rb.body("{}")).await;
            assert_eq!(a.status, 401, "{m} {r} with {what}: {}", a.text);
            assert_eq!(a.json(), json!({"message": "Unauthorized"}));
        }
    }
    // A valid JWT reaches every function; the owner is its `sub`.
    let patched = api
        .send(
            api.request("PATCH", &format!("/tokens/{id}"))
                .bearer_auth(&good)
                .header("content-type", "application/json")
                .body(r#"{"description":"via jwt"}"#),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let listed = api
        .send(api.request("GET", "/tokens").bearer_auth(&good))
        .await;
    assert_eq!(listed.json()["tokens"][0]["description"], "via jwt");
    let rolled = api
        .send(
            api.request("POST", &format!("/tokens/{id}/roll"))
                .bearer_auth(&good)
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
    assert_eq!(rolled.status, 200, "{}", rolled.text);
    tollgate_tests::record_minted(rolled.json()["token"].as_str().unwrap());
    // Another subject sees none of it.
    let other = dev_jwt(&owner("jwt-other"), &[]);
    let a = api
        .send(
            api.request("GET", &format!("/tokens/{id}"))
                .bearer_auth(&other),
        )
        .await;
    assert_eq!(a.status, 404);
    let a = api
        .send(
            api.request("DELETE", &format!("/tokens/{id}"))
                .bearer_auth(&good),
        )
        .await;
    assert_eq!(a.status, 204);
}

/// The owner the example app accepts (its `TollgateOwners`, set by `make
/// test` when it starts the gateway).
pub fn demo_owner() -> String {
    std::env::var("TOLLGATE_DEMO_OWNER").unwrap_or_else(|_| "demo-owner".into())
}

/// Calls the example app's protected route with `credential`.
pub async fn demo(api: &Api, method: &str, path: &str, credential: Option<&str>) -> (u16, Value) {
    let mut rb = api.request(method, path);
    if let Some(c) = credential {
        rb = rb.bearer_auth(c);
    }
    let a = api.send(rb).await;
    (
        a.status,
        serde_json::from_str(&a.text).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_example_route_behind_tollgates_authorizer() {
    let api = Api::new();
    let o = demo_owner();
    let (scoped_id, scoped) = api
        .mint(
            &o,
            json!({"resource": "/demo/reports", "write": false, "maxUses": 5, "tags": {"team": "blue"}}),
        )
        .await;
    let (_, elsewhere) = api.mint(&o, json!({"resource": "/billing"})).await;
    let (writer_id, writer) = api
        .mint(&o, json!({"resource": "/demo", "write": true}))
        .await;

    // Admitted inside its resource; the echo sees the authorizer's context.
    let (s, echo) = demo(&api, "GET", "/demo/reports/7", Some(&scoped)).await;
    assert_eq!(s, 200, "{echo}");
    assert_eq!(echo["path"], "/demo/reports/7");
    let ctx = &echo["authorizer"];
    assert_eq!(ctx["owner"], o.as_str());
    assert_eq!(ctx["tokenId"], scoped_id.as_str());
    assert_eq!(ctx["tags"], json!({"team": "blue"}).to_string());
    // A use was spent by the authorizer, as a validate spends it.
    let detail = api.detail(&o, &scoped_id).await.json();
    assert_eq!(detail["remainingUses"], 4);

    // Refused: outside its resource, a read-only token on POST, no token,
    // a forged one.
    assert_eq!(demo(&api, "GET", "/demo/admin", Some(&scoped)).await.0, 403);
    assert_eq!(
        demo(&api, "GET", "/demo/reports/7", Some(&elsewhere))
            .await
            .0,
        403
    );
    assert_eq!(
        demo(&api, "POST", "/demo/reports/7", Some(&scoped)).await.0,
        403
    );
    assert_eq!(demo(&api, "GET", "/demo/reports/7", None).await.0, 401);
    let flipped = if scoped.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{flipped}", &scoped[..scoped.len() - 1]);
    assert_eq!(
        demo(&api, "GET", "/demo/reports/7", Some(&forged)).await.0,
        403
    );
    // A token with write access may POST.
    let (s, echo) = demo(&api, "POST", "/demo/reports/7", Some(&writer)).await;
    assert_eq!((s, &echo["method"]), (200, &json!("POST")));

    // A capability of the writer, narrowed to /demo/reports, read only.
    let minted = api
        .send(
            api.request("POST", "/validate/capabilities")
                .bearer_auth(&writer)
                .header("content-type", "application/json")
                .body(r#"{"ttlSeconds": 300, "resource": "/demo/reports", "write": false}"#),
        )
        .await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    let cap = minted.json()["capability"].as_str().unwrap().to_owned();
    let (s, echo) = demo(&api, "GET", "/demo/reports/1", Some(&cap)).await;
    assert_eq!(s, 200, "{echo}");
    assert_eq!(echo["authorizer"]["tokenId"], writer_id.as_str());
    assert!(echo["authorizer"]["capabilityId"].is_string());
    assert_eq!(demo(&api, "GET", "/demo/other", Some(&cap)).await.0, 403);
    assert_eq!(
        demo(&api, "PUT", "/demo/reports/1", Some(&cap)).await.0,
        403
    );

    // A token on a management route: the JWT authorizer stands in front,
    // as in AWS, and answers 401 before any function runs (the functions'
    // own 403 for a token or a `tokenId` context is tested in `events.rs`
    // and `e2e.rs`).
    let a = api
        .send(api.request("GET", "/tokens").bearer_auth(&writer))
        .await;
    assert_eq!(a.status, 401);

    // Revoked: refused on the very next call (the cache is off).
    let deleted = api
        .send(
            api.request("DELETE", &format!("/tokens/{writer_id}"))
                .header("x-owner", &o),
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        demo(&api, "POST", "/demo/reports/7", Some(&writer)).await.0,
        403
    );
    assert_eq!(
        demo(&api, "GET", "/demo/reports/1", Some(&cap)).await.0,
        403
    );
}

#[tokio::test]
async fn five_hundred_concurrent_requests_all_answered() {
    let api = Api::new();
    let calls = (0..500).map(|i| {
        let api = api.clone();
        async move {
            let rb = if i % 2 == 0 {
                api.request("GET", "/.well-known/jwks.json")
            } else {
                api.request("POST", "/validate")
                    .header("content-type", "application/json")
                    .body(r#"{"token":"tgl_not_a_token"}"#)
            };
            rb.send().await.map(|r| r.status().as_u16())
        }
    });
    let statuses = join_all(calls).await;
    let answered = statuses.iter().filter(|s| matches!(s, Ok(200))).count();
    assert_eq!(
        answered,
        500,
        "{:?}",
        statuses
            .iter()
            .filter(|s| !matches!(s, Ok(200)))
            .take(5)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn hostile_bodies_on_the_real_routes_never_5xx() {
    let api = Api::new();
    let o = owner("hostile-http");
    let (id, token) = api.mint(&o, json!({"maxUses": 3})).await;
    let routes = [
        ("GET", "/tokens".to_owned()),
        ("POST", "/tokens".into()),
        ("GET", format!("/tokens/{id}")),
        ("PATCH", format!("/tokens/{id}")),
        ("POST", format!("/tokens/{id}/roll")),
        ("DELETE", "/tokens/..".into()),
        ("POST", "/validate".into()),
        ("POST", "/validate/capabilities".into()),
        ("POST", "/validate/revoke".into()),
        ("POST", "/leaks/github".into()),
        ("PUT", "/validate/leases/00000000000000000000000000".into()),
        ("DELETE", "/validate/leases/%2F..%2F".into()),
    ];
    // Eight in flight at a time, as a busy client would send them: the
    // gateway's per-function limit, so none waits in its queue.
    let cases: Vec<_> = routes
        .iter()
        .flat_map(|(m, r)| {
            hostile_bodies().into_iter().flat_map(move |(name, body)| {
                HOSTILE_CONTENT_TYPES
                    .iter()
                    .map(move |ctype| (*m, r.as_str(), name, body.clone(), *ctype))
            })
        })
        .collect();
    let count = cases.len();
    futures::stream::iter(cases)
        .for_each_concurrent(8, |(m, r, name, body, ctype)| {
            let (api, o, token) = (&api, &o, &token);
            async move {
                let mut rb = api.request(m, r).header("x-owner", o);
                if !ctype.is_empty() {
                    rb = rb.header("content-type", ctype);
                }
                let resp = rb.body(body).send().await.expect("answered");
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                assert!(status < 500, "{m} {r} {name} [{ctype}]: {status} {text}");
                assert!(
                    !text.contains(token.as_str()),
                    "{m} {r} {name}: the secret leaked"
                );
            }
        })
        .await;
    assert!(count > 1000, "{count} hostile requests");
    // Nothing a hostile request sent changed the token or made another.
    assert_eq!(api.count(&o).await, 1);
    assert_eq!(api.detail(&o, &id).await.json()["remainingUses"], 3);
}
