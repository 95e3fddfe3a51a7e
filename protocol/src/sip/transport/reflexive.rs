//! Client side: the public address a server saw, read from `received` and
//! `rport` in the top Via of a response (RFC 3581 section 4), so a device
//! behind NAT can put a reachable address in its Contact.

use super::via::{Rport, ViaError, top_via};
#[cfg(test)]
use crate::sip::LocalEndpoint;
use std::net::IpAddr;
#[cfg(test)]
use std::net::SocketAddr;

/// The source address of our request as the server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reflexive {
    pub ip: IpAddr,
    /// Only known when we asked for `rport` and the server filled it in.
    pub port: Option<u16>,
}

/// `received`/`rport` from the response's top Via. `None` when the server
/// added neither, which means it saw our sent-by address unchanged
/// (RFC 3261 18.2.1 adds `received` whenever the source differs).
pub fn reflexive_address(response: &rsip::Response) -> Result<Option<Reflexive>, ViaError> {
    let via = top_via(&response.headers)?;
    let port = match via.rport()? {
        Rport::Filled(port) => Some(port),
        Rport::Absent | Rport::Requested => None,
    };
    Ok(match (via.received()?, port) {
        (Some(ip), port) => Some(Reflexive { ip, port }),
        // rport without received: the IP matched sent-by (a server may skip
        // received then, against RFC 3581 section 4's MUST); use sent-by's IP.
        (None, Some(port)) => match via.host {
            super::via::ViaHost::Ip(ip) => Some(Reflexive {
                ip,
                port: Some(port),
            }),
            super::via::ViaHost::Name(_) => None,
        },
        (None, None) => None,
    })
}

/// The endpoint to advertise in Contact, if the server saw `local` at a
/// different address: the reflexive IP and, when known, port (else the local
/// port, which the NAT then kept). `None` when nothing changes.
#[cfg(test)]
pub fn public_endpoint(
    local: &LocalEndpoint,
    response: &rsip::Response,
) -> Result<Option<LocalEndpoint>, ViaError> {
    let Some(seen) = reflexive_address(response)? else {
        return Ok(None);
    };
    let public = SocketAddr::new(
        seen.ip.to_canonical(),
        seen.port.unwrap_or(local.addr.port()),
    );
    Ok((public != local.addr).then(|| LocalEndpoint::new(local.transport, public)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Transport;

    fn response(via: &str) -> rsip::Response {
        let raw = format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>;tag=2\r\n\
             Call-ID: c@d\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
        );
        rsip::Response::try_from(raw.as_bytes()).unwrap()
    }

    #[test]
    fn learns_nat_binding_ipv4() {
        let r = response("SIP/2.0/UDP 10.1.1.1:4540;received=192.0.2.1;rport=9988;branch=z9hG4bK1");
        assert_eq!(
            reflexive_address(&r).unwrap(),
            Some(Reflexive {
                ip: "192.0.2.1".parse().unwrap(),
                port: Some(9988)
            })
        );
        let local = LocalEndpoint::new(Transport::Udp, "10.1.1.1:4540".parse().unwrap());
        assert_eq!(
            public_endpoint(&local, &r).unwrap(),
            Some(LocalEndpoint::new(
                Transport::Udp,
                "192.0.2.1:9988".parse().unwrap()
            ))
        );
    }

    #[test]
    fn learns_nat_binding_ipv6() {
        let r =
            response("SIP/2.0/UDP [fd00::5]:5060;rport=40000;received=2001:db8::5;branch=z9hG4bK1");
        let local = LocalEndpoint::new(Transport::Udp, "[fd00::5]:5060".parse().unwrap());
        assert_eq!(
            public_endpoint(&local, &r).unwrap(),
            Some(LocalEndpoint::new(
                Transport::Udp,
                "[2001:db8::5]:40000".parse().unwrap()
            ))
        );
    }

    #[test]
    fn no_change_when_seen_as_is() {
        let local = LocalEndpoint::new(Transport::Udp, "127.0.0.1:5062".parse().unwrap());
        let r =
            response("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1;received=127.0.0.1;rport=5062");
        assert_eq!(public_endpoint(&local, &r).unwrap(), None);
        let r = response("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1");
        assert_eq!(reflexive_address(&r).unwrap(), None);
        assert_eq!(public_endpoint(&local, &r).unwrap(), None);
        // A value-less rport left by a server that ignored it teaches nothing.
        let r = response("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1;rport");
        assert_eq!(reflexive_address(&r).unwrap(), None);
    }

    #[test]
    fn received_without_rport_keeps_local_port() {
        let local = LocalEndpoint::new(Transport::Tcp, "10.0.0.2:5060".parse().unwrap());
        let r = response("SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK1;received=198.51.100.7");
        assert_eq!(
            public_endpoint(&local, &r).unwrap(),
            Some(LocalEndpoint::new(
                Transport::Tcp,
                "198.51.100.7:5060".parse().unwrap()
            ))
        );
    }

    #[test]
    fn rport_without_received_uses_sent_by_ip() {
        let r = response("SIP/2.0/UDP 192.0.2.3:5060;rport=7000;branch=z9hG4bK1");
        assert_eq!(
            reflexive_address(&r).unwrap(),
            Some(Reflexive {
                ip: "192.0.2.3".parse().unwrap(),
                port: Some(7000)
            })
        );
    }

    #[test]
    fn bad_received_is_an_error() {
        let r = response("SIP/2.0/UDP 192.0.2.3;received=x.y;branch=z9hG4bK1");
        assert!(matches!(
            reflexive_address(&r),
            Err(ViaError::BadReceived(_))
        ));
    }
}
