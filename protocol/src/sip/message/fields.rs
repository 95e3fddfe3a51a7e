//! Syntax checks of the header fields the stack relies on (RFC 3261 25.1),
//! run on values the pre-pass has already unfolded and normalised.
//!
//! Fields the stack does not interpret (Date, Subject, extension headers)
//! are passed through unchecked, as RFC 4475 3.1.1.1 asks of unknown
//! headers.

use super::lex::{is_token_char, quoted_end, split_list};
use crate::sip::uri::SipUri;
use crate::sip::uri::grammar::{HostRef, check_absolute_uri, parse_hostport, split_scheme};
use std::net::{IpAddr, Ipv6Addr};

type Reason = &'static str;

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// 1*DIGIT, leading zeros allowed, at most `max`; `None` on anything else
/// (including overflow, RFC 4475 3.1.2.4 and 3.1.2.5).
pub(crate) fn parse_decimal(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        if n > max {
            return None;
        }
    }
    Some(n)
}

/// Index of the first `target` outside quoted strings.
fn find_unquoted(s: &str, target: u8) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = quoted_end(b, i)?,
            c if c == target => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// gen-value = token / host / quoted-string, or the bare IPv6address of
/// Via's `received` (RFC 3261 25.1 via-received).
fn gen_value_ok(v: &str) -> bool {
    if v.starts_with('"') {
        quoted_end(v.as_bytes(), 0) == Some(v.len())
    } else if let Some(inner) = v.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        inner.parse::<Ipv6Addr>().is_ok()
    } else {
        is_token(v) || v.parse::<Ipv6Addr>().is_ok()
    }
}

/// `*( SEMI generic-param )`: empty, or parameters each introduced by `;`.
pub(crate) fn parse_params(s: &str) -> Result<Vec<(&str, Option<&str>)>, Reason> {
    let mut out = Vec::new();
    let mut rest = match s.strip_prefix(';') {
        Some(r) => r,
        None if s.is_empty() => return Ok(out),
        None => return Err("junk before the parameters"),
    };
    loop {
        let end = find_unquoted(rest, b';').unwrap_or(rest.len());
        let param = &rest[..end];
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (param, None),
        };
        if !is_token(name) {
            return Err("parameter name is not a token");
        }
        if value.is_some_and(|v| !gen_value_ok(v)) {
            return Err("invalid parameter value");
        }
        out.push((name, value));
        if end == rest.len() {
            return Ok(out);
        }
        rest = &rest[end + 1..];
    }
}

fn param<'a>(params: &[(&str, Option<&'a str>)], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

/// A name-addr or addr-spec with its header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addr<'a> {
    pub uri: &'a str,
    pub bracketed: bool,
    pub params: Vec<(&'a str, Option<&'a str>)>,
}

impl<'a> Addr<'a> {
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        param(&self.params, name)
    }

    pub fn scheme(&self) -> &'a str {
        split_scheme(self.uri).map_or("", |(s, _)| s)
    }
}

/// ( name-addr / addr-spec ) *( SEMI generic-param ), RFC 3261 20.10 rules:
/// in addr-spec form the URI ends at the first `;`, and a URI with `,`, `?`
/// or `;` of its own must be in angle brackets.
pub(crate) fn parse_addr(v: &str) -> Result<Addr<'_>, Reason> {
    if v.is_empty() {
        return Err("empty value");
    }
    let rest = if v.starts_with('"') {
        let end = quoted_end(v.as_bytes(), 0).ok_or("unterminated quoted display name")?;
        let rest = v[end..].trim_start_matches(' ');
        if !rest.starts_with('<') {
            return Err("quoted display name without <URI>");
        }
        rest
    } else if let Some(lt) = find_unquoted(v, b'<') {
        // display-name = *(token LWS); RFC 4475 3.1.1.6 allows no LWS before <
        let display = v[..lt].trim_end_matches(' ');
        if !display.is_empty() && !display.split(' ').all(is_token) {
            return Err("unquoted display name with non-token characters");
        }
        &v[lt..]
    } else {
        v
    };
    if let Some(inner) = rest.strip_prefix('<') {
        let gt = inner.find('>').ok_or("unterminated <URI>")?;
        let uri = &inner[..gt];
        check_uri(uri, true)?;
        Ok(Addr {
            uri,
            bracketed: true,
            params: parse_params(&inner[gt + 1..])?,
        })
    } else {
        let end = rest.find(';').unwrap_or(rest.len());
        let uri = &rest[..end];
        check_uri(uri, false)?;
        Ok(Addr {
            uri,
            bracketed: false,
            params: parse_params(&rest[end..])?,
        })
    }
}

fn check_uri(uri: &str, bracketed: bool) -> Result<(), Reason> {
    let (scheme, _) = split_scheme(uri).ok_or("URI has no valid scheme")?;
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let parsed = SipUri::parse(uri).map_err(|e| e.reason())?;
        if parsed.headers.is_some() && !bracketed {
            return Err("URI with headers must be enclosed in <> (RFC 3261 20.10)");
        }
        Ok(())
    } else {
        check_absolute_uri(uri)?;
        if !bracketed && uri.contains(['?', ',']) {
            return Err("URI with ',' or '?' must be enclosed in <> (RFC 3261 20.10)");
        }
        Ok(())
    }
}

/// From and To: one address; a tag must be a token (RFC 3261 19.3).
fn check_from_to(v: &str) -> Result<(), Reason> {
    let addr = parse_addr(v)?;
    match addr.param("tag") {
        Some(Some(t)) if is_token(t) => Ok(()),
        Some(_) => Err("tag is not a token"),
        None => Ok(()),
    }
}

/// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
fn qvalue_ok(q: &str) -> bool {
    let (int, frac) = match q.split_once('.') {
        Some((i, f)) => (i, f),
        None => (q, ""),
    };
    frac.len() <= 3
        && match int {
            "0" => frac.bytes().all(|b| b.is_ascii_digit()),
            "1" => frac.bytes().all(|b| b == b'0'),
            _ => false,
        }
}

/// Contact: `*` or a list of addresses whose q and expires are in range.
fn check_contact(v: &str) -> Result<(), Reason> {
    if v == "*" {
        return Ok(());
    }
    for item in split_list(v) {
        let addr = parse_addr(item)?;
        if let Some(q) = addr.param("q")
            && !q.is_some_and(qvalue_ok)
        {
            return Err("q is not a qvalue");
        }
        if let Some(e) = addr.param("expires")
            && e.and_then(|e| parse_decimal(e, u32::MAX.into())).is_none()
        {
            return Err("expires is not a 32-bit delta-seconds");
        }
    }
    Ok(())
}

/// Route and Record-Route: a list of name-addr, brackets required.
fn check_routes(v: &str) -> Result<(), Reason> {
    for item in split_list(v) {
        if !parse_addr(item)?.bracketed {
            return Err("route URI must be enclosed in <>");
        }
    }
    Ok(())
}

/// sent-protocol LWS sent-by of one via-parm: what a response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentBy<'a> {
    pub transport: &'a str,
    pub host: HostRef<'a>,
    pub port: Option<u16>,
    pub params: &'a str,
}

pub(crate) fn via_sent_by(v: &str) -> Result<SentBy<'_>, Reason> {
    let (protocol, rest) = v.split_once(' ').ok_or("no sent-by")?;
    let parts: Vec<&str> = protocol.split('/').collect();
    let [name, version, transport] = parts.as_slice() else {
        return Err("sent-protocol is not name/version/transport");
    };
    if !(is_token(name) && is_token(version) && is_token(transport)) {
        return Err("sent-protocol is not name/version/transport");
    }
    let end = rest.find(';').unwrap_or(rest.len());
    let (host, port) = parse_hostport(&rest[..end]).map_err(|e| e.reason())?;
    Ok(SentBy {
        transport,
        host,
        port,
        params: &rest[end..],
    })
}

/// One via-parm, parameters included.
pub(crate) fn check_via_value(v: &str) -> Result<(), Reason> {
    let sent_by = via_sent_by(v)?;
    let params = parse_params(sent_by.params)?;
    for (name, value) in params {
        let name = name.to_ascii_lowercase();
        let ok = match (name.as_str(), value) {
            // RFC 4475 3.2.1: the cookie alone identifies no transaction.
            ("branch", Some(b)) => is_token(b) && b != crate::ids::BRANCH_MAGIC_COOKIE,
            ("ttl", Some(t)) => t.len() <= 3 && parse_decimal(t, 255).is_some(),
            ("received", Some(r)) => r.parse::<IpAddr>().is_ok(),
            // RFC 3581 3: rport has no value in requests, a port in responses.
            ("rport", None) => true,
            ("rport", Some(p)) => parse_decimal(p, u16::MAX.into()).is_some(),
            ("maddr", Some(m)) => parse_hostport(m).is_ok_and(|(_, port)| port.is_none()),
            ("branch" | "ttl" | "received" | "maddr", None) => false,
            _ => true,
        };
        if !ok {
            return Err(match name.as_str() {
                "branch" => "invalid branch (a token after the z9hG4bK cookie is needed)",
                "ttl" => "ttl out of range",
                "received" => "received is not an IP address",
                "rport" => "rport is not a port",
                _ => "invalid maddr",
            });
        }
    }
    Ok(())
}

/// CSeq = 1*DIGIT LWS Method, the number a 32-bit value (RFC 3261 8.1.1.5).
pub(crate) fn parse_cseq(v: &str) -> Result<(u32, &str), Reason> {
    let (num, method) = v.split_once(' ').ok_or("no method")?;
    let num =
        parse_decimal(num, u32::MAX.into()).ok_or("sequence number is not a 32-bit number")?;
    if !is_token(method) {
        return Err("method is not a token");
    }
    Ok((
        u32::try_from(num).map_err(|_| "sequence number out of range")?,
        method,
    ))
}

/// callid = word [ "@" word ]
fn check_call_id(v: &str) -> Result<(), Reason> {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| is_token_char(b) || b"()<>:\\\"/[]?{}".contains(&b))
    };
    let ok = match v.split_once('@') {
        Some((a, b)) => word(a) && word(b),
        None => word(v),
    };
    if ok { Ok(()) } else { Err("not a word[@word]") }
}

/// media-type = m-type SLASH m-subtype *(SEMI m-parameter)
pub(crate) fn parse_media_type(v: &str) -> Result<(&str, &str), Reason> {
    let end = v.find(';').unwrap_or(v.len());
    let (t, s) = v[..end].split_once('/').ok_or("not type/subtype")?;
    if !is_token(t) || !is_token(s) {
        return Err("not type/subtype");
    }
    parse_params(&v[end..])?;
    Ok((t, s))
}

/// Accept: a possibly empty list of media ranges (`*/*`, `type/*`, `type/sub`).
pub(crate) fn parse_accept(v: &str) -> Result<Vec<(&str, &str)>, Reason> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    split_list(v)
        .into_iter()
        .map(|range| {
            let (t, s) = parse_media_type(range)?;
            if t == "*" && s != "*" {
                return Err("invalid media range");
            }
            Ok((t, s))
        })
        .collect()
}

/// A comma-separated list of tokens (option tags, methods, codings).
pub(crate) fn token_list(v: &str, empty_ok: bool) -> Result<Vec<&str>, Reason> {
    if v.is_empty() {
        return if empty_ok {
            Ok(Vec::new())
        } else {
            Err("empty list")
        };
    }
    let items: Vec<&str> = v.split(',').collect();
    if items.iter().all(|t| is_token(t)) {
        Ok(items)
    } else {
        Err("list item is not a token")
    }
}

fn delta_seconds(v: &str) -> Result<(), Reason> {
    parse_decimal(v, u32::MAX.into())
        .map(|_| ())
        .ok_or("not a 32-bit delta-seconds")
}

/// Checks one field the stack interprets; `name` is canonical.
pub(crate) fn check_field(name: &str, v: &str) -> Result<(), Reason> {
    match name {
        "Via" => split_list(v).into_iter().try_for_each(check_via_value),
        "From" | "To" => check_from_to(v),
        "Contact" => check_contact(v),
        "Route" | "Record-Route" => check_routes(v),
        "Reply-To" => parse_addr(v).map(|_| ()),
        "Call-ID" => check_call_id(v),
        "CSeq" => parse_cseq(v).map(|_| ()),
        "Max-Forwards" => parse_decimal(v, 255)
            .map(|_| ())
            .ok_or("not a number from 0 to 255"),
        "Content-Length" => parse_decimal(v, u32::MAX.into())
            .map(|_| ())
            .ok_or("not a non-negative 32-bit number"),
        "Content-Type" => parse_media_type(v).map(|_| ()),
        "Accept" => parse_accept(v).map(|_| ()),
        "Require" | "Proxy-Require" | "Content-Encoding" => token_list(v, false).map(|_| ()),
        "Supported" | "Unsupported" | "Allow" => token_list(v, true).map(|_| ()),
        "Expires" | "Min-Expires" => delta_seconds(v),
        // Retry-After = delta-seconds [ comment ] *( SEMI retry-param )
        "Retry-After" => delta_seconds(v.split([' ', '(', ';']).next().unwrap_or_default()),
        "Content-Disposition" => {
            let end = v.find(';').unwrap_or(v.len());
            if !is_token(&v[..end]) {
                return Err("disposition type is not a token");
            }
            parse_params(&v[end..]).map(|_| ())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_bound_and_overflow() {
        assert_eq!(parse_decimal("0068", 255), Some(68));
        assert_eq!(parse_decimal("300", 255), None);
        assert_eq!(parse_decimal("-999", u64::MAX), None);
        assert_eq!(parse_decimal(&"9".repeat(100), u64::MAX), None);
        assert_eq!(parse_decimal("", 10), None);
    }

    #[test]
    fn addresses() {
        let a = parse_addr(r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98asjd8"#).unwrap();
        assert_eq!(a.uri, "sip:jdrosen@example.com");
        assert_eq!(a.param("tag"), Some(Some("98asjd8")));
        let a = parse_addr("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(!a.bracketed);
        assert_eq!(a.param("unknownparam"), Some(None));
        assert!(parse_addr("caller<sip:caller@example.com>;tag=323").is_ok());
        assert!(parse_addr("token1~` token2'+_ <sip:m@example.com>;p=\"\u{440}\"").is_ok());
        assert_eq!(parse_addr("isbn:2983792873").unwrap().scheme(), "isbn");
        for bad in [
            r#""Watson, Thomas" < sip:t.watson@example.org >"#,
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            r#""Mr. J. User <sip:j.user@example.com>"#,
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:a@b>;;",
            "<sip:a@b",
            "\"x\" sip:a@b",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
        assert!(parse_addr("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").is_ok());
    }

    #[test]
    fn via_values() {
        assert!(check_field("Via", "SIP/2.0/UDP 192.0.2.2;branch=390skdjuw").is_ok());
        assert!(
            check_field(
                "Via",
                "SIP/2.0/TCP [2001:db8::9]:5060;rport;received=2001:db8::1"
            )
            .is_ok()
        );
        assert!(
            check_field(
                "Via",
                "SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en"
            )
            .is_ok()
        );
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;,;,,",
            "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK",
            "SIP/2.0 host",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP host;ttl=256",
            "SIP/2.0/UDP host;branch=",
        ] {
            assert!(check_field("Via", bad).is_err(), "{bad}");
        }
        let s = via_sent_by("SIP/2.0/UDP 192.0.2.15;;").unwrap();
        assert_eq!(s.transport, "UDP");
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_cseq("9 INVITE"), Ok((9, "INVITE")));
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert!(check_field("Max-Forwards", "300").is_err());
        assert!(check_field("Content-Length", "-999").is_err());
        assert!(check_field("Expires", &format!("1{}", "0".repeat(100))).is_err());
        assert!(check_field("Retry-After", "120 (lunch);duration=60").is_ok());
        assert!(check_field("Call-ID", r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#).is_ok());
        assert!(check_field("Call-ID", "a@b@c").is_err());
        assert!(check_field("Contact", "<sip:a@b>;expires=280297596632815").is_err());
        assert!(check_field("Contact", "<sip:a@b>;q=0.33, <sip:c@d>;q=1.0").is_ok());
        assert!(check_field("Contact", "<sip:a@b>;q=2").is_err());
    }

    #[test]
    fn media_and_lists() {
        assert_eq!(
            parse_media_type("multipart/mixed;boundary=7a9cbec02ceef655"),
            Ok(("multipart", "mixed"))
        );
        assert!(parse_accept("").unwrap().is_empty());
        assert_eq!(parse_accept("application/sdp,*/*;q=0.1").unwrap().len(), 2);
        assert!(parse_accept("*/sdp").is_err());
        assert_eq!(token_list("a,b", false), Ok(vec!["a", "b"]));
        assert!(token_list("a,,b", false).is_err());
        assert!(token_list("", false).is_err());
    }
}
