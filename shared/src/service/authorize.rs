//! The authorize function's decision: a request to the account holder's
//! own API, checked exactly as a validate of its credential with
//! `resource` = the request path, `write` = a method that is not GET, HEAD
//! or OPTIONS, and the caller's address. It spends what a validate spends
//! (uses, rate-limit counts; never a lease) and fails closed. The event
//! shapes (HTTP API 2.0, REST TOKEN/REQUEST 1.0) live in
//! `lambda::authorizer`; the rules live in `validate`, as for `/validate`.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::App;
use crate::validate::binding::Binding;
use crate::validate::{Accepted, ValidateInput};

/// What API Gateway asks about one request, whatever the event shape.
#[derive(Debug, Default, Clone)]
pub struct Question {
    /// The identity source's value: `Bearer <credential>` or the bare
    /// credential.
    pub credential: Option<String>,
    pub method: String,
    /// The request path without the stage.
    pub path: String,
    pub source_ip: Option<IpAddr>,
    /// The owners and audience the API states (its stage variables);
    /// `None`: it states none, and nothing is let in.
    pub binding: Option<Binding>,
}

/// The answer: allowed with the context the API's integration receives, or
/// denied with the reason (a validate reason code, or `UNAVAILABLE` when
/// the table could not be reached).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow {
        /// Who the credential acts for: the token's id (the parent's, for
        /// a capability), used as the IAM policy's `principalId`.
        principal: String,
        context: Map<String, Value>,
    },
    Deny {
        reason: &'static str,
    },
}

impl Verdict {
    pub fn deny(reason: &'static str) -> Self {
        Verdict::Deny { reason }
    }

    /// Context values are strings, numbers or booleans only (API Gateway's
    /// rule): `tags` travels as a JSON string.
    pub fn context(&self) -> Map<String, Value> {
        match self {
            Verdict::Allow { context, .. } => context.clone(),
            Verdict::Deny { reason } => {
                let mut m = Map::new();
                m.insert("reason".into(), json!(reason));
                m
            }
        }
    }
}

/// The reason of a denial because DynamoDB could not be reached.
pub const UNAVAILABLE: &str = "UNAVAILABLE";
/// The reason of a denial because the API states no owners to accept.
pub const API_NOT_BOUND: &str = "API_NOT_BOUND";

/// A method that only reads: GET, HEAD, OPTIONS. Every other method asks
/// for write access.
pub fn is_write(method: &str) -> bool {
    !matches!(
        method.to_ascii_uppercase().as_str(),
        "GET" | "HEAD" | "OPTIONS"
    )
}

/// The credential of an identity source value: after a `Bearer` scheme
/// (any case), or the value itself.
pub fn credential_of(value: &str) -> &str {
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    }
}

impl App {
    /// The decision for one authorizer event: the validate flow, nothing
    /// else. A table that cannot be reached denies (and says why in the
    /// log), never allows.
    pub async fn authorize(&self, q: &Question) -> Verdict {
        // An API that does not say whose tokens it accepts accepts none.
        let Some(binding) = &q.binding else {
            return Verdict::deny(API_NOT_BOUND);
        };
        let Some(credential) = q.credential.as_deref().map(credential_of) else {
            return Verdict::deny(crate::validate::Reason::Malformed.code());
        };
        let input = ValidateInput {
            token: Some(credential.to_owned()),
            resource: Some(q.path.clone()),
            write: is_write(&q.method),
            cost: Some(binding.cost_of(&q.method, &q.path)),
            binding: Some(binding.clone()),
            ..Default::default()
        };
        let keyring = self.keyring_for_input(&input).await;
        match self.decide(&keyring, &input, q.source_ip).await {
            Ok(Ok(accepted)) => allow(&accepted),
            Ok(Err(reason)) => Verdict::deny(reason.code()),
            Err(e) => {
                tracing::error!(error = %e, "authorize: the table could not be reached; denied");
                Verdict::deny(UNAVAILABLE)
            }
        }
    }
}

fn allow(accepted: &Accepted) -> Verdict {
    let rec = &accepted.rec;
    let mut context = Map::new();
    context.insert("owner".into(), json!(rec.owner));
    context.insert("tokenId".into(), json!(rec.id));
    context.insert("type".into(), json!(rec.token_type));
    let tags = serde_json::to_string(&rec.tags).unwrap_or_else(|_| "{}".into());
    context.insert("tags".into(), json!(tags));
    if let Some(cap) = &accepted.capability {
        context.insert("capabilityId".into(), json!(cap.id));
    }
    if let Some(left) = accepted.admitted.remaining_uses {
        context.insert("remainingUses".into(), json!(left));
    }
    // The customer the call is for: the identity the token shares limits with.
    if let Some(identity) = &accepted.admitted.identity {
        for (from, to) in [("id", "identityId"), ("externalId", "externalId")] {
            if let Some(v) = identity.get(from) {
                context.insert(to.into(), v.clone());
            }
        }
    }
    Verdict::Allow {
        principal: rec.id.clone(),
        context,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_are_not_writes() {
        for m in ["GET", "head", "OPTIONS"] {
            assert!(!is_write(m), "{m}");
        }
        for m in ["POST", "PUT", "PATCH", "DELETE", "QUERY", ""] {
            assert!(is_write(m), "{m}");
        }
    }

    #[test]
    fn the_credential_follows_a_bearer_scheme_or_is_the_value() {
        assert_eq!(credential_of("Bearer tgl_x"), "tgl_x");
        assert_eq!(credential_of("bearer  tgl_x "), "tgl_x");
        assert_eq!(credential_of("tgl_x"), "tgl_x");
        assert_eq!(credential_of("Basic abc"), "Basic abc");
    }
}
