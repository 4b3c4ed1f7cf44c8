//! Credentials: the secrets a holder presents and how the server proves
//! them. The server keyring (`keyring`) and the keys derived from each of
//! its keys (`keys`); the token string (`string`); the capabilities minted
//! from a token (`capability`), what they grant and which a ring has
//! verified (`claims`), and those revoked before their end (`revocation`).

pub mod capability;
pub mod claims;
pub mod keyring;
pub mod keys;
pub mod revocation;
pub mod string;

pub use keyring::{Keyring, KeyringError};
pub use keys::request_fingerprint;
pub use revocation::RevokedCapabilities;
pub use string::{
    looks_like_token, Minted, TokenString, MAX_TOKEN_LEN, START_LEN, TOKEN_LEN, TOKEN_PREFIX,
};

/// The key id a token string names (`v1` for a v1 string), or a
/// capability's header names, if it is shaped like one: to tell an unknown
/// key from a malformed string.
pub fn kid_of(text: &str) -> Option<String> {
    string::split(text)
        .map(|p| p.kid.unwrap_or(keyring::V1_KID).to_owned())
        .or_else(|| capability::kid_of(text))
}
