//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay
//! in `make test`: each takes arbitrary bytes, must never panic, and checks
//! the properties that must hold for whatever it accepts.

use std::net::IpAddr;

use serde_json::Value;

use crate::credentials::{Keyring, TOKEN_LEN, TOKEN_PREFIX};
use crate::http::ApiRequest;
use crate::token::rules::{self, Lifetimes, NewToken};
use crate::token::{address, resource, FieldErrors, LeaseId, TokenRecord};
use crate::{dates, validate};

fn keys() -> Keyring {
    Keyring::single(&[0x5a; 32])
}

const LIFETIMES: Lifetimes = Lifetimes {
    default_ttl_seconds: 43_200,
    max_ttl_seconds: 31_536_000,
};

/// The token string decoder: never panics; what it accepts re-parses the same.
pub fn token_string(data: &[u8]) {
    let k = keys();
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(t) = k.parse_token(text) {
            assert_eq!(t.id.as_str().len(), 26);
            assert_eq!(k.parse_token(text), Some(t));
        }
        let owner = crate::token::Owner::parse("owner").expect("a valid owner");
        let _ = k.open_cursor(&owner, text);
        if let Some(lease) = LeaseId::parse(text) {
            let _ = k.lease_belongs_to(&k.mint().id, &lease);
        }
    }
    // The same bytes as a string of exactly the token length behind the
    // prefix, so multi-byte characters land on every offset of the format.
    let exact = exact_token_length(data);
    assert_eq!(exact.len(), TOKEN_LEN);
    if let Some(t) = k.parse_token(&exact) {
        assert_eq!(k.parse_token(&exact), Some(t));
    }
    assert_eq!(LeaseId::parse(&exact), None);
    // A real token with these bytes spliced in must still be refused or be
    // exactly the original.
    let m = k.mint();
    let mut spliced = m.token.clone().into_bytes();
    let len = spliced.len();
    for (i, b) in data.iter().enumerate().take(len) {
        spliced[(i * 7) % len] ^= b;
    }
    if let Ok(s) = String::from_utf8(spliced) {
        if let Some(t) = k.parse_token(&s) {
            assert_eq!(s, m.token, "only the original string may pass");
            assert_eq!(t.id, m.id);
        }
    }
}

/// `tgl_` + the bytes as (lossy) UTF-8, cut at a character boundary or
/// padded with `a` to exactly the token string's byte length.
fn exact_token_length(data: &[u8]) -> String {
    let len = TOKEN_LEN;
    let mut s = String::from(TOKEN_PREFIX);
    for c in String::from_utf8_lossy(data).chars() {
        if s.len() + c.len_utf8() > len {
            break;
        }
        s.push(c);
    }
    while s.len() < len {
        s.push('a');
    }
    s
}

fn new_token(body: &serde_json::Map<String, Value>) -> Result<TokenRecord, FieldErrors> {
    rules::create(NewToken {
        id: "0000000000000000000000000a".into(),
        owner: "owner".into(),
        start: "tgl_00000000".into(),
        secret_hash: "h".into(),
        requester: Some(IpAddr::from([127, 0, 0, 1])),
        now: dates::now(),
        lifetimes: LIFETIMES,
        body,
    })
}

/// Create and patch bodies (JSON, merge patch): never panic; accepted
/// records obey the field rules; refusals name at least one field.
pub fn token_bodies(data: &[u8]) {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match new_token(&body) {
        Ok(rec) => {
            assert!(rec.description.chars().count() <= crate::token::fields::MAX_DESCRIPTION);
            assert!(rec.tags.len() <= crate::token::fields::MAX_TAGS);
            assert!(rec.end_date > rec.created_at);
            assert_eq!(
                resource::normalise(&rec.resource).as_deref(),
                Some(rec.resource.as_str())
            );
            let again = rules::patch(&rec, &body, rec.created_at, LIFETIMES);
            if let Ok(p) = again {
                assert!(p.tags.len() <= crate::token::fields::MAX_TAGS);
            }
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
    if let Ok(base) = new_token(&serde_json::Map::new()) {
        if let Ok(p) = rules::patch(&base, &body, dates::now(), LIFETIMES) {
            assert!(p.version >= base.version);
            assert_eq!(p.id, base.id);
            assert_eq!(p.owner, base.owner);
            assert_eq!(p.secret_hash, base.secret_hash);
        }
    }
}

/// Validate bodies, JSON and form-encoded: never panic, never accept a
/// request without a token.
pub fn validate_bodies(data: &[u8]) {
    for ctype in ["application/json", "application/x-www-form-urlencoded"] {
        let mut req = ApiRequest {
            body: data.to_vec(),
            ..Default::default()
        };
        req.headers
            .insert("content-type", http::HeaderValue::from_static(ctype));
        if let Ok(input) = validate::input::decode_input(&req) {
            assert!(input.token.as_deref().is_some_and(|t| !t.is_empty()));
        }
    }
}

/// Dates: never panic; accepted dates format and re-parse to themselves.
pub fn dates(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(t) = dates::parse(text) {
            let formatted = dates::format(t);
            assert!(formatted.ends_with('Z'));
            assert_eq!(dates::parse(&formatted), Some(t));
        }
    }
}

/// Resource normalisation and scope matching: normalising is idempotent,
/// `/` covers every normalised path, a path covers itself, and no accepted
/// path holds a dot segment or a double slash.
pub fn scopes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, "/"));
    if let Some(n) = resource::normalise(a) {
        assert_eq!(resource::normalise(&n).as_deref(), Some(n.as_str()));
        assert!(resource::covers("/", &n));
        assert!(resource::covers(&n, &n));
        assert!(!n.contains("//") && !n.split('/').any(|s| s == ".." || s == "."));
        if let Some(m) = resource::normalise(b) {
            if resource::covers(&n, &m) && n != "/" {
                assert!(m == n || m.starts_with(&format!("{n}/")));
            }
        }
    }
}

/// Addresses and CIDRs: never panic; a parsed address is allowed by its
/// own host network and by `0.0.0.0/0` or `::/0` of its family.
pub fn addresses(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('\n').unwrap_or((text, ""));
    if let Some(ip) = address::parse_ip(a) {
        let host = address::parse_net(&ip.to_string()).expect("an address is a network");
        assert!(address::allowed(&[host], ip));
        let any = address::parse_net(if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" }).unwrap();
        assert!(address::allowed(&[any], ip));
        if let Some(net) = address::parse_net(b) {
            assert_eq!(address::allowed(&[net], ip), net.contains(&ip));
        }
    }
    let _ = address::parse_net(text);
}

/// A fuzz target: arbitrary bytes in, a panic on a broken property.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay.
/// The capability decoder and the mint request: never panic; nothing but
/// the exact string signed verifies, whatever bytes are spliced into it.
pub fn capability(data: &[u8]) {
    use crate::credentials::capability::{self, MintRequest};
    let k = keys();
    let now = dates::now();
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = capability::verify(&k, "tollgate", text, now) {
            assert_eq!(capability::verify(&k, "tollgate", text, now), Ok(c));
        }
        let _ = capability::is_ours(text, "tollgate");
        if let Ok(Value::Object(body)) = serde_json::from_str::<Value>(text) {
            if let Ok(req) = MintRequest::parse(&body) {
                let parent = parent_token();
                if let Ok(claims) = req.narrow(&parent, None, now) {
                    assert!(claims.expires <= parent.end_date.unix_timestamp());
                    assert!(resource::covers(&parent.resource, &claims.resource));
                }
            }
        }
    }
    let parent = parent_token();
    let claims = MintRequest::default()
        .narrow(&parent, None, now)
        .expect("a plain capability");
    let real = capability::sign(&k, "tollgate", &claims);
    let mut spliced = real.clone().into_bytes();
    let len = spliced.len();
    for (i, b) in data.iter().enumerate().take(len) {
        spliced[(i * 13) % len] ^= b;
    }
    if let Ok(s) = String::from_utf8(spliced) {
        if capability::verify(&k, "tollgate", &s, now).is_ok() {
            assert_eq!(s, real, "only the string signed may verify");
        }
    }
}

fn parent_token() -> TokenRecord {
    let body = serde_json::json!({"resource": "/teams", "write": true,
        "scopes": ["scope:client:incoming?clientName=alice"],
        "allowedAddresses": ["10.0.0.0/8"]});
    let m = keys().mint();
    rules::create(NewToken {
        id: m.id.to_string(),
        owner: "owner".into(),
        start: m.start(),
        secret_hash: m.secret_hash,
        requester: None,
        now: dates::now(),
        lifetimes: LIFETIMES,
        body: body.as_object().expect("an object"),
    })
    .expect("a valid token")
}

/// GitHub's leak reports and public-keys documents: parsing never panics,
/// an accepted report keeps its order and size in the answer, and no
/// signature made of the input holds for a fixed key.
pub fn leak_report(data: &[u8]) {
    use crate::leaks::github;
    let _ = github::parse_keys(data);
    if let Ok(found) = github::parse_report(data) {
        assert!(found.len() <= github::MAX_REPORTED);
        let labels = vec![false; found.len()];
        let answer = github::answer(&found, &labels);
        assert_eq!(answer.as_array().map(Vec::len), Some(found.len()));
    }
    let key = p256::ecdsa::SigningKey::from_slice(&[0x5a; 32]).expect("a valid scalar");
    let signature = String::from_utf8_lossy(data);
    assert!(!github::signed_by(key.verifying_key(), &signature, data));
    assert!(!github::signed_by(key.verifying_key(), &signature, b"[]"));
}

pub const TARGETS: &[(&str, Target)] = &[
    ("token_string", token_string),
    ("token_bodies", token_bodies),
    ("validate_bodies", validate_bodies),
    ("dates", dates),
    ("scopes", scopes),
    ("addresses", addresses),
    ("capability", capability),
    ("leak_report", leak_report),
];
