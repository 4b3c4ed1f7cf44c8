//! Who a management request acts for: the JWT authorizer's `sub`, else a
//! Lambda authorizer's `owner`, else the IAM caller (`X-Owner` only under
//! `TOLLGATE_DEV_AUTH=1`). A Tollgate token presented as the credential is
//! refused: tokens cannot manage tokens.

use crate::config::Config;
use crate::http::{ApiError, ApiRequest};
use crate::token::{looks_like_token, Owner};

pub fn owner(config: &Config, req: &ApiRequest) -> Result<Owner, ApiError> {
    if let Some(auth) = req.header("authorization") {
        // The credential after the scheme (or the whole value), parsed as a
        // token string: a JWT that merely contains `tgl_` is not one.
        let credential = auth.split_once(' ').map_or(auth, |(_, c)| c);
        if looks_like_token(credential) {
            return Err(ApiError::TokenOnManagementRoute);
        }
    }
    let id = &req.identity;
    let dev = if config.dev_auth {
        req.header("x-owner")
    } else {
        None
    };
    id.jwt_sub
        .as_deref()
        .or(id.authorizer_owner.as_deref())
        .or(id.iam_caller.as_deref())
        .or(dev)
        .and_then(Owner::parse)
        .ok_or(ApiError::Unauthorized)
}
