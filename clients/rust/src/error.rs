//! The client's one error type. Every error means "not admitted": a
//! caller that fails closed denies on any of them.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Tollgate (or DynamoDB behind it) is unavailable or throttled: a 503
    /// or 429 after the retries allowed, or an admission's 503, which is
    /// never resent (its use may have been spent). `retry_after` is what
    /// the server suggested.
    Unavailable { retry_after: Option<Duration> },
    /// The request was refused as a request (4xx): `problem` names the
    /// bad fields.
    Rejected { status: u16, problem: Problem },
    /// No answer: connection, TLS, or the timeout.
    Transport(reqwest::Error),
    /// An answer this client cannot read (a status or body Tollgate does
    /// not send).
    Unexpected { status: u16, detail: String },
    /// The client was built with a base URL that is not one.
    Config(String),
}

/// An RFC 9457 problem, as Tollgate answers every error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Problem {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    /// Every bad field of an input error.
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unavailable { retry_after } => match retry_after {
                Some(d) => write!(f, "Tollgate is unavailable (retry after {}s)", d.as_secs()),
                None => write!(f, "Tollgate is unavailable"),
            },
            Error::Rejected { status, problem } => {
                write!(
                    f,
                    "Tollgate refused the request ({status}): {}",
                    problem.title
                )?;
                for e in &problem.errors {
                    write!(f, "; {}: {}", e.field, e.message)?;
                }
                Ok(())
            }
            // reqwest's message names the URL, never a body or a header.
            Error::Transport(e) => write!(f, "no answer from Tollgate: {e}"),
            Error::Unexpected { status, detail } => {
                write!(f, "unexpected answer from Tollgate ({status}): {detail}")
            }
            Error::Config(why) => write!(f, "client configuration: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Transport(e) => Some(e),
            _ => None,
        }
    }
}
