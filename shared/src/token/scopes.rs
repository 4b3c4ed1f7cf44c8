//! Capability scopes in Twilio's syntax: `scope:<service>:<privilege>`
//! with an optional `?<params>` query (`scope:client:outgoing?appSid=AP1`).
//! A scope is normalised when parsed (parameters sorted, percent-encoding
//! canonical), so equal scopes are equal strings; `covers` is the rule for
//! whether a granted scope allows a requested one.

use std::fmt::Write;

pub const MAX_SCOPE_LEN: usize = 512;
pub const MAX_SCOPES: usize = 32;
const MAX_NAME: usize = 32;

/// The scope that makes a token a trusted relay: a service that validates
/// its own clients' tokens may pass on their address (see `validate`).
pub const RELAY_SCOPE: &str = "scope:tollgate:relay";

/// A parsed, normalised scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub service: String,
    pub privilege: String,
    /// Decoded (name, value) pairs, sorted; a name may repeat.
    pub params: Vec<(String, String)>,
}

fn valid_name(s: &str) -> bool {
    (1..=MAX_NAME).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Percent-decodes one parameter name or value; `None` for a malformed
/// escape or a result that is not UTF-8. `+` stays a literal `+`.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None; // from_str_radix would take "+1"
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but RFC 3986's unreserved characters, with
/// upper-case hex: one canonical spelling per value.
fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

impl Scope {
    /// Parses and normalises a scope string; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Scope> {
        if text.len() > MAX_SCOPE_LEN || !text.is_ascii() || text.bytes().any(|b| b <= b' ') {
            return None;
        }
        let rest = text.strip_prefix("scope:")?;
        let (names, query) = match rest.split_once('?') {
            Some((n, q)) => (n, Some(q)),
            None => (rest, None),
        };
        let (service, privilege) = names.split_once(':')?;
        if !valid_name(service) || !valid_name(privilege) {
            return None;
        }
        let mut params = Vec::new();
        if let Some(q) = query {
            for pair in q.split('&') {
                if pair.is_empty() {
                    continue;
                }
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let k = percent_decode(k)?;
                if k.is_empty() {
                    return None;
                }
                params.push((k, percent_decode(v)?));
            }
        }
        params.sort();
        let scope = Scope {
            service: service.to_owned(),
            privilege: privilege.to_owned(),
            params,
        };
        // Its normalised form (canonical percent-encoding can triple a
        // character) is what is stored and matched: it must fit the limit
        // too, or a stored scope would never parse again, not even to
        // match itself.
        (scope.to_string().len() <= MAX_SCOPE_LEN).then_some(scope)
    }

    /// Whether this (granted) scope covers `requested`: same service and
    /// privilege, and every parameter this scope names has exactly the same
    /// values in `requested`, which may name more.
    pub fn covers(&self, requested: &Scope) -> bool {
        self.service == requested.service
            && self.privilege == requested.privilege
            && self.params.iter().all(|(name, _)| {
                let values = |p: &[(String, String)]| -> Vec<String> {
                    p.iter()
                        .filter(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .collect()
                };
                values(&self.params) == values(&requested.params)
            })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = format!("scope:{}:{}", self.service, self.privilege);
        for (i, (k, v)) in self.params.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            percent_encode(k, &mut s);
            s.push('=');
            percent_encode(v, &mut s);
        }
        f.write_str(&s)
    }
}

/// Normalises a scope string: `None` when it is not a scope.
pub fn normalise(text: &str) -> Option<String> {
    Scope::parse(text).map(|s| s.to_string())
}

/// Whether any of the granted (normalised) scopes covers `requested`.
pub fn any_covers(granted: &[String], requested: &Scope) -> bool {
    granted
        .iter()
        .filter_map(|g| Scope::parse(g))
        .any(|g| g.covers(requested))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Scope {
        Scope::parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    #[test]
    fn parses_twilio_scopes() {
        let a = s("scope:client:incoming?clientName=alice");
        assert_eq!(
            (a.service.as_str(), a.privilege.as_str()),
            ("client", "incoming")
        );
        assert_eq!(a.params, [("clientName".into(), "alice".into())]);
        assert_eq!(s("scope:client:outgoing").params, []);
        for bad in [
            "",
            "scope:client",
            "scope::x",
            "scope:Client:x",
            "scope:client:x y",
            "client:incoming",
            "scope:client:incoming?a=%zz",
            "scope:client:incoming?a=%+1",
            "scope:client:incoming?=v",
            "scope:client:incoming?a=%FF",
            "scope:client:é",
            &format!("scope:client:x?a={}", "b".repeat(MAX_SCOPE_LEN)),
            &format!("scope:{}:x", "a".repeat(33)),
            // 495 characters that normalise to far more than 512.
            &format!("scope:client:x?a={}", "!".repeat(478)),
        ] {
            assert!(Scope::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn every_scope_that_parses_normalises_within_the_limit_and_matches_itself() {
        let longest = format!("scope:client:x?a={}", "!".repeat(165));
        let n = normalise(&longest).expect("fits once normalised");
        assert!(n.len() <= MAX_SCOPE_LEN);
        assert!(any_covers(std::slice::from_ref(&n), &s(&n)));
        assert_eq!(
            normalise(&format!("scope:client:x?a={}", "!".repeat(166))),
            None
        );
    }

    #[test]
    fn normalisation_orders_parameters_and_canonicalises_encoding() {
        let n = normalise("scope:client:outgoing?b=2&appSid=AP1&a=%7e%41").unwrap();
        assert_eq!(n, "scope:client:outgoing?a=~A&appSid=AP1&b=2");
        assert_eq!(normalise(&n).as_deref(), Some(n.as_str()), "idempotent");
        assert_eq!(
            normalise("scope:client:outgoing?appParams=Foo%3DBar%26x%3Dy"),
            normalise("scope:client:outgoing?appParams=Foo%3dBar%26x%3dy")
        );
        // An encoded `&` or `=` inside a value stays inside it.
        let p = s("scope:client:outgoing?appParams=Foo%3DBar%26x%3Dy").params;
        assert_eq!(p, [("appParams".into(), "Foo=Bar&x=y".into())]);
        // `a` and `a=` are the same empty value.
        assert_eq!(normalise("scope:s:p?a"), normalise("scope:s:p?a="));
    }

    #[test]
    fn covered_by() {
        let g = s("scope:client:outgoing?appSid=AP1");
        assert!(g.covers(&s("scope:client:outgoing?appSid=AP1")));
        assert!(g.covers(&s("scope:client:outgoing?appSid=AP1&appParams=x%3D1")));
        assert!(!g.covers(&s("scope:client:outgoing?appSid=AP2")));
        assert!(!g.covers(&s("scope:client:outgoing")));
        assert!(!g.covers(&s("scope:client:incoming?appSid=AP1")));
        assert!(!g.covers(&s("scope:other:outgoing?appSid=AP1")));
        // No parameters granted: any parameters requested.
        assert!(s("scope:client:outgoing").covers(&s("scope:client:outgoing?x=1")));
        // Case matters in values.
        assert!(!g.covers(&s("scope:client:outgoing?appSid=ap1")));
        // Repeated parameters: the granted values must all match exactly.
        let rep = s("scope:s:p?a=1&a=2");
        assert!(rep.covers(&s("scope:s:p?a=2&a=1&b=3")));
        assert!(!rep.covers(&s("scope:s:p?a=1")));
        assert!(!rep.covers(&s("scope:s:p?a=1&a=2&a=3")));
        // Empty values are values.
        let empty = s("scope:s:p?a=");
        assert!(empty.covers(&s("scope:s:p?a")));
        assert!(!empty.covers(&s("scope:s:p?a=x")));
        // Encoded separators do not smuggle parameters in.
        let enc = s("scope:s:p?a=1%26b%3D2");
        assert!(!s("scope:s:p?b=2").covers(&enc));
        assert!(any_covers(
            &[g.to_string()],
            &s("scope:client:outgoing?appSid=AP1")
        ));
    }
}
