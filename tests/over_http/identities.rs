//! Identities over HTTP, through the local gateway at the real routes and
//! the functions under `cargo lambda watch`: three tokens of one identity
//! raced by 150 validates against its limit of 40, and the routes' 409s.
//! The same races run in-process over both stores (`inprocess/identities.rs`).

use std::collections::HashMap;

use futures::future::join_all;
use serde_json::{json, Value};
use tollgate_tests::{owner, Api};

async fn identity(api: &Api, o: &str, body: Value) -> (u16, Value) {
    let a = api
        .send(
            api.request("POST", "/identities")
                .header("x-owner", o)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await;
    (a.status, a.json())
}

async fn race(limits: Value, reason: &str) {
    let api = Api::new();
    let o = owner("http-identity");
    let mut body = json!({"externalId": "customer-1"});
    body.as_object_mut()
        .unwrap()
        .extend(limits.as_object().unwrap().clone());
    let (status, created) = identity(&api, &o, body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(
            api.mint(&o, json!({"identityId": id, "maxUses": 1000}))
                .await,
        );
    }
    let answers = join_all((0..150).map(|i| api.validate(json!({"token": tokens[i % 3].1})))).await;
    let admitted: Vec<&Value> = answers.iter().filter(|a| a["active"] == true).collect();
    assert_eq!(admitted.len(), 40, "exactly the identity's limit");
    for refused in answers.iter().filter(|a| a["active"] == false) {
        assert_eq!(
            (&refused["reason"], &refused["limitedBy"]),
            (&json!(reason), &json!("identity")),
            "{refused}"
        );
    }
    // Read back: each token spent exactly its own admissions.
    let mut per_token: HashMap<String, i64> = HashMap::new();
    for a in &admitted {
        *per_token
            .entry(a["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for (token_id, _) in &tokens {
        let left = api.detail(&o, token_id).await.json()["remainingUses"]
            .as_i64()
            .unwrap();
        assert_eq!(1000 - left, per_token.get(token_id).copied().unwrap_or(0));
    }
}

#[tokio::test]
async fn three_tokens_of_one_identity_share_its_forty_uses_exactly() {
    race(json!({"maxUses": 40}), "USAGE_EXHAUSTED").await
}

#[tokio::test]
async fn three_tokens_of_one_identity_share_its_rate_limit_exactly() {
    let limit = json!({"rateLimits": [{"name": "hour", "limit": 40, "periodSeconds": 3600}]});
    race(limit, "RATE_LIMITED").await
}

#[tokio::test]
async fn conflicts_are_409_with_their_code() {
    let api = Api::new();
    let o = owner("http-identity-409");
    let (_, first) = identity(&api, &o, json!({"externalId": "dup"})).await;
    let (status, again) = identity(&api, &o, json!({"externalId": "dup"})).await;
    assert_eq!((status, &again["code"]), (409, &json!("IDENTITY_EXISTS")));
    let id = first["id"].as_str().unwrap();
    api.mint(&o, json!({"identityId": id})).await;
    let a = api
        .send(
            api.request("DELETE", &format!("/identities/{id}"))
                .header("x-owner", &o),
        )
        .await;
    assert_eq!(
        (a.status, &a.json()["code"]),
        (409, &json!("IDENTITY_IN_USE"))
    );
    let listed = api
        .send(
            api.request("GET", "/identities?externalId=dup")
                .header("x-owner", &o),
        )
        .await;
    assert_eq!(
        listed.json()["identities"][0]["id"],
        json!(id),
        "{}",
        listed.text
    );
}
