//! Every event in `events/` through `cargo lambda invoke` against the
//! running functions: the API Gateway payload 2.0 path, with the owner
//! taken from the JWT authorizer's claims (never from a header), and the
//! authorize function's HTTP and REST authorizer events. With
//! `TOLLGATE_SAM_LAMBDA_URL` set (scripts/sam_local.sh), the same flow goes
//! through `sam local start-lambda`: the arm64 bootstraps a deploy ships,
//! in SAM's containers.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

const OWNER: &str = "events-user-7f3a";
const PLACEHOLDER_ID: &str = "0000000000000000000000000a";
const PLACEHOLDER_TOKEN: &str = "tgl_replace_with_a_token_from_create";
const PLACEHOLDER_LEASE: &str = "00000000000000000000000000";
const PLACEHOLDER_IDENTITY: &str = "id_00000000000000000000000000";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Loads an event and replaces the placeholders.
fn event(name: &str, id: &str, token: &str, lease: &str) -> String {
    let text = std::fs::read_to_string(root().join("events").join(format!("{name}.json")))
        .expect("event file");
    text.replace(PLACEHOLDER_ID, id)
        .replace(PLACEHOLDER_TOKEN, token)
        .replace(PLACEHOLDER_LEASE, lease)
}

/// Invokes `function` with the event through `cargo lambda invoke`, or
/// SAM's Lambda API when `TOLLGATE_SAM_LAMBDA_URL` names one; returns what
/// it answered.
fn invoke_raw(function: &str, event: &str) -> Value {
    if let Ok(url) = std::env::var("TOLLGATE_SAM_LAMBDA_URL") {
        return invoke_sam(&url, function, event);
    }
    let port =
        std::env::var("TOLLGATE_INVOKE_PORT").expect("TOLLGATE_INVOKE_PORT set by make test");
    let dir = std::env::temp_dir().join(format!("tollgate-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{function}-{}.json", event.len()));
    std::fs::write(&file, event).unwrap();
    let out = Command::new("cargo")
        .args([
            "lambda",
            "invoke",
            function,
            "-A",
            "127.0.0.1",
            "-P",
            &port,
            "--data-file",
        ])
        .arg(&file)
        .current_dir(root())
        .output()
        .expect("cargo lambda invoke runs");
    assert!(
        out.status.success(),
        "invoke {function} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("invoke prints the response")
}

/// The Lambda Invoke API of `sam local start-lambda`; `validate` is the
/// template's `ValidateFunction`.
fn invoke_sam(url: &str, function: &str, event: &str) -> Value {
    let mut logical = function.to_owned();
    logical[..1].make_ascii_uppercase();
    let url = format!("{url}/2015-03-31/functions/{logical}Function/invocations");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let resp = reqwest::Client::new()
            .post(&url)
            .body(event.to_owned())
            .timeout(std::time::Duration::from_secs(120))
            .send()
            .await
            .expect("sam local start-lambda answers");
        let status = resp.status();
        // A function's error is a 200 too, marked by this header.
        let error = resp.headers().get("x-amz-function-error").cloned();
        let body = resp.text().await.expect("an answer");
        assert!(
            status.is_success() && error.is_none(),
            "invoke {logical} failed: {status} {error:?} {body}"
        );
        serde_json::from_str(&body).expect("the function's answer is JSON")
    })
}

/// Invokes an HTTP API function; returns (statusCode, parsed body or Null).
fn invoke(function: &str, event: &str) -> (u16, Value) {
    let resp = invoke_raw(function, event);
    let status = resp["statusCode"].as_u64().expect("statusCode") as u16;
    let body = resp["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

#[test]
fn every_event_through_lambda_invoke() {
    // As shipped, the placeholders answer sensibly.
    let (s, _) = invoke(
        "detail",
        &event(
            "detail",
            PLACEHOLDER_ID,
            PLACEHOLDER_TOKEN,
            PLACEHOLDER_LEASE,
        ),
    );
    assert_eq!(s, 404);
    let (s, b) = invoke(
        "validate",
        &event(
            "validate",
            PLACEHOLDER_ID,
            PLACEHOLDER_TOKEN,
            PLACEHOLDER_LEASE,
        ),
    );
    assert_eq!(
        (s, b),
        (200, json!({"active": false, "reason": "MALFORMED"}))
    );

    let placeholder = event(
        "mint-capability",
        PLACEHOLDER_ID,
        PLACEHOLDER_TOKEN,
        PLACEHOLDER_LEASE,
    );
    assert_eq!(invoke("validate", &placeholder).1["reason"], "MALFORMED");
    let placeholder = event(
        "revoke",
        PLACEHOLDER_ID,
        PLACEHOLDER_TOKEN,
        PLACEHOLDER_LEASE,
    );
    assert_eq!(invoke("validate", &placeholder), (200, json!({})));
    // A leak report whose signature is a placeholder changes nothing.
    let unsigned = event(
        "leaks-github",
        PLACEHOLDER_ID,
        PLACEHOLDER_TOKEN,
        PLACEHOLDER_LEASE,
    );
    let (s, problem) = invoke("validate", &unsigned);
    assert_eq!(
        (s, &problem["type"]),
        (401, &json!("/problems/bad-signature"))
    );

    let (s, created) = invoke("create", &event("create", "", "", ""));
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let token = created["token"].as_str().unwrap().to_owned();
    tollgate_tests::record_minted(&token);
    let ev = |name: &str, lease: &str| event(name, &id, &token, lease);

    let (s, list) = invoke("list", &ev("list", ""));
    assert_eq!(s, 200);
    assert!(list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == id.as_str()));
    let (s, detail) = invoke("detail", &ev("detail", ""));
    assert_eq!((s, detail["id"].as_str()), (200, Some(id.as_str())));
    let (s, history) = invoke("list", &ev("audit", ""));
    assert_eq!(s, 200, "{history}");
    assert_eq!(
        history["records"][0]["action"], "token.created",
        "{history}"
    );
    assert_eq!(history["records"][0]["actor"]["sub"], OWNER, "{history}");
    let (s, patched) = invoke("patch", &ev("patch", ""));
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["description"], "patched");
    assert_eq!(patched["tags"], json!({"team": "blue"}));

    let (s, valid) = invoke("validate", &ev("validate", ""));
    assert_eq!(s, 200);
    assert_eq!(valid["active"], true, "{valid}");
    assert_eq!(valid["owner"], OWNER, "the owner came from the JWT claims");
    let lease = valid["lease"]["id"].as_str().unwrap().to_owned();
    let (s, form) = invoke("validate", &ev("validate-form", ""));
    assert_eq!((s, &form["active"]), (200, &json!(true)), "{form}");
    let (s, minted) = invoke("validate", &ev("mint-capability", ""));
    assert_eq!(s, 201, "{minted}");
    assert!(minted["capability"].is_string());
    let (s, jwks) = invoke("validate", &ev("jwks", ""));
    assert_eq!((s, jwks["keys"][0]["crv"].as_str()), (200, Some("Ed25519")));
    let (s, renewed) = invoke("validate", &ev("renew-lease", &lease));
    assert_eq!(s, 200, "{renewed}");
    assert_eq!(renewed["lease"]["id"], lease.as_str());
    let (s, _) = invoke("validate", &ev("release-lease", &lease));
    assert_eq!(s, 204);
    // A reserving acquire, settled: 5 held, 2 used, 3 given back.
    let (s, reserving) = invoke("validate", &ev("validate-reserve", ""));
    assert_eq!(
        (s, &reserving["active"]),
        (200, &json!(true)),
        "{reserving}"
    );
    let held = reserving["remainingUses"].as_i64().unwrap();
    let lease = reserving["lease"]["id"].as_str().unwrap().to_owned();
    assert_eq!(lease.len(), 32, "a lease holding a reserve");
    let (s, _) = invoke("validate", &ev("release-settle", &lease));
    assert_eq!(s, 204);
    let (_, detail) = invoke("detail", &ev("detail", ""));
    assert_eq!(detail["remainingUses"], held + 3, "{detail}");
    authorizer_events(&ev);
    owners_only_from_the_gateway(&ev("list", ""), &id);

    let (s, _) = invoke("delete", &ev("delete", ""));
    assert_eq!(s, 204);
    let (s, _) = invoke("detail", &ev("detail", ""));
    assert_eq!(s, 404);
    // A deleted token is denied by the authorizer on the very next call.
    let denied = invoke_raw("authorize", &ev("authorize-rest-request", ""));
    assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny");
    assert_eq!(denied["context"], json!({"reason": "NOT_FOUND"}));

    // A stream batch (stream.json): both records delivered.
    let batch = invoke_raw("events", &event("stream", PLACEHOLDER_ID, "", ""));
    assert_eq!(batch, json!({"batchItemFailures": []}));

    // An identity, created and deleted through its own events.
    let (s, identity) = invoke("create", &event("identity-create", "", "", ""));
    assert_eq!(s, 201, "{identity}");
    assert_eq!(identity["remainingUses"], 1000, "{identity}");
    // Read as shipped: its placeholder is the identity's own.
    let delete =
        std::fs::read_to_string(root().join("events/identity-delete.json")).expect("event file");
    let (s, _) = invoke("delete", &delete);
    assert_eq!(s, 404, "the placeholder names no identity");
    let identity_id = identity["id"].as_str().unwrap();
    let (s, _) = invoke("delete", &delete.replace(PLACEHOLDER_IDENTITY, identity_id));
    assert_eq!(s, 204);

    // Its holder revokes a second token (revoke.json): the next validate
    // does not find it.
    let (s, second) = invoke("create", &event("create", "", "", ""));
    assert_eq!(s, 201, "{second}");
    let second = second["token"].as_str().unwrap().to_owned();
    tollgate_tests::record_minted(&second);
    let (s, revoked) = invoke("validate", &event("revoke", "", &second, ""));
    assert_eq!((s, revoked), (200, json!({})));
    let (_, gone) = invoke("validate", &event("validate", "", &second, ""));
    assert_eq!(gone["reason"], "NOT_FOUND", "{gone}");
}

/// The authorizer events, shipped placeholders and with a real token (its
/// resource is `/teams`, writes allowed).
fn authorizer_events(ev: &dyn Fn(&str, &str) -> String) {
    for name in [
        "authorize-http",
        "authorize-rest-token",
        "authorize-rest-request",
    ] {
        let shipped = event(name, PLACEHOLDER_ID, PLACEHOLDER_TOKEN, PLACEHOLDER_LEASE);
        let answer = invoke_raw("authorize", &shipped);
        // A TOKEN authorizer states no owners: nothing is let in.
        let reason = match name {
            "authorize-rest-token" => "API_NOT_BOUND",
            _ => "MALFORMED",
        };
        assert_eq!(answer["context"], json!({"reason": reason}), "{name}");
    }
    let http = invoke_raw("authorize", &ev("authorize-http", ""));
    assert_eq!(http["isAuthorized"], true, "{http}");
    let ctx = &http["context"];
    assert_eq!(ctx["owner"], OWNER);
    assert_eq!(ctx["type"], "api");
    // The tags as patch.json left them, as a JSON string.
    assert_eq!(ctx["tags"], json!({"team": "blue"}).to_string());
    assert!(ctx
        .as_object()
        .unwrap()
        .values()
        .all(|v| !v.is_object() && !v.is_array()));

    // The same API bound to other owners, or to other owners' audience.
    let mut foreign: Value = serde_json::from_str(&ev("authorize-http", "")).unwrap();
    foreign["stageVariables"]["tollgateOwners"] = json!("someone-else,another");
    let refused = invoke_raw("authorize", &foreign.to_string());
    assert_eq!(refused["isAuthorized"], false);
    assert_eq!(refused["context"], json!({"reason": "OWNER_NOT_ALLOWED"}));
    foreign["stageVariables"] = json!({});
    let refused = invoke_raw("authorize", &foreign.to_string());
    assert_eq!(refused["context"], json!({"reason": "API_NOT_BOUND"}));

    // A valid token on a REST TOKEN authorizer: never bound, denied.
    let token = invoke_raw("authorize", &ev("authorize-rest-token", ""));
    let arn = "arn:aws:execute-api:us-east-1:123456789012:ghi789/prod/GET/teams/17";
    assert_eq!(
        token["policyDocument"],
        json!({"Version": "2012-10-17", "Statement": [
            {"Action": ["execute-api:Invoke"], "Effect": "Deny", "Resource": [arn]}
        ]}),
        "{token}"
    );
    assert_eq!(token["context"], json!({"reason": "API_NOT_BOUND"}));

    let request = invoke_raw("authorize", &ev("authorize-rest-request", ""));
    let arn = "arn:aws:execute-api:us-east-1:123456789012:ghi789/prod/DELETE/admin/users/3";
    assert_eq!(
        request["policyDocument"]["Statement"][0]["Effect"], "Deny",
        "{request}"
    );
    assert_eq!(
        request["policyDocument"]["Statement"][0]["Resource"],
        json!([arn])
    );
    assert_eq!(
        request["context"],
        json!({"reason": "RESOURCE_NOT_ALLOWED"})
    );

    // Not an authorizer event at all: denied, whichever API asked.
    let junk = invoke_raw("authorize", r#"{"hello": "world"}"#);
    assert_eq!(junk["isAuthorized"], false);
    assert_eq!(junk["policyDocument"]["Statement"][0]["Effect"], "Deny");
}

/// A deployed-shape management event names its owner only through the
/// authorizer: `X-Owner` with no authorizer is 401; a Lambda authorizer
/// context from Tollgate's own `authorize` (it carries `tokenId`) is 403.
fn owners_only_from_the_gateway(list_event: &str, token_id: &str) {
    let mut named: Value = serde_json::from_str(list_event).unwrap();
    named["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    named["headers"]["x-owner"] = json!(OWNER);
    named["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    assert_eq!(invoke("list", &named.to_string()).0, 401);

    let mut by_token: Value = serde_json::from_str(list_event).unwrap();
    by_token["requestContext"]["authorizer"] =
        json!({"lambda": {"owner": OWNER, "tokenId": token_id, "type": "api", "tags": "{}"}});
    by_token["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    assert_eq!(invoke("list", &by_token.to_string()).0, 403);
}
