//! Offline verification of Tollgate capabilities against the deployment's
//! JWKS: no call to Tollgate per check, so no revocation before `exp`
//! either (keep capabilities short where that matters).
//!
//! The rules are Tollgate's own: the header is exactly `alg` (`EdDSA` or
//! `ES256`), `typ: JWT` and a `kid` of the JWKS, and the algorithm is the
//! key's, never the header's choice; an ES256 signature must be low-S;
//! then `iss`, the window (`nbf` ≤ now < `exp`), `aud` (a capability with
//! audiences must name yours) and `own` (an owner you accept).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey};
use serde_json::{Map, Value};
use std::sync::RwLock;

use crate::answer::Reason;
use crate::client::Owners;

/// How long fetched keys are used before they are fetched again (the
/// JWKS's own `max-age` is 300 s).
const KEYS_FRESH_FOR: Duration = Duration::from_secs(300);
/// The keys are fetched at most this often (an unknown `kid`, stale keys).
const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Stale keys verify while the JWKS cannot be read, but not for longer
/// than this: a key removed from the JWKS stops verifying within the hour.
const STALE_KEYS_USABLE_FOR: Duration = Duration::from_secs(3600);

/// A capability that passed every offline check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// Its `jti`.
    pub id: String,
    /// The parent token's id (`sub`).
    pub token_id: String,
    /// The parent's owner (`own`).
    pub owner: String,
    pub scopes: Vec<String>,
    pub resource: String,
    pub write: bool,
    /// The address or CIDR it is bound to (`addr`).
    pub address: Option<String>,
    pub audiences: Vec<String>,
    pub not_before: i64,
    pub expires: i64,
}

impl Capability {
    /// Whether the capability allows `path`: its resource covers it by
    /// whole segments. Only a plain path is judged here (no `.` or `..`
    /// segment, `//`, `%`, `;`, `\`, query or control character); anything
    /// else is refused, since servers disagree on what it names.
    pub fn covers(&self, path: &str) -> bool {
        let plain = path.starts_with('/')
            && path.len() <= 1024
            && !path.contains("//")
            && !path.contains(['%', ';', '\\', '?', '#'])
            && !path.chars().any(|c| c.is_control() || !c.is_ascii())
            && path.split('/').all(|s| s != "." && !s.starts_with(".."));
        let path = match path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        plain
            && (self.resource == "/"
                || path
                    .strip_prefix(self.resource.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
    }

    /// Whether `caller` may use it: unbound, or within `addr`. An unknown
    /// caller never passes a bound capability.
    pub fn allows_address(&self, caller: Option<IpAddr>) -> bool {
        let Some(bound) = &self.address else {
            return true;
        };
        caller.is_some_and(|ip| within(bound, ip))
    }

    /// Whether it grants `scope`: a granted scope with the same
    /// `scope:<service>:<privilege>` whose every parameter the asked scope
    /// names, with that value and no other (values percent-decoded), as
    /// Tollgate decides it.
    pub fn grants(&self, scope: &str) -> bool {
        let Some((asked, asked_params)) = parse_scope(scope) else {
            return false;
        };
        self.scopes
            .iter()
            .filter_map(|g| parse_scope(g))
            .any(|(name, params)| {
                name == asked
                    && params.iter().all(|(k, v)| {
                        let mut values = asked_params.iter().filter(|(ak, _)| ak == k).peekable();
                        values.peek().is_some() && values.all(|(_, av)| av == v)
                    })
            })
    }
}

/// A scope's name and its parameters, decoded; `None` when it is not a
/// scope or a parameter does not decode.
fn parse_scope(scope: &str) -> Option<(&str, Vec<(String, String)>)> {
    let (name, query) = scope.split_once('?').unwrap_or((scope, ""));
    if !name.starts_with("scope:") {
        return None;
    }
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((percent_decoded(k)?, percent_decoded(v)?));
    }
    Some((name, params))
}

fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `ip` lies within `net` (`203.0.113.0/24`, or one address). A
/// net Tollgate would not have signed (a bad prefix) contains nothing; an
/// IPv4-mapped IPv6 net or address counts as its IPv4 form, as Tollgate
/// counts it.
fn within(net: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match net.split_once('/') {
        Some((a, b)) => match b.parse::<u32>() {
            Ok(bits) if b.bytes().all(|c| c.is_ascii_digit()) => (a, Some(bits)),
            _ => return false,
        },
        None => (net, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    // The net in its IPv4 form when it is IPv4-mapped (its prefix less 96).
    let (net, bits) = match (net, bits) {
        (IpAddr::V6(v6), bits) => match v6.to_ipv4_mapped() {
            Some(v4) => match bits {
                None => (IpAddr::V4(v4), None),
                Some(b) if b >= 96 => (IpAddr::V4(v4), Some(b - 96)),
                Some(_) => return false,
            },
            None => (IpAddr::V6(v6), bits),
        },
        other => other,
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = bits.unwrap_or(32);
            if bits > 32 {
                return false;
            }
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = bits.unwrap_or(128);
            if bits > 128 {
                return false;
            }
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// Why a capability was refused offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Tollgate's reason code for it (`MALFORMED`, `EXPIRED`,
    /// `NOT_YET_VALID`, `AUDIENCE_NOT_ALLOWED`, `OWNER_NOT_ALLOWED`).
    Refused(Reason),
    /// The keys could not be fetched (and none are held): nothing is
    /// accepted until they can be.
    KeysUnavailable(String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Refused(r) => write!(f, "capability refused: {r}"),
            VerifyError::KeysUnavailable(why) => write!(f, "the JWKS is unavailable: {why}"),
        }
    }
}

impl std::error::Error for VerifyError {}

fn refused(reason: Reason) -> VerifyError {
    VerifyError::Refused(reason)
}

/// A public key from the JWKS, with the one algorithm it verifies.
#[derive(Debug)]
enum Key {
    Ed25519(Vec<u8>),
    /// The uncompressed SEC1 point.
    P256(Vec<u8>),
}

impl Key {
    fn alg(&self) -> &'static str {
        match self {
            Key::Ed25519(_) => "EdDSA",
            Key::P256(_) => "ES256",
        }
    }

    fn of_jwk(jwk: &Map<String, Value>) -> Option<Key> {
        let text = |k: &str| jwk.get(k).and_then(Value::as_str);
        let bytes = |k: &str| URL_SAFE_NO_PAD.decode(text(k)?).ok();
        match (text("kty")?, text("crv")?) {
            ("OKP", "Ed25519") => bytes("x").filter(|x| x.len() == 32).map(Key::Ed25519),
            ("EC", "P-256") => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                (x.len() == 32 && y.len() == 32).then(|| Key::P256([&[4u8][..], &x, &y].concat()))
            }
            _ => None,
        }
    }
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, Arc<Key>>,
    fetched: Option<Instant>,
}

/// What the cache holds for one `kid`.
struct Held {
    key: Option<Arc<Key>>,
    fresh: bool,
    usable: bool,
    none: bool,
}

/// Verifies capabilities offline; build once and share (it holds the
/// JWKS cache).
pub struct Verifier {
    http: reqwest::Client,
    jwks_url: String,
    issuer: String,
    audience: Option<String>,
    owners: Owners,
    keys: RwLock<Keys>,
    /// Held by the one check that fetches; the last attempt's time.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("jwks_url", &self.jwks_url)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("owners", &self.owners)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Verifier`]: [`Verifier::builder`].
pub struct VerifierBuilder {
    issuer: String,
    jwks_url: Option<String>,
    audience: Option<String>,
    owners: Owners,
    http: Option<reqwest::Client>,
}

impl VerifierBuilder {
    /// Where the keys are (default: `<issuer>/.well-known/jwks.json`, right
    /// when the issuer is the API's URL; give it when the issuer is the
    /// default `tollgate`).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Your API's audience: a capability with audiences must name it.
    /// Without one, any capability with audiences is refused.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The owners whose capabilities you accept (see [`Owners`]).
    pub fn owners(mut self, owners: Owners) -> Self {
        self.owners = owners;
        self
    }

    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Fails only when no HTTP client can be made (no TLS roots).
    pub fn build(self) -> Result<Verifier, crate::Error> {
        let jwks_url = self.jwks_url.unwrap_or_else(|| {
            format!(
                "{}/.well-known/jwks.json",
                self.issuer.trim_end_matches('/')
            )
        });
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .map_err(crate::Error::Transport)?,
        };
        Ok(Verifier {
            http,
            jwks_url,
            issuer: self.issuer,
            audience: self.audience,
            owners: self.owners,
            keys: RwLock::new(Keys::default()),
            fetching: tokio::sync::Mutex::new(None),
        })
    }
}

impl Verifier {
    /// A verifier of capabilities issued by `issuer` (the deployment's
    /// `CapabilityIssuer`), for the owners given with
    /// [`owners`](VerifierBuilder::owners) (none until then: fail closed).
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            jwks_url: None,
            audience: None,
            owners: Owners::Listed(Vec::new()),
            http: None,
        }
    }

    /// Every offline check of `capability`, at the current time.
    pub async fn verify(&self, capability: &str) -> Result<Capability, VerifyError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.verify_at(capability, now).await
    }

    /// The same checks at `now` (unix seconds).
    pub async fn verify_at(&self, capability: &str, now: i64) -> Result<Capability, VerifyError> {
        let parts = Parts::of(capability).ok_or(refused(Reason::Malformed))?;
        let key = self.key(&parts.kid).await?;
        if key.alg() != parts.alg {
            return Err(refused(Reason::Malformed));
        }
        let signed = match key.as_ref() {
            Key::Ed25519(public) => UnparsedPublicKey::new(&ED25519, public)
                .verify(parts.signing_input.as_bytes(), &parts.signature),
            Key::P256(point) if low_s(&parts.signature) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(parts.signing_input.as_bytes(), &parts.signature)
            }
            Key::P256(_) => return Err(refused(Reason::Malformed)),
        };
        signed.map_err(|_| refused(Reason::Malformed))?;
        let capability = claims(&parts.payload, &self.issuer).ok_or(refused(Reason::Malformed))?;
        if now < capability.not_before {
            return Err(refused(Reason::NotYetValid));
        }
        if now >= capability.expires {
            return Err(refused(Reason::Expired));
        }
        let audience_ok = capability.audiences.is_empty()
            || self
                .audience
                .as_ref()
                .is_some_and(|a| capability.audiences.contains(a));
        if !audience_ok {
            return Err(refused(Reason::AudienceNotAllowed));
        }
        if !self.owners.accepts(&capability.owner) {
            return Err(refused(Reason::OwnerNotAllowed));
        }
        Ok(capability)
    }

    fn held(&self, kid: &str) -> Held {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let age = keys.fetched.map(|t| t.elapsed());
        Held {
            key: keys.by_kid.get(kid).cloned(),
            fresh: age.is_some_and(|a| a < KEYS_FRESH_FOR),
            usable: age.is_some_and(|a| a < STALE_KEYS_USABLE_FOR),
            none: keys.by_kid.is_empty(),
        }
    }

    /// The key named `kid`, from the cache while it is fresh. The keys are
    /// fetched again when stale or when `kid` is unknown, by one check at a
    /// time and at most once a minute (once a second while none is held):
    /// a flood of made-up key ids, or a JWKS that cannot be read, costs
    /// one fetch a minute, not one a check. A stale key keeps answering
    /// while another check fetches, and for an hour while none succeeds.
    async fn key(&self, kid: &str) -> Result<Arc<Key>, VerifyError> {
        let held = self.held(kid);
        let mut last_attempt = match held.key {
            Some(key) if held.fresh => return Ok(key),
            Some(key) if held.usable => match self.fetching.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(key),
            },
            _ => self.fetching.lock().await,
        };
        // What another check fetched while this one waited.
        let held = self.held(kid);
        if let Some(key) = held.key.clone().filter(|_| held.fresh) {
            return Ok(key);
        }
        let interval = match held.none {
            true => Duration::from_secs(1),
            false => MIN_FETCH_INTERVAL,
        };
        if last_attempt.is_none_or(|t| t.elapsed() >= interval) {
            *last_attempt = Some(Instant::now());
            match self.fetch().await {
                Ok(by_kid) => {
                    let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
                    keys.by_kid = by_kid;
                    keys.fetched = Some(Instant::now());
                }
                Err(why) if held.none => return Err(VerifyError::KeysUnavailable(why)),
                Err(_) => {}
            }
        }
        let held = self.held(kid);
        match held.key {
            Some(key) if held.usable => Ok(key),
            _ if held.none || !held.usable => Err(VerifyError::KeysUnavailable(
                "no key fetched from the JWKS in the last hour".into(),
            )),
            _ => Err(refused(Reason::Malformed)),
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<Key>>, String> {
        let response = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?;
        let jwks: Value = response.json().await.map_err(|e| e.to_string())?;
        let list = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("no keys in the JWKS")?;
        Ok(list
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|jwk| {
                let kid = jwk.get("kid")?.as_str()?.to_owned();
                Some((kid, Arc::new(Key::of_jwk(jwk)?)))
            })
            .collect())
    }
}

/// A compact JWS, split and decoded; `None` for anything else.
struct Parts {
    signing_input: String,
    alg: String,
    kid: String,
    payload: Map<String, Value>,
    signature: Vec<u8>,
}

impl Parts {
    fn of(text: &str) -> Option<Parts> {
        if text.len() > 8192 {
            return None;
        }
        let (signing_input, signature) = text.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        let header = json_part(header)?;
        let only_known = header
            .keys()
            .all(|k| matches!(k.as_str(), "alg" | "typ" | "kid"));
        if !only_known || header.get("typ").and_then(Value::as_str) != Some("JWT") {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        (signature.len() == 64).then_some(())?;
        Some(Parts {
            signing_input: signing_input.to_owned(),
            alg: header.get("alg")?.as_str()?.to_owned(),
            kid: header.get("kid")?.as_str()?.to_owned(),
            payload: json_part(payload)?,
            signature,
        })
    }
}

fn json_part(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Half the P-256 group order: a signature's S above it is the malleable
/// twin of a valid one, which Tollgate never makes.
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

fn low_s(signature: &[u8]) -> bool {
    signature.get(32..64).is_some_and(|s| s <= &HALF_ORDER[..])
}

fn claims(m: &Map<String, Value>, issuer: &str) -> Option<Capability> {
    let text = |k: &str| m.get(k).and_then(Value::as_str);
    if text("iss")? != issuer {
        return None;
    }
    let audiences = match m.get("aud") {
        None => Vec::new(),
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<_>>()?,
        Some(_) => return None,
    };
    // Required, as Tollgate requires it, though no check reads it.
    m.get("iat")?.as_i64()?;
    Some(Capability {
        id: text("jti")?.to_owned(),
        token_id: text("sub")?.to_owned(),
        owner: text("own")?.to_owned(),
        scopes: text("scope")?
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        resource: text("resource")?.to_owned(),
        write: m.get("write")?.as_bool()?,
        address: match m.get("addr") {
            None => None,
            Some(a) => Some(a.as_str()?.to_owned()),
        },
        audiences,
        not_before: m.get("nbf")?.as_i64()?,
        expires: m.get("exp")?.as_i64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capability(resource: &str, address: Option<&str>, scopes: &[&str]) -> Capability {
        Capability {
            id: "j".into(),
            token_id: "t".into(),
            owner: "alice".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            resource: resource.into(),
            write: false,
            address: address.map(str::to_owned),
            audiences: Vec::new(),
            not_before: 0,
            expires: i64::MAX,
        }
    }

    #[test]
    fn a_resource_covers_whole_segments_of_plain_paths_only() {
        let c = capability("/teams", None, &[]);
        for ok in ["/teams", "/teams/", "/teams/7"] {
            assert!(c.covers(ok), "{ok}");
        }
        for no in [
            "/teamsx",
            "/",
            "/teams/../admin",
            "/teams//x",
            "/teams/%2e%2e",
            "/teams/a;b",
            "teams",
            "/teams/\u{ff0e}",
            "/teams/...",
            "/teams/..x",
        ] {
            assert!(!c.covers(no), "{no}");
        }
        assert!(capability("/", None, &[]).covers("/anything/at/all"));
    }

    #[test]
    fn addresses_and_scopes_as_tollgate_reads_them() {
        let c = capability("/", Some("203.0.113.0/24"), &["scope:client:incoming"]);
        assert!(c.allows_address(Some("203.0.113.9".parse().unwrap())));
        assert!(c.allows_address(Some("::ffff:203.0.113.9".parse().unwrap())));
        assert!(!c.allows_address(Some("203.0.114.9".parse().unwrap())));
        assert!(!c.allows_address(None));
        assert!(c.grants("scope:client:incoming?clientName=bob"));
        // Nets Tollgate would not sign contain nothing; mapped nets are IPv4.
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for bad in [
            "203.0.113.0/33",
            "203.0.113.0/x",
            "203.0.113.0/",
            "nonsense",
            "::/129",
        ] {
            assert!(!within(bad, ip("203.0.113.9")), "{bad}");
        }
        assert!(within("::ffff:203.0.113.0/120", ip("203.0.113.9")));
        assert!(!within("::ffff:203.0.113.0/120", ip("203.0.114.9")));
        assert!(within("0.0.0.0/0", ip("198.51.100.1")));
        assert!(within("2001:db8::/32", ip("2001:db8::1")));
        assert!(!c.grants("scope:client:outgoing"));
        let narrow = capability("/", None, &["scope:client:incoming?clientName=alice"]);
        assert!(narrow.grants("scope:client:incoming?clientName=alice&x=1"));
        assert!(!narrow.grants("scope:client:incoming?clientName=bob"));
        assert!(!narrow.grants("scope:client:incoming?clientName=alice&clientName=bob"));
        assert!(narrow.grants("scope:client:incoming?clientName=%61lice"));
        assert!(!narrow.grants("scope:client:incoming"));
    }

    #[test]
    fn only_low_s_signatures() {
        let mut sig = [0u8; 64];
        sig[32..].copy_from_slice(&HALF_ORDER);
        assert!(low_s(&sig));
        sig[63] += 1;
        assert!(!low_s(&sig));
    }
}
