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
use tokio::sync::RwLock;

use crate::answer::Reason;
use crate::client::Owners;

/// How long fetched keys are used before they are fetched again (the
/// JWKS's own `max-age` is 300 s).
const KEYS_FRESH_FOR: Duration = Duration::from_secs(300);
/// The keys are fetched at most this often (an unknown `kid`, stale keys).
const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(60);

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
            && path.split('/').all(|s| s != "." && s != "..");
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

    /// Whether it grants `scope` exactly or by a broader grant: the same
    /// `scope:<service>:<privilege>`, and every parameter the grant names
    /// with the same value.
    pub fn grants(&self, scope: &str) -> bool {
        let (asked, asked_params) = split_scope(scope);
        self.scopes.iter().any(|granted| {
            let (name, params) = split_scope(granted);
            name == asked && params.iter().all(|p| asked_params.contains(p))
        })
    }
}

fn split_scope(scope: &str) -> (&str, Vec<&str>) {
    match scope.split_once('?') {
        Some((name, query)) => (name, query.split('&').filter(|p| !p.is_empty()).collect()),
        None => (scope, Vec::new()),
    }
}

/// Whether `ip` lies within `net` (`203.0.113.0/24`, or one address).
fn within(net: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match net.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (net, None),
    };
    let to_v4 = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (addr.parse::<IpAddr>().map(to_v4), to_v4(ip)) {
        (Ok(IpAddr::V4(n)), IpAddr::V4(a)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (Ok(IpAddr::V6(n)), IpAddr::V6(a)) => {
            let bits = bits.unwrap_or(128).min(128);
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
    last_attempt: Option<Instant>,
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

    pub fn build(self) -> Verifier {
        let jwks_url = self.jwks_url.unwrap_or_else(|| {
            format!(
                "{}/.well-known/jwks.json",
                self.issuer.trim_end_matches('/')
            )
        });
        let http = self.http.unwrap_or_else(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap_or_default()
        });
        Verifier {
            http,
            jwks_url,
            issuer: self.issuer,
            audience: self.audience,
            owners: self.owners,
            keys: RwLock::new(Keys::default()),
        }
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

    /// The key named `kid`, from the cache while it is fresh. The keys are
    /// fetched again when stale or when `kid` is unknown, at most once a
    /// minute either way: a flood of made-up key ids, or a JWKS that cannot
    /// be reached, costs one fetch a minute, not one a check.
    async fn key(&self, kid: &str) -> Result<Arc<Key>, VerifyError> {
        // With no key held yet, every check fails until a fetch works:
        // try again sooner then.
        let may_fetch = |keys: &Keys| {
            let interval = match keys.by_kid.is_empty() {
                true => Duration::from_secs(1),
                false => MIN_FETCH_INTERVAL,
            };
            keys.last_attempt.is_none_or(|t| t.elapsed() >= interval)
        };
        {
            let keys = self.keys.read().await;
            let fresh = keys.fetched.is_some_and(|t| t.elapsed() < KEYS_FRESH_FOR);
            match keys.by_kid.get(kid) {
                Some(key) if fresh || !may_fetch(&keys) => return Ok(key.clone()),
                None if keys.by_kid.is_empty() && !may_fetch(&keys) => {
                    return Err(VerifyError::KeysUnavailable("not fetched yet".into()));
                }
                None if !may_fetch(&keys) => return Err(refused(Reason::Malformed)),
                _ => {}
            }
        }
        let mut keys = self.keys.write().await;
        // Another check may have fetched while this one waited.
        if may_fetch(&keys) {
            keys.last_attempt = Some(Instant::now());
            match self.fetch().await {
                Ok(by_kid) => {
                    keys.by_kid = by_kid;
                    keys.fetched = Some(Instant::now());
                }
                // Stale keys still verify while the JWKS cannot be read;
                // with none held, nothing is accepted.
                Err(why) if keys.by_kid.is_empty() => {
                    return Err(VerifyError::KeysUnavailable(why));
                }
                Err(_) => {}
            }
        }
        keys.by_kid
            .get(kid)
            .cloned()
            .ok_or(refused(Reason::Malformed))
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
        assert!(!c.grants("scope:client:outgoing"));
        let narrow = capability("/", None, &["scope:client:incoming?clientName=alice"]);
        assert!(narrow.grants("scope:client:incoming?clientName=alice&x=1"));
        assert!(!narrow.grants("scope:client:incoming?clientName=bob"));
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
