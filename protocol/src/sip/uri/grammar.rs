//! The RFC 3261 25.1 pieces a SIP URI is built from, read without copying:
//! character classes, `scheme`, `hostport`. [`super::SipUri::parse`] puts
//! them together; the message layer also reads Via sent-by and `maddr`
//! with [`parse_hostport`].

use super::UriError;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 3261 25.1 `unreserved`.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Checks `s` against `*( allowed / escaped )`, escaped = "%" HEXDIG
/// HEXDIG; `part` names the URI part in the error.
pub(crate) fn check_chars(
    s: &str,
    part: &'static str,
    allowed: impl Fn(u8) -> bool,
) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return Err(UriError::BadEscape {
                    part,
                    text: s.to_owned(),
                });
            }
            i += 3;
        } else if allowed(b[i]) {
            i += 1;
        } else {
            let found = s.get(i..).and_then(|r| r.chars().next()).unwrap_or('?');
            return Err(UriError::BadCharacter {
                part,
                text: s.to_owned(),
                found,
            });
        }
    }
    Ok(())
}

/// scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ); returns it and the
/// rest after the colon.
pub(crate) fn split_scheme(uri: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = uri.split_once(':')?;
    let b = scheme.as_bytes();
    let ok = b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"+-.".contains(&c));
    ok.then_some((scheme, rest))
}

/// The host part of a hostport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostRef<'a> {
    Name(&'a str),
    V4(Ipv4Addr),
    /// The bracketed text, `[...]` included, and the address.
    V6(&'a str, Ipv6Addr),
}

/// hostport = host [ ":" port ], host = hostname / IPv4address / IPv6reference
pub(crate) fn parse_hostport(s: &str) -> Result<(HostRef<'_>, Option<u16>), UriError> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']').ok_or_else(|| UriError::BadIpv6(s.to_owned()))?;
        let reference = &s[..=close];
        let ip = s[1..close]
            .parse::<Ipv6Addr>()
            .map_err(|_| UriError::BadIpv6(reference.to_owned()))?;
        let rest = &s[close + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return Err(UriError::BadPort(rest.to_owned())),
        };
        (HostRef::V6(reference, ip), port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (parse_host(host)?, port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((host, port))
}

/// port = 1*DIGIT, at most 65535.
fn parse_port(p: &str) -> Result<u16, UriError> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::BadPort(p.to_owned()));
    }
    p.parse().map_err(|_| UriError::BadPort(p.to_owned()))
}

/// hostname = *( domainlabel "." ) toplabel [ "." ], toplabel starting with
/// ALPHA (RFC 3261 25.1), labels of at most 63 and names of at most 253
/// octets (RFC 1035 2.3.4); a name of digits and dots only must be an
/// IPv4address.
fn parse_host(h: &str) -> Result<HostRef<'_>, UriError> {
    if h.is_empty() {
        return Err(UriError::NoHost(h.to_owned()));
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return h
            .parse::<Ipv4Addr>()
            .map(HostRef::V4)
            .map_err(|_| UriError::BadIpv4(h.to_owned()));
    }
    let bad = || UriError::BadHostName(h.to_owned());
    let labels = h.strip_suffix('.').unwrap_or(h);
    if labels.len() > 253 {
        return Err(bad());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                b.len() <= 63
                    && first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
            }
            _ => false,
        }
    };
    let toplabel_ok = labels
        .rsplit('.')
        .next()
        .and_then(|l| l.bytes().next())
        .is_some_and(|c| c.is_ascii_alphabetic());
    if labels.split('.').all(label_ok) && toplabel_ok {
        Ok(HostRef::Name(h))
    } else {
        Err(bad())
    }
}

/// Shape check of a non-SIP absoluteURI: a scheme and a non-empty rest of
/// URI characters (reserved / unreserved / escaped).
pub(crate) fn check_absolute_uri(uri: &str) -> Result<(), &'static str> {
    let (_, rest) = split_scheme(uri).ok_or("no URI scheme")?;
    let uric = |b: u8| is_unreserved(b) || b";/?:@&=+$,[]#".contains(&b);
    if !rest.is_empty() && check_chars(rest, "URI", uric).is_ok() {
        Ok(())
    } else {
        Err("invalid characters in URI")
    }
}
