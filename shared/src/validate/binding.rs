//! Which owners' tokens a protected API accepts, and its audience: what
//! the authorize function asks besides the request itself. An API states
//! both in its own deployment, as stage variables (`tollgateOwners`: one
//! owner, a comma-separated list, or `*`; `tollgateAudience`: optional).
//! An API that states no owners is not bound and is refused
//! (`API_NOT_BOUND`): the authorizer fails closed.

use std::collections::HashMap;

/// The stage variable naming the owners whose tokens an API accepts.
pub const OWNERS_VARIABLE: &str = "tollgateOwners";
/// The stage variable naming the API's audience.
pub const AUDIENCE_VARIABLE: &str = "tollgateAudience";

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
}

impl Binding {
    /// The binding stated by an API's stage variables; `None` when it
    /// names no owner (blank entries are ignored; `*` anywhere is every
    /// owner).
    pub fn from_stage_variables(vars: &HashMap<String, String>) -> Option<Binding> {
        let listed: Vec<String> = vars
            .get(OWNERS_VARIABLE)?
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        let owners = if listed.iter().any(|o| o == "*") {
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
        Some(Binding { owners, audience })
    }

    pub fn accepts_owner(&self, owner: &str) -> bool {
        match &self.owners {
            Owners::Any => true,
            Owners::Listed(list) => list.iter().any(|o| o == owner),
        }
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
        let any = Binding::from_stage_variables(&vars(&[(OWNERS_VARIABLE, "*")])).unwrap();
        assert!(any.accepts_owner("anyone"));
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
