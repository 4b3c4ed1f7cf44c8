//! The web console: its files (plain HTML, CSS and JavaScript modules,
//! embedded in the `console` function at build time) served with the
//! headers that keep a page holding a JWT safe, and the one document the
//! page reads at start: where to sign in.
//!
//! The page reads nothing itself: it calls the management API, on the same
//! origin, with the JWT the issuer gave it. So the function has no access
//! to the table or the keyring, and its policy says so.

use sha2::{Digest, Sha256};

use crate::config::ConfigError;
use crate::http::ApiResponse;

/// One embedded file: its name under `/console/` and its text.
pub struct Asset {
    pub name: &'static str,
    pub body: &'static str,
}

/// Where the console signs in: the deployment's OIDC issuer (Cognito's
/// hosted UI once deployed; the development issuer locally), as the
/// authorization code flow with PKCE needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// Optional: where signing out ends the issuer's session too.
    pub logout_endpoint: String,
    /// The app client's id: the `aud` the management routes' JWT
    /// authorizer accepts.
    pub client_id: String,
    pub scope: String,
}

impl ConsoleConfig {
    /// From `TOLLGATE_CONSOLE_AUTHORIZATION_ENDPOINT`, `..._TOKEN_ENDPOINT`,
    /// `..._LOGOUT_ENDPOINT`, `..._CLIENT_ID` and `..._SCOPE` (default
    /// `openid`). Unset endpoints leave sign-in unconfigured (the page says
    /// so); a set one must be an https URL, or http on loopback.
    pub fn from_env() -> Result<ConsoleConfig, ConfigError> {
        let var = |k: &str| std::env::var(k).unwrap_or_default().trim().to_owned();
        let config = ConsoleConfig {
            authorization_endpoint: var("TOLLGATE_CONSOLE_AUTHORIZATION_ENDPOINT"),
            token_endpoint: var("TOLLGATE_CONSOLE_TOKEN_ENDPOINT"),
            logout_endpoint: var("TOLLGATE_CONSOLE_LOGOUT_ENDPOINT"),
            client_id: var("TOLLGATE_CONSOLE_CLIENT_ID"),
            scope: Some(var("TOLLGATE_CONSOLE_SCOPE"))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "openid".into()),
        };
        for (name, url) in [
            ("AUTHORIZATION", &config.authorization_endpoint),
            ("TOKEN", &config.token_endpoint),
            ("LOGOUT", &config.logout_endpoint),
        ] {
            if !url.is_empty() && origin_of(url).is_none() {
                return Err(ConfigError(format!(
                    "TOLLGATE_CONSOLE_{name}_ENDPOINT must be an https URL (http only on 127.0.0.1 or localhost)"
                )));
            }
        }
        Ok(config)
    }
}

/// `scheme://host[:port]` of an https URL, or of an http one on loopback.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let allowed = match scheme {
        "https" => !host.is_empty(),
        "http" => matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        _ => false,
    };
    let plain = authority
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    (allowed && plain).then(|| format!("{scheme}://{authority}"))
}

struct File {
    name: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    etag: String,
    /// Every file is revalidated on every load (`no-cache` with its
    /// `ETag`): a deploy never leaves a browser mixing old and new modules.
    cache: &'static str,
}

/// The console, ready to serve: its files, its configuration document and
/// its Content-Security-Policy, made once per cold start.
pub struct Console {
    files: Vec<File>,
    csp: String,
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn file(name: &'static str, body: Vec<u8>) -> File {
    let digest = Sha256::digest(&body);
    let etag = format!(
        "\"{}\"",
        digest
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    File {
        name,
        content_type: content_type(name),
        body,
        etag,
        cache: "no-cache",
    }
}

impl Console {
    pub fn new(assets: &[Asset], config: &ConsoleConfig) -> Console {
        let document = serde_json::json!({
            "authorizationEndpoint": config.authorization_endpoint,
            "tokenEndpoint": config.token_endpoint,
            "logoutEndpoint": config.logout_endpoint,
            "clientId": config.client_id,
            "scope": config.scope,
        });
        let mut files: Vec<File> = assets
            .iter()
            .filter(|a| a.name != "config.json")
            .map(|a| file(a.name, a.body.as_bytes().to_vec()))
            .collect();
        files.push(file("config.json", document.to_string().into_bytes()));
        // The page talks to this origin (the API) and, to exchange its
        // sign-in code, to the issuer's token endpoint; nothing else loads
        // or runs, and no one may frame it.
        let token_origin = origin_of(&config.token_endpoint)
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'{token_origin}; base-uri 'none'; form-action 'self'; \
             frame-ancestors 'none'"
        );
        Console { files, csp }
    }

    /// The answer to `GET /console` (the page) or `GET /console/{file}`.
    pub fn serve(
        &self,
        method: &http::Method,
        path: &str,
        if_none_match: Option<&str>,
    ) -> ApiResponse {
        if method != http::Method::GET && method != http::Method::HEAD {
            return self
                .secured(ApiResponse::empty(405))
                .with_header("allow", "GET, HEAD");
        }
        let name = match path {
            "/console" | "/console/" => "index.html",
            p => p.strip_prefix("/console/").unwrap_or(""),
        };
        let Some(f) = self.files.iter().find(|f| f.name == name) else {
            let resp = ApiResponse::empty(404).with_header("cache-control", "no-cache");
            return self.secured(resp);
        };
        let unchanged = if_none_match.is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == f.etag)
        });
        let mut resp = ApiResponse::empty(if unchanged { 304 } else { 200 })
            .with_header("etag", f.etag.clone())
            .with_header("cache-control", f.cache);
        if !unchanged {
            resp = resp.with_header("content-type", f.content_type);
            if method == http::Method::GET {
                resp.body = f.body.clone();
            }
        }
        self.secured(resp)
    }

    /// The headers every answer carries.
    fn secured(&self, resp: ApiResponse) -> ApiResponse {
        resp.with_header("content-security-policy", self.csp.clone())
            .with_header("x-frame-options", "DENY")
            .with_header("x-content-type-options", "nosniff")
            .with_header("referrer-policy", "no-referrer")
            .with_header("strict-transport-security", "max-age=31536000")
            .with_header("cross-origin-opener-policy", "same-origin")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASSETS: &[Asset] = &[
        Asset {
            name: "index.html",
            body: "<!doctype html><title>t</title>",
        },
        Asset {
            name: "app.js",
            body: "export {};",
        },
    ];

    fn console() -> Console {
        Console::new(
            ASSETS,
            &ConsoleConfig {
                authorization_endpoint: "https://login.example.com/oauth2/authorize".into(),
                token_endpoint: "https://login.example.com/oauth2/token".into(),
                client_id: "abc".into(),
                scope: "openid".into(),
                ..Default::default()
            },
        )
    }

    fn header<'a>(r: &'a ApiResponse, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_page_its_files_and_its_configuration() {
        let c = console();
        let get = http::Method::GET;
        let page = c.serve(&get, "/console", None);
        assert_eq!(page.status, 200);
        assert_eq!(
            header(&page, "content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(header(&page, "cache-control"), Some("no-cache"));
        let csp = header(&page, "content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' https://login.example.com;"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header(&page, "x-frame-options"), Some("DENY"));
        let js = c.serve(&get, "/console/app.js", None);
        assert_eq!(
            header(&js, "content-type"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(header(&js, "cache-control"), Some("no-cache"));
        let config: serde_json::Value =
            serde_json::from_slice(&c.serve(&get, "/console/config.json", None).body).unwrap();
        assert_eq!(config["clientId"], "abc");
        // Revalidation, unknown names, other methods.
        let etag = header(&js, "etag").unwrap().to_owned();
        let again = c.serve(&get, "/console/app.js", Some(&format!("W/{etag}")));
        assert_eq!((again.status, again.body.len()), (304, 0));
        for missing in [
            "/console/../template.yaml",
            "/console/nope.js",
            "/console/app.js/x",
            "/console/app.js/",
            "/console//app.js",
        ] {
            assert_eq!(c.serve(&get, missing, None).status, 404, "{missing}");
        }
        assert_eq!(c.serve(&http::Method::POST, "/console", None).status, 405);
        assert!(c
            .serve(&http::Method::HEAD, "/console", None)
            .body
            .is_empty());
    }

    #[test]
    fn endpoints_are_https_or_loopback() {
        assert_eq!(
            origin_of("https://x.auth.us-east-1.amazoncognito.com/oauth2/token").as_deref(),
            Some("https://x.auth.us-east-1.amazoncognito.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:3000/dev-issuer/token").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        for bad in [
            "http://example.com/token",
            "javascript:alert(1)",
            "https:///x",
            "https://a b/",
            "ftp://x/",
        ] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }
}
