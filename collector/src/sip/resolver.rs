//! Host names of the configuration (outbound proxy, external registrar),
//! looked up once at start (RFC 3263 4.2 A/AAAA only; give a port, or
//! rely on 5060). The sans-I/O user agent asks this cache on its hot path.

use super::config::SipConfig;
use sipsensor_protocol::sip::locate::Resolver;
use sipsensor_protocol::sip::registrar::uri::SipUri;
use sipsensor_protocol::sip::{Target, Transport};
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};

#[derive(Debug, Default)]
pub struct CachedResolver(HashMap<String, IpAddr>);

impl CachedResolver {
    pub fn for_config(config: &SipConfig) -> Self {
        let mut map = HashMap::new();
        let uris = [
            config.outbound_proxy.as_ref(),
            config.register.as_ref().map(|r| &r.registrar),
        ];
        for uri in uris.into_iter().flatten() {
            let Ok(u) = SipUri::parse(uri.as_str()) else {
                continue;
            };
            if u.ip().is_some() {
                continue;
            }
            match (u.host.as_str(), u.port.unwrap_or(5060)).to_socket_addrs() {
                Ok(mut addrs) => {
                    if let Some(a) = addrs.next() {
                        map.insert(u.host.to_ascii_lowercase(), a.ip());
                    }
                }
                Err(e) => tracing::warn!("cannot resolve {} ({}): {e}", u.host, uri.as_str()),
            }
        }
        CachedResolver(map)
    }
}

impl Resolver for CachedResolver {
    fn resolve(&self, host: &str, port: Option<u16>, transport: Transport) -> Option<Target> {
        let ip = self.0.get(&host.to_ascii_lowercase())?;
        Some(Target::new(
            transport,
            std::net::SocketAddr::new(*ip, port.unwrap_or(5060)),
        ))
    }
}
