//! `POST /leaks/github`: GitHub's secret scanning reports Tollgate token
//! strings it found in public. A report is believed only when one of
//! GitHub's published keys signed its very bytes (401 otherwise, and
//! nothing changes). Each string that is one of our tokens' live secrets
//! (the current one, or a rolled-away one still in its grace) is handled by
//! the token's `onLeak` and labelled `true_positive`; anything else is
//! `false_positive`, whether it is noise or a near miss.

use serde_json::json;
use time::OffsetDateTime;

use super::{App, Result};
use crate::audit::{Actor, Target};
use crate::http::{ApiError, ApiRequest, ApiResponse, Format};
use crate::leaks::{github, OnLeak};
use crate::store::{Replaced, StoreError};
use crate::token::TokenRecord;
use crate::validate::token_secret_state;

/// Rounds of read and write before 503 (the token kept changing).
const MAX_ROUNDS: usize = 16;

impl App {
    pub(super) async fn github_leaks(&self, req: &ApiRequest) -> Result<ApiResponse> {
        let keys = self.leak_keys.as_ref().ok_or(ApiError::BadSignature)?;
        let (Some(id), Some(signature)) = (
            req.header(github::KEY_ID_HEADER),
            req.header(github::SIGNATURE_HEADER),
        ) else {
            return Err(ApiError::BadSignature);
        };
        let key = keys.get(id).await.ok_or(ApiError::BadSignature)?;
        if !github::signed_by(&key, signature, &req.body) {
            return Err(ApiError::BadSignature);
        }
        let found = github::parse_report(&req.body)?;
        let now = crate::dates::now();
        let mut labels = Vec::with_capacity(found.len());
        for f in &found {
            labels.push(self.leaked(req, f, now).await?);
        }
        let answer = github::answer(&found, &labels);
        Ok(ApiResponse::document(200, Format::Json, "leaks", &answer))
    }

    /// Applies the token's `onLeak` if the reported string is one of its
    /// live secrets, and records it as `token.leaked` (actor `github`),
    /// with what was done and where the report says it was found.
    async fn leaked(
        &self,
        req: &ApiRequest,
        found: &github::Found,
        now: OffsetDateTime,
    ) -> std::result::Result<bool, StoreError> {
        let text = found.token.as_str();
        let keys = self.keyring_for(text).await;
        let report = (
            "report".to_owned(),
            json!({"from": null, "to": {"url": found.url, "source": found.source}}),
        );
        let Some(token) = keys.parse_token(text) else {
            return Ok(false);
        };
        for _ in 0..MAX_ROUNDS {
            let Some(rec) = self.store.get(token.id.as_str()).await? else {
                return Ok(false);
            };
            if token_secret_state(&keys, &token, &rec, now).is_none() {
                return Ok(false);
            }
            // An identity's `onLeak`, when set, is its tokens' policy.
            let identity = match &rec.identity_id {
                Some(id) => self.store.get_identity(id).await?,
                None => None,
            };
            let on_leak = identity.and_then(|i| i.on_leak).unwrap_or(rec.on_leak);
            let actor = Actor::service(&rec.owner, "github", req);
            let applied = match on_leak {
                OnLeak::Revoke => {
                    let revoked = self.revoke_token(&keys, &token, now).await?;
                    if let Some((_, gone, mut changes)) = revoked.changes(now) {
                        changes.extend([report.clone()]);
                        self.record_after("token.leaked", gone, actor, changes)
                            .await;
                    }
                    true
                }
                OnLeak::Disable if rec.enabled => {
                    // Disabled with its record, in one transaction.
                    let off = disabled(&rec, now);
                    let mut audit = self.audit_record(
                        "token.leaked",
                        Target::Token(rec.id.clone()),
                        actor,
                        Some(&rec.to_json(now)),
                        Some(&off.to_json(now)),
                    );
                    audit.changes.extend([report.clone()]);
                    self.store.replace(&rec, &off, &audit).await? == Replaced::Done
                }
                // Notify, or already disabled: the report alone.
                OnLeak::Disable | OnLeak::Notify => {
                    let changes = serde_json::Map::from_iter([report.clone()]);
                    self.record_after("token.leaked", &rec, actor, changes)
                        .await;
                    true
                }
            };
            if applied {
                tracing::info!(
                    action = "token.leaked",
                    actor = "github",
                    token_id = %rec.id,
                    on_leak = on_leak.as_str(),
                    "reported leaked by GitHub secret scanning"
                );
                return Ok(true);
            }
        }
        Err(StoreError::Unavailable(
            "the token kept changing while its leak was handled".into(),
        ))
    }
}

/// The token as a patch `{"enabled": false}` leaves it.
fn disabled(rec: &TokenRecord, now: OffsetDateTime) -> TokenRecord {
    TokenRecord {
        enabled: false,
        version: rec.version + 1,
        updated_at: now,
        ..rec.clone()
    }
}
