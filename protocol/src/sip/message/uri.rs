//! URIs as RFC 3261 25.1 writes them: SIP/SIPS URIs parsed in full, other
//! schemes checked for shape only.
//!
//! `rsip` 0.4 misreads some valid SIP URIs (a user part with a `.` becomes
//! part of the host, `;` in the user part starts parameters, IPv6 literals
//! fail), so the Request-URI is parsed here and handed to `rsip` as a
//! ready-made [`rsip::Uri`].

use rsip::{Auth, Host, HostWithPort, Param, Port};
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 3261 25.1 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// Checks `s` against `1*( allowed / escaped )` (or `*` when `empty_ok`),
/// where escaped = "%" HEXDIG HEXDIG.
fn chars_or_escaped(s: &str, empty_ok: bool, allowed: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return empty_ok;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if allowed(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
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
    /// The bracketed text, `[...]` included.
    V6(&'a str),
}

/// hostport = host [ ":" port ], host = hostname / IPv4address / IPv6reference
pub(crate) fn parse_hostport(s: &str) -> Result<(HostRef<'_>, Option<u16>), &'static str> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']').ok_or("unterminated IPv6 reference")?;
        let inner = &s[1..close];
        inner
            .parse::<Ipv6Addr>()
            .map_err(|_| "invalid IPv6 address")?;
        let rest = &s[close + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(p),
            None if rest.is_empty() => None,
            None => return Err("junk after IPv6 reference"),
        };
        (HostRef::V6(&s[..=close]), port)
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

fn parse_port(p: &str) -> Result<u16, &'static str> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err("port is not a number");
    }
    p.parse().map_err(|_| "port out of range")
}

/// hostname = *( domainlabel "." ) toplabel [ "." ]; a name made of digits
/// and dots only must be an IPv4address.
fn parse_host(h: &str) -> Result<HostRef<'_>, &'static str> {
    if h.is_empty() {
        return Err("empty host");
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return h
            .parse::<Ipv4Addr>()
            .map(HostRef::V4)
            .map_err(|_| "invalid IPv4 address");
    }
    let labels = h.strip_suffix('.').unwrap_or(h);
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
    };
    if labels.split('.').all(label_ok) {
        Ok(HostRef::Name(h))
    } else {
        Err("invalid host name")
    }
}

/// A parsed SIP or SIPS URI; slices borrow the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SipUri<'a> {
    pub sips: bool,
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub host: HostRef<'a>,
    pub port: Option<u16>,
    pub params: Vec<(&'a str, Option<&'a str>)>,
    pub has_headers: bool,
}

/// Parses `sip:` / `sips:` URIs (RFC 3261 19.1.1, 25.1).
pub(crate) fn parse_sip_uri(uri: &str) -> Result<SipUri<'_>, &'static str> {
    let (scheme, rest) = split_scheme(uri).ok_or("no URI scheme")?;
    let sips = if scheme.eq_ignore_ascii_case("sip") {
        false
    } else if scheme.eq_ignore_ascii_case("sips") {
        true
    } else {
        return Err("not a SIP or SIPS URI");
    };
    // '@' cannot appear unescaped anywhere but after the userinfo.
    let (userinfo, rest) = match rest.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, password) = match u.split_once(':') {
                Some((user, pw)) => (user, Some(pw)),
                None => (u, None),
            };
            // user = 1*( unreserved / escaped / user-unreserved )
            if !chars_or_escaped(user, false, |b| {
                is_unreserved(b) || b"&=+$,;?/".contains(&b)
            }) {
                return Err("invalid user part");
            }
            // password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
            if let Some(pw) = password
                && !chars_or_escaped(pw, true, |b| is_unreserved(b) || b"&=+$,".contains(&b))
            {
                return Err("invalid password part");
            }
            (Some(user), password)
        }
    };
    let (before_headers, headers) = match rest.split_once('?') {
        Some((b, h)) => (b, Some(h)),
        None => (rest, None),
    };
    let mut parts = before_headers.split(';');
    let hostport = parts.next().unwrap_or_default();
    let (host, port) = parse_hostport(hostport)?;
    let mut params = Vec::new();
    for p in parts {
        // uri-parameter: pname [ "=" pvalue ], both 1*paramchar
        let paramchar = |b: u8| is_unreserved(b) || b"[]/:&+$".contains(&b);
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        if !chars_or_escaped(name, false, paramchar)
            || value.is_some_and(|v| !chars_or_escaped(v, false, paramchar))
        {
            return Err("invalid URI parameter");
        }
        params.push((name, value));
    }
    if let Some(h) = headers {
        // headers = "?" header *( "&" header ), header = hname "=" hvalue
        let hchar = |b: u8| is_unreserved(b) || b"[]/?:+$".contains(&b);
        let ok = h.split('&').all(|hdr| {
            hdr.split_once('=').is_some_and(|(n, v)| {
                chars_or_escaped(n, false, hchar) && chars_or_escaped(v, true, hchar)
            })
        });
        if !ok {
            return Err("invalid URI headers");
        }
    }
    Ok(SipUri {
        sips,
        user,
        password,
        host,
        port,
        params,
        has_headers: headers.is_some(),
    })
}

impl SipUri<'_> {
    /// The `rsip` form. IPv6 hosts go in as bracketed names because
    /// `rsip`'s `Host::IpAddr` prints IPv6 without brackets.
    pub fn to_rsip(&self) -> rsip::Uri {
        let host = match self.host {
            HostRef::Name(n) => Host::Domain(n.into()),
            HostRef::V4(a) => Host::IpAddr(a.into()),
            HostRef::V6(text) => Host::Domain(text.into()),
        };
        rsip::Uri {
            scheme: Some(if self.sips {
                rsip::Scheme::Sips
            } else {
                rsip::Scheme::Sip
            }),
            auth: self.user.map(|user| Auth {
                user: user.into(),
                password: self.password.map(Into::into),
            }),
            host_with_port: HostWithPort {
                host,
                port: self.port.map(Port::from),
            },
            params: self
                .params
                .iter()
                .map(|&(n, v)| {
                    Param::try_from((n, v))
                        .unwrap_or_else(|_| Param::Other(n.into(), v.map(Into::into)))
                })
                .collect(),
            headers: Vec::new(),
        }
    }
}

/// Parses a SIP or SIPS URI into `rsip`'s type, refusing URI headers (a
/// Request-URI must not carry them, RFC 3261 19.1.1 table 1). Other crates
/// of this workspace can use it where `rsip`'s own URI parser falls short.
pub fn parse_request_uri(uri: &str) -> Result<rsip::Uri, &'static str> {
    let parsed = parse_sip_uri(uri)?;
    if parsed.has_headers {
        return Err("headers are not allowed in a Request-URI (RFC 3261 19.1.1)");
    }
    Ok(parsed.to_rsip())
}

/// Shape check of a non-SIP absoluteURI: a scheme and a non-empty rest of
/// URI characters (reserved / unreserved / escaped).
pub(crate) fn check_absolute_uri(uri: &str) -> Result<(), &'static str> {
    let (_, rest) = split_scheme(uri).ok_or("no URI scheme")?;
    if chars_or_escaped(rest, false, |b| {
        is_unreserved(b) || b";/?:@&=+$,[]#".contains(&b)
    }) {
        Ok(())
    } else {
        Err("invalid characters in URI")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parts_with_dots_semicolons_and_escapes() {
        let u = parse_sip_uri("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, HostRef::Name("example.com"));
        let u = parse_sip_uri("sip:j.user@example.com").unwrap();
        assert_eq!(u.user, Some("j.user"));
        let r = u.to_rsip();
        assert_eq!(r.to_string(), "sip:j.user@example.com");
        assert_eq!(r.user(), Some("j.user"));
    }

    #[test]
    fn unusual_but_legal_characters() {
        let u = parse_sip_uri("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com").unwrap();
        assert_eq!(
            u.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert!(!u.has_headers);
    }

    #[test]
    fn ipv6_ports_and_params() {
        let u = parse_sip_uri("sips:[2001:db8::1]:5061;transport=tcp;lr").unwrap();
        assert!(u.sips);
        assert_eq!(u.port, Some(5061));
        let r = u.to_rsip();
        assert_eq!(r.to_string(), "sips:[2001:db8::1]:5061;transport=TCP;lr");
        assert_eq!(r.transport(), Some(&rsip::Transport::Tcp));
        assert!(parse_sip_uri("sip:[2001:db8::1:5060").is_err());
        assert!(parse_sip_uri("sip:host:99999").is_err());
        assert!(parse_sip_uri("sip:host:").is_err());
    }

    #[test]
    fn malformed_uris_are_refused() {
        for bad in [
            "sip:",
            "sip:user@",
            "sip:a%zz@host",
            "sip:a b@host",
            "sip:host;",
            "sip:host;a=",
            "sip:-bad-.example.com",
            "sip:256.1.1.1",
            "sip:host?x",
            "<sip:host>",
            "sip:I have spaces@host",
        ] {
            assert!(parse_sip_uri(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_request_uri("sip:user@example.com?Route=%3Csip:example.com%3E"),
            Err("headers are not allowed in a Request-URI (RFC 3261 19.1.1)")
        );
        assert!(parse_sip_uri("sip:host?Route=%3Csip:x%3E&a=").is_ok());
    }

    #[test]
    fn other_schemes() {
        assert_eq!(
            split_scheme("soap.beep://192.0.2.103:3002").map(|s| s.0),
            Some("soap.beep")
        );
        assert!(split_scheme("<sip:x>").is_none());
        assert!(check_absolute_uri("isbn:2983792873").is_ok());
        assert!(check_absolute_uri("http://www.example.com").is_ok());
        assert!(check_absolute_uri("name:John_Smith").is_ok());
        assert!(check_absolute_uri("x:a b").is_err());
        assert!(parse_sip_uri("tel:+1234").is_err());
    }
}
