//! The SIP side: one user agent (the protocol crate's, on its tokio
//! driver) bound to `sip.bind`, the embedded registrar, and the TU that
//! decides who may stream, negotiates each stream and hands it to the media
//! thread ([`crate::media`]).
//!
//! - REGISTER (embedded registrar, `sip.registrar: true`): digest against
//!   the credentials file, realm `sip.domain` (RFC 3261 10.3).
//! - INVITE: accepted from `sip.trusted_peers` (a proxy that authenticated
//!   the sensor) or after digest authentication against the same users
//!   (401 first); anything else gets 403. The offer is answered by the
//!   configured policy, or refused with 488 and a Warning (RFC 3261 20.43,
//!   docs/protocol.md 3.5).
//! - `call` and `set-rate` (over [`control`]): the collector calls a sensor
//!   located by its own registrar or through the outbound proxy, or sends
//!   a re-INVITE that changes the rate (docs/protocol.md 3.4).
//! - With an external registrar (`sip.register`), the collector registers
//!   itself so sensors reach it by normal location.
//!
//! The TU is a sans-I/O [`core`] (events and the time in, actions out,
//! tested on a virtual clock) and its shell [`run`] (the user agent pump,
//! storage and media tasks, timers, SIGHUP and SIGTERM).

pub mod cli;
pub mod config;
pub mod control;
mod core;
pub mod credentials;
mod local;
mod offer;
mod resolver;
mod run;

use crate::config::Config;
use crate::media::acks::store::Acknowledger;
use crate::media::{MediaEngine, MediaError, MediaNotice};
use crate::metrics::Metrics;
use crate::stats::StreamsRegistry;
use crate::storage::Storage;
use crate::storage::writer::WriterHandle;
use control::ControlError;
use credentials::{Credentials, CredentialsError};
use sipsensor_protocol::{
    AorPolicy, DigestError, DigestServerConfig, IdGenerator, LocalEndpoint, Registrar,
    RegistrarConfig, RegistrationConfig, ServerSecret, Transport, UaConfig, UaError, UserAgent,
    WallClock,
};
use sipsensor_runtime::sip_transport::tls::TlsError;
use sipsensor_runtime::sip_transport::{NetConfig, NetError, Network};
use sipsensor_runtime::ua_driver;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use control::{CallRequest, Reply, Request, WantedChannel, WantedStream};

#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot bind SIP to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: NetError,
    },
    #[error("cannot find a free SIP port on {addr}: {source}")]
    Port {
        addr: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("sip.tls: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("user agent: {0}")]
    Ua(#[from] UaError),
    #[error("registrar: {0}")]
    Digest(#[from] DigestError),
    #[error(
        "sip.register / sip.calling: user {0:?} has no plain password in the credentials \
         file (the collector needs it to register and to answer sensors' challenges)"
    )]
    NoOwnPassword(String),
}

/// What the SIP side needs from the rest of the collector.
#[derive(Debug, Clone)]
pub struct Parts {
    pub storage: Arc<dyn Storage>,
    pub writer: WriterHandle,
    pub streams: Arc<StreamsRegistry>,
    pub metrics: Arc<Metrics>,
    /// Where `update rollout/status/halt` go (docs/protocol.md 12.7).
    pub rollouts: Option<crate::update::rollout::service::RolloutHandle>,
    /// The fleet subscriptions' manager (docs/protocol.md 12.1).
    pub fleet: Option<crate::update::subscriptions::run::FleetHandle>,
}

/// The running SIP side.
#[derive(Debug)]
pub struct SipService {
    sip_addr: SocketAddr,
    rtp_addr: SocketAddr,
    commands: mpsc::UnboundedSender<run::Command>,
    tu: JoinHandle<()>,
    ua: JoinHandle<UserAgent>,
    control: JoinHandle<()>,
    control_path: std::path::PathBuf,
    media: MediaEngine,
}

/// The digest realm: the SIP domain, or `sipsensor`.
pub fn realm(config: &config::SipConfig) -> String {
    config.domain.clone().unwrap_or_else(|| "sipsensor".into())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts SIP, media and the control socket (inside the tokio runtime).
/// `fleet_commands`: the SUBSCRIBEs the fleet subscriptions' manager asks
/// for (docs/protocol.md 12.1), carried out by the TU.
pub async fn start(
    config: &Config,
    parts: Parts,
    fleet_commands: Option<mpsc::Receiver<crate::update::subscriptions::Command>>,
) -> Result<SipService, SipError> {
    let sc = &config.sip;
    let realm = realm(sc);
    let creds = match &sc.credentials_file {
        Some(path) => Credentials::load(path, &realm)?,
        None => Credentials::empty(),
    };
    for w in &creds.warnings {
        tracing::warn!("{w}");
    }
    let advertise = local::advertise(sc.advertise, sc.bind.ip());
    let port = match sc.bind.port() {
        0 => local::free_sip_port(sc.bind.ip()).map_err(|source| SipError::Port {
            addr: sc.bind.ip(),
            source,
        })?,
        p => p,
    };
    let bind = SocketAddr::new(sc.bind.ip(), port);
    let mut net = NetConfig {
        udp_receive_buffer: usize::try_from(sc.receive_buffer_bytes).ok(),
        tls: sc.tls.as_ref().map(|t| t.load()).transpose()?,
        ..NetConfig::udp_and_tcp(bind)
    };
    sc.connections.apply(&mut net);
    let (network, incoming) = Network::bind(net)
        .await
        .map_err(|source| SipError::Bind { addr: bind, source })?;
    let tls_addr = network.local_addr(Transport::Tls);
    let local = LocalEndpoint::new(Transport::Udp, SocketAddr::new(advertise, port));
    let host = sc.domain.clone().unwrap_or_else(|| local.host_port());
    let identity = sc
        .identity
        .as_ref()
        .map(|i| i.as_str().to_string())
        .unwrap_or_else(|| format!("sip:collector@{host}"));

    let outbound_proxy = sc
        .outbound_proxy
        .as_ref()
        .or(sc.register.as_ref().map(|r| &r.registrar))
        .map(|u| u.as_str().to_string());
    let ua_config_proxy_over_tls = outbound_proxy.as_deref().is_some_and(core::over_tls);
    // Behind a TLS proxy our Via and Contact name the TLS listener
    // (RFC 5630 3.1.1): with the UDP ones the proxy sends requests inside
    // a dialog (a sensor's BYE) back in clear, over UDP, to the port our
    // TLS connection came from, where nothing listens.
    let signalling = match tls_addr {
        Some(tls) if ua_config_proxy_over_tls => {
            LocalEndpoint::new(Transport::Tls, SocketAddr::new(advertise, tls.port()))
        }
        _ => local.clone(),
    };
    let mut ua_config = UaConfig::new(signalling.clone(), identity.clone());
    // A sensor's INVITE over TLS gets a Contact on the TLS listener, and so
    // does our INVITE to a sensor's `sips:` contact (RFC 5630 3.1.1).
    ua_config.tls_local = tls_addr
        .filter(|_| signalling.transport != Transport::Tls)
        .map(|tls| LocalEndpoint::new(Transport::Tls, SocketAddr::new(advertise, tls.port())));
    ua_config.product = concat!("sipsensor-collector/", env!("CARGO_PKG_VERSION")).into();
    ua_config.accept_register = sc.registrar;
    // docs/protocol.md 12.1: the collector subscribes to each sensor's
    // fleet state; every NOTIFY is screened by the TU (`core/fleet.rs`).
    ua_config.event_packages = vec![sipsensor_protocol::fleet::event_package(false)];
    ua_config.screen_in_dialog = true;
    ua_config.outbound_proxy = outbound_proxy;
    let own = match sc.digest_username() {
        Some(user) => {
            let pw = creds
                .password(&user)
                .ok_or_else(|| SipError::NoOwnPassword(user.clone()))?;
            Some((user, pw))
        }
        None => None,
    };
    ua_config.credentials = own.clone();
    let resolver = resolver::for_config(sc);
    if tls_addr.is_some() {
        // RFC 5922 7: a proxy named in the configuration proves that name.
        for (name, ip) in resolver.entries() {
            if let Err(e) = network.set_tls_server_name(ip, name) {
                tracing::warn!("sip.tls: {e}");
            }
        }
    }
    let mut ids = IdGenerator::from_entropy();
    let ua = UserAgent::new(ua_config, IdGenerator::from_entropy(), Box::new(resolver))?;
    parts.metrics.watch_sip_network(network.stats_handle());
    let (handle, events, ua_task) = ua_driver::spawn(ua, network, incoming);

    let mut media = MediaEngine::start(
        &config.media,
        advertise,
        parts.writer.clone(),
        parts.metrics.clone(),
    )?;

    // The registrar also verifies INVITEs when sensors are authenticated here
    // but register elsewhere.
    let registrar = if sc.registrar || !creds.is_empty() {
        let mut domains = Vec::new();
        if let Some(d) = &sc.domain {
            domains.push(d.clone());
            domains.push(advertise.to_string());
        }
        let rc = RegistrarConfig {
            domains,
            authenticate: true,
            aor_policy: AorPolicy::UsernameIsAorUser,
            agent: local.host_port(),
            ..RegistrarConfig::default()
        };
        let digest = DigestServerConfig::new(realm.clone(), ServerSecret::generate(&mut ids));
        Some(Registrar::new(
            rc,
            digest,
            Box::new(creds.store.clone()),
            WallClock::new(Instant::now(), unix_now()),
            IdGenerator::from_entropy(),
        )?)
    } else {
        None
    };
    if sc.registrar && creds.is_empty() {
        tracing::warn!(
            "the embedded registrar has no users (sip.credentials_file): no sensor can \
             register or call, except from sip.trusted_peers"
        );
    }

    let (jobs_tx, mut jobs_rx) = mpsc::channel::<control::Job>(64);
    let control = control::serve(&sc.control_socket, jobs_tx)?;
    let (commands, command_rx) = mpsc::unbounded_channel();
    {
        let commands = commands.clone();
        let rollouts = parts.rollouts.clone();
        tokio::spawn(async move {
            while let Some((req, reply)) = jobs_rx.recv().await {
                if let (Request::Update(update), Some(rollouts)) = (&req, &rollouts) {
                    let (update, rollouts) = (update.clone(), rollouts.clone());
                    tokio::spawn(async move {
                        let _ = reply.send(rollouts.control(update).await);
                    });
                    continue;
                }
                if commands.send(run::Command::Control(req, reply)).is_err() {
                    break;
                }
            }
        });
    }

    if let Some(mut fleet_commands) = fleet_commands {
        let commands = commands.clone();
        tokio::spawn(async move {
            while let Some(c) = fleet_commands.recv().await {
                if commands.send(run::Command::Fleet(c)).is_err() {
                    break;
                }
            }
        });
    }

    if let Some(mut notices) = media.take_notices() {
        // The media thread's own reports: silent streams to the core,
        // declared ranges to the acknowledger (docs/protocol.md 11.4).
        let (declared, declared_rx) = mpsc::unbounded_channel();
        let acknowledger = Acknowledger {
            store: parts.storage.clone(),
            writer: parts.writer.clone(),
            media: media.handle(),
            metrics: parts.metrics.clone(),
        };
        tokio::spawn(acknowledger.run(declared_rx));
        let commands = commands.clone();
        tokio::spawn(async move {
            while let Some(n) = notices.recv().await {
                let report = match n {
                    MediaNotice::Silent(s) => core::Report::Silent {
                        media: s.key,
                        last_heard_ns: s.last_heard_ns,
                    },
                    MediaNotice::Declared(d) => {
                        let _ = declared.send(d);
                        continue;
                    }
                };
                if commands.send(run::Command::Report(report)).is_err() {
                    break;
                }
            }
        });
    }

    if let (Some(r), Some((user, pw))) = (&sc.register, own) {
        let mut reg =
            RegistrationConfig::new(r.registrar.as_str(), r.aor.as_str(), user, pw, signalling);
        reg.expires = r.expires.get();
        reg.outbound_proxy = sc.outbound_proxy.as_ref().map(|u| u.as_str().to_string());
        reg.user_agent = Some(concat!("sipsensor-collector/", env!("CARGO_PKG_VERSION")).into());
        let registered = handle.with(move |ua, now| ua.register(reg, now)).await;
        if let Some(Err(e)) = registered {
            return Err(e.into());
        }
    }

    let sip_addr = local.addr;
    let rtp_addr = media.handle().rtp_addr();
    let tls = tls_addr
        .map(|a| format!(", TLS on {a}"))
        .unwrap_or_default();
    tracing::info!(
        "SIP on {bind} (UDP, TCP){tls} as {identity}, advertised {sip_addr}; registrar {}; \
         control socket {}",
        if sc.registrar { "embedded" } else { "external" },
        sc.control_socket.display()
    );
    let settings = core::Settings {
        host: local.host_port(),
        identity,
        rtp: local::sdp_media(sc.advertise, advertise, rtp_addr),
        policy: config.policy,
        trusted: sc.trusted_peers.clone(),
        embedded_registrar: sc.registrar,
        credentials_file: sc.credentials_file.clone(),
        realm,
        own_user: sc.register_username(),
        calling_user: sc.calling.as_ref().map(|c| c.username.clone()),
        // SDES keys (RFC 4568 8.3) only into an SDP that leaves over TLS:
        // outgoing.rs picks per call.
        media_security: config.media.security(false),
        media_security_over_tls: tls_addr.map(|_| config.media.security(true)),
        proxy_over_tls: ua_config_proxy_over_tls,
        recovery: config.media.recovery,
        backfill_max_rate: u64::from(config.media.backfill_max_rate.get()),
    };
    let core = core::Core::new(settings, registrar, IdGenerator::from_entropy());
    let shell = run::Shell::new(core, handle, parts, media.handle(), commands.clone());
    let tu = tokio::spawn(shell.run(events, command_rx));
    Ok(SipService {
        sip_addr,
        rtp_addr,
        commands,
        tu,
        ua: ua_task,
        control,
        control_path: sc.control_socket.clone(),
        media,
    })
}

impl SipService {
    /// Where SIP is reached (the advertised address and the bound port).
    pub fn sip_addr(&self) -> SocketAddr {
        self.sip_addr
    }

    /// Where RTP is received (RTCP on the next port).
    pub fn rtp_addr(&self) -> SocketAddr {
        self.rtp_addr
    }

    /// SIGTERM: BYE to every sensor, every received row to the writer,
    /// unregister, stop.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(run::Command::Shutdown(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
        self.control.abort();
        control::remove_socket(&self.control_path);
        self.media.stop().await;
        self.tu.abort();
        self.ua.abort();
    }
}
