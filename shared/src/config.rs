//! Configuration from the environment, read once per cold start.

use crate::credentials::{Keyring, KeyringError};
use crate::token::rules::Lifetimes;

/// The server keyring's source.
#[derive(Clone)]
pub enum KeySource {
    /// `TOLLGATE_HASH_KEY` (development and tests), parsed.
    Inline(Keyring),
    /// `TOLLGATE_HASH_KEY_SECRET`: the id of a Secrets Manager secret, read
    /// at init (the deployed way: no key material in the configuration).
    Secret(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Inline(ring) => write!(f, "Inline({ring:?})"),
            KeySource::Secret(id) => write!(f, "Secret({id:?})"),
        }
    }
}

/// Loads the keyring again (from Secrets Manager when deployed), for a
/// function that meets a token under a key id it does not know yet.
#[async_trait::async_trait]
pub trait KeyringSource: Send + Sync {
    async fn load(&self) -> Result<Keyring, KeyringError>;
}

#[derive(Clone)]
pub struct Config {
    pub table: String,
    /// Where the server keyring comes from.
    pub key_source: KeySource,
    /// How often, at most, a function re-reads the keyring when it meets a
    /// key id it does not know.
    pub keyring_refresh_seconds: i64,
    pub lifetimes: Lifetimes,
    pub lease_seconds: i64,
    /// How long DynamoDB keeps an item after its end of life before TTL
    /// removes it (expired tokens stay listable as `state=expired`).
    pub retention_seconds: i64,
    /// How long audit records are kept before TTL removes them.
    pub audit_retention_days: i64,
    /// The `iss` of capabilities (`TOLLGATE_ISSUER`, default `tollgate`).
    pub issuer: String,
    /// Where GitHub's secret-scanning public keys are read (the validate
    /// function checks its reports' signatures with them).
    pub github_keys_url: String,
    /// The metrics' namespace (`TOLLGATE_METRICS_NAMESPACE`, default
    /// `Tollgate`) and `Service` dimension (`TOLLGATE_SERVICE`, default
    /// `tollgate`; the template sets the stack's name).
    pub metrics: crate::metrics::Emf,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the hash key.
        f.debug_struct("Config")
            .field("table", &self.table)
            .field("key_source", &self.key_source)
            .field("lifetimes", &self.lifetimes)
            .field("lease_seconds", &self.lease_seconds)
            .field("retention_seconds", &self.retention_seconds)
            .field("audit_retention_days", &self.audit_retention_days)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "configuration error: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A hundred years.
const MAX_SECONDS: i64 = 100 * 366 * 86_400;

fn seconds(
    name: &str,
    default: i64,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<i64, ConfigError> {
    // Bounded, so that adding it to a date or to milliseconds can never
    // overflow.
    count(name, default, MAX_SECONDS, "seconds", get)
}

/// A number of days: 1 to 100 years' worth.
fn days(
    name: &str,
    default: i64,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<i64, ConfigError> {
    count(name, default, 36_500, "days", get)
}

/// A whole number of `unit` from 1 to `max`, or `default` when unset.
fn count(
    name: &str,
    default: i64,
    max: i64,
    unit: &str,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<i64, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ConfigError(format!("{name} must be a number of {unit} from 1 to {max}"))
            }),
    }
}

/// A name from the environment: 1 to 255 printable characters.
fn name(
    key: &str,
    default: &str,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    match get(key) {
        None => Ok(default.to_owned()),
        Some(v) if (1..=255).contains(&v.len()) && !v.contains(char::is_control) => Ok(v),
        Some(_) => Err(ConfigError(format!(
            "{key} must be 1 to 255 characters, none of them control characters"
        ))),
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let table =
            get("TOLLGATE_TABLE").ok_or_else(|| ConfigError("TOLLGATE_TABLE is not set".into()))?;
        let key_source = match (get("TOLLGATE_HASH_KEY_SECRET"), get("TOLLGATE_HASH_KEY")) {
            (Some(id), _) => KeySource::Secret(id.trim().to_owned()),
            (None, Some(text)) => KeySource::Inline(
                Keyring::parse(&text)
                    .map_err(|e| ConfigError(format!("TOLLGATE_HASH_KEY: {e}")))?,
            ),
            (None, None) => {
                return Err(ConfigError(
                    "set TOLLGATE_HASH_KEY_SECRET (a Secrets Manager secret id) or, for development, TOLLGATE_HASH_KEY".into(),
                ))
            }
        };
        Ok(Config {
            table,
            key_source,
            keyring_refresh_seconds: seconds("TOLLGATE_KEYRING_REFRESH_SECONDS", 60, &get)?,
            lifetimes: Lifetimes {
                default_ttl_seconds: seconds("TOLLGATE_DEFAULT_TTL_SECONDS", 43_200, &get)?,
                max_ttl_seconds: seconds("TOLLGATE_MAX_TTL_SECONDS", 31_536_000, &get)?,
            },
            lease_seconds: seconds("TOLLGATE_LEASE_SECONDS", 300, &get)?,
            retention_seconds: seconds("TOLLGATE_RETENTION_SECONDS", 30 * 86_400, &get)?,
            audit_retention_days: days("TOLLGATE_AUDIT_RETENTION_DAYS", 400, &get)?,
            metrics: crate::metrics::Emf::new(
                &name(
                    "TOLLGATE_METRICS_NAMESPACE",
                    crate::metrics::DEFAULT_NAMESPACE,
                    &get,
                )?,
                &name("TOLLGATE_SERVICE", "tollgate", &get)?,
            ),
            github_keys_url: get("TOLLGATE_GITHUB_KEYS_URL")
                .unwrap_or_else(|| crate::leaks::github::DEFAULT_KEYS_URL.to_owned()),
            issuer: match get("TOLLGATE_ISSUER") {
                None => "tollgate".to_owned(),
                Some(i) if (1..=256).contains(&i.len()) && !i.contains(char::is_control) => i,
                Some(_) => return Err(ConfigError(
                    "TOLLGATE_ISSUER must be 1 to 256 characters, none of them control characters"
                        .into(),
                )),
            },
        })
    }
}

/// The `events` function's configuration: it reads no key and serves no
/// route, so it needs only the table (for `token.expired` records), the
/// bus and the audit retention.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    pub table: String,
    /// `TOLLGATE_EVENT_BUS`: a bus name or ARN (default: `default`).
    pub bus: String,
    pub audit_retention_days: i64,
}

impl EventsConfig {
    pub fn from_env() -> Result<EventsConfig, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<EventsConfig, ConfigError> {
        Ok(EventsConfig {
            table: get("TOLLGATE_TABLE")
                .ok_or_else(|| ConfigError("TOLLGATE_TABLE is not set".into()))?,
            bus: name("TOLLGATE_EVENT_BUS", "default", &get)?,
            audit_retention_days: days("TOLLGATE_AUDIT_RETENTION_DAYS", 400, &get)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |k| v.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone())
    }

    #[test]
    fn defaults_and_key_rules() {
        let key = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let c = Config::from_lookup(env(&[("TOLLGATE_TABLE", "t"), ("TOLLGATE_HASH_KEY", &key)]))
            .unwrap();
        assert_eq!(c.lifetimes.default_ttl_seconds, 43_200);
        assert_eq!(c.lifetimes.max_ttl_seconds, 31_536_000);
        assert_eq!(c.lease_seconds, 300);
        assert!(!format!("{c:?}").contains(&key));
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert!(Config::from_lookup(env(&[
            ("TOLLGATE_TABLE", "t"),
            ("TOLLGATE_HASH_KEY", &short)
        ]))
        .is_err());
        assert!(Config::from_lookup(env(&[("TOLLGATE_TABLE", "t")])).is_err());
        let dev = Config::from_lookup(env(&[
            ("TOLLGATE_TABLE", "t"),
            ("TOLLGATE_HASH_KEY", &key),
            ("TOLLGATE_LEASE_SECONDS", "2"),
        ]))
        .unwrap();
        assert_eq!(dev.lease_seconds, 2);
        // The deployed way wins over the development key.
        let deployed = Config::from_lookup(env(&[
            ("TOLLGATE_TABLE", "t"),
            ("TOLLGATE_HASH_KEY", &key),
            ("TOLLGATE_HASH_KEY_SECRET", "tollgate/hash-key"),
        ]))
        .unwrap();
        assert!(
            matches!(deployed.key_source, KeySource::Secret(ref id) if id == "tollgate/hash-key")
        );
        assert_eq!(deployed.keyring_refresh_seconds, 60);
    }
}
