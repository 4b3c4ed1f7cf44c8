//! The validate flow, read top-down in [`decide`]: the presented token is
//! parsed, then known from the function's last admission of it
//! (`snapshots`, a guess) or read ([`read_presented`], with the address
//! that counts from `relay`), checked in the contract's order (`checks`),
//! admitted by spending what it must in one conditional write
//! (`admission`) and answered (`answer`). `input` decodes the request; the
//! lease calls of `service::leases` reuse [`presented`] and the checks.

use std::net::IpAddr;

use time::OffsetDateTime;

use crate::credentials::capability::{self, Claims};
use crate::credentials::Keyring;
use crate::credentials::TokenString;
use crate::identity::IdentityRecord;
use crate::store::{Store, StoreError};
use crate::token::{TokenId, TokenRecord};

pub mod admission;
pub mod answer;
pub mod binding;
pub mod checks;
pub mod input;
pub mod relay;
pub mod snapshots;

pub use admission::{Admitted, Outcome};
pub use input::ValidateInput;
pub use snapshots::Snapshots;

/// Refusal reasons, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Malformed,
    NotFound,
    Disabled,
    NotYetValid,
    Expired,
    AddressNotAllowed,
    /// The token's owner is not one the protected API accepts.
    OwnerNotAllowed,
    /// The token (or capability) is meant for other audiences.
    AudienceNotAllowed,
    ResourceNotAllowed,
    WriteNotAllowed,
    ScopeNotAllowed,
    UsageExhausted,
    /// A rate limit's window is full: a validate could next be admitted in
    /// `retry_after` whole seconds.
    RateLimited {
        retry_after: i64,
    },
    ConcurrencyLimit,
    /// The token's identity refuses (see `checks::check_identity`): the
    /// refusal is `of`'s, and the answer adds `"limitedBy": "identity"`.
    ByIdentity {
        of: IdentityRefusal,
    },
}

/// What an identity can refuse: an audience, or its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityRefusal {
    AudienceNotAllowed,
    UsageExhausted,
    RateLimited { retry_after: i64 },
}

impl From<crate::limits::Exceeded> for Reason {
    fn from(e: crate::limits::Exceeded) -> Self {
        match e {
            crate::limits::Exceeded::Uses => Reason::UsageExhausted,
            crate::limits::Exceeded::Rate { retry_after } => Reason::RateLimited { retry_after },
        }
    }
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "MALFORMED",
            Reason::NotFound => "NOT_FOUND",
            Reason::Disabled => "DISABLED",
            Reason::NotYetValid => "NOT_YET_VALID",
            Reason::Expired => "EXPIRED",
            Reason::AddressNotAllowed => "ADDRESS_NOT_ALLOWED",
            Reason::OwnerNotAllowed => "OWNER_NOT_ALLOWED",
            Reason::AudienceNotAllowed => "AUDIENCE_NOT_ALLOWED",
            Reason::ResourceNotAllowed => "RESOURCE_NOT_ALLOWED",
            Reason::WriteNotAllowed => "WRITE_NOT_ALLOWED",
            Reason::ScopeNotAllowed => "SCOPE_NOT_ALLOWED",
            Reason::UsageExhausted => "USAGE_EXHAUSTED",
            Reason::RateLimited { .. } => "RATE_LIMITED",
            Reason::ConcurrencyLimit => "CONCURRENCY_LIMIT",
            Reason::ByIdentity { of } => match of {
                IdentityRefusal::AudienceNotAllowed => "AUDIENCE_NOT_ALLOWED",
                IdentityRefusal::UsageExhausted => "USAGE_EXHAUSTED",
                IdentityRefusal::RateLimited { .. } => "RATE_LIMITED",
            },
        }
    }

    /// When a rate limit refuses: whole seconds until a slot is free.
    pub fn retry_after(self) -> Option<i64> {
        match self {
            Reason::RateLimited { retry_after }
            | Reason::ByIdentity {
                of: IdentityRefusal::RateLimited { retry_after },
            } => Some(retry_after),
            _ => None,
        }
    }

    /// Which holder refused, when not the token itself.
    pub fn limited_by(self) -> Option<&'static str> {
        matches!(self, Reason::ByIdentity { .. }).then_some("identity")
    }
}

/// A token that passed the checks and was admitted, or why not.
pub type Decision = Result<Accepted, Reason>;

/// An admitted validate: the token, what it spent, when the secret
/// presented stops validating if it is one rolled away, and the capability
/// presented, if one was.
#[derive(Debug)]
pub struct Accepted {
    pub rec: TokenRecord,
    pub admitted: Admitted,
    pub secret_expires_at: Option<OffsetDateTime>,
    pub capability: Option<Claims>,
}

/// The presented token, read, with the address that counts for it.
#[derive(Debug)]
pub struct Presented {
    pub id: TokenId,
    pub rec: TokenRecord,
    pub address: Option<IpAddr>,
    /// Set when the secret presented is the previous one, in its grace.
    pub secret_expires_at: Option<OffsetDateTime>,
    pub capability: Option<Claims>,
}

/// What was presented: a token string (integrity-checked), or a capability
/// of a token (signature and window checked). Either names the token read.
#[derive(Debug)]
pub enum Credential {
    Token(TokenString),
    Capability(Claims),
}

impl Credential {
    /// The token to read: the token itself, or the capability's parent.
    pub fn id(&self) -> &TokenId {
        match self {
            Credential::Token(t) => &t.id,
            Credential::Capability(c) => &c.parent,
        }
    }

    fn capability(&self) -> Option<&Claims> {
        match self {
            Credential::Capability(c) => Some(c),
            Credential::Token(_) => None,
        }
    }
}

/// Parses the presented credential, with no read: `MALFORMED` for neither
/// a token string nor a capability, and a capability's own window decided
/// here (`NOT_YET_VALID`, `EXPIRED`).
pub fn credential(
    keys: &Keyring,
    issuer: &str,
    text: &str,
    now: OffsetDateTime,
) -> Result<Credential, Reason> {
    if capability::looks_like_capability(text) {
        return capability::verify_remembered(keys, issuer, text, now)
            .map(Credential::Capability)
            .map_err(|r| match r {
                capability::Refusal::Malformed => Reason::Malformed,
                capability::Refusal::NotYetValid => Reason::NotYetValid,
                capability::Refusal::Expired => Reason::Expired,
            });
    }
    keys.parse_token(text)
        .map(Credential::Token)
        .ok_or(Reason::Malformed)
}

/// The whole decision for one validate request, in the contract's order.
/// `source` is the request's own address.
///
/// A token that spends something on admission is usually known from this
/// function's last admission of it: then the validate costs one request,
/// its conditional write. Otherwise it is read first. Either way the write
/// is pinned to the version checked; when it fails, DynamoDB returns the
/// token as it is and the decision is made again on that, without a read.
pub async fn decide(
    keys: &Keyring,
    issuer: &str,
    store: &dyn Store,
    snapshots: &Snapshots,
    lease_seconds: i64,
    input: &ValidateInput,
    source: Option<IpAddr>,
) -> Result<Decision, StoreError> {
    let text = input.token.as_deref().unwrap_or_default();
    let presented = match credential(keys, issuer, text, crate::dates::now()) {
        Ok(c) => c,
        Err(reason) => return Ok(Err(reason)),
    };
    let cap = presented.capability();
    let id = presented.id().as_str();
    // A relayed request reads its relay credential anyway: no guess.
    let mut known = match input.relay {
        None => snapshots.get(id).map(|rec| Known { rec, guess: true }),
        Some(_) => None,
    };
    let mut address = relay::address_that_counts(input.address, false, source);
    // The identity as the store returned it when a joint write failed.
    let mut fresh_identity: Option<IdentityRecord> = None;
    for _ in 0..MAX_ROUNDS {
        let now = crate::dates::now();
        let Known { mut rec, guess } = match known.take() {
            Some(k) => k,
            None => match read_presented(keys, store, presented.id(), input, source, now).await? {
                Some((rec, that_counts)) => {
                    address = that_counts;
                    Known { rec, guess: false }
                }
                None => {
                    snapshots.forget(id);
                    return Ok(Err(Reason::NotFound));
                }
            },
        };
        let checked = secret_state(keys, &presented, &rec, now)
            .ok_or(Reason::NotFound)
            .and_then(|grace| Ok((grace, checks::check(&rec, input, address, now, cap)?)));
        let (secret_expires_at, standings) = match checked {
            Ok(found) => found,
            // A guess never refuses: the token may have changed since.
            Err(_) if guess => continue,
            Err(reason) => {
                if reason == Reason::NotFound {
                    snapshots.forget(id);
                } else {
                    snapshots.keep(&rec);
                }
                return Ok(Err(reason));
            }
        };
        let mut shared = None;
        if let Some(identity_id) = rec.identity_id.clone() {
            let found = identity_of(
                store,
                snapshots,
                &identity_id,
                fresh_identity.take(),
                input,
                now,
            );
            match found.await? {
                Ok(pair) => shared = Some(pair),
                // A guessed token never refuses: read it, keep the identity.
                Err((reason, identity)) if guess => {
                    fresh_identity = identity.filter(|_| reason != Reason::NotFound);
                    continue;
                }
                Err((reason, _)) => {
                    snapshots.keep(&rec);
                    return Ok(Err(reason));
                }
            }
        }
        let identity_counts = shared.as_ref().is_some_and(|(i, _)| i.limits.counts());
        if !admission::spends(&rec, input) && !identity_counts {
            if guess {
                continue; // a token that spends nothing is decided by its read
            }
            admission::touch(store, &rec, now).await?;
            snapshots.forget(id);
            let identity = shared.map(|(i, _)| admission::shown(&i, None, Vec::new()));
            return Ok(Ok(Accepted {
                rec,
                admitted: Admitted {
                    identity,
                    ..Admitted::default()
                },
                secret_expires_at,
                capability: cap.cloned(),
            }));
        }
        let joint = shared
            .as_mut()
            .map(|(identity, standings)| admission::Shared {
                identity,
                standings,
            });
        let admission = admission::admit(
            store,
            keys,
            presented.id(),
            &mut rec,
            &standings,
            input,
            lease_seconds,
            now,
            joint,
        );
        match admission.await? {
            Outcome::Admitted(admitted) => {
                snapshots.keep(&rec);
                if let Some((identity, _)) = &shared {
                    snapshots.keep_identity(identity);
                }
                return Ok(Ok(Accepted {
                    rec,
                    admitted,
                    secret_expires_at,
                    capability: cap.cloned(),
                }));
            }
            Outcome::Changed(None) => {
                snapshots.forget(id);
                return Ok(Err(Reason::NotFound));
            }
            Outcome::Changed(Some(now_rec)) => {
                known = Some(Known {
                    rec: *now_rec,
                    guess: false,
                });
            }
            Outcome::IdentityChanged(now_identity) => {
                // The token passed its own condition: decide again on it
                // and on the identity as it is now.
                match now_identity {
                    Some(i) => fresh_identity = Some(*i),
                    None => return Ok(Err(Reason::NotFound)),
                }
                known = Some(Known { rec, guess });
            }
        }
    }
    Err(StoreError::Unavailable(
        "the token kept changing during admission".into(),
    ))
}

/// The token's identity for this round, checked: the one the last write
/// returned, else this function's last sight of it (a guess, read again
/// before it may refuse), else read. A refusal comes with the identity as
/// read, for the next round; an identity that is gone is `NOT_FOUND`.
async fn identity_of(
    store: &dyn Store,
    snapshots: &Snapshots,
    id: &str,
    fresh: Option<IdentityRecord>,
    input: &ValidateInput,
    now: OffsetDateTime,
) -> Result<Result<(IdentityRecord, checks::Standings), (Reason, Option<IdentityRecord>)>, StoreError>
{
    let (mut identity, mut guess) = match fresh {
        Some(i) => (Some(i), false),
        None => (snapshots.identity(id), true),
    };
    loop {
        let Some(found) = identity.take() else {
            if !guess {
                snapshots.forget_identity(id);
                return Ok(Err((Reason::NotFound, None)));
            }
            identity = store.get_identity(id).await?;
            guess = false;
            continue;
        };
        match checks::check_identity(&found, input, now) {
            Ok(standings) => return Ok(Ok((found, standings))),
            Err(_) if guess => {
                identity = store.get_identity(id).await?;
                guess = false;
            }
            Err(reason) => {
                snapshots.keep_identity(&found);
                return Ok(Err((reason, Some(found))));
            }
        }
    }
}

/// The token a round decides on, and whether it is only a guess (this
/// function's last sight of it) rather than what the store holds now.
struct Known {
    rec: TokenRecord,
    guess: bool,
}

/// Rounds of check and write before giving up with 503: each lost round
/// means other requests changed the token in between (a patch, or a lapsed
/// lease bucket this admission meant to remove).
const MAX_ROUNDS: usize = 64;

/// The presented token string, parsed (`MALFORMED` before any read) and
/// read with its secret compared (`NOT_FOUND`), with the address that
/// counts for it.
pub async fn presented(
    keys: &Keyring,
    issuer: &str,
    store: &dyn Store,
    input: &ValidateInput,
    source: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<Result<Presented, Reason>, StoreError> {
    let text = input.token.as_deref().unwrap_or_default();
    let cred = match credential(keys, issuer, text, now) {
        Ok(c) => c,
        Err(reason) => return Ok(Err(reason)),
    };
    let Some((rec, address)) = read_presented(keys, store, cred.id(), input, source, now).await?
    else {
        return Ok(Err(Reason::NotFound));
    };
    let Some(secret_expires_at) = secret_state(keys, &cred, &rec, now) else {
        return Ok(Err(Reason::NotFound));
    };
    let id = cred.id().clone();
    Ok(Ok(Presented {
        id,
        secret_expires_at,
        address,
        rec,
        capability: match cred {
            Credential::Capability(c) => Some(c),
            Credential::Token(_) => None,
        },
    }))
}

/// Reads the presented token strongly consistently, with the address that
/// counts for it: a relay credential, when presented, is read in the same
/// request and vouches for the claimed address only if trusted.
pub async fn read_presented(
    keys: &Keyring,
    store: &dyn Store,
    id: &TokenId,
    input: &ValidateInput,
    source: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<Option<(TokenRecord, Option<IpAddr>)>, StoreError> {
    let relay = input.relay.as_deref().and_then(|r| keys.parse_token(r));
    let (rec, relay_rec) = match &relay {
        Some(r) => {
            let mut both = store.get_many(&[id.as_str(), r.id.as_str()]).await?;
            let relay_rec = both.pop().flatten();
            (both.pop().flatten(), relay_rec)
        }
        None => (store.get(id.as_str()).await?, None),
    };
    let Some(rec) = rec else {
        return Ok(None);
    };
    let relay_trusted = match (&relay, &relay_rec) {
        (Some(r), Some(relay_rec)) => {
            token_secret_state(keys, r, relay_rec, now).is_some()
                && relay::trusted(relay_rec, &rec, source, now)
        }
        _ => false,
    };
    let address = relay::address_that_counts(input.address, relay_trusted, source);
    Ok(Some((rec, address)))
}

/// Whether the presented secret is the token's: `Some(None)` for the
/// current secret, `Some(Some(end))` for the previous one during its grace
/// (it stops at `end`), `None` for neither (`NOT_FOUND`: a secret rolled
/// away is gone). A capability stands for the secret it was minted under
/// (its generation): it lives and ends with that secret, unless its holder
/// revoked it first (see `credentials::revocation`).
fn secret_state(
    keys: &Keyring,
    presented: &Credential,
    rec: &TokenRecord,
    now: OffsetDateTime,
) -> Option<Option<OffsetDateTime>> {
    match presented {
        Credential::Token(parsed) => token_secret_state(keys, parsed, rec, now),
        Credential::Capability(c) => capability_secret_state(c, rec, now),
    }
}

pub(crate) fn capability_secret_state(
    cap: &Claims,
    rec: &TokenRecord,
    now: OffsetDateTime,
) -> Option<Option<OffsetDateTime>> {
    if rec.revoked_capabilities.refuses(cap) {
        return None;
    }
    if cap.generation == rec.secret_generation {
        return Some(None);
    }
    match rec.prev_secret_expires_at {
        Some(end) if cap.generation + 1 == rec.secret_generation && now < end => Some(Some(end)),
        _ => None,
    }
}

pub(crate) fn token_secret_state(
    keys: &Keyring,
    parsed: &TokenString,
    rec: &TokenRecord,
    now: OffsetDateTime,
) -> Option<Option<OffsetDateTime>> {
    if keys.secret_matches(parsed, &rec.secret_hash) {
        return Some(None);
    }
    match (&rec.prev_secret_hash, rec.prev_secret_expires_at) {
        (Some(hash), Some(end)) if now < end && keys.secret_matches(parsed, hash) => {
            Some(Some(end))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn rec() -> TokenRecord {
        checks::tests::token(serde_json::json!({}))
    }

    fn cap(generation: u64) -> Claims {
        Claims {
            generation,
            ..Claims::for_tests()
        }
    }

    #[test]
    fn a_roll_ends_the_capabilities_of_the_secret_it_replaced_with_its_grace() {
        let now = crate::dates::now();
        let mut t = rec();
        assert_eq!(capability_secret_state(&cap(0), &t, now), Some(None));
        // Rolled with no grace: the old generation's capabilities end at once.
        t.secret_generation = 1;
        assert_eq!(capability_secret_state(&cap(0), &t, now), None);
        assert_eq!(capability_secret_state(&cap(1), &t, now), Some(None));
        // Rolled with grace: they last as long as the old secret does.
        let end = now + Duration::seconds(60);
        t.prev_secret_expires_at = Some(end);
        assert_eq!(capability_secret_state(&cap(0), &t, now), Some(Some(end)));
        assert_eq!(capability_secret_state(&cap(0), &t, end), None);
        // Rolled twice: two generations back is gone, grace or not.
        t.secret_generation = 2;
        assert_eq!(capability_secret_state(&cap(0), &t, now), None);
        // A generation from the future (forged claims cannot be: signed) is not this token's.
        assert_eq!(capability_secret_state(&cap(3), &t, now), None);
    }
}
