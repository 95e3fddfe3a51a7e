//! The pre-pass: split a message into start line, header fields and body,
//! unfold continuation lines and normalise linear white space (RFC 3261
//! 7.3.1), so that the field parsers and `rsip` see one canonical spelling.
//!
//! Nothing here allocates more than a small multiple of the input, and every
//! loop walks the input once.

use super::error::MessageError;

/// Request or response, decided from the start line alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Request,
    Response,
}

/// How white space inside a field value is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Free text: trimmed only.
    Text,
    /// Scalars (CSeq, Max-Forwards, ...): runs of white space become one SP.
    Words,
    /// Structured values: SWS around these separators is removed (RFC 3261
    /// 25.1: SEMI, EQUAL, COMMA, SLASH, COLON are `SWS x SWS`), quoted
    /// strings and `<...>` are kept verbatim, other runs become one SP.
    Seps(&'static [u8]),
}

/// A header field this stack knows by name.
#[derive(Debug)]
pub(crate) struct Known {
    pub name: &'static str,
    compact: Option<u8>,
    pub shape: Shape,
}

const fn k(name: &'static str, compact: Option<u8>, shape: Shape) -> Known {
    Known {
        name,
        compact,
        shape,
    }
}

const LIST: Shape = Shape::Seps(b",");
const PARAMS: Shape = Shape::Seps(b";=");
const ADDRS: Shape = Shape::Seps(b";=,");
const AUTH: Shape = Shape::Seps(b"=,");

/// Canonical names, compact forms (RFC 3261 7.3.3 and the IANA registry)
/// and value shapes.
static KNOWN: &[Known] = &[
    k("Accept", None, Shape::Seps(b";=,/")),
    k("Accept-Contact", Some(b'a'), ADDRS),
    k("Accept-Encoding", None, ADDRS),
    k("Accept-Language", None, ADDRS),
    k("Alert-Info", None, ADDRS),
    k("Allow", None, LIST),
    k("Allow-Events", Some(b'u'), LIST),
    k("Authentication-Info", None, AUTH),
    k("Authorization", None, AUTH),
    k("Call-ID", Some(b'i'), Shape::Text),
    k("Call-Info", None, ADDRS),
    k("Contact", Some(b'm'), ADDRS),
    k("Content-Disposition", None, PARAMS),
    k("Content-Encoding", Some(b'e'), LIST),
    k("Content-Language", None, LIST),
    k("Content-Length", Some(b'l'), Shape::Words),
    k("Content-Type", Some(b'c'), Shape::Seps(b";=/")),
    k("CSeq", None, Shape::Words),
    k("Date", None, Shape::Words),
    k("Error-Info", None, ADDRS),
    k("Event", Some(b'o'), PARAMS),
    k("Expires", None, Shape::Words),
    k("From", Some(b'f'), PARAMS),
    k("Identity", Some(b'y'), Shape::Text),
    k("Identity-Info", Some(b'n'), PARAMS),
    k("In-Reply-To", None, LIST),
    k("Max-Forwards", None, Shape::Words),
    k("MIME-Version", None, Shape::Words),
    k("Min-Expires", None, Shape::Words),
    k("Organization", None, Shape::Text),
    k("Priority", None, Shape::Words),
    k("Proxy-Authenticate", None, AUTH),
    k("Proxy-Authorization", None, AUTH),
    k("Proxy-Require", None, LIST),
    k("Record-Route", None, ADDRS),
    k("Refer-To", Some(b'r'), PARAMS),
    k("Referred-By", Some(b'b'), PARAMS),
    k("Reject-Contact", Some(b'j'), ADDRS),
    k("Reply-To", None, PARAMS),
    k("Request-Disposition", Some(b'd'), LIST),
    k("Require", None, LIST),
    k("Retry-After", None, Shape::Text),
    k("Route", None, ADDRS),
    k("Server", None, Shape::Text),
    k("Session-Expires", Some(b'x'), PARAMS),
    k("Subject", Some(b's'), Shape::Text),
    k("Subscription-State", None, PARAMS),
    k("Supported", Some(b'k'), LIST),
    k("Timestamp", None, Shape::Words),
    k("To", Some(b't'), PARAMS),
    k("Unsupported", None, LIST),
    k("User-Agent", None, Shape::Text),
    k("Via", Some(b'v'), Shape::Seps(b";=,/:")),
    k("Warning", None, Shape::Text),
    k("WWW-Authenticate", None, AUTH),
];

/// The known header a received field name denotes (case-insensitive, long
/// or compact form).
pub(crate) fn lookup(name: &str) -> Option<&'static Known> {
    if let [c] = name.as_bytes() {
        let c = c.to_ascii_lowercase();
        return KNOWN.iter().find(|h| h.compact == Some(c));
    }
    KNOWN.iter().find(|h| h.name.eq_ignore_ascii_case(name))
}

/// A header field name: canonical if known, as received otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Name {
    Known(&'static Known),
    Other(String),
}

impl Name {
    pub fn is(&self, canonical: &str) -> bool {
        matches!(self, Name::Known(k) if k.name == canonical)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Name::Known(k) => k.name,
            Name::Other(s) => s,
        }
    }
}

impl PartialEq for Known {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for Known {}

/// One unfolded, normalised header field.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub name: Name,
    pub value: String,
}

/// A message split into its parts.
#[derive(Debug)]
pub(crate) struct Lexed<'a> {
    pub kind: Kind,
    pub start: &'a [u8],
    pub fields: Vec<Field>,
    pub body: &'a [u8],
    /// Whether an empty line ended the header section.
    pub terminated: bool,
    /// The first malformed header line; the field is left out of `fields`.
    pub error: Option<MessageError>,
}

/// Splits `input` into lines ending in LF (a CR before it is dropped).
struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    /// (line without its terminator, offset just past the terminator)
    type Item = (&'a [u8], usize);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.input.len() {
            return None;
        }
        let rest = &self.input[self.pos..];
        let (mut line, advance) = match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => (&rest[..nl], nl + 1),
            None => (rest, rest.len()),
        };
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        self.pos += advance;
        Some((line, self.pos))
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn starts_with_sip_slash(s: &[u8]) -> bool {
    s.len() >= 4 && s[..4].eq_ignore_ascii_case(b"SIP/")
}

/// Request-Line ends in a SIP-Version, a Status-Line starts with one.
fn classify(start: &[u8]) -> Option<Kind> {
    if starts_with_sip_slash(start) {
        return Some(Kind::Response);
    }
    let last = start.split(|&b| b == b' ').rfind(|t| !t.is_empty())?;
    starts_with_sip_slash(last).then_some(Kind::Request)
}

/// A field as read: name part and folded value lines.
struct RawField {
    line: usize,
    first: Vec<u8>,
    value: Vec<u8>,
}

pub(crate) fn lex(input: &[u8]) -> Result<Lexed<'_>, MessageError> {
    // RFC 3261 7.5: CRLFs before the start line are ignored.
    let skip = input
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let input = &input[skip..];
    let mut lines = Lines { input, pos: 0 };
    let Some((start, _)) = lines.next() else {
        return Err(MessageError::Empty);
    };
    let kind = classify(start).ok_or(MessageError::Garbage)?;
    let mut lexed = Lexed {
        kind,
        start,
        fields: Vec::new(),
        body: &[],
        terminated: false,
        error: None,
    };
    let mut pending: Option<RawField> = None;
    for (index, (line, next)) in lines.enumerate() {
        let number = index + 2;
        if line.is_empty() {
            lexed.terminated = true;
            lexed.body = &input[next..];
            break;
        }
        if is_wsp(line[0]) {
            // RFC 3261 7.3.1: a line starting with white space continues the
            // previous field; the fold is equivalent to one SP.
            match pending.as_mut() {
                Some(raw) => {
                    raw.value.push(b' ');
                    raw.value.extend_from_slice(line);
                }
                None => lexed.fail(number, "continuation line before any header field"),
            }
            continue;
        }
        if let Some(raw) = pending.take() {
            lexed.finish(raw);
        }
        match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                pending = Some(RawField {
                    line: number,
                    first: line[..colon].to_vec(),
                    value: line[colon + 1..].to_vec(),
                })
            }
            None => lexed.fail(number, "no colon after the field name"),
        }
    }
    if let Some(raw) = pending.take() {
        lexed.finish(raw);
    }
    Ok(lexed)
}

impl Lexed<'_> {
    fn fail(&mut self, line: usize, reason: &'static str) {
        if self.error.is_none() {
            self.error = Some(MessageError::BadHeaderLine { line, reason });
        }
    }

    fn finish(&mut self, raw: RawField) {
        match field(&raw) {
            Ok(f) => self.fields.push(f),
            Err(reason) => self.fail(raw.line, reason),
        }
    }
}

fn field(raw: &RawField) -> Result<Field, &'static str> {
    // HCOLON = *( SP / HTAB ) ":" SWS
    let name = trim(&raw.first);
    if name.is_empty() || !name.iter().all(|&b| is_token_char(b)) {
        return Err("field name is not a token");
    }
    let name = std::str::from_utf8(name).map_err(|_| "field name is not a token")?;
    let value = std::str::from_utf8(trim(&raw.value)).map_err(|_| "value is not UTF-8")?;
    if value.contains('\r') {
        return Err("bare CR in a field value");
    }
    let (name, value) = match lookup(name) {
        Some(known) => {
            let value = match known.shape {
                Shape::Text => {
                    no_controls(value)?;
                    value.to_owned()
                }
                Shape::Words => {
                    no_controls(value)?;
                    collapse(value)
                }
                Shape::Seps(seps) => {
                    no_controls_outside_quotes(value)?;
                    normalize(value, seps)
                }
            };
            (Name::Known(known), value)
        }
        None => {
            no_controls(value)?;
            (Name::Other(name.to_owned()), value.to_owned())
        }
    };
    Ok(Field { name, value })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_wsp(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_wsp(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// RFC 3261 25.1 `token`.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// TEXT-UTF8 has no control characters (HTAB is LWS).
fn no_controls(value: &str) -> Result<(), &'static str> {
    if value.bytes().any(is_control) {
        return Err("control character in a field value");
    }
    Ok(())
}

/// Structured values may carry control characters only as a quoted-pair.
fn no_controls_outside_quotes(value: &str) -> Result<(), &'static str> {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = quoted_end(b, i).ok_or("unterminated or invalid quoted string")?,
            c if is_control(c) => return Err("control character in a field value"),
            _ => i += 1,
        }
    }
    Ok(())
}

/// `b[start]` is a DQUOTE; returns the index just past the closing one.
/// qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII;
/// quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F) (RFC 3261 25.1).
pub(crate) fn quoted_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => match b.get(i + 1) {
                Some(&c) if c < 0x80 && c != b'\r' && c != b'\n' => i += 2,
                _ => return None,
            },
            c if is_control(c) => return None,
            _ => i += 1,
        }
    }
    None
}

/// Runs of white space become one SP.
pub(crate) fn collapse(value: &str) -> String {
    value
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// See [`Shape::Seps`]. Idempotent: normalising a normalised value changes
/// nothing, which the fuzz harness checks.
pub(crate) fn normalize(value: &str, seps: &[u8]) -> String {
    let b = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    let mut space = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if is_wsp(c) {
            space = true;
            i += 1;
            continue;
        }
        if seps.contains(&c) {
            // Separators are ASCII, so slicing around them is char-safe.
            out.push(char::from(c));
            space = false;
            i += 1;
            while i < b.len() && is_wsp(b[i]) {
                i += 1;
            }
            continue;
        }
        let end = match c {
            b'"' => quoted_end(b, i).unwrap_or(b.len()),
            b'<' => b[i..]
                .iter()
                .position(|&x| x == b'>')
                .map_or(b.len(), |p| i + p + 1),
            _ => {
                let mut j = i + 1;
                while j < b.len()
                    && !is_wsp(b[j])
                    && !seps.contains(&b[j])
                    && !matches!(b[j], b'"' | b'<')
                {
                    j += 1;
                }
                j
            }
        };
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push_str(&value[i..end]);
        i = end;
    }
    out
}

/// Splits a normalised value at commas outside quoted strings and `<...>`.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let b = value.as_bytes();
    let mut parts = Vec::new();
    let mut from = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = quoted_end(b, i).unwrap_or(b.len()),
            b'<' => {
                i = b[i..]
                    .iter()
                    .position(|&x| x == b'>')
                    .map_or(b.len(), |p| i + p + 1)
            }
            b',' => {
                parts.push(&value[from..i]);
                i += 1;
                from = i;
            }
            _ => i += 1,
        }
    }
    parts.push(&value[from..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_ok(s: &str) -> Lexed<'_> {
        lex(s.as_bytes()).unwrap()
    }

    #[test]
    fn unfolds_and_expands_compact_names() {
        let l = lex_ok(
            "INVITE sip:a@b SIP/2.0\r\nv:  SIP  / 2.0  / UDP  h.example.com   ;\r\n  branch  =   z9hG4bK1\r\nTO :\r\n sip:x@y ;  tag = 1\r\n\r\nbody",
        );
        assert_eq!(l.kind, Kind::Request);
        assert!(l.terminated);
        assert_eq!(l.body, b"body");
        assert!(l.fields[0].name.is("Via"));
        assert_eq!(
            l.fields[0].value,
            "SIP/2.0/UDP h.example.com;branch=z9hG4bK1"
        );
        assert!(l.fields[1].name.is("To"));
        assert_eq!(l.fields[1].value, "sip:x@y;tag=1");
    }

    #[test]
    fn quoted_strings_and_brackets_stay_verbatim() {
        let v = normalize(r#""J  R \"x\" ;= "    <sip:a@b;x = y> ; tag = 9"#, b";=,");
        assert_eq!(v, r#""J  R \"x\" ;= " <sip:a@b;x = y>;tag=9"#);
        assert_eq!(normalize(&v, b";=,"), v);
        assert_eq!(normalize("caller<sip:c@d>", b";="), "caller<sip:c@d>");
    }

    #[test]
    fn lists_split_outside_quotes_and_brackets() {
        let parts = split_list(r#""a,b" <sip:x@y;p=1,2>;q=1,<sip:z@w>"#);
        assert_eq!(parts, vec![r#""a,b" <sip:x@y;p=1,2>;q=1"#, "<sip:z@w>"]);
    }

    #[test]
    fn crlf_before_start_line_is_ignored_and_bare_lf_accepted() {
        let l = lex_ok("\r\n\r\nSIP/2.0 200 OK\nCall-ID: x\n\n");
        assert_eq!(l.kind, Kind::Response);
        assert_eq!(l.start, b"SIP/2.0 200 OK");
        assert_eq!(l.fields.len(), 1);
        assert!(l.terminated);
    }

    #[test]
    fn malformed_lines_are_reported_and_skipped() {
        let l = lex_ok(
            "OPTIONS sip:a SIP/2.0\r\n bad fold\r\nno colon here\r\nX-A: \x01\r\nCall-ID: ok\r\n",
        );
        assert!(!l.terminated);
        assert_eq!(
            l.error,
            Some(MessageError::BadHeaderLine {
                line: 2,
                reason: "continuation line before any header field"
            })
        );
        assert_eq!(l.fields.len(), 1);
        assert!(l.fields[0].name.is("Call-ID"));
    }

    #[test]
    fn garbage_and_empty_are_told_apart() {
        assert_eq!(lex(b"").unwrap_err(), MessageError::Empty);
        assert_eq!(lex(b"\r\n\r\n").unwrap_err(), MessageError::Empty);
        assert_eq!(lex(b"hello world\r\n").unwrap_err(), MessageError::Garbage);
        assert_eq!(lex(b"\xff\xfe SIP/2.0").unwrap().kind, Kind::Request);
    }

    #[test]
    fn quoted_pairs_may_carry_controls_but_raw_controls_are_refused() {
        assert_eq!(quoted_end(b"\"a\\\x00b\"", 0), Some(6));
        assert_eq!(quoted_end(b"\"a\x00b\"", 0), None);
        assert_eq!(quoted_end(b"\"open", 0), None);
        assert!(no_controls_outside_quotes("\"x\\\x07\" <sip:a@b>").is_ok());
        assert!(no_controls_outside_quotes("x\x07").is_err());
    }

    #[test]
    fn lookup_is_case_insensitive_and_knows_compact_forms() {
        assert_eq!(lookup("cseq").map(|k| k.name), Some("CSeq"));
        assert_eq!(lookup("M").map(|k| k.name), Some("Contact"));
        assert_eq!(lookup("l").map(|k| k.name), Some("Content-Length"));
        assert!(lookup("X-Unknown").is_none());
        assert!(lookup("z").is_none());
    }
}
