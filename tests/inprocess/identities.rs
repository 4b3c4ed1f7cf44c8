//! Identities in-process, over the memory store and DynamoDB Local alike:
//! the management routes' rules (unique `externalId`, a token's identity
//! checked to be its owner's, no delete while a token points at it) and
//! the one atomic decision over a token and its identity, raced.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;
use serde_json::{json, Value};
use tollgate::service::authorize::{Question, Verdict};
use tollgate::store::memory::MemoryStore;
use tollgate::validate::binding::Binding;
use tollgate::{App, Function};
use tollgate_tests::{api_request, app_over, call, dynamo_store, manage, mint_in_process, owner};

async fn new_identity(app: &App, o: &str, body: Value) -> String {
    let (status, v) = manage(app, Function::Create, "POST", "/identities", o, body).await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().expect("an id").to_owned()
}

async fn validate(app: &App, token: &str) -> Value {
    let req = api_request("POST", "/validate", None, json!({ "token": token }));
    let (status, v) = call(app, Function::Validate, &req).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn the_routes_keep_identities_consistent(app: Arc<App>) {
    let (alice, bob) = (owner("id-alice"), owner("id-bob"));
    let id = new_identity(
        &app,
        &alice,
        json!({"externalId": "cust-1", "maxUses": 100,
        "refill": {"interval": "monthly", "day": 31, "amount": 100}, "tags": {"plan": "pro"}}),
    )
    .await;
    // `externalId` is unique per owner, not across owners.
    let (status, v) = manage(
        &app,
        Function::Create,
        "POST",
        "/identities",
        &alice,
        json!({"externalId": "cust-1"}),
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("IDENTITY_EXISTS")),
        "{v}"
    );
    new_identity(&app, &bob, json!({"externalId": "cust-1"})).await;
    let (status, v) = manage(
        &app,
        Function::Create,
        "POST",
        "/identities",
        &alice,
        json!({"externalId": "no spaces", "maxUses": 0}),
    )
    .await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["externalId", "maxUses"], "{v}");
    // Read, list, find by externalId; another owner sees none of it.
    let (status, v) = manage(
        &app,
        Function::Detail,
        "GET",
        &format!("/identities/{id}"),
        &alice,
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, v["remainingUses"].as_u64()),
        (200, Some(100)),
        "{v}"
    );
    assert!(v["nextRefillAt"].is_string(), "{v}");
    let (status, _) = manage(
        &app,
        Function::Detail,
        "GET",
        &format!("/identities/{id}"),
        &bob,
        Value::Null,
    )
    .await;
    assert_eq!(status, 404);
    let (_, v) = manage(
        &app,
        Function::List,
        "GET",
        "/identities?externalId=cust-1",
        &alice,
        Value::Null,
    )
    .await;
    assert_eq!(v["identities"][0]["id"], json!(id), "{v}");
    let (_, v) = manage(
        &app,
        Function::List,
        "GET",
        "/identities",
        &bob,
        Value::Null,
    )
    .await;
    assert_eq!(v["identities"].as_array().map(Vec::len), Some(1));
    assert_ne!(v["identities"][0]["id"], json!(id));
    // A patch keeps what was spent; `externalId` stays.
    let (status, v) = manage(
        &app,
        Function::Patch,
        "PATCH",
        &format!("/identities/{id}"),
        &alice,
        json!({"maxUses": 120, "tags": {"plan": null}}),
    )
    .await;
    assert_eq!(
        (status, v["remainingUses"].as_u64()),
        (200, Some(120)),
        "{v}"
    );
    let (status, _) = manage(
        &app,
        Function::Patch,
        "PATCH",
        &format!("/identities/{id}"),
        &alice,
        json!({"externalId": "cust-2"}),
    )
    .await;
    assert_eq!(status, 400);
    // A token may name only its owner's identities.
    let bobs = new_identity(&app, &bob, json!({"externalId": "cust-9"})).await;
    for other in [bobs.as_str(), "id_aaaaaaaaaaaaaaaaaaaaaaaaaa", "nope"] {
        let req = api_request(
            "POST",
            "/tokens",
            Some(&alice),
            json!({"identityId": other}),
        );
        let (status, v) = call(&app, Function::Create, &req).await;
        assert_eq!(
            (status, v["errors"][0]["field"].as_str()),
            (400, Some("identityId")),
            "{other}: {v}"
        );
    }
    let (token_id, token) = mint_in_process(&app, &alice, json!({"identityId": id})).await;
    let answer = validate(&app, &token).await;
    assert_eq!(answer["identity"]["externalId"], "cust-1", "{answer}");
    assert_eq!(answer["identity"]["remainingUses"], 119, "{answer}");
    // No delete while a token points at it; moving the token frees it.
    let (status, v) = manage(
        &app,
        Function::Delete,
        "DELETE",
        &format!("/identities/{id}"),
        &alice,
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (409, Some("IDENTITY_IN_USE")),
        "{v}"
    );
    let other = new_identity(&app, &alice, json!({"externalId": "cust-2"})).await;
    let (status, v) = manage(
        &app,
        Function::Patch,
        "PATCH",
        &format!("/tokens/{token_id}"),
        &alice,
        json!({"identityId": other}),
    )
    .await;
    assert_eq!(
        (status, v["identityId"].as_str()),
        (200, Some(other.as_str())),
        "{v}"
    );
    let (status, _) = manage(
        &app,
        Function::Patch,
        "PATCH",
        &format!("/tokens/{token_id}"),
        &alice,
        json!({"identityId": bobs}),
    )
    .await;
    assert_eq!(status, 400, "another owner's identity");
    let (status, _) = manage(
        &app,
        Function::Delete,
        "DELETE",
        &format!("/identities/{id}"),
        &alice,
        Value::Null,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = manage(
        &app,
        Function::Delete,
        "DELETE",
        &format!("/identities/{other}"),
        &alice,
        Value::Null,
    )
    .await;
    assert_eq!(status, 409);
    // Deleting the token frees its identity, and a deleted identity's
    // `externalId` can be used again.
    let (status, _) = manage(
        &app,
        Function::Delete,
        "DELETE",
        &format!("/tokens/{token_id}"),
        &alice,
        Value::Null,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = manage(
        &app,
        Function::Delete,
        "DELETE",
        &format!("/identities/{other}"),
        &alice,
        Value::Null,
    )
    .await;
    assert_eq!(status, 204);
    new_identity(&app, &alice, json!({"externalId": "cust-1"})).await;
}

/// Three tokens of one identity limited to 40 (by `limits`), each token
/// allowing far more, raced by 150 validates: exactly 40 admitted, every
/// refusal the identity's, and the tokens' own counts add up to 40.
async fn race_three_tokens(app: Arc<App>, limits: Value, token_limits: Value, reason: &str) {
    let o = owner("id-race");
    let mut body = json!({"externalId": "racer"});
    body.as_object_mut()
        .unwrap()
        .extend(limits.as_object().unwrap().clone());
    let id = new_identity(&app, &o, body).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let mut b = json!({"identityId": id});
        b.as_object_mut()
            .unwrap()
            .extend(token_limits.as_object().unwrap().clone());
        tokens.push(mint_in_process(&app, &o, b).await);
    }
    let answers = join_all((0..150).map(|i| {
        let app = app.clone();
        let token = tokens[i % 3].1.clone();
        tokio::spawn(async move { validate(&app, &token).await })
    }))
    .await;
    let answers: Vec<Value> = answers.into_iter().map(|a| a.unwrap()).collect();
    let admitted: Vec<&Value> = answers.iter().filter(|a| a["active"] == true).collect();
    assert_eq!(admitted.len(), 40, "exactly the identity's limit");
    for refused in answers.iter().filter(|a| a["active"] == false) {
        assert_eq!(refused["reason"], reason, "{refused}");
        assert_eq!(refused["limitedBy"], "identity", "{refused}");
    }
    let mut per_token: HashMap<&str, u64> = HashMap::new();
    for a in &admitted {
        *per_token.entry(a["id"].as_str().unwrap()).or_default() += 1;
        assert_eq!(a["identity"]["id"], json!(id));
    }
    // Read back: each token's own counters hold its admissions exactly.
    let mut counted = 0;
    for (token_id, _) in &tokens {
        let (_, t) = manage(
            &app,
            Function::Detail,
            "GET",
            &format!("/tokens/{token_id}"),
            &o,
            Value::Null,
        )
        .await;
        let own = match t["remainingUses"].as_u64() {
            Some(left) => 1000 - left,
            None => 0,
        };
        if t["maxUses"].is_u64() {
            assert_eq!(
                own,
                per_token.get(token_id.as_str()).copied().unwrap_or(0),
                "{t}"
            );
        }
        counted += per_token.get(token_id.as_str()).copied().unwrap_or(0);
    }
    assert_eq!(counted, 40);
    let (_, i) = manage(
        &app,
        Function::Detail,
        "GET",
        &format!("/identities/{id}"),
        &o,
        Value::Null,
    )
    .await;
    if i["maxUses"].is_u64() {
        assert_eq!(i["remainingUses"], 0, "{i}");
    }
}

async fn racing_tokens_never_overspend_their_identitys_uses(app: Arc<App>) {
    race_three_tokens(
        app,
        json!({"maxUses": 40}),
        json!({"maxUses": 1000}),
        "USAGE_EXHAUSTED",
    )
    .await
}

async fn racing_tokens_never_overrun_their_identitys_rate_limit(app: Arc<App>) {
    let limit = json!({"rateLimits": [{"name": "hour", "limit": 40, "periodSeconds": 3600}]});
    race_three_tokens(app, limit, json!({}), "RATE_LIMITED").await
}

/// The authorizer's context names the identity, and its refusal by the
/// identity is a deny like any other.
async fn the_authorizer_names_the_identity(app: Arc<App>) {
    let o = owner("id-authz");
    let id = new_identity(&app, &o, json!({"externalId": "acme", "maxUses": 1})).await;
    let (_, token) = mint_in_process(&app, &o, json!({"identityId": id})).await;
    let vars = HashMap::from([("tollgateOwners".to_owned(), o.clone())]);
    let ask = Question {
        credential: Some(format!("Bearer {token}")),
        method: "GET".into(),
        path: "/items".into(),
        source_ip: Some("203.0.113.9".parse().unwrap()),
        binding: Some(Binding::from_stage_variables(&vars).expect("bound")),
    };
    match app.authorize(&ask).await {
        Verdict::Allow { context, .. } => {
            assert_eq!(context.get("identityId"), Some(&json!(id)));
            assert_eq!(context.get("externalId"), Some(&json!("acme")));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !matches!(app.authorize(&ask).await, Verdict::Allow { .. }),
        "the identity's one use is spent"
    );
}

/// A reserve spends from the identity too, and its settle gives back to
/// both, once.
async fn a_settle_gives_back_to_the_identity_once(app: Arc<App>) {
    let o = owner("id-settle");
    let id = new_identity(&app, &o, json!({"externalId": "llm", "maxUses": 100})).await;
    let (token_id, token) =
        mint_in_process(&app, &o, json!({"identityId": id, "maxUses": 50})).await;
    let remaining = |path: String| {
        let app = app.clone();
        let o = o.clone();
        async move {
            manage(&app, Function::Detail, "GET", &path, &o, Value::Null)
                .await
                .1["remainingUses"]
                .clone()
        }
    };
    let req = api_request(
        "POST",
        "/validate",
        None,
        json!({"token": token, "acquire": true, "reserve": 30}),
    );
    let (_, got) = call(&app, Function::Validate, &req).await;
    assert_eq!(got["identity"]["remainingUses"], 70, "{got}");
    let lease = got["lease"]["id"].as_str().expect("a lease").to_owned();
    assert_eq!(remaining(format!("/identities/{id}")).await, 70);
    assert_eq!(remaining(format!("/tokens/{token_id}")).await, 20);
    for _ in 0..3 {
        let mut release = api_request(
            "DELETE",
            &format!("/validate/leases/{lease}"),
            None,
            json!({"token": token, "used": 10}),
        );
        release.path_id = Some(lease.clone());
        assert_eq!(call(&app, Function::Validate, &release).await.0, 204);
    }
    assert_eq!(
        remaining(format!("/identities/{id}")).await,
        90,
        "20 back, once"
    );
    assert_eq!(remaining(format!("/tokens/{token_id}")).await, 40);
}

/// A holder's revocation of a token of an identity takes its link with it.
async fn a_holders_revocation_frees_the_identity(app: Arc<App>) {
    let o = owner("id-revoke");
    let id = new_identity(&app, &o, json!({"externalId": "leaky"})).await;
    let (_, token) = mint_in_process(&app, &o, json!({"identityId": id})).await;
    let path = format!("/identities/{id}");
    let (status, _) = manage(&app, Function::Delete, "DELETE", &path, &o, Value::Null).await;
    assert_eq!(status, 409);
    let req = api_request("POST", "/validate/revoke", None, json!({ "token": token }));
    assert_eq!(call(&app, Function::Validate, &req).await.0, 200);
    assert_eq!(validate(&app, &token).await["reason"], "NOT_FOUND");
    let (status, _) = manage(&app, Function::Delete, "DELETE", &path, &o, Value::Null).await;
    assert_eq!(status, 204, "no token points at it any more");
}

macro_rules! over {
    ($store:ident, $make:expr) => {
        mod $store {
            use super::*;
            async fn app() -> Arc<App> {
                app_over($make)
            }
            #[tokio::test]
            async fn the_routes_keep_identities_consistent() {
                super::the_routes_keep_identities_consistent(app().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_tokens_never_overspend_their_identitys_uses() {
                super::racing_tokens_never_overspend_their_identitys_uses(app().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_tokens_never_overrun_their_identitys_rate_limit() {
                super::racing_tokens_never_overrun_their_identitys_rate_limit(app().await).await
            }
            #[tokio::test]
            async fn a_settle_gives_back_to_the_identity_once() {
                super::a_settle_gives_back_to_the_identity_once(app().await).await
            }
            #[tokio::test]
            async fn a_holders_revocation_frees_the_identity() {
                super::a_holders_revocation_frees_the_identity(app().await).await
            }
            #[tokio::test]
            async fn the_authorizer_names_the_identity() {
                super::the_authorizer_names_the_identity(app().await).await
            }
        }
    };
}

over!(memory, Arc::new(MemoryStore::new()));
over!(dynamodb, Arc::new(dynamo_store().await));
