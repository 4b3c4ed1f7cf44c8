//! `/identities`: list, create, detail, patch and delete of an owner's
//! identities, served by the same functions as the tokens' routes of the
//! same verb (each keeps its one kind of write). The rules live in
//! `identity`; the store keeps `externalId` unique per owner and refuses
//! to delete an identity a token points at.

use serde_json::json;

use super::tokens::{check_if_match, require_json};
use super::{App, Result};
use crate::audit::{Actor, Target};
use crate::dates;
use crate::http::{json_object, ApiError, ApiRequest, ApiResponse};
use crate::identity::{rules, IdentityId, IdentityQuery, IdentityRecord};
use crate::store::IdentityDeletion;
use crate::token::Owner;

impl App {
    pub(super) async fn list_identities(
        &self,
        req: &ApiRequest,
        owner: &Owner,
    ) -> Result<ApiResponse> {
        let keyring = self.keyring_for("").await;
        let query = IdentityQuery::parse(&req.query, &keyring, owner)?;
        let now = dates::now();
        let doc = match &query.external_id {
            // At most one identity has it: no page.
            Some(external) => {
                let found = self
                    .store
                    .identity_by_external_id(owner.as_str(), external.as_str())
                    .await?;
                let items: Vec<_> = found.iter().map(|i| i.to_json(now)).collect();
                json!({ "identities": items })
            }
            None => {
                let page = self
                    .store
                    .list_identities(owner.as_str(), query.limit, query.after.as_deref())
                    .await?;
                let items: Vec<_> = page.items.iter().map(|i| i.to_json(now)).collect();
                let mut doc = json!({ "identities": items });
                if let Some(next) = page.next {
                    doc["nextCursor"] = json!(keyring.sign_cursor(owner, &next));
                }
                doc
            }
        };
        Ok(ApiResponse::document(200, req.format(), "identities", &doc))
    }

    pub(super) async fn create_identity(
        &self,
        req: &ApiRequest,
        owner: &Owner,
    ) -> Result<ApiResponse> {
        require_json(req, false)?;
        let body = json_object(&req.body)?;
        let id = IdentityId::random();
        let rec = rules::create(
            id.as_str().to_owned(),
            owner.as_str().to_owned(),
            &body,
            dates::now(),
        )?;
        let audit = self.audit_record(
            "identity.created",
            Target::Identity(rec.id.clone()),
            Actor::of(req, owner.as_str()),
            None,
            Some(&rec.to_json(dates::now())),
        );
        if !self.store.put_identity(&rec, &audit).await? {
            return Err(ApiError::IdentityExists);
        }
        Ok(identity_response(201, req, &rec)
            .with_header("location", format!("/identities/{}", rec.id)))
    }

    pub(super) async fn identity_detail(
        &self,
        req: &ApiRequest,
        owner: &Owner,
        id: &str,
    ) -> Result<ApiResponse> {
        let rec = self.owned_identity(owner, id).await?;
        Ok(identity_response(200, req, &rec))
    }

    pub(super) async fn patch_identity(
        &self,
        req: &ApiRequest,
        owner: &Owner,
        id: &str,
    ) -> Result<ApiResponse> {
        require_json(req, true)?;
        let body = json_object(&req.body)?;
        // Optimistic concurrency, as a token's patch: re-read and re-apply
        // when an admission or another patch moved the item.
        for _ in 0..5 {
            let current = self.owned_identity(owner, id).await?;
            check_if_match(req, &current.etag())?;
            let new = rules::patch(&current, &body, dates::now())?;
            if new == current {
                return Ok(identity_response(200, req, &new));
            }
            let now = dates::now();
            let audit = self.audit_record(
                "identity.updated",
                Target::Identity(current.id.clone()),
                Actor::of(req, owner.as_str()),
                Some(&current.to_json(now)),
                Some(&new.to_json(now)),
            );
            if self.store.replace_identity(&current, &new, &audit).await? {
                return Ok(identity_response(200, req, &new));
            }
        }
        Err(ApiError::Unavailable)
    }

    pub(super) async fn delete_identity(
        &self,
        req: &ApiRequest,
        owner: &Owner,
        id: &str,
    ) -> Result<ApiResponse> {
        let current = self.owned_identity(owner, id).await?;
        let audit = self.audit_record(
            "identity.deleted",
            Target::Identity(current.id.clone()),
            Actor::of(req, owner.as_str()),
            Some(&current.to_json(dates::now())),
            None,
        );
        let deleted = self
            .store
            .delete_identity(&current.id, owner.as_str(), &audit);
        match deleted.await? {
            IdentityDeletion::Deleted => Ok(ApiResponse::empty(204)),
            IdentityDeletion::NotFound => Err(ApiError::NotFound),
            IdentityDeletion::InUse => Err(ApiError::IdentityInUse),
        }
    }

    /// The owner's identity `id`: another owner's answers as an unknown one.
    async fn owned_identity(&self, owner: &Owner, id: &str) -> Result<IdentityRecord> {
        let id = IdentityId::parse(id).ok_or(ApiError::NotFound)?;
        match self.store.get_identity(id.as_str()).await? {
            Some(i) if i.owner == owner.as_str() => Ok(i),
            _ => Err(ApiError::NotFound),
        }
    }
}

fn identity_response(status: u16, req: &ApiRequest, rec: &IdentityRecord) -> ApiResponse {
    ApiResponse::document(status, req.format(), "identity", &rec.to_json(dates::now()))
        .with_header("etag", rec.etag())
}
