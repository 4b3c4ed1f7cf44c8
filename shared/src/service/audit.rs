//! `GET /audit`: the owner's audit trail, newest first, or one token's or
//! identity's history (see `audit`), paged like every list.

use serde_json::{json, Value};

use super::{App, Result};
use crate::audit::AuditQuery;
use crate::http::{ApiRequest, ApiResponse};
use crate::token::Owner;

impl App {
    pub(super) async fn audit(&self, req: &ApiRequest, owner: &Owner) -> Result<ApiResponse> {
        let keyring = self.keyring_for("").await;
        let query = AuditQuery::parse(&req.query, &keyring, owner)?;
        let page = self.store.audit(owner.as_str(), &query).await?;
        let records: Vec<Value> = page.records.iter().map(|r| r.to_json()).collect();
        let mut doc = json!({ "records": records });
        if let Some(next) = page.next {
            doc["nextCursor"] = json!(keyring.sign_cursor(owner, &next));
        }
        Ok(ApiResponse::document(200, req.format(), "records", &doc))
    }
}
