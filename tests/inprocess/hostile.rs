//! Hostile input on every route, in-process over DynamoDB Local: malformed
//! JSON, wrong types, huge numbers, invalid UTF-8, NUL bytes, 70 KB bodies,
//! deep nesting, odd content types, path tricks, oversized headers, bogus
//! If-Match and Idempotency-Key. Never a 5xx, never an internal detail in a
//! body, and nothing written by a refused request.

use http::HeaderValue;
use serde_json::Value;
use tollgate::http::ApiRequest;
use tollgate::{App, Function};
use tollgate_tests::{dynamo_app, hostile_bodies, owner, record_minted, HOSTILE_CONTENT_TYPES};

/// (function, method, path, header, value, expected status)
type HeaderCase<'a> = (
    Function,
    &'a str,
    &'a str,
    &'static str,
    Vec<u8>,
    Option<u16>,
);

fn request(method: &str, path: &str, owner: &str, body: &[u8], ctype: &str) -> ApiRequest {
    let mut r = ApiRequest {
        method: method.parse().unwrap(),
        path: path.into(),
        body: body.to_vec(),
        source_ip: Some("127.0.0.1".parse().unwrap()),
        ..Default::default()
    };
    r.identity.jwt_sub = Some(owner.into());
    if !ctype.is_empty() {
        r.headers
            .insert("content-type", HeaderValue::from_str(ctype).unwrap());
    }
    r
}

fn check_safe(what: &str, status: u16, body: &[u8], secret: &str) {
    assert!(
        status < 500,
        "{what}: {status} {}",
        String::from_utf8_lossy(body)
    );
    assert!(
        !String::from_utf8_lossy(body).contains(secret),
        "{what}: the token secret leaked"
    );
    let text = String::from_utf8_lossy(body).to_lowercase();
    for leak in [
        "panicked",
        "backtrace",
        "sdkerror",
        "dynamodb",
        "dispatch",
        "src/",
        "stack",
    ] {
        assert!(!text.contains(leak), "{what}: {leak:?} in {text}");
    }
}

async fn snapshot(app: &App, owner: &str, id: &str) -> (usize, Value) {
    let (_, l) = app
        .handle(Function::List, &request("GET", "/tokens", owner, b"", ""))
        .await;
    let list: Value = serde_json::from_slice(&l.body).unwrap();
    let (_, d) = app
        .handle(
            Function::Detail,
            &request("GET", &format!("/tokens/{id}"), owner, b"", ""),
        )
        .await;
    (
        list["tokens"].as_array().unwrap().len(),
        serde_json::from_slice(&d.body).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_on_every_route() {
    let app = dynamo_app(300).await;
    let o = owner("hostile");
    let (_, created) = app
        .handle(
            Function::Create,
            &request(
                "POST",
                "/tokens",
                &o,
                br#"{"maxUses":3,"maxConcurrent":2}"#,
                "application/json",
            ),
        )
        .await;
    assert_eq!(created.status, 201);
    let v: Value = serde_json::from_slice(&created.body).unwrap();
    let (id, token) = (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    );
    record_minted(&token);
    let before = snapshot(&app, &o, &id).await;

    let long_id = "a".repeat(10_000);
    let routes: Vec<(Function, &str, String)> = vec![
        (Function::List, "GET", "/tokens".into()),
        (Function::Create, "POST", "/tokens".into()),
        (Function::Detail, "GET", format!("/tokens/{id}")),
        (Function::Patch, "PATCH", format!("/tokens/{id}")),
        (Function::Delete, "DELETE", "/tokens/..".into()),
        (Function::Validate, "POST", "/validate".into()),
        (
            Function::Validate,
            "PUT",
            "/validate/leases/00000000000000000000000000".into(),
        ),
        (
            Function::Validate,
            "DELETE",
            "/validate/leases/%2F..%2F".into(),
        ),
    ];
    let mut count = 0;
    for (f, method, path) in &routes {
        for (name, body) in hostile_bodies() {
            for ctype in HOSTILE_CONTENT_TYPES {
                let (_, resp) = app
                    .handle(*f, &request(method, path, &o, &body, ctype))
                    .await;
                check_safe(
                    &format!("{f:?} {method} {path} {name} [{ctype}]"),
                    resp.status,
                    &resp.body,
                    &token[12..],
                );
                count += 1;
            }
        }
    }
    // Path tricks and long ids.
    for path in [
        "/tokens/../../etc/passwd".to_owned(),
        "/tokens/%2e%2e%2f".into(),
        format!("/tokens/{long_id}"),
        "/tokens/a/b/c".into(),
        "//tokens".into(),
        "/tokens/\u{0}".into(),
        format!("/tokens/{id}%00"),
    ] {
        for (f, m) in [
            (Function::Detail, "GET"),
            (Function::Patch, "PATCH"),
            (Function::Delete, "DELETE"),
        ] {
            let (_, resp) = app
                .handle(
                    f,
                    &request(m, &path, &o, br#"{"description":"x"}"#, "application/json"),
                )
                .await;
            check_safe(
                &format!("{f:?} {path}"),
                resp.status,
                &resp.body,
                &token[12..],
            );
            count += 1;
        }
    }
    // Oversized and bogus headers, each on the routes that read it.
    let big = "x".repeat(64 * 1024);
    let patch_path = format!("/tokens/{id}");
    let cases: Vec<HeaderCase> = vec![
        (
            Function::Patch,
            "PATCH",
            &patch_path,
            "if-match",
            big.as_bytes().to_vec(),
            Some(412),
        ),
        (
            Function::Patch,
            "PATCH",
            &patch_path,
            "if-match",
            b"W/\"9\", \"\"".to_vec(),
            Some(412),
        ),
        (
            Function::Patch,
            "PATCH",
            &patch_path,
            "if-match",
            vec![0xff, 0xfe],
            Some(412),
        ),
        (
            Function::Create,
            "POST",
            "/tokens",
            "idempotency-key",
            big.as_bytes().to_vec(),
            Some(400),
        ),
        (
            Function::Create,
            "POST",
            "/tokens",
            "idempotency-key",
            vec![0x80, 0x81],
            Some(400),
        ),
        (
            Function::Create,
            "POST",
            "/tokens",
            "idempotency-key",
            b"a b".to_vec(),
            Some(400),
        ),
        (
            Function::Validate,
            "POST",
            "/validate",
            "authorization",
            big.as_bytes().to_vec(),
            None,
        ),
        (
            Function::Validate,
            "POST",
            "/validate",
            "authorization",
            b"Bearer".to_vec(),
            None,
        ),
        (
            Function::List,
            "GET",
            "/tokens",
            "accept",
            big.as_bytes().to_vec(),
            Some(200),
        ),
        (
            Function::List,
            "GET",
            "/tokens",
            "authorization",
            format!("Bearer {token}").into_bytes(),
            Some(403),
        ),
    ];
    for (f, m, p, name, value, expect) in cases {
        let body: &[u8] = if f == Function::Validate {
            b"{}"
        } else {
            br#"{"description":"via header"}"#
        };
        let mut r = request(m, p, &o, body, "application/json");
        r.headers
            .insert(name, HeaderValue::from_bytes(&value).unwrap());
        let (_, resp) = app.handle(f, &r).await;
        check_safe(
            &format!("{f:?} header {name}"),
            resp.status,
            &resp.body,
            &token[12..],
        );
        if let Some(e) = expect {
            assert_eq!(resp.status, e, "{f:?} header {name}");
        }
        count += 1;
    }
    // The two crashes of the security review and their neighbours: a
    // multi-byte character straddling every byte of a 98-byte token string
    // (validate by body and Bearer, renew, release), and dates at both ends
    // of the calendar on create and patch.
    let len = tollgate::credentials::TOKEN_LEN;
    for ch in ['é', '€', '𝄞'] {
        for at in 4..=len - ch.len_utf8() {
            let s = format!(
                "tgl_{}{ch}{}",
                "a".repeat(at - 4),
                "a".repeat(len - at - ch.len_utf8())
            );
            let body = serde_json::to_vec(&serde_json::json!({ "token": s })).unwrap();
            let lease = "/validate/leases/00000000000000000000000000";
            for (m, p) in [("POST", "/validate"), ("PUT", lease), ("DELETE", lease)] {
                let (_, resp) = app
                    .handle(
                        Function::Validate,
                        &request(m, p, &o, &body, "application/json"),
                    )
                    .await;
                check_safe(
                    &format!("{m} {p} {ch}@{at}"),
                    resp.status,
                    &resp.body,
                    &token[12..],
                );
                count += 1;
            }
            let mut r = request("POST", "/validate", &o, b"", "");
            r.headers.insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {s}")).unwrap(),
            );
            let (_, resp) = app.handle(Function::Validate, &r).await;
            check_safe(
                &format!("Bearer {ch}@{at}"),
                resp.status,
                &resp.body,
                &token[12..],
            );
            count += 1;
        }
    }
    for date in [
        "9999-12-30T00:00:00Z",
        "9999-12-31T23:59:59.999Z",
        "9999-12-31T23:59:59-0359",
        "0000-01-01T00:00:00Z",
        "0000-01-01T00:00:00+23:59",
    ] {
        for field in ["startDate", "endDate"] {
            if field == "startDate" && date.starts_with("0000") {
                continue; // a start in the past is a valid token, not hostile
            }
            let body = serde_json::to_vec(&serde_json::json!({ field: date })).unwrap();
            for (f, m, p) in [
                (Function::Create, "POST", "/tokens".to_owned()),
                (Function::Patch, "PATCH", format!("/tokens/{id}")),
            ] {
                let (_, resp) = app
                    .handle(f, &request(m, &p, &o, &body, "application/json"))
                    .await;
                check_safe(
                    &format!("{m} {field}={date}"),
                    resp.status,
                    &resp.body,
                    &token[12..],
                );
                assert_eq!(resp.status, 400, "{m} {field}={date}");
                count += 1;
            }
        }
    }
    assert!(count > 900, "{count} hostile requests");
    // Nothing written: the same tokens, the base token unchanged.
    let after = snapshot(&app, &o, &id).await;
    assert_eq!(after.0, before.0, "no hostile request created a token");
    assert_eq!(after.1, before.1, "the base token is unchanged");
}
