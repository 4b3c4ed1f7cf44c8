//! An in-memory store with the same semantics as DynamoDB's conditional
//! writes: every operation is atomic under one lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::*;
use crate::token::RateCount;

#[derive(Default)]
struct State {
    tokens: BTreeMap<String, TokenRecord>,
    /// Token id → lease id → expiry (unix ms), as DynamoDB's lease items.
    leases: HashMap<String, BTreeMap<String, i64>>,
    idempotency: HashMap<String, IdempotencyRecord>,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
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
    ) -> Result<CreateOutcome, StoreError> {
        let mut s = self.lock()?;
        if let Some(i) = idem {
            if let Some(existing) = s.idempotency.get(&i.key) {
                if existing.expires_at > rec.created_at.unix_timestamp() {
                    return Ok(CreateOutcome::Replay(existing.clone()));
                }
            }
        }
        if s.tokens.contains_key(&rec.id) {
            return Err(StoreError::Internal("token id collision".into()));
        }
        let mut stored = rec.clone();
        stored.active_leases = None; // counted on reading, as DynamoDB does
        s.tokens.insert(rec.id.clone(), stored);
        if let Some(i) = idem {
            s.idempotency.insert(i.key.clone(), i.clone());
        }
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

    async fn replace(&self, seen: &TokenRecord, new: &TokenRecord) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let Some(cur) = s.tokens.get_mut(&seen.id) else {
            return Ok(false);
        };
        let uses_change = seen.max_uses != new.max_uses;
        if cur.version != seen.version || (uses_change && cur.remaining_uses != seen.remaining_uses)
        {
            return Ok(false);
        }
        let (lease_count, last_used, remaining) =
            (cur.lease_count, cur.last_used_at, cur.remaining_uses);
        let counts = std::mem::take(&mut cur.rate_counts);
        *cur = new.clone();
        cur.rate_counts = counts;
        cur.lease_count = lease_count;
        cur.active_leases = None;
        cur.last_used_at = last_used;
        if !uses_change {
            cur.remaining_uses = remaining;
        }
        Ok(true)
    }

    async fn roll(&self, seen: &TokenRecord, rolled: &TokenRecord) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        match s.tokens.get_mut(&seen.id) {
            Some(cur) if cur.version == seen.version => {
                cur.secret_hash = rolled.secret_hash.clone();
                cur.prev_secret_hash = rolled.prev_secret_hash.clone();
                cur.prev_secret_expires_at = rolled.prev_secret_expires_at;
                cur.start = rolled.start.clone();
                cur.version = rolled.version;
                cur.updated_at = rolled.updated_at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        if s.tokens.get(id).is_some_and(|t| t.owner == owner) {
            s.tokens.remove(id);
            s.leases.remove(id);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn admit(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError> {
        let mut s = self.lock()?;
        let State { tokens, leases, .. } = &mut *s;
        let Some(t) = tokens.get_mut(a.id) else {
            return Ok(AdmitOutcome::Changed(None));
        };
        // The same condition as DynamoDB's (see `dynamo::admit`): a lease
        // is taken by a transaction, which pins the counts it read.
        let pinned = a.lease.is_some();
        let uses_ok = !a.consume_use
            || (t.remaining_uses.unwrap_or(0) > 0
                && (!pinned || t.remaining_uses == a.seen_remaining));
        let rates_ok = a.rates.iter().all(|r| {
            let stored = t.rate_counts.get(&r.name);
            match r.seen {
                Some(seen) => stored.is_some_and(|c| {
                    c.period == r.period
                        && c.window == r.window
                        && c.count < r.limit
                        && (!pinned || c.count == seen)
                }),
                None => stored.is_none_or(|c| c.period != r.period || c.window < r.window),
            }
        });
        let lease_ok = a.lease.is_none() || t.lease_count < t.max_concurrent.unwrap_or(0);
        if t.version != a.seen_version || !uses_ok || !rates_ok || !lease_ok {
            let mut now = t.clone();
            now.active_leases = None;
            return Ok(AdmitOutcome::Changed(Some(Box::new(now))));
        }
        if a.consume_use {
            t.remaining_uses = t.remaining_uses.map(|r| r - 1);
        }
        let mut rate_used = Vec::with_capacity(a.rates.len());
        for r in &a.rates {
            let fresh = RateCount {
                period: r.period,
                window: r.window,
                count: 0,
            };
            let count = t.rate_counts.entry(r.name.clone()).or_insert(fresh);
            if r.seen.is_none() {
                *count = fresh; // a new window starts over
            }
            count.count += 1;
            rate_used.push(count.count);
        }
        if let Some((lease, expiry)) = a.lease {
            t.lease_count += 1;
            leases
                .entry(t.id.clone())
                .or_default()
                .insert(lease.to_owned(), expiry);
        }
        if let Some(now) = a.touch {
            t.last_used_at = Some(now);
        }
        Ok(AdmitOutcome::Admitted {
            remaining: t.remaining_uses,
            rate_used,
        })
    }

    async fn leases(&self, id: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let s = self.lock()?;
        Ok(s.leases
            .get(id)
            .map(|l| l.iter().map(|(k, e)| (k.clone(), *e)).collect())
            .unwrap_or_default())
    }

    async fn reclaim(&self, id: &str, lapsed: &[(String, i64)]) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let State { tokens, leases, .. } = &mut *s;
        let (Some(t), Some(held)) = (tokens.get_mut(id), leases.get_mut(id)) else {
            return Ok(false);
        };
        if !lapsed.iter().all(|(l, e)| held.get(l) == Some(e)) {
            return Ok(false);
        }
        for (l, _) in lapsed {
            held.remove(l);
        }
        t.lease_count = t.lease_count.saturating_sub(lapsed.len() as u32);
        Ok(true)
    }

    async fn renew(
        &self,
        id: &str,
        lease: &str,
        now_ms: i64,
        new_expiry: i64,
        seen_version: u64,
    ) -> Result<RenewOutcome, StoreError> {
        let mut s = self.lock()?;
        let State { tokens, leases, .. } = &mut *s;
        let Some(t) = tokens.get(id) else {
            return Ok(RenewOutcome::Gone);
        };
        if t.version != seen_version {
            return Ok(RenewOutcome::Moved);
        }
        if t.lease_count > t.max_concurrent.unwrap_or(0) {
            return Ok(RenewOutcome::OverCap);
        }
        match leases.get_mut(id).and_then(|l| l.get_mut(lease)) {
            Some(exp) if *exp > now_ms => {
                *exp = new_expiry;
                Ok(RenewOutcome::Renewed)
            }
            _ => Ok(RenewOutcome::Gone),
        }
    }

    async fn release(&self, id: &str, lease: &str) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let State { tokens, leases, .. } = &mut *s;
        let removed = leases.get_mut(id).and_then(|l| l.remove(lease)).is_some();
        if removed {
            if let Some(t) = tokens.get_mut(id) {
                t.lease_count = t.lease_count.saturating_sub(1);
            }
        }
        Ok(removed)
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
