//! Persistence behind one trait, so the rules run against memory in unit
//! tests and against DynamoDB in production with the same contract suite.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::{AuditQuery, AuditRecord};
use crate::identity::IdentityRecord;
use crate::limits::rate::Standing;
use crate::limits::uses::UsesStanding;
use crate::limits::Limits;
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
    /// The token names an identity that is not its owner's (or none).
    NoSuchIdentity,
}

/// What a patch's write found (see `Store::replace`).
#[derive(Debug, PartialEq, Eq)]
pub enum Replaced {
    Done,
    /// The token moved since it was read: read it again.
    Moved,
    /// The identity the patch names is not the owner's (or none).
    NoSuchIdentity,
}

/// One page of an owner's audit records, newest first.
#[derive(Debug)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Position of the last record when more may follow.
    pub next: Option<String>,
}

/// One page of an owner's identities, newest first.
#[derive(Debug)]
pub struct IdentityPage {
    pub items: Vec<IdentityRecord>,
    pub next: Option<String>,
}

/// What deleting an identity found.
#[derive(Debug, PartialEq, Eq)]
pub enum IdentityDeletion {
    Deleted,
    /// No identity of that owner.
    NotFound,
    /// A token points at it.
    InUse,
}

/// What a joint admission (a token and its identity, spent together or
/// not at all) found.
#[derive(Debug, PartialEq)]
pub enum JointOutcome {
    /// Both spent: each holder's uses and counts as this admission
    /// decided them (a transaction returns no values: see `Spent`).
    Admitted { token: Spent, identity: Spent },
    /// The token's condition failed: the token as it is now.
    TokenChanged(Option<Box<TokenRecord>>),
    /// The identity's condition failed: the identity as it is now.
    IdentityChanged(Option<Box<IdentityRecord>>),
}

/// What one holder's admission wrote: `remainingUses` right after it and
/// each rate limit's count (in `rates` order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spent {
    pub remaining: Option<u64>,
    pub rate_used: Vec<u32>,
}

impl Admission<'_> {
    /// What the admission leaves, as decided from the standings it is
    /// pinned to: exact for the counts it starts, and otherwise what
    /// remained at most (others may spend between the read and the
    /// write, which a transaction cannot return).
    pub fn as_decided(&self) -> Spent {
        Spent {
            remaining: self
                .uses
                .as_ref()
                .map(|u| u.seen_remaining.saturating_sub(u.cost)),
            rate_used: self.rates.iter().map(|r| r.seen.unwrap_or(0) + 1).collect(),
        }
    }
}

/// One page of an owner's tokens, newest first.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<TokenRecord>,
    /// Position of the last item when more may follow.
    pub next: Option<String>,
}

/// A request to admit one validation: spend its cost in uses, a count of
/// every rate limit and a lease slot, all or nothing in one conditional write, and
/// refresh `lastUsedAt` when it is stale. The write carries every check the
/// item alone decides: it applies only if the token is still at the version
/// the checks were made on (so its secret, `enabled`, window, address
/// binding and limits are the ones checked), a use is left, every window
/// has room and a lease slot is free.
#[derive(Debug, Clone)]
pub struct Admission<'a> {
    pub id: &'a str,
    /// The version the checks were made on.
    pub seen_version: u64,
    /// Uses to spend, when the token counts them.
    pub uses: Option<UsesSpend>,
    /// One count per rate limit of the token.
    pub rates: Vec<RateSpend>,
    /// A lease slot, when acquiring under a cap.
    pub lease: Option<LeaseTake>,
    pub touch: Option<OffsetDateTime>,
}

/// Uses to spend (see `limits::uses`): `cost` of them, from what remains
/// or, when a refill is due, from its `amount` in the same write that
/// resets. A token that refills pins the write to the `refilledAt` seen,
/// so a refill applies once whatever races it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsesSpend {
    pub cost: u64,
    /// The token refills: the last boundary applied as seen (`None`: none).
    pub refills: Option<Option<i64>>,
    /// A refill due: the boundary it records and the amount it resets to.
    pub refill: Option<(i64, u64)>,
    /// What remained when the checks passed (a due refill applied).
    pub seen_remaining: u64,
}

impl UsesSpend {
    /// `cost` uses of `rec`, where they stood when its checks passed.
    pub fn of(limits: &Limits, standing: &UsesStanding, cost: u64) -> UsesSpend {
        UsesSpend {
            cost,
            refills: limits.refill.map(|_| limits.refilled_at),
            refill: standing.refill_due.map(|d| (d.boundary, d.amount)),
            seen_remaining: standing.remaining,
        }
    }

    /// What the spend needs left: its cost, and at least one (an
    /// exhausted holder refuses even a check of cost 0).
    pub fn need(&self) -> u64 {
        self.cost.max(1)
    }
}

/// A lease slot to take (see `limits::leases`): one more lease in `bucket`,
/// and the lapsed buckets seen removed, each only if it still holds the
/// count seen; admitted only while the leases counted stay within `cap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTake {
    pub bucket: i64,
    /// `maxConcurrent` as checked (the version pins it); `None` for a
    /// reserving lease of a token without one, counted under no cap.
    pub cap: Option<u32>,
    pub purge: Vec<(i64, u32)>,
}

impl LeaseTake {
    /// What the ledger's `leaseTotal` must stay below for the take to
    /// apply, under a cap.
    pub fn limit(&self) -> Option<u64> {
        let purged = self.purge.iter().map(|(_, n)| u64::from(*n)).sum::<u64>();
        self.cap.map(|cap| u64::from(cap) + purged)
    }
}

/// A renewal (`to: Some(bucket)`) or a release (`to: None`) of one lease:
/// it moves from the bucket it is in now (its first, from its id, until a
/// renewal or release records another in the lease's own item) to `to`
/// (never earlier), or out of the ledger, in one transaction pinned to
/// where it was; the lapsed buckets seen are removed in the same write,
/// each only if it still holds the count seen.
#[derive(Debug, Clone)]
pub struct LeaseMove<'a> {
    pub id: &'a str,
    pub lease: &'a str,
    pub first_bucket: i64,
    pub to: Option<i64>,
    /// A settling release gives back this many uses (reserved, not used),
    /// never lifting `remainingUses` above `ceiling`: the write is pinned
    /// to `remainingUses` at most `ceiling - refund`.
    pub refund: Option<Refund>,
    /// The same for the token's identity, which the reserve spent too
    /// (its id and refund), in the same transaction.
    pub identity_refund: Option<(&'a str, Refund)>,
    /// A renewal applies only to the version its checks were made on.
    pub seen_version: Option<u64>,
    pub purge: Vec<(i64, u32)>,
    pub now: OffsetDateTime,
}

/// Uses a settling release gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refund {
    pub uses: u64,
    pub ceiling: u64,
}

/// One rate limit's count to spend, in the window the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSpend {
    pub name: String,
    pub limit: u32,
    pub period: u32,
    pub window: i64,
    /// The count read for this window, or `None` when the window starts
    /// over (no count stored, an older window or another period).
    pub seen: Option<u32>,
}

impl From<&Standing> for RateSpend {
    /// The count to spend where the checks found the limit standing.
    fn from(s: &Standing) -> Self {
        RateSpend {
            name: s.name.clone(),
            limit: s.limit,
            period: s.period,
            window: s.window,
            seen: s.used,
        }
    }
}

/// What an admission found.
#[derive(Debug, PartialEq)]
pub enum AdmitOutcome {
    /// Admitted: `remaining` is `remainingUses` right after this use,
    /// `rate_used` each limit's count right after it (in `rates` order).
    Admitted {
        remaining: Option<u64>,
        rate_used: Vec<u32>,
    },
    /// The condition failed: the token as it is now (`None`: it is gone),
    /// to decide again on without another read.
    Changed(Option<Box<TokenRecord>>),
}

/// What a lease move found.
#[derive(Debug, PartialEq, Eq)]
pub enum MoveOutcome {
    /// Renewed into bucket `to`, or released (`to: None`).
    Moved { to: Option<i64> },
    /// The lease is unknown, released or lapsed, or the token is gone.
    Gone,
    /// The token changed since it was read (its version, or a lapsed
    /// bucket to remove): read it again and re-check.
    Stale,
}

/// What a delete by secret found (see `Store::delete_by_secret`).
#[derive(Debug, PartialEq)]
pub enum Deletion {
    /// The token as it was.
    Deleted(Box<TokenRecord>),
    /// Nothing deleted: the token as it is (its current secret is another),
    /// or `None` when there is no such token.
    Kept(Option<Box<TokenRecord>>),
}

/// Position of a record in an owner's list: creation time, then id.
pub fn list_position(rec: &TokenRecord) -> String {
    format!("{:015}#{}", crate::dates::millis(rec.created_at), rec.id)
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Writes a new token (never overwriting) and its audit record, with
    /// its idempotency record in the same atomic write when given.
    async fn put_new(
        &self,
        rec: &TokenRecord,
        idem: Option<&IdempotencyRecord>,
        audit: &AuditRecord,
    ) -> Result<CreateOutcome, StoreError>;
    async fn idempotency(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Strongly consistent read of one token.
    async fn get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Strongly consistent read of several tokens in one request, in the
    /// order asked (a token and the relay credential beside it).
    async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<TokenRecord>>, StoreError>;
    /// One page of the owner's tokens, newest first, after `after`.
    async fn list(
        &self,
        owner: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page, StoreError>;
    /// Writes `new`'s client fields if the token is still at `seen`'s
    /// version (and remaining uses, when `maxUses` changes). A change of
    /// identity moves the token's link in the same write, the new
    /// identity checked to be the owner's. Its audit record is written in
    /// the same transaction.
    async fn replace(
        &self,
        seen: &TokenRecord,
        new: &TokenRecord,
        audit: &AuditRecord,
    ) -> Result<Replaced, StoreError>;
    /// Writes `rolled`'s secrets (current and previous), `start`, version
    /// and `updatedAt` if the token is still at `seen`'s version.
    async fn roll(
        &self,
        seen: &TokenRecord,
        rolled: &TokenRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Deletes the token if it is still at `seen`'s version, with its
    /// audit record (and its identity link) in the same transaction;
    /// `false`: it moved or is gone. Its leases end with it: every lease
    /// call reads the token first.
    async fn delete(&self, seen: &TokenRecord, audit: &AuditRecord) -> Result<bool, StoreError>;
    /// Deletes the token if its current secret is the one whose hash is
    /// `secret_hash`, in one conditional write: a holder's revocation.
    async fn delete_by_secret(&self, id: &str, secret_hash: &str) -> Result<Deletion, StoreError>;
    /// Ends the grace of the token's previous secret (and so of the
    /// capabilities minted under it) if the token is still at `seen`'s
    /// version, moving it to `seen.version + 1`. `false`: it moved.
    async fn end_grace(&self, seen: &TokenRecord, now: OffsetDateTime) -> Result<bool, StoreError>;
    /// Writes `revoked` as the token's revoked capabilities if the token is
    /// still at `seen`'s version, moving it to `seen.version + 1` (so no
    /// admission decided on an older sight of it applies). `false`: it moved.
    async fn revoke_capabilities(
        &self,
        seen: &TokenRecord,
        revoked: &crate::credentials::RevokedCapabilities,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    async fn admit(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError>;
    /// Admits a token and its identity in one atomic write: both spend
    /// (each under its own admission's condition) or neither does.
    async fn admit_joint(
        &self,
        token: &Admission<'_>,
        identity: &Admission<'_>,
    ) -> Result<JointOutcome, StoreError>;
    /// Writes a new identity and claims its `externalId` for its owner in
    /// one atomic write; `false` when the owner already has that `externalId`.
    async fn put_identity(
        &self,
        rec: &IdentityRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Strongly consistent read of one identity.
    async fn get_identity(&self, id: &str) -> Result<Option<IdentityRecord>, StoreError>;
    /// The owner's identity of that `externalId`, if any.
    async fn identity_by_external_id(
        &self,
        owner: &str,
        external_id: &str,
    ) -> Result<Option<IdentityRecord>, StoreError>;
    /// One page of the owner's identities, newest first, after `after`.
    async fn list_identities(
        &self,
        owner: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<IdentityPage, StoreError>;
    /// Writes `new`'s client fields (and remaining uses when they change)
    /// if the identity is still at `seen`'s version. `false`: it moved.
    async fn replace_identity(
        &self,
        seen: &IdentityRecord,
        new: &IdentityRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Deletes the owner's identity unless a token points at it, with its
    /// `externalId`'s claim and its audit record, in one atomic write.
    async fn delete_identity(
        &self,
        id: &str,
        owner: &str,
        audit: &AuditRecord,
    ) -> Result<IdentityDeletion, StoreError>;
    /// One page of the owner's audit records, newest first: a token's or
    /// an identity's history when the query names one, else the owner's.
    async fn audit(&self, owner: &str, q: &AuditQuery) -> Result<AuditPage, StoreError>;
    /// Writes a record of a change the service observed rather than made
    /// (a TTL removal): once, however often it is written (`record.id`
    /// is derived from the change).
    async fn record(&self, record: &AuditRecord) -> Result<(), StoreError>;
    /// Renews or releases a live lease (see `LeaseMove`). A lapsed lease
    /// is `Gone`: its bucket may already have been removed by an acquire.
    async fn move_lease(&self, m: &LeaseMove<'_>) -> Result<MoveOutcome, StoreError>;
    /// Sets `lastUsedAt` to `now` unless it is already at or after `fresh_after`.
    async fn touch(
        &self,
        id: &str,
        now: OffsetDateTime,
        fresh_after: OffsetDateTime,
    ) -> Result<(), StoreError>;
}
