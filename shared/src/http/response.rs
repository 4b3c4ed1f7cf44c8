//! Responses: a document in the client's format, or an empty body.

use serde_json::Value;

use super::request::Format;
use super::xml::to_xml;

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
