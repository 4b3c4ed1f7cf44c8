//! The audit trail in-process, over the memory store and DynamoDB Local
//! alike: every management change leaves exactly one record, in its own
//! transaction, naming its actor and what changed (never a secret); a
//! refused change leaves none; racing patches leave one record per patch
//! applied; `GET /audit` answers only the owner's records, filtered and
//! paged.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::{json, Value};
use tollgate::store::memory::MemoryStore;
use tollgate::{App, Function};
use tollgate_tests::{api_request, app_over, call, dynamo_store, manage, owner, record_minted};

async fn trail(app: &App, o: &str, query: &str) -> Value {
    let (status, v) = manage(
        app,
        Function::List,
        "GET",
        &format!("/audit{query}"),
        o,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

fn actions(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn every_change_leaves_one_record_and_a_refusal_none(app: Arc<App>) {
    let o = owner("audit");
    let (status, created) = manage(
        &app,
        Function::Create,
        "POST",
        "/tokens",
        &o,
        json!({"description": "ci", "maxUses": 10}),
    )
    .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["token"].as_str().unwrap().to_owned();
    record_minted(&secret);
    // Refused changes: 400, 404, 412 and a 409 leave nothing.
    let path = format!("/tokens/{id}");
    assert_eq!(
        manage(
            &app,
            Function::Patch,
            "PATCH",
            &path,
            &o,
            json!({"maxUses": -1})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        manage(
            &app,
            Function::Patch,
            "PATCH",
            "/tokens/aaaaaaaaaaaaaaaaaaaaaaaaaa",
            &o,
            json!({})
        )
        .await
        .0,
        404
    );
    let mut stale = api_request("PATCH", &path, Some(&o), json!({"description": "x"}));
    stale.path_id = Some(id.clone());
    stale.headers.insert("if-match", "\"99\"".parse().unwrap());
    assert_eq!(call(&app, Function::Patch, &stale).await.0, 412);
    assert_eq!(
        trail(&app, &o, "").await["records"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // A patch, a disable, a roll, a delete; an identity's create, patch, delete.
    assert_eq!(
        manage(
            &app,
            Function::Patch,
            "PATCH",
            &path,
            &o,
            json!({"description": "renamed", "maxUses": 20})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        manage(
            &app,
            Function::Patch,
            "PATCH",
            &path,
            &o,
            json!({"enabled": false})
        )
        .await
        .0,
        200
    );
    let (status, rolled) = manage(
        &app,
        Function::Patch,
        "POST",
        &format!("{path}/roll"),
        &o,
        json!({"graceSeconds": 60}),
    )
    .await;
    assert_eq!(status, 200);
    record_minted(rolled["token"].as_str().unwrap());
    assert_eq!(
        manage(&app, Function::Delete, "DELETE", &path, &o, Value::Null)
            .await
            .0,
        204
    );
    let (_, identity) = manage(
        &app,
        Function::Create,
        "POST",
        "/identities",
        &o,
        json!({"externalId": "acme"}),
    )
    .await;
    let iid = identity["id"].as_str().unwrap().to_owned();
    let ipath = format!("/identities/{iid}");
    assert_eq!(
        manage(
            &app,
            Function::Patch,
            "PATCH",
            &ipath,
            &o,
            json!({"description": "Acme"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        manage(
            &app,
            Function::Create,
            "POST",
            "/identities",
            &o,
            json!({"externalId": "acme"})
        )
        .await
        .0,
        409
    );
    assert_eq!(
        manage(&app, Function::Delete, "DELETE", &ipath, &o, Value::Null)
            .await
            .0,
        204
    );

    let all = trail(&app, &o, "").await;
    assert_eq!(
        actions(&all),
        [
            "identity.deleted",
            "identity.updated",
            "identity.created",
            "token.deleted",
            "token.rolled",
            "token.updated",
            "token.updated",
            "token.created"
        ],
        "{all}"
    );
    let records = all["records"].as_array().unwrap();
    let patch = &records[6];
    assert_eq!(patch["tokenId"], json!(id));
    assert_eq!(
        patch["changes"]["description"],
        json!({"from": "ci", "to": "renamed"})
    );
    assert_eq!(patch["changes"]["maxUses"], json!({"from": 10, "to": 20}));
    assert_eq!(
        records[5]["changes"]["enabled"],
        json!({"from": true, "to": false})
    );
    assert_eq!(
        records[3]["changes"]["description"]["from"], "renamed",
        "a delete records what was"
    );
    assert_eq!(records[0]["identityId"], json!(iid));
    for r in records {
        let actor = &r["actor"];
        assert_eq!(
            (actor["owner"].as_str(), actor["sub"].as_str()),
            (Some(o.as_str()), Some(o.as_str())),
            "{r}"
        );
        assert_eq!(actor["sourceIp"], "127.0.0.1");
        assert_eq!(actor["userAgent"], "tollgate-tests/1");
        assert!(
            actor["requestId"]
                .as_str()
                .is_some_and(|r| r.starts_with("req-")),
            "{r}"
        );
    }
    // Never a secret, a hash or a token string.
    let text = all.to_string();
    for secret in [secret.as_str(), rolled["token"].as_str().unwrap()] {
        assert!(
            !text.contains(secret) && !text.contains(&secret[..12]),
            "{text}"
        );
    }
    assert!(
        !text.contains("secretHash") && !text.contains("tgl_"),
        "{text}"
    );
}

async fn the_trail_is_the_owners_filtered_and_paged(app: Arc<App>) {
    let (alice, bob) = (owner("audit-alice"), owner("audit-bob"));
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, t) = manage(
            &app,
            Function::Create,
            "POST",
            "/tokens",
            &alice,
            json!({"description": format!("t{i}")}),
        )
        .await;
        record_minted(t["token"].as_str().unwrap());
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    let path = format!("/tokens/{}", ids[0]);
    manage(
        &app,
        Function::Patch,
        "PATCH",
        &path,
        &alice,
        json!({"description": "x"}),
    )
    .await;
    // Bob sees none of it, even by id.
    assert_eq!(trail(&app, &bob, "").await["records"], json!([]));
    assert_eq!(
        trail(&app, &bob, &format!("?tokenId={}", ids[0])).await["records"],
        json!([])
    );
    // A token's history; an action; since.
    let history = trail(&app, &alice, &format!("?tokenId={}", ids[0])).await;
    assert_eq!(actions(&history), ["token.updated", "token.created"]);
    let updates = trail(&app, &alice, "?action=token.updated").await;
    assert_eq!(actions(&updates), ["token.updated"]);
    let future = trail(&app, &alice, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["records"], json!([]));
    // Pages of two, newest first, then no cursor.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = trail(&app, &alice, &query).await;
        seen.extend(actions(&page));
        match page["nextCursor"].as_str() {
            Some(c) => query = format!("?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    // Bad filters and a tampered or foreign cursor: 400 naming them.
    let first = trail(&app, &alice, "?limit=2").await;
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    for (query, field) in [
        (format!("?cursor={cursor}x"), "cursor"),
        ("?action=token.exploded".to_owned(), "action"),
        ("?since=yesterday".to_owned(), "since"),
        ("?tokenId=nope".to_owned(), "tokenId"),
        ("?limit=0".to_owned(), "limit"),
    ] {
        let (status, v) = manage(
            &app,
            Function::List,
            "GET",
            &format!("/audit{query}"),
            &alice,
            Value::Null,
        )
        .await;
        assert_eq!(
            (status, v["errors"][0]["field"].as_str()),
            (400, Some(field)),
            "{query}: {v}"
        );
    }
    let (status, _) = manage(
        &app,
        Function::List,
        "GET",
        &format!("/audit?cursor={cursor}"),
        &bob,
        Value::Null,
    )
    .await;
    assert_eq!(status, 400, "another owner's cursor");
}

/// Racing patches of one token: every patch answered 200 left exactly one
/// record, and the token's version moved once per record.
async fn racing_patches_leave_one_record_each(app: Arc<App>) {
    let o = owner("audit-race");
    let (_, t) = manage(&app, Function::Create, "POST", "/tokens", &o, json!({})).await;
    record_minted(t["token"].as_str().unwrap());
    let id = t["id"].as_str().unwrap().to_owned();
    let path = format!("/tokens/{id}");
    let answers = join_all((0..30).map(|i| {
        let (app, o, path) = (app.clone(), o.clone(), path.clone());
        tokio::spawn(async move {
            manage(
                &app,
                Function::Patch,
                "PATCH",
                &path,
                &o,
                json!({"description": format!("p{i}")}),
            )
            .await
            .0
        })
    }))
    .await;
    let applied = answers
        .into_iter()
        .filter(|a| *a.as_ref().unwrap() == 200)
        .count();
    let mut records = Vec::new();
    let mut query = format!("?tokenId={id}&action=token.updated&limit=100");
    loop {
        let page = trail(&app, &o, &query).await;
        records.extend(page["records"].as_array().unwrap().clone());
        match page["nextCursor"].as_str() {
            Some(c) => query = format!("?tokenId={id}&action=token.updated&limit=100&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(records.len(), applied, "one record per patch applied");
    let version = app.store.get(&id).await.unwrap().unwrap().version;
    assert_eq!(version as usize, 1 + applied, "each record is a version");
}

macro_rules! over {
    ($store:ident, $make:expr) => {
        mod $store {
            use super::*;
            async fn app() -> Arc<App> {
                app_over($make)
            }
            #[tokio::test]
            async fn every_change_leaves_one_record_and_a_refusal_none() {
                super::every_change_leaves_one_record_and_a_refusal_none(app().await).await
            }
            #[tokio::test]
            async fn the_trail_is_the_owners_filtered_and_paged() {
                super::the_trail_is_the_owners_filtered_and_paged(app().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_patches_leave_one_record_each() {
                super::racing_patches_leave_one_record_each(app().await).await
            }
        }
    };
}

over!(memory, Arc::new(MemoryStore::new()));
over!(dynamodb, Arc::new(dynamo_store().await));
