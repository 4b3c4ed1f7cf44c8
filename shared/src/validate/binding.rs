//! Which owners' tokens a protected API accepts, and its audience: what
//! the authorize function asks besides the request itself. An API states
//! both in its own deployment, as stage variables (`tollgateOwners`: one
//! owner, a comma-separated list, or every owner; `tollgateAudience`:
//! optional). An API that states no owners is not bound and is refused
//! (`API_NOT_BOUND`): the authorizer fails closed.
//!
//! API Gateway allows only `[A-Za-z0-9-._~:/?#&=,]` in a stage variable's
//! value, so every owner is spelled `~any` (or `*` where a value may hold
//! it), and an owner id with other characters (`auth0|123`, an e-mail)
//! is written `b64~` and its base64url form.

use std::collections::HashMap;

/// The stage variable naming the owners whose tokens an API accepts.
pub const OWNERS_VARIABLE: &str = "tollgateOwners";
/// The stage variable naming the API's audience.
pub const AUDIENCE_VARIABLE: &str = "tollgateAudience";
/// The stage variable setting routes' costs in uses (default 1 each).
pub const COSTS_VARIABLE: &str = "tollgateCosts";

/// The owners an API accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owners {
    /// `*`: every account holder's tokens (a platform API).
    Any,
    Listed(Vec<String>),
}

/// A protected API's binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub owners: Owners,
    pub audience: Option<String>,
    /// Routes' costs, most specific first.
    pub costs: Vec<RouteCost>,
}

/// One entry of `tollgateCosts`: `METHOD:/path=N` (`ANY` for every
/// method), the path a prefix matched by whole segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteCost {
    pub method: Option<String>,
    pub path: String,
    pub cost: u64,
}

impl RouteCost {
    fn parse(entry: &str) -> Option<RouteCost> {
        let (route, cost) = entry.rsplit_once('=')?;
        let (method, path) = route.split_once(':')?;
        let cost = cost
            .parse()
            .ok()
            .filter(|c| *c <= crate::limits::uses::MAX_COST)?;
        let path = crate::token::resource::normalise(path)?;
        let method = match method {
            "ANY" => None,
            m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => Some(m.to_owned()),
            _ => return None,
        };
        Some(RouteCost { method, path, cost })
    }
}

impl Owners {
    /// At most this many owners in a validate's `owners`.
    pub const MAX_LISTED: usize = 100;
    pub const RULE: &'static str =
        "must be \"*\" (every owner) or a list of 1 to 100 owner ids (1 to 256 characters, no control characters)";

    /// A validate's `owners` (JSON): `"*"`, or a list of owner ids.
    pub fn from_json(value: &serde_json::Value) -> Option<Owners> {
        match value {
            serde_json::Value::String(s) if s == ANY => Some(Owners::Any),
            serde_json::Value::Array(list) => Owners::listed(list.iter().map(|o| o.as_str())),
            _ => None,
        }
    }

    /// A form's `owners`: `*`, or owner ids separated by commas.
    pub fn from_text(text: &str) -> Option<Owners> {
        match text.trim() {
            ANY => Some(Owners::Any),
            t => Owners::listed(t.split(',').map(Some)),
        }
    }

    fn listed<'a>(entries: impl Iterator<Item = Option<&'a str>>) -> Option<Owners> {
        let mut listed = Vec::new();
        for entry in entries {
            let owner = crate::token::Owner::parse(entry?).filter(|o| o.as_str() != ANY)?;
            listed.push(owner.as_str().to_owned());
        }
        (1..=Self::MAX_LISTED)
            .contains(&listed.len())
            .then_some(Owners::Listed(listed))
    }
}

impl Binding {
    /// A validate that names `owners` is checked as a protected API with
    /// that binding is by `authorize` (a token of another owner is
    /// `OWNER_NOT_ALLOWED`; its `audience`, or none, is the API's), so a
    /// service calling validate for each request (the Rust client's layer)
    /// refuses a foreign token before anything is spent.
    pub fn of_validate(owners: Owners, audience: Option<String>) -> Binding {
        Binding {
            owners,
            audience,
            costs: Vec::new(),
        }
    }

    /// The binding stated by an API's stage variables; `None` when it
    /// names no owner (blank entries are ignored; `*` anywhere is every
    /// owner).
    pub fn from_stage_variables(vars: &HashMap<String, String>) -> Option<Binding> {
        let listed: Vec<String> = vars
            .get(OWNERS_VARIABLE)?
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .filter_map(owner_of_entry)
            .collect();
        let owners = if listed.iter().any(|o| o == ANY) {
            Owners::Any
        } else if listed.is_empty() {
            return None;
        } else {
            Owners::Listed(listed)
        };
        let audience = vars
            .get(AUDIENCE_VARIABLE)
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty());
        // A cost the API cannot state is not taken as 1: it stays unbound.
        let mut costs = Vec::new();
        for entry in vars
            .get(COSTS_VARIABLE)
            .into_iter()
            .flat_map(|c| c.split(','))
        {
            match entry.trim() {
                "" => {}
                e => costs.push(RouteCost::parse(e)?),
            }
        }
        // Longer paths first; at one path, a named method before ANY.
        costs.sort_by_key(|c| (std::cmp::Reverse(c.path.len()), c.method.is_none()));
        Some(Binding {
            owners,
            audience,
            costs,
        })
    }

    /// The uses a request of `method` to `path` costs: the most specific
    /// entry of `tollgateCosts` covering it, else 1.
    pub fn cost_of(&self, method: &str, path: &str) -> u64 {
        let path = crate::token::resource::normalise(path);
        self.costs
            .iter()
            .find(|c| {
                c.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                    && path
                        .as_deref()
                        .is_some_and(|p| crate::token::resource::covers(&c.path, p))
            })
            .map_or(1, |c| c.cost)
    }

    pub fn accepts_owner(&self, owner: &str) -> bool {
        if owner == ANY {
            return false; // never an owner, whatever a listing spells
        }
        match &self.owners {
            Owners::Any => true,
            Owners::Listed(list) => list.iter().any(|o| o == owner),
        }
    }
}

/// Every owner, as [`owner_of_entry`] reads `~any` and `*`.
const ANY: &str = "*";

/// One entry of `tollgateOwners`: the owner id it names, or [`ANY`]; an
/// undecodable `b64~` entry names no one.
fn owner_of_entry(entry: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    if entry == "~any" || entry == ANY {
        return Some(ANY.to_owned());
    }
    match entry.strip_prefix("b64~") {
        Some(encoded) => URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|o| !o.is_empty() && o != ANY),
        None => Some(entry.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn routes_cost_what_the_most_specific_entry_says() {
        let costs = "ANY:/=2, POST:/chat=10,ANY:/chat/free=0 ,GET:/chat=1";
        let b = Binding::from_stage_variables(&vars(&[
            ("tollgateOwners", "alice"),
            ("tollgateCosts", costs),
        ]))
        .unwrap();
        assert_eq!(b.cost_of("POST", "/chat/completions"), 10);
        assert_eq!(b.cost_of("post", "/chat"), 10);
        assert_eq!(b.cost_of("GET", "/chat/x"), 1);
        assert_eq!(b.cost_of("POST", "/chat/free/x"), 0);
        assert_eq!(b.cost_of("DELETE", "/chatter"), 2, "whole segments only");
        let plain = Binding::from_stage_variables(&vars(&[("tollgateOwners", "alice")])).unwrap();
        assert_eq!(plain.cost_of("POST", "/anything"), 1);
        // A cost the API cannot state leaves it unbound: fail closed.
        for bad in [
            "POST:/x=",
            "POST/x=3",
            "post:/x=3",
            "POST:/x=1000001",
            "POST:x/../..=1",
        ] {
            let v = vars(&[("tollgateOwners", "alice"), ("tollgateCosts", bad)]);
            assert_eq!(Binding::from_stage_variables(&v), None, "{bad}");
        }
    }

    #[test]
    fn a_validates_owners_are_every_owner_or_a_list() {
        use serde_json::json;
        assert_eq!(Owners::from_json(&json!("*")), Some(Owners::Any));
        assert_eq!(
            Owners::from_json(&json!(["alice", "auth0|7"])),
            Some(Owners::Listed(vec!["alice".into(), "auth0|7".into()]))
        );
        assert_eq!(
            Owners::from_text("alice,bob"),
            Some(Owners::Listed(vec!["alice".into(), "bob".into()]))
        );
        assert_eq!(Owners::from_text("*"), Some(Owners::Any));
        let too_many: Vec<String> = (0..=Owners::MAX_LISTED).map(|i| format!("o{i}")).collect();
        for bad in [
            json!([]),
            json!(["*"]),
            json!([""]),
            json!(["a\u{7}"]),
            json!([7]),
            json!("alice"),
            json!(too_many),
            json!(["x".repeat(257)]),
        ] {
            assert_eq!(Owners::from_json(&bad), None, "{bad}");
        }
        assert_eq!(Owners::from_text("alice,,bob"), None);
    }

    #[test]
    fn owners_one_listed_or_any() {
        let b = Binding::from_stage_variables(&vars(&[(OWNERS_VARIABLE, "alice")])).unwrap();
        assert!(b.accepts_owner("alice") && !b.accepts_owner("bob"));
        assert_eq!(b.audience, None);
        let b = Binding::from_stage_variables(&vars(&[
            (OWNERS_VARIABLE, " alice, bob ,"),
            (AUDIENCE_VARIABLE, "billing"),
        ]))
        .unwrap();
        assert!(b.accepts_owner("bob") && !b.accepts_owner("carol") && !b.accepts_owner(""));
        assert_eq!(b.audience.as_deref(), Some("billing"));
        for every in ["*", "~any", "alice,~any"] {
            let any = Binding::from_stage_variables(&vars(&[(OWNERS_VARIABLE, every)])).unwrap();
            assert!(any.accepts_owner("anyone"), "{every}");
        }
    }

    #[test]
    fn owner_ids_a_stage_variable_cannot_hold_are_written_in_base64url() {
        // "auth0|abc" and "a@example.com"
        let b = Binding::from_stage_variables(&vars(&[(
            OWNERS_VARIABLE,
            "b64~YXV0aDB8YWJj,b64~YUBleGFtcGxlLmNvbQ",
        )]))
        .unwrap();
        assert!(b.accepts_owner("auth0|abc") && b.accepts_owner("a@example.com"));
        assert!(!b.accepts_owner("b64~YXV0aDB8YWJj"));
        // Undecodable, or a wildcard in disguise: names no one.
        for entry in ["b64~!!", "b64~Kg"] {
            assert_eq!(
                Binding::from_stage_variables(&vars(&[(OWNERS_VARIABLE, entry)])),
                None,
                "{entry}"
            );
        }
        // An owner literally named "*" is never let in through a listing.
        let b = Binding::from_stage_variables(&vars(&[(OWNERS_VARIABLE, "alice")])).unwrap();
        assert!(!b.accepts_owner("*"));
    }

    #[test]
    fn an_api_that_names_no_owner_is_not_bound() {
        for v in [
            vars(&[]),
            vars(&[(OWNERS_VARIABLE, "")]),
            vars(&[(OWNERS_VARIABLE, " , ")]),
            vars(&[(AUDIENCE_VARIABLE, "billing")]),
        ] {
            assert_eq!(Binding::from_stage_variables(&v), None, "{v:?}");
        }
    }
}
