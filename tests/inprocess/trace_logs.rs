//! A run at TRACE, the most a deployment can set (`LogLevel=TRACE`), with
//! the functions' own log subscriber: the SDK, HTTP and runtime crates stay
//! at `info` whatever the level, so no signed request, request body or
//! answer reaches the log, and with them no token, secret hash or key.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tollgate::Function;
use tollgate_tests::{api_request, dynamo_app, dynamo_store, owner, record_minted};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn call(app: &tollgate::App, f: Function, r: tollgate::http::ApiRequest) -> Value {
    let (_, resp) = app.handle(f, &r).await;
    serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
}

// One thread: the subscriber set for this test's thread sees every task
// of it, the SDK's connections included.
#[tokio::test(flavor = "current_thread")]
async fn a_trace_level_run_logs_no_token_hash_or_key() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tollgate::lambda::log_subscriber("trace", move || sink.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::trace!("our own trace lines are kept");
    tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "an SDK trace line");
    tracing::debug!(target: "aws_sigv4::http_request::sign", "an SDK debug line");

    let app = dynamo_app(300).await;
    let o = owner("trace");
    let v = call(
        &app,
        Function::Create,
        api_request("POST", "/tokens", Some(&o), json!({"maxUses": 10})),
    )
    .await;
    let (id, first) = (
        v["id"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    );
    record_minted(&first);
    let validate = |t: &str| api_request("POST", "/validate", None, json!({"token": t}));
    assert_eq!(
        call(&app, Function::Validate, validate(&first)).await["active"],
        true
    );
    let first_hash = dynamo_store().await;
    let first_hash = tollgate::store::Store::get(&first_hash, &id)
        .await
        .unwrap()
        .unwrap()
        .secret_hash;
    let v = call(
        &app,
        Function::Patch,
        api_request(
            "POST",
            &format!("/tokens/{id}/roll"),
            Some(&o),
            json!({"graceSeconds": 60}),
        ),
    )
    .await;
    let second = v["token"].as_str().unwrap().to_owned();
    record_minted(&second);
    let cap = call(
        &app,
        Function::Validate,
        api_request(
            "POST",
            "/validate/capabilities",
            None,
            json!({"token": second, "ttlSeconds": 60}),
        ),
    )
    .await;
    let cap = cap["capability"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&app, Function::Validate, validate(&cap)).await["active"],
        true
    );
    let second_hash = tollgate::store::Store::get(&dynamo_store().await, &id)
        .await
        .unwrap()
        .unwrap()
        .secret_hash;
    call(
        &app,
        Function::Delete,
        api_request("DELETE", &format!("/tokens/{id}"), Some(&o), Value::Null),
    )
    .await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("our own trace lines are kept"), "{log}");
    assert!(!log.contains("an SDK trace line") && !log.contains("an SDK debug line"));
    let key = std::env::var("TOLLGATE_HASH_KEY").unwrap();
    for (what, secret) in [
        ("token", first.as_str()),
        ("rolled token", second.as_str()),
        ("capability", cap.as_str()),
        ("secret hash", first_hash.as_str()),
        ("rolled secret hash", second_hash.as_str()),
        ("server key", key.as_str()),
    ] {
        assert!(!log.contains(secret), "a {what} reached a TRACE log");
    }
}
