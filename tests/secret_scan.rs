//! Runs last in `make test`: no token secret and no hash key anywhere in
//! the table or in the functions' logs after the whole suite ran, and every
//! metrics line the functions wrote is CloudWatch EMF.

// Test code slices strings it built itself.
#![allow(clippy::string_slice)]

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

fn flatten(v: &AttributeValue, out: &mut String) {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => out.push_str(s),
        AttributeValue::M(m) => m.iter().for_each(|(k, v)| {
            out.push_str(k);
            flatten(v, out)
        }),
        AttributeValue::L(l) => l.iter().for_each(|v| flatten(v, out)),
        AttributeValue::Ss(l) => l.iter().for_each(|s| out.push_str(s)),
        _ => {}
    }
    out.push('\n');
}

fn minted() -> Vec<String> {
    let path =
        std::env::var("TOLLGATE_MINTED_FILE").expect("TOLLGATE_MINTED_FILE set by make test");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The parts of a token string that must never be stored or logged: the
/// whole string and its secret (the 52 characters before the 16 of the
/// check, whether or not the string names a key id).
fn secrets(token: &str) -> Vec<String> {
    let end = token.len() - 16;
    vec![token.to_owned(), token[end - 52..end].to_owned()]
}

/// Every key of the run: the in-process key and each key of the keyring
/// the functions read from the local Secrets Manager.
fn server_keys() -> Vec<String> {
    let mut keys = vec![std::env::var("TOLLGATE_HASH_KEY").unwrap()];
    let ring: serde_json::Value = serde_json::from_str(
        &std::env::var("TOLLGATE_KEYRING").expect("TOLLGATE_KEYRING set by make test"),
    )
    .expect("the keyring is JSON");
    for key in ring["keys"].as_object().expect("keys").values() {
        keys.push(key.as_str().unwrap().to_owned());
    }
    keys
}

#[tokio::test]
async fn no_secret_or_hash_key_in_the_table() {
    let tokens = minted();
    assert!(
        tokens.len() > 20,
        "the suite minted tokens before this scan ({})",
        tokens.len()
    );
    let store = tollgate_tests::dynamo_store().await;
    let table = std::env::var("TOLLGATE_TABLE").unwrap();
    let mut dump = String::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    let mut items = 0;
    loop {
        let out = store
            .client()
            .scan()
            .table_name(&table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        for item in out.items() {
            items += 1;
            for (k, v) in item {
                dump.push_str(k);
                flatten(v, &mut dump);
            }
        }
        match out.last_evaluated_key {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    assert!(items >= tokens.len() / 2, "scanned {items} items");
    for key in server_keys() {
        assert!(!dump.contains(&key), "a server key is in the table");
    }
    for t in &tokens {
        for s in secrets(t) {
            assert!(!dump.contains(&s), "a token secret is stored in clear");
        }
    }
}

/// The functions' logs of the whole run: the stack's, and, when it ran,
/// those of the release bootstraps under `sam local` (a file per SAM
/// command in `TOLLGATE_SAM_LOGS`).
fn function_logs() -> String {
    let path =
        std::env::var("TOLLGATE_FUNCTION_LOG").expect("TOLLGATE_FUNCTION_LOG set by make test");
    let mut logs = std::fs::read_to_string(path).expect("function log readable");
    if let Ok(dir) = std::env::var("TOLLGATE_SAM_LOGS") {
        for entry in std::fs::read_dir(dir).expect("sam local's logs") {
            let path = entry.expect("a log").path();
            logs.push('\n');
            logs.push_str(&std::fs::read_to_string(path).expect("sam local's log readable"));
        }
    }
    logs
}

#[test]
fn no_secret_or_hash_key_in_the_logs() {
    let logs = function_logs();
    assert!(
        logs.contains("\"function\":\"validate\""),
        "the request log lines are there"
    );
    for key in server_keys() {
        assert!(!logs.contains(&key), "a server key reached a log");
    }
    for t in minted() {
        for s in secrets(&t) {
            assert!(!logs.contains(&s), "a token secret reached a log");
        }
    }
}

#[test]
fn metrics_lines_in_the_logs_are_emf() {
    let logs = function_logs();
    let mut seen = std::collections::BTreeSet::new();
    for line in logs.lines().filter(|l| l.contains("\"_aws\"")) {
        // The local log gathers every process's output in one file, so the
        // tail of another's unfinished line can sit before a metrics line.
        let from = line.find("{\"_aws\"").unwrap_or(0);
        let doc = tollgate::metrics::check_emf(line[from..].trim())
            .unwrap_or_else(|e| panic!("not EMF ({e}): {line}"));
        let outcome = doc["Outcome"].as_str().unwrap_or("-");
        seen.insert(format!(
            "{} {outcome}",
            doc["Function"].as_str().unwrap_or("?")
        ));
    }
    // The suite validated, was refused and authorized: their outcomes are
    // metrics, by function.
    for expected in [
        "validate ACTIVE",
        "validate NOT_FOUND",
        "authorize ACTIVE",
        "list -",
    ] {
        assert!(
            seen.contains(expected),
            "no {expected} metric line: {seen:?}"
        );
    }
}

/// Every lifecycle event of the run (a rule sends them all to one queue):
/// no token secret, server key or stored secret hash in any.
#[tokio::test]
async fn no_secret_hash_or_key_in_the_events() {
    let queue = std::env::var("EVENTS_QUEUE_URL").expect("EVENTS_QUEUE_URL set by make test");
    let events =
        tollgate_tests::receive(&queue, usize::MAX, std::time::Duration::from_secs(5)).await;
    assert!(
        events.len() > 20,
        "the suite's changes made events ({})",
        events.len()
    );
    let text = serde_json::to_string(&events).unwrap();
    // The hashes the table holds.
    let store = tollgate_tests::dynamo_store().await;
    let mut hashes = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let out = store
            .client()
            .scan()
            .table_name(std::env::var("TOLLGATE_TABLE").unwrap())
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        for item in out.items() {
            for (k, v) in item {
                if k.to_ascii_lowercase().contains("hash") {
                    if let Ok(h) = v.as_s() {
                        hashes.push(h.clone());
                    }
                }
            }
        }
        match out.last_evaluated_key {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    assert!(!hashes.is_empty());
    for h in &hashes {
        assert!(!text.contains(h.as_str()), "a stored hash is in an event");
    }
    for key in server_keys() {
        assert!(!text.contains(&key), "a server key is in an event");
    }
    for t in minted() {
        for s in secrets(&t) {
            assert!(!text.contains(&s), "a token secret is in an event");
        }
    }
}
