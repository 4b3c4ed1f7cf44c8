//! validate_vs_getitem, spend_vs_update and acquire_vs_raw: the validate
//! handler driven in-process with an API Gateway event, against the raw
//! DynamoDB requests of the same shape through the same SDK client,
//! interleaved, medians. An admitted validate that spends is one request
//! (see the README's "One write per admission"): spend_vs_update compares
//! it with one raw conditional UpdateItem, acquire_vs_raw with one raw
//! TransactWriteItems, and acquire_vs_two the same acquire with the two
//! requests it used to cost (GetItem, then the transaction).
//!
//! Needs DynamoDB Local and the table (see scripts/bench.sh).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use serde_json::{json, Value};
use tollgate::config::Config;
use tollgate::http::ApiRequest;
use tollgate::lambda::handle_event;
use tollgate::store::dynamo::{sdk_config, DynamoStore};
use tollgate::{App, Function};
use tollgate_bench::{median, validate_event};

fn key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("T#{id}"))),
        ("sk".to_owned(), AttributeValue::S("T".into())),
    ])
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

async fn validate(app: &App, event: &str) -> Value {
    let req = lambda_http::request::from_str(event).expect("valid event");
    let resp = handle_event(app, Function::Validate, req).await;
    match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        _ => Value::Null,
    }
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

    // acquire_vs_raw: validate with acquire = one TransactWriteItems (the
    // token's leaseCount up under the cap, the lease item put); the raw
    // side issues the same transaction, and acquire_vs_two also the
    // GetItem an acquire used to read first.
    let (cid, ctoken) = mint(&app, json!({"maxConcurrent": 10_000})).await;
    let acquire_event = validate_event(&json!({"token": ctoken, "acquire": true}));
    let release = |lease: String| {
        let app = app.clone();
        let cid = cid.clone();
        async move { app.store.release(&cid, &lease).await }
    };
    let raw_acquire = |n: usize, read_first: bool| {
        let lease = format!("raw{read_first}{n:020}");
        let client = client.clone();
        let table = table.clone();
        let cid = cid.clone();
        async move {
            if read_first {
                client
                    .get_item()
                    .table_name(&table)
                    .set_key(Some(key(&cid)))
                    .consistent_read(true)
                    .send()
                    .await
                    .unwrap();
            }
            let update = Update::builder()
                .table_name(&table)
                .set_key(Some(key(&cid)))
                .update_expression("SET #lc = if_not_exists(#lc, :zero) + :one")
                .condition_expression(
                    "attribute_exists(pk) AND #ver = :ver AND (attribute_not_exists(#lc) OR #lc < #cap)",
                )
                .expression_attribute_names("#lc", "leaseCount")
                .expression_attribute_names("#cap", "maxConcurrent")
                .expression_attribute_names("#ver", "version")
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":ver", AttributeValue::N("1".into()))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .unwrap();
            let put = Put::builder()
                .table_name(&table)
                .item("pk", AttributeValue::S(format!("T#{cid}")))
                .item("sk", AttributeValue::S(format!("L#{lease}")))
                .item("expiresAt", AttributeValue::N("9999999999999".into()))
                .item("ttl", AttributeValue::N("9999999999".into()))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .unwrap();
            client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(update).build())
                .transact_items(TransactWriteItem::builder().put(put).build())
                .client_request_token(format!("raw-{read_first}-{n}"))
                .send()
                .await
                .unwrap();
            lease
        }
    };
    let acquire_iterations = iterations / 2;
    let (mut a_times, mut r_times, mut two_times, mut au_times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..acquire_iterations + 100 {
        let t = Instant::now();
        let v = validate(&app, &acquire_event).await;
        let a = t.elapsed().as_secs_f64() * 1e6;
        let lease = v["lease"]["id"]
            .as_str()
            .expect("admitted with a lease")
            .to_owned();
        assert!(release(lease).await.expect("release"));
        let t = Instant::now();
        let lease = raw_acquire(i, false).await;
        let r = t.elapsed().as_secs_f64() * 1e6;
        assert!(release(lease).await.expect("release"));
        let t = Instant::now();
        let lease = raw_acquire(i, true).await;
        let two = t.elapsed().as_secs_f64() * 1e6;
        assert!(release(lease).await.expect("release"));
        let t = Instant::now();
        raw_update().await.unwrap();
        let up = t.elapsed().as_secs_f64() * 1e6;
        if i >= 100 {
            a_times.push(a);
            r_times.push(r);
            two_times.push(two);
            au_times.push(up);
        }
    }
    let (a_med, r_med, two_med, au_med) = (
        median(&mut a_times),
        median(&mut r_times),
        median(&mut two_times),
        median(&mut au_times),
    );

    // contended_p99_over_p50: rounds of 200 concurrent acquires at
    // maxConcurrent 12 (every lease released between rounds); the latency
    // of each call, admitted or refused.
    let (kid, ktoken) = mint(&app, json!({"maxConcurrent": 12})).await;
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
                assert!(app.store.release(&kid, lease).await.expect("release"));
            } else if v["reason"] != "CONCURRENCY_LIMIT" {
                unavailable += 1;
            }
        }
        assert!(admitted <= 12, "{admitted} leases at cap 12");
    }
    let p50 = tollgate_bench::percentile(&mut storm_times, 0.5);
    let p99 = tollgate_bench::percentile(&mut storm_times, 0.99);
    println!("validate_median_us {v_med:.0}");
    println!("getitem_median_us {g_med:.0}");
    println!("spend_median_us {s_med:.0}");
    println!("update_median_us {u_med:.0}");
    println!("acquire_median_us {a_med:.0}");
    println!("raw_acquire_median_us {r_med:.0}");
    println!("raw_get_and_acquire_median_us {two_med:.0}");
    println!("acquire_update_median_us {au_med:.0}");
    println!("contended_p50_us {p50:.0}");
    println!("contended_p99_us {p99:.0}");
    println!("contended_not_answered {unavailable}");
    println!("samples {iterations} {acquire_iterations}");
    println!("validate_vs_getitem {:.3}", v_med / g_med);
    println!("spend_vs_update {:.3}", s_med / u_med);
    println!("acquire_vs_raw {:.3}", a_med / r_med);
    println!("acquire_vs_two {:.3}", a_med / two_med);
    println!("acquire_vs_update {:.3}", a_med / au_med);
    println!("contended_p99_over_p50 {:.2}", p99 / p50);
}
