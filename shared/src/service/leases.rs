//! The lease calls: `PUT /validate/leases/{leaseId}` renews a live lease,
//! `DELETE` releases one. The token that took the lease is the credential.

use super::{App, Result};
use crate::dates;
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::store::RenewOutcome;
use crate::token::{Keyring, LeaseId};
use crate::validate::{self, admission, answer, checks, Presented, Reason};

impl App {
    /// A renewal is refused (404) unless the lease is live and the token
    /// would still validate: enabled, inside its window, from an allowed
    /// address, and holding no more leases than its (perhaps lowered) cap.
    pub(super) async fn renew(&self, req: &ApiRequest, lease: &str) -> Result<ApiResponse> {
        let input = validate::input::decode_input(req)?;
        let keyring = self.keyring_for_input(&input).await;
        let lease = lease_of(&keyring, &input, lease)?;
        for _ in 0..4 {
            let now = dates::now();
            let Presented {
                id, rec, address, ..
            } = validate::presented(&keyring, self.store.as_ref(), &input, req.source_ip, now)
                .await?
                .map_err(|_| ApiError::NotFound)?;
            checks::check_standing(&rec, address, now).map_err(|_| ApiError::NotFound)?;
            let now_ms = dates::millis(now);
            let expiry = now_ms + self.config.lease_seconds * 1000;
            let outcome = self
                .store
                .renew(id.as_str(), lease.as_str(), now_ms, expiry, rec.version)
                .await?;
            match outcome {
                RenewOutcome::Renewed => {
                    let doc =
                        serde_json::json!({ "lease": answer::lease_document(&lease, expiry) });
                    return Ok(ApiResponse::document(200, req.format(), "validation", &doc));
                }
                RenewOutcome::Gone => return Err(ApiError::NotFound),
                RenewOutcome::Moved => continue,
                // Lapsed leases may still count: free them and look again.
                RenewOutcome::OverCap => {
                    if !admission::reclaim_lapsed(self.store.as_ref(), &id).await? {
                        return Err(ApiError::NotFound);
                    }
                }
            }
        }
        Err(ApiError::NotFound)
    }

    pub(super) async fn release(&self, req: &ApiRequest, lease: &str) -> Result<ApiResponse> {
        let input = validate::input::decode_input(req)?;
        let keyring = self.keyring_for_input(&input).await;
        let lease = lease_of(&keyring, &input, lease)?;
        let now = dates::now();
        let found =
            validate::presented(&keyring, self.store.as_ref(), &input, req.source_ip, now).await?;
        match found {
            Ok(Presented { id, .. }) => {
                self.store.release(id.as_str(), lease.as_str()).await?;
                Ok(ApiResponse::empty(204))
            }
            // The token is gone, and its leases with it.
            Err(Reason::NotFound) => Ok(ApiResponse::empty(204)),
            Err(_) => Err(ApiError::NotFound),
        }
    }
}

/// The lease id, if it was issued to the presented token: 404 for a
/// malformed token or a foreign lease id, without a read.
fn lease_of(keyring: &Keyring, input: &validate::ValidateInput, lease: &str) -> Result<LeaseId> {
    let text = input.token.as_deref().unwrap_or_default();
    let parsed = keyring.parse_token(text).ok_or(ApiError::NotFound)?;
    LeaseId::parse(lease)
        .filter(|l| keyring.lease_belongs_to(&parsed.id, l))
        .ok_or(ApiError::NotFound)
}
