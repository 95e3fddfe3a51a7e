//! Server side: where a response goes, read from its top Via
//! (RFC 3261 18.2.2 with RFC 3581 section 5).

use super::via::{Rport, ViaError, ViaHost, ViaParm, top_via};
use crate::sip::Transport;
use std::net::{IpAddr, SocketAddr};

/// A place to send to: an address, or a name that needs the server
/// procedures of RFC 3263 section 5 (SRV when `port` is `None`, else A/AAAA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Addr(SocketAddr),
    Name { host: String, port: Option<u16> },
}

/// How to deliver a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseRoute {
    /// Reliable transport (RFC 3261 18.2.2): send on the connection the
    /// request arrived on. Only if that connection has closed, open a new
    /// one to `fallback` (the `received` IP with the sent-by port), and if
    /// that fails, to `last_resort` (sent-by through RFC 3263 section 5).
    SameConnection {
        transport: Transport,
        fallback: Option<SocketAddr>,
        last_resort: Destination,
    },
    /// Unreliable transport: send one datagram here, from the address and
    /// port the request arrived on (RFC 3581 section 5). `multicast_ttl` is
    /// set when `maddr` is a multicast group (18.2.2: `ttl`, default 1).
    Datagram {
        transport: Transport,
        to: Destination,
        multicast_ttl: Option<u8>,
    },
}

/// The route for `response`, from its top Via.
pub fn response_route(response: &rsip::Response) -> Result<ResponseRoute, ViaError> {
    route_for_via(&top_via(&response.headers)?)
}

/// The route for a response whose top Via is `via`.
pub fn route_for_via(via: &ViaParm) -> Result<ResponseRoute, ViaError> {
    let transport = via.transport()?;
    // 18.2.2: the sent-by port defaults to the transport's (5061 for TLS).
    let sent_by_port = via.port.unwrap_or(transport.default_port());
    let received = via.received()?;
    let rport = via.rport()?;
    let sent_by = match &via.host {
        ViaHost::Ip(ip) => Destination::Addr(SocketAddr::new(*ip, sent_by_port)),
        ViaHost::Name(name) => Destination::Name {
            host: name.clone(),
            port: via.port,
        },
    };
    if transport.is_reliable() {
        return Ok(ResponseRoute::SameConnection {
            transport,
            fallback: received.map(|ip| SocketAddr::new(ip, sent_by_port)),
            last_resort: sent_by,
        });
    }
    // 18.2.2: maddr wins for unreliable transports, with the sent-by port.
    if let Some(maddr) = via.maddr() {
        let bare = maddr
            .strip_prefix('[')
            .and_then(|m| m.strip_suffix(']'))
            .unwrap_or(maddr);
        return Ok(match bare.parse::<IpAddr>() {
            Ok(ip) => ResponseRoute::Datagram {
                transport,
                to: Destination::Addr(SocketAddr::new(ip, sent_by_port)),
                multicast_ttl: ip.is_multicast().then(|| multicast_ttl(via)).transpose()?,
            },
            Err(_) => ResponseRoute::Datagram {
                transport,
                to: Destination::Name {
                    host: maddr.to_string(),
                    port: via.port,
                },
                multicast_ttl: None,
            },
        });
    }
    let to = match (received, rport) {
        // RFC 3581 section 5: received and rport together name the NAT binding.
        (Some(ip), Rport::Filled(port)) => Destination::Addr(SocketAddr::new(ip, port)),
        // 18.2.2: received with the sent-by port.
        (Some(ip), _) => Destination::Addr(SocketAddr::new(ip, sent_by_port)),
        (None, _) => sent_by,
    };
    Ok(ResponseRoute::Datagram {
        transport,
        to,
        multicast_ttl: None,
    })
}

/// 18.2.2: `ttl` for a multicast `maddr`, 1 when absent.
fn multicast_ttl(via: &ViaParm) -> Result<u8, ViaError> {
    match via.param("ttl") {
        None => Ok(1),
        Some(value) => value
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ViaError::Malformed {
                value: value.unwrap_or_default().to_string(),
                reason: "ttl is not a number 0-255",
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(via: &str) -> ResponseRoute {
        route_for_via(&ViaParm::parse(via).unwrap()).unwrap()
    }

    fn datagram(to: &str) -> ResponseRoute {
        ResponseRoute::Datagram {
            transport: Transport::Udp,
            to: Destination::Addr(to.parse().unwrap()),
            multicast_ttl: None,
        }
    }

    #[test]
    fn udp_sent_by_ip_and_default_port() {
        assert_eq!(
            route("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
            datagram("192.0.2.1:5060")
        );
        assert_eq!(
            route("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK1"),
            datagram("[2001:db8::1]:5070")
        );
    }

    #[test]
    fn udp_received_uses_sent_by_port() {
        assert_eq!(
            route("SIP/2.0/UDP host.example:5070;received=192.0.2.1;branch=z9hG4bK1"),
            datagram("192.0.2.1:5070")
        );
        assert_eq!(
            route("SIP/2.0/UDP host.example;received=2001:db8::7"),
            datagram("[2001:db8::7]:5060")
        );
    }

    #[test]
    fn rfc3581_received_and_rport_name_the_nat_binding() {
        assert_eq!(
            route("SIP/2.0/UDP 10.1.1.1:4540;received=192.0.2.1;rport=9988;branch=z9hG4bK1"),
            datagram("192.0.2.1:9988")
        );
        assert_eq!(
            route("SIP/2.0/UDP [fd00::1]:5060;rport=40001;received=2001:db8::2"),
            datagram("[2001:db8::2]:40001")
        );
        // rport without received (a server that ignored RFC 3581 section 4): 18.2.2 applies.
        assert_eq!(
            route("SIP/2.0/UDP 10.1.1.1:4540;rport"),
            datagram("10.1.1.1:4540")
        );
    }

    #[test]
    fn udp_domain_needs_rfc3263() {
        assert_eq!(
            route("SIP/2.0/UDP pc33.atlanta.example;branch=z9hG4bK1"),
            ResponseRoute::Datagram {
                transport: Transport::Udp,
                to: Destination::Name {
                    host: "pc33.atlanta.example".into(),
                    port: None
                },
                multicast_ttl: None,
            }
        );
    }

    #[test]
    fn maddr_wins_over_received_and_multicast_gets_ttl() {
        assert_eq!(
            route("SIP/2.0/UDP 10.0.0.1:5070;maddr=192.0.2.55;received=192.0.2.1;rport=1"),
            datagram("192.0.2.55:5070")
        );
        assert_eq!(
            route("SIP/2.0/UDP 10.0.0.1;maddr=239.255.255.1;ttl=16"),
            ResponseRoute::Datagram {
                transport: Transport::Udp,
                to: Destination::Addr("239.255.255.1:5060".parse().unwrap()),
                multicast_ttl: Some(16),
            }
        );
        assert_eq!(
            route("SIP/2.0/UDP 10.0.0.1;maddr=[ff02::1]"),
            ResponseRoute::Datagram {
                transport: Transport::Udp,
                to: Destination::Addr("[ff02::1]:5060".parse().unwrap()),
                multicast_ttl: Some(1),
            }
        );
        assert!(
            route_for_via(&ViaParm::parse("SIP/2.0/UDP 10.0.0.1;maddr=239.1.1.1;ttl=999").unwrap())
                .is_err()
        );
    }

    #[test]
    fn tcp_uses_the_same_connection_then_received() {
        assert_eq!(
            route("SIP/2.0/TCP client.example:5070;received=192.0.2.1;rport=40000"),
            ResponseRoute::SameConnection {
                transport: Transport::Tcp,
                fallback: Some("192.0.2.1:5070".parse().unwrap()),
                last_resort: Destination::Name {
                    host: "client.example".into(),
                    port: Some(5070)
                },
            }
        );
        assert_eq!(
            route("SIP/2.0/TCP [::1];branch=z9hG4bK1"),
            ResponseRoute::SameConnection {
                transport: Transport::Tcp,
                fallback: None,
                last_resort: Destination::Addr("[::1]:5060".parse().unwrap()),
            }
        );
    }

    #[test]
    fn reads_the_response_top_via() {
        let raw = "SIP/2.0 200 OK\r\n\
            Via: SIP/2.0/UDP 10.1.1.1:4540;received=192.0.2.1;rport=9988;branch=z9hG4bK1\r\n\
            Via: SIP/2.0/UDP 192.0.2.200;branch=z9hG4bK0\r\n\
            From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\n\
            Call-ID: c@d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let response = rsip::Response::try_from(raw.as_bytes()).unwrap();
        assert_eq!(
            response_route(&response).unwrap(),
            datagram("192.0.2.1:9988")
        );
    }

    #[test]
    fn tls_answers_on_its_connection_and_defaults_to_5061() {
        assert_eq!(
            route("SIP/2.0/TLS 192.0.2.1;received=192.0.2.7;branch=z9hG4bK1"),
            ResponseRoute::SameConnection {
                transport: Transport::Tls,
                fallback: Some("192.0.2.7:5061".parse().unwrap()),
                last_resort: Destination::Addr("192.0.2.1:5061".parse().unwrap()),
            }
        );
    }

    #[test]
    fn unsupported_transport_is_an_error() {
        assert_eq!(
            route_for_via(&ViaParm::parse("SIP/2.0/SCTP 192.0.2.1").unwrap()),
            Err(ViaError::UnsupportedTransport("SCTP".into()))
        );
    }
}
