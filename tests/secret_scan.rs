//! Runs last in `make test`: no token secret and no hash key anywhere in
//! the table or in the functions' logs after the whole suite ran.

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
/// whole string and its secret (everything after the id).
fn secrets(token: &str) -> Vec<String> {
    vec![token.to_owned(), token[30..82].to_owned()]
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
    let hash_key = std::env::var("TOLLGATE_HASH_KEY").unwrap();
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
    assert!(!dump.contains(&hash_key));
    for t in &tokens {
        for s in secrets(t) {
            assert!(!dump.contains(&s), "a token secret is stored in clear");
        }
    }
}

#[test]
fn no_secret_or_hash_key_in_the_logs() {
    let path =
        std::env::var("TOLLGATE_FUNCTION_LOG").expect("TOLLGATE_FUNCTION_LOG set by make test");
    let logs = std::fs::read_to_string(path).expect("function log readable");
    assert!(
        logs.contains("\"function\":\"validate\""),
        "the request log lines are there"
    );
    assert!(!logs.contains(&std::env::var("TOLLGATE_HASH_KEY").unwrap()));
    for t in minted() {
        for s in secrets(&t) {
            assert!(!logs.contains(&s), "a token secret reached a log");
        }
    }
}
