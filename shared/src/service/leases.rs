//! The lease calls: `PUT /validate/leases/{leaseId}` renews a live lease,
//! `DELETE` releases one. The token that took the lease is the credential.

use super::{App, Result};
use crate::credentials::Keyring;
use crate::dates;
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::limits::leases;
use crate::limits::Limits;
use crate::store::{LeaseMove, MoveOutcome, Refund, StoreError};
use crate::token::LeaseId;
use crate::validate::{self, answer, checks, Presented, Reason};

impl App {
    /// A renewal is refused (404) unless the lease is live and the token
    /// would still validate: enabled, inside its window, from an allowed
    /// address, and holding no more live leases than its (perhaps lowered)
    /// cap. It moves the lease to the bucket `TOLLGATE_LEASE_SECONDS` from
    /// now (see `limits::leases`).
    pub(super) async fn renew(&self, req: &ApiRequest, lease: &str) -> Result<ApiResponse> {
        let input = validate::input::decode_input(req)?;
        input.refuse_used()?;
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
            // A lowered cap: the leases above it are not renewed.
            if rec
                .max_concurrent
                .is_some_and(|cap| rec.leases.live(now) > cap)
            {
                return Err(ApiError::NotFound);
            }
            let to = leases::bucket_for(now, self.config.lease_seconds);
            let renewal = LeaseMove {
                id: id.as_str(),
                lease: lease.as_str(),
                first_bucket: lease.first_bucket(),
                to: Some(to),
                refund: None,
                identity_refund: None,
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

    /// A release frees the lease's slot; with `used`, it settles the
    /// lease's reserve too, giving back what was not used, exactly once
    /// (the release that moves the lease out of the ledger is the one
    /// that refunds, in the same transaction). A lapsed lease keeps its
    /// reserve spent.
    pub(super) async fn release(&self, req: &ApiRequest, lease: &str) -> Result<ApiResponse> {
        let input = validate::input::decode_input(req)?;
        let keyring = self.keyring_for_input(&input).await;
        let (issuer, store) = (&self.config.issuer, self.store.as_ref());
        let lease = lease_of(&keyring, issuer, &input, lease)?;
        let unused = unused_reserve(&lease, input.used)?;
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
            // The reserve was spent from the token's identity too.
            let identity = match &rec.identity_id {
                Some(id) if unused > 0 => self.store.get_identity(id).await?,
                _ => None,
            };
            let identity_refund = identity
                .as_ref()
                .and_then(|i| Some((i.id.as_str(), refund(&i.limits, unused)?)));
            let release = LeaseMove {
                id: &rec.id,
                lease: lease.as_str(),
                first_bucket: lease.first_bucket(),
                to: None,
                refund: refund(&rec.limits, unused),
                identity_refund,
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

/// What a release's `used` leaves of the lease's reserve to give back
/// (nothing without `used`): 400 when it claims more than was reserved.
fn unused_reserve(lease: &LeaseId, used: Option<u64>) -> Result<u64> {
    let reserved = lease.reserved();
    match used {
        None => Ok(0),
        Some(used) if used <= reserved => Ok(reserved - used),
        Some(_) => Err(ApiError::field(
            "used",
            &format!("must be at most the lease's reserve, {reserved}"),
        )),
    }
}

/// The refund of `unused` uses to a holder's `limits` (see
/// `Uses::refundable`), with the ceiling its write is pinned under.
fn refund(limits: &Limits, unused: u64) -> Option<Refund> {
    let uses = limits.uses();
    uses.refundable(unused).map(|give| Refund {
        uses: give,
        ceiling: uses.ceiling(),
    })
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
