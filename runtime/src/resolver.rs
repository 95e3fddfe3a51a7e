//! Host names of a configuration (outbound proxy, registrar, collector),
//! looked up once at start-up (RFC 3263 4.2 A/AAAA only; SRV is not
//! consulted: configure a port, or rely on 5060, 5061 for TLS). The sans-I/O user agent
//! asks this cache on its hot path, where a DNS query would block it.

use sipsensor_protocol::{Resolver, Target, Transport};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Names and the first address the system resolver gave for each.
#[derive(Debug, Default, Clone)]
pub struct CachedResolver(HashMap<String, IpAddr>);

impl CachedResolver {
    /// Looks `host` up now and remembers its first address; the error is
    /// the system resolver's. IP literals (with or without brackets) need
    /// no entry: the user agent reads them itself (RFC 3263 4.1), so they
    /// are skipped.
    pub fn look_up(&mut self, host: &str) -> io::Result<()> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if literal.parse::<IpAddr>().is_ok() {
            return Ok(());
        }
        // The port only satisfies getaddrinfo's signature; names have one
        // address whatever the port.
        if let Some(addr) = (host, 5060).to_socket_addrs()?.next() {
            self.0.insert(host.to_ascii_lowercase(), addr.ip());
        }
        Ok(())
    }

    /// Each looked-up name with its address: the names TLS servers there
    /// must prove (RFC 5922 section 7; see
    /// [`Network::set_tls_server_name`](crate::sip_transport::Network::set_tls_server_name)).
    pub fn entries(&self) -> impl Iterator<Item = (&str, IpAddr)> {
        self.0.iter().map(|(name, ip)| (name.as_str(), *ip))
    }
}

impl Resolver for CachedResolver {
    fn resolve(&self, host: &str, port: Option<u16>, transport: Transport) -> Option<Target> {
        // Host names are case-insensitive (RFC 3261 19.1.4).
        let ip = self.0.get(&host.to_ascii_lowercase())?;
        Some(Target::new(
            transport,
            // RFC 3263 4.2: the transport's default port.
            SocketAddr::new(*ip, port.unwrap_or(transport.default_port())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_looked_up_name_resolves_in_any_case_with_the_default_port() {
        let mut cache = CachedResolver::default();
        cache.look_up("LocalHost").unwrap();
        let target = cache.resolve("localhost", None, Transport::Tcp).unwrap();
        assert!(target.addr.ip().is_loopback(), "{target:?}");
        assert_eq!(
            (target.transport, target.addr.port()),
            (Transport::Tcp, 5060)
        );
        let target = cache
            .resolve("LOCALHOST", Some(5080), Transport::Udp)
            .unwrap();
        assert_eq!(
            (target.transport, target.addr.port()),
            (Transport::Udp, 5080)
        );
        let tls = cache.resolve("localhost", None, Transport::Tls).unwrap();
        assert_eq!(tls.addr.port(), 5061);
        assert_eq!(
            cache.entries().collect::<Vec<_>>(),
            [("localhost", target.addr.ip())]
        );
    }

    #[test]
    fn literals_take_no_entry_and_unknown_names_resolve_to_nothing() {
        let mut cache = CachedResolver::default();
        cache.look_up("192.0.2.1").unwrap();
        cache.look_up("[2001:db8::1]").unwrap();
        assert!(cache.0.is_empty());
        assert!(cache.resolve("192.0.2.1", None, Transport::Udp).is_none());
        assert!(
            cache
                .resolve("sip.example.net", None, Transport::Udp)
                .is_none()
        );
        // RFC 6761 6.4: .invalid never resolves.
        assert!(cache.look_up("collector.invalid").is_err());
        assert!(cache.0.is_empty());
    }
}
