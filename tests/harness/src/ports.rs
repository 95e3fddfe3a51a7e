//! Free ports on loopback.
//!
//! Candidates are drawn at random from below the kernel's ephemeral range
//! (`ip_local_port_range`): ports the kernel hands to `bind(0)` and
//! `connect` are re-used within moments by other processes on a shared
//! machine, while a port below that range is only taken by someone who
//! picked it on purpose. A port is free when this returns; another process
//! may still take it before the caller binds, so starters retry.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

/// 127.0.0.1.
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Candidates tried before giving up.
const ATTEMPTS: usize = 200;
/// Lowest port handed out (above the well-known and most registered ones).
const LOWEST: u16 = 20_000;

/// The range candidates come from: [LOWEST, start of the ephemeral range).
fn candidate_range() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_start > LOWEST + 1_000 {
        (LOWEST, ephemeral_start)
    } else {
        // An unusual range: fall back to the top of the port space.
        (61_000, 65_000)
    }
}

/// A random candidate port from [`candidate_range`].
fn candidate() -> u16 {
    let (low, high) = candidate_range();
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let span = u64::from(high - low);
    low + u16::try_from(hasher.finish() % span).unwrap_or(0)
}

fn search(mut free: impl FnMut(u16) -> bool, what: &str, ip: IpAddr) -> io::Result<u16> {
    for _ in 0..ATTEMPTS {
        let port = candidate();
        if free(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free {what} on {ip} in {ATTEMPTS} tries"),
    ))
}

fn udp_free(ip: IpAddr, port: u16) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, port)).is_ok()
}

fn tcp_free(ip: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(ip, port)).is_ok()
}

pub fn free_udp_port(ip: IpAddr) -> io::Result<u16> {
    search(|p| udp_free(ip, p), "UDP port", ip)
}

pub fn free_tcp_port(ip: IpAddr) -> io::Result<u16> {
    search(|p| tcp_free(ip, p), "TCP port", ip)
}

/// A port free for UDP and TCP at once (SIP servers listen on both).
pub fn free_udp_tcp_port(ip: IpAddr) -> io::Result<u16> {
    search(|p| udp_free(ip, p) && tcp_free(ip, p), "UDP+TCP port", ip)
}

/// An even UDP port `p` with `p + 1` free too: RTP and RTCP (RFC 3550 11).
pub fn free_rtp_ports(ip: IpAddr) -> io::Result<(u16, u16)> {
    let port = search(
        |p| p % 2 == 0 && udp_free(ip, p) && udp_free(ip, p + 1),
        "RTP/RTCP port pair",
        ip,
    )?;
    Ok((port, port + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_avoid_the_ephemeral_range() {
        let (low, high) = candidate_range();
        for _ in 0..100 {
            let port = candidate();
            assert!((low..high).contains(&port), "{port}");
        }
    }

    #[test]
    fn udp_tcp_port_is_bindable_both_ways_v4_and_v6() {
        for ip in [LOCALHOST, IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)] {
            let port = free_udp_tcp_port(ip).unwrap();
            let _t = TcpListener::bind(SocketAddr::new(ip, port)).unwrap();
            let _u = UdpSocket::bind(SocketAddr::new(ip, port)).unwrap();
        }
    }

    #[test]
    fn rtp_pair_is_even_and_adjacent() {
        let (rtp, rtcp) = free_rtp_ports(LOCALHOST).unwrap();
        assert_eq!(rtp % 2, 0);
        assert_eq!(rtcp, rtp + 1);
        let _a = UdpSocket::bind(SocketAddr::new(LOCALHOST, rtp)).unwrap();
        let _b = UdpSocket::bind(SocketAddr::new(LOCALHOST, rtcp)).unwrap();
    }

    #[test]
    fn a_taken_port_is_not_returned() {
        let taken = UdpSocket::bind(SocketAddr::new(
            LOCALHOST,
            free_udp_port(LOCALHOST).unwrap(),
        ))
        .unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        for _ in 0..50 {
            assert_ne!(free_udp_port(LOCALHOST).unwrap(), taken_port);
        }
    }
}
