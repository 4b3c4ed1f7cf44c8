//! Resource paths: path prefixes matched by whole segments.

/// Normalises a resource path, or `None` when it is not an acceptable path:
/// not starting with `/`, holding `//`, a query, a fragment, a backslash, a
/// control character or a percent-encoded slash, dot, backslash or NUL, or
/// a segment that a server behind the API could read as another path (see
/// [`segment_is_plain`]).
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
    if !path.split('/').skip(1).all(segment_is_plain) {
        return None;
    }
    let trimmed = path.trim_end_matches('/');
    Some(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// Whether a path segment means only itself: after percent-decoding and
/// folding the Unicode dots some servers take for `.` (fullwidth, small,
/// one-dot leader), it is not `.` or `..`, does not start with `..`, and
/// holds no `;` (a servlet container reads `/public/..;/admin` as
/// `/admin`, and `;` starts path parameters).
fn segment_is_plain(segment: &str) -> bool {
    let decoded = percent_decoded(segment);
    let folded: String = decoded
        .chars()
        .map(|c| match c {
            '\u{FF0E}' | '\u{FE52}' | '\u{2024}' => '.',
            c => c,
        })
        .collect();
    !(folded == "." || folded.starts_with("..") || folded.contains(';'))
}

/// Percent-decodes what decodes (to UTF-8, lossily); a malformed escape
/// stays as written.
fn percent_decoded(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

    #[test]
    fn segments_a_server_could_read_as_another_path_are_refused() {
        for bad in [
            "/public/..;/admin",
            "/public/..%3b/admin",
            "/public/..%3B/admin",
            "/public/\u{FF0E}\u{FF0E}/admin",
            "/public/%EF%BC%8E%EF%BC%8E/admin",
            "/public/\u{FE52}\u{FE52}",
            "/public/\u{2024}",
            "/public/.%2e/admin",
            "/public/...",
            "/public/..x",
            "/public;jsessionid=1/admin",
            "/public/a;b",
            "/public/%3b",
        ] {
            assert!(normalise(bad).is_none(), "{bad:?}");
        }
        for good in [
            "/public/a.b",
            "/public/.well-known",
            "/public/v1.2",
            "/public/%41",
        ] {
            assert!(normalise(good).is_some(), "{good:?}");
        }
    }
}
