//! Readers for `name-addr` headers (To, From, Contact; RFC 3261 20.10,
//! 25.1) and for header values by name, compact forms included (7.3.3).
//!
//! rsip keeps `Contact: <a>, <b>` as one value and its typed Contact
//! cannot parse a list, an IPv6 host or a quoted parameter, so the
//! registrar and the registration client read these themselves.

use super::uri::{SipUri, UriError};
use rsip::headers::UntypedHeader;

const MAX_CONTACTS: usize = 64;
const MAX_HEADER_PARAMS: usize = 32;

/// Why a name-addr header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("bad URI: {0}")]
    Uri(#[from] UriError),
    #[error("unbalanced quotes or angle brackets in {0:?}")]
    Unbalanced(String),
    #[error("more than {MAX_CONTACTS} contacts")]
    TooManyContacts,
    #[error("more than {MAX_HEADER_PARAMS} header parameters in {0:?}")]
    TooManyParams(String),
    #[error("bad header parameter in {0:?}")]
    BadParam(String),
    #[error("bad q value {0:?} (RFC 3261 20.10: 0 to 1, three decimals)")]
    BadQ(String),
    #[error("header {0} is missing")]
    Missing(&'static str),
}

/// `[display-name] <uri>;params` or `uri;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display_name: Option<String>,
    pub uri: SipUri,
    /// Header parameters (after the URI), names lower-case, values
    /// unquoted.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// The `expires` parameter in seconds. RFC 3261 20.19 asks for
    /// malformed values to be read as 3600 and values past 2**32-1 as
    /// 2**32-1.
    pub fn expires(&self) -> Option<u32> {
        let v = self.param("expires")??;
        Some(parse_delta_seconds(v).unwrap_or(3600))
    }

    /// The `q` parameter in thousandths (RFC 3261 20.10 `qvalue`).
    pub fn q_millis(&self) -> Result<Option<u16>, ContactError> {
        match self.param("q") {
            None => Ok(None),
            Some(None) => Err(ContactError::BadQ(String::new())),
            Some(Some(v)) => parse_qvalue(v).map(Some),
        }
    }

    /// The tag parameter (From/To).
    #[cfg(test)]
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
}

/// One element of a Contact header: `*` or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactEntry {
    Wildcard,
    Addr(NameAddr),
}

/// `delta-seconds`, saturating at 2**32-1 (RFC 3261 20.19).
pub fn parse_delta_seconds(v: &str) -> Option<u32> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        v.parse::<u64>()
            .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX)),
    )
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
pub fn parse_qvalue(v: &str) -> Result<u16, ContactError> {
    let bad = || ContactError::BadQ(v.to_string());
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let frac_millis = format!("{frac:0<3}").parse::<u16>().map_err(|_| bad())?;
    match int {
        "0" => Ok(frac_millis),
        "1" if frac_millis == 0 => Ok(1000),
        _ => Err(bad()),
    }
}

/// Splits a header value at commas outside quotes and angle brackets.
fn split_list(value: &str) -> Result<Vec<&str>, ContactError> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted || angle {
        return Err(ContactError::Unbalanced(value.to_string()));
    }
    out.push(&value[start..]);
    Ok(out
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect())
}

/// Reads one `name-addr` / `addr-spec` with its header parameters.
pub fn parse_name_addr(value: &str) -> Result<NameAddr, ContactError> {
    let value = value.trim();
    let (display_name, uri_text, rest) = if let Some(lt) = find_unquoted(value, '<') {
        let after = &value[lt + 1..];
        let gt = after
            .find('>')
            .ok_or_else(|| ContactError::Unbalanced(value.to_string()))?;
        let display = value[..lt].trim();
        let display = if display.is_empty() {
            None
        } else if let Some(q) = display.strip_prefix('"') {
            let inner = q
                .strip_suffix('"')
                .ok_or_else(|| ContactError::Unbalanced(value.to_string()))?;
            Some(unquote_pairs(inner))
        } else {
            Some(display.to_string())
        };
        (display, &after[..gt], &after[gt + 1..])
    } else {
        // addr-spec without brackets: every ';' starts a header parameter
        // (RFC 3261 20.10).
        match value.find(';') {
            Some(i) => (None, &value[..i], &value[i..]),
            None => (None, value, ""),
        }
    };
    let uri = SipUri::parse(uri_text)?;
    let params = parse_header_params(rest)?;
    Ok(NameAddr {
        display_name,
        uri,
        params,
    })
}

fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == needle && !quoted {
            return Some(i);
        }
    }
    None
}

fn unquote_pairs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `*( SEMI generic-param )` with quoted values allowed.
fn parse_header_params(rest: &str) -> Result<Vec<(String, Option<String>)>, ContactError> {
    let mut params = Vec::new();
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(params);
    }
    let Some(rest) = rest.strip_prefix(';') else {
        return Err(ContactError::BadParam(rest.to_string()));
    };
    let mut items = Vec::new();
    let (mut quoted, mut escaped, mut start) = (false, false, 0);
    for (i, c) in rest.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                items.push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(ContactError::Unbalanced(rest.to_string()));
    }
    items.push(&rest[start..]);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            return Err(ContactError::BadParam(rest.to_string()));
        }
        if params.len() == MAX_HEADER_PARAMS {
            return Err(ContactError::TooManyParams(rest.to_string()));
        }
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => {
                let v = v.trim();
                let v = match v.strip_prefix('"') {
                    Some(q) => unquote_pairs(
                        q.strip_suffix('"')
                            .ok_or_else(|| ContactError::Unbalanced(item.to_string()))?,
                    ),
                    None => v.to_string(),
                };
                (n.trim(), Some(v))
            }
            None => (item, None),
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ContactError::BadParam(item.to_string()));
        }
        params.push((name.to_ascii_lowercase(), value));
    }
    Ok(params)
}

/// Every Contact in the headers, across repeated headers and comma lists.
pub fn parse_contacts(headers: &rsip::Headers) -> Result<Vec<ContactEntry>, ContactError> {
    let mut out = Vec::new();
    for value in header_values(headers, HeaderName::Contact) {
        for item in split_list(value)? {
            if out.len() == MAX_CONTACTS {
                return Err(ContactError::TooManyContacts);
            }
            out.push(if item == "*" {
                ContactEntry::Wildcard
            } else {
                ContactEntry::Addr(parse_name_addr(item)?)
            });
        }
    }
    Ok(out)
}

/// The one name-addr of a To or From header.
pub fn parse_single(headers: &rsip::Headers, name: HeaderName) -> Result<NameAddr, ContactError> {
    let value = header_values(headers, name)
        .into_iter()
        .next()
        .ok_or(ContactError::Missing(name.canonical()))?;
    parse_name_addr(value)
}

/// Headers read by name, long or compact form (RFC 3261 7.3.3), because
/// rsip files a compact name like `m:` under `Header::Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderName {
    Contact,
    To,
    #[cfg_attr(not(test), allow(dead_code))]
    From,
    Via,
    CallId,
    Expires,
    MinExpires,
    RetryAfter,
    Require,
    UserAgent,
}

impl HeaderName {
    pub fn canonical(self) -> &'static str {
        match self {
            HeaderName::Contact => "Contact",
            HeaderName::To => "To",
            HeaderName::From => "From",
            HeaderName::Via => "Via",
            HeaderName::CallId => "Call-ID",
            HeaderName::Expires => "Expires",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Require => "Require",
            HeaderName::UserAgent => "User-Agent",
        }
    }

    fn compact(self) -> Option<&'static str> {
        match self {
            HeaderName::Contact => Some("m"),
            HeaderName::To => Some("t"),
            HeaderName::From => Some("f"),
            HeaderName::Via => Some("v"),
            HeaderName::CallId => Some("i"),
            _ => None,
        }
    }

    fn typed_value(self, h: &rsip::Header) -> Option<&str> {
        use rsip::Header as H;
        Some(match (self, h) {
            (HeaderName::Contact, H::Contact(v)) => v.value(),
            (HeaderName::To, H::To(v)) => v.value(),
            (HeaderName::From, H::From(v)) => v.value(),
            (HeaderName::Via, H::Via(v)) => v.value(),
            (HeaderName::CallId, H::CallId(v)) => v.value(),
            (HeaderName::Expires, H::Expires(v)) => v.value(),
            (HeaderName::MinExpires, H::MinExpires(v)) => v.value(),
            (HeaderName::RetryAfter, H::RetryAfter(v)) => v.value(),
            (HeaderName::Require, H::Require(v)) => v.value(),
            (HeaderName::UserAgent, H::UserAgent(v)) => v.value(),
            _ => return None,
        })
    }
}

/// The values of header `name`, in message order.
pub fn header_values(headers: &rsip::Headers, name: HeaderName) -> Vec<&str> {
    headers
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Other(n, v)
                if n.eq_ignore_ascii_case(name.canonical())
                    || name.compact().is_some_and(|c| n.eq_ignore_ascii_case(c)) =>
            {
                Some(v.as_str())
            }
            h => name.typed_value(h),
        })
        .collect()
}

/// The first value of header `name`, trimmed.
pub fn header_value(headers: &rsip::Headers, name: HeaderName) -> Option<&str> {
    header_values(headers, name)
        .into_iter()
        .next()
        .map(str::trim)
}

/// Comma-separated tokens across all headers `name` (Require, Supported).
pub fn header_tokens(headers: &rsip::Headers, name: HeaderName) -> Vec<String> {
    header_values(headers, name)
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> rsip::Headers {
        let text: String = lines.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        rsip::Request::try_from(format!(
            "REGISTER sip:example.com SIP/2.0\r\n{text}Content-Length: 0\r\n\r\n"
        ))
        .unwrap()
        .headers
    }

    fn addr(e: &ContactEntry) -> &NameAddr {
        match e {
            ContactEntry::Addr(a) => a,
            ContactEntry::Wildcard => panic!("wildcard"),
        }
    }

    #[test]
    fn lists_repeated_headers_and_compact_form() {
        let h = headers(&[
            (
                "Contact",
                r#""Foo, Bar" <sip:a@[2001:db8::1]:5062>;expires=60, <sip:b@h>;q=0.5"#,
            ),
            ("m", "sip:c@h;expires=10"),
        ]);
        let c = parse_contacts(&h).unwrap();
        assert_eq!(c.len(), 3);
        let a = addr(&c[0]);
        assert_eq!(a.display_name.as_deref(), Some("Foo, Bar"));
        assert_eq!(a.uri.host, "2001-db8-0-0-0-0-0-1.ipv6.invalid");
        assert_eq!(a.expires(), Some(60));
        assert_eq!(addr(&c[1]).q_millis(), Ok(Some(500)));
        // Without brackets the parameter belongs to the header.
        let third = addr(&c[2]);
        assert_eq!(third.expires(), Some(10));
        assert!(third.uri.params.is_empty());
    }

    #[test]
    fn wildcard_and_quoted_params() {
        let h = headers(&[(
            "Contact",
            r#"*, <sip:a@h;transport=tcp>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1"#,
        )]);
        let c = parse_contacts(&h).unwrap();
        assert_eq!(c[0], ContactEntry::Wildcard);
        let a = addr(&c[1]);
        assert_eq!(a.uri.param("transport"), Some(Some("tcp")));
        assert_eq!(
            a.param("+sip.instance"),
            Some(Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"))
        );
        assert_eq!(a.param("reg-id"), Some(Some("1")));
    }

    #[test]
    fn expires_and_q_edge_cases() {
        let one = |v: &str| parse_name_addr(v).unwrap();
        assert_eq!(
            one("<sip:a@h>;expires=99999999999").expires(),
            Some(u32::MAX)
        );
        assert_eq!(one("<sip:a@h>;expires=soon").expires(), Some(3600));
        assert_eq!(one("<sip:a@h>").expires(), None);
        assert_eq!(one("<sip:a@h>;q=1").q_millis(), Ok(Some(1000)));
        assert_eq!(one("<sip:a@h>;q=1.000").q_millis(), Ok(Some(1000)));
        assert_eq!(one("<sip:a@h>;q=0.07").q_millis(), Ok(Some(70)));
        for bad in ["1.5", "2", "0.1234", "x", "-0", "0.-1"] {
            assert!(
                one(&format!("<sip:a@h>;q={bad}")).q_millis().is_err(),
                "{bad}"
            );
        }
        assert!(one("<sip:a@h>;q").q_millis().is_err());
    }

    #[test]
    fn to_header_with_tag_and_display_name_escapes() {
        let h = headers(&[("t", r#""Bob \"B\" <x>" <sip:bob@Biloxi.com>;tag=a6c85cf"#)]);
        let to = parse_single(&h, HeaderName::To).unwrap();
        assert_eq!(to.display_name.as_deref(), Some(r#"Bob "B" <x>"#));
        assert_eq!(to.tag(), Some("a6c85cf"));
        assert_eq!(to.uri.aor(), "sip:bob@biloxi.com");
        assert_eq!(
            parse_single(&h, HeaderName::From),
            Err(ContactError::Missing("From"))
        );
    }

    #[test]
    fn malformed_contacts_are_typed_errors() {
        for bad in [
            "<sip:a@h",
            r#""unterminated <sip:a@h>"#,
            "<tel:+1>",
            "<sip:a@h>;=x",
            "<sip:a@h>;;x",
            "<sip:a@h>junk",
            r#"<sip:a@h>;p="open"#,
        ] {
            let h = headers(&[("Contact", bad)]);
            assert!(parse_contacts(&h).is_err(), "{bad:?} accepted");
        }
        let many = vec!["<sip:a@h>"; MAX_CONTACTS + 1].join(",");
        assert_eq!(
            parse_contacts(&headers(&[("Contact", &many)])),
            Err(ContactError::TooManyContacts)
        );
    }

    #[test]
    fn tokens_and_values() {
        let h = headers(&[
            ("Require", "path, gruu"),
            ("Require", "outbound"),
            ("i", "abc@h"),
        ]);
        assert_eq!(
            header_tokens(&h, HeaderName::Require),
            ["path", "gruu", "outbound"]
        );
        assert_eq!(header_value(&h, HeaderName::CallId), Some("abc@h"));
        assert_eq!(parse_delta_seconds(" 42 "), Some(42));
        assert_eq!(parse_delta_seconds("-1"), None);
    }
}
