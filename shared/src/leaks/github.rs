//! GitHub's secret-scanning partner protocol. GitHub POSTs a JSON array of
//! found strings (`token`, `type`, `url`, `source`) and signs the raw body
//! with ECDSA P-256 over SHA-256: the DER signature, base64, in
//! `Github-Public-Key-Signature`, the key named by
//! `Github-Public-Key-Identifier` among those GitHub publishes. The answer
//! labels each string `true_positive` or `false_positive`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::KeySource;
use crate::http::ApiError;

pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// GitHub's public keys for secret scanning.
pub const DEFAULT_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";

/// An unknown key id reads the keys again, at most this often.
const REFRESH_MS: i64 = 60_000;

/// At most this many strings in one report (GitHub sends far fewer).
pub const MAX_REPORTED: usize = 1000;

/// GitHub's keys by identifier, read from `source` when first needed and
/// again, at most once a minute, when a report names a key not held.
pub struct Keys {
    source: Arc<dyn KeySource>,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    keys: HashMap<String, VerifyingKey>,
    /// When the document was last read, unix ms (`None`: never).
    read_at: Option<i64>,
}

impl Keys {
    pub fn new(source: Arc<dyn KeySource>) -> Keys {
        Keys {
            source,
            held: Mutex::new(Held::default()),
        }
    }

    /// The key named `id`, reading the document again first if it is not
    /// held and was last read over a minute ago (or never).
    pub async fn get(&self, id: &str) -> Option<VerifyingKey> {
        let mut held = self.held.lock().await;
        if held.keys.contains_key(id) {
            return held.keys.get(id).cloned();
        }
        let now = crate::dates::millis(crate::dates::now());
        if held.read_at.is_some_and(|at| now - at < REFRESH_MS) {
            return None;
        }
        held.read_at = Some(now);
        match self.source.fetch().await.and_then(|body| parse_keys(&body)) {
            Ok(keys) => held.keys = keys,
            Err(e) => tracing::error!(error = %e, "the scanner's public keys could not be read"),
        }
        held.keys.get(id).cloned()
    }
}

/// GitHub's keys document: `{"public_keys": [{"key_identifier", "key" (PEM)}]}`.
pub fn parse_keys(body: &[u8]) -> Result<HashMap<String, VerifyingKey>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let list = doc["public_keys"]
        .as_array()
        .ok_or("no public_keys array")?;
    let mut keys = HashMap::new();
    for entry in list {
        let (Some(id), Some(pem)) = (entry["key_identifier"].as_str(), entry["key"].as_str())
        else {
            return Err("a key without key_identifier or key".into());
        };
        let key = VerifyingKey::from_public_key_pem(pem)
            .map_err(|_| format!("key {id} is not a P-256 public key in PEM"))?;
        keys.insert(id.to_owned(), key);
    }
    Ok(keys)
}

/// Whether `signature` (base64 DER) is `key`'s over `body`.
pub fn signed_by(key: &VerifyingKey, signature: &str, body: &[u8]) -> bool {
    let Ok(der) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(sig) = Signature::from_der(&der) else {
        return false;
    };
    key.verify(body, &sig).is_ok()
}

/// One string GitHub found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub token: String,
    pub token_type: String,
    pub url: String,
    pub source: String,
}

/// The report's entries; 400 naming what is wrong.
pub fn parse_report(body: &[u8]) -> Result<Vec<Found>, ApiError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::field("body", "must be a JSON array"))?;
    let list = doc
        .as_array()
        .ok_or_else(|| ApiError::field("body", "must be a JSON array"))?;
    if list.len() > MAX_REPORTED {
        return Err(ApiError::field(
            "body",
            &format!("at most {MAX_REPORTED} strings in one report"),
        ));
    }
    let text = |v: &Value, i: usize, field: &str| -> Result<String, ApiError> {
        match &v[field] {
            Value::String(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            _ => Err(ApiError::field(
                &format!("[{i}].{field}"),
                "must be a string",
            )),
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            if !v.is_object() {
                return Err(ApiError::field(&format!("[{i}]"), "must be an object"));
            }
            Ok(Found {
                token: text(v, i, "token")?,
                token_type: text(v, i, "type")?,
                url: text(v, i, "url")?,
                source: text(v, i, "source")?,
            })
        })
        .collect()
}

/// The answer for each string, in the report's order.
pub fn answer(found: &[Found], true_positive: &[bool]) -> Value {
    Value::Array(
        found
            .iter()
            .zip(true_positive)
            .map(|(f, yes)| {
                json!({
                    "token_raw": f.token,
                    "token_type": f.token_type,
                    "label": if *yes { "true_positive" } else { "false_positive" },
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).expect("a scalar")
    }

    fn document(id: &str, k: &SigningKey) -> Vec<u8> {
        let pem = k
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM");
        json!({"public_keys": [{"key_identifier": id, "key": pem, "is_current": true}]})
            .to_string()
            .into_bytes()
    }

    fn sign(k: &SigningKey, body: &[u8]) -> String {
        let sig: Signature = k.sign(body);
        STANDARD.encode(sig.to_der().as_bytes())
    }

    struct Counted(Vec<u8>, std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl KeySource for Counted {
        async fn fetch(&self) -> Result<Vec<u8>, String> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.0.clone())
        }
    }

    #[test]
    fn a_signature_holds_only_for_its_key_and_its_body() {
        let (k, other) = (key(7), key(9));
        let keys = parse_keys(&document("abc", &k)).unwrap();
        let body = br#"[{"token":"x","type":"t","url":"u","source":"content"}]"#;
        let good = sign(&k, body);
        assert!(signed_by(&keys["abc"], &good, body));
        assert!(!signed_by(&keys["abc"], &good, b"[]"));
        assert!(!signed_by(&keys["abc"], &sign(&other, body), body));
        for junk in ["", "not base64!", "AAAA", &STANDARD.encode([0u8; 72])] {
            assert!(!signed_by(&keys["abc"], junk, body), "{junk}");
        }
    }

    #[tokio::test]
    async fn an_unknown_key_id_reads_the_keys_again_at_most_once_a_minute() {
        let source = Arc::new(Counted(document("abc", &key(7)), Default::default()));
        let keys = Keys::new(source.clone());
        assert!(keys.get("abc").await.is_some());
        assert!(keys.get("abc").await.is_some());
        assert!(keys.get("nope").await.is_none());
        assert!(keys.get("nope").await.is_none());
        assert_eq!(source.1.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn reports_parse_or_name_what_is_wrong() {
        let found = parse_report(br#"[{"token":"a","type":"t","url":"u","source":"s"}]"#).unwrap();
        assert_eq!(found[0].token, "a");
        for (body, field) in [
            (&b"{}"[..], "body"),
            (b"[1]", "[0]"),
            (br#"[{"token": 5}]"#, "[0].token"),
            (b"\xff", "body"),
        ] {
            match parse_report(body) {
                Err(ApiError::BadRequest(e)) => assert_eq!(e[0].field, field),
                other => panic!("{other:?}"),
            }
        }
        let a = answer(&found, &[true]);
        assert_eq!(a[0]["label"], "true_positive");
        assert_eq!(a[0]["token_raw"], "a");
    }
}
