//! A small TwiML reader for the fake: enough XML (declaration, comments, elements, quoted
//! attributes, text, the five entities and character references) to run the verbs a voice
//! agent's server returns — `<Connect><Stream url><Parameter/></Stream></Connect>`, `<Say>`,
//! `<Play>`, `<Pause length>`, `<Dial>`, `<Redirect>`, `<Hangup/>` — and to refuse anything
//! malformed the way Twilio does (the call ends with an application error, 12100).
//!
//! Parsing only; running the verbs is the lifecycle's job.

/// One TwiML verb, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// `<Connect><Stream>`: a bidirectional media stream.
    Stream(StreamVerb),
    Say(String),
    Play(String),
    Pause(u64),
    /// `<Dial>`: the number (or the text of its `<Number>`).
    Dial(String),
    Redirect(String),
    Hangup,
    /// A verb the fake does not run (recorded, skipped).
    Other(String),
}

/// `<Stream>` inside `<Connect>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamVerb {
    pub url: String,
    pub name: Option<String>,
    pub status_callback: Option<String>,
    pub parameters: Vec<(String, String)>,
}

impl Verb {
    /// A short description for the observed call (`Dial:+1555…`, `Stream:wss://…`).
    pub fn describe(&self) -> String {
        match self {
            Verb::Stream(s) => format!("Stream:{}", s.url),
            Verb::Say(t) => format!("Say:{t}"),
            Verb::Play(u) => format!("Play:{u}"),
            Verb::Pause(s) => format!("Pause:{s}"),
            Verb::Dial(n) => format!("Dial:{n}"),
            Verb::Redirect(u) => format!("Redirect:{u}"),
            Verb::Hangup => "Hangup".into(),
            Verb::Other(name) => format!("Other:{name}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.children {
            match c {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => out.push_str(&e.text()),
            }
        }
        out.trim().to_owned()
    }

    fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }
}

/// The verbs of a `<Response>` document, or why it is not valid TwiML.
pub fn parse(doc: &str) -> Result<Vec<Verb>, String> {
    let root = Parser { s: doc, pos: 0 }.document()?;
    if root.name != "Response" {
        return Err(format!("root element is <{}>, not <Response>", root.name));
    }
    let mut verbs = Vec::new();
    for e in root.elements() {
        verbs.push(match e.name.as_str() {
            "Connect" => {
                let stream = e
                    .elements()
                    .find(|c| c.name == "Stream")
                    .ok_or("<Connect> without <Stream>")?;
                let url = stream.attr("url").ok_or("<Stream> without url")?;
                let mut parameters = Vec::new();
                for p in stream.elements().filter(|c| c.name == "Parameter") {
                    let name = p.attr("name").ok_or("<Parameter> without name")?;
                    parameters.push((name.to_owned(), p.attr("value").unwrap_or("").to_owned()));
                }
                Verb::Stream(StreamVerb {
                    url: url.to_owned(),
                    name: stream.attr("name").map(str::to_owned),
                    status_callback: stream.attr("statusCallback").map(str::to_owned),
                    parameters,
                })
            }
            "Say" => Verb::Say(e.text()),
            "Play" => Verb::Play(e.text()),
            "Pause" => Verb::Pause(
                e.attr("length")
                    .map_or(Ok(1), |l| l.trim().parse::<u64>())
                    .map_err(|_| "<Pause length> is not a whole number")?,
            ),
            "Dial" => {
                let inner = e.elements().find(|c| c.name == "Number").map(Element::text);
                let number = inner.unwrap_or_else(|| e.text());
                if number.is_empty() {
                    return Err("<Dial> with nothing to dial".into());
                }
                Verb::Dial(number)
            }
            "Redirect" => Verb::Redirect(e.text()),
            "Hangup" => Verb::Hangup,
            other => Verb::Other(other.to_owned()),
        });
    }
    Ok(verbs)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_misc(&mut self) -> Result<(), String> {
        loop {
            let trimmed = self.rest().trim_start();
            self.pos = self.s.len() - trimmed.len();
            if trimmed.starts_with("<?") {
                let end = trimmed.find("?>").ok_or("unterminated <?…?>")?;
                self.pos += end + 2;
            } else if trimmed.starts_with("<!--") {
                let end = trimmed.find("-->").ok_or("unterminated comment")?;
                self.pos += end + 3;
            } else {
                return Ok(());
            }
        }
    }

    fn document(mut self) -> Result<Element, String> {
        self.skip_misc()?;
        let root = self.element()?;
        self.skip_misc()?;
        if !self.rest().is_empty() {
            return Err("content after the root element".into());
        }
        Ok(root)
    }

    fn name(&mut self) -> Result<String, String> {
        let len = self
            .rest()
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.')))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(format!("expected a name at byte {}", self.pos));
        }
        let name = self.rest()[..len].to_owned();
        self.pos += len;
        Ok(name)
    }

    fn element(&mut self) -> Result<Element, String> {
        if !self.rest().starts_with('<') {
            return Err(format!("expected an element at byte {}", self.pos));
        }
        self.pos += 1;
        let name = self.name()?;
        let mut attrs = Vec::new();
        loop {
            let trimmed = self.rest().trim_start();
            self.pos = self.s.len() - trimmed.len();
            if let Some(after) = trimmed.strip_prefix("/>") {
                self.pos = self.s.len() - after.len();
                return Ok(Element {
                    name,
                    attrs,
                    children: Vec::new(),
                });
            }
            if trimmed.starts_with('>') {
                self.pos += 1;
                break;
            }
            let attr = self.name()?;
            let rest = self.rest().trim_start();
            let rest = rest.strip_prefix('=').ok_or("attribute without =")?;
            let rest = rest.trim_start();
            let quote = rest
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')
                .ok_or("unquoted attribute value")?;
            let end = rest[1..]
                .find(quote)
                .ok_or("unterminated attribute value")?;
            let raw = &rest[1..1 + end];
            if raw.contains('<') {
                return Err("'<' in an attribute value".into());
            }
            attrs.push((attr, unescape(raw)?));
            self.pos = self.s.len() - rest.len() + end + 2;
        }
        let mut children = Vec::new();
        loop {
            let close = format!("</{name}");
            if self.rest().starts_with(&close) {
                self.pos += close.len();
                let rest = self.rest().trim_start();
                let rest = rest.strip_prefix('>').ok_or("malformed close tag")?;
                self.pos = self.s.len() - rest.len();
                return Ok(Element {
                    name,
                    attrs,
                    children,
                });
            }
            if self.rest().starts_with("<!--") {
                let end = self.rest().find("-->").ok_or("unterminated comment")?;
                self.pos += end + 3;
            } else if self.rest().starts_with("</") {
                return Err(format!("mismatched close tag in <{name}>"));
            } else if self.rest().starts_with('<') {
                children.push(Node::Element(self.element()?));
            } else if self.rest().is_empty() {
                return Err(format!("<{name}> is never closed"));
            } else {
                let len = self.rest().find('<').unwrap_or(self.rest().len());
                let text = unescape(&self.rest()[..len])?;
                self.pos += len;
                children.push(Node::Text(text));
            }
        }
    }
}

fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let semi = rest[amp..].find(';').ok_or("bare '&'")? + amp;
        let entity = &rest[amp + 1..semi];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("bad character reference &{e};"))?,
            e if e.starts_with('#') => e[1..]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("bad character reference &{e};"))?,
            e => return Err(format!("unknown entity &{e};")),
        };
        out.push(c);
        rest = &rest[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio::twiml::connect_stream;

    #[test]
    fn reads_what_voxbridge_writes() {
        let doc = connect_stream(
            "wss://h:1/twilio/media",
            &[("From", "+1555"), ("odd", "a&b<\"c\"> 'd'\n")],
        );
        let verbs = parse(&doc).unwrap();
        assert_eq!(
            verbs,
            [Verb::Stream(StreamVerb {
                url: "wss://h:1/twilio/media".into(),
                name: None,
                status_callback: None,
                parameters: vec![
                    ("From".into(), "+1555".into()),
                    ("odd".into(), "a&b<\"c\"> 'd'\n".into())
                ],
            })]
        );
    }

    #[test]
    fn reads_other_verbs() {
        let doc = r#"<?xml version="1.0"?>
            <!-- a comment -->
            <Response>
              <Say voice='alice'>Hello &amp; welcome</Say>
              <Pause length="2"/>
              <Play>https://x/a.mp3</Play>
              <Dial><Number>+15551234567</Number></Dial>
              <Dial>+15557654321</Dial>
              <Gather/>
              <Hangup />
            </Response>"#;
        let verbs = parse(doc).unwrap();
        assert_eq!(
            verbs,
            [
                Verb::Say("Hello & welcome".into()),
                Verb::Pause(2),
                Verb::Play("https://x/a.mp3".into()),
                Verb::Dial("+15551234567".into()),
                Verb::Dial("+15557654321".into()),
                Verb::Other("Gather".into()),
                Verb::Hangup,
            ]
        );
        assert_eq!(parse("<Response/>").unwrap(), []);
    }

    #[test]
    fn refuses_malformed_twiml() {
        for bad in [
            "",
            "hello",
            "<Response>",
            "<Response></Respons>",
            "<Response><Say>a</Response>",
            "<Response><Connect/></Response>",
            "<Response><Connect><Stream/></Connect></Response>",
            "<Response><Say>a & b</Say></Response>",
            "<Response><Say x=1>a</Say></Response>",
            "<Response><Dial></Dial></Response>",
            "<Response><Pause length=\"x\"/></Response>",
            "<Html></Html>",
            "<Response/><Response/>",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
