//! The token lifecycle over real HTTP: roll with and without grace, one
//! previous secret at most, the grace capped by the token's end, counters
//! shared by both secrets, rolls racing validates, and bad roll requests.

use futures::future::join_all;
use serde_json::{json, Value};
use tollgate_tests::{owner, record_minted, Answer, Api};

fn utc(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

async fn roll(api: &Api, o: &str, id: &str, body: Option<Value>, if_match: Option<&str>) -> Answer {
    let mut rb = api
        .request("POST", &format!("/tokens/{id}/roll"))
        .header("x-owner", o);
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    if let Some(tag) = if_match {
        rb = rb.header("if-match", tag);
    }
    let a = api.send(rb).await;
    if let Some(t) = a
        .status
        .eq(&200)
        .then(|| a.json()["token"].as_str().map(str::to_owned))
        .flatten()
    {
        record_minted(&t);
    }
    a
}

async fn check(api: &Api, token: &str) -> Value {
    api.validate(json!({"token": token})).await
}

#[tokio::test]
async fn roll_with_and_without_grace_shares_one_token() {
    let api = Api::new();
    let o = owner("roll");
    let (id, first) = api.mint(&o, json!({"maxUses": 10})).await;
    assert_eq!(check(&api, &first).await["remainingUses"], 9);

    // Without grace: the old secret is gone at once, the counters are kept.
    let a = roll(&api, &o, &id, None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let v = a.json();
    let second = v["token"].as_str().unwrap().to_owned();
    assert_eq!(v["id"], id.as_str(), "the same token");
    assert!(v.get("previousSecretExpiresAt").is_none());
    assert_eq!(a.header("etag"), Some("\"2\""));
    assert_eq!(v["start"], second[..12]);
    assert_ne!(second, first);
    assert_eq!(
        check(&api, &first).await,
        json!({"active": false, "reason": "NOT_FOUND"})
    );
    let ok = check(&api, &second).await;
    assert_eq!(
        (ok["active"].clone(), ok["remainingUses"].clone()),
        (json!(true), json!(8))
    );
    assert!(ok.get("secretExpiresAt").is_none());

    // With grace: both validate, one quota, the old one says when it ends.
    let a = roll(
        &api,
        &o,
        &id,
        Some(json!({"graceSeconds": 600})),
        Some("\"2\""),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let third = a.json()["token"].as_str().unwrap().to_owned();
    let ends = a.json()["previousSecretExpiresAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let lag = utc(&ends) - time::OffsetDateTime::now_utc();
    assert!(
        lag > time::Duration::seconds(590) && lag <= time::Duration::seconds(600),
        "{ends}"
    );
    let old = check(&api, &second).await;
    assert_eq!(old["active"], true, "{old}");
    assert_eq!(old["secretExpiresAt"], ends.as_str());
    assert_eq!(old["remainingUses"], 7);
    let new = check(&api, &third).await;
    assert_eq!(new["remainingUses"], 6, "one quota for both secrets");
    assert!(new.get("secretExpiresAt").is_none());
    assert_eq!(
        api.detail(&o, &id).await.json()["previousSecretExpiresAt"],
        ends.as_str()
    );

    // Rolling again ends the older previous secret at once.
    let a = roll(&api, &o, &id, Some(json!({"graceSeconds": 600})), None).await;
    let fourth = a.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(check(&api, &second).await["reason"], "NOT_FOUND");
    assert_eq!(check(&api, &third).await["active"], true);
    assert_eq!(check(&api, &fourth).await["remainingUses"], 4);
}

#[tokio::test]
async fn the_grace_ends_by_itself_and_never_outlives_the_token() {
    let api = Api::new();
    let o = owner("grace");
    let (id, first) = api.mint(&o, json!({})).await;
    let a = roll(&api, &o, &id, Some(json!({"graceSeconds": 2})), None).await;
    let second = a.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(check(&api, &first).await["active"], true);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(check(&api, &first).await["reason"], "NOT_FOUND");
    assert_eq!(check(&api, &second).await["active"], true);
    assert!(api
        .detail(&o, &id)
        .await
        .json()
        .get("previousSecretExpiresAt")
        .is_none());

    let (short_id, _) = api.mint(&o, json!({"ttlSeconds": 30})).await;
    let a = roll(
        &api,
        &o,
        &short_id,
        Some(json!({"graceSeconds": 2_592_000})),
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json()["previousSecretExpiresAt"],
        a.json()["endDate"],
        "capped by endDate"
    );
}

#[tokio::test]
async fn bad_roll_requests_change_nothing() {
    let api = Api::new();
    let o = owner("badroll");
    let (id, token) = api.mint(&o, json!({})).await;
    for (body, field) in [
        (json!({"graceSeconds": -1}), "graceSeconds"),
        (json!({"graceSeconds": 2_592_001}), "graceSeconds"),
        (json!({"graceSeconds": "60"}), "graceSeconds"),
        (json!({"graceSeconds": 1.5}), "graceSeconds"),
        (json!({"grace": 60}), "grace"),
    ] {
        let a = roll(&api, &o, &id, Some(body.clone()), None).await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(a.json()["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(roll(&api, &o, &id, None, Some("\"9\"")).await.status, 412);
    assert_eq!(
        roll(&api, &owner("stranger"), &id, None, None).await.status,
        404
    );
    assert_eq!(
        roll(&api, &o, "0000000000000000000000000a", None, None)
            .await
            .status,
        404
    );
    // Nothing was written: the original secret validates, version 1.
    assert_eq!(check(&api, &token).await["active"], true);
    assert_eq!(api.detail(&o, &id).await.header("etag"), Some("\"1\""));
}

#[tokio::test]
async fn validates_racing_a_roll_neither_lose_nor_double_spend_a_use() {
    let api = Api::new();
    for grace in [600, 0] {
        let o = owner("rollrace");
        let (id, token) = api.mint(&o, json!({"maxUses": 100})).await;
        let validates = join_all((0..20).map(|_| check(&api, &token)));
        let rolling = roll(&api, &o, &id, Some(json!({"graceSeconds": grace})), None);
        let (answers, rolled) = futures::join!(validates, rolling);
        assert_eq!(rolled.status, 200, "{}", rolled.text);
        let admitted = answers.iter().filter(|a| a["active"] == true).count() as i64;
        for a in &answers {
            assert!(
                a["active"] == true || (grace == 0 && a["reason"] == "NOT_FOUND"),
                "{a}"
            );
        }
        if grace > 0 {
            assert_eq!(admitted, 20, "every validate in the grace is admitted");
        }
        // Each admitted validate spent exactly one use; the refused none.
        let d = api.detail(&o, &id).await.json();
        assert_eq!(d["remainingUses"], 100 - admitted, "grace {grace}: {d}");
        let mut left: Vec<i64> = answers
            .iter()
            .filter_map(|a| a["remainingUses"].as_i64())
            .collect();
        left.sort();
        left.dedup();
        assert_eq!(
            left.len() as i64,
            admitted,
            "each admitted saw its own count"
        );
    }
}
