//! The table's stream records read as lifecycle facts (see `events`).
//! Which records reach the `events` function at all is the event source
//! mapping's `FilterCriteria` in `template.yaml`; these rules decide
//! again on what arrives, so a filter that lets more through changes
//! nothing.

use super::audit;
use super::item::{get_n, get_s, req_s, Item};
use crate::events::{Fact, TokenRef};
use crate::store::StoreError;

/// One stream record's parts: `name` is `INSERT`, `MODIFY` or `REMOVE`;
/// `by_ttl` when DynamoDB's TTL made the removal (the record's
/// `userIdentity` is the DynamoDB service).
pub struct StreamChange<'a> {
    pub name: &'a str,
    pub by_ttl: bool,
    pub keys: &'a Item,
    pub old: &'a Item,
    pub new: &'a Item,
}

pub fn fact_of(c: &StreamChange<'_>) -> Result<Fact, StoreError> {
    let pk = get_s(c.keys, "pk").unwrap_or_default();
    let is_token = pk.starts_with("T#") && get_s(c.keys, "sk") == Some("T");
    Ok(match c.name {
        "INSERT" if pk.starts_with("A#") => Fact::Audited(audit::from_item(c.new)?),
        "MODIFY" if is_token && exhausted(c.old, c.new) => Fact::Exhausted(token_ref(c.new)?),
        "REMOVE" if is_token && c.by_ttl => Fact::Expired(token_ref(c.old)?),
        _ => Fact::Nothing,
    })
}

/// An admission (the version unchanged: not a patch) that took the last
/// use.
fn exhausted(old: &Item, new: &Item) -> bool {
    let uses = |i: &Item| get_n::<u64>(i, "remainingUses");
    let version = |i: &Item| get_n::<u64>(i, "version");
    version(old) == version(new) && uses(new) == Some(0) && uses(old).is_some_and(|u| u > 0)
}

fn token_ref(item: &Item) -> Result<TokenRef, StoreError> {
    Ok(TokenRef {
        id: req_s(item, "id")?,
        owner: req_s(item, "owner")?,
        identity_id: get_s(item, "identityId").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::audit::{Actor, AuditRecord, Target};
    use crate::store::dynamo::item::{n, s};

    fn token_item(uses: Option<u64>, version: u64) -> Item {
        let mut item = HashMap::from([
            ("pk".to_owned(), s("T#tok")),
            ("sk".to_owned(), s("T")),
            ("id".to_owned(), s("tok")),
            ("owner".to_owned(), s("alice")),
            ("identityId".to_owned(), s("id_1")),
            ("version".to_owned(), n(version)),
        ]);
        if let Some(u) = uses {
            item.insert("remainingUses".into(), n(u));
        }
        item
    }

    fn keys(item: &Item) -> Item {
        item.iter()
            .filter(|(k, _)| *k == "pk" || *k == "sk")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn fact(name: &str, by_ttl: bool, old: &Item, new: &Item) -> Fact {
        let present = if new.is_empty() { old } else { new };
        fact_of(&StreamChange {
            name,
            by_ttl,
            keys: &keys(present),
            old,
            new,
        })
        .unwrap()
    }

    fn tok() -> TokenRef {
        TokenRef {
            id: "tok".into(),
            owner: "alice".into(),
            identity_id: Some("id_1".into()),
        }
    }

    #[test]
    fn the_last_use_taken_by_an_admission_is_exhaustion_and_nothing_else_is() {
        let none = Item::new();
        let (one, zero) = (token_item(Some(1), 3), token_item(Some(0), 3));
        assert_eq!(fact("MODIFY", false, &one, &zero), Fact::Exhausted(tok()));
        // Still uses left, already at 0, or no uses at all: an admission.
        let two = token_item(Some(2), 3);
        assert_eq!(fact("MODIFY", false, &two, &one), Fact::Nothing);
        assert_eq!(fact("MODIFY", false, &zero, &zero), Fact::Nothing);
        let unlimited = token_item(None, 3);
        assert_eq!(fact("MODIFY", false, &unlimited, &unlimited), Fact::Nothing);
        // A patch to 0 is its audit record's event, not an exhaustion.
        assert_eq!(
            fact("MODIFY", false, &one, &token_item(Some(0), 4)),
            Fact::Nothing
        );
        // Creates and deletes are their audit records' events.
        assert_eq!(fact("INSERT", false, &none, &one), Fact::Nothing);
        assert_eq!(fact("REMOVE", false, &one, &none), Fact::Nothing);
    }

    #[test]
    fn a_removal_by_ttl_is_expiry() {
        let none = Item::new();
        let item = token_item(Some(4), 1);
        assert_eq!(fact("REMOVE", true, &item, &none), Fact::Expired(tok()));
        // A lease's or an identity's removal by TTL is nothing.
        let mut lease = item.clone();
        lease.insert("sk".into(), s("L#x"));
        assert_eq!(fact("REMOVE", true, &lease, &none), Fact::Nothing);
        let mut identity = item;
        identity.insert("pk".into(), s("D#id_1"));
        identity.insert("sk".into(), s("D"));
        assert_eq!(fact("REMOVE", true, &identity, &none), Fact::Nothing);
    }

    #[test]
    fn an_audit_record_put_is_that_record_and_a_bad_one_an_error() {
        let rec = AuditRecord {
            id: "abcdefghjkmnpqrstvwx".into(),
            at: crate::dates::from_millis(1_796_547_600_000),
            action: "token.rolled",
            target: Target::Token("tok".into()),
            actor: Actor {
                owner: "alice".into(),
                sub: Some("sub-1".into()),
                source_ip: Some("203.0.113.9".into()),
                user_agent: None,
                request_id: Some("req-1".into()),
                kind: "user",
            },
            changes: serde_json::Map::new(),
            expires_at: 1_900_000_000,
        };
        let item = audit::to_item(&rec);
        let none = Item::new();
        assert_eq!(fact("INSERT", false, &none, &item), Fact::Audited(rec));
        // Its removal by TTL is nothing.
        assert_eq!(fact("REMOVE", true, &item, &none), Fact::Nothing);
        let mut bad = item.clone();
        bad.insert("action".into(), s("token.stolen"));
        let decoded = fact_of(&StreamChange {
            name: "INSERT",
            by_ttl: false,
            keys: &keys(&bad),
            old: &none,
            new: &bad,
        });
        assert!(decoded.is_err());
    }
}
