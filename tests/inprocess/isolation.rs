//! Isolation matrix: owner A runs every route against owner B's tokens,
//! leases, list cursors and idempotency keys, in-process over DynamoDB
//! Local. Nothing of B's is read, changed or revealed.

use serde_json::{json, Value};
use tollgate::http::ApiRequest;
use tollgate::{App, Function};
use tollgate_tests::{api_request, dynamo_app, owner, record_minted};

fn request(
    method: &str,
    path: &str,
    owner: &str,
    body: Value,
    headers: &[(&'static str, &str)],
) -> ApiRequest {
    let mut r = api_request(method, path, Some(owner), body);
    for (k, v) in headers {
        r.headers.insert(*k, v.parse().unwrap());
    }
    r
}

async fn call(app: &App, f: Function, r: ApiRequest) -> (u16, Value, String) {
    let (_, resp) = app.handle(f, &r).await;
    let text = String::from_utf8_lossy(&resp.body).into_owned();
    (
        resp.status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_a_cannot_touch_owner_b() {
    let app = dynamo_app(300).await;
    let (a, b) = (owner("iso-a"), owner("iso-b"));
    let key = [("idempotency-key", "shared-key")];
    let body = json!({"description": "b's", "maxConcurrent": 2, "tags": {"secret": "b-only"}});
    let (s, bv, _) = call(
        &app,
        Function::Create,
        request("POST", "/tokens", &b, body.clone(), &key),
    )
    .await;
    assert_eq!(s, 201);
    let (b_id, b_token) = (
        bv["id"].as_str().unwrap().to_owned(),
        bv["token"].as_str().unwrap().to_owned(),
    );
    record_minted(&b_token);
    call(
        &app,
        Function::Create,
        request("POST", "/tokens", &b, json!({}), &[]),
    )
    .await;
    let (_, lv, _) = call(
        &app,
        Function::Validate,
        request(
            "POST",
            "/validate",
            &b,
            json!({"token": b_token, "acquire": true}),
            &[],
        ),
    )
    .await;
    let b_lease = lv["lease"]["id"].as_str().unwrap().to_owned();
    let (_, page, _) = call(
        &app,
        Function::List,
        request("GET", "/tokens?limit=1", &b, Value::Null, &[]),
    )
    .await;
    let b_cursor = page["nextCursor"].as_str().unwrap().to_owned();
    let (_, b_before, _) = call(
        &app,
        Function::Detail,
        request("GET", &format!("/tokens/{b_id}"), &b, Value::Null, &[]),
    )
    .await;

    // A's own token, to present with B's lease.
    let (_, av, _) = call(
        &app,
        Function::Create,
        request("POST", "/tokens", &a, json!({"maxConcurrent": 2}), &[]),
    )
    .await;
    let a_token = av["token"].as_str().unwrap().to_owned();
    record_minted(&a_token);

    let path = format!("/tokens/{b_id}");
    for (f, m, body) in [
        (Function::Detail, "GET", Value::Null),
        (
            Function::Patch,
            "PATCH",
            json!({"description": "a was here", "tags": {"secret": null}}),
        ),
        (Function::Delete, "DELETE", Value::Null),
    ] {
        let (s, _, text) = call(&app, f, request(m, &path, &a, body, &[])).await;
        assert_eq!(s, 404, "{f:?}");
        assert!(
            !text.contains("b-only") && !text.contains(&b),
            "{f:?} revealed B's data"
        );
    }
    // A's list holds nothing of B's, and B's cursor is refused for A.
    let (_, al, text) = call(
        &app,
        Function::List,
        request("GET", "/tokens", &a, Value::Null, &[]),
    )
    .await;
    assert_eq!(al["tokens"].as_array().unwrap().len(), 1);
    assert!(!text.contains(&b_id));
    let (s, _, _) = call(
        &app,
        Function::List,
        request(
            "GET",
            &format!("/tokens?cursor={b_cursor}"),
            &a,
            Value::Null,
            &[],
        ),
    )
    .await;
    assert_eq!(s, 400);
    // The same Idempotency-Key (and body) from A creates A's own token.
    let (s, av2, _) = call(
        &app,
        Function::Create,
        request("POST", "/tokens", &a, body, &key),
    )
    .await;
    assert_eq!(s, 201, "not a replay of B's token");
    assert_ne!(av2["id"], b_id.as_str());
    record_minted(av2["token"].as_str().unwrap());
    // B's lease with A's token: renew and release are 404.
    for m in ["PUT", "DELETE"] {
        let mut r = request(
            m,
            &format!("/validate/leases/{b_lease}"),
            &a,
            json!({"token": a_token}),
            &[],
        );
        r.path_id = Some(b_lease.clone());
        let (s, _, _) = call(&app, Function::Validate, r).await;
        assert_eq!(s, 404, "{m} of B's lease with A's token");
    }
    // B's token and lease are exactly as before.
    let (_, b_after, _) = call(
        &app,
        Function::Detail,
        request("GET", &format!("/tokens/{b_id}"), &b, Value::Null, &[]),
    )
    .await;
    assert_eq!(b_after, b_before);
    assert_eq!(b_after["activeLeases"], 1);
    let (_, bl, _) = call(
        &app,
        Function::List,
        request("GET", "/tokens", &b, Value::Null, &[]),
    )
    .await;
    assert_eq!(bl["tokens"].as_array().unwrap().len(), 2);
}
