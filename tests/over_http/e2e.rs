//! End-to-end tests over real HTTP: the API's real routes through the
//! local API gateway (payload 2.0 events, the JWT authorizer played with
//! its `X-Owner` shorthand), every function under `cargo lambda watch`,
//! DynamoDB Local behind it. `make test` starts the stack.

use std::collections::HashSet;

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tollgate_tests::{owner, Api};

/// Requests in flight at once in the storm tests. The local gateway bounds
/// what reaches `cargo lambda watch` per function (which wedges above about
/// 100 requests in flight) and queues the rest; 200 truly simultaneous
/// acquires run in-process in `lease_lapse.rs`, 500 concurrent requests
/// through the gateway in `gateway.rs`.
pub const IN_FLIGHT: usize = 64;

/// An RFC 3339 date-time from an answer.
fn utc(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

fn api() -> Api {
    Api::new()
}

// ---------- create, detail, list ----------

#[tokio::test]
async fn create_answers_201_with_location_etag_and_token_once() {
    let api = api();
    let o = owner("create");
    let year = time::OffsetDateTime::now_utc().year() + 1;
    let a = api
        .create(
            &o,
            json!({"type": "uPhone", "description": "widget", "resource": "/teams/", "write": true,
            "tags": {"env": "prod"}, "caller": "+4712345678", "callee": "sip:bob@example.com",
            "maxConcurrent": 12, "maxUses": 10, "allowedAddresses": ["203.0.113.0/24"],
            "startDate": format!("{year}-01-01T00:00:00-0800"), "endDate": format!("{year}-06-01T00:00:00-08:00")}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let v = a.json();
    let id = v["id"].as_str().unwrap();
    assert_eq!(a.header("location"), Some(format!("/tokens/{id}").as_str()));
    assert_eq!(a.header("etag"), Some("\"1\""));
    let token = v["token"].as_str().unwrap();
    assert!(token.starts_with("tgl_") && token.len() >= 4 + 26 + 52);
    assert_eq!(v["start"], token[..12]);
    assert_eq!(v["resource"], "/teams");
    assert_eq!(v["startDate"], format!("{year}-01-01T08:00:00Z"));
    assert_eq!(v["endDate"], format!("{year}-06-01T08:00:00Z"));
    let end = utc(&format!("{year}-06-01T08:00:00Z"));
    assert_eq!(v["expire"], end.unix_timestamp());
    assert_eq!(v["remainingUses"], 10);
    assert_eq!(v["activeLeases"], 0);
    assert_eq!(v["allowedAddresses"], json!(["203.0.113.0/24"]));
    // Shown once: never again on detail or list.
    let d = api.detail(&o, id).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.header("etag"), Some("\"1\""));
    assert!(d.json().get("token").is_none());
    assert!(!d.text.contains(&token[12..]));
    let l = api.list(&o, "").await;
    assert!(!l.text.contains(&token[12..]));
}

#[tokio::test]
async fn lifetime_defaults_ttl_and_limits() {
    let api = api();
    let o = owner("life");
    let v = api.create(&o, json!({})).await.json();
    let created = utc(v["createdAt"].as_str().unwrap());
    let end = utc(v["endDate"].as_str().unwrap());
    assert_eq!(
        end - created,
        time::Duration::hours(12),
        "12 hours by default"
    );
    assert_eq!(v["expire"], end.unix_timestamp());
    assert_eq!(v["type"], "api");
    assert_eq!(v["resource"], "/");
    assert_eq!(v["write"], false);
    let v = api.create(&o, json!({"ttlSeconds": 60})).await.json();
    let created = utc(v["createdAt"].as_str().unwrap());
    let end = utc(v["endDate"].as_str().unwrap());
    assert_eq!(end - created, time::Duration::seconds(60), "{v}");
    for (body, field) in [
        (json!({"ttlSeconds": 31_536_001}), "ttlSeconds"),
        (json!({"endDate": "2999-01-01T00:00:00Z"}), "endDate"),
        (json!({"endDate": "2001-01-01T00:00:00Z"}), "endDate"),
        (
            json!({"startDate": "2098-01-01T00:00:00Z", "endDate": "2097-01-01T00:00:00Z"}),
            "endDate",
        ),
        (
            json!({"ttlSeconds": 60, "endDate": "2099-01-01T00:00:00Z"}),
            "ttlSeconds",
        ),
    ] {
        let a = api.create(&o, body.clone()).await;
        assert_eq!(a.status, 400, "{body}");
        assert!(
            a.json()["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{body}: {}",
            a.text
        );
    }
}

#[tokio::test]
async fn bad_input_on_every_field_is_400_naming_it_and_writes_nothing() {
    let api = api();
    let o = owner("bad");
    let cases = [
        ("type", json!("has space")),
        ("type", json!("x".repeat(33))),
        ("description", json!("d".repeat(257))),
        ("description", json!(5)),
        ("resource", json!("/a/../b")),
        ("resource", json!("no-slash")),
        ("write", json!("yes")),
        ("tags", json!(["a"])),
        ("tags.", json!({"": "v"})),
        ("caller", json!("c".repeat(65))),
        ("callee", json!(12)),
        ("maxConcurrent", json!(0)),
        ("maxConcurrent", json!(10_001)),
        ("maxConcurrent", json!(1.5)),
        ("maxUses", json!(0)),
        ("maxUses", json!(-3)),
        ("maxUses", json!("5")),
        ("allowedAddresses", json!("1.2.3.4")),
        ("allowedAddresses[0]", json!(["999.1.1.1"])),
        ("allowedAddresses", json!([])),
        ("startDate", json!("yesterday")),
        ("endDate", json!("2030-01-01")),
        ("ttlSeconds", json!(0)),
        ("bindToRequester", json!("true")),
        ("id", json!("abc")),
        ("remainingUses", json!(5)),
        ("token", json!("tgl_x")),
        ("createdAt", json!("2030-01-01T00:00:00Z")),
        ("nonsense", json!(1)),
    ];
    for (field, value) in cases {
        let key = field.split(['.', '[']).next().unwrap();
        let a = api.create(&o, json!({ key: value })).await;
        assert_eq!(a.status, 400, "{field}={value}: {}", a.text);
        assert_eq!(a.header("content-type"), Some("application/problem+json"));
        let v = a.json();
        assert_eq!(v["status"], 400);
        assert!(v["title"].is_string() && v["type"].is_string() && v["detail"].is_string());
        let errors = v["errors"].as_array().unwrap();
        assert!(
            errors
                .iter()
                .any(|e| e["field"].as_str().unwrap().starts_with(field)),
            "{field}: {}",
            a.text
        );
    }
    // Too many tags and addresses.
    let tags: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let a = api.create(&o, json!({"tags": tags})).await;
    assert_eq!(a.status, 400, "{}", a.text);
    let addrs: Vec<String> = (0..17).map(|i| format!("10.0.0.{i}")).collect();
    let a = api.create(&o, json!({"allowedAddresses": addrs})).await;
    assert_eq!(a.status, 400);
    // Every bad field at once.
    let a = api
        .create(&o, json!({"type": "", "maxUses": 0, "write": 1}))
        .await;
    let fields: HashSet<String> = a.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fields,
        HashSet::from(["type".into(), "maxUses".into(), "write".into()])
    );
    // Malformed JSON, non-object JSON, invalid UTF-8 (the gateway sends it
    // base64-encoded, as API Gateway does), wrong content type.
    for body in [
        &b"{not json"[..],
        b"[1,2]",
        b"",
        b"{\"description\":\"\xff\xfe\"}",
    ] {
        let a = api
            .send(
                api.request("POST", "/tokens")
                    .header("x-owner", &o)
                    .header("content-type", "application/json")
                    .body(body.to_vec()),
            )
            .await;
        assert_eq!(a.status, 400, "{:?}", String::from_utf8_lossy(body));
        assert_eq!(a.json()["errors"][0]["field"], "body");
    }
    let a = api
        .send(
            api.request("POST", "/tokens")
                .header("x-owner", &o)
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await;
    assert_eq!(a.status, 415);
    let big = format!("{{\"description\":\"{}\"}}", "x".repeat(70 * 1024));
    let a = api
        .send(
            api.request("POST", "/tokens")
                .header("x-owner", &o)
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    assert_eq!(a.status, 413);
    // Nothing was written by any refused request.
    assert_eq!(api.count(&o).await, 0);
}

#[tokio::test]
async fn bind_to_requester_adds_the_source_address() {
    let api = api();
    let o = owner("bind");
    let v = api
        .create(
            &o,
            json!({"bindToRequester": true, "allowedAddresses": ["10.0.0.0/8"]}),
        )
        .await
        .json();
    let addrs: Vec<&str> = v["allowedAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(addrs.contains(&"10.0.0.0/8"));
    assert!(addrs.contains(&"127.0.0.1"), "{addrs:?}");
}

#[tokio::test]
async fn list_pages_newest_first_with_filters_and_signed_cursors() {
    let api = api();
    let o = owner("list");
    let mut ids = Vec::new();
    for i in 0..5 {
        let ty = if i % 2 == 0 { "even" } else { "odd" };
        let (id, _) = api
            .mint(
                &o,
                json!({"type": ty, "tags": {"n": i.to_string(), "team": "a"}}),
            )
            .await;
        ids.push(id);
    }
    let expired_soon = api.mint(&o, json!({"ttlSeconds": 1})).await.0;
    ids.push(expired_soon.clone());
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".into(),
        };
        let v = api.list(&o, &q).await.json();
        seen.extend(
            v["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned()),
        );
        match v["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "newest first, every token once");
    let ty = api.list(&o, "?type=odd").await.json();
    assert_eq!(ty["tokens"].as_array().unwrap().len(), 2);
    let tag = api.list(&o, "?tag=team:a&tag=n:4").await.json();
    assert_eq!(tag["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(tag["tokens"][0]["tags"]["n"], "4");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let expired = api.list(&o, "?state=expired").await.json();
    assert_eq!(expired["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(expired["tokens"][0]["id"], expired_soon);
    let active = api.list(&o, "?state=active").await.json();
    assert_eq!(active["tokens"].as_array().unwrap().len(), 5);
    // Cursors: tampered or another owner's are refused.
    let c = api.list(&o, "?limit=1").await.json()["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tampered = c.clone().into_bytes();
    let i = tampered.len() - 2;
    tampered[i] = if tampered[i] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (who, cur) in [
        (o.as_str(), tampered.as_str()),
        ("someone-else", c.as_str()),
        (o.as_str(), "garbage"),
    ] {
        let a = api.list(who, &format!("?cursor={cur}")).await;
        assert_eq!(a.status, 400);
        assert_eq!(a.json()["errors"][0]["field"], "cursor");
    }
    for (q, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=x", "limit"),
        ("?state=old", "state"),
        ("?tag=novalue", "tag"),
    ] {
        let a = api.list(&o, q).await;
        assert_eq!(a.status, 400, "{q}");
        assert_eq!(a.json()["errors"][0]["field"], field);
    }
}

// ---------- owners ----------

#[tokio::test]
async fn owner_rules_401_403_404() {
    let api = api();
    let o = owner("own");
    let (id, token) = api.mint(&o, json!({})).await;
    // No owner: 401 on every management route.
    for (m, r) in [
        ("GET", "/tokens".to_owned()),
        ("POST", "/tokens".into()),
        ("GET", format!("/tokens/{id}")),
        ("PATCH", format!("/tokens/{id}")),
        ("DELETE", format!("/tokens/{id}")),
    ] {
        let a = api
            .send(
                api.request(m, &r)
                    .header("content-type", "application/json")
                    .body("{}"),
            )
            .await;
        assert_eq!(a.status, 401, "{m} {r}");
        // A Tollgate token cannot manage tokens: 403.
        let a = api
            .send(
                api.request(m, &r)
                    .header("authorization", format!("Bearer {token}"))
                    .header("x-owner", &o)
                    .header("content-type", "application/json")
                    .body("{}"),
            )
            .await;
        assert_eq!(a.status, 403, "{m} {r}");
        assert!(!a.text.contains(&token));
    }
    // Another owner's token is 404, exactly like an unknown id.
    let other = owner("intruder");
    let unknown = "0000000000000000000000000a";
    for target in [id.as_str(), unknown] {
        assert_eq!(api.detail(&other, target).await.status, 404);
        let a = api
            .send(
                api.request("PATCH", &format!("/tokens/{target}"))
                    .header("x-owner", &other)
                    .header("content-type", "application/json")
                    .body(r#"{"description":"pwned"}"#),
            )
            .await;
        assert_eq!(a.status, 404);
        let a = api
            .send(
                api.request("DELETE", &format!("/tokens/{target}"))
                    .header("x-owner", &other),
            )
            .await;
        assert_eq!(a.status, 404);
    }
    assert_eq!(api.count(&other).await, 0);
    let d = api.detail(&o, &id).await.json();
    assert_eq!(d["description"], "", "the intruder changed nothing");
}

// ---------- patch ----------

#[tokio::test]
async fn merge_patch_with_null_removal_and_if_match() {
    let api = api();
    let o = owner("patch");
    let (id, _) = api.mint(&o, json!({"tags": {"a": "1", "b": "2"}, "caller": "x", "maxUses": 5, "description": "old"})).await;
    let patch = |body: &str, if_match: Option<&str>| {
        let mut rb = api
            .request("PATCH", &format!("/tokens/{id}"))
            .header("x-owner", &o)
            .header("content-type", "application/merge-patch+json")
            .body(body.to_owned());
        if let Some(m) = if_match {
            rb = rb.header("if-match", m);
        }
        api.send(rb)
    };
    let a = patch(
        r#"{"tags": {"a": null, "c": "3"}, "caller": null, "description": "new", "maxUses": 8}"#,
        Some("\"1\""),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("etag"), Some("\"2\""));
    let v = a.json();
    assert_eq!(v["tags"], json!({"b": "2", "c": "3"}));
    assert!(v.get("caller").is_none());
    assert_eq!(v["description"], "new");
    assert_eq!(v["maxUses"], 8);
    assert_eq!(v["remainingUses"], 8);
    // Stale If-Match: 412, nothing changed.
    let a = patch(r#"{"description": "stale"}"#, Some("\"1\"")).await;
    assert_eq!(a.status, 412);
    let a = patch(r#"{"description": "stale"}"#, Some("bogus")).await;
    assert_eq!(a.status, 412);
    assert_eq!(api.detail(&o, &id).await.json()["description"], "new");
    // Same rules as create; server fields and create-only fields refused.
    for (body, field) in [
        (r#"{"maxConcurrent": 0}"#, "maxConcurrent"),
        (r#"{"endDate": null}"#, "endDate"),
        (r#"{"type": "x"}"#, "type"),
        (r#"{"id": "x"}"#, "id"),
        (r#"{"ttlSeconds": 5}"#, "ttlSeconds"),
        (r#"{"endDate": "2001-01-01T00:00:00Z"}"#, "endDate"),
        (r#"{"resource": "/a//b"}"#, "resource"),
    ] {
        let a = patch(body, None).await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(a.json()["errors"][0]["field"], field, "{body}");
    }
    let a = patch("[]", None).await;
    assert_eq!(a.status, 400);
    let v = patch(
        r#"{"maxUses": null, "tags": null, "resource": "/x/"}"#,
        Some("\"2\""),
    )
    .await
    .json();
    assert!(v.get("maxUses").is_none() && v.get("remainingUses").is_none());
    assert_eq!(v["tags"], json!({}));
    assert_eq!(v["resource"], "/x");
}

// ---------- delete ----------

#[tokio::test]
async fn delete_is_204_then_not_found_everywhere() {
    let api = api();
    let o = owner("delete");
    let (id, token) = api.mint(&o, json!({})).await;
    assert_eq!(api.validate(json!({"token": token})).await["active"], true);
    let a = api
        .send(
            api.request("DELETE", &format!("/tokens/{id}"))
                .header("x-owner", &o),
        )
        .await;
    assert_eq!(a.status, 204);
    assert!(a.text.is_empty());
    assert_eq!(
        api.validate(json!({"token": token})).await,
        json!({"active": false, "reason": "NOT_FOUND"})
    );
    assert_eq!(api.detail(&o, &id).await.status, 404);
    let a = api
        .send(
            api.request("DELETE", &format!("/tokens/{id}"))
                .header("x-owner", &o),
        )
        .await;
    assert_eq!(a.status, 404);
}

// ---------- idempotency ----------

#[tokio::test]
async fn idempotency_key_replays_the_first_token_without_secret() {
    let api = api();
    let o = owner("idem");
    let send = |body: &str, key: &str| {
        api.send(
            api.request("POST", "/tokens")
                .header("x-owner", &o)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(body.to_owned()),
        )
    };
    let first = send(r#"{"description":"once"}"#, "key-1").await;
    assert_eq!(first.status, 201);
    tollgate_tests::record_minted(first.json()["token"].as_str().unwrap());
    let again = send(r#"{"description":"once"}"#, "key-1").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert!(again.json().get("token").is_none());
    // Same key from another owner is independent.
    let other = api
        .send(
            api.request("POST", "/tokens")
                .header("x-owner", owner("idem2"))
                .header("content-type", "application/json")
                .header("idempotency-key", "key-1")
                .body(r#"{"description":"once"}"#),
        )
        .await;
    assert_eq!(other.status, 201);
    tollgate_tests::record_minted(other.json()["token"].as_str().unwrap());
    // Same key, different request: refused.
    assert_eq!(
        send(r#"{"description":"different"}"#, "key-1").await.status,
        422
    );
    assert_eq!(send("{}", &"k".repeat(300)).await.status, 400);
    // Concurrent repeats create exactly one token.
    let racers = join_all((0..10).map(|_| send(r#"{"description":"race"}"#, "key-race"))).await;
    let created: Vec<_> = racers.iter().filter(|a| a.status == 201).collect();
    assert_eq!(
        created.len(),
        1,
        "{:?}",
        racers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    tollgate_tests::record_minted(created[0].json()["token"].as_str().unwrap());
    assert!(racers.iter().all(|a| a.status == 201 || a.status == 200));
    let ids: HashSet<String> = racers
        .iter()
        .map(|a| a.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(api.count(&o).await, 2);
}

// ---------- validate ----------

#[tokio::test]
async fn validate_reason_codes_in_order() {
    let api = api();
    let o = owner("reasons");
    let refusal = |r: &str| json!({"active": false, "reason": r});
    let (_, token) = api
        .mint(
            &o,
            json!({"resource": "/teams", "allowedAddresses": ["203.0.113.9"], "maxUses": 1}),
        )
        .await;
    let mut forged = token.clone().into_bytes();
    forged[40] = if forged[40] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(
        api.validate(json!({"token": "nonsense"})).await,
        refusal("MALFORMED")
    );
    assert_eq!(
        api.validate(json!({"token": forged})).await,
        refusal("MALFORMED")
    );
    let (gone_id, gone) = api.mint(&o, json!({})).await;
    api.send(
        api.request("DELETE", &format!("/tokens/{gone_id}"))
            .header("x-owner", &o),
    )
    .await;
    assert_eq!(
        api.validate(json!({"token": gone})).await,
        refusal("NOT_FOUND")
    );
    let (_, later) = api
        .mint(
            &o,
            json!({"startDate": "2098-01-01T00:00:00Z", "endDate": "2098-06-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        api.validate(json!({"token": later})).await,
        refusal("NOT_YET_VALID")
    );
    let (_, brief) = api.mint(&o, json!({"ttlSeconds": 1})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        api.validate(json!({"token": brief})).await,
        refusal("EXPIRED")
    );
    // Address binding: the given address, else the request's source address.
    // Address binding: the request's source address (127.0.0.1 here), or
    // the address a trusted relay of the same owner vouches for.
    let (_, relay) = api
        .mint(&o, json!({"scopes": ["scope:tollgate:relay"]}))
        .await;
    assert_eq!(
        api.validate(json!({"token": token, "address": "203.0.113.9"}))
            .await,
        refusal("ADDRESS_NOT_ALLOWED"),
        "a claimed address without a relay does not count"
    );
    assert_eq!(
        api.validate_relayed(json!({"token": token, "address": "198.51.100.1"}), &relay)
            .await,
        refusal("ADDRESS_NOT_ALLOWED")
    );
    assert_eq!(
        api.validate(json!({"token": token})).await,
        refusal("ADDRESS_NOT_ALLOWED"),
        "source is 127.0.0.1"
    );
    let at = |extra: Value| {
        let mut b = json!({"token": token, "address": "203.0.113.9"});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        api.validate_relayed(b, &relay)
    };
    for bad in [
        "/teamsx",
        "/",
        "/teams/../admin",
        "/teams//1",
        "/teams/1?x=1",
        "/teams/1#f",
        "/teams/%2e%2e",
    ] {
        assert_eq!(
            at(json!({"resource": bad})).await,
            refusal("RESOURCE_NOT_ALLOWED"),
            "{bad}"
        );
    }
    assert_eq!(
        at(json!({"resource": "/teams/1", "write": true})).await,
        refusal("WRITE_NOT_ALLOWED")
    );
    let ok = at(json!({"resource": "/teams/17dh0cf43jfgl8"})).await;
    assert_eq!(ok["active"], true, "{ok}");
    assert_eq!(ok["remainingUses"], 0);
    assert_eq!(ok["owner"], o.as_str());
    for k in [
        "id",
        "type",
        "description",
        "resource",
        "write",
        "tags",
        "caller",
        "callee",
        "startDate",
        "endDate",
        "expire",
        "maxConcurrent",
        "remainingUses",
    ] {
        assert!(ok.get(k).is_some(), "valid answer lacks {k}: {ok}");
    }
    assert!(ok.get("lease").is_none());
    assert_eq!(
        at(json!({"resource": "/teams"})).await,
        refusal("USAGE_EXHAUSTED")
    );
    // lastUsedAt is recorded.
    let list = api.list(&o, "").await.json();
    let used = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["start"] == token[..12])
        .unwrap()
        .clone();
    assert!(used["lastUsedAt"].is_string(), "{used}");
}

#[tokio::test]
async fn validate_accepts_bearer_and_form_and_refuses_bad_requests() {
    let api = api();
    let (_, token) = api
        .mint(&owner("forms"), json!({"resource": "/r", "write": true}))
        .await;
    let a = api
        .send(
            api.request("POST", "/validate")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(r#"{"resource":"/r/1","write":true}"#),
        )
        .await;
    assert_eq!(a.json()["active"], true, "{}", a.text);
    let a = api
        .send(
            api.request("POST", "/validate")
                .header("authorization", format!("Bearer {token}")),
        )
        .await;
    assert_eq!(a.json()["active"], true, "{}", a.text);
    let form = format!("token={token}&resource=%2Fr%2F2&write=true&address=127.0.0.1");
    let a = api
        .send(
            api.request("POST", "/validate")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
    assert_eq!(a.json()["active"], true, "{}", a.text);
    let a = api
        .send(
            api.request("POST", "/validate")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}&resource=%2Fx")),
        )
        .await;
    assert_eq!(
        a.json(),
        json!({"active": false, "reason": "RESOURCE_NOT_ALLOWED"})
    );
    // Malformed requests are 400 naming the field, never a validation answer.
    for (ctype, body, field) in [
        ("application/json", "{}".to_owned(), "token"),
        (
            "application/json",
            format!(r#"{{"token":"{token}","write":"yes"}}"#),
            "write",
        ),
        (
            "application/json",
            format!(r#"{{"token":"{token}","address":"nope"}}"#),
            "address",
        ),
        (
            "application/json",
            format!(r#"{{"token":"{token}","extra":1}}"#),
            "extra",
        ),
        ("application/json", "{bad".to_owned(), "body"),
        (
            "application/x-www-form-urlencoded",
            format!("token={token}&acquire=maybe"),
            "acquire",
        ),
    ] {
        let a = api
            .send(
                api.request("POST", "/validate")
                    .header("content-type", ctype)
                    .body(body),
            )
            .await;
        assert_eq!(a.status, 400, "{field}");
        assert_eq!(a.json()["errors"][0]["field"], field);
        assert!(!a.text.contains(&token[12..]), "no secret in an error body");
    }
    let a = api
        .send(
            api.request("POST", "/validate")
                .header("content-type", "text/csv")
                .body("a,b"),
        )
        .await;
    assert_eq!(a.status, 415);
    // A method the API has no route for: API Gateway's 404 (the function's
    // own 405 with `Allow` is tested in-process).
    let a = api.send(api.request("GET", "/validate")).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json(), json!({"message": "Not Found"}));
    let a = api.send(api.request("GET", "/nope")).await;
    assert_eq!(a.status, 404);
    let a = api
        .send(
            api.request("GET", "/tokens/../../etc/passwd")
                .header("x-owner", "x"),
        )
        .await;
    assert!(a.status == 404 || a.status == 400, "{}", a.status);
}

#[tokio::test]
async fn xml_on_accept_or_format_query() {
    let api = api();
    let o = owner("xml");
    let (id, token) = api.mint(&o, json!({"tags": {"k": "v<&>"}})).await;
    let a = api
        .send(
            api.request("GET", &format!("/tokens/{id}"))
                .header("x-owner", &o)
                .header("accept", "application/xml"),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/xml"));
    assert!(
        a.text.contains("<token>") && a.text.contains(&format!("<id>{id}</id>")),
        "{}",
        a.text
    );
    assert!(a.text.contains("<tag key=\"k\">v&lt;&amp;&gt;</tag>"));
    let a = api
        .send(
            api.request("GET", "/tokens?format=xml")
                .header("x-owner", &o),
        )
        .await;
    assert!(a.text.contains("<tokens><tokens><token>"), "{}", a.text);
    let a = api
        .send(
            api.request("POST", "/validate?format=xml")
                .header("content-type", "application/json")
                .body(json!({"token": token}).to_string()),
        )
        .await;
    assert!(
        a.text.contains("<validation><active>true</active>"),
        "{}",
        a.text
    );
}

#[tokio::test]
async fn twenty_concurrent_validations_of_max_uses_5_admit_exactly_5() {
    let api = api();
    let (id, token) = api.mint(&owner("race"), json!({"maxUses": 5})).await;
    let _ = id;
    let answers = join_all((0..20).map(|_| api.validate(json!({"token": token})))).await;
    let admitted = answers.iter().filter(|a| a["active"] == true).count();
    let exhausted = answers
        .iter()
        .filter(|a| a["reason"] == "USAGE_EXHAUSTED")
        .count();
    assert_eq!((admitted, exhausted), (5, 15), "{answers:?}");
    // Each admitted validation reports the count its own write left.
    let mut left: Vec<i64> = answers
        .iter()
        .filter_map(|a| a["remainingUses"].as_i64())
        .collect();
    left.sort();
    assert_eq!(left, [0, 1, 2, 3, 4]);
}

// ---------- leases ----------

async fn acquire(api: &Api, token: &str) -> Value {
    api.validate(json!({"token": token, "acquire": true})).await
}

/// The status of a renew (`PUT`) or release (`DELETE`) of `lease` with `token`.
async fn lease_status(api: &Api, method: &str, lease: &str, token: &str) -> u16 {
    api.send(lease_call(api, method, lease, token)).await.status
}

fn lease_call(api: &Api, method: &str, lease: &str, token: &str) -> reqwest::RequestBuilder {
    api.request(method, &format!("/validate/leases/{lease}"))
        .header("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn two_hundred_concurrent_acquires_admit_exactly_twelve_over_ten_rounds() {
    let api = api();
    let o = owner("storm");
    let (id, token) = api.mint(&o, json!({"maxConcurrent": 12})).await;
    let mut all_ids = HashSet::new();
    for round in 0..10 {
        let answers: Vec<Value> = stream::iter((0..200).map(|_| acquire(&api, &token)))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let leases: Vec<String> = answers
            .iter()
            .filter(|a| a["active"] == true)
            .map(|a| a["lease"]["id"].as_str().unwrap().to_owned())
            .collect();
        let limited = answers
            .iter()
            .filter(|a| a["reason"] == "CONCURRENCY_LIMIT")
            .count();
        assert_eq!((leases.len(), limited), (12, 188), "round {round}");
        let distinct: HashSet<&String> = leases.iter().collect();
        assert_eq!(distinct.len(), 12);
        assert_eq!(api.detail(&o, &id).await.json()["activeLeases"], 12);
        for l in &leases {
            assert!(all_ids.insert(l.clone()), "lease ids are never reused");
        }
        let released = join_all(
            leases
                .iter()
                .map(|l| api.send(lease_call(&api, "DELETE", l, &token))),
        )
        .await;
        assert!(released.iter().all(|a| a.status == 204));
        assert_eq!(api.detail(&o, &id).await.json()["activeLeases"], 0);
    }
}

#[tokio::test]
async fn renew_release_and_foreign_leases() {
    let api = api();
    let o = owner("lease");
    let (id, token) = api
        .mint(&o, json!({"maxConcurrent": 1, "maxUses": 3}))
        .await;
    let (_, other) = api.mint(&o, json!({"maxConcurrent": 1})).await;
    let first = acquire(&api, &token).await;
    let lease = first["lease"]["id"].as_str().unwrap().to_owned();
    assert_eq!(first["remainingUses"], 2);
    let refused = acquire(&api, &token).await;
    assert_eq!(
        refused,
        json!({"active": false, "reason": "CONCURRENCY_LIMIT"})
    );
    assert_eq!(
        api.detail(&o, &id).await.json()["remainingUses"],
        2,
        "a refused acquire spends no use"
    );
    // Renew extends expiresAt to at least the lease period from now (on
    // the lease grid, so a renewal within one grid step answers the same).
    let renewed_at = time::OffsetDateTime::now_utc();
    let r = api.send(lease_call(&api, "PUT", &lease, &token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let expiry = |v: &Value| {
        let at = v["lease"]["expiresAt"].as_str().unwrap();
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert!(expiry(&r.json()) >= expiry(&first));
    assert!(expiry(&r.json()) >= renewed_at + time::Duration::seconds(300));
    // With another token, or unknown: 404.
    assert_eq!(lease_status(&api, "PUT", &lease, &other).await, 404);
    assert_eq!(lease_status(&api, "DELETE", &lease, &other).await, 404);
    assert_eq!(
        lease_status(&api, "PUT", "0000000000000000000000000a", &token).await,
        404
    );
    // Token in the body works too.
    let a = api
        .send(
            api.request("PUT", &format!("/validate/leases/{lease}"))
                .header("content-type", "application/json")
                .body(json!({"token": token}).to_string()),
        )
        .await;
    assert_eq!(a.status, 200);
    // Release frees the slot; twice is still 204; renew after release 404.
    assert_eq!(lease_status(&api, "DELETE", &lease, &token).await, 204);
    assert_eq!(lease_status(&api, "DELETE", &lease, &token).await, 204);
    assert_eq!(lease_status(&api, "PUT", &lease, &token).await, 404);
    let second = acquire(&api, &token).await;
    assert_eq!(second["active"], true);
    // Without maxConcurrent acquire succeeds with no lease.
    let (_, uncapped) = api.mint(&o, json!({})).await;
    let a = acquire(&api, &uncapped).await;
    assert_eq!(a["active"], true);
    assert!(a.get("lease").is_none());
    // Deleting the token ends its leases.
    api.send(
        api.request("DELETE", &format!("/tokens/{id}"))
            .header("x-owner", &o),
    )
    .await;
    let l2 = second["lease"]["id"].as_str().unwrap();
    assert_eq!(lease_status(&api, "PUT", l2, &token).await, 404);
    assert_eq!(lease_status(&api, "DELETE", l2, &token).await, 204);
}

#[tokio::test]
async fn lowering_max_concurrent_keeps_leases_but_admits_nobody_new() {
    let api = api();
    let o = owner("lower");
    let (id, token) = api.mint(&o, json!({"maxConcurrent": 3})).await;
    let mut leases = Vec::new();
    for _ in 0..3 {
        leases.push(
            acquire(&api, &token).await["lease"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let a = api
        .send(
            api.request("PATCH", &format!("/tokens/{id}"))
                .header("x-owner", &o)
                .header("content-type", "application/json")
                .body(r#"{"maxConcurrent":1}"#),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["activeLeases"], 3, "live leases are not cancelled");
    api.send(lease_call(&api, "DELETE", &leases[0], &token))
        .await;
    assert_eq!(
        acquire(&api, &token).await["reason"],
        "CONCURRENCY_LIMIT",
        "2 live > cap 1"
    );
    api.send(lease_call(&api, "DELETE", &leases[1], &token))
        .await;
    assert_eq!(
        acquire(&api, &token).await["reason"],
        "CONCURRENCY_LIMIT",
        "1 live = cap 1"
    );
    api.send(lease_call(&api, "DELETE", &leases[2], &token))
        .await;
    assert_eq!(acquire(&api, &token).await["active"], true);
}

#[tokio::test]
async fn max_uses_and_max_concurrent_together_under_races() {
    let api = api();
    let o = owner("both");
    let (id, token) = api
        .mint(&o, json!({"maxConcurrent": 4, "maxUses": 10}))
        .await;
    let mut admitted = 0;
    for _ in 0..4 {
        let answers = join_all((0..30).map(|_| acquire(&api, &token))).await;
        let leases: Vec<String> = answers
            .iter()
            .filter(|a| a["active"] == true)
            .map(|a| a["lease"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(leases.len() <= 4);
        admitted += leases.len();
        for a in &answers {
            assert!(
                a["active"] == true
                    || a["reason"] == "CONCURRENCY_LIMIT"
                    || a["reason"] == "USAGE_EXHAUSTED",
                "{a}"
            );
        }
        for l in &leases {
            api.send(lease_call(&api, "DELETE", l, &token)).await;
        }
    }
    assert_eq!(admitted, 10, "never more than maxUses in all");
    let d = api.detail(&o, &id).await.json();
    assert_eq!(
        (d["remainingUses"].as_i64(), d["activeLeases"].as_i64()),
        (Some(0), Some(0))
    );
}
