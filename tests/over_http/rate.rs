//! Rate limits over real HTTP: racing validates never over-admit, with a
//! use cap and a lease cap beside them, windows start over on time, and a
//! patch applies mid-window.

use std::collections::HashSet;

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tollgate_tests::{owner, Api};

use crate::e2e::IN_FLIGHT;

async fn storm(api: &Api, n: usize, body: Value) -> Vec<Value> {
    stream::iter((0..n).map(|_| api.validate(body.clone())))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

/// Waits out the last seconds of a `period` window, so a race that must
/// fit in one window never straddles two (windows are aligned to unix time).
async fn clear_of_window_end(period: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let left = period - now.as_secs() % period;
    if left <= 30 {
        tokio::time::sleep(std::time::Duration::from_secs(left + 1)).await;
    }
}

fn reasons(answers: &[Value], reason: &str) -> usize {
    answers.iter().filter(|a| a["reason"] == reason).count()
}

#[tokio::test]
async fn two_hundred_racing_validates_at_25_an_hour_admit_exactly_25() {
    let api = Api::new();
    let o = owner("rate");
    let (id, token) = api
        .mint(
            &o,
            json!({"rateLimits": [{"name": "hour", "limit": 25, "periodSeconds": 3600}]}),
        )
        .await;
    clear_of_window_end(3600).await;
    let answers = storm(&api, 200, json!({"token": token})).await;
    let admitted: Vec<&Value> = answers.iter().filter(|a| a["active"] == true).collect();
    assert_eq!(
        (admitted.len(), reasons(&answers, "RATE_LIMITED")),
        (25, 175)
    );
    // Each admitted validate saw its own count.
    let remaining: HashSet<i64> = admitted
        .iter()
        .map(|a| a["rateLimits"][0]["remaining"].as_i64().unwrap())
        .collect();
    assert_eq!(remaining, (0..25).collect());
    let reset = admitted[0]["rateLimits"][0]["reset"].as_str().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for refused in answers.iter().filter(|a| a["active"] == false) {
        let wait = refused["retryAfter"].as_i64().unwrap();
        assert!((1..=3600).contains(&wait), "{refused}");
        assert_eq!(
            refused.as_object().unwrap().len(),
            3,
            "nothing else: {refused}"
        );
    }
    let end = time::OffsetDateTime::parse(reset, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp();
    assert_eq!(end % 3600, 0, "windows are aligned to the hour");
    assert!(end > now && end <= now + 3600);
    let d = api.detail(&o, &id).await.json();
    assert_eq!(
        d["rateLimits"],
        json!([{"name": "hour", "limit": 25, "periodSeconds": 3600}])
    );
}

/// Rounds of racing acquires on a token with a use cap, a rate limit and a
/// lease cap; each round's leases are released. Answers every admission.
async fn acquire_rounds(api: &Api, token: &str, rounds: usize) -> Vec<Vec<Value>> {
    let mut all = Vec::new();
    for _ in 0..rounds {
        let answers = storm(api, 60, json!({"token": token, "acquire": true})).await;
        let leases: Vec<&str> = answers
            .iter()
            .filter(|a| a["active"] == true)
            .map(|a| a["lease"]["id"].as_str().unwrap())
            .collect();
        assert!(leases.len() <= 10, "never more than maxConcurrent at once");
        for l in leases {
            let r = api
                .send(
                    api.request("DELETE", &format!("/validate/leases/{l}"))
                        .header("authorization", format!("Bearer {token}")),
                )
                .await;
            assert_eq!(r.status, 204);
        }
        all.push(answers);
    }
    all
}

#[tokio::test]
async fn uses_rates_and_leases_together_never_over_admit() {
    let api = Api::new();
    let o = owner("caps");
    let limits = json!([{"name": "hour", "limit": 25, "periodSeconds": 3600}]);
    // The rate limit binds first: 25 admitted of maxUses 40.
    let (id, token) = api
        .mint(
            &o,
            json!({"maxUses": 40, "rateLimits": limits, "maxConcurrent": 10}),
        )
        .await;
    clear_of_window_end(3600).await;
    let rounds = acquire_rounds(&api, &token, 4).await;
    let all: Vec<Value> = rounds.into_iter().flatten().collect();
    let admitted: Vec<&Value> = all.iter().filter(|a| a["active"] == true).collect();
    assert_eq!(admitted.len(), 25);
    let left: HashSet<i64> = admitted
        .iter()
        .map(|a| a["remainingUses"].as_i64().unwrap())
        .collect();
    assert_eq!(left, (15..40).collect(), "each admission saw its own use");
    assert!(reasons(&all, "RATE_LIMITED") > 0);
    let d = api.detail(&o, &id).await.json();
    assert_eq!(
        (d["remainingUses"].clone(), d["activeLeases"].clone()),
        (json!(15), json!(0))
    );

    // The use cap binds first: 12 admitted, then USAGE_EXHAUSTED.
    let (id, token) = api
        .mint(
            &o,
            json!({"maxUses": 12, "rateLimits": limits, "maxConcurrent": 10}),
        )
        .await;
    let all: Vec<Value> = acquire_rounds(&api, &token, 3)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(all.iter().filter(|a| a["active"] == true).count(), 12);
    assert!(reasons(&all, "USAGE_EXHAUSTED") > 0);
    assert_eq!(reasons(&all, "RATE_LIMITED"), 0, "usage is checked first");
    let d = api.detail(&o, &id).await.json();
    assert_eq!(d["remainingUses"], 0);
    // The last validate shows the rate limit untouched by the refusals.
    let (status, after) = {
        let a = api.patch(&o, &id, json!({"maxUses": 13})).await;
        (a.status, a.json())
    };
    assert_eq!(status, 200, "{after}");
    let v = api.validate(json!({"token": token})).await;
    assert_eq!(v["rateLimits"][0]["remaining"], 25 - 13, "{v}");
}

#[tokio::test]
async fn a_window_starts_over_when_it_ends_and_a_patch_applies_at_once() {
    let api = Api::new();
    let o = owner("window");
    let (id, token) = api
        .mint(
            &o,
            json!({"rateLimits": [{"name": "two", "limit": 3, "periodSeconds": 2}]}),
        )
        .await;
    // Fill a window, then wait as long as the refusal says.
    let wait = loop {
        let v = api.validate(json!({"token": token})).await;
        if v["active"] == false {
            assert_eq!(v["reason"], "RATE_LIMITED");
            break v["retryAfter"].as_i64().unwrap();
        }
    };
    assert!((1..=2).contains(&wait), "{wait}");
    tokio::time::sleep(std::time::Duration::from_secs(wait as u64)).await;
    let v = api.validate(json!({"token": token})).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["rateLimits"][0]["remaining"], 2);

    // Lowering the limit applies to the window under way; another period
    // starts a new window.
    let long = json!({"rateLimits": [{"name": "day", "limit": 5, "periodSeconds": 86400}]});
    assert_eq!(api.patch(&o, &id, long).await.status, 200);
    for _ in 0..3 {
        assert_eq!(api.validate(json!({"token": token})).await["active"], true);
    }
    let lower = json!({"rateLimits": [{"name": "day", "limit": 3, "periodSeconds": 86400}]});
    assert_eq!(api.patch(&o, &id, lower).await.status, 200);
    assert_eq!(
        api.validate(json!({"token": token})).await["reason"],
        "RATE_LIMITED"
    );
    let other = json!({"rateLimits": [{"name": "day", "limit": 3, "periodSeconds": 43200}]});
    assert_eq!(api.patch(&o, &id, other).await.status, 200);
    assert_eq!(api.validate(json!({"token": token})).await["active"], true);
    // Removing every limit: nothing counted, nothing answered.
    let none = api.patch(&o, &id, json!({"rateLimits": null})).await;
    assert!(none.json().get("rateLimits").is_none());
    assert!(api
        .validate(json!({"token": token}))
        .await
        .get("rateLimits")
        .is_none());
}

#[tokio::test]
async fn bad_rate_limits_are_400_naming_the_field_and_xml_lists_them() {
    let api = Api::new();
    let o = owner("ratebad");
    let a = api
        .create(
            &o,
            json!({"rateLimits": [{"name": "ok", "limit": 1, "periodSeconds": 2_592_001}]}),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.text.contains("rateLimits[0].periodSeconds"), "{}", a.text);
    let (id, _) = api
        .mint(
            &o,
            json!({"rateLimits": [{"name": "m", "limit": 9, "periodSeconds": 60}]}),
        )
        .await;
    let x = api
        .send(
            api.request("GET", &format!("/tokens/{id}"))
                .header("x-owner", &o)
                .header("accept", "application/xml"),
        )
        .await;
    for part in [
        "<rateLimits><rateLimit>",
        "<name>m</name>",
        "<limit>9</limit>",
        "<periodSeconds>60</periodSeconds>",
    ] {
        assert!(x.text.contains(part), "{part} in {}", x.text);
    }
}
