//! Server side: what a transport writes into the top Via of a request it
//! receives, so that the response finds its way back through NAT.

use super::via::{Rport, ViaError, ViaHost, set_top_via, top_via};
use std::net::SocketAddr;

/// What [`stamp_received`] changed in the top Via.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamped {
    /// `received` was added (or replaced).
    pub received: bool,
    /// The value-less `rport` was filled with the source port.
    pub rport: bool,
}

/// Apply RFC 3261 18.2.1 and RFC 3581 section 4 to a request that arrived
/// from `source`.
///
/// - `received` is added when sent-by names a host, or an IP other than the
///   packet's source (18.2.1); it holds the source IP, IPv6 written bare as
///   RFC 3261 25.1 `via-received` has it.
/// - A value-less `rport` gets the source port, and then `received` is added
///   even when sent-by already equals the source IP (RFC 3581 section 4).
///
/// An IPv4 source seen through an IPv6 socket (`::ffff:a.b.c.d`) is compared
/// and recorded as IPv4.
pub fn stamp_received(
    request: &mut rsip::Request,
    source: SocketAddr,
) -> Result<Stamped, ViaError> {
    let mut via = top_via(&request.headers)?;
    let source_ip = source.ip().to_canonical();
    let rport = via.rport()? == Rport::Requested;
    let differs = match &via.host {
        ViaHost::Ip(ip) => ip.to_canonical() != source_ip,
        ViaHost::Name(_) => true,
    };
    let stamped = Stamped {
        received: differs || rport,
        rport,
    };
    if stamped.received {
        via.set_param("received", Some(source_ip.to_string()));
    }
    if stamped.rport {
        via.set_param("rport", Some(source.port().to_string()));
    }
    if stamped.received || stamped.rport {
        set_top_via(&mut request.headers, &via)?;
    }
    Ok(stamped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transport::via::ViaParm;

    fn request(via: &str) -> rsip::Request {
        let raw = format!(
            "OPTIONS sip:c@192.0.2.9 SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:c@example.com>\r\n\
             Call-ID: x@y\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        rsip::Request::try_from(raw.as_bytes()).unwrap()
    }

    fn top(req: &rsip::Request) -> String {
        top_via(&req.headers).unwrap().to_string()
    }

    #[test]
    fn same_ip_without_rport_is_left_alone() {
        let mut req = request("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1");
        let s = stamp_received(&mut req, "192.0.2.1:5060".parse().unwrap()).unwrap();
        assert_eq!(
            s,
            Stamped {
                received: false,
                rport: false
            }
        );
        assert_eq!(top(&req), "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1");
    }

    #[test]
    fn rfc3261_18_2_1_example_adds_received_for_a_name() {
        // The example of 18.2.1: sent-by is a name, the packet came from 192.0.2.1.
        let mut req = request("SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bK1");
        stamp_received(&mut req, "192.0.2.1:5060".parse().unwrap()).unwrap();
        assert_eq!(
            top(&req),
            "SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bK1;received=192.0.2.1"
        );
    }

    #[test]
    fn rfc3581_example_fills_rport_and_received() {
        // RFC 3581 section 4's example: client 10.1.1.1:4540 behind a NAT at 192.0.2.1:9988.
        let mut req = request("SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bKkjshdyff");
        let s = stamp_received(&mut req, "192.0.2.1:9988".parse().unwrap()).unwrap();
        assert!(s.received && s.rport);
        assert_eq!(
            top(&req),
            // RFC 3581 writes received first; parameter order carries no meaning.
            "SIP/2.0/UDP 10.1.1.1:4540;rport=9988;branch=z9hG4bKkjshdyff;received=192.0.2.1"
        );
        let via = top_via(&req.headers).unwrap();
        assert_eq!(via.received().unwrap(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(via.rport().unwrap(), Rport::Filled(9988));
    }

    #[test]
    fn rport_forces_received_even_when_ip_matches() {
        let mut req = request("SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK2;rport");
        stamp_received(&mut req, "127.0.0.1:41000".parse().unwrap()).unwrap();
        let via = top_via(&req.headers).unwrap();
        assert_eq!(via.received().unwrap(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(via.rport().unwrap(), Rport::Filled(41000));
    }

    #[test]
    fn ipv6_source_is_written_bare() {
        let mut req = request("SIP/2.0/UDP [2001:db8::10]:5060;branch=z9hG4bK3;rport");
        stamp_received(&mut req, "[2001:db8::99]:6000".parse().unwrap()).unwrap();
        assert_eq!(
            top(&req),
            "SIP/2.0/UDP [2001:db8::10]:5060;branch=z9hG4bK3;rport=6000;received=2001:db8::99"
        );
        // And it reads back as a Via again.
        let again = ViaParm::parse(&top(&req)).unwrap();
        assert_eq!(
            again.received().unwrap(),
            Some("2001:db8::99".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_same_address_without_rport_untouched() {
        let mut req = request("SIP/2.0/UDP [::1]:5060;branch=z9hG4bK4");
        let s = stamp_received(&mut req, "[::1]:5060".parse().unwrap()).unwrap();
        assert!(!s.received);
    }

    #[test]
    fn v4_mapped_source_counts_as_ipv4() {
        let mut req = request("SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bK5");
        let s = stamp_received(&mut req, "[::ffff:192.0.2.5]:5060".parse().unwrap()).unwrap();
        assert!(!s.received);
        let mut req = request("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK5");
        stamp_received(&mut req, "[::ffff:192.0.2.5]:5060".parse().unwrap()).unwrap();
        assert!(top(&req).ends_with(";received=192.0.2.5"));
    }

    #[test]
    fn existing_received_is_replaced_not_duplicated() {
        let mut req = request("SIP/2.0/UDP 10.0.0.1;received=10.9.9.9;branch=z9hG4bK6");
        stamp_received(&mut req, "192.0.2.8:5060".parse().unwrap()).unwrap();
        assert_eq!(
            top(&req),
            "SIP/2.0/UDP 10.0.0.1;received=192.0.2.8;branch=z9hG4bK6"
        );
    }

    #[test]
    fn errors_are_typed() {
        let mut req = request("SIP/2.0/UDP 10.0.0.1;rport=abc;branch=z9hG4bK7");
        assert!(matches!(
            stamp_received(&mut req, "192.0.2.8:5060".parse().unwrap()),
            Err(ViaError::BadRport(_))
        ));
        let mut req = request("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK7");
        req.headers.retain(|h| !matches!(h, rsip::Header::Via(_)));
        assert_eq!(
            stamp_received(&mut req, "192.0.2.8:5060".parse().unwrap()),
            Err(ViaError::Missing)
        );
    }
}
