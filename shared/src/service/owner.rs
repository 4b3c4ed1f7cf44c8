//! Who a management request acts for: the JWT authorizer's `sub`, else a
//! Lambda authorizer's `owner`, else the IAM caller; only what the gateway
//! (API Gateway, or the local one) established, never a header the client
//! names. A Tollgate token or capability presented as the credential, or a
//! Lambda authorizer context from Tollgate's own `authorize` (it carries
//! `tokenId`), is refused: tokens cannot manage tokens.

use crate::config::Config;
use crate::credentials::{capability, looks_like_token};
use crate::http::{ApiError, ApiRequest};
use crate::token::Owner;

pub fn owner(config: &Config, req: &ApiRequest) -> Result<Owner, ApiError> {
    let id = &req.identity;
    if id.authorizer_token_id.is_some() {
        return Err(ApiError::TokenOnManagementRoute);
    }
    if let Some(auth) = req.header("authorization") {
        // The credential after the scheme (or the whole value), parsed as a
        // token string: a JWT that merely contains `tgl_` is not one.
        let credential = auth.split_once(' ').map_or(auth, |(_, c)| c).trim();
        if looks_like_token(credential) || capability::is_ours(credential, &config.issuer) {
            return Err(ApiError::TokenOnManagementRoute);
        }
    }
    id.jwt_sub
        .as_deref()
        .or(id.authorizer_owner.as_deref())
        .or(id.iam_caller.as_deref())
        .and_then(Owner::parse)
        .ok_or(ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_lookup(|k| match k {
            "TOLLGATE_TABLE" => Some("t".into()),
            "TOLLGATE_HASH_KEY" => Some("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=".into()),
            _ => None,
        })
        .unwrap()
    }

    fn with_auth(value: &str) -> ApiRequest {
        let mut r = ApiRequest::default();
        r.identity.jwt_sub = Some("alice".into());
        r.headers.insert("authorization", value.parse().unwrap());
        r
    }

    #[test]
    fn a_jwt_that_contains_tgl_is_not_a_token() {
        // About one 1 KB base64url JWT in 17,000 holds `tgl_` somewhere.
        let jwt = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig-tgl_abc-def";
        assert_eq!(owner(&config(), &with_auth(jwt)).unwrap().as_str(), "alice");
    }

    #[test]
    fn a_token_string_is_refused_with_or_without_a_scheme() {
        let token = crate::credentials::Keyring::single(&[1; 32]).mint().token;
        for value in [
            format!("Bearer {token}"),
            format!("Bearer  {token} "),
            token.clone(),
            format!("Basic {token}"),
        ] {
            assert!(matches!(
                owner(&config(), &with_auth(&value)),
                Err(ApiError::TokenOnManagementRoute)
            ));
        }
    }
}
