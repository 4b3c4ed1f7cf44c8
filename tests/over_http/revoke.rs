//! `POST /validate/revoke` over HTTP through the local gateway: the holder
//! of a token or a capability revokes it, with no owner; the answer is
//! always 200 `{}` for a well-formed request.

use std::time::Instant;

use serde_json::{json, Value};
use tollgate_tests::{owner, Answer, Api};

async fn revoke_json(api: &Api, credential: &str) -> Answer {
    api.send(
        api.request("POST", "/validate/revoke")
            .header("content-type", "application/json")
            .body(json!({"token": credential}).to_string()),
    )
    .await
}

fn assert_empty_200(a: &Answer) {
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json(), json!({}), "a revocation tells nothing");
}

async fn reason(api: &Api, credential: &str) -> Value {
    let v = api.validate(json!({"token": credential})).await;
    if v["active"] == true {
        Value::String("ACTIVE".into())
    } else {
        v["reason"].clone()
    }
}

/// The owner's audit records of `action` on the token `id`.
async fn records(api: &Api, owner: &str, id: &str, action: &str) -> Vec<Value> {
    let a = api
        .send(
            api.request("GET", &format!("/audit?tokenId={id}&action={action}"))
                .header("x-owner", owner),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json()["records"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_holder_revokes_a_token_by_json_form_or_bearer() {
    let api = Api::new();
    let o = owner("revoke-forms");
    for how in ["json", "form", "bearer"] {
        // A token that spends, validated first: the function knows it.
        let (id, token) = api.mint(&o, json!({"maxUses": 50})).await;
        assert_eq!(reason(&api, &token).await, "ACTIVE");
        let rb = api.request("POST", "/validate/revoke");
        let rb = match how {
            "json" => rb
                .header("content-type", "application/json")
                .body(json!({"token": token, "token_type_hint": "access_token"}).to_string()),
            "form" => rb
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}&token_type_hint=access_token")),
            _ => rb.bearer_auth(&token),
        };
        assert_empty_200(&api.send(rb).await);
        assert_eq!(reason(&api, &token).await, "NOT_FOUND", "{how}");
        assert_eq!(api.detail(&o, &id).await.status, 404, "{how}: deleted");
        // Revoked again: nothing left, the same answer.
        assert_empty_200(&revoke_json(&api, &token).await);
        // Recorded once, the holder the actor, with where it came from.
        let revoked = records(&api, &o, &id, "token.revoked").await;
        assert_eq!(revoked.len(), 1, "{how}: {revoked:?}");
        assert_eq!(revoked[0]["actor"]["type"], "holder");
        assert_eq!(revoked[0]["actor"]["owner"], o.as_str());
        assert!(revoked[0]["actor"]["sourceIp"].is_string(), "{revoked:?}");
        assert!(revoked[0]["actor"]["sub"].is_null());
        assert_eq!(
            revoked[0]["changes"]["maxUses"],
            json!({"from": 50, "to": null})
        );
    }
}

#[tokio::test]
async fn revoking_a_previous_secret_ends_only_its_grace() {
    let api = Api::new();
    let o = owner("revoke-grace");
    let (id, old) = api.mint(&o, json!({"maxUses": 50})).await;
    let rolled = api
        .send(
            api.request("POST", &format!("/tokens/{id}/roll"))
                .header("x-owner", &o)
                .header("content-type", "application/json")
                .body(json!({"graceSeconds": 600}).to_string()),
        )
        .await;
    assert_eq!(rolled.status, 200, "{}", rolled.text);
    let new = rolled.json()["token"].as_str().unwrap().to_owned();
    tollgate_tests::record_minted(&new);
    let old_cap = api.mint_capability(&old, json!({})).await;
    let old_cap = old_cap.json()["capability"].as_str().unwrap().to_owned();
    assert_eq!(reason(&api, &old).await, "ACTIVE");
    assert_eq!(reason(&api, &old_cap).await, "ACTIVE");

    let before = api.detail(&o, &id).await.json();
    assert!(before["previousSecretExpiresAt"].is_string(), "{before}");

    assert_empty_200(&revoke_json(&api, &old).await);
    assert_eq!(reason(&api, &old).await, "NOT_FOUND");
    // The grace ended, and with it the capabilities of the old secret.
    assert_eq!(reason(&api, &old_cap).await, "NOT_FOUND");
    assert_eq!(reason(&api, &new).await, "ACTIVE");
    let detail = api.detail(&o, &id).await;
    assert_eq!(detail.status, 200);
    assert!(
        detail.json()["previousSecretExpiresAt"].is_null(),
        "{}",
        detail.text
    );
    let revoked = records(&api, &o, &id, "token.revoked").await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(
        revoked[0]["changes"],
        json!({"previousSecret": {"from": "in grace", "to": "revoked"}})
    );
}

#[tokio::test]
async fn revoking_a_capability_ends_it_alone_until_its_end() {
    let api = Api::new();
    let o = owner("revoke-capability");
    let (parent_id, parent) = api.mint(&o, json!({"maxUses": 100})).await;
    let cap = |ttl: u64| {
        let (api, parent) = (api.clone(), parent.clone());
        async move {
            let a = api
                .mint_capability(&parent, json!({"ttlSeconds": ttl}))
                .await;
            assert_eq!(a.status, 201, "{}", a.text);
            a.json()["capability"].as_str().unwrap().to_owned()
        }
    };
    let (doomed, sibling) = (cap(600).await, cap(600).await);
    assert_eq!(reason(&api, &doomed).await, "ACTIVE");
    assert_empty_200(&revoke_json(&api, &doomed).await);
    assert_eq!(reason(&api, &doomed).await, "NOT_FOUND");
    assert_eq!(reason(&api, &sibling).await, "ACTIVE");
    assert_eq!(reason(&api, &parent).await, "ACTIVE");
    // Refused on the lease routes too, and a second revoke changes nothing.
    let acquire = api
        .validate(json!({"token": doomed, "acquire": true}))
        .await;
    assert_eq!(acquire["reason"], "NOT_FOUND", "{acquire}");
    assert_empty_200(&revoke_json(&api, &doomed).await);
    // By Bearer, in XML.
    let xml = api
        .send(
            api.request("POST", "/validate/revoke")
                .bearer_auth(&sibling)
                .header("accept", "application/xml"),
        )
        .await;
    assert_eq!(xml.status, 200, "{}", xml.text);
    assert!(xml.text.contains("<revocation"), "{}", xml.text);
    assert_eq!(reason(&api, &sibling).await, "NOT_FOUND");
    assert_eq!(reason(&api, &parent).await, "ACTIVE");
    // Two capabilities revoked, two records on the parent; the repeat none.
    let revoked = records(&api, &o, &parent_id, "capability.revoked").await;
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    for r in &revoked {
        assert_eq!(r["actor"]["type"], "holder");
        assert_eq!(r["changes"]["capability"]["to"]["state"], "revoked");
        assert!(r["changes"]["capability"]["to"]["jti"].is_string());
    }
}

#[tokio::test]
async fn anything_well_formed_is_200_empty_and_bad_requests_name_the_field() {
    let api = Api::new();
    let o = owner("revoke-garbage");
    let (id, token) = api.mint(&o, json!({})).await;
    let cap = api.mint_capability(&token, json!({})).await;
    let cap = cap.json()["capability"].as_str().unwrap().to_owned();
    let mut forged_cap = cap.clone();
    forged_cap.pop();
    forged_cap.push(if cap.ends_with('A') { 'B' } else { 'A' });
    // A token string of this owner with another secret: integrity fails.
    let mut forged = token.clone();
    let mid = forged.len() / 2;
    forged.replace_range(
        mid..mid + 1,
        if &token[mid..mid + 1] == "a" {
            "b"
        } else {
            "a"
        },
    );
    for credential in [
        "garbage",
        "tgl_",
        forged.as_str(),
        forged_cap.as_str(),
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ] {
        assert_empty_200(&revoke_json(&api, credential).await);
    }
    assert_eq!(reason(&api, &token).await, "ACTIVE");
    assert_eq!(reason(&api, &cap).await, "ACTIVE");
    assert_eq!(api.detail(&o, &id).await.status, 200);
    for (body, field) in [
        (json!({}), "token"),
        (json!({"token": 7}), "token"),
        (json!({"token": token, "owner": "x"}), "owner"),
    ] {
        let a = api
            .send(
                api.request("POST", "/validate/revoke")
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await;
        assert_eq!(a.status, 400, "{}", a.text);
        assert_eq!(a.json()["errors"][0]["field"], field, "{}", a.text);
    }
    assert_eq!(reason(&api, &token).await, "ACTIVE");
}

#[tokio::test]
async fn after_the_first_revoke_is_answered_no_validate_admits() {
    let api = Api::new();
    let o = owner("revoke-race");
    let (_, token) = api.mint(&o, json!({"maxUses": 1000})).await;
    assert_eq!(reason(&api, &token).await, "ACTIVE");
    let started = Instant::now();
    // 25 revokes and 25 validates at once: each validate notes when it was
    // sent and what it got; each revoke when its answer came.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (api, token) = (api.clone(), token.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    assert_empty_200(&revoke_json(&api, &token).await);
                    (true, started.elapsed(), Value::Null)
                } else {
                    let sent = started.elapsed();
                    (false, sent, reason(&api, &token).await)
                }
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    let first_answer = results
        .iter()
        .filter(|(revoke, _, _)| *revoke)
        .map(|(_, at, _)| *at)
        .min()
        .expect("revokes answered");
    for (revoke, sent, got) in &results {
        if !revoke && *sent > first_answer {
            assert_eq!(got, "NOT_FOUND", "a validate sent after a revoke's answer");
        }
    }
    // And every validate from now on.
    let after: Vec<_> = (0..20)
        .map(|_| {
            let (api, token) = (api.clone(), token.clone());
            tokio::spawn(async move { reason(&api, &token).await })
        })
        .collect();
    for t in after {
        assert_eq!(t.await.expect("task"), "NOT_FOUND");
    }
}

#[tokio::test]
async fn the_pattern_for_secret_scanners_finds_every_token_string() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
        .expect("docs/security.md");
    let after = doc
        .split_once("Secret scanners find")
        .expect("the scanner section")
        .1;
    let pattern = after
        .split("```")
        .nth(1)
        .expect("the pattern's code block")
        .trim();
    let re = regex::Regex::new(pattern).expect("a valid regex");
    let api = Api::new();
    // A string under a named key (what the stack mints) and a v1 string.
    let (_, named) = api.mint(&owner("scanner-pattern"), json!({})).await;
    let v1 = tollgate::credentials::Keyring::single(b"0123456789abcdef0123456789abcdef")
        .mint()
        .token;
    assert!(named.split('_').count() == 3 && v1.split('_').count() == 2);
    for token in [&named, &v1] {
        let text = format!("config: API_KEY=\"{token}\"\n");
        let found: Vec<&str> = re.find_iter(&text).map(|m| m.as_str()).collect();
        assert_eq!(found, [token.as_str()], "{pattern}");
        // Longer runs of the alphabet are not a token.
        assert!(!re.is_match(&format!("{token}x")), "{token}x");
    }
    assert!(!re.is_match("tgl_short"));
}
