//! The `events` function's adapter: a batch of the table's stream records
//! in (the event source mapping's shape), lifecycle events out to
//! EventBridge, a partial batch response back. What the records mean and
//! the order of delivery are `events::deliver`'s.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};

use super::{init_logging, log_panics_without_detail, Error};
use crate::config::EventsConfig;
use crate::events::{self, Bus, Change, LifecycleEvent};
use crate::store::dynamo::stream::{fact_of, StreamChange};
use crate::store::dynamo::{sdk_config, DynamoStore, Item};
use crate::store::{Store, StoreError};
use serde::Deserialize;

/// EventBridge, one bus.
pub struct EventBridge {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridge {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        EventBridge {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl Bus for EventBridge {
    async fn put(&self, batch: &[LifecycleEvent]) -> Result<Vec<bool>, String> {
        let entries = batch
            .iter()
            .map(|e| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(events::SOURCE)
                    .detail_type(&e.detail_type)
                    .detail(e.detail.to_string())
                    .time(aws_sdk_eventbridge::primitives::DateTime::from_millis(
                        crate::dates::millis(e.time),
                    ))
                    .build()
            })
            .collect();
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        Ok(out
            .entries()
            .iter()
            .map(|r| r.error_code().is_none())
            .collect())
    }
}

pub async fn run() -> Result<(), Error> {
    init_logging();
    log_panics_without_detail();
    let config = EventsConfig::from_env().inspect_err(|e| {
        tracing::error!(error = %e, "init failed");
    })?;
    let sdk = sdk_config().await;
    let bus = Arc::new(EventBridge::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        config.bus.clone(),
    ));
    // Only audit records are written here: a token's retention is unused.
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.table,
        0,
    ));
    let days = config.audit_retention_days;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (bus, store) = (bus.clone(), store.clone());
        async move { Ok::<_, Error>(handle(&event.payload, &*bus, &*store, days).await) }
    }))
    .await
}

/// One batch (`aws_lambda_events`' DynamoDB `Event`): its records decoded
/// in order, delivered, and the first record not delivered named back to
/// Lambda (which retries from it). Each record is read on its own, so one
/// that cannot be read fails there, not the whole batch.
pub async fn handle(
    batch: &serde_json::Value,
    bus: &dyn Bus,
    store: &dyn Store,
    retention_days: i64,
) -> DynamoDbEventResponse {
    let records = batch["Records"].as_array().map_or(&[][..], Vec::as_slice);
    let changes: Vec<Change> = records.iter().map(change_of).collect();
    let failed = events::deliver(&changes, bus, store, retention_days).await;
    tracing::info!(
        records = changes.len(),
        failedAt = failed.as_deref(),
        "stream batch"
    );
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|sequence| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence);
            failure
        })
        .collect();
    response
}

/// A stream record as the core reads it.
fn change_of(record: &serde_json::Value) -> Change {
    match EventRecord::deserialize(record) {
        Ok(r) => decoded(&r),
        // The parser's message may quote a value (a secret's hash): not kept.
        Err(_) => Change {
            sequence: record["dynamodb"]["SequenceNumber"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            event_id: record["eventID"].as_str().unwrap_or_default().to_owned(),
            at: crate::dates::now(),
            fact: Err(StoreError::Internal(
                "a stream record not in DynamoDB's stream shape".into(),
            )),
        },
    }
}

fn decoded(r: &EventRecord) -> Change {
    let item = |i: &serde_dynamo::Item| -> Item { i.clone().into() };
    let (keys, old, new) = (
        item(&r.change.keys),
        item(&r.change.old_image),
        item(&r.change.new_image),
    );
    // DynamoDB's TTL deletes as the service principal.
    let by_ttl = r
        .user_identity
        .as_ref()
        .is_some_and(|u| u.type_ == "Service" && u.principal_id == "dynamodb.amazonaws.com");
    Change {
        sequence: r.change.sequence_number.clone().unwrap_or_default(),
        event_id: r.event_id.clone(),
        at: crate::dates::from_millis(r.change.approximate_creation_date_time.timestamp_millis()),
        fact: fact_of(&StreamChange {
            name: &r.event_name,
            by_ttl,
            keys: &keys,
            old: &old,
            new: &new,
        }),
    }
}
