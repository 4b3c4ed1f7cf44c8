//! The cost of an admit does not grow with `maxConcurrent`, and an admit
//! never writes the `byOwner` index: measured from the consumed capacity
//! that DynamoDB Local reports for the store's own requests (an SDK
//! interceptor asks for it and records it).

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use serde_json::{json, Value};
use tollgate::store::dynamo::{sdk_config, DynamoStore};
use tollgate::{App, Function};
use tollgate_tests::{api_request, call, config, keyring, mint_in_process as mint, owner};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// (table write units, index write units) of each admission write.
#[derive(Debug, Clone, Default)]
struct CapacityMeter(Arc<Mutex<Vec<(f64, f64)>>>);

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

async fn metered_app(meter: &CapacityMeter) -> Arc<App> {
    let sdk = sdk_config().await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
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
    let body = json!({"token": token, "acquire": true});
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
    // The big token already holds 300 leases: under the old design (leases
    // inside the token item) each of its writes grew with them.
    for _ in 0..300 {
        assert_eq!(acquire(&app, &big).await["active"], true);
    }
    for _ in 0..11 {
        assert_eq!(acquire(&app, &small).await["active"], true);
    }
    assert_eq!(app.store.leases(&big_id).await.unwrap().len(), 300);
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
