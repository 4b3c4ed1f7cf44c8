//! What a validate answers: the refusal (the reason and nothing else) or
//! the acceptance (what a calling service needs, nothing more).

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::Accepted;
use super::Reason;
use crate::dates;
use crate::token::LeaseId;

/// The reason and nothing else about the token; `RATE_LIMITED` adds when
/// to try again.
pub fn refusal(reason: Reason) -> Value {
    let mut v = json!({"active": false, "reason": reason.code()});
    if let Some(retry_after) = reason.retry_after() {
        v["retryAfter"] = json!(retry_after);
    }
    if let Some(by) = reason.limited_by() {
        v["limitedBy"] = json!(by);
    }
    v
}

/// The answer for a valid token: what a calling service needs, nothing
/// more. For a capability, the parent narrowed: its resource and write
/// flag, and the earlier of the two ends.
pub fn acceptance(accepted: &Accepted) -> Value {
    let (rec, admitted) = (&accepted.rec, &accepted.admitted);
    let opt_date = |d: Option<OffsetDateTime>| d.map(dates::format);
    let cap = accepted.capability.as_ref();
    let resource = cap.map_or(rec.resource.as_str(), |c| c.resource.as_str());
    let write = rec.write && cap.is_none_or(|c| c.write);
    let end = cap.map_or(rec.end_date, |c| rec.end_date.min(c.expires_at()));
    let mut v = json!({
        "active": true,
        "id": rec.id,
        "owner": rec.owner,
        "type": rec.token_type,
        "description": rec.description,
        "resource": resource,
        "write": write,
        "tags": rec.tags,
        "caller": rec.caller,
        "callee": rec.callee,
        "startDate": opt_date(rec.start_date),
        "endDate": dates::format(end),
        "expire": end.unix_timestamp(),
        "maxConcurrent": rec.max_concurrent,
        "remainingUses": admitted.remaining_uses,
    });
    let audiences = match cap {
        Some(c) if !c.audiences.is_empty() => c.audiences.as_slice(),
        _ => rec.audience_list(),
    };
    if !audiences.is_empty() {
        v["audiences"] = json!(audiences);
    }
    if let Some(end) = accepted.secret_expires_at {
        // The previous secret of a rolled token: switch before this.
        v["secretExpiresAt"] = json!(dates::format(end));
    }
    if let Some(m) = v.as_object_mut() {
        rec.limits.uses().show_refill(m, dates::now());
    }
    if !admitted.rate_limits.is_empty() {
        v["rateLimits"] = json!(admitted.rate_limits);
    }
    if let Some(identity) = &admitted.identity {
        v["identity"] = identity.clone();
    }
    if let Some((id, expiry)) = &admitted.lease {
        v["lease"] = lease_document(id, *expiry);
    }
    if let Some(c) = &accepted.capability {
        v["capability"] = json!({
            "id": c.id,
            "scopes": c.scopes,
            "expiresAt": dates::format(c.expires_at()),
        });
    }
    v
}

/// A lease as answered by acquire and renew.
pub fn lease_document(id: &LeaseId, expiry_ms: i64) -> Value {
    json!({"id": id.as_str(), "expiresAt": dates::format(dates::from_millis(expiry_ms))})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_reveals_nothing_else() {
        assert_eq!(
            refusal(Reason::Expired),
            json!({"active": false, "reason": "EXPIRED"})
        );
        assert_eq!(
            refusal(Reason::RateLimited { retry_after: 7 }),
            json!({"active": false, "reason": "RATE_LIMITED", "retryAfter": 7})
        );
    }
}
