//! Reading and rewriting the top Via of an `rsip` message.
//!
//! `rsip` 0.4's typed Via splits `sent-by` at the first ':', so it cannot
//! read an IPv6 reference (`[2001:db8::1]:5060`), and its Display drops the
//! brackets again. The transport rules only need the top `via-parm`, so this
//! module parses that one value itself (RFC 3261 25.1 grammar, with the
//! optional whitespace SWS allows around '/', ':', ';' and '=') and writes
//! it back into the untyped header, leaving any further values on the same
//! header line untouched.

use crate::sip::Transport;
use rsip::headers::UntypedHeader;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Why a top Via could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViaError {
    /// RFC 3261 8.1.1.7: every request and response carries a Via.
    #[error("message has no Via header")]
    Missing,
    #[error("malformed Via value {value:?}: {reason}")]
    Malformed { value: String, reason: &'static str },
    /// Only UDP, TCP and TLS are spoken here (SCTP, WS are not).
    #[error("unsupported Via transport {0:?}")]
    UnsupportedTransport(String),
    #[error("Via received parameter is not an IP address: {0:?}")]
    BadReceived(String),
    #[error("Via rport parameter is not a port number: {0:?}")]
    BadRport(String),
}

/// Longest Via value quoted back in an error message.
const ERROR_QUOTE_MAX: usize = 120;

fn malformed(value: &str, reason: &'static str) -> ViaError {
    let mut end = value.len().min(ERROR_QUOTE_MAX);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    ViaError::Malformed {
        value: value[..end].to_string(),
        reason,
    }
}

/// The host part of `sent-by` (RFC 3261 25.1 `host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViaHost {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for ViaHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // RFC 3261 25.1: an IPv6 address in sent-by is an IPv6reference.
            ViaHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            ViaHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            ViaHost::Name(name) => f.write_str(name),
        }
    }
}

/// Whether and how the top Via carries `rport` (RFC 3581 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rport {
    Absent,
    /// `;rport` without a value: the client asks the server to fill it in.
    Requested,
    /// `;rport=N`, filled in by the server with the request's source port.
    Filled(u16),
}

/// One parsed `via-parm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaParm {
    /// `SIP/2.0` as written (protocol-name "/" protocol-version).
    pub protocol: String,
    /// The transport token as written (`UDP`, `TCP`, ...).
    pub transport: String,
    pub host: ViaHost,
    pub port: Option<u16>,
    /// Parameters in order; names keep their case, values are raw text.
    pub params: Vec<(String, Option<String>)>,
}

impl ViaParm {
    /// Parse one `via-parm` (not a comma-separated list).
    pub fn parse(value: &str) -> Result<Self, ViaError> {
        Parser::new(value).via_parm()
    }

    /// The transport as one this stack speaks.
    pub fn transport(&self) -> Result<Transport, ViaError> {
        if self.transport.eq_ignore_ascii_case("UDP") {
            Ok(Transport::Udp)
        } else if self.transport.eq_ignore_ascii_case("TCP") {
            Ok(Transport::Tcp)
        } else if self.transport.eq_ignore_ascii_case("TLS") {
            // RFC 3261 26.2.2 / RFC 5630 3.1.4: SIP/2.0/TLS is TLS over TCP.
            Ok(Transport::Tls)
        } else {
            Err(ViaError::UnsupportedTransport(self.transport.clone()))
        }
    }

    /// A parameter by name (case-insensitive, RFC 3261 7.3.1): `None` if
    /// absent, `Some(None)` if present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// Set a parameter, replacing an existing one of that name in place.
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.params.push((name.to_string(), value)),
        }
    }

    #[cfg(test)]
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    pub fn maddr(&self) -> Option<&str> {
        self.param("maddr").flatten()
    }

    /// `received` as an address. Written bare (RFC 3261 25.1 `via-received`)
    /// but brackets are accepted, as some servers add them for IPv6.
    pub fn received(&self) -> Result<Option<IpAddr>, ViaError> {
        match self.param("received") {
            None => Ok(None),
            Some(None) => Err(ViaError::BadReceived(String::new())),
            Some(Some(v)) => {
                let bare = v
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .unwrap_or(v);
                bare.parse()
                    .map(Some)
                    .map_err(|_| ViaError::BadReceived(v.to_string()))
            }
        }
    }

    /// RFC 3581 section 3: `rport` with or without its value.
    pub fn rport(&self) -> Result<Rport, ViaError> {
        match self.param("rport") {
            None => Ok(Rport::Absent),
            Some(None) => Ok(Rport::Requested),
            Some(Some(v)) => match v.parse::<u16>() {
                Ok(port) if port != 0 => Ok(Rport::Filled(port)),
                _ => Err(ViaError::BadRport(v.to_string())),
            },
        }
    }
}

impl fmt::Display for ViaParm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.protocol, self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for (name, value) in &self.params {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

/// Split a Via header value at its first top-level comma: the top
/// `via-parm` and the remaining values, if any (RFC 3261 7.3.1 lets one
/// header line carry several). Commas inside quoted strings do not count.
pub fn split_first(value: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => return (value[..i].trim(), Some(value[i + 1..].trim())),
            _ => {}
        }
    }
    (value.trim(), None)
}

/// The value of a Via header, typed or kept as `Other` under the compact
/// name `v` (RFC 3261 7.3.3), which rsip does not map.
fn via_value(header: &rsip::Header) -> Option<&str> {
    match header {
        rsip::Header::Via(via) => Some(via.value()),
        rsip::Header::Other(name, value) if name.eq_ignore_ascii_case("v") => Some(value),
        _ => None,
    }
}

/// The topmost `via-parm` of a message's headers.
pub fn top_via(headers: &rsip::Headers) -> Result<ViaParm, ViaError> {
    let value = headers
        .iter()
        .find_map(via_value)
        .ok_or(ViaError::Missing)?;
    ViaParm::parse(split_first(value).0)
}

/// The bottommost `via-parm`: the one the request's originator wrote, to
/// which the first server it reached added `received`/`rport` (RFC 3261
/// 18.2.1, RFC 3581 4), so a UAS behind proxies reads there where the
/// originator's packets came from. Only as trustworthy as every proxy on
/// the way.
pub fn bottom_via(headers: &rsip::Headers) -> Result<ViaParm, ViaError> {
    let mut value = headers
        .iter()
        .filter_map(via_value)
        .last()
        .ok_or(ViaError::Missing)?;
    while let (_, Some(rest)) = split_first(value) {
        value = rest;
    }
    ViaParm::parse(split_first(value).0)
}

/// Replace the topmost `via-parm` with `via`, keeping any further values
/// that shared its header line.
pub fn set_top_via(headers: &mut rsip::Headers, via: &ViaParm) -> Result<(), ViaError> {
    let header = headers
        .iter_mut()
        .find(|h| via_value(h).is_some())
        .ok_or(ViaError::Missing)?;
    let rest = via_value(header)
        .and_then(|v| split_first(v).1)
        .map(str::to_string);
    let value = match rest {
        Some(rest) => format!("{via}, {rest}"),
        None => via.to_string(),
    };
    *header = rsip::Header::Via(rsip::headers::Via::new(value));
    Ok(())
}

/// A cursor over one `via-parm`.
struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

/// RFC 3261 25.1 `token` characters.
fn is_token(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// Characters of a parameter value that is not a quoted string: `token`
/// plus what `host` needs (':' and brackets for IPv6 in received/maddr).
fn is_value_char(c: char) -> bool {
    is_token(c) || matches!(c, ':' | '[' | ']')
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Self { input, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t']).len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            self.skip_ws();
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c| !f(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn token(&mut self, what: &'static str) -> Result<&'a str, ViaError> {
        let token = self.take_while(is_token);
        if token.is_empty() {
            Err(malformed(self.input, what))
        } else {
            Ok(token)
        }
    }

    fn via_parm(mut self) -> Result<ViaParm, ViaError> {
        self.skip_ws();
        let name = self.token("missing protocol name")?;
        if !self.eat('/') {
            return Err(malformed(self.input, "missing '/' after protocol name"));
        }
        let version = self.token("missing protocol version")?;
        if !self.eat('/') {
            return Err(malformed(self.input, "missing '/' before transport"));
        }
        let transport = self.token("missing transport")?.to_string();
        let before_host = self.pos;
        self.skip_ws();
        if self.pos == before_host {
            return Err(malformed(self.input, "no whitespace before sent-by"));
        }
        let host = self.host()?;
        let port = if self.eat(':') {
            let digits = self.take_while(|c| c.is_ascii_digit());
            match digits.parse::<u16>() {
                Ok(p) if p != 0 => Some(p),
                _ => return Err(malformed(self.input, "bad sent-by port")),
            }
        } else {
            None
        };
        let mut params = Vec::new();
        while self.eat(';') {
            let name = self.token("empty parameter name")?.to_string();
            let value = if self.eat('=') {
                Some(self.param_value()?)
            } else {
                None
            };
            params.push((name, value));
        }
        self.skip_ws();
        if !self.rest().is_empty() {
            return Err(malformed(self.input, "unexpected text after parameters"));
        }
        Ok(ViaParm {
            protocol: format!("{name}/{version}"),
            transport,
            host,
            port,
            params,
        })
    }

    fn host(&mut self) -> Result<ViaHost, ViaError> {
        if self.peek() == Some('[') {
            let rest = self.rest();
            let end = rest
                .find(']')
                .ok_or_else(|| malformed(self.input, "unterminated IPv6 reference"))?;
            let ip: Ipv6Addr = rest[1..end]
                .parse()
                .map_err(|_| malformed(self.input, "bad IPv6 reference"))?;
            self.pos += end + 1;
            return Ok(ViaHost::Ip(IpAddr::V6(ip)));
        }
        let host = self.take_while(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if host.is_empty() {
            return Err(malformed(self.input, "missing sent-by host"));
        }
        // RFC 3261 25.1: an all-numeric dotted host is an IPv4address.
        if host.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return host
                .parse()
                .map(ViaHost::Ip)
                .map_err(|_| malformed(self.input, "bad IPv4 address"));
        }
        Ok(ViaHost::Name(host.to_string()))
    }

    fn param_value(&mut self) -> Result<String, ViaError> {
        if self.peek() == Some('"') {
            let rest = self.rest();
            let mut escaped = false;
            for (i, c) in rest.char_indices().skip(1) {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        self.pos += i + 1;
                        return Ok(rest[..=i].to_string());
                    }
                    _ => {}
                }
            }
            return Err(malformed(self.input, "unterminated quoted string"));
        }
        let value = self.take_while(is_value_char);
        if value.is_empty() {
            Err(malformed(self.input, "empty parameter value"))
        } else {
            Ok(value.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_with_params() {
        let via = ViaParm::parse("SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKa1;rport").unwrap();
        assert_eq!(via.protocol, "SIP/2.0");
        assert_eq!(via.transport().unwrap(), Transport::Udp);
        assert_eq!(via.host, ViaHost::Ip("192.0.2.4".parse().unwrap()));
        assert_eq!(via.port, Some(5062));
        assert_eq!(via.branch(), Some("z9hG4bKa1"));
        assert_eq!(via.rport().unwrap(), Rport::Requested);
        assert_eq!(
            via.to_string(),
            "SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bKa1;rport"
        );
    }

    #[test]
    fn parses_ipv6_reference_and_bare_ipv6_received() {
        let via = ViaParm::parse(
            "SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bKx;received=2001:db8::1;rport=40000",
        )
        .unwrap();
        assert_eq!(via.host, ViaHost::Ip("2001:db8::9".parse().unwrap()));
        assert_eq!(via.port, Some(5070));
        assert_eq!(via.transport().unwrap(), Transport::Tcp);
        assert_eq!(
            via.received().unwrap(),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(via.rport().unwrap(), Rport::Filled(40000));
        assert!(
            via.to_string()
                .starts_with("SIP/2.0/TCP [2001:db8::9]:5070;")
        );
    }

    #[test]
    fn accepts_bracketed_received_and_sws() {
        let via =
            ViaParm::parse("SIP / 2.0 / UDP  host.example.com ; received = [::1] ; ttl=1").unwrap();
        assert_eq!(via.host, ViaHost::Name("host.example.com".into()));
        assert_eq!(via.port, None);
        assert_eq!(via.received().unwrap(), Some("::1".parse().unwrap()));
        assert_eq!(via.param("TTL"), Some(Some("1")));
    }

    #[test]
    fn bottom_via_is_the_originators_across_lines_and_commas() {
        let request = rsip::Request::try_from(
            "INVITE sip:c@example.net SIP/2.0\r\n\
             Via: SIP/2.0/TLS 198.51.100.1:5061;branch=z9hG4bKp2\r\n\
             Via: SIP/2.0/TLS 192.0.2.7;branch=z9hG4bKp1, \
             SIP/2.0/TLS 10.77.0.10:40000;branch=z9hG4bKs;received=198.51.100.2;rport=39488\r\n\
             Content-Length: 0\r\n\r\n"
                .as_bytes(),
        )
        .unwrap();
        let bottom = bottom_via(&request.headers).unwrap();
        assert_eq!(bottom.host, ViaHost::Ip("10.77.0.10".parse().unwrap()));
        assert_eq!(
            bottom.received().unwrap(),
            Some("198.51.100.2".parse().unwrap())
        );
        let top = top_via(&request.headers).unwrap();
        assert_eq!(top.branch(), Some("z9hG4bKp2"));
        let bare = rsip::Request::try_from(
            "INVITE sip:c@example.net SIP/2.0\r\nContent-Length: 0\r\n\r\n".as_bytes(),
        )
        .unwrap();
        assert_eq!(bottom_via(&bare.headers), Err(ViaError::Missing));
    }

    #[test]
    fn quoted_values_and_commas() {
        let value = "SIP/2.0/UDP a.example;x=\"q, \\\"r\";branch=z9hG4bK1, SIP/2.0/UDP b.example";
        let (first, rest) = split_first(value);
        assert_eq!(rest, Some("SIP/2.0/UDP b.example"));
        let via = ViaParm::parse(first).unwrap();
        assert_eq!(via.param("x"), Some(Some("\"q, \\\"r\"")));
        assert_eq!(via.branch(), Some("z9hG4bK1"));
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            "SIP/2.0 192.0.2.1",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP192.0.2.1",
            "SIP/2.0/UDP [2001:db8::1:5060",
            "SIP/2.0/UDP [not-ip]:5060",
            "SIP/2.0/UDP 192.0.2.1:99999",
            "SIP/2.0/UDP 192.0.2.1:0",
            "SIP/2.0/UDP 999.0.2.1",
            "SIP/2.0/UDP 192.0.2.1;branch=",
            "SIP/2.0/UDP 192.0.2.1;x=\"open",
            "SIP/2.0/UDP 192.0.2.1 junk",
        ] {
            assert!(
                matches!(ViaParm::parse(bad), Err(ViaError::Malformed { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn bad_received_rport_and_transport_are_typed() {
        let via = ViaParm::parse("SIP/2.0/SCTP h;received=nope;rport=0").unwrap();
        assert!(matches!(via.received(), Err(ViaError::BadReceived(_))));
        assert!(matches!(via.rport(), Err(ViaError::BadRport(_))));
        assert!(matches!(
            via.transport(),
            Err(ViaError::UnsupportedTransport(t)) if t == "SCTP"
        ));
    }

    #[test]
    fn error_quote_is_bounded() {
        let long = format!("SIP/2.0/UDP {}é;", "a".repeat(500));
        let Err(ViaError::Malformed { value, .. }) = ViaParm::parse(&long) else {
            panic!("accepted")
        };
        assert!(value.len() <= ERROR_QUOTE_MAX);
    }

    #[test]
    fn top_via_reads_and_rewrites_only_the_first_value() {
        let mut headers = rsip::Headers::default();
        headers.push(rsip::Header::Other("Max-Forwards".into(), "70".into()));
        headers.push(rsip::Header::Via(rsip::headers::Via::new(
            "SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK0",
        )));
        headers.push(rsip::Header::Via(rsip::headers::Via::new(
            "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKz",
        )));
        let mut top = top_via(&headers).unwrap();
        assert_eq!(top.branch(), Some("z9hG4bK1"));
        top.set_param("received", Some("::2".into()));
        set_top_via(&mut headers, &top).unwrap();
        let vias: Vec<String> = headers
            .iter()
            .filter_map(|h| match h {
                rsip::Header::Via(v) => Some(v.value().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP [::1]:5060;branch=z9hG4bK1;received=::2, SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK0",
                "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKz",
            ]
        );
    }

    #[test]
    fn compact_form_and_missing_via() {
        let mut headers = rsip::Headers::default();
        assert_eq!(top_via(&headers), Err(ViaError::Missing));
        headers.push(rsip::Header::Other(
            "v".into(),
            "SIP/2.0/TCP 192.0.2.7;branch=z9hG4bKc".into(),
        ));
        assert_eq!(top_via(&headers).unwrap().branch(), Some("z9hG4bKc"));
    }
}
