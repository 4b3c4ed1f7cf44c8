//! The scanner's keys document read over HTTPS, with the TLS stack the AWS
//! SDK already uses (rustls with ring, the system's root certificates).
//! Plain HTTP is allowed to loopback only, for tests standing in for GitHub.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::KeySource;

/// A keys document larger than this is refused.
const MAX_DOCUMENT: usize = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct HttpsKeySource {
    url: http::Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpsKeySource {
    /// `url` must be `https://`, or `http://` to 127.0.0.1 or `[::1]`.
    pub fn new(url: &str) -> Result<HttpsKeySource, String> {
        let uri: http::Uri = url.parse().map_err(|_| format!("{url} is not a URL"))?;
        let loopback = matches!(uri.host(), Some("127.0.0.1" | "[::1]" | "::1"));
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if loopback => {}
            _ => return Err(format!("{url} must be an https URL")),
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("no root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpsKeySource {
            url: uri,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

#[async_trait]
impl KeySource for HttpsKeySource {
    async fn fetch(&self) -> Result<Vec<u8>, String> {
        let req = http::Request::get(self.url.clone())
            .header("user-agent", "tollgate")
            .header("accept", "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status()));
        }
        let body = tokio::time::timeout(
            TIMEOUT,
            Limited::new(resp.into_body(), MAX_DOCUMENT).collect(),
        )
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        Ok(body.to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(
            HttpsKeySource::new("https://api.github.com/meta/public_keys/secret_scanning").is_ok()
        );
        assert!(HttpsKeySource::new("http://127.0.0.1:9/keys.json").is_ok());
        for bad in [
            "http://example.com/keys",
            "ftp://x/y",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(HttpsKeySource::new(bad).is_err(), "{bad}");
        }
    }
}
