//! Lifecycle events through the running stack: changes made through the
//! API, DynamoDB Local's stream read by the poller that plays the event
//! source mapping (`scripts/stream_poller.py`, with the template's filters),
//! the events function, and moto's EventBridge. Each test listens with its
//! own queue behind a rule on its owner, as a subscriber would.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::StreamExt;
use serde_json::{json, Value};
use tollgate_tests::{env, local_aws as aws, owner, patient_client_config, receive, Api};

/// A queue receiving the events whose `detail.owner` is one owner.
struct Tap {
    queue: String,
}

impl Tap {
    async fn for_owner(owner: &str) -> Tap {
        let queue = aws(
            "AmazonSQS.CreateQueue",
            json!({"QueueName": format!("tap-{owner}")}),
        )
        .await["QueueUrl"]
            .as_str()
            .expect("QueueUrl")
            .to_owned();
        let arn = aws(
            "AmazonSQS.GetQueueAttributes",
            json!({"QueueUrl": queue, "AttributeNames": ["QueueArn"]}),
        )
        .await["Attributes"]["QueueArn"]
            .as_str()
            .expect("QueueArn")
            .to_owned();
        let rule = format!("tap-{owner}");
        let pattern = json!({"source": ["tollgate"], "detail": {"owner": [owner]}});
        aws(
            "AWSEvents.PutRule",
            json!({"Name": rule, "EventPattern": pattern.to_string()}),
        )
        .await;
        aws(
            "AWSEvents.PutTargets",
            json!({"Rule": rule, "Targets": [{"Id": "tap", "Arn": arn}]}),
        )
        .await;
        Tap { queue }
    }

    /// The distinct events received until `want` of them have come (or
    /// 90 s have passed), and then for 3 s more, so an extra one would be
    /// seen. Delivery is at least once: a redelivered event (an SDK retry
    /// of `PutEvents` whose answer was late, a retried batch) carries the
    /// same `detail.id`, and is dropped here as a subscriber drops it.
    async fn collect(&self, want: usize) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        let mut got = Vec::new();
        let started = Instant::now();
        while got.len() < want && started.elapsed() < Duration::from_secs(90) {
            let batch = receive(&self.queue, 1, Duration::from_secs(2)).await;
            got.extend(
                batch
                    .into_iter()
                    .filter(|e| seen.insert(e["detail"]["id"].clone())),
            );
        }
        let extra = receive(&self.queue, usize::MAX, Duration::from_secs(3)).await;
        got.extend(
            extra
                .into_iter()
                .filter(|e| seen.insert(e["detail"]["id"].clone())),
        );
        got
    }
}

fn kinds(events: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default().to_owned())
        .collect();
    k.sort();
    k
}

/// The owner's audit trail, oldest first.
async fn trail(api: &Api, owner: &str) -> Vec<Value> {
    let a = api
        .send(
            api.request("GET", "/audit?limit=100")
                .header("x-owner", owner),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut records = a.json()["records"].as_array().unwrap().clone();
    records.reverse();
    records
}

/// The poller's log: one JSON line per invocation or filtered record.
fn stream_log() -> Vec<Value> {
    std::fs::read_to_string(env("TOLLGATE_STREAM_LOG"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn each_change_is_one_event_named_by_its_action_and_none_holds_a_secret() {
    let api = Api::new();
    let owner = owner("events-life");
    let tap = Tap::for_owner(&owner).await;
    let (id, first) = api.mint(&owner, json!({"maxUses": 1})).await;
    for change in [
        json!({"description": "renamed"}),
        json!({"enabled": false}),
        json!({"enabled": true}),
    ] {
        assert_eq!(api.patch(&owner, &id, change).await.status, 200);
    }
    let rolled = api
        .send(
            api.request("POST", &format!("/tokens/{id}/roll"))
                .header("x-owner", &owner)
                .header("content-type", "application/json")
                .body(json!({"graceSeconds": 60}).to_string()),
        )
        .await;
    assert_eq!(rolled.status, 200, "{}", rolled.text);
    let second = rolled.json()["token"].as_str().unwrap().to_owned();
    tollgate_tests::record_minted(&second);
    // The last use taken.
    assert_eq!(api.validate(json!({"token": second})).await["active"], true);
    let gone = api
        .send(
            api.request("DELETE", &format!("/tokens/{id}"))
                .header("x-owner", &owner),
        )
        .await;
    assert_eq!(gone.status, 204);
    let made = api
        .send(
            api.request("POST", "/identities")
                .header("x-owner", &owner)
                .header("content-type", "application/json")
                .body(json!({"externalId": "customer-1"}).to_string()),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let identity = made.json()["id"].as_str().unwrap().to_owned();
    for (method, body) in [("PATCH", json!({"maxUses": 10})), ("DELETE", Value::Null)] {
        let mut rb = api
            .request(method, &format!("/identities/{identity}"))
            .header("x-owner", &owner);
        if !body.is_null() {
            rb = rb
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        assert!(api.send(rb).await.status < 300);
    }
    // A refused change makes no record and no event.
    assert_eq!(
        api.patch(&owner, &id, json!({"description": "gone"}))
            .await
            .status,
        404
    );

    let events = tap.collect(10).await;
    assert_eq!(
        kinds(&events),
        [
            "identity.created",
            "identity.deleted",
            "identity.updated",
            "token.created",
            "token.deleted",
            "token.exhausted",
            "token.rolled",
            "token.updated",
            "token.updated",
            "token.updated",
        ],
        "{events:#?}"
    );
    // One event per audit record, with the record as its detail.
    let records = trail(&api, &owner).await;
    assert_eq!(records.len(), 9);
    for rec in &records {
        let matching: Vec<&Value> = events
            .iter()
            .filter(|e| e["detail"]["id"] == rec["id"])
            .collect();
        assert_eq!(matching.len(), 1, "one event for {rec}");
        let e = matching[0];
        assert_eq!(e["source"], "tollgate");
        assert_eq!(e["detail-type"], rec["action"]);
        assert_eq!(e["detail"]["owner"], owner.as_str());
        assert_eq!(e["detail"]["changes"], rec["changes"]);
        assert_eq!(e["detail"]["actor"], rec["actor"]);
    }
    let exhausted = events
        .iter()
        .find(|e| e["detail-type"] == "token.exhausted")
        .unwrap();
    assert_eq!(exhausted["detail"]["tokenId"], id.as_str());
    assert_eq!(exhausted["detail"]["reason"], "USES_EXHAUSTED");
    // No secret, hash or token string in any event.
    let text = serde_json::to_string(&events).unwrap();
    for secret in [
        first.as_str(),
        second.as_str(),
        "tgl_",
        "secretHash",
        "hash",
    ] {
        assert!(!text.contains(secret), "{secret} in an event");
    }
}

#[tokio::test]
async fn a_storm_of_admissions_invokes_the_events_function_zero_times() {
    let api = Api::new();
    let owner = owner("events-storm");
    let tap = Tap::for_owner(&owner).await;
    let (id, token) = api.mint(&owner, json!({"maxUses": 1000})).await;
    let admitted = futures::stream::iter(0..200)
        .map(|_| {
            let (api, token) = (api.clone(), token.clone());
            async move { api.validate(json!({"token": token})).await["active"] == true }
        })
        .buffer_unordered(16)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    assert_eq!(admitted, 200);
    // A change after the storm: once its event is out, the stream has
    // been read past every admission.
    assert_eq!(
        api.patch(&owner, &id, json!({"description": "after the storm"}))
            .await
            .status,
        200
    );
    let events = tap.collect(2).await;
    assert_eq!(kinds(&events), ["token.created", "token.updated"]);
    let pk = format!("T#{id}");
    let started = Instant::now();
    let (filtered, invoked) = loop {
        let log = stream_log();
        let filtered = log
            .iter()
            .filter(|l| {
                l["filtered"]["pk"] == pk.as_str() && l["filtered"]["eventName"] == "MODIFY"
            })
            .count();
        let invoked = log
            .iter()
            .filter(|l| {
                l["records"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r["pk"] == pk.as_str()))
            })
            .count();
        if filtered >= 200 || started.elapsed() > Duration::from_secs(30) {
            break (filtered, invoked);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(filtered >= 200, "the stream carried {filtered} admissions");
    assert_eq!(invoked, 0, "the events function saw an admission");
}

/// A TTL removal as DynamoDB's stream carries it in AWS (DynamoDB Local's
/// own TTL sweep is mended into this shape by the poller, and runs too
/// rarely to wait for): the record is sent to the events function as
/// Lambda sends it, after the token is gone from the table.
#[tokio::test]
async fn a_removal_by_ttl_is_recorded_and_announced_once_as_token_expired() {
    let api = Api::new();
    let owner = owner("events-ttl");
    let tap = Tap::for_owner(&owner).await;
    let (id, _) = api
        .mint(&owner, json!({"description": "short-lived"}))
        .await;
    let client = aws_sdk_dynamodb::Client::from_conf(patient_client_config().await.build());
    let key = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("T#{id}"))),
        ("sk".to_owned(), AttributeValue::S("T".into())),
    ]);
    let removed = client
        .delete_item()
        .table_name(env("TOLLGATE_TABLE"))
        .set_key(Some(key.clone()))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
        .send()
        .await
        .unwrap()
        .attributes
        .expect("the token's item");
    let image = |item: HashMap<String, AttributeValue>| {
        serde_json::to_value(serde_dynamo::Item::from(item)).unwrap()
    };
    let batch = json!({"Records": [{
        "eventID": format!("ttl-{id}"),
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {
            "ApproximateCreationDateTime": time::OffsetDateTime::now_utc().unix_timestamp(),
            "Keys": image(key),
            "OldImage": image(removed),
            "SequenceNumber": "900000000000000000001",
            "SizeBytes": 512,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/tollgate-tokens/stream/local"
    }]});
    let invoke = format!(
        "http://127.0.0.1:{}/2015-03-31/functions/events/invocations",
        env("TOLLGATE_INVOKE_PORT")
    );
    for _ in 0..2 {
        // Delivered twice, as a retried batch is.
        let answer: Value = reqwest::Client::new()
            .post(&invoke)
            .json(&batch)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    }
    let events = tap.collect(2).await;
    assert_eq!(kinds(&events), ["token.created", "token.expired"]);
    let expired = trail(&api, &owner)
        .await
        .into_iter()
        .filter(|r| r["action"] == "token.expired")
        .collect::<Vec<_>>();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0]["tokenId"], id.as_str());
    assert_eq!(expired[0]["actor"]["type"], "service");
    assert_eq!(expired[0]["actor"]["owner"], owner.as_str());
}

/// A stream record the function cannot read, between two it can, in one
/// write: the batch is split until the bad record stands alone, its
/// retries run out and the dead-letter queue names it; the others are
/// delivered once each.
#[tokio::test]
async fn an_unreadable_record_is_bisected_out_to_the_dead_letter_queue() {
    let owner = owner("events-poison");
    let tap = Tap::for_owner(&owner).await;
    let now = time::OffsetDateTime::now_utc();
    let micros = now.unix_timestamp_nanos() / 1_000;
    let item = |n: i128, action: &str| {
        let position = format!("{:017}#poisonrecord{n:08}", micros + n);
        let s = |v: &str| AttributeValue::S(v.to_owned());
        HashMap::from([
            ("pk".to_owned(), s(&format!("A#{owner}"))),
            ("sk".to_owned(), s(&position)),
            ("gsi2pk".to_owned(), s("AT#0000000000000000000000000p")),
            ("gsi2sk".to_owned(), s(&position)),
            ("recordId".to_owned(), s(&format!("poisonrecord{n:08}"))),
            (
                "at".to_owned(),
                AttributeValue::N((micros / 1000).to_string()),
            ),
            ("action".to_owned(), s(action)),
            ("owner".to_owned(), s(&owner)),
            ("tokenId".to_owned(), s("0000000000000000000000000p")),
            (
                "actor".to_owned(),
                AttributeValue::M(HashMap::from([("type".to_owned(), s("user"))])),
            ),
            ("changes".to_owned(), s("{}")),
        ])
    };
    let writes: Vec<WriteRequest> = [
        (1, "token.updated"),
        (2, "token.stolen"),
        (3, "token.updated"),
    ]
    .into_iter()
    .map(|(n, action)| {
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(item(n, action)))
                    .build()
                    .unwrap(),
            )
            .build()
    })
    .collect();
    let client = aws_sdk_dynamodb::Client::from_conf(patient_client_config().await.build());
    client
        .batch_write_item()
        .request_items(env("TOLLGATE_TABLE"), writes)
        .send()
        .await
        .unwrap();

    let events = tap.collect(2).await;
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["detail"]["id"].as_str().unwrap_or_default())
        .collect();
    ids.sort();
    assert_eq!(ids, ["poisonrecord00000001", "poisonrecord00000003"]);

    // The poller's log: where the bad record went.
    let bad_sk = item(2, "").get("sk").unwrap().as_s().unwrap().clone();
    let log = stream_log();
    let with_bad: Vec<&Value> = log
        .iter()
        .filter(|l| {
            l["records"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["sk"] == bad_sk.as_str()))
        })
        .collect();
    let bad_seq = with_bad
        .iter()
        .flat_map(|l| l["records"].as_array().unwrap())
        .find(|r| r["sk"] == bad_sk.as_str())
        .unwrap()["seq"]
        .clone();
    // Tried in its batch, then alone: 1 + MaximumRetryAttempts (3) times.
    let alone = with_bad
        .iter()
        .filter(|l| l["records"].as_array().unwrap().len() == 1)
        .count();
    assert_eq!(alone, 4, "{with_bad:#?}");
    let dead: Vec<&Value> = log
        .iter()
        .filter(|l| l["dead-letter"]["startSequenceNumber"] == bad_seq)
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["dead-letter"]["endSequenceNumber"], bad_seq);
    assert_eq!(dead[0]["dead-letter"]["batchSize"], 1);
    // And the queue holds Lambda's on-failure record for it.
    let letters = receive(
        &env("DEAD_LETTER_QUEUE_URL"),
        usize::MAX,
        Duration::from_secs(3),
    )
    .await;
    assert!(
        letters.iter().any(
            |m| m["DDBStreamBatchInfo"]["startSequenceNumber"] == bad_seq
                && m["requestContext"]["condition"] == "RetryAttemptsExhausted"
        ),
        "{letters:#?}"
    );
}
