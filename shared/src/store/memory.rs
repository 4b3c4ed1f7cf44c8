//! An in-memory store with the same semantics as DynamoDB's conditional
//! writes: every operation is atomic under one lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::*;

#[derive(Default)]
struct State {
    tokens: BTreeMap<String, TokenRecord>,
    last_use: HashMap<String, String>,
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
        s.tokens.insert(rec.id.clone(), rec.clone());
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
        let (leases, last_used, remaining) =
            (cur.leases.clone(), cur.last_used_at, cur.remaining_uses);
        *cur = new.clone();
        cur.leases = leases;
        cur.last_used_at = last_used;
        if !uses_change {
            cur.remaining_uses = remaining;
        }
        Ok(true)
    }

    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        if s.tokens.get(id).is_some_and(|t| t.owner == owner) {
            s.tokens.remove(id);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn admit(&self, a: &Admission<'_>) -> Result<AdmitOutcome, StoreError> {
        let mut s = self.lock()?;
        let already = s.last_use.get(a.id).is_some_and(|u| u == a.attempt_id);
        let Some(t) = s.tokens.get_mut(a.id) else {
            return Ok(AdmitOutcome::NotFound);
        };
        if already {
            return Ok(AdmitOutcome::Admitted {
                remaining: t.remaining_uses,
            });
        }
        if a.consume_use && t.remaining_uses.unwrap_or(0) == 0 {
            return Ok(AdmitOutcome::Exhausted);
        }
        if let Some((lease, expiry)) = a.lease {
            if t.leases.contains_key(lease) {
                return Ok(AdmitOutcome::Admitted {
                    remaining: t.remaining_uses,
                });
            }
            let cap = t.max_concurrent.map_or(0, |c| c as usize);
            if t.leases.len() >= cap {
                return Ok(AdmitOutcome::Limit(Box::new(t.clone())));
            }
            t.leases.insert(lease.to_owned(), expiry);
        }
        if a.consume_use {
            t.remaining_uses = t.remaining_uses.map(|r| r - 1);
        }
        if let Some(now) = a.touch {
            t.last_used_at = Some(now);
        }
        let remaining = t.remaining_uses;
        s.last_use.insert(a.id.to_owned(), a.attempt_id.to_owned());
        Ok(AdmitOutcome::Admitted { remaining })
    }

    async fn reclaim(&self, id: &str, lapsed: &[(String, i64)]) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let Some(t) = s.tokens.get_mut(id) else {
            return Ok(false);
        };
        if !lapsed.iter().all(|(l, e)| t.leases.get(l) == Some(e)) {
            return Ok(false);
        }
        for (l, _) in lapsed {
            t.leases.remove(l);
        }
        Ok(true)
    }

    async fn renew(
        &self,
        id: &str,
        lease: &str,
        now_ms: i64,
        new_expiry: i64,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        match s.tokens.get_mut(id).and_then(|t| t.leases.get_mut(lease)) {
            Some(exp) if *exp > now_ms => {
                *exp = new_expiry;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, id: &str, lease: &str) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        Ok(s.tokens
            .get_mut(id)
            .and_then(|t| t.leases.remove(lease))
            .is_some())
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
