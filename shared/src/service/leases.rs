//! The lease calls: `PUT /validate/leases/{leaseId}` renews a live lease,
//! `DELETE` releases one. The token that took the lease is the credential.

use super::{App, Result};
use crate::dates;
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::store::{LeaseMove, MoveOutcome, StoreError};
use crate::token::{leases, Keyring, LeaseId};
use crate::validate::{self, answer, checks, Presented, Reason};

impl App {
    /// A renewal is refused (404) unless the lease is live and the token
    /// would still validate: enabled, inside its window, from an allowed
    /// address, and holding no more live leases than its (perhaps lowered)
    /// cap. It moves the lease to the bucket `TOLLGATE_LEASE_SECONDS` from
    /// now (see `token::leases`).
    pub(super) async fn renew(&self, req: &ApiRequest, lease: &str) -> Result<ApiResponse> {
        let input = validate::input::decode_input(req)?;
        let keyring = self.keyring_for_input(&input).await;
        let (issuer, store) = (&self.config.issuer, self.store.as_ref());
        let lease = lease_of(&keyring, issuer, &input, lease)?;
        for _ in 0..4 {
            let now = dates::now();
            let Presented {
                id,
                rec,
                address,
                capability,
                ..
            } = validate::presented(&keyring, issuer, store, &input, req.source_ip, now)
                .await?
                .map_err(|_| ApiError::NotFound)?;
            checks::check_standing(&rec, address, now).map_err(|_| ApiError::NotFound)?;
            if capability.is_some_and(|c| !c.allows_address(address)) {
                return Err(ApiError::NotFound);
            }
            if rec
                .max_concurrent
                .is_none_or(|cap| rec.leases.live(now) > cap)
            {
                return Err(ApiError::NotFound);
            }
            let to = leases::bucket_for(now, self.config.lease_seconds);
            let renewal = LeaseMove {
                id: id.as_str(),
                lease: lease.as_str(),
                first_bucket: lease.first_bucket(),
                to: Some(to),
                seen_version: Some(rec.version),
                purge: rec.leases.lapsed(now),
                now,
            };
            match self.store.move_lease(&renewal).await? {
                MoveOutcome::Moved { to } => {
                    let expiry = to.unwrap_or_default() * 1000;
                    let doc =
                        serde_json::json!({ "lease": answer::lease_document(&lease, expiry) });
                    return Ok(ApiResponse::document(200, req.format(), "validation", &doc));
                }
                MoveOutcome::Gone => return Err(ApiError::NotFound),
                MoveOutcome::Stale => continue,
            }
        }
        Err(ApiError::NotFound)
    }

    pub(super) async fn release(&self, req: &ApiRequest, lease: &str) -> Result<ApiResponse> {
        let input = validate::input::decode_input(req)?;
        let keyring = self.keyring_for_input(&input).await;
        let (issuer, store) = (&self.config.issuer, self.store.as_ref());
        let lease = lease_of(&keyring, issuer, &input, lease)?;
        for _ in 0..4 {
            let now = dates::now();
            let found =
                validate::presented(&keyring, issuer, store, &input, req.source_ip, now).await?;
            let rec = match found {
                Ok(Presented { rec, .. }) => rec,
                // The token is gone, and its leases with it.
                Err(Reason::NotFound) => return Ok(ApiResponse::empty(204)),
                Err(_) => return Err(ApiError::NotFound),
            };
            let release = LeaseMove {
                id: &rec.id,
                lease: lease.as_str(),
                first_bucket: lease.first_bucket(),
                to: None,
                seen_version: None,
                purge: rec.leases.lapsed(now),
                now,
            };
            match self.store.move_lease(&release).await? {
                // Gone (already released, or lapsed) answers the same.
                MoveOutcome::Moved { .. } | MoveOutcome::Gone => {
                    return Ok(ApiResponse::empty(204))
                }
                MoveOutcome::Stale => continue,
            }
        }
        Err(StoreError::Unavailable("the token kept changing during a release".into()).into())
    }
}

/// The lease id, if it was issued to the presented token (or to a
/// capability's parent): 404 for a malformed credential or a foreign lease
/// id, without a read.
fn lease_of(
    keyring: &Keyring,
    issuer: &str,
    input: &validate::ValidateInput,
    lease: &str,
) -> Result<LeaseId> {
    let text = input.token.as_deref().unwrap_or_default();
    let credential = validate::credential(keyring, issuer, text, dates::now())
        .map_err(|_| ApiError::NotFound)?;
    LeaseId::parse(lease)
        .filter(|l| keyring.lease_belongs_to(credential.id(), l))
        .ok_or(ApiError::NotFound)
}
