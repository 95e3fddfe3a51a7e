//! Strict syntax check of the SIP URIs a technician writes into the config.
//!
//! `rsip` 0.4 accepts `foo`, `sip:a b@c` and `sip:a@b@c` and rejects
//! `sip:[::1]`, so a config check built on it would let typos through and
//! refuse valid IPv6 registrars. This follows the RFC 3261 section 25.1
//! grammar for `SIP-URI` / `SIPS-URI` and keeps the parts the agent needs.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A SIP or SIPS URI that passed the RFC 3261 section 25.1 grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    text: String,
    secure: bool,
    user: Option<String>,
    host: Host,
    port: Option<u16>,
}

/// The host part of a SIP URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl SipUri {
    /// Parse and check `text`; the error says what part is wrong.
    pub fn parse(text: &str) -> Result<SipUri, String> {
        let (secure, rest) = if let Some(r) = strip_prefix_ci(text, "sips:") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(text, "sip:") {
            (false, r)
        } else {
            return Err("must start with `sip:` or `sips:`".into());
        };
        // RFC 3261 25.1: `@` may not appear unescaped in user, host,
        // parameters or headers, so the first one ends the userinfo.
        let (userinfo, rest) = match rest.split_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let user = match userinfo {
            None => None,
            Some(u) => Some(check_userinfo(u)?),
        };
        let end = rest.find([';', '?']).unwrap_or(rest.len());
        let (hostport, tail) = rest.split_at(end);
        let (host, port) = parse_hostport(hostport)?;
        let (params, headers) = match tail.split_once('?') {
            Some((p, h)) => (p, Some(h)),
            None => (tail, None),
        };
        check_params(params)?;
        if let Some(h) = headers {
            check_headers(h)?;
        }
        Ok(SipUri {
            text: text.to_owned(),
            secure,
            user,
            host,
            port,
        })
    }

    /// The URI as written in the config.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `sips:` (RFC 3261 19.1: TLS on every hop).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The user part, unescaped percent sequences left as written.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The same URI as an `rsip::Uri`, for the protocol crate's builders.
    /// `rsip` cannot read every valid URI (IPv6 hosts), hence an error.
    pub fn to_rsip(&self) -> Result<rsip::Uri, rsip::Error> {
        rsip::Uri::try_from(self.text.as_str())
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // RFC 3261 19.1.4: the scheme compares case-insensitively.
    if s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) {
        let (head, tail) = s.split_at(prefix.len());
        head.eq_ignore_ascii_case(prefix).then_some(tail)
    } else {
        None
    }
}

fn is_mark(c: u8) -> bool {
    matches!(
        c,
        b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
    )
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || is_mark(c)
}

/// Every byte of `s` is allowed by `ok` or is part of a `%HH` escape.
fn check_chars(s: &str, what: &str, ok: impl Fn(u8) -> bool) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return Err(format!(
                    "{what} `{s}` has a `%` not followed by two hex digits"
                ));
            }
            i += 3;
        } else if ok(b[i]) {
            i += 1;
        } else {
            let c = s[i..].chars().next().unwrap_or('?');
            return Err(format!(
                "{what} `{s}` contains `{c}`, which must be %-escaped"
            ));
        }
    }
    Ok(())
}

fn check_userinfo(userinfo: &str) -> Result<String, String> {
    if userinfo.contains(':') {
        // RFC 3261 19.1.1: a password in a URI is NOT RECOMMENDED; here it
        // would also sit in a world-readable file.
        return Err("has a password in the URI; put it in the secrets file".into());
    }
    if userinfo.is_empty() {
        return Err("has an empty user part before `@`".into());
    }
    // user = 1*( unreserved / escaped / user-unreserved )
    check_chars(userinfo, "user part", |c| {
        is_unreserved(c) || matches!(c, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
    })?;
    Ok(userinfo.to_owned())
}

fn parse_hostport(hostport: &str) -> Result<(Host, Option<u16>), String> {
    if hostport.is_empty() {
        return Err("has no host".into());
    }
    let (host_text, port_text) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or("has an IPv6 host without the closing `]`")?;
        let host = addr
            .parse::<Ipv6Addr>()
            .map(Host::V6)
            .map_err(|_| format!("has an invalid IPv6 address `{addr}`"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("has text after the IPv6 host")?),
        };
        return Ok((host, port.map(parse_port).transpose()?));
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = port_text.map(parse_port).transpose()?;
    let looks_numeric = host_text.bytes().all(|c| c.is_ascii_digit() || c == b'.');
    let host = if looks_numeric {
        host_text
            .parse::<Ipv4Addr>()
            .map(Host::V4)
            .map_err(|_| format!("has an invalid IPv4 address `{host_text}`"))?
    } else {
        check_hostname(host_text)?;
        Host::Name(host_text.to_ascii_lowercase())
    };
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("has an invalid port `{p}` (1-65535)")),
        Ok(n) => Ok(n),
    }
}

/// hostname = *( domainlabel "." ) toplabel [ "." ]  (RFC 3261 25.1)
fn check_hostname(name: &str) -> Result<(), String> {
    let bad = || format!("has an invalid host name `{name}`");
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(bad());
    }
    let labels: Vec<&str> = trimmed.split('.').collect();
    for label in &labels {
        let b = label.as_bytes();
        let (Some(first), Some(last)) = (b.first(), b.last()) else {
            return Err(bad());
        };
        if b.len() > 63
            || !first.is_ascii_alphanumeric()
            || !last.is_ascii_alphanumeric()
            || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        {
            return Err(bad());
        }
    }
    // toplabel starts with ALPHA: `host.123` would be neither name nor IPv4.
    if labels
        .last()
        .is_some_and(|l| !l.as_bytes()[0].is_ascii_alphabetic())
    {
        return Err(bad());
    }
    Ok(())
}

/// uri-parameters = *( ";" pname [ "=" pvalue ] )
fn check_params(params: &str) -> Result<(), String> {
    if params.is_empty() {
        return Ok(());
    }
    let Some(list) = params.strip_prefix(';') else {
        return Err(format!("has unexpected text `{params}`"));
    };
    let paramchar =
        |c: u8| is_unreserved(c) || matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$');
    for param in list.split(';') {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (param, None),
        };
        if name.is_empty() {
            return Err("has an empty URI parameter name".into());
        }
        check_chars(name, "parameter", paramchar)?;
        if let Some(v) = value {
            if v.is_empty() {
                return Err(format!("has an empty value for parameter `{name}`"));
            }
            check_chars(v, "parameter value", paramchar)?;
        }
    }
    Ok(())
}

/// headers = "?" header *( "&" header ); header = hname "=" hvalue
fn check_headers(headers: &str) -> Result<(), String> {
    let hchar =
        |c: u8| is_unreserved(c) || matches!(c, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$');
    for header in headers.split('&') {
        let (name, value) = header
            .split_once('=')
            .ok_or_else(|| format!("has a header `{header}` without `=`"))?;
        if name.is_empty() {
            return Err("has an empty header name".into());
        }
        check_chars(name, "header name", hchar)?;
        check_chars(value, "header value", hchar)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_uris() {
        let u = SipUri::parse("sip:sensor-0001@example.net").unwrap();
        assert_eq!(u.user(), Some("sensor-0001"));
        assert_eq!(u.host(), &Host::Name("example.net".into()));
        assert_eq!(u.port(), None);
        assert!(!u.is_secure());

        let u = SipUri::parse("SIPS:a@B.example.:5061;transport=tcp;lr").unwrap();
        assert!(u.is_secure());
        assert_eq!(u.host(), &Host::Name("b.example.".into()));
        assert_eq!(u.port(), Some(5061));

        let u = SipUri::parse("sip:[2001:db8::1]:5070").unwrap();
        assert_eq!(u.host(), &Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port(), Some(5070));

        let u = SipUri::parse("sip:198.51.100.7;lr").unwrap();
        assert_eq!(u.host(), &Host::V4(Ipv4Addr::new(198, 51, 100, 7)));
        assert_eq!(u.user(), None);

        // RFC 3261 19.1.3 examples.
        SipUri::parse("sip:alice;day=tuesday@atlanta.com").unwrap();
        SipUri::parse("sip:+1-212-555-1212@gateway.com;user=phone").unwrap();
        SipUri::parse("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com").unwrap();
        SipUri::parse("sip:%61lice@atlanta.com;transport=TCP").unwrap();
    }

    #[test]
    fn rejects_what_rsip_lets_through() {
        for (text, why) in [
            ("foo", "must start with"),
            ("http://x", "must start with"),
            ("sip:", "no host"),
            ("sip:@x", "empty user"),
            ("sip:a b@c", "contains ` `"),
            ("sip:a@b@c", "invalid host name `b@c`"),
            ("sip:a@exa mple", "invalid host name"),
            ("sip:a@b:99999", "invalid port"),
            ("sip:a@b:0", "invalid port"),
            ("sip:a@b:x", "invalid port"),
            ("sip:a@256.1.1.1", "invalid IPv4"),
            ("sip:a@host.123", "invalid host name"),
            ("sip:a@-host", "invalid host name"),
            ("sip:[::1", "closing"),
            ("sip:[::g]", "invalid IPv6"),
            ("sip:a:secret@host", "password"),
            ("sip:a%4@host", "two hex digits"),
            ("sip:host;=x", "empty URI parameter"),
            ("sip:host;lr=", "empty value"),
            ("sip:host?x", "without `=`"),
            ("sip:héllo@host", "must be %-escaped"),
        ] {
            let err = SipUri::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn converts_to_rsip_when_rsip_can_read_it() {
        let u = SipUri::parse("sip:collector@example.net:5060").unwrap();
        assert_eq!(
            u.to_rsip().unwrap().to_string(),
            "sip:collector@example.net:5060"
        );
    }
}
