//! Audiences: the names of the APIs a token (and the capabilities minted
//! from it) is meant for. A token with audiences is admitted only where
//! the audience asked is one of them; a token without any is admitted by
//! any audience (the owner binding still applies; see `validate::binding`).

/// At most this many audiences on a token.
pub const MAX_AUDIENCES: usize = 8;
const MAX_LEN: usize = 64;

/// What an audience name must look like.
pub const AUDIENCE_RULE: &str = "must match [a-z0-9._-]{1,64}";

/// Whether `name` is an audience name: `[a-z0-9._-]{1,64}`.
pub fn is_audience(name: &str) -> bool {
    (1..=MAX_LEN).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// Whether a credential restricted to `granted` (empty: unrestricted) may
/// be used where `asked` is the audience (`None`: the place names none).
pub fn allows(granted: &[String], asked: Option<&str>) -> bool {
    granted.is_empty() || asked.is_some_and(|a| granted.iter().any(|g| g == a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in [
            "billing",
            "api.example.com",
            "a",
            "x_y-z.1",
            &"a".repeat(64),
        ] {
            assert!(is_audience(good), "{good}");
        }
        for bad in ["", "Billing", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(!is_audience(bad), "{bad}");
        }
    }

    #[test]
    fn a_restricted_credential_needs_one_of_its_audiences() {
        let granted = vec!["billing".to_owned(), "search".to_owned()];
        assert!(allows(&granted, Some("search")));
        assert!(!allows(&granted, Some("admin")));
        assert!(!allows(&granted, None));
        assert!(allows(&[], None));
        assert!(allows(&[], Some("admin")));
    }
}
