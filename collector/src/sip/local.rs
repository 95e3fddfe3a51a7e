//! The addresses this collector writes into SIP and SDP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

/// The address peers reach us at: the configured one, else the bind
/// address, else (a wildcard bind) the first non-loopback address of an
/// interface that is up, else loopback.
pub fn advertise(configured: Option<IpAddr>, bind: IpAddr) -> IpAddr {
    if let Some(ip) = configured {
        return ip;
    }
    if !bind.is_unspecified() {
        return bind;
    }
    first_interface_address(bind.is_ipv6()).unwrap_or(if bind.is_ipv6() {
        IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    })
}

fn first_interface_address(v6: bool) -> Option<IpAddr> {
    use nix::net::if_::InterfaceFlags;
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut found = None;
    for a in addrs {
        let up = a.flags.contains(InterfaceFlags::IFF_UP)
            && !a.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let Some(addr) = a.address else { continue };
        let ip = if let Some(v4) = addr.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        let link_local = matches!(ip, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80);
        if up && ip.is_ipv6() == v6 && !link_local {
            found = Some(ip);
            break;
        }
    }
    found
}

/// The RTP address the SDP names (RFC 4566 5.7): the configured
/// `advertise`, else the bound address, else (a wildcard bind) the address
/// SIP advertises; always the port really bound. So media behind a NAT or
/// relay, or bound to a wildcard, is reached where the SDP says.
pub fn sdp_media(
    configured: Option<IpAddr>,
    sip_advertised: IpAddr,
    bound: SocketAddr,
) -> SocketAddr {
    let ip = match configured {
        Some(ip) => ip,
        None if bound.ip().is_unspecified() => sip_advertised,
        None => bound.ip(),
    };
    SocketAddr::new(ip, bound.port())
}

/// A port free for both UDP and TCP on `ip` (SIP listens on both), for a
/// configured port 0.
pub fn free_sip_port(ip: IpAddr) -> std::io::Result<u16> {
    let mut last = None;
    for _ in 0..32 {
        let udp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(ip, port)) {
            Ok(_) => return Ok(port),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no port free for UDP and TCP")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_then_bind_then_an_interface() {
        let cfg: IpAddr = "203.0.113.5".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(advertise(Some(cfg), any), cfg);
        let lo: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(advertise(None, lo), lo);
        let picked = advertise(None, any);
        assert!(picked.is_ipv4() && !picked.is_unspecified(), "{picked}");
        assert!(free_sip_port(lo.to_canonical()).unwrap() > 0);
    }

    #[test]
    fn sdp_names_the_advertised_address_and_the_bound_port() {
        let sip: IpAddr = "198.51.100.7".parse().unwrap();
        let bound: SocketAddr = "127.0.0.2:16384".parse().unwrap();
        let relay: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            sdp_media(Some(relay), sip, bound),
            "127.0.0.1:16384".parse().unwrap()
        );
        assert_eq!(sdp_media(None, sip, bound), bound);
        let any: SocketAddr = "0.0.0.0:16384".parse().unwrap();
        assert_eq!(
            sdp_media(None, sip, any),
            "198.51.100.7:16384".parse().unwrap()
        );
    }
}
