//! What a warm function last saw of the tokens it admitted, so that the
//! next validate of the same token can go straight to its one conditional
//! write. A snapshot is only a guess: the write is conditioned on the
//! version it was checked at and on the limits, so a stale guess fails its
//! condition, which returns the token as it is, and the validate is decided
//! again on that. A guess never refuses and never answers on its own: no
//! positive answer is ever cached.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::identity::IdentityRecord;
use crate::token::TokenRecord;

/// Tokens remembered per function instance; past it the memory starts over
/// (a guess missing costs one read, nothing else).
const CAPACITY: usize = 4096;

#[derive(Default)]
pub struct Snapshots {
    tokens: Mutex<HashMap<String, TokenRecord>>,
    /// The identities of the tokens admitted, guessed the same way.
    identities: Mutex<HashMap<String, IdentityRecord>>,
}

impl Snapshots {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: &str) -> Option<TokenRecord> {
        self.tokens.lock().ok()?.get(id).cloned()
    }

    /// Remembers `rec` if a validate of it spends something (a use, a rate
    /// limit's count, a lease slot); the others need their read anyway.
    pub fn keep(&self, rec: &TokenRecord) {
        // Any validate that may spend: an acquire included.
        let acquire = super::ValidateInput {
            acquire: true,
            ..Default::default()
        };
        let spends = super::admission::spends(rec, &acquire) || rec.identity_id.is_some();
        let Ok(mut tokens) = self.tokens.lock() else {
            return;
        };
        if !spends {
            tokens.remove(&rec.id);
            return;
        }
        if tokens.len() >= CAPACITY && !tokens.contains_key(&rec.id) {
            tokens.clear();
        }
        tokens.insert(rec.id.clone(), rec.clone());
    }

    pub fn identity(&self, id: &str) -> Option<IdentityRecord> {
        self.identities.lock().ok()?.get(id).cloned()
    }

    /// Remembers the identity of a token admitted.
    pub fn keep_identity(&self, rec: &IdentityRecord) {
        let Ok(mut identities) = self.identities.lock() else {
            return;
        };
        if identities.len() >= CAPACITY && !identities.contains_key(&rec.id) {
            identities.clear();
        }
        identities.insert(rec.id.clone(), rec.clone());
    }

    pub fn forget_identity(&self, id: &str) {
        if let Ok(mut identities) = self.identities.lock() {
            identities.remove(id);
        }
    }

    pub fn forget(&self, id: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(id);
        }
    }
}
