//! Persistence behind one trait, so the rules run against memory in unit
//! tests and against DynamoDB in production with the same contract suite.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::token::TokenRecord;

#[cfg(feature = "aws")]
pub mod dynamo;
pub mod memory;

#[derive(Debug)]
pub enum StoreError {
    /// Throttled, unreachable or timed out after the SDK's retries: 503.
    Unavailable(String),
    /// Anything else: a bug or misconfiguration, 500.
    Internal(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "store unavailable: {m}"),
            StoreError::Internal(m) => write!(f, "store error: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// What an `Idempotency-Key` remembers for 24 hours.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// Derived from owner and key (see `Keys::idempotency_key`).
    pub key: String,
    pub token_id: String,
    /// Fingerprint of the first request's body.
    pub fingerprint: String,
    /// The token object as first created, without the secret.
    pub snapshot: String,
    /// Unix seconds after which the record no longer counts.
    pub expires_at: i64,
}

#[derive(Debug)]
pub enum CreateOutcome {
    Created,
    /// Another create with the same key won; here is its record.
    Replay(IdempotencyRecord),
}

/// One page of an owner's tokens, newest first.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<TokenRecord>,
    /// Position of the last item when more may follow.
    pub next: Option<String>,
}

/// A request to admit one validation: consume a use, take a lease, or both,
/// atomically, and refresh `lastUsedAt` when it is stale.
#[derive(Debug, Clone)]
pub struct Admission<'a> {
    pub id: &'a str,
    /// Unique per validate call: a retried write that already applied is
    /// recognised by it and not counted twice.
    pub attempt_id: &'a str,
    pub consume_use: bool,
    /// Lease id and its expiry (unix ms), when acquiring under a cap.
    pub lease: Option<(&'a str, i64)>,
    pub touch: Option<OffsetDateTime>,
}

#[derive(Debug)]
pub enum AdmitOutcome {
    /// Admitted; `remaining` is `remainingUses` right after this use.
    Admitted {
        remaining: Option<u64>,
    },
    NotFound,
    Exhausted,
    /// The cap is reached; the current record, to find lapsed leases.
    Limit(Box<TokenRecord>),
}

/// Position of a record in an owner's list: creation time, then id.
pub fn list_position(rec: &TokenRecord) -> String {
    format!("{:015}#{}", crate::dates::millis(rec.created_at), rec.id)
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Writes a new token (never overwriting), with its idempotency record
    /// in the same atomic write when given.
    async fn put_new(
        &self,
        rec: &TokenRecord,
        idem: Option<&IdempotencyRecord>,
    ) -> Result<CreateOutcome, StoreError>;
    async fn idempotency(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Strongly consistent read of one token.
    async fn get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// One page of the owner's tokens, newest first, after `after`.
    async fn list(
        &self,
        owner: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page, StoreError>;
    /// Writes `new`'s client fields if the token is still at `seen`'s
    /// version (and remaining uses, when `maxUses` changes). `false`: it moved.
    async fn replace(&self, seen: &TokenRecord, new: &TokenRecord) -> Result<bool, StoreError>;
    /// Deletes the owner's token with its leases; `false` if there was none.
    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError>;
    async fn admit(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError>;
    /// Frees lapsed leases, each only if it still has the expiry seen.
    async fn reclaim(&self, id: &str, lapsed: &[(String, i64)]) -> Result<bool, StoreError>;
    /// Extends a live lease; `false` if it is unknown or lapsed.
    async fn renew(
        &self,
        id: &str,
        lease: &str,
        now_ms: i64,
        new_expiry: i64,
    ) -> Result<bool, StoreError>;
    /// Ends a lease; `false` if it was already gone.
    async fn release(&self, id: &str, lease: &str) -> Result<bool, StoreError>;
    /// Sets `lastUsedAt` to `now` unless it is already at or after `fresh_after`.
    async fn touch(
        &self,
        id: &str,
        now: OffsetDateTime,
        fresh_after: OffsetDateTime,
    ) -> Result<(), StoreError>;
}
