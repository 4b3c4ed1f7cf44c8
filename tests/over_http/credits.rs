//! Credits over HTTP: a call's `cost` in uses on validate and mint, a
//! `refill` shown with its next boundary, and reserve-then-settle on
//! leases, raced through the local gateway against DynamoDB Local. The
//! refill's boundary crossing races in `store_contract.rs` (its instant
//! injected), a lapsed reserve in `inprocess/credits.rs`.

use futures::future::join_all;
use serde_json::{json, Value};
use tollgate_tests::{owner, Api};

async fn validate_status(api: &Api, body: Value) -> (u16, Value) {
    let a = api
        .send(
            api.request("POST", "/validate")
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await;
    (a.status, a.json())
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn thirty_racing_validates_of_cost_seven_admit_fourteen_and_leave_two() {
    let api = Api::new();
    let o = owner("cost");
    let (id, token) = api.mint(&o, json!({"maxUses": 100})).await;
    let answers = join_all((0..30).map(|_| api.validate(json!({"token": token, "cost": 7})))).await;
    let admitted = answers.iter().filter(|a| a["active"] == true).count();
    let exhausted = answers
        .iter()
        .filter(|a| a["reason"] == "USAGE_EXHAUSTED")
        .count();
    assert_eq!((admitted, exhausted), (14, 16), "{answers:?}");
    let mut left: Vec<i64> = answers
        .iter()
        .filter_map(|a| a["remainingUses"].as_i64())
        .collect();
    left.sort();
    assert_eq!(left, (0..14).map(|k| 2 + 7 * k).collect::<Vec<i64>>());
    assert_eq!(api.detail(&o, &id).await.json()["remainingUses"], 2);
    // Cost 0 checks and spends nothing; a cost above what remains spends nothing.
    let check = api.validate(json!({"token": token, "cost": 0})).await;
    assert_eq!(
        (check["active"].clone(), check["remainingUses"].clone()),
        (json!(true), json!(2))
    );
    let over = api.validate(json!({"token": token, "cost": 3})).await;
    assert_eq!(over, json!({"active": false, "reason": "USAGE_EXHAUSTED"}));
    // Form-encoded too.
    let a = api
        .send(
            api.request("POST", "/validate")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}&cost=2")),
        )
        .await;
    assert_eq!(a.json()["remainingUses"], 0, "{}", a.text);
    assert_eq!(api.detail(&o, &id).await.json()["remainingUses"], 0);
}

#[tokio::test]
async fn bad_costs_reserves_and_refills_are_400_naming_the_field() {
    let api = Api::new();
    let o = owner("badcost");
    let (id, token) = api.mint(&o, json!({"maxUses": 10})).await;
    for (body, field) in [
        (json!({"token": token, "cost": -1}), "cost"),
        (json!({"token": token, "cost": 1_000_001}), "cost"),
        (json!({"token": token, "cost": "7"}), "cost"),
        (json!({"token": token, "reserve": 5}), "reserve"),
        (
            json!({"token": token, "acquire": true, "reserve": 5, "cost": 1}),
            "cost",
        ),
        (json!({"token": token, "used": 1}), "used"),
    ] {
        let (status, problem) = validate_status(&api, body.clone()).await;
        assert_eq!(
            (status, fields(&problem)),
            (400, vec![field.to_owned()]),
            "{body}"
        );
    }
    assert_eq!(api.detail(&o, &id).await.json()["remainingUses"], 10);
    for (body, expected) in [
        (
            json!({"refill": {"amount": 5, "interval": "daily"}}),
            vec!["refill"],
        ),
        (
            json!({"maxUses": 5, "refill": {"amount": 0, "interval": "weekly", "day": 40}}),
            vec!["refill.amount", "refill.day", "refill.interval"],
        ),
        (json!({"maxUses": 5, "refill": "daily"}), vec!["refill"]),
    ] {
        let a = api.create(&o, body.clone()).await;
        assert_eq!(
            (a.status, fields(&a.json())),
            (400, expected.iter().map(|s| s.to_string()).collect()),
            "{body}"
        );
    }
    let a = api
        .mint_capability(&token, json!({"cost": 1_000_001}))
        .await;
    assert_eq!(
        (a.status, fields(&a.json())),
        (400, vec!["cost".to_owned()])
    );
}

#[tokio::test]
async fn a_refill_is_shown_with_its_next_boundary_and_resets_on_patch_rules() {
    let api = Api::new();
    let o = owner("refill");
    let refill = json!({"amount": 50, "interval": "monthly", "day": 31});
    let (id, token) = api
        .mint(&o, json!({"maxUses": 100, "refill": refill}))
        .await;
    let detail = api.detail(&o, &id).await.json();
    assert_eq!(detail["refill"], refill);
    assert_eq!(detail["remainingUses"], 100, "the first grant is maxUses");
    let next = time::OffsetDateTime::parse(
        detail["nextRefillAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(
        next > now && next <= now + time::Duration::days(31),
        "{next}"
    );
    assert_eq!((next.hour(), next.minute(), next.second()), (0, 0, 0));
    let last = next.month().length(next.year());
    assert_eq!(
        next.day(),
        last,
        "day 31 is the month's last day when shorter"
    );
    let a = api.validate(json!({"token": token, "cost": 10})).await;
    assert_eq!(
        (a["remainingUses"].clone(), a["refill"].clone()),
        (json!(90), refill)
    );
    assert_eq!(a["nextRefillAt"], detail["nextRefillAt"]);
    // A daily refill instead: what remains stays, the next boundary is midnight.
    let p = api
        .patch(
            &o,
            &id,
            json!({"refill": {"amount": 20, "interval": "daily"}}),
        )
        .await
        .json();
    assert_eq!(p["remainingUses"], 90);
    assert!(p["nextRefillAt"].as_str().unwrap().ends_with("T00:00:00Z"));
    // Removing maxUses takes the refill's reason away: 400 until it goes too.
    let a = api.patch(&o, &id, json!({"maxUses": null})).await;
    assert_eq!(
        (a.status, fields(&a.json())),
        (400, vec!["refill".to_owned()])
    );
    let p = api
        .patch(&o, &id, json!({"maxUses": null, "refill": null}))
        .await
        .json();
    assert!(
        p.get("refill").is_none() && p.get("remainingUses").is_none(),
        "{p}"
    );
}

#[tokio::test]
async fn mint_spends_its_cost_of_the_parent() {
    let api = Api::new();
    let o = owner("mintcost");
    let (id, token) = api.mint(&o, json!({"maxUses": 20})).await;
    let a = api.mint_capability(&token, json!({"cost": 5})).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(api.detail(&o, &id).await.json()["remainingUses"], 15);
    let a = api.mint_capability(&token, json!({"cost": 16})).await;
    assert_eq!(a.json()["reason"], "USAGE_EXHAUSTED", "{}", a.text);
    assert_eq!(api.detail(&o, &id).await.json()["remainingUses"], 15);
}

fn release(api: &Api, lease: &str, token: &str, body: Option<Value>) -> reqwest::RequestBuilder {
    let rb = api
        .request("DELETE", &format!("/validate/leases/{lease}"))
        .bearer_auth(token);
    match body {
        Some(b) => rb
            .header("content-type", "application/json")
            .body(b.to_string()),
        None => rb,
    }
}

#[tokio::test]
async fn reserve_then_settle_gives_back_exactly_once() {
    let api = Api::new();
    let o = owner("reserve");
    let (id, token) = api.mint(&o, json!({"maxUses": 100})).await;
    let remaining = |api: Api, o: String, id: String| async move {
        api.detail(&o, &id).await.json()["remainingUses"]
            .as_i64()
            .unwrap()
    };
    // 20 racing acquires reserving 10 each against 100 uses: 10 admitted,
    // each with a lease although the token has no maxConcurrent.
    let answers = join_all(
        (0..20).map(|_| api.validate(json!({"token": token, "acquire": true, "reserve": 10}))),
    )
    .await;
    let leases: Vec<String> = answers
        .iter()
        .filter(|a| a["active"] == true)
        .map(|a| a["lease"]["id"].as_str().unwrap().to_owned())
        .collect();
    let exhausted = answers
        .iter()
        .filter(|a| a["reason"] == "USAGE_EXHAUSTED")
        .count();
    assert_eq!((leases.len(), exhausted), (10, 10), "{answers:?}");
    assert_eq!(remaining(api.clone(), o.clone(), id.clone()).await, 0);
    // Settled with 3 used: 7 come back.
    let a = api
        .send(release(&api, &leases[0], &token, Some(json!({"used": 3}))))
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(remaining(api.clone(), o.clone(), id.clone()).await, 7);
    // Released again: nothing more.
    let a = api
        .send(release(&api, &leases[0], &token, Some(json!({"used": 0}))))
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(remaining(api.clone(), o.clone(), id.clone()).await, 7);
    // Five racing releases of one lease give back once.
    let racing = join_all(
        (0..5).map(|_| api.send(release(&api, &leases[1], &token, Some(json!({"used": 0}))))),
    )
    .await;
    assert!(racing.iter().all(|a| a.status == 204));
    assert_eq!(remaining(api.clone(), o.clone(), id.clone()).await, 17);
    // A release without `used` keeps the whole reserve spent.
    assert_eq!(
        api.send(release(&api, &leases[2], &token, None))
            .await
            .status,
        204
    );
    assert_eq!(remaining(api.clone(), o.clone(), id.clone()).await, 17);
    // More used than reserved: 400 naming `used`, nothing released.
    let a = api
        .send(release(&api, &leases[3], &token, Some(json!({"used": 11}))))
        .await;
    assert_eq!(
        (a.status, fields(&a.json())),
        (400, vec!["used".to_owned()])
    );
    let a = api
        .send(release(&api, &leases[3], &token, Some(json!({"used": 10}))))
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(remaining(api.clone(), o.clone(), id.clone()).await, 17);
    // Renewing keeps the reservation: settled after a renewal, it gives back.
    let r = api
        .send(
            api.request("PUT", &format!("/validate/leases/{}", leases[4]))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let a = api
        .send(release(&api, &leases[4], &token, Some(json!({"used": 4}))))
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(remaining(api.clone(), o.clone(), id.clone()).await, 23);
}
