//! Credits in-process over DynamoDB Local: a reserving lease that lapses
//! keeps its reserve spent (one-second leases), and the authorize function
//! spends each route's cost as the protected API's `tollgateCosts` sets it.

use std::collections::HashMap;

use serde_json::{json, Value};
use tollgate::service::authorize::{Question, Verdict};
use tollgate::validate::binding::Binding;
use tollgate::{App, Function};
use tollgate_tests::{api_request, call, dynamo_app, mint_in_process as mint, owner};

async fn remaining(app: &App, o: &str, id: &str) -> Value {
    let req = api_request("GET", &format!("/tokens/{id}"), Some(o), Value::Null);
    call(app, Function::Detail, &req).await.1["remainingUses"].clone()
}

#[tokio::test]
async fn a_lapsed_reserving_lease_keeps_its_reserve() {
    let app = dynamo_app(1).await;
    let o = owner("lapse-reserve");
    let (id, token) = mint(&app, &o, json!({"maxUses": 30})).await;
    let body = json!({"token": token, "acquire": true, "reserve": 10});
    let req = api_request("POST", "/validate", None, body);
    let (_, got) = call(&app, Function::Validate, &req).await;
    let lease = got["lease"]["id"].as_str().expect("a lease").to_owned();
    assert_eq!(remaining(&app, &o, &id).await, 20);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let mut release = api_request(
        "DELETE",
        &format!("/validate/leases/{lease}"),
        None,
        json!({"token": token, "used": 0}),
    );
    release.path_id = Some(lease.clone());
    let (status, _) = call(&app, Function::Validate, &release).await;
    assert_eq!(status, 204, "a lapsed lease releases as released");
    assert_eq!(
        remaining(&app, &o, &id).await,
        20,
        "its reserve stays spent"
    );
}

#[tokio::test]
async fn authorize_spends_each_routes_cost() {
    let app = dynamo_app(300).await;
    let o = owner("route-cost");
    let (id, token) = mint(&app, &o, json!({"maxUses": 25, "write": true})).await;
    let vars = HashMap::from([
        ("tollgateOwners".to_owned(), o.clone()),
        (
            "tollgateCosts".to_owned(),
            "POST:/chat=10,ANY:/health=0".to_owned(),
        ),
    ]);
    let binding = Binding::from_stage_variables(&vars).expect("bound");
    let ask = |method: &str, path: &str| Question {
        credential: Some(format!("Bearer {token}")),
        method: method.into(),
        path: path.into(),
        source_ip: Some("203.0.113.9".parse().unwrap()),
        binding: Some(binding.clone()),
    };
    let allowed = |v: &Verdict| matches!(v, Verdict::Allow { .. });
    let first = app.authorize(&ask("POST", "/chat/completions")).await;
    assert!(allowed(&first), "{first:?}");
    assert_eq!(remaining(&app, &o, &id).await, 15);
    assert!(allowed(&app.authorize(&ask("GET", "/items/1")).await));
    assert_eq!(
        remaining(&app, &o, &id).await,
        14,
        "a route not listed costs 1"
    );
    assert!(allowed(&app.authorize(&ask("GET", "/health")).await));
    assert_eq!(remaining(&app, &o, &id).await, 14);
    assert!(allowed(&app.authorize(&ask("POST", "/chat")).await));
    let refused = app.authorize(&ask("POST", "/chat")).await;
    assert!(!allowed(&refused), "4 left, 10 asked: {refused:?}");
    assert_eq!(remaining(&app, &o, &id).await, 4);
}
