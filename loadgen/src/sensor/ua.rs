//! A simulated sensor's user agent on its SIP socket: started once, and
//! again after the fake reboot of a fleet update.

use super::{SensorConfig, SensorError};
use sipsensor_protocol::{
    IdGenerator, LiteralsOnly, LocalEndpoint, Password, Transport, UaConfig, UaEvent, UserAgent,
    fleet,
};
use sipsensor_runtime::sip_transport::{NetConfig, Network, TlsConfig};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// A user agent running in its driver task.
pub(super) struct RunningUa {
    pub handle: UaHandle,
    /// Ends once `handle` is dropped; its socket is closed then.
    pub task: tokio::task::JoinHandle<UserAgent>,
    pub sip_addr: SocketAddr,
}

/// Binds the SIP socket (UDP on `port`, 0 for any; TLS connects only) and
/// starts a user agent on it that serves the fleet package when `fleet`.
pub(super) async fn start(
    config: &SensorConfig,
    tls: Option<TlsConfig>,
    port: u16,
    fleet: bool,
) -> Result<(RunningUa, mpsc::Receiver<UaEvent>), SensorError> {
    let secure = tls.is_some();
    let net = NetConfig {
        udp: (!secure).then_some(SocketAddr::new(config.sip_ip, port)),
        tls,
        // No keep-alives here (RFC 5626 4.4.1): a connection set up
        // first must outlive the set-up of thousands of others.
        tcp_idle_timeout: Duration::from_secs(3600),
        // Thousands of sockets: keep each receive buffer small.
        max_message_size: 8192,
        channel_capacity: 16,
        ..NetConfig::default()
    };
    let (network, incoming) = Network::bind(net).await.map_err(SensorError::Bind)?;
    let (transport, sip_addr) = if secure {
        // Connect-only TLS binds nothing: the Via and Contact name
        // TLS's port, replies and calls come on the connection anyway
        // (RFC 3261 18.2.2, RFC 5626 5.3), as the agent does.
        let port = Transport::Tls.default_port();
        (Transport::Tls, SocketAddr::new(config.sip_ip, port))
    } else {
        let addr = network
            .local_addr(Transport::Udp)
            .ok_or(SensorError::NoUdpAddress)?;
        (Transport::Udp, addr)
    };
    let local = LocalEndpoint::new(transport, sip_addr);
    let mut ua_config = UaConfig::new(local, config.aor.clone());
    ua_config.product = concat!("sipsensor-loadgen/", env!("CARGO_PKG_VERSION")).into();
    ua_config.credentials = Some((
        config.username.clone(),
        Password::new(config.password.clone()),
    ));
    if fleet {
        // docs/protocol.md 12.1: we serve `sipsensor-fleet`; the UA answers
        // other packages 489 and bodies that break 12.2 400 itself.
        ua_config.event_packages = vec![fleet::event_package(true)];
    }
    let ua = UserAgent::new(
        ua_config,
        IdGenerator::from_entropy(),
        Box::new(LiteralsOnly),
    )
    .map_err(SensorError::Ua)?;
    let (handle, events, task) = ua_driver::spawn(ua, network, incoming);
    Ok((
        RunningUa {
            handle,
            task,
            sip_addr,
        },
        events,
    ))
}
