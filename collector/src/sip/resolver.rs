//! The host names of the configuration (outbound proxy, external
//! registrar), looked up once at start in runtime's cache, which the
//! sans-I/O user agent asks on its hot path.

use super::config::SipConfig;
use sipsensor_protocol::SipUri;
use sipsensor_runtime::resolver::CachedResolver;

pub fn for_config(config: &SipConfig) -> CachedResolver {
    let mut resolver = CachedResolver::default();
    let uris = [
        config.outbound_proxy.as_ref(),
        config.register.as_ref().map(|r| &r.registrar),
    ];
    for uri in uris.into_iter().flatten() {
        let Ok(u) = SipUri::parse(uri.as_str()) else {
            continue;
        };
        // An IPv6 literal's host is in the stack's internal name form,
        // which is no name to look up.
        if u.ip().is_some() {
            continue;
        }
        if let Err(e) = resolver.look_up(&u.host) {
            tracing::warn!("cannot resolve {} ({}): {e}", u.host, uri.as_str());
        }
    }
    resolver
}
