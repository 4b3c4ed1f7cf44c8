//! XML answers (8x8 style): the same document as JSON under a root element.

use serde_json::Value;

/// Renders a JSON document as XML under `root`. Arrays repeat a child named
/// for the list (`tokens` → `token`); `tags` become `<tag key="…">`, since
/// tag keys need not be valid element names.
pub fn to_xml(root: &str, doc: &Value) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    write_element(&mut out, root, doc);
    out
}

fn item_name(list: &str) -> &str {
    match list {
        "tokens" => "token",
        "identities" => "identity",
        "records" => "record",
        "audiences" => "audience",
        "allowedAddresses" => "address",
        "scopes" => "scope",
        "rateLimits" => "rateLimit",
        "errors" => "error",
        _ => "item",
    }
}

fn write_element(out: &mut String, name: &str, v: &Value) {
    if v.is_null() {
        return;
    }
    out.push('<');
    out.push_str(name);
    out.push('>');
    match v {
        Value::Object(map) if name == "tags" => {
            for (k, val) in map {
                out.push_str("<tag key=\"");
                escape(out, k);
                out.push_str("\">");
                escape(out, val.as_str().unwrap_or_default());
                out.push_str("</tag>");
            }
        }
        Value::Object(map) => {
            for (k, val) in map {
                write_element(out, k, val);
            }
        }
        Value::Array(items) => {
            for item in items {
                write_element(out, item_name(name), item);
            }
        }
        Value::String(s) => escape(out, s),
        other => out.push_str(&other.to_string()),
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Escapes text for element content and attribute values alike. TAB, LF
/// and CR are written as character references, since parsers normalise
/// them away in attributes (and CR in content); characters XML 1.0 cannot
/// carry at all (other C0 controls, U+FFFE, U+FFFF) become U+FFFD.
fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn xml_rendering() {
        let doc = json!({"id": "a<b", "tags": {"k 1": "v&"}, "allowedAddresses": ["1.2.3.4"], "n": 5, "x": null});
        let xml = to_xml("token", &doc);
        assert!(xml.contains("<token>"));
        assert!(xml.contains("<id>a&lt;b</id>"));
        assert!(xml.contains("<tag key=\"k 1\">v&amp;</tag>"));
        assert!(xml.contains("<allowedAddresses><address>1.2.3.4</address></allowedAddresses>"));
        assert!(xml.contains("<n>5</n>"));
        assert!(!xml.contains("<x>"));
    }

    #[test]
    fn characters_xml_cannot_carry_or_would_normalise() {
        let doc =
            json!({"description": "a\u{FFFE}b\u{FFFF}c\u{1}d\re", "tags": {"k\tx": "v\r\n\tw"}});
        let xml = to_xml("token", &doc);
        assert!(xml.contains("<description>a\u{FFFD}b\u{FFFD}c\u{FFFD}d&#xD;e</description>"));
        assert!(xml.contains("<tag key=\"k&#x9;x\">v&#xD;&#xA;&#x9;w</tag>"));
        assert!(!xml.contains('\u{FFFE}') && !xml.contains('\u{FFFF}'));
    }
}
