//! validate_vs_getitem, capability_vs_getitem, authorize_vs_getitem,
//! revoke_vs_deleteitem, identity_admit_vs_transact, mgmt_write_vs_transact,
//! spend_vs_update and acquire_vs_update: the
//! validate handler driven in-process with an API Gateway event, against
//! the raw DynamoDB request of the same shape through the same SDK client,
//! interleaved, medians. An admitted validate that spends (a use, rate
//! limits, a lease) is one request (see the README's "One write per
//! admission"): spend_vs_update and acquire_vs_update compare it with one
//! raw conditional UpdateItem.
//!
//! Needs DynamoDB Local and the table (see scripts/bench.sh).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde_json::{json, Value};
use tollgate::config::Config;
use tollgate::credentials::capability::{self, MintRequest};
use tollgate::http::ApiRequest;
use tollgate::lambda::handle_event;
use tollgate::store::dynamo::{sdk_config, DynamoStore};
use tollgate::store::{LeaseMove, MoveOutcome};
use tollgate::token::LeaseId;
use tollgate::{App, Function};
use tollgate_bench::{median, validate_event};

fn key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("T#{id}"))),
        ("sk".to_owned(), AttributeValue::S("T".into())),
    ])
}

/// Creates an identity of the bench's owner; returns its id.
async fn identity(app: &App, body: Value) -> String {
    let mut req = ApiRequest {
        method: "POST".parse().unwrap(),
        path: "/identities".into(),
        body: body.to_string().into_bytes(),
        ..Default::default()
    };
    req.identity.jwt_sub = Some("bench-owner".into());
    let (_, resp) = app.handle(Function::Create, &req).await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    v["id"].as_str().unwrap().into()
}

async fn mint(app: &App, body: Value) -> (String, String) {
    let mut req = ApiRequest {
        method: "POST".parse().unwrap(),
        path: "/tokens".into(),
        body: body.to_string().into_bytes(),
        ..Default::default()
    };
    req.identity.jwt_sub = Some("bench-owner".into());
    let (_, resp) = app.handle(Function::Create, &req).await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    (
        v["id"].as_str().unwrap().into(),
        v["token"].as_str().unwrap().into(),
    )
}

/// Releases a lease the validate answered (untimed).
async fn release(app: &App, token_id: &str, lease: &str) {
    let first_bucket = LeaseId::parse(lease).expect("a lease id").first_bucket();
    let release = LeaseMove {
        id: token_id,
        lease,
        first_bucket,
        to: None,
        refund: None,
        identity_refund: None,
        seen_version: None,
        purge: Vec::new(),
        now: tollgate::dates::now(),
    };
    let outcome = app.store.move_lease(&release).await.expect("release");
    assert_eq!(outcome, MoveOutcome::Moved { to: None });
}

async fn validate(app: &App, event: &str) -> Value {
    let req = lambda_http::request::from_str(event).expect("valid event");
    let resp = handle_event(app, Function::Validate, req).await;
    match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => Value::Null,
    }
}

/// An HTTP API REQUEST authorizer event (payload 2.0), as API Gateway
/// sends it to the authorize function.
fn authorizer_event(token: &str, path: &str) -> Value {
    json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": format!("arn:aws:execute-api:us-east-1:123456789012:api/$default/GET{path}"),
        "identitySource": [format!("Bearer {token}")],
        "routeKey": "GET /teams/{id}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"authorization": format!("Bearer {token}")},
        // The protected API binds itself to the bench's owner (see
        // `validate::binding`): an API that names no owners admits no one.
        "stageVariables": {"tollgateOwners": "bench-owner"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "stage": "$default",
            "requestId": "bench", "routeKey": "GET /teams/{id}", "timeEpoch": 0,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "bench"}
        }
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let config = Config::from_env().expect("TOLLGATE_TABLE and TOLLGATE_HASH_KEY");
    let table = config.table.clone();
    let sdk = sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoStore::new(client.clone(), &table, 86_400);
    let app = Arc::new(App::new(
        config,
        tollgate_bench::keyring_from_env(),
        Arc::new(store),
    ));

    // validate_vs_getitem: a plain token; validate = one consistent GetItem.
    let (id, token) = mint(
        &app,
        json!({"resource": "/teams", "allowedAddresses": ["203.0.113.0/24"]}),
    )
    .await;
    let event = validate_event(&json!({"token": token, "resource": "/teams/17"}));
    let raw_get = || {
        client
            .get_item()
            .table_name(&table)
            .set_key(Some(key(&id)))
            .consistent_read(true)
            .send()
    };
    for _ in 0..200 {
        assert_eq!(validate(&app, &event).await["active"], true);
        raw_get().await.unwrap();
    }
    let (mut v_times, mut g_times) = (
        Vec::with_capacity(iterations),
        Vec::with_capacity(iterations),
    );
    for i in 0..iterations {
        // Alternate which goes first so neither always gets a warmer path.
        if i % 2 == 0 {
            let t = Instant::now();
            validate(&app, &event).await;
            v_times.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            raw_get().await.unwrap();
            g_times.push(t.elapsed().as_secs_f64() * 1e6);
        } else {
            let t = Instant::now();
            raw_get().await.unwrap();
            g_times.push(t.elapsed().as_secs_f64() * 1e6);
            let t = Instant::now();
            validate(&app, &event).await;
            v_times.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let (v_med, g_med) = (median(&mut v_times), median(&mut g_times));

    // capability_vs_getitem: a capability of that token; its validate is
    // the offline verification, then the parent's one consistent GetItem.
    let parent = app.store.get(&id).await.unwrap().expect("the token");
    let claims = MintRequest::default()
        .narrow(&parent, None, tollgate::dates::now())
        .expect("a plain capability");
    let cap = capability::sign(&app.keyring(), &app.config.issuer, &claims);
    let cap_event = validate_event(&json!({"token": cap, "resource": "/teams/17"}));
    let (mut c_times, mut cg_times) = (Vec::new(), Vec::new());
    for i in 0..iterations / 2 + 100 {
        let t = Instant::now();
        assert_eq!(validate(&app, &cap_event).await["active"], true);
        let c = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        raw_get().await.unwrap();
        let g = t.elapsed().as_secs_f64() * 1e6;
        if i >= 100 {
            c_times.push(c);
            cg_times.push(g);
        }
    }
    let (c_med, cg_med) = (median(&mut c_times), median(&mut cg_times));

    // authorize_vs_getitem: the authorize function answering an HTTP API
    // REQUEST authorizer event (payload 2.0) for that token; like its
    // validate, one consistent GetItem.
    let auth_event = authorizer_event(&token, "/teams/17");
    let (mut au_times_, mut ag_times) = (Vec::new(), Vec::new());
    for i in 0..iterations / 2 + 100 {
        let t = Instant::now();
        let (_, _, answer) =
            tollgate::lambda::authorizer::answer(app.clone(), auth_event.clone()).await;
        assert_eq!(answer["isAuthorized"], true, "{answer}");
        let au = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        raw_get().await.unwrap();
        let g = t.elapsed().as_secs_f64() * 1e6;
        if i >= 100 {
            au_times_.push(au);
            ag_times.push(g);
        }
    }
    let (auth_med, ag_med) = (median(&mut au_times_), median(&mut ag_times));

    // spend_vs_update: a token with maxUses and a rate limit; once the
    // function has seen it, validate = one conditional UpdateItem.
    let (sid, stoken) = mint(
        &app,
        json!({"maxUses": 1_000_000_000u64,
               "rateLimits": [{"name": "month", "limit": 1_000_000, "periodSeconds": 2_592_000}]}),
    )
    .await;
    let spend_event = validate_event(&json!({"token": stoken}));
    let raw_update = || {
        client
            .update_item()
            .table_name(&table)
            .set_key(Some(key(&sid)))
            .update_expression("SET #raw = if_not_exists(#raw, :zero) + :one")
            .condition_expression("attribute_exists(pk) AND #ver = :ver")
            .expression_attribute_names("#raw", "rawCount")
            .expression_attribute_names("#ver", "version")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":ver", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
    };
    let (mut s_times, mut u_times) = (Vec::new(), Vec::new());
    for i in 0..iterations / 2 + 100 {
        let t = Instant::now();
        assert_eq!(validate(&app, &spend_event).await["active"], true);
        let sp = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        raw_update().await.unwrap();
        let up = t.elapsed().as_secs_f64() * 1e6;
        if i >= 100 {
            s_times.push(sp);
            u_times.push(up);
        }
    }
    let (s_med, u_med) = (median(&mut s_times), median(&mut u_times));

    // acquire_vs_update: validate with acquire = one conditional
    // UpdateItem (one more lease in the token's ledger under the cap),
    // against the raw conditional UpdateItem above; acquire_vs_raw against
    // a raw UpdateItem of the acquire's own shape (a count and a bucket up,
    // under a limit). Each lease is released again, untimed.
    let (cid, ctoken) = mint(&app, json!({"maxConcurrent": 10_000})).await;
    let acquire_event = validate_event(&json!({"token": ctoken, "acquire": true}));
    let raw_acquire = || {
        let bucket = tollgate::dates::now().unix_timestamp() / 10 * 10 + 300;
        client
            .update_item()
            .table_name(&table)
            .set_key(Some(key(&cid)))
            .update_expression(
                "SET #lc = if_not_exists(#lc, :zero) + :one, #lb = if_not_exists(#lb, :zero) + :one",
            )
            .condition_expression(
                "attribute_exists(pk) AND #ver = :ver AND (attribute_not_exists(#lc) OR #lc < :limit)",
            )
            .expression_attribute_names("#lc", "rawLeaseCount")
            .expression_attribute_names("#lb", format!("raw_lx_{bucket}"))
            .expression_attribute_names("#ver", "version")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":ver", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N("1000000000".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
    };
    let acquire_iterations = iterations / 2;
    let (mut a_times, mut r_times, mut au_times) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..acquire_iterations + 100 {
        let t = Instant::now();
        let v = validate(&app, &acquire_event).await;
        let a = t.elapsed().as_secs_f64() * 1e6;
        let lease = v["lease"]["id"].as_str().expect("admitted with a lease");
        release(&app, &cid, lease).await;
        let t = Instant::now();
        raw_acquire().await.unwrap();
        let r = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        raw_update().await.unwrap();
        let up = t.elapsed().as_secs_f64() * 1e6;
        if i >= 100 {
            a_times.push(a);
            r_times.push(r);
            au_times.push(up);
        }
    }
    let (a_med, r_med, au_med) = (
        median(&mut a_times),
        median(&mut r_times),
        median(&mut au_times),
    );

    // contended_p99_over_p50: rounds of 200 concurrent acquires at
    // maxConcurrent 12 (every lease released between rounds); the latency
    // of each call, admitted or refused.
    let (kid, ktoken) = mint(&app, json!({"maxConcurrent": 12})).await;
    // revoke_vs_deleteitem: a holder's revocation of a token, through the
    // validate function, against the raw request of the same shape on
    // another token: one DeleteItem conditioned on the secret's hash.
    // revoke_vs_delete_and_put: against that DeleteItem and then the put
    // of an audit record, what the revocation sends (its record follows
    // the delete, which names the owner).
    let revoke_event = |token: &str| {
        validate_event(&json!({"token": token})).replace("/validate", "/validate/revoke")
    };
    let (mut rv_times, mut d_times, mut dp_times) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iterations / 2 + 50 {
        let (_, doomed) = mint(&app, json!({})).await;
        let (other, _) = mint(&app, json!({})).await;
        let other_hash = app.store.get(&other).await.unwrap().unwrap().secret_hash;
        let event = revoke_event(&doomed);
        let t = Instant::now();
        assert_eq!(validate(&app, &event).await, json!({}));
        let rv = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        client
            .delete_item()
            .table_name(&table)
            .set_key(Some(key(&other)))
            .condition_expression("#hash = :hash")
            .expression_attribute_names("#hash", "secretHash")
            .expression_attribute_values(":hash", AttributeValue::S(other_hash))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await
            .unwrap();
        let d = t.elapsed().as_secs_f64() * 1e6;
        let position = format!("{:017}#benchrevoke{i:08}", i);
        client
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S("A#bench-revoke".into()))
            .item("sk", AttributeValue::S(position.clone()))
            .item("gsi2pk", AttributeValue::S(format!("AT#{other}")))
            .item("gsi2sk", AttributeValue::S(position))
            .item("action", AttributeValue::S("token.revoked".into()))
            .item("changes", AttributeValue::S("{}".into()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .unwrap();
        let dp = t.elapsed().as_secs_f64() * 1e6;
        if i >= 50 {
            rv_times.push(rv);
            d_times.push(d);
            dp_times.push(dp);
        }
    }
    let (rv_med, d_med, dp_med) = (
        median(&mut rv_times),
        median(&mut d_times),
        median(&mut dp_times),
    );

    let storm_event = validate_event(&json!({"token": ktoken, "acquire": true}));
    let (mut storm_times, mut unavailable) = (Vec::new(), 0);
    for _ in 0..5 {
        let answers = futures::future::join_all((0..200).map(|_| async {
            let t = Instant::now();
            let v = validate(&app, &storm_event).await;
            (t.elapsed().as_secs_f64() * 1e6, v)
        }))
        .await;
        let mut admitted = 0;
        for (us, v) in answers {
            storm_times.push(us);
            if let Some(lease) = v["lease"]["id"].as_str() {
                admitted += 1;
                release(&app, &kid, lease).await;
            } else if v["reason"] != "CONCURRENCY_LIMIT" {
                unavailable += 1;
            }
        }
        assert!(admitted <= 12, "{admitted} leases at cap 12");
    }
    let p50 = tollgate_bench::percentile(&mut storm_times, 0.5);
    let p99 = tollgate_bench::percentile(&mut storm_times, 0.99);

    // identity_admit_vs_transact: a token of an identity with a quota and a
    // rate limit; once the function has seen both, validate = one
    // TransactWriteItems of the token's and the identity's conditional
    // updates, against the raw transaction of two conditional updates.
    let stamp = tollgate::dates::millis(tollgate::dates::now());
    let iid = identity(
        &app,
        json!({"externalId": format!("bench-{stamp}"), "maxUses": 1_000_000_000u64,
               "rateLimits": [{"name": "month", "limit": 1_000_000, "periodSeconds": 2_592_000}]}),
    )
    .await;
    let (itid, itoken) = mint(&app, json!({"identityId": iid})).await;
    let identity_event = validate_event(&json!({"token": itoken}));
    let counted = |k: HashMap<String, AttributeValue>| {
        aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .update(
                aws_sdk_dynamodb::types::Update::builder()
                    .table_name(&table)
                    .set_key(Some(k))
                    .update_expression("SET #raw = if_not_exists(#raw, :zero) + :one")
                    .condition_expression("attribute_exists(pk) AND #ver = :ver")
                    .expression_attribute_names("#raw", "rawCount")
                    .expression_attribute_names("#ver", "version")
                    .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":ver", AttributeValue::N("1".into()))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let identity_key = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("D#{iid}"))),
        ("sk".to_owned(), AttributeValue::S("D".into())),
    ]);
    let (mut it_times, mut tx_times) = (Vec::new(), Vec::new());
    for i in 0..iterations / 2 + 100 {
        let t = Instant::now();
        assert_eq!(validate(&app, &identity_event).await["active"], true);
        let it = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        client
            .transact_write_items()
            .transact_items(counted(key(&itid)))
            .transact_items(counted(identity_key.clone()))
            .send()
            .await
            .unwrap();
        let tx = t.elapsed().as_secs_f64() * 1e6;
        if i >= 100 {
            it_times.push(it);
            tx_times.push(tx);
        }
    }
    let (it_med, tx_med) = (median(&mut it_times), median(&mut tx_times));

    // contended_identity_p99_over_p50: rounds of 200 concurrent validates
    // over 3 tokens of one identity, every one contending for its item.
    let cid_identity = identity(
        &app,
        json!({"externalId": format!("bench-contended-{stamp}"), "maxUses": 1_000_000_000u64}),
    )
    .await;
    let mut shared_events = Vec::new();
    for _ in 0..3 {
        let (_, t) = mint(&app, json!({"identityId": cid_identity})).await;
        shared_events.push(validate_event(&json!({"token": t})));
    }
    let (mut shared_times, mut shared_refused) = (Vec::new(), 0);
    for _ in 0..5 {
        let answers = futures::future::join_all((0..200).map(|i| {
            let event = &shared_events[i % 3];
            let app = &app;
            async move {
                let t = Instant::now();
                let v = validate(app, event).await;
                (t.elapsed().as_secs_f64() * 1e6, v)
            }
        }))
        .await;
        for (us, v) in answers {
            shared_times.push(us);
            if v["active"] != true {
                shared_refused += 1;
            }
        }
    }
    let ip50 = tollgate_bench::percentile(&mut shared_times, 0.5);
    let ip99 = tollgate_bench::percentile(&mut shared_times, 0.99);

    // mgmt_write_vs_transact: a patch's write with its audit record (one
    // TransactWriteItems: the token's update pinned to its version and the
    // record's put), against the raw two-item transaction of that shape.
    // The patch route reads the token first; its whole time is printed too.
    let (mid, _) = mint(&app, json!({"description": "m"})).await;
    let actor = tollgate::audit::Actor {
        owner: "bench-owner".into(),
        sub: Some("bench-owner".into()),
        source_ip: None,
        user_agent: None,
        request_id: None,
        kind: "user",
    };
    let patch_req = |i: usize| {
        let mut req = ApiRequest {
            method: "PATCH".parse().unwrap(),
            path: format!("/tokens/{mid}"),
            path_id: Some(mid.clone()),
            body: json!({"description": format!("p{i}")})
                .to_string()
                .into_bytes(),
            ..Default::default()
        };
        req.identity.jwt_sub = Some("bench-owner".into());
        req
    };
    let raw_record = |i: usize| {
        aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .put(
                aws_sdk_dynamodb::types::Put::builder()
                    .table_name(&table)
                    .item("pk", AttributeValue::S("A#bench-raw".into()))
                    .item("sk", AttributeValue::S(format!("{stamp}#{i}")))
                    .item("action", AttributeValue::S("token.updated".into()))
                    .item("changes", AttributeValue::S("{}".into()))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let (mut w_times, mut wt_times, mut p_times) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..iterations / 4 + 50 {
        let seen = app.store.get(&mid).await.unwrap().unwrap();
        let mut new = seen.clone();
        new.description = format!("w{i}");
        new.version += 1;
        let record = tollgate::audit::AuditRecord::new(
            "token.updated",
            tollgate::audit::Target::Token(mid.clone()),
            actor.clone(),
            Some(&seen.to_json(tollgate::dates::now())),
            Some(&new.to_json(tollgate::dates::now())),
            tollgate::dates::now(),
            400,
        );
        let t = Instant::now();
        let replaced = app.store.replace(&seen, &new, &record).await.unwrap();
        let w = t.elapsed().as_secs_f64() * 1e6;
        assert_eq!(replaced, tollgate::store::Replaced::Done);
        let t = Instant::now();
        client
            .transact_write_items()
            .transact_items(counted(key(&itid)))
            .transact_items(raw_record(i))
            .send()
            .await
            .unwrap();
        let wt = t.elapsed().as_secs_f64() * 1e6;
        let t = Instant::now();
        let (_, resp) = app.handle(Function::Patch, &patch_req(i)).await;
        let p = t.elapsed().as_secs_f64() * 1e6;
        assert_eq!(resp.status, 200);
        if i >= 50 {
            w_times.push(w);
            wt_times.push(wt);
            p_times.push(p);
        }
    }
    let (w_med, wt_med, p_med) = (
        median(&mut w_times),
        median(&mut wt_times),
        median(&mut p_times),
    );
    println!("validate_median_us {v_med:.0}");
    println!("getitem_median_us {g_med:.0}");
    println!("spend_median_us {s_med:.0}");
    println!("update_median_us {u_med:.0}");
    println!("acquire_median_us {a_med:.0}");
    println!("raw_acquire_median_us {r_med:.0}");
    println!("acquire_update_median_us {au_med:.0}");
    println!("contended_p50_us {p50:.0}");
    println!("contended_p99_us {p99:.0}");
    println!("contended_not_answered {unavailable}");
    println!("samples {iterations} {acquire_iterations}");
    println!("validate_vs_getitem {:.3}", v_med / g_med);
    println!("capability_median_us {c_med:.0}");
    println!("capability_vs_getitem {:.3}", c_med / cg_med);
    println!("authorize_median_us {auth_med:.0}");
    println!("authorize_vs_getitem {:.3}", auth_med / ag_med);
    println!("revoke_median_us {rv_med:.0}");
    println!("revoke_vs_deleteitem {:.3}", rv_med / d_med);
    println!("delete_and_put_median_us {dp_med:.0}");
    println!("revoke_vs_delete_and_put {:.3}", rv_med / dp_med);
    println!("spend_vs_update {:.3}", s_med / u_med);
    println!("acquire_vs_raw {:.3}", a_med / r_med);
    println!("acquire_vs_update {:.3}", a_med / au_med);
    println!("contended_p99_over_p50 {:.2}", p99 / p50);
    println!("identity_admit_median_us {it_med:.0}");
    println!("transact_median_us {tx_med:.0}");
    println!("identity_admit_vs_transact {:.3}", it_med / tx_med);
    println!("contended_identity_p50_us {ip50:.0}");
    println!("contended_identity_p99_us {ip99:.0}");
    println!("contended_identity_not_admitted {shared_refused}");
    println!("contended_identity_p99_over_p50 {:.2}", ip99 / ip50);
    println!("mgmt_write_median_us {w_med:.0}");
    println!("mgmt_transact_median_us {wt_med:.0}");
    println!("patch_route_median_us {p_med:.0}");
    println!("mgmt_write_vs_transact {:.3}", w_med / wt_med);
}
