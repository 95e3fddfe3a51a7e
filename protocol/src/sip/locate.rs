//! Locating the server for a SIP URI (RFC 3263 section 4).
//!
//! The sans-I/O core cannot query DNS, so names are looked up through a
//! [`Resolver`] that the shell provides (and tests fake). IP literals are
//! handled here: RFC 3263 4.1 (transport from `transport=`, else UDP for
//! `sip:` and TLS for `sips:`) and 4.2 (port from the URI, else 5060, or
//! 5061 for TLS).

use std::net::{IpAddr, SocketAddr};

use super::{Target, Transport};

/// Looks up host names the core cannot resolve itself. Implementations
/// follow RFC 3263 4.2 for a name without a port (NAPTR/SRV, then A/AAAA)
/// and answer from a cache: the core calls this on its hot path.
pub trait Resolver {
    fn resolve(&self, host: &str, port: Option<u16>, transport: Transport) -> Option<Target>;
}

/// Resolves nothing: every non-literal host fails to resolve.
#[derive(Debug, Default, Clone, Copy)]
pub struct LiteralsOnly;

impl Resolver for LiteralsOnly {
    fn resolve(&self, _: &str, _: Option<u16>, _: Transport) -> Option<Target> {
        None
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocateError {
    #[error("cannot resolve host {0}")]
    Unresolved(String),
    #[error("unsupported transport {0} in {1}")]
    UnsupportedTransport(String, String),
    /// RFC 3261 26.2.2: a `sips:` URI is reached over TLS only.
    #[error("sips URIs need TLS, not UDP: {0}")]
    Sips(String),
}

/// Where to send a request whose next hop is `uri` (RFC 3263 4.1, 4.2).
pub fn locate(uri: &rsip::Uri, resolver: &dyn Resolver) -> Result<Target, LocateError> {
    let sips = matches!(uri.scheme, Some(rsip::Scheme::Sips));
    let transport = match (uri.transport(), sips) {
        (None, false) => Transport::Udp,
        (Some(rsip::Transport::Udp), false) => Transport::Udp,
        (Some(rsip::Transport::Tcp), false) => Transport::Tcp,
        // RFC 3263 4.1: a sips URI is TLS; `transport=tcp` on it means TLS
        // over TCP (RFC 3261 26.2.2), and `transport=tls` is the deprecated
        // spelling of the same (RFC 5630 3.1.4).
        (None | Some(rsip::Transport::Tcp | rsip::Transport::Tls), true) => Transport::Tls,
        (Some(rsip::Transport::Tls), false) => Transport::Tls,
        (Some(rsip::Transport::Udp), true) => return Err(LocateError::Sips(uri.to_string())),
        (Some(other), _) => {
            return Err(LocateError::UnsupportedTransport(
                other.to_string(),
                uri.to_string(),
            ));
        }
    };
    let port = uri.host_with_port.port.map(|p| *p.value());
    let host = uri.host_with_port.host.to_string();
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let ip = literal
        .parse::<IpAddr>()
        .ok()
        .or_else(|| super::ipv6::decode_host(&host).map(IpAddr::V6));
    if let Some(ip) = ip {
        return Ok(Target::new(
            transport,
            SocketAddr::new(ip, port.unwrap_or(transport.default_port())),
        ));
    }
    resolver
        .resolve(&host, port, transport)
        .ok_or(LocateError::Unresolved(host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Table(HashMap<String, SocketAddr>);

    impl Resolver for Table {
        fn resolve(&self, host: &str, port: Option<u16>, t: Transport) -> Option<Target> {
            let mut addr = *self.0.get(host)?;
            if let Some(p) = port {
                addr.set_port(p);
            }
            Some(Target::new(t, addr))
        }
    }

    fn uri(s: &str) -> rsip::Uri {
        rsip::Uri::try_from(s).unwrap()
    }

    #[test]
    fn literals_default_to_udp_and_5060() {
        let t = locate(&uri("sip:c@192.0.2.9"), &LiteralsOnly).unwrap();
        assert_eq!(
            t,
            Target::new(Transport::Udp, "192.0.2.9:5060".parse().unwrap())
        );
        let t = locate(
            &uri(&super::super::ipv6::to_internal(
                "sip:[2001:db8::9]:5070;transport=tcp",
            )),
            &LiteralsOnly,
        )
        .unwrap();
        assert_eq!(
            t,
            Target::new(Transport::Tcp, "[2001:db8::9]:5070".parse().unwrap())
        );
    }

    #[test]
    fn names_go_through_the_resolver() {
        let table = Table(HashMap::from([(
            "example.net".to_owned(),
            "192.0.2.7:5060".parse().unwrap(),
        )]));
        let t = locate(&uri("sip:c@example.net:5080"), &table).unwrap();
        assert_eq!(t.addr, "192.0.2.7:5080".parse().unwrap());
        assert_eq!(
            locate(&uri("sip:c@nowhere.test"), &table),
            Err(LocateError::Unresolved("nowhere.test".into()))
        );
    }

    #[test]
    fn sips_and_transport_tls_go_over_tls_on_5061() {
        for text in [
            "sips:c@192.0.2.9",
            "sips:c@192.0.2.9;transport=tcp",
            "sips:c@192.0.2.9;transport=tls",
            "sip:c@192.0.2.9;transport=tls",
        ] {
            assert_eq!(
                locate(&uri(text), &LiteralsOnly),
                Ok(Target::new(
                    Transport::Tls,
                    "192.0.2.9:5061".parse().unwrap()
                )),
                "{text}"
            );
        }
        let t = locate(&uri("sips:c@192.0.2.9:7000"), &LiteralsOnly).unwrap();
        assert_eq!(t.addr.port(), 7000);
    }

    #[test]
    fn sips_over_udp_and_unknown_transports_are_refused() {
        assert!(matches!(
            locate(&uri("sips:c@192.0.2.9;transport=udp"), &LiteralsOnly),
            Err(LocateError::Sips(_))
        ));
        assert!(matches!(
            locate(&uri("sip:c@192.0.2.9;transport=sctp"), &LiteralsOnly),
            Err(LocateError::UnsupportedTransport(..))
        ));
    }
}
