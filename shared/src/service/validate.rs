//! `POST /validate`: decode the request, run the validate flow
//! (`crate::validate::decide`), answer 200 with the decision.

use super::{App, Result};
use crate::http::{ApiRequest, ApiResponse};
use crate::validate::{self, answer, Reason};

impl App {
    pub(super) async fn validate(&self, req: &ApiRequest) -> Result<ApiResponse> {
        let input = validate::input::decode_input(req)?;
        let keyring = self.keyring_for_input(&input).await;
        let decision = validate::decide(
            &keyring,
            &self.config.issuer,
            self.store.as_ref(),
            &self.snapshots,
            self.config.lease_seconds,
            &input,
            req.source_ip,
        )
        .await?;
        let (doc, reason) = match decision {
            Ok(accepted) => (answer::acceptance(&accepted), None),
            Err(reason) => (answer::refusal(reason), Some(reason)),
        };
        let mut resp = ApiResponse::document(200, req.format(), "validation", &doc);
        resp.reason = reason.map(Reason::code);
        Ok(resp)
    }
}
