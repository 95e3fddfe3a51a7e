//! SIP (RFC 3261) on top of `rsip`'s message types.
//!
//! Producers of requests (registration, dialogs) build complete
//! `rsip::Request`s, top Via included, with [`LocalEndpoint::via`]; the
//! transaction layer keys on that Via's branch.

pub mod dialog;
pub mod digest;
pub mod ipv6;
pub mod locate;
pub mod message;
pub mod registrar;
pub mod registration;
pub mod response;
pub mod timers;
pub mod transaction;
pub mod transport;
pub mod ua;
pub mod uri;

// The message types the stack is built on, so that the apps name them
// through this crate and need no `rsip` of their own.
pub use rsip::{Header, Method, Request, Response, StatusCode, headers};

/// The traits that give `rsip` messages and headers their accessors
/// (`from_header()`, `typed()`, `value()`, ...).
pub mod prelude {
    pub use rsip::headers::UntypedHeader;
    pub use rsip::prelude::*;
}

use rsip::headers::UntypedHeader;
use std::fmt;
use std::net::SocketAddr;

/// The transports this stack speaks (RFC 3261 section 18; TLS over TCP,
/// section 26 and RFC 5630).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// Reliable transports get no retransmissions (17.1.1.2, 17.1.2.2).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }

    /// Byte streams, cut into messages by Content-Length (18.3); TLS
    /// carries the same stream as TCP.
    pub fn is_stream(self) -> bool {
        self.is_reliable()
    }

    /// Only TLS may carry a request whose Request-URI is `sips:`
    /// (RFC 3261 26.2.2, RFC 5630 3.1.3).
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Tls)
    }

    /// The token used in Via sent-protocol and `transport=` (RFC 3261 25.1).
    pub fn token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The port when a URI or a Via names none: 5061 for TLS, else 5060
    /// (RFC 3261 19.1.2 and 18.2.2, RFC 3263 4.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// Where a message goes or came from: a transport and a socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl Target {
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        Self { transport, addr }
    }
}

/// Where this user agent is reached: the address its socket is bound to, or
/// the public address learnt from `received`/`rport` (RFC 3581 section 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl LocalEndpoint {
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        Self { transport, addr }
    }

    /// `host:port` as the stack writes it inside rsip types: IPv6
    /// addresses in their internal name form (see
    /// [`ipv6_to_wire`](crate::ipv6_to_wire)), which becomes `[addr]:port`
    /// (RFC 3261 25.1 `hostport`) on the wire.
    pub fn host_port(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => format!("{}:{}", ipv6::encode_host(a.ip()), a.port()),
        }
    }

    /// A top Via for a new client transaction. It always asks for `rport`
    /// (RFC 3581 section 3), so that a device behind NAT gets its responses
    /// back to the address and port the request really came from.
    pub fn via(&self, branch: &str) -> rsip::Header {
        rsip::Header::Via(rsip::headers::Via::new(format!(
            "SIP/2.0/{} {};branch={};rport",
            self.transport,
            self.host_port(),
            branch
        )))
    }

    /// A Contact URI for this endpoint, `sip:user@host:port;transport=..`;
    /// over TLS a `sips:` URI (RFC 5630 3.1.1: reach me over TLS only;
    /// `transport=tls` is deprecated, RFC 3261 26.2.2).
    pub fn contact_uri(&self, user: Option<&str>) -> String {
        let user = user.map(|u| format!("{u}@")).unwrap_or_default();
        match self.transport {
            Transport::Udp => format!("sip:{user}{}", self.host_port()),
            Transport::Tcp => format!("sip:{user}{};transport=tcp", self.host_port()),
            Transport::Tls => format!("sips:{user}{}", self.host_port()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsip::prelude::*;

    #[test]
    fn via_asks_for_rport_and_parses_back() {
        let local = LocalEndpoint::new(Transport::Udp, "192.0.2.1:5062".parse().unwrap());
        let via = local.via("z9hG4bKabc");
        let rsip::Header::Via(via) = via else {
            panic!("not a Via")
        };
        let typed = via.typed().unwrap();
        assert_eq!(typed.branch().unwrap().to_string(), "z9hG4bKabc");
        assert!(via.to_string().contains(";rport"));
    }

    #[test]
    fn tls_endpoint_says_tls_in_via_and_sips_in_contact() {
        let local = LocalEndpoint::new(Transport::Tls, "192.0.2.1:5061".parse().unwrap());
        assert!(
            local
                .via("z9hG4bKt")
                .to_string()
                .contains("SIP/2.0/TLS 192.0.2.1:5061;")
        );
        assert_eq!(local.contact_uri(Some("s1")), "sips:s1@192.0.2.1:5061");
        assert!(Transport::Tls.is_reliable() && Transport::Tls.is_secure());
        assert!(!Transport::Tcp.is_secure());
        assert_eq!(
            [Transport::Udp, Transport::Tcp, Transport::Tls].map(Transport::default_port),
            [5060, 5060, 5061]
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed_on_the_wire() {
        let local = LocalEndpoint::new(Transport::Tcp, "[2001:db8::1]:5060".parse().unwrap());
        assert_eq!(
            ipv6::to_wire(&local.contact_uri(Some("s1"))),
            "sip:s1@[2001:db8::1]:5060;transport=tcp"
        );
        let via = local.via("z9hG4bKx");
        assert!(
            via.to_string()
                .contains("2001-db8-0-0-0-0-0-1.ipv6.invalid:5060")
        );
    }
}
