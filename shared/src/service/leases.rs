//! The lease calls: `PUT /validate/leases/{leaseId}` renews a live lease,
//! `DELETE` releases one. The token that took the lease is the credential.

use super::{App, Result};
use crate::dates;
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::token::{LeaseId, TokenRecord};
use crate::validate::{self, answer, Reason};

impl App {
    pub(super) async fn renew(&self, req: &ApiRequest, lease: &str) -> Result<ApiResponse> {
        let (lease, rec) = match self.lease_holder(req, lease).await? {
            (lease, Ok(rec)) => (lease, rec),
            (_, Err(_)) => return Err(ApiError::NotFound),
        };
        let now = dates::now();
        if rec.is_expired(now) {
            return Err(ApiError::NotFound);
        }
        let now_ms = dates::millis(now);
        let expiry = now_ms + self.config.lease_seconds * 1000;
        if !self
            .store
            .renew(&rec.id, lease.as_str(), now_ms, expiry)
            .await?
        {
            return Err(ApiError::NotFound);
        }
        let doc = serde_json::json!({ "lease": answer::lease_document(&lease, expiry) });
        Ok(ApiResponse::document(200, req.format(), "validation", &doc))
    }

    pub(super) async fn release(&self, req: &ApiRequest, lease: &str) -> Result<ApiResponse> {
        match self.lease_holder(req, lease).await? {
            (lease, Ok(rec)) => {
                self.store.release(&rec.id, lease.as_str()).await?;
                Ok(ApiResponse::empty(204))
            }
            // The token is gone, and its leases with it.
            (_, Err(Reason::NotFound)) => Ok(ApiResponse::empty(204)),
            (_, Err(_)) => Err(ApiError::NotFound),
        }
    }

    /// The lease id and the token presented with a lease call; 404 for a
    /// malformed token or a lease id not issued to it, without a read.
    async fn lease_holder(
        &self,
        req: &ApiRequest,
        lease: &str,
    ) -> Result<(LeaseId, std::result::Result<TokenRecord, Reason>)> {
        let input = validate::input::decode_input(req)?;
        let text = input.token.unwrap_or_default();
        let parsed = self.keys.parse_token(&text).ok_or(ApiError::NotFound)?;
        let lease = LeaseId::parse(lease)
            .filter(|l| self.keys.lease_belongs_to(&parsed.id, l))
            .ok_or(ApiError::NotFound)?;
        let found = validate::presented(&self.keys, self.store.as_ref(), &text).await?;
        Ok((lease, found.map(|(_, rec)| rec)))
    }
}
