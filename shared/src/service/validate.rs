//! `POST /validate`: decode the request, run the validate flow
//! (`crate::validate::decide`), answer 200 with the decision.

use std::net::IpAddr;

use super::{App, Result};
use crate::credentials::Keyring;
use crate::http::{ApiRequest, ApiResponse};
use crate::store::StoreError;
use crate::validate::{self, answer, Decision, Reason, ValidateInput};

impl App {
    pub(super) async fn validate(&self, req: &ApiRequest) -> Result<ApiResponse> {
        let input = validate::input::decode_input(req)?;
        input.refuse_used()?;
        let keyring = self.keyring_for_input(&input).await;
        Ok(match self.decide(&keyring, &input, req.source_ip).await? {
            Ok(accepted) => {
                let doc = answer::acceptance(&accepted);
                ApiResponse::document(200, req.format(), "validation", &doc)
            }
            Err(reason) => refused(req, reason),
        })
    }

    /// The validate flow over this function's store, snapshots and
    /// settings; `source` is the caller's own address.
    pub(super) async fn decide(
        &self,
        keyring: &Keyring,
        input: &ValidateInput,
        source: Option<IpAddr>,
    ) -> std::result::Result<Decision, StoreError> {
        let decision = validate::decide(
            keyring,
            &self.config.issuer,
            self.store.as_ref(),
            &self.snapshots,
            self.config.lease_seconds,
            input,
            source,
        );
        decision.await
    }
}

/// A refusal: 200 with the reason and nothing else (logged by its code).
pub(super) fn refused(req: &ApiRequest, reason: Reason) -> ApiResponse {
    let mut resp = ApiResponse::document(200, req.format(), "validation", &answer::refusal(reason));
    resp.reason = Some(reason.code());
    resp
}
