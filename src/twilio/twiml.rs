//! TwiML for the voice webhook: the `<Connect><Stream>` document that makes
//! Twilio open a bidirectional Media Stream to us.
//!
//! Must NOT: serve HTTP, validate signatures, or validate the URL. Callers
//! must pass a `wss://` URL **without a query string** (Twilio strips it); per-call
//! data goes in `<Parameter>`s (name and value < 500 chars each), which
//! arrive as strings in `start.customParameters`. Remember that with
//! `<Connect>` only the inbound (caller) track is streamed, and any TwiML after
//! `<Connect>` runs only once the server closes the WebSocket.

/// Builds
/// `<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="…"><Parameter name="…" value="…"/>…</Stream></Connect></Response>`,
/// parameters in the given order, every attribute XML-escaped. Serve it with
/// `Content-Type: text/xml`.
pub fn connect_stream(stream_url: &str, parameters: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(128 + stream_url.len() + parameters.len() * 48);
    out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url=""#);
    push_xml_escaped(&mut out, stream_url);
    out.push_str(r#"">"#);
    for (name, value) in parameters {
        out.push_str(r#"<Parameter name=""#);
        push_xml_escaped(&mut out, name);
        out.push_str(r#"" value=""#);
        push_xml_escaped(&mut out, value);
        out.push_str(r#""/>"#);
    }
    out.push_str("</Stream></Connect></Response>");
    out
}

/// Escapes `s` for an XML attribute value or text: `& < > " '` become
/// entities; tab, LF and CR become character references (so attribute-value
/// normalisation does not turn them into spaces); other control characters,
/// which XML 1.0 cannot represent at all, become U+FFFD.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    push_xml_escaped(&mut out, s);
    out
}

fn push_xml_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_all_five_specials() {
        assert_eq!(
            xml_escape(r#""Bob" <+1555&co>"#),
            "&quot;Bob&quot; &lt;+1555&amp;co&gt;"
        );
        assert_eq!(xml_escape("O'Neil"), "O&apos;Neil");
        assert_eq!(xml_escape("plain +15551234567"), "plain +15551234567");
        assert_eq!(
            xml_escape("a\tb\nc\rd\u{1}e"),
            "a&#9;b&#10;c&#13;d\u{FFFD}e"
        );
        assert_eq!(xml_escape("héllo ☎"), "héllo ☎");
    }

    #[test]
    fn connect_stream_exact_shape() {
        let xml = connect_stream("wss://example.com/twilio/media", &[("tenant", "acme")]);
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>\
             <Stream url=\"wss://example.com/twilio/media\">\
             <Parameter name=\"tenant\" value=\"acme\"/></Stream></Connect></Response>"
        );
        let bare = connect_stream("wss://h/m", &[]);
        assert!(bare.ends_with(r#"<Stream url="wss://h/m"></Stream></Connect></Response>"#));
    }

    #[test]
    fn parameters_escaped_and_in_order() {
        let from = r#""Bob" <+1555&co>"#;
        let xml = connect_stream(
            "wss://h/m?x=1&y=<2>",
            &[("from", from), ("b", "2"), ("a", "1"), ("odd\"name", "v'")],
        );
        assert!(xml.contains(r#"url="wss://h/m?x=1&amp;y=&lt;2&gt;""#));
        assert!(
            xml.contains(
                r#"<Parameter name="from" value="&quot;Bob&quot; &lt;+1555&amp;co&gt;"/>"#
            )
        );
        assert!(xml.contains(r#"<Parameter name="odd&quot;name" value="v&apos;"/>"#));
        let from_at = xml.find(r#"name="from""#);
        let b_at = xml.find(r#"name="b""#);
        let a_at = xml.find(r#"name="a""#);
        assert!(from_at < b_at && b_at < a_at, "order preserved: {xml}");
        assert_well_formed(&xml);
    }

    /// Cheap structural check: after the XML declaration, every `<` opens a
    /// tag that closes with `>`, tags nest properly, attribute values are
    /// quoted and contain no raw `<`, `&` only starts an entity.
    fn assert_well_formed(xml: &str) {
        let body = xml
            .strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
            .unwrap();
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = body;
        while let Some(open) = rest.find('<') {
            assert!(rest[..open].trim().is_empty(), "text outside tags");
            let close = rest[open..].find('>').unwrap() + open;
            let tag = &rest[open + 1..close];
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in {tag}"
            );
            for value in tag.split('"').skip(1).step_by(2) {
                assert!(!value.contains('<'), "raw < in attribute {value}");
                for (i, _) in value.match_indices('&') {
                    let ent = &value[i..];
                    assert!(
                        ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#"]
                            .iter()
                            .any(|e| ent.starts_with(e)),
                        "bare & in {value}"
                    );
                }
            }
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "mismatched close tag");
            } else if !tag.ends_with('/') {
                stack.push(tag.split(' ').next().unwrap());
            }
            rest = &rest[close + 1..];
        }
        assert!(rest.trim().is_empty());
        assert!(stack.is_empty(), "unclosed tags: {stack:?}");
    }
}
