//! The rotation runbook, end to end on the local stack (the keyring in the
//! local Secrets Manager, tokens in DynamoDB Local): add a key, make it
//! current, roll, remove the old key. A "warm" app that started before the
//! rotation learns the new key by itself; removal makes the old key's
//! tokens `MALFORMED`. Also: init reads the keyring from the secret, and a
//! malformed keyring fails with a message that names what is wrong and
//! never the key material.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tollgate::config::{Config, KeyringSource};
use tollgate::keysource::SecretsManagerKeyring;
use tollgate::store::dynamo::sdk_config;
use tollgate::{App, Function};
use tollgate_tests::{api_request, call, dynamo_store, mint_in_process, owner, record_minted};

fn b64(seed: u8) -> String {
    let mut key = tollgate::codec::random_bytes::<32>();
    key[0] = seed;
    base64::engine::general_purpose::STANDARD.encode(key)
}

fn ring(current: &str, keys: &[(&str, &str)]) -> String {
    let keys: serde_json::Map<String, Value> = keys
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"current": current, "keys": keys}).to_string()
}

async fn put_secret(name: &str, value: &str) {
    let sdk = sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let created = sm
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await;
    if created.is_err() {
        sm.put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .expect("the local Secrets Manager takes the new value");
    }
}

/// An app as a cold start builds it: the keyring read from the secret,
/// re-read when needed (every second here, not every minute).
async fn cold_start(secret: &str) -> App {
    let config = Config::from_lookup(|k| match k {
        "TOLLGATE_TABLE" => std::env::var("TOLLGATE_TABLE").ok(),
        "TOLLGATE_HASH_KEY_SECRET" => Some(secret.to_owned()),
        "TOLLGATE_KEYRING_REFRESH_SECONDS" => Some("1".into()),
        _ => None,
    })
    .expect("config");
    let sdk = sdk_config().await;
    let source = Arc::new(SecretsManagerKeyring::new(&sdk, secret));
    let keyring = source
        .load()
        .await
        .expect("the keyring loads from the secret");
    App::new(config, keyring, Arc::new(dynamo_store().await)).refreshing_from(source)
}

async fn mint(app: &App, o: &str) -> (String, String) {
    mint_in_process(app, o, json!({})).await
}

async fn validate(app: &App, token: &str) -> Value {
    call(
        app,
        Function::Validate,
        &api_request("POST", "/validate", None, json!({"token": token})),
    )
    .await
    .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotation_runbook_end_to_end() {
    let secret = format!("tollgate/runbook-{}", owner("r"));
    let (key_a, key_b) = (b64(1), b64(2));
    put_secret(&secret, &ring("a", &[("a", &key_a)])).await;
    let warm = cold_start(&secret).await;
    let o = owner("rotate");
    let (rolled_id, rolled_a) = mint(&warm, &o).await;
    let (_, left_a) = mint(&warm, &o).await;
    assert!(rolled_a.starts_with("tgl_a_"), "{rolled_a}");

    // 1. Add the new key, not yet current: nothing changes.
    put_secret(&secret, &ring("a", &[("a", &key_a), ("b", &key_b)])).await;
    // 2. Make it current: a cold start mints under it...
    put_secret(&secret, &ring("b", &[("a", &key_a), ("b", &key_b)])).await;
    let fresh = cold_start(&secret).await;
    let (_, under_b) = mint(&fresh, &o).await;
    assert!(under_b.starts_with("tgl_b_"), "{under_b}");
    // ...and tokens of both keys validate on it.
    assert_eq!(validate(&fresh, &left_a).await["active"], true);
    assert_eq!(validate(&fresh, &under_b).await["active"], true);
    // The warm app meets key `b` for the first time: it re-reads the secret
    // (once the refresh interval has passed) instead of answering MALFORMED.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        validate(&warm, &under_b).await["active"],
        true,
        "the warm function learned b"
    );
    assert_eq!(warm.keyring().current_kid(), "b");

    // 3. Roll what must keep working: re-minted under the current key.
    let (status, v) = call(
        &fresh,
        Function::Patch,
        &api_request(
            "POST",
            &format!("/tokens/{rolled_id}/roll"),
            Some(&o),
            Value::Null,
        ),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let rolled_b = v["token"].as_str().unwrap().to_owned();
    record_minted(&rolled_b);
    assert!(rolled_b.starts_with("tgl_b_"));

    // 4. Remove the old key: a cold start refuses its tokens as MALFORMED,
    // and a warm app does too once its ring is older than five intervals.
    put_secret(&secret, &ring("b", &[("b", &key_b)])).await;
    let after = cold_start(&secret).await;
    assert_eq!(validate(&after, &left_a).await["reason"], "MALFORMED");
    assert_eq!(validate(&after, &rolled_b).await["active"], true);
    assert_eq!(validate(&after, &under_b).await["active"], true);
    tokio::time::sleep(Duration::from_millis(5100)).await;
    assert_eq!(
        validate(&warm, &left_a).await["reason"],
        "MALFORMED",
        "the warm app dropped a"
    );
    assert_eq!(validate(&warm, &rolled_b).await["active"], true);
}

#[tokio::test]
async fn a_malformed_keyring_fails_init_naming_the_problem_not_the_key() {
    let sdk = sdk_config().await;
    let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
    let good = b64(3);
    for (value, says) in [
        (ring("x", &[("a", &good)]), "not among the keys"),
        (ring("a", &[("a", &short)]), "at least 32 bytes"),
        ("{\"current\": ".to_owned(), "not JSON"),
    ] {
        let secret = format!("tollgate/bad-{}", owner("k"));
        put_secret(&secret, &value).await;
        let e = SecretsManagerKeyring::new(&sdk, &secret)
            .load()
            .await
            .unwrap_err();
        assert!(e.0.contains(says) && e.0.contains(&secret), "{e}");
        assert!(!e.0.contains(&short) && !e.0.contains(&good), "{e}");
    }
    let e = SecretsManagerKeyring::new(&sdk, "tollgate/no-such-secret")
        .load()
        .await
        .unwrap_err();
    assert!(e.0.contains("could not be read"), "{e}");
}
