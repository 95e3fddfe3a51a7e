//! The top Via's sent-by, `received` and `rport` (RFC 3261 18.2.1,
//! RFC 3581). rsip's typed Via cannot read IPv6 sent-by or `received`
//! values, which NAT handling needs on both sides.

use super::contact::{HeaderName, header_values};
use super::uri::host_ip;
use std::net::{IpAddr, SocketAddr};

/// What the top Via says about where a request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaInfo {
    /// "UDP", "TCP", ... as written.
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub received: Option<IpAddr>,
    /// `Some(None)`: `rport` present without a value (a request asking
    /// for it); `Some(Some(p))`: filled in by the server.
    pub rport: Option<Option<u16>>,
    pub branch: Option<String>,
}

impl ViaInfo {
    /// The address the server saw the request come from (RFC 3581 4):
    /// `received` (else sent-by host) and `rport` (else sent-by port).
    /// `None` when the server filled in neither, or the host is a name.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        if self.received.is_none() && !matches!(self.rport, Some(Some(_))) {
            return None;
        }
        let ip = match self.received {
            Some(ip) => ip,
            None => host_ip(&self.host)?,
        };
        let port = match self.rport {
            Some(Some(p)) => p,
            _ => self.port.unwrap_or(5060),
        };
        Some(SocketAddr::new(ip, port))
    }
}

/// Reads the first (topmost) Via value of `headers`.
pub fn top_via(headers: &rsip::Headers) -> Option<ViaInfo> {
    let value = header_values(headers, HeaderName::Via).into_iter().next()?;
    // "Via: a, b" holds two via-parms; the first is the top one. Neither
    // sent-by nor the params we read may contain a comma.
    let first = value.split(',').next()?.trim();
    parse_via(first)
}

/// Parses one `via-parm`: `SIP/2.0/UDP host[:port];params`.
pub fn parse_via(value: &str) -> Option<ViaInfo> {
    let (protocol, rest) = value.trim().split_once(char::is_whitespace)?;
    let mut parts = protocol.split('/').map(str::trim);
    let (name, version, transport) = (parts.next()?, parts.next()?, parts.next()?);
    if !name.eq_ignore_ascii_case("SIP") || version != "2.0" || parts.next().is_some() {
        return None;
    }
    let rest = rest.trim();
    let (sent_by, params) = match rest.split_once(';') {
        Some((s, p)) => (s.trim(), p),
        None => (rest, ""),
    };
    let (host, port) = if let Some(v6) = sent_by.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        let port = match after.trim() {
            "" => None,
            p => Some(p.strip_prefix(':')?.trim().parse().ok()?),
        };
        (format!("[{addr}]"), port)
    } else {
        match sent_by.split_once(':') {
            Some((h, p)) => (h.trim().to_string(), Some(p.trim().parse().ok()?)),
            None => (sent_by.to_string(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let mut info = ViaInfo {
        transport: transport.to_string(),
        host,
        port,
        received: None,
        rport: None,
        branch: None,
    };
    for p in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (n, v) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p, None),
        };
        if n.eq_ignore_ascii_case("received") {
            info.received = v.and_then(host_ip);
        } else if n.eq_ignore_ascii_case("rport") {
            info.rport = Some(v.and_then(|v| v.parse().ok()));
        } else if n.eq_ignore_ascii_case("branch") {
            info.branch = v.map(str::to_string);
        }
    }
    Some(info)
}

/// What a server does to the top Via of a request it receives from
/// `source` (RFC 3261 18.2.1, RFC 3581 4): add `received` when the
/// sent-by host differs from the source address, and fill in an empty
/// `rport` (adding `received` then too). Returns the new value, or `None`
/// when nothing changes or the value cannot be read.
pub fn stamp_received(via_parm: &str, source: SocketAddr) -> Option<String> {
    let info = parse_via(via_parm)?;
    let wants_rport = info.rport == Some(None);
    let source_ip = source.ip().to_canonical();
    let host_differs = host_ip(&info.host) != Some(source_ip);
    let add_received = info.received.is_none() && (host_differs || wants_rport);
    if !add_received && !wants_rport {
        return None;
    }
    let mut out = String::with_capacity(via_parm.len() + 40);
    let (head, params) = match via_parm.split_once(';') {
        Some((h, p)) => (h.trim_end(), Some(p)),
        None => (via_parm.trim_end(), None),
    };
    out.push_str(head);
    for p in params.into_iter().flat_map(|p| p.split(';')) {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        out.push(';');
        if wants_rport && p.eq_ignore_ascii_case("rport") {
            out.push_str(&format!("rport={}", source.port()));
        } else {
            out.push_str(p);
        }
    }
    if add_received {
        // RFC 3261 25.1 `via-received`: IPv6 written bare.
        out.push_str(&format!(";received={source_ip}"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sent_by_received_and_rport() {
        let v = parse_via(
            "SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bKabc;rport=40000;received=203.0.113.5",
        )
        .unwrap();
        assert_eq!((v.host.as_str(), v.port), ("10.0.0.2", Some(5062)));
        assert_eq!(v.branch.as_deref(), Some("z9hG4bKabc"));
        assert_eq!(v.public_addr(), Some("203.0.113.5:40000".parse().unwrap()));

        let v6 =
            parse_via("SIP/2.0/TCP [2001:db8::2]:5060;received=[2001:db8::9];rport=7").unwrap();
        assert_eq!(v6.public_addr(), Some("[2001:db8::9]:7".parse().unwrap()));

        // The stack's internal IPv6 names (crate::sip::ipv6) read as addresses.
        let internal = parse_via(
            "SIP/2.0/UDP 2001-db8-0-0-0-0-0-2.ipv6.invalid:5060;rport=7;received=2001-db8-0-0-0-0-0-9.ipv6.invalid",
        )
        .unwrap();
        assert_eq!(
            internal.public_addr(),
            Some("[2001:db8::9]:7".parse().unwrap())
        );
        let bare = parse_via("SIP/2.0/UDP 2001-db8-0-0-0-0-0-2.ipv6.invalid;rport=7").unwrap();
        assert_eq!(bare.public_addr(), Some("[2001:db8::2]:7".parse().unwrap()));

        let asked = parse_via("SIP/2.0/UDP 10.0.0.2;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(asked.rport, Some(None));
        assert_eq!(asked.public_addr(), None);
        let only_rport = parse_via("SIP/2.0/UDP 10.0.0.2;rport=9").unwrap();
        assert_eq!(
            only_rport.public_addr(),
            Some("10.0.0.2:9".parse().unwrap())
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "SIP/2.0/UDP",
            "HTTP/1.1/TCP h",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP h:x",
            "SIP/3.0/UDP h",
        ] {
            assert_eq!(parse_via(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn top_via_takes_the_first_of_a_list() {
        let req = rsip::Request::try_from(
            "OPTIONS sip:x SIP/2.0\r\nv: SIP/2.0/UDP a:1;branch=z9hG4bK1, SIP/2.0/UDP b:2\r\nVia: SIP/2.0/UDP c:3\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(top_via(&req.headers).unwrap().host, "a");
    }

    #[test]
    fn stamping_follows_rfc3581() {
        let src: SocketAddr = "203.0.113.5:40000".parse().unwrap();
        assert_eq!(
            stamp_received("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKx;rport", src).as_deref(),
            Some("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKx;rport=40000;received=203.0.113.5")
        );
        // No rport asked, host differs: received only (RFC 3261 18.2.1).
        assert_eq!(
            stamp_received("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKx", src).as_deref(),
            Some("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKx;received=203.0.113.5")
        );
        // Same host, no rport: nothing to do.
        assert_eq!(
            stamp_received("SIP/2.0/UDP 203.0.113.5:40000;branch=z9hG4bKx", src),
            None
        );
        // rport asked from the same host: rport and received both.
        let same = stamp_received("SIP/2.0/UDP 203.0.113.5:5060;rport", src).unwrap();
        assert!(
            same.ends_with(";rport=40000;received=203.0.113.5"),
            "{same}"
        );
        let v6: SocketAddr = "[2001:db8::9]:7".parse().unwrap();
        let stamped = stamp_received("SIP/2.0/UDP [2001:db8::2];rport", v6).unwrap();
        assert_eq!(
            parse_via(&stamped).unwrap().public_addr(),
            Some(v6),
            "{stamped}"
        );
    }
}
