//! `POST /leaks/github` over HTTP through the local gateway: reports signed
//! as GitHub signs them, with a stand-in key pair whose public document
//! the validate function reads from a local URL (`make test` serves it).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use serde_json::{json, Value};
use tollgate_tests::{owner, Answer, Api};

/// The stand-in for GitHub's signing key, and its key identifier.
fn scanner() -> (SigningKey, String) {
    let dir = std::env::var("TOLLGATE_SCANNER_KEYS").expect("set by make test");
    let pem = std::fs::read_to_string(format!("{dir}/scanner-key.pem")).expect("the key");
    let key = SigningKey::from_pkcs8_pem(&pem).expect("a P-256 key");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/public/public_keys.json")).expect("the document"),
    )
    .expect("JSON");
    let id = doc["public_keys"][0]["key_identifier"]
        .as_str()
        .unwrap()
        .to_owned();
    (key, id)
}

fn sign(key: &SigningKey, body: &[u8]) -> String {
    let sig: Signature = key.sign(body);
    STANDARD.encode(sig.to_der().as_bytes())
}

async fn report(api: &Api, body: &str, key_id: Option<&str>, signature: Option<&str>) -> Answer {
    let mut rb = api
        .request("POST", "/leaks/github")
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(id) = key_id {
        rb = rb.header("Github-Public-Key-Identifier", id);
    }
    if let Some(sig) = signature {
        rb = rb.header("Github-Public-Key-Signature", sig);
    }
    api.send(rb).await
}

/// A report body as GitHub sends it, one entry per string.
fn body_of(strings: &[&str], marker: &str) -> String {
    let entries: Vec<Value> = strings
        .iter()
        .map(|s| {
            json!({"token": s, "type": "tollgate_token",
                   "url": format!("https://github.com/octo/app/blob/main/{marker}.env"),
                   "source": "content"})
        })
        .collect();
    Value::Array(entries).to_string()
}

async fn signed_report(api: &Api, body: &str) -> Answer {
    let (key, id) = scanner();
    report(api, body, Some(&id), Some(&sign(&key, body.as_bytes()))).await
}

fn labels(a: &Answer) -> Vec<String> {
    a.json()
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| e["label"].as_str().unwrap().to_owned())
        .collect()
}

async fn reason(api: &Api, token: &str) -> Value {
    let v = api.validate(json!({"token": token})).await;
    if v["active"] == true {
        json!("ACTIVE")
    } else {
        v["reason"].clone()
    }
}

/// A string that checks under the stack's keyring but names no token.
fn unknown_token() -> String {
    tollgate_tests::keyring().mint().token
}

fn forged(token: &str) -> String {
    let mut s = token.to_owned();
    let i = s.len() - 20;
    let c = if s.as_bytes()[i] == b'a' { "b" } else { "a" };
    s.replace_range(i..i + 1, c);
    s
}

#[tokio::test]
async fn a_signed_report_applies_each_tokens_on_leak() {
    let api = Api::new();
    let o = owner("leaks");
    let (revoke_id, revoke) = api.mint(&o, json!({"maxUses": 10})).await;
    let (disable_id, disable) = api.mint(&o, json!({"onLeak": "disable"})).await;
    let (notify_id, notify) = api.mint(&o, json!({"onLeak": "notify"})).await;
    assert_eq!(api.detail(&o, &revoke_id).await.json()["onLeak"], "revoke");
    let marker = format!("leak-marker-{}", o);
    let strings = [
        revoke.as_str(),
        disable.as_str(),
        notify.as_str(),
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        &forged(&notify),
        &unknown_token(),
    ];
    let answer = signed_report(&api, &body_of(&strings, &marker)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        labels(&answer),
        [
            "true_positive",
            "true_positive",
            "true_positive",
            "false_positive",
            "false_positive",
            "false_positive"
        ]
    );
    assert_eq!(answer.json()[3]["token_raw"], strings[3]);
    assert_eq!(answer.json()[3]["token_type"], "tollgate_token");
    assert_eq!(reason(&api, &revoke).await, "NOT_FOUND");
    assert_eq!(api.detail(&o, &revoke_id).await.status, 404);
    assert_eq!(reason(&api, &disable).await, "DISABLED");
    assert_eq!(api.detail(&o, &disable_id).await.json()["enabled"], false);
    assert_eq!(reason(&api, &notify).await, "ACTIVE");
    // Each recorded as token.leaked by the scanner, with what was done and
    // where the report says the string was found.
    let url = format!("https://github.com/octo/app/blob/main/{marker}.env");
    for (id, done) in [
        (&revoke_id, "enabled"),
        (&disable_id, "enabled"),
        (&notify_id, "report"),
    ] {
        let trail = api
            .send(
                api.request("GET", &format!("/audit?tokenId={id}&action=token.leaked"))
                    .header("x-owner", &o),
            )
            .await;
        let records = trail.json()["records"].as_array().unwrap().clone();
        assert_eq!(records.len(), 1, "{}", trail.text);
        assert_eq!(records[0]["actor"]["type"], "github");
        assert_eq!(
            records[0]["changes"]["report"]["to"],
            json!({"url": url, "source": "content"})
        );
        assert!(records[0]["changes"].get(done).is_some(), "{}", trail.text);
    }
    // Reported again: the revoked one is no longer ours to answer for.
    let again = signed_report(&api, &body_of(&strings[..3], &marker)).await;
    assert_eq!(
        labels(&again),
        ["false_positive", "true_positive", "true_positive"]
    );
    // The logs hold the token ids of what was handled, never the report.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let log = std::env::var("TOLLGATE_FUNCTION_LOG").expect("set by make test");
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        log.contains(&format!("\"token_id\":\"{disable_id}\"")),
        "the handling is logged"
    );
    assert!(!log.contains(&marker), "a report's url reached the logs");
}

/// An identity's `onLeak`, when set, is its tokens' policy: its disabled
/// token is recorded in the audit trail as leaked, the scanner its actor.
#[tokio::test]
async fn an_identitys_on_leak_applies_to_its_tokens() {
    let api = Api::new();
    let o = owner("leaks-identity");
    let created = api
        .send(
            api.request("POST", "/identities")
                .header("x-owner", &o)
                .header("content-type", "application/json")
                .body(json!({"externalId": "careful", "onLeak": "disable"}).to_string()),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let identity = created.json()["id"].as_str().unwrap().to_owned();
    // The token's own policy is the default, revoke: the identity's wins.
    let (id, token) = api.mint(&o, json!({"identityId": identity})).await;
    let answer = signed_report(&api, &body_of(&[token.as_str()], "identity-leak")).await;
    assert_eq!(labels(&answer), ["true_positive"], "{}", answer.text);
    assert_eq!(reason(&api, &token).await, "DISABLED");
    let trail = api
        .send(
            api.request("GET", &format!("/audit?tokenId={id}&action=token.leaked"))
                .header("x-owner", &o),
        )
        .await;
    let record = &trail.json()["records"][0];
    assert_eq!(record["actor"]["type"], "github", "{}", trail.text);
    assert_eq!(
        record["changes"]["enabled"],
        json!({"from": true, "to": false})
    );
}

#[tokio::test]
async fn unsigned_or_badly_signed_reports_are_401_and_change_nothing() {
    let api = Api::new();
    let (key, id) = scanner();
    let (_, token) = api.mint(&owner("leaks-401"), json!({})).await;
    let body = body_of(&[&token], "unsigned");
    let good = sign(&key, body.as_bytes());
    let other = SigningKey::from_slice(&[7u8; 32]).expect("a scalar");
    let tampered = body_of(&[&token], "tampered");
    for (what, body, key_id, sig) in [
        ("no headers", body.as_str(), None, None),
        ("no signature", &body, Some(id.as_str()), None),
        ("no key id", &body, None, Some(good.clone())),
        (
            "another key",
            &body,
            Some(&id),
            Some(sign(&other, body.as_bytes())),
        ),
        ("an altered body", &tampered, Some(&id), Some(good.clone())),
        ("an unknown key id", &body, Some("0000"), Some(good.clone())),
        (
            "a signature of junk",
            &body,
            Some(&id),
            Some(STANDARD.encode([0u8; 70])),
        ),
        ("not base64", &body, Some(&id), Some("%%%".to_owned())),
    ] {
        let a = report(&api, body, key_id, sig.as_deref()).await;
        assert_eq!(a.status, 401, "{what}: {}", a.text);
        assert!(!a.text.contains(&token), "{what}: the body was echoed");
    }
    assert_eq!(reason(&api, &token).await, "ACTIVE");
    // Signed, a report that is not an array is 400 naming the body.
    let not_array = r#"{"token": "x"}"#;
    let a = report(
        &api,
        not_array,
        Some(&id),
        Some(&sign(&key, not_array.as_bytes())),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json()["errors"][0]["field"], "body");
}

#[tokio::test]
async fn a_report_of_a_hundred_strings_labels_each_one() {
    let api = Api::new();
    let o = owner("leaks-100");
    let mut strings = Vec::new();
    let mut expected = Vec::new();
    let mut real = Vec::new();
    for i in 0..100 {
        let (s, label) = match i % 10 {
            0 => {
                let (_, t) = api.mint(&o, json!({})).await;
                real.push(t.clone());
                (t, "true_positive")
            }
            1..=3 => (format!("ghp_{i:036}"), "false_positive"),
            4..=6 => (forged(&unknown_token()), "false_positive"),
            _ => (unknown_token(), "false_positive"),
        };
        strings.push(s);
        expected.push(label);
    }
    let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
    let answer = signed_report(&api, &body_of(&refs, "hundred")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(labels(&answer), expected);
    for (entry, s) in answer.json().as_array().unwrap().iter().zip(&strings) {
        assert_eq!(entry["token_raw"], s.as_str());
    }
    for t in &real {
        assert_eq!(reason(&api, t).await, "NOT_FOUND");
    }
}
