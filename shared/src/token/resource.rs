//! Resource paths: path prefixes matched by whole segments.

/// Normalises a resource path, or `None` when it is not an acceptable path:
/// not starting with `/`, holding `..` or `.` segments, `//`, a query, a
/// fragment, a backslash, a control character or a percent-encoded slash,
/// dot or backslash (ways to smuggle a segment past the match).
pub fn normalise(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.len() > 1024 {
        return None;
    }
    if path.contains("//") || path.contains(['?', '#', '\\']) || path.chars().any(char::is_control)
    {
        return None;
    }
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%2e", "%5c", "%00"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return None;
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return None;
    }
    let trimmed = path.trim_end_matches('/');
    Some(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// Whether the token's `scope` (already normalised) covers `requested`
/// (already normalised): equal, or `requested` continues it with a `/`.
pub fn covers(scope: &str, requested: &str) -> bool {
    if scope == "/" {
        return true;
    }
    match requested.strip_prefix(scope) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_segments_only() {
        assert!(covers("/teams", "/teams"));
        assert!(covers("/teams", "/teams/17dh0cf43jfgl8"));
        assert!(!covers("/teams", "/teamsx"));
        assert!(!covers("/teams/1", "/teams"));
        assert!(covers("/", "/anything/at/all"));
        assert!(covers("/", "/"));
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalise("/teams/").as_deref(), Some("/teams"));
        assert_eq!(normalise("/").as_deref(), Some("/"));
        assert_eq!(normalise("/a/b").as_deref(), Some("/a/b"));
        for bad in [
            "",
            "teams",
            "/teams/../admin",
            "/a//b",
            "/a?x=1",
            "/a#f",
            "/./a",
            "/a/.",
            "/a%2Fb",
            "/a%2e%2e",
            "/a\\b",
            "/a\u{0}b",
            "/..",
        ] {
            assert!(normalise(bad).is_none(), "{bad:?}");
        }
    }
}
