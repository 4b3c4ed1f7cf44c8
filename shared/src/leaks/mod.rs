//! Leak response: what a token does when a secret scanner reports its
//! string public (`OnLeak`), and GitHub's secret-scanning partner protocol
//! (`github`): the report's signature checked against GitHub's published
//! keys, read and cached from a configured URL (`KeySource`).

use async_trait::async_trait;

pub mod github;
#[cfg(feature = "aws")]
pub mod https;

/// What a reported leak does to a token (`onLeak`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnLeak {
    /// Deleted, as its holder's revocation does (the default).
    #[default]
    Revoke,
    /// Disabled (`enabled: false`): its owner decides what follows.
    Disable,
    /// Only recorded.
    Notify,
}

impl OnLeak {
    pub const RULE: &'static str = "must be revoke, disable or notify";

    pub fn parse(text: &str) -> Option<OnLeak> {
        match text {
            "revoke" => Some(OnLeak::Revoke),
            "disable" => Some(OnLeak::Disable),
            "notify" => Some(OnLeak::Notify),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnLeak::Revoke => "revoke",
            OnLeak::Disable => "disable",
            OnLeak::Notify => "notify",
        }
    }
}

/// Where a scanner's public keys document is read from.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The document's body, or why it could not be read.
    async fn fetch(&self) -> Result<Vec<u8>, String>;
}
