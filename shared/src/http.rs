//! The HTTP face of Tollgate without any AWS types: the request as the core
//! sees it, responses, problem documents, content negotiation and XML.

use std::net::IpAddr;

use http::HeaderMap;
use serde_json::{json, Value};

use crate::rules::{FieldError, FieldErrors};

pub const MAX_BODY: usize = 64 * 1024;

/// Who the gateway says is calling.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// `requestContext.authorizer.jwt.claims.sub`.
    pub jwt_sub: Option<String>,
    /// `requestContext.authorizer.lambda.owner`.
    pub authorizer_owner: Option<String>,
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

#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// The refusal reason of a validate, for the request log.
    pub reason: Option<&'static str>,
}

impl ApiResponse {
    pub fn empty(status: u16) -> Self {
        ApiResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            reason: None,
        }
    }

    /// A document in the client's format; `root` names the XML root element.
    pub fn document(status: u16, format: Format, root: &str, doc: &Value) -> Self {
        let (ctype, body) = match format {
            Format::Json => (
                "application/json",
                serde_json::to_vec(doc).unwrap_or_default(),
            ),
            Format::Xml => ("application/xml", to_xml(root, doc).into_bytes()),
        };
        ApiResponse {
            status,
            headers: vec![("content-type", ctype.to_owned())],
            body,
            reason: None,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Every way a request can fail, mapped to HTTP in one place.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(Vec<FieldError>),
    Unauthorized,
    TokenOnManagementRoute,
    NotFound,
    MethodNotAllowed(&'static str),
    PreconditionFailed,
    IdempotencyMismatch,
    PayloadTooLarge,
    UnsupportedMediaType(&'static str),
    Unavailable,
    Internal,
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl ApiError {
    pub fn field(field: &str, message: &str) -> Self {
        ApiError::BadRequest(vec![FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
        }])
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized => 401,
            ApiError::TokenOnManagementRoute => 403,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::PreconditionFailed => 412,
            ApiError::IdempotencyMismatch => 422,
            ApiError::PayloadTooLarge => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Unavailable => 503,
            ApiError::Internal => 500,
        }
    }

    /// RFC 9457 problem document: never a stack trace, AWS detail or secret.
    pub fn into_response(self) -> ApiResponse {
        let status = self.status();
        let (slug, title, detail): (&str, &str, String) = match &self {
            ApiError::BadRequest(_) => (
                "invalid-request",
                "Invalid request",
                "One or more fields are invalid.".into(),
            ),
            ApiError::Unauthorized => (
                "unauthorized",
                "Unauthorized",
                "No owner could be established for this request.".into(),
            ),
            ApiError::TokenOnManagementRoute => (
                "token-not-allowed",
                "Forbidden",
                "A Tollgate token cannot be used to manage tokens.".into(),
            ),
            ApiError::NotFound => ("not-found", "Not Found", "No such resource.".into()),
            ApiError::MethodNotAllowed(allow) => (
                "method-not-allowed",
                "Method Not Allowed",
                format!("Allowed methods: {allow}."),
            ),
            ApiError::PreconditionFailed => (
                "precondition-failed",
                "Precondition Failed",
                "If-Match does not match the token's current ETag.".into(),
            ),
            ApiError::IdempotencyMismatch => (
                "idempotency-key-reused",
                "Unprocessable Content",
                "This Idempotency-Key was used with a different request body.".into(),
            ),
            ApiError::PayloadTooLarge => (
                "payload-too-large",
                "Content Too Large",
                format!("Bodies are limited to {MAX_BODY} bytes."),
            ),
            ApiError::UnsupportedMediaType(allowed) => (
                "unsupported-media-type",
                "Unsupported Media Type",
                format!("Content-Type must be {allowed}."),
            ),
            ApiError::Unavailable => (
                "unavailable",
                "Service Unavailable",
                "The token store is unavailable; retry shortly.".into(),
            ),
            ApiError::Internal => (
                "internal",
                "Internal Server Error",
                "An unexpected error occurred.".into(),
            ),
        };
        let mut doc = json!({
            "type": format!("https://tollgate.dev/problems/{slug}"),
            "title": title,
            "status": status,
            "detail": detail,
        });
        if let ApiError::BadRequest(errors) = &self {
            doc["errors"] = json!(errors);
        }
        let mut resp = ApiResponse {
            status,
            headers: vec![("content-type", "application/problem+json".to_owned())],
            body: serde_json::to_vec(&doc).unwrap_or_default(),
            reason: None,
        };
        match self {
            ApiError::MethodNotAllowed(allow) => resp.headers.push(("allow", allow.to_owned())),
            ApiError::Unavailable => resp.headers.push(("retry-after", "1".to_owned())),
            _ => {}
        }
        resp
    }
}

/// Renders a JSON document as XML under `root`. Arrays repeat a child named
/// for the list (`tokens` → `token`); `tags` become `<tag key="…">`, since
/// tag keys need not be valid element names.
pub fn to_xml(root: &str, doc: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    write_element(&mut out, root, doc);
    out
}

fn item_name(list: &str) -> &str {
    match list {
        "tokens" => "token",
        "allowedAddresses" => "address",
        "errors" => "error",
        _ => "item",
    }
}

fn write_element(out: &mut String, name: &str, v: &Value) {
    if v.is_null() {
        return;
    }
    out.push('<');
    out.push_str(name);
    out.push('>');
    match v {
        Value::Object(map) if name == "tags" => {
            for (k, val) in map {
                out.push_str("<tag key=\"");
                escape(out, k);
                out.push_str("\">");
                escape(out, val.as_str().unwrap_or_default());
                out.push_str("</tag>");
            }
        }
        Value::Object(map) => {
            for (k, val) in map {
                write_element(out, k, val);
            }
        }
        Value::Array(items) => {
            for item in items {
                write_element(out, item_name(name), item);
            }
        }
        Value::String(s) => escape(out, s),
        other => out.push_str(&other.to_string()),
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_rendering() {
        let doc = json!({"id": "a<b", "tags": {"k 1": "v&"}, "allowedAddresses": ["1.2.3.4"], "n": 5, "x": null});
        let xml = to_xml("token", &doc);
        assert!(xml.contains("<token>"));
        assert!(xml.contains("<id>a&lt;b</id>"));
        assert!(xml.contains("<tag key=\"k 1\">v&amp;</tag>"));
        assert!(xml.contains("<allowedAddresses><address>1.2.3.4</address></allowedAddresses>"));
        assert!(xml.contains("<n>5</n>"));
        assert!(!xml.contains("<x>"));
    }

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
    fn problems_have_no_internal_detail() {
        let r = ApiError::Unavailable.into_response();
        assert_eq!(r.status, 503);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| *k == "retry-after" && v == "1"));
        let r = ApiError::field("maxUses", "bad").into_response();
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["errors"][0]["field"], "maxUses");
        assert_eq!(v["status"], 400);
    }
}
