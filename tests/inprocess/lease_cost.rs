//! What a validate costs in DynamoDB requests, counted by an SDK
//! interceptor on the store's own client: an admitted validate that spends
//! (a use, rate limits, a lease) is one request once the function has seen
//! the token; an admit's cost does not grow with `maxConcurrent`; an admit
//! never writes the `byOwner` index (from the consumed capacity that
//! DynamoDB Local reports).

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use serde_json::{json, Value};
use tollgate::store::dynamo::DynamoStore;
use tollgate::{App, Function};
use tollgate_tests::{
    api_request, call, config, keyring, mint_in_process as mint, owner, patient_client_config,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// (table write units, index write units) of each admission write, and
/// the name of every request sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapacityMeter(Arc<Mutex<Vec<(f64, f64)>>>, Arc<Mutex<Vec<&'static str>>>);

impl CapacityMeter {
    fn record(&self, capacities: &[ConsumedCapacity]) {
        let table: f64 = capacities
            .iter()
            .filter_map(|c| c.table.as_ref()?.capacity_units)
            .sum();
        let index: f64 = capacities
            .iter()
            .filter_map(|c| c.global_secondary_indexes.as_ref())
            .flat_map(|m| m.values())
            .filter_map(|c| c.capacity_units)
            .sum();
        self.0.lock().unwrap().push((table, index));
    }

    fn take(&self) -> Vec<(f64, f64)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    pub(crate) fn requests(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.1.lock().unwrap())
    }
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        let name = if input.downcast_ref::<GetItemInput>().is_some() {
            "GetItem"
        } else if input.downcast_ref::<BatchGetItemInput>().is_some() {
            "BatchGetItem"
        } else if input.downcast_ref::<UpdateItemInput>().is_some() {
            "UpdateItem"
        } else if input.downcast_ref::<TransactWriteItemsInput>().is_some() {
            "TransactWriteItems"
        } else if input.downcast_ref::<QueryInput>().is_some() {
            "Query"
        } else {
            "other"
        };
        self.1.lock().unwrap().push(name);
        if let Some(i) = input.downcast_mut::<UpdateItemInput>() {
            i.return_consumed_capacity = Some(ReturnConsumedCapacity::Indexes);
        } else if let Some(i) = input.downcast_mut::<TransactWriteItemsInput>() {
            i.return_consumed_capacity = Some(ReturnConsumedCapacity::Indexes);
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(out) = context.output_or_error() {
            if let Some(o) = out.downcast_ref::<UpdateItemOutput>() {
                self.record(o.consumed_capacity.as_slice());
            } else if let Some(o) = out.downcast_ref::<TransactWriteItemsOutput>() {
                self.record(o.consumed_capacity.as_deref().unwrap_or_default());
            }
        }
        Ok(())
    }
}

pub(crate) async fn metered_app(meter: &CapacityMeter) -> Arc<App> {
    // Patient: a request counted here must not time out under the load
    // of the rest of the suite.
    let conf = patient_client_config()
        .await
        .interceptor(meter.clone())
        .build();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(conf),
        std::env::var("TOLLGATE_TABLE").expect("make test sets TOLLGATE_TABLE"),
        86_400,
    );
    Arc::new(App::new(config(300), keyring(), Arc::new(store)))
}

async fn acquire(app: &App, token: &str) -> Value {
    validate(app, json!({"token": token, "acquire": true})).await
}

async fn validate(app: &App, body: Value) -> Value {
    call(
        app,
        Function::Validate,
        &api_request("POST", "/validate", None, body),
    )
    .await
    .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admit_costs_the_same_at_cap_12_and_10000_and_never_writes_the_index() {
    let meter = CapacityMeter::default();
    let app = metered_app(&meter).await;
    let o = owner("cost");
    let (_, small) = mint(&app, &o, json!({"maxConcurrent": 12, "maxUses": 1000})).await;
    let (big_id, big) = mint(
        &app,
        &o,
        json!({"maxConcurrent": 10_000, "maxUses": 100_000}),
    )
    .await;
    // The big token already holds 300 leases: its ledger counts them per
    // bucket, not per lease, so its item stays as small as the other's.
    for _ in 0..300 {
        assert_eq!(acquire(&app, &big).await["active"], true);
    }
    for _ in 0..11 {
        assert_eq!(acquire(&app, &small).await["active"], true);
    }
    let big_now = app.store.get(&big_id).await.unwrap().unwrap();
    assert_eq!(big_now.leases.live(tollgate::dates::now()), 300);
    meter.take();

    assert_eq!(acquire(&app, &small).await["active"], true);
    let at_12 = meter.take();
    assert_eq!(acquire(&app, &big).await["active"], true);
    let at_10000 = meter.take();
    eprintln!("admit with a lease, consumed (table WCU, index WCU): cap 12 {at_12:?}, cap 10,000 with 300 held {at_10000:?}");
    assert_eq!(at_12.len(), 1, "one request per admit: {at_12:?}");
    assert_eq!(at_12, at_10000, "the cost does not grow with the cap");
    assert_eq!(at_12[0].1, 0.0, "an admit never writes the index");

    // A use without a lease: one UpdateItem, no index write either.
    let body = json!({"token": small});
    let answer = call(
        &app,
        Function::Validate,
        &api_request("POST", "/validate", None, body),
    )
    .await
    .1;
    assert_eq!(answer["active"], true);
    let use_only = meter.take();
    eprintln!("admit of a use, consumed (table WCU, index WCU): {use_only:?}");
    assert_eq!(use_only.len(), 1);
    assert_eq!(use_only[0].1, 0.0, "an admit never writes the index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_validate_that_spends_is_one_request() {
    let meter = CapacityMeter::default();
    let app = metered_app(&meter).await;
    let o = owner("requests");
    let limits = json!([{"name": "hour", "limit": 1000, "periodSeconds": 3600}]);
    let (_, spender) = mint(&app, &o, json!({"maxUses": 100, "rateLimits": limits})).await;
    let (_, holder) = mint(
        &app,
        &o,
        json!({"maxUses": 100, "rateLimits": limits, "maxConcurrent": 12}),
    )
    .await;
    let (plain_id, plain) = mint(&app, &o, json!({})).await;
    meter.requests();

    // The first validate in this function reads the token, then writes.
    let first = validate(&app, json!({"token": spender})).await;
    assert_eq!(first["remainingUses"], 99, "{first}");
    assert_eq!(meter.requests(), ["GetItem", "UpdateItem"]);
    // Every later one is its one conditional write.
    for left in (95..99).rev() {
        let v = validate(&app, json!({"token": spender})).await;
        assert_eq!(v["remainingUses"], left, "{v}");
        assert_eq!(v["rateLimits"][0]["remaining"], 1000 - (100 - left), "{v}");
        assert_eq!(meter.requests(), ["UpdateItem"]);
    }
    // An acquire is one conditional write too.
    assert_eq!(acquire(&app, &holder).await["active"], true);
    assert_eq!(meter.requests(), ["GetItem", "UpdateItem"]);
    let v = acquire(&app, &holder).await;
    assert_eq!(
        (v["active"].clone(), v["remainingUses"].clone()),
        (json!(true), json!(98))
    );
    assert_eq!(meter.requests(), ["UpdateItem"]);
    // A token that spends nothing is decided by its read alone (and a
    // once-a-minute lastUsedAt refresh).
    assert_eq!(
        validate(&app, json!({"token": plain})).await["active"],
        true
    );
    assert_eq!(meter.requests(), ["GetItem", "UpdateItem"]);
    assert_eq!(
        validate(&app, json!({"token": plain})).await["active"],
        true
    );
    assert_eq!(meter.requests(), ["GetItem"]);
    assert!(app.store.get(&plain_id).await.unwrap().is_some());

    // A patch between two validates: the guess fails its condition, which
    // returns the token as it is, and the refusal costs nothing more.
    let (status, _) = call(
        &app,
        Function::Patch,
        &api_request(
            "PATCH",
            &format!("/tokens/{}", first["id"].as_str().unwrap()),
            Some(&o),
            json!({"enabled": false}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    meter.requests();
    let v = validate(&app, json!({"token": spender})).await;
    assert_eq!(v, json!({"active": false, "reason": "DISABLED"}));
    assert_eq!(meter.requests(), ["UpdateItem"]);
    let t = app
        .store
        .get(first["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t.limits.remaining_uses,
        Some(95),
        "a refused validate spends no use"
    );
    assert_eq!(t.limits.rate_counts["hour"].count, 5, "nor a count");
}
