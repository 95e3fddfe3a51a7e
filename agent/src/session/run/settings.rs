//! What the session shell takes from the configuration: the controller's
//! settings, who may call (the flow to the proxy, the callers), the
//! RFC 5626 flow and instance, the outbound proxy and the names to
//! resolve.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use sipsensor_protocol::{
    IdGenerator, LocalEndpoint, LocalMedia, RegistrationConfig, RegistrationOutbound, Target,
    Transport, WallClock,
};
use sipsensor_runtime::resolver::CachedResolver;

use super::super::{Settings, TrustConfig, media};
use super::{KEEPALIVE, MediaAddress, SessionError, cname};
use crate::config::{Config, SipUri, sip_uri::Host};

/// The address of `uri`; without a port, the default of `transport`
/// (RFC 3261 19.1.2: 5061 for TLS).
pub(super) fn resolve(uri: &SipUri, transport: Transport) -> Option<SocketAddr> {
    let port = uri.port().unwrap_or(transport.default_port());
    match uri.host() {
        Host::V4(a) => Some(SocketAddr::new((*a).into(), port)),
        Host::V6(a) => Some(SocketAddr::new((*a).into(), port)),
        Host::Name(n) => (n.as_str(), port).to_socket_addrs().ok()?.next(),
    }
}

/// The host names of the configuration, looked up once at start-up.
pub(super) fn resolver_for(config: &Config) -> CachedResolver {
    let mut resolver = CachedResolver::default();
    let uris = [
        &config.sip.outbound_proxy,
        &config.sip.registrar,
        &config.sip.collector,
    ];
    for uri in uris.into_iter().flatten() {
        if let Host::Name(name) = uri.host() {
            // A name that does not resolve fails where it is used, with
            // the URI in the error.
            let _ = resolver.look_up(name);
        }
    }
    resolver
}

/// Everything the session needs, from the configuration and the sockets.
pub(super) fn settings(
    config: &Config,
    local: &LocalEndpoint,
    address: &MediaAddress,
) -> Result<Settings, SessionError> {
    let rtp = address.rtp;
    let registration = config.sip.registrar.as_ref().map(|registrar| {
        let password = config
            .sip
            .password
            .as_ref()
            .map(|p| sipsensor_protocol::Password::new(p.expose()))
            .unwrap_or_else(|| sipsensor_protocol::Password::new(""));
        let mut r = RegistrationConfig::new(
            registrar.as_str(),
            config.identity.aor.as_str(),
            config.sip.username.clone(),
            password,
            local.clone(),
        );
        r.expires = u32::try_from(config.sip.expires.as_secs()).unwrap_or(u32::MAX);
        r.outbound_proxy = outbound_proxy(config);
        r.user_agent = Some(product());
        // Over TCP the registration is a flow the proxy sends our calls
        // back on (RFC 5626): the agent needs no reachable listening port.
        if local.transport.is_reliable() {
            r.outbound = Some(RegistrationOutbound {
                instance: instance_id(),
                reg_id: 1,
            });
        }
        r
    });
    let mut local_media = LocalMedia::new(rtp);
    local_media.ssrc = Some(address.ssrc);
    local_media.cname = Some(cname(config));
    // SDES keys (RFC 4568 8.3) only in an SDP that travels over TLS.
    local_media.security = media::security(config, local.transport == Transport::Tls);
    Ok(Settings {
        collector: config.sip.collector.as_ref().map(|c| c.as_str().to_owned()),
        registration,
        trust: trust_config(config, local),
        capabilities: media::capabilities(config)?,
        local_media,
        // The media layer states it (`Media::recovery`).
        recovery: Default::default(),
        keepalive: KEEPALIVE,
        peer_timeout: config.media.peer_timeout,
        flow_keepalive: local
            .transport
            .is_reliable()
            .then_some(super::super::flow::KEEPALIVE_INTERVAL),
        retry_initial: Duration::from_secs(2),
        retry_max: Duration::from_secs(300),
        sdp_user: config.identity.aor.user().unwrap_or("-").to_owned(),
        sdp_address: rtp.ip(),
    })
}

/// The connection the agent keeps to its outbound proxy or registrar
/// (RFC 5626); none over UDP.
pub(super) fn flow_target(config: &Config, local: &LocalEndpoint) -> Option<Target> {
    match local.transport {
        Transport::Udp => None,
        transport => outbound_proxy_uri(config)
            .and_then(|uri| resolve(uri, transport))
            .map(|addr| Target::new(transport, addr)),
    }
}

/// Where a device without a machine id keeps the id its SIP instance is
/// derived from: the data partition (the image links it there), so it
/// survives restarts and updates.
const KEPT_ID: &str = "/var/lib/sipsensor/instance-id";

/// This device's `+sip.instance` (RFC 5626 4.1): derived from the machine
/// id so it survives restarts, or from an id kept on the data partition
/// where there is no machine id; a random one (a new binding after every
/// restart) only when neither can be had.
pub(super) fn instance_id() -> String {
    let ids = ["/etc/machine-id", "/var/lib/dbus/machine-id"].map(Path::new);
    instance_from(&ids, Path::new(KEPT_ID), &mut IdGenerator::from_entropy())
}

fn instance_from(machine_ids: &[&Path], kept: &Path, ids: &mut IdGenerator) -> String {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let known = machine_ids
        .iter()
        .chain([&kept])
        .filter_map(|p| read(p))
        .find_map(|id| RegistrationOutbound::instance_from_machine_id(&id));
    if let Some(instance) = known {
        return instance;
    }
    let fresh = ids.hex(16);
    if std::fs::write(kept, format!("{fresh}\n")).is_err() {
        tracing::warn!(
            "no machine id (/etc/machine-id): the registrar sees a new SIP instance after \
             every restart"
        );
    }
    RegistrationOutbound::instance_from_machine_id(&fresh).unwrap_or_default()
}

/// Who may call: the flow to the proxy (over TCP or TLS), the configured
/// callers with their secrets-file passwords.
pub(super) fn trust_config(config: &Config, local: &LocalEndpoint) -> TrustConfig {
    let flow = flow_target(config, local).filter(|_| config.sip.trust_proxy_flow);
    let unix_secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    TrustConfig {
        flow,
        callers: config
            .sip
            .callers
            .iter()
            .map(|(user, password)| {
                (
                    user.clone(),
                    sipsensor_protocol::Password::new(password.expose()),
                )
            })
            .collect(),
        realm: config.sip.caller_realm.clone(),
        aor: config.identity.aor.as_str().to_owned(),
        allow_md5: config.sip.callers_allow_md5,
        clock: WallClock::new(Instant::now(), unix_secs),
    }
}

/// The outbound proxy: the configured one, else the registrar (it is the
/// proxy of the domain), else none: INVITEs go straight to the collector.
pub(super) fn outbound_proxy(config: &Config) -> Option<String> {
    outbound_proxy_uri(config).map(|u| with_transport(u.as_str(), config.sip.transport))
}

/// The URI with `;transport=` of `sip.transport` unless it names one: a
/// bare URI means UDP (RFC 3263 4.1), and over TCP the requests must take
/// the connection calls come back on.
pub(super) fn with_transport(uri: &str, transport: Transport) -> String {
    let names_one = uri.to_ascii_lowercase().contains(";transport=");
    match transport {
        Transport::Udp => uri.to_owned(),
        _ if names_one => uri.to_owned(),
        other => match uri.split_once('?') {
            Some((base, headers)) => format!(
                "{base};transport={}?{headers}",
                other.token().to_ascii_lowercase()
            ),
            None => format!("{uri};transport={}", other.token().to_ascii_lowercase()),
        },
    }
}

pub(super) fn outbound_proxy_uri(config: &Config) -> Option<&SipUri> {
    config
        .sip
        .outbound_proxy
        .as_ref()
        .or(config.sip.registrar.as_ref())
}

pub(super) fn product() -> String {
    concat!("sipsensor-agent/", env!("CARGO_PKG_VERSION")).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_tls_the_proxy_is_named_with_its_transport_on_port_5061() {
        let proxy = SipUri::parse("sip:192.0.2.7").unwrap();
        assert_eq!(
            resolve(&proxy, Transport::Tls),
            Some("192.0.2.7:5061".parse().unwrap())
        );
        assert_eq!(
            resolve(&proxy, Transport::Tcp),
            Some("192.0.2.7:5060".parse().unwrap())
        );
        let with_port = SipUri::parse("sip:192.0.2.7:7000").unwrap();
        assert_eq!(
            resolve(&with_port, Transport::Tls),
            Some("192.0.2.7:7000".parse().unwrap())
        );
        assert_eq!(
            with_transport("sip:192.0.2.7;lr", Transport::Tls),
            "sip:192.0.2.7;lr;transport=tls"
        );
    }

    #[test]
    fn without_a_machine_id_the_instance_is_kept_on_the_data_partition() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("machine-id");
        let kept = dir.path().join("instance-id");
        let mut ids = IdGenerator::seeded(5);
        let first = instance_from(&[&missing], &kept, &mut ids);
        assert!(first.starts_with("urn:uuid:"), "{first}");
        // The next start (another random source) finds the same instance.
        let again = instance_from(&[&missing], &kept, &mut IdGenerator::seeded(6));
        assert_eq!(first, again);
        // A machine id wins over the kept one.
        std::fs::write(&missing, "0123456789abcdef0123456789abcdef\n").unwrap();
        let machine = instance_from(&[&missing], &kept, &mut ids);
        assert_ne!(machine, first);
        assert_eq!(
            Some(machine),
            RegistrationOutbound::instance_from_machine_id("0123456789abcdef0123456789abcdef")
        );
    }
}
