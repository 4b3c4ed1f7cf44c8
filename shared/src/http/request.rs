//! The request as the core sees it, without any AWS type: who is calling,
//! the body, the query, and the answer format the client asked for.

use std::net::IpAddr;

use http::HeaderMap;
use serde_json::Value;

use super::ApiError;

pub const MAX_BODY: usize = 64 * 1024;

/// Who the gateway says is calling.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// `requestContext.authorizer.jwt.claims.sub`.
    pub jwt_sub: Option<String>,
    /// `requestContext.authorizer.lambda.owner`.
    pub authorizer_owner: Option<String>,
    /// `requestContext.authorizer.lambda.tokenId`: set by Tollgate's own
    /// `authorize`, so the caller holds a Tollgate token.
    pub authorizer_token_id: Option<String>,
    /// The IAM caller (`userArn`, else `callerId`).
    pub iam_caller: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: http::Method,
    pub path: String,
    /// `{id}` / `{leaseId}` from the route's path parameters, when given.
    pub path_id: Option<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub source_ip: Option<IpAddr>,
    pub identity: Identity,
    pub request_id: String,
}

impl ApiRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_one<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.query_all(name).next()
    }

    /// The answer format the client asked for.
    pub fn format(&self) -> Format {
        match self.query_one("format") {
            Some(f) if f.eq_ignore_ascii_case("xml") => return Format::Xml,
            Some(f) if f.eq_ignore_ascii_case("json") => return Format::Json,
            _ => {}
        }
        let accept = self.header("accept").unwrap_or("");
        let wants_xml = accept.split(',').any(|a| {
            let mt = a
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mt == "application/xml" || mt == "text/xml"
        });
        let wants_json = accept.to_ascii_lowercase().contains("json");
        if wants_xml && !wants_json {
            Format::Xml
        } else {
            Format::Json
        }
    }

    /// The media type of the body, lower-cased, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type")
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|c| !c.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

/// Parses a JSON object body; the error names `body`.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::field("body", "a JSON object is required"));
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::field("body", "must be UTF-8"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::field("body", "must be a JSON object")),
        Err(e) => Err(ApiError::field(
            "body",
            &format!("malformed JSON at line {} column {}", e.line(), e.column()),
        )),
    }
}

/// The canonical text of a JSON document: keys sorted at every level, no
/// insignificant whitespace. Two bodies that mean the same have the same
/// canonical text (idempotency compares it, as Stripe compares parameters).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(val) = map.get(k) {
                    write_canonical(val, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn format_negotiation() {
        let mut r = ApiRequest::default();
        assert_eq!(r.format(), Format::Json);
        r.headers
            .insert("accept", "application/xml".parse().unwrap());
        assert_eq!(r.format(), Format::Xml);
        r.headers.insert(
            "accept",
            "application/json, application/xml".parse().unwrap(),
        );
        assert_eq!(r.format(), Format::Json);
        r.query.push(("format".into(), "xml".into()));
        assert_eq!(r.format(), Format::Xml);
    }

    #[test]
    fn canonical_json_ignores_formatting_and_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, {"y": 2, "x": "é"}], "a": null}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":null,"b":[1,{"x":"\u00e9","y":2}]}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":null,"b":[1,{"x":"é","y":2}]}"#);
        assert_ne!(
            canonical_json(&json!({"a": 1})),
            canonical_json(&json!({"a": 2}))
        );
    }
}
