//! A small reader of SIP URIs (RFC 3261 19.1) with the comparison rules of
//! 19.1.4. rsip 0.4 cannot parse IPv6 hosts in URIs, and registrations
//! compare Contact URIs, so this reader is ours.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

const MAX_URI_LEN: usize = 2048;
const MAX_URI_PARAMS: usize = 32;

/// Why a URI could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("URI is empty")]
    Empty,
    #[error("URI longer than {MAX_URI_LEN} bytes")]
    TooLong,
    #[error("URI {0:?} has no scheme")]
    NoScheme(String),
    #[error("URI scheme {0:?} is not sip or sips")]
    UnsupportedScheme(String),
    #[error("URI {0:?} has no host")]
    NoHost(String),
    #[error("URI {0:?} has a bad port")]
    BadPort(String),
    #[error("URI {0:?} has a bad IPv6 reference")]
    BadIpv6(String),
    #[error("URI {0:?} has too many parameters")]
    TooManyParams(String),
    #[error("URI {0:?} contains whitespace or control characters")]
    BadCharacter(String),
}

/// A parsed `sip:` or `sips:` URI. [`Display`](fmt::Display) prints the
/// original text, so a Contact is echoed exactly as the UA wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    text: String,
    /// "sip" or "sips", lower-case.
    pub scheme: String,
    /// The user part without password, still %-escaped.
    pub user: Option<String>,
    /// Lower-case; an IPv6 reference in the stack's internal name form
    /// ([`crate::sip::ipv6`]), whichever form the text used, so that
    /// hosts compare equal however they were written.
    pub host: String,
    pub port: Option<u16>,
    /// Names lower-case, values as written.
    pub params: Vec<(String, Option<String>)>,
    pub headers: Option<String>,
}

impl SipUri {
    pub fn parse(text: &str) -> Result<Self, UriError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(UriError::Empty);
        }
        if text.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        if text
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(UriError::BadCharacter(text.to_string()));
        }
        let (scheme, rest) = text
            .split_once(':')
            .ok_or_else(|| UriError::NoScheme(text.to_string()))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return Err(UriError::UnsupportedScheme(scheme));
        }
        let (rest, headers) = match rest.split_once('?') {
            Some((r, h)) => (r, Some(h.to_string())),
            None => (rest, None),
        };
        // RFC 3261 25.1: neither host, port nor uri-parameters may contain
        // '@', so the last '@' ends the userinfo (a user may hold ';').
        let (user, hostpart) = match rest.rfind('@') {
            Some(i) => {
                let userinfo = &rest[..i];
                let user = userinfo.split(':').next().unwrap_or_default();
                (Some(user.to_string()), &rest[i + 1..])
            }
            None => (None, rest),
        };
        let (hostport, params_text) = match hostpart.split_once(';') {
            Some((h, p)) => (h, Some(p)),
            None => (hostpart, None),
        };
        let (host, port_text) = if let Some(v6) = hostport.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| UriError::BadIpv6(text.to_string()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| UriError::BadPort(text.to_string()))?,
                ),
            };
            let ip: std::net::Ipv6Addr = addr
                .parse()
                .map_err(|_| UriError::BadIpv6(text.to_string()))?;
            (crate::sip::ipv6::encode_host(&ip), port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
                None => (hostport.to_ascii_lowercase(), None),
            }
        };
        if host.is_empty() {
            return Err(UriError::NoHost(text.to_string()));
        }
        let port = match port_text {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| UriError::BadPort(text.to_string()))?,
            ),
            None => None,
        };
        let mut params = Vec::new();
        if let Some(p) = params_text {
            for item in p.split(';').filter(|s| !s.is_empty()) {
                if params.len() == MAX_URI_PARAMS {
                    return Err(UriError::TooManyParams(text.to_string()));
                }
                let (name, value) = match item.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (item, None),
                };
                params.push((name.to_ascii_lowercase(), value));
            }
        }
        Ok(Self {
            text: text.to_string(),
            scheme,
            user,
            host,
            port,
            params,
            headers,
        })
    }

    /// The value of a URI parameter: `Some(None)` for a flag like `lr`.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref())
    }

    /// The host as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        host_ip(&self.host)
    }

    /// The socket address the URI names when its host is an IP literal
    /// (default port 5060, or 5061 for sips: RFC 3261 19.1.2).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let default = if self.scheme == "sips" { 5061 } else { 5060 };
        Some(SocketAddr::new(self.ip()?, self.port.unwrap_or(default)))
    }

    /// The canonical address-of-record `scheme:user@host` (RFC 3261 10.3
    /// step 5: "converting it to the canonical form ... sip:user@domain";
    /// port and parameters dropped).
    pub fn aor(&self) -> String {
        match &self.user {
            Some(u) => format!("{}:{}@{}", self.scheme, unescape(u), self.host),
            None => format!("{}:{}", self.scheme, self.host),
        }
    }

    /// URI equivalence of RFC 3261 19.1.4: scheme, user (case-sensitive,
    /// unescaped), host (case-insensitive) and port must match; the
    /// `user`, `ttl`, `method`, `maddr` and `transport` parameters must
    /// match if either URI has them; other parameters only if both do.
    /// Header components are compared as unordered sets.
    pub fn equivalent(&self, other: &SipUri) -> bool {
        if self.scheme != other.scheme
            || self.user.as_deref().map(unescape) != other.user.as_deref().map(unescape)
            || self.host != other.host
            || self.port != other.port
        {
            return false;
        }
        const MUST_MATCH: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];
        for (name, value) in &self.params {
            match other.param(name) {
                Some(v) if !eq_opt_ci(value.as_deref(), v) => return false,
                None if MUST_MATCH.contains(&name.as_str()) => return false,
                _ => {}
            }
        }
        for (name, _) in &other.params {
            if MUST_MATCH.contains(&name.as_str()) && self.param(name).is_none() {
                return false;
            }
        }
        let set = |h: &Option<String>| {
            let mut v: Vec<String> = h
                .as_deref()
                .unwrap_or_default()
                .split('&')
                .filter(|s| !s.is_empty())
                .map(unescape)
                .collect();
            v.sort();
            v
        };
        set(&self.headers) == set(&other.headers)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A host as an IP address, in any form the stack meets: IPv4, a bare or
/// bracketed IPv6 address, or the internal IPv6 name of
/// [`crate::sip::ipv6`]. IPv4-mapped IPv6 comes back as IPv4.
pub fn host_ip(host: &str) -> Option<IpAddr> {
    let bare = host.trim();
    let bare = bare
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .unwrap_or(bare);
    let ip = match bare.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => IpAddr::V6(crate::sip::ipv6::decode_host(&bare.to_ascii_lowercase())?),
    };
    Some(ip.to_canonical())
}

/// Two hosts name the same thing: equal addresses, or equal names
/// ignoring case.
pub fn same_host(a: &str, b: &str) -> bool {
    match (host_ip(a), host_ip(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.trim().eq_ignore_ascii_case(b.trim()),
        _ => false,
    }
}

fn eq_opt_ci(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => unescape(a).eq_ignore_ascii_case(&unescape(b)),
        (None, None) => true,
        _ => false,
    }
}

/// %XX decoding (RFC 3261 19.1.4 compares unescaped forms); invalid
/// escapes are left as written.
pub fn unescape(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> SipUri {
        SipUri::parse(s).unwrap()
    }

    #[test]
    fn parses_the_parts() {
        let x = u("SIP:alice:secret@Example.COM:5070;transport=TCP;lr?subject=x");
        assert_eq!(x.scheme, "sip");
        assert_eq!(x.user.as_deref(), Some("alice"));
        assert_eq!(x.host, "example.com");
        assert_eq!(x.port, Some(5070));
        assert_eq!(x.param("transport"), Some(Some("TCP")));
        assert_eq!(x.param("lr"), Some(None));
        assert_eq!(x.headers.as_deref(), Some("subject=x"));
        assert_eq!(
            x.to_string(),
            "SIP:alice:secret@Example.COM:5070;transport=TCP;lr?subject=x"
        );
        assert_eq!(x.aor(), "sip:alice@example.com");
    }

    #[test]
    fn ipv6_and_socket_addresses() {
        let x = u("sip:s1@[2001:DB8::1]:5062;transport=udp");
        assert_eq!(x.host, "2001-db8-0-0-0-0-0-1.ipv6.invalid");
        // The internal form reads the same.
        let internal = u("sip:s1@2001-db8-0-0-0-0-0-1.ipv6.invalid:5062");
        assert_eq!(internal.ip(), x.ip());
        assert_eq!(internal.aor(), x.aor());
        assert!(same_host(
            "[2001:DB8::1]",
            "2001-db8-0-0-0-0-0-1.ipv6.invalid"
        ));
        assert!(same_host("2001:db8::1", "[2001:db8::1]"));
        assert!(same_host("::ffff:192.0.2.1", "192.0.2.1"));
        assert!(same_host("Example.COM", "example.com"));
        assert!(!same_host("example.com", "192.0.2.1"));
        assert_eq!(x.socket_addr(), Some("[2001:db8::1]:5062".parse().unwrap()));
        assert_eq!(
            u("sips:198.51.100.7").socket_addr(),
            Some("198.51.100.7:5061".parse().unwrap())
        );
        assert_eq!(u("sip:host.example").socket_addr(), None);
    }

    #[test]
    fn user_with_semicolons() {
        let x = u("sip:+1-212-555-1212;phone-context=x@gw.example.com;user=phone");
        assert_eq!(x.user.as_deref(), Some("+1-212-555-1212;phone-context=x"));
        assert_eq!(x.host, "gw.example.com");
        assert_eq!(x.param("user"), Some(Some("phone")));
    }

    #[test]
    fn rfc3261_19_1_4_equivalent_pairs() {
        for (a, b) in [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ] {
            assert!(u(a).equivalent(&u(b)), "{a} == {b}");
            assert!(u(b).equivalent(&u(a)), "{b} == {a}");
        }
    }

    #[test]
    fn rfc3261_19_1_4_different_pairs() {
        for (a, b) in [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
            ("sip:a@h", "sips:a@h"),
        ] {
            assert!(!u(a).equivalent(&u(b)), "{a} != {b}");
            assert!(!u(b).equivalent(&u(a)), "{b} != {a}");
        }
    }

    #[test]
    fn malformed_uris_are_typed_errors() {
        assert_eq!(SipUri::parse(""), Err(UriError::Empty));
        assert!(matches!(SipUri::parse("alice"), Err(UriError::NoScheme(_))));
        assert!(matches!(
            SipUri::parse("tel:+123"),
            Err(UriError::UnsupportedScheme(_))
        ));
        assert!(matches!(SipUri::parse("sip:a@"), Err(UriError::NoHost(_))));
        assert!(matches!(
            SipUri::parse("sip:a@h:99999"),
            Err(UriError::BadPort(_))
        ));
        assert!(matches!(
            SipUri::parse("sip:a@h:"),
            Err(UriError::BadPort(_))
        ));
        assert!(matches!(
            SipUri::parse("sip:[::1"),
            Err(UriError::BadIpv6(_))
        ));
        assert!(matches!(
            SipUri::parse("sip:[zz]"),
            Err(UriError::BadIpv6(_))
        ));
        assert!(matches!(
            SipUri::parse("sip:[::1]5060"),
            Err(UriError::BadPort(_))
        ));
        assert!(matches!(
            SipUri::parse("sip:a b@h"),
            Err(UriError::BadCharacter(_))
        ));
        let long = format!("sip:{}@h", "a".repeat(MAX_URI_LEN));
        assert_eq!(SipUri::parse(&long), Err(UriError::TooLong));
        let many = format!("sip:h{}", ";p".repeat(MAX_URI_PARAMS + 1));
        assert!(matches!(
            SipUri::parse(&many),
            Err(UriError::TooManyParams(_))
        ));
    }

    #[test]
    fn unescape_handles_bad_escapes() {
        assert_eq!(unescape("%61b%zz%4"), "ab%zz%4");
        assert_eq!(unescape("%"), "%");
        assert_eq!(unescape("%\u{e9}\u{e9}"), "%\u{e9}\u{e9}");
    }
}
