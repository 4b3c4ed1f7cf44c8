//! Create and patch of an identity: its fields parsed by the token's
//! parsers (one rule per field, whoever holds it), its limits settled by
//! `limits`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::{ExternalId, IdentityRecord};
use crate::limits::Limits;
use crate::token::fields::{check_tag_count, parse_changes, FieldErrors, Mode};

/// The members a client sets, beside `externalId`.
const FIELDS: &[&str] = &[
    "description",
    "tags",
    "audiences",
    "maxUses",
    "refill",
    "rateLimits",
    "onLeak",
];
const SERVER_FIELDS: &[&str] = &[
    "id",
    "remainingUses",
    "nextRefillAt",
    "rateLimitWindows",
    "createdAt",
    "updatedAt",
];

/// The body's members other than `externalId`, each error named.
fn split(
    body: &Map<String, Value>,
    mode: Mode,
    errs: &mut FieldErrors,
) -> (Option<ExternalId>, Map<String, Value>) {
    let mut external = None;
    let mut rest = Map::new();
    for (k, v) in body {
        match k.as_str() {
            "externalId" if mode == Mode::Patch => errs.add(k, "cannot be changed after create"),
            "externalId" => match v.as_str().and_then(ExternalId::parse) {
                Some(e) => external = Some(e),
                None => errs.add(k, ExternalId::RULE),
            },
            f if FIELDS.contains(&f) => {
                rest.insert(k.clone(), v.clone());
            }
            f if SERVER_FIELDS.contains(&f) => {
                errs.add(k, "is set by the server and cannot be sent")
            }
            _ => errs.add(k, "is not a field of an identity"),
        }
    }
    (external, rest)
}

/// Applies parsed changes to `rec` (`current`: the identity before a patch).
fn apply(
    rec: &mut IdentityRecord,
    body: &Map<String, Value>,
    mode: Mode,
    current: Option<&IdentityRecord>,
    now: OffsetDateTime,
    errs: &mut FieldErrors,
) {
    let c = match parse_changes(body, mode) {
        Ok(c) => c,
        Err(e) => {
            errs.0.extend(e.0);
            return;
        }
    };
    let mut description = Some(std::mem::take(&mut rec.description));
    c.description.apply(&mut description);
    rec.description = description.unwrap_or_default();
    c.tags.merge_tags(&mut rec.tags);
    c.on_leak.apply(&mut rec.on_leak);
    c.audiences.apply(&mut rec.audiences);
    if rec.audiences.as_ref().is_some_and(Vec::is_empty) {
        rec.audiences = None;
    }
    let current_limits = current.map(|c| &c.limits);
    rec.limits
        .apply(c.max_uses, c.refill, c.rate_limits, current_limits, now);
    check_tag_count(&rec.tags, errs);
    rec.limits.check_fields(errs);
}

/// A new identity of `owner` from a create body, or every field error.
pub fn create(
    id: String,
    owner: String,
    body: &Map<String, Value>,
    now: OffsetDateTime,
) -> Result<IdentityRecord, FieldErrors> {
    let mut errs = FieldErrors::default();
    let (external, rest) = split(body, Mode::Create, &mut errs);
    if external.is_none() && !body.contains_key("externalId") {
        errs.add("externalId", "is required");
    }
    let mut rec = IdentityRecord {
        id,
        owner,
        external_id: external.map(|e| e.as_str().to_owned()).unwrap_or_default(),
        description: String::new(),
        tags: BTreeMap::new(),
        audiences: None,
        limits: Limits::default(),
        on_leak: None,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    apply(&mut rec, &rest, Mode::Create, None, now, &mut errs);
    errs.into_result(rec)
}

/// A merge-patch of `current`, or every field error; the version moves
/// only when something changed.
pub fn patch(
    current: &IdentityRecord,
    body: &Map<String, Value>,
    now: OffsetDateTime,
) -> Result<IdentityRecord, FieldErrors> {
    let mut errs = FieldErrors::default();
    let (_, rest) = split(body, Mode::Patch, &mut errs);
    let mut rec = current.clone();
    apply(&mut rec, &rest, Mode::Patch, Some(current), now, &mut errs);
    if rec != *current {
        rec.version = current.version + 1;
        rec.updated_at = now;
    }
    errs.into_result(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn fields(e: FieldErrors) -> Vec<String> {
        e.0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_create_names_every_bad_field() {
        let now = crate::dates::now();
        let e = create(
            "id_x".into(),
            "alice".into(),
            &body(json!({"externalId": "a b", "maxUses": 0, "refill": {"interval": "daily", "amount": 5},
                          "type": "api", "remainingUses": 3, "rateLimits": [{"name": "x"}]})),
            now,
        )
        .unwrap_err();
        let f = fields(e);
        for want in ["externalId", "maxUses", "type", "remainingUses"] {
            assert!(f.iter().any(|x| x == want), "{want} in {f:?}");
        }
        assert!(f.iter().any(|x| x.starts_with("rateLimits")), "{f:?}");
        let e = create("id_x".into(), "alice".into(), &body(json!({})), now).unwrap_err();
        assert_eq!(fields(e), ["externalId"]);
        let e = create(
            "id_x".into(),
            "alice".into(),
            &body(json!({"externalId": "c1", "refill": {"interval": "daily", "amount": 5}})),
            now,
        )
        .unwrap_err();
        assert_eq!(fields(e), ["refill"], "a refill needs maxUses");
    }

    #[test]
    fn a_patch_keeps_what_was_spent_and_the_external_id() {
        let now = crate::dates::now();
        let mut rec = create(
            "id_x".into(),
            "alice".into(),
            &body(json!({"externalId": "c1", "maxUses": 10, "tags": {"plan": "pro"}})),
            now,
        )
        .unwrap();
        assert_eq!(rec.limits.remaining_uses, Some(10));
        rec.limits.remaining_uses = Some(4);
        let p = patch(
            &rec,
            &body(json!({"maxUses": 20, "tags": {"plan": null}})),
            now,
        )
        .unwrap();
        assert_eq!(p.limits.remaining_uses, Some(14), "six spent stay spent");
        assert!(p.tags.is_empty());
        assert_eq!(p.version, rec.version + 1);
        let e = patch(&rec, &body(json!({"externalId": "c2"})), now).unwrap_err();
        assert_eq!(fields(e), ["externalId"]);
        let same = patch(&rec, &body(json!({})), now).unwrap();
        assert_eq!(same.version, rec.version, "nothing changed, no new version");
    }
}
