//! SIP URI comparison (RFC 3261 19.1.4) and the host helpers it needs.

use super::SipUri;
use std::net::IpAddr;

impl SipUri {
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
        let must_match = |name: &str| MUST_MATCH.iter().any(|m| m.eq_ignore_ascii_case(name));
        for (name, value) in &self.params {
            match other.param(name) {
                Some(v) if !eq_opt_ci(value.as_deref(), v) => return false,
                None if must_match(name) => return false,
                _ => {}
            }
        }
        for (name, _) in &other.params {
            if must_match(name) && self.param(name).is_none() {
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
