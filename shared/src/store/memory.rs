//! An in-memory store with the same semantics as DynamoDB's conditional
//! writes: every operation is atomic under one lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::*;
use crate::audit::{AuditQuery, AuditRecord};
use crate::identity::IdentityRecord;
use crate::limits::{leases, Limits, RateCount};

#[derive(Default)]
struct State {
    tokens: BTreeMap<String, TokenRecord>,
    /// (token id, lease id) → the bucket a renewal or release last moved
    /// the lease to (0: released), as DynamoDB's lease items.
    lease_moves: HashMap<(String, String), i64>,
    idempotency: HashMap<String, IdempotencyRecord>,
    identities: BTreeMap<String, IdentityRecord>,
    /// (owner, externalId) → identity id: the claim that keeps it unique.
    external_ids: HashMap<(String, String), String>,
    /// The audit trail, in the order written.
    audit: Vec<AuditRecord>,
}

impl State {
    /// Whether `id` names an identity of `owner`.
    fn owns_identity(&self, owner: &str, id: Option<&str>) -> bool {
        id.is_none_or(|id| self.identities.get(id).is_some_and(|i| i.owner == owner))
    }
}

/// Whether `limits` still meet an admission's conditions: the same as
/// DynamoDB's (see `dynamo::admit`).
fn limits_hold(l: &Limits, a: &Admission<'_>) -> bool {
    let uses_ok = a.uses.as_ref().is_none_or(|u| {
        let pinned = u.refills.is_none_or(|seen| l.refilled_at == seen);
        pinned && (u.refill.is_some() || l.remaining_uses.unwrap_or(0) >= u.need())
    });
    let rates_ok = a.rates.iter().all(|r| {
        let stored = l.rate_counts.get(&r.name);
        match r.seen {
            Some(_) => stored
                .is_some_and(|c| c.period == r.period && c.window == r.window && c.count < r.limit),
            None => stored.is_none_or(|c| c.period != r.period || c.window < r.window),
        }
    });
    uses_ok && rates_ok
}

/// Whether the token still meets its admission's conditions: its
/// version, its limits and a lease slot (as DynamoDB's, see `dynamo::admit`).
fn token_holds(t: &TokenRecord, a: &Admission<'_>) -> bool {
    let lease_ok = a.lease.as_ref().is_none_or(|l| {
        l.limit()
            .is_none_or(|limit| u64::from(t.leases.held()) < limit)
            && t.leases.still_holds(&l.purge)
    });
    t.version == a.seen_version && limits_hold(&t.limits, a) && lease_ok
}

/// Writes an admission to the token: its uses and counts, a lease slot,
/// `lastUsedAt`; what it wrote of the limits.
fn admit_token(t: &mut TokenRecord, a: &Admission<'_>) -> Spent {
    let spent = spend(&mut t.limits, a);
    if let Some(l) = &a.lease {
        t.leases.take(l.bucket, &l.purge);
    }
    if let Some(now) = a.touch {
        t.last_used_at = Some(now);
    }
    spent
}

/// Spends an admission's uses and counts from `l`: what it wrote.
fn spend(l: &mut Limits, a: &Admission<'_>) -> Spent {
    if let Some(u) = &a.uses {
        let from = match u.refill {
            Some((boundary, amount)) => {
                l.refilled_at = Some(boundary);
                amount
            }
            None => l.remaining_uses.unwrap_or(0),
        };
        l.remaining_uses = Some(from.saturating_sub(u.cost));
    }
    let mut rate_used = Vec::with_capacity(a.rates.len());
    for r in &a.rates {
        let fresh = RateCount {
            period: r.period,
            window: r.window,
            count: 0,
        };
        let count = l.rate_counts.entry(r.name.clone()).or_insert(fresh);
        if r.seen.is_none() {
            *count = fresh; // a new window starts over
        }
        count.count += 1;
        rate_used.push(count.count);
    }
    Spent {
        remaining: l.remaining_uses,
        rate_used,
    }
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `change` to the token if it is still at `seen`'s version,
    /// moving it to the next one, as DynamoDB's version-pinned updates do.
    fn change_at_version(
        &self,
        seen: &TokenRecord,
        now: OffsetDateTime,
        change: impl FnOnce(&mut TokenRecord),
    ) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        match s.tokens.get_mut(&seen.id) {
            Some(cur) if cur.version == seen.version => {
                change(cur);
                cur.version = seen.version + 1;
                cur.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Internal("memory store lock poisoned".into()))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put_new(
        &self,
        rec: &TokenRecord,
        idem: Option<&IdempotencyRecord>,
        audit: &AuditRecord,
    ) -> Result<CreateOutcome, StoreError> {
        let mut s = self.lock()?;
        if let Some(i) = idem {
            if let Some(existing) = s.idempotency.get(&i.key) {
                if existing.expires_at > rec.created_at.unix_timestamp() {
                    // This very create, sent again, is not a replay of itself.
                    if existing.token_id == rec.id {
                        return Ok(CreateOutcome::Created);
                    }
                    return Ok(CreateOutcome::Replay(existing.clone()));
                }
            }
        }
        if !s.owns_identity(&rec.owner, rec.identity_id.as_deref()) {
            return Ok(CreateOutcome::NoSuchIdentity);
        }
        match s.tokens.get(&rec.id) {
            // The same write sent again (DynamoDB's store recognises it too).
            Some(t) if t.secret_hash == rec.secret_hash => return Ok(CreateOutcome::Created),
            Some(_) => return Err(StoreError::Internal("token id collision".into())),
            None => {}
        }
        s.tokens.insert(rec.id.clone(), rec.clone());
        if let Some(i) = idem {
            s.idempotency.insert(i.key.clone(), i.clone());
        }
        s.audit.push(audit.clone());
        Ok(CreateOutcome::Created)
    }

    async fn idempotency(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self
            .lock()?
            .idempotency
            .get(key)
            .filter(|r| r.expires_at > now)
            .cloned())
    }

    async fn get(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.lock()?.tokens.get(id).cloned())
    }

    async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<TokenRecord>>, StoreError> {
        let s = self.lock()?;
        Ok(ids.iter().map(|id| s.tokens.get(*id).cloned()).collect())
    }

    async fn list(
        &self,
        owner: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page, StoreError> {
        let s = self.lock()?;
        let mut mine: Vec<(String, &TokenRecord)> = s
            .tokens
            .values()
            .filter(|t| t.owner == owner)
            .map(|t| (list_position(t), t))
            .filter(|(p, _)| after.is_none_or(|a| p.as_str() < a))
            .collect();
        mine.sort_by(|a, b| b.0.cmp(&a.0));
        let more = mine.len() > limit;
        mine.truncate(limit);
        let next = if more {
            mine.last().map(|(p, _)| p.clone())
        } else {
            None
        };
        Ok(Page {
            items: mine.into_iter().map(|(_, t)| t.clone()).collect(),
            next,
        })
    }

    async fn replace(
        &self,
        seen: &TokenRecord,
        new: &TokenRecord,
        audit: &AuditRecord,
    ) -> Result<Replaced, StoreError> {
        let mut s = self.lock()?;
        if new.identity_id != seen.identity_id
            && !s.owns_identity(&new.owner, new.identity_id.as_deref())
        {
            return Ok(Replaced::NoSuchIdentity);
        }
        let Some(cur) = s.tokens.get_mut(&seen.id) else {
            return Ok(Replaced::Moved);
        };
        let uses_change = seen.limits.uses_differ(&new.limits);
        let spent_since = (cur.limits.remaining_uses, cur.limits.refilled_at)
            != (seen.limits.remaining_uses, seen.limits.refilled_at);
        if cur.version != seen.version || (uses_change && spent_since) {
            return Ok(Replaced::Moved);
        }
        let (last_used, remaining, refilled_at) = (
            cur.last_used_at,
            cur.limits.remaining_uses,
            cur.limits.refilled_at,
        );
        let counts = std::mem::take(&mut cur.limits.rate_counts);
        let leases = std::mem::take(&mut cur.leases);
        *cur = new.clone();
        cur.limits.rate_counts = counts;
        cur.leases = leases;
        cur.last_used_at = last_used;
        if !uses_change {
            (cur.limits.remaining_uses, cur.limits.refilled_at) = (remaining, refilled_at);
        }
        s.audit.push(audit.clone());
        Ok(Replaced::Done)
    }

    async fn roll(
        &self,
        seen: &TokenRecord,
        rolled: &TokenRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let State {
            tokens,
            audit: trail,
            ..
        } = &mut *s;
        match tokens.get_mut(&seen.id) {
            Some(cur) if cur.version == seen.version => {
                cur.secret_hash = rolled.secret_hash.clone();
                cur.prev_secret_hash = rolled.prev_secret_hash.clone();
                cur.prev_secret_expires_at = rolled.prev_secret_expires_at;
                cur.secret_generation = rolled.secret_generation;
                cur.start = rolled.start.clone();
                cur.version = rolled.version;
                cur.updated_at = rolled.updated_at;
                trail.push(audit.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete(&self, seen: &TokenRecord, audit: &AuditRecord) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        if s.tokens
            .get(&seen.id)
            .is_some_and(|t| t.version == seen.version)
        {
            s.tokens.remove(&seen.id);
            s.audit.push(audit.clone());
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn delete_by_secret(&self, id: &str, secret_hash: &str) -> Result<Deletion, StoreError> {
        let mut s = self.lock()?;
        match s.tokens.get(id) {
            Some(t) if t.secret_hash == secret_hash => match s.tokens.remove(id) {
                Some(t) => Ok(Deletion::Deleted(Box::new(t))),
                None => Ok(Deletion::Kept(None)),
            },
            found => Ok(Deletion::Kept(found.cloned().map(Box::new))),
        }
    }

    async fn end_grace(&self, seen: &TokenRecord, now: OffsetDateTime) -> Result<bool, StoreError> {
        self.change_at_version(seen, now, |cur| {
            cur.prev_secret_hash = None;
            cur.prev_secret_expires_at = None;
        })
    }

    async fn revoke_capabilities(
        &self,
        seen: &TokenRecord,
        revoked: &crate::credentials::RevokedCapabilities,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.change_at_version(seen, now, |cur| cur.revoked_capabilities = revoked.clone())
    }

    async fn admit(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError> {
        let mut s = self.lock()?;
        let Some(t) = s.tokens.get_mut(a.id) else {
            return Ok(AdmitOutcome::Changed(None));
        };
        if !token_holds(t, a) {
            return Ok(AdmitOutcome::Changed(Some(Box::new(t.clone()))));
        }
        let spent = admit_token(t, a);
        Ok(AdmitOutcome::Admitted {
            remaining: spent.remaining,
            rate_used: spent.rate_used,
        })
    }

    async fn admit_joint(
        &self,
        token: &Admission<'_>,
        identity: &Admission<'_>,
    ) -> Result<JointOutcome, StoreError> {
        let mut s = self.lock()?;
        let State {
            tokens, identities, ..
        } = &mut *s;
        let Some(t) = tokens.get_mut(token.id) else {
            return Ok(JointOutcome::TokenChanged(None));
        };
        if !token_holds(t, token) {
            return Ok(JointOutcome::TokenChanged(Some(Box::new(t.clone()))));
        }
        let Some(i) = identities.get_mut(identity.id) else {
            return Ok(JointOutcome::IdentityChanged(None));
        };
        if i.version != identity.seen_version || !limits_hold(&i.limits, identity) {
            return Ok(JointOutcome::IdentityChanged(Some(Box::new(i.clone()))));
        }
        admit_token(t, token);
        spend(&mut i.limits, identity);
        // As DynamoDB's transaction answers: what the admission decided.
        Ok(JointOutcome::Admitted {
            token: token.as_decided(),
            identity: identity.as_decided(),
        })
    }

    async fn put_identity(
        &self,
        rec: &IdentityRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let claim = (rec.owner.clone(), rec.external_id.clone());
        match s.external_ids.get(&claim) {
            // The same write sent again.
            Some(id) if *id == rec.id => return Ok(true),
            Some(_) => return Ok(false),
            None => {}
        }
        s.external_ids.insert(claim, rec.id.clone());
        s.identities.insert(rec.id.clone(), rec.clone());
        s.audit.push(audit.clone());
        Ok(true)
    }

    async fn get_identity(&self, id: &str) -> Result<Option<IdentityRecord>, StoreError> {
        Ok(self.lock()?.identities.get(id).cloned())
    }

    async fn identity_by_external_id(
        &self,
        owner: &str,
        external_id: &str,
    ) -> Result<Option<IdentityRecord>, StoreError> {
        let s = self.lock()?;
        let claim = (owner.to_owned(), external_id.to_owned());
        Ok(s.external_ids
            .get(&claim)
            .and_then(|id| s.identities.get(id))
            .cloned())
    }

    async fn list_identities(
        &self,
        owner: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<IdentityPage, StoreError> {
        let s = self.lock()?;
        let mut mine: Vec<(String, &IdentityRecord)> = s
            .identities
            .values()
            .filter(|i| i.owner == owner)
            .map(|i| (crate::identity::list_position(i), i))
            .filter(|(p, _)| after.is_none_or(|a| p.as_str() < a))
            .collect();
        mine.sort_by(|a, b| b.0.cmp(&a.0));
        let more = mine.len() > limit;
        mine.truncate(limit);
        let next = more.then(|| mine.last().map(|(p, _)| p.clone())).flatten();
        Ok(IdentityPage {
            items: mine.into_iter().map(|(_, i)| i.clone()).collect(),
            next,
        })
    }

    async fn replace_identity(
        &self,
        seen: &IdentityRecord,
        new: &IdentityRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let State {
            identities,
            audit: trail,
            ..
        } = &mut *s;
        let Some(cur) = identities.get_mut(&seen.id) else {
            return Ok(false);
        };
        let uses_change = seen.limits.uses_differ(&new.limits);
        let spent_since = (cur.limits.remaining_uses, cur.limits.refilled_at)
            != (seen.limits.remaining_uses, seen.limits.refilled_at);
        if cur.version != seen.version || (uses_change && spent_since) {
            return Ok(false);
        }
        let kept = cur.limits.clone();
        *cur = new.clone();
        cur.limits.rate_counts = kept.rate_counts;
        if !uses_change {
            (cur.limits.remaining_uses, cur.limits.refilled_at) =
                (kept.remaining_uses, kept.refilled_at);
        }
        trail.push(audit.clone());
        Ok(true)
    }

    async fn delete_identity(
        &self,
        id: &str,
        owner: &str,
        audit: &AuditRecord,
    ) -> Result<IdentityDeletion, StoreError> {
        let mut s = self.lock()?;
        let Some(rec) = s.identities.get(id).filter(|i| i.owner == owner) else {
            return Ok(IdentityDeletion::NotFound);
        };
        let claim = (rec.owner.clone(), rec.external_id.clone());
        if s.tokens
            .values()
            .any(|t| t.identity_id.as_deref() == Some(id))
        {
            return Ok(IdentityDeletion::InUse);
        }
        s.identities.remove(id);
        s.external_ids.remove(&claim);
        s.audit.push(audit.clone());
        Ok(IdentityDeletion::Deleted)
    }

    async fn record(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if !s.audit.iter().any(|r| r.id == record.id) {
            s.audit.push(record.clone());
        }
        Ok(())
    }

    async fn audit(&self, owner: &str, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        let s = self.lock()?;
        let mut mine: Vec<(String, &AuditRecord)> = s
            .audit
            .iter()
            .filter(|r| r.actor.owner == owner)
            .filter(|r| q.target().is_none_or(|t| r.target.id() == t))
            .filter(|r| q.since.is_none_or(|since| r.at >= since))
            .map(|r| (r.position(), r))
            .filter(|(p, _)| q.after.as_deref().is_none_or(|a| p.as_str() < a))
            .collect();
        mine.sort_by(|a, b| b.0.cmp(&a.0));
        // As DynamoDB's: a page is `limit` records read, the action
        // filtered after.
        let more = mine.len() > q.limit;
        mine.truncate(q.limit);
        let next = more.then(|| mine.last().map(|(p, _)| p.clone())).flatten();
        Ok(AuditPage {
            records: mine
                .into_iter()
                .filter(|(_, r)| q.action.is_none_or(|a| r.action == a))
                .map(|(_, r)| r.clone())
                .collect(),
            next,
        })
    }

    async fn move_lease(&self, m: &LeaseMove<'_>) -> Result<MoveOutcome, StoreError> {
        let mut s = self.lock()?;
        let State {
            tokens,
            lease_moves,
            identities,
            ..
        } = &mut *s;
        let key = (m.id.to_owned(), m.lease.to_owned());
        let from = lease_moves.get(&key).copied().unwrap_or(m.first_bucket);
        if !leases::is_live(from, m.now) {
            return Ok(MoveOutcome::Gone); // released (0) or lapsed
        }
        // The same conditions as DynamoDB's (see `dynamo::admit`).
        let Some(t) = tokens.get_mut(m.id) else {
            return Ok(MoveOutcome::Gone);
        };
        if let Some((id, r)) = m.identity_refund {
            let room = identities.get(id).is_some_and(|i| {
                i.limits.remaining_uses.unwrap_or(0) <= r.ceiling.saturating_sub(r.uses)
            });
            if !room {
                return Ok(MoveOutcome::Stale);
            }
        }
        if m.seen_version.is_some_and(|v| v != t.version) {
            return Ok(MoveOutcome::Stale);
        }
        if t.leases.count_in(from) == 0 {
            return Ok(MoveOutcome::Gone);
        }
        if !t.leases.still_holds(&m.purge) {
            return Ok(MoveOutcome::Stale);
        }
        if let Some(r) = m.refund {
            let remaining = t.limits.remaining_uses.unwrap_or(0);
            if remaining > r.ceiling.saturating_sub(r.uses) {
                return Ok(MoveOutcome::Stale);
            }
            t.limits.remaining_uses = Some(remaining + r.uses);
        }
        if let Some((id, r)) = m.identity_refund {
            if let Some(identity) = identities.get_mut(id) {
                let remaining = identity.limits.remaining_uses.unwrap_or(0);
                identity.limits.remaining_uses = Some(remaining + r.uses);
            }
        }
        let to = m.to.map(|to| to.max(from));
        t.leases.purge(&m.purge);
        t.leases.shift(from, to);
        lease_moves.insert(key, to.unwrap_or(0));
        Ok(MoveOutcome::Moved { to })
    }

    async fn touch(
        &self,
        id: &str,
        now: OffsetDateTime,
        fresh_after: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if let Some(t) = s.tokens.get_mut(id) {
            if t.last_used_at.is_none_or(|l| l < fresh_after) {
                t.last_used_at = Some(now);
            }
        }
        Ok(())
    }
}
