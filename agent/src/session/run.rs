//! The session's tokio shell: binds the SIP and RTP sockets, runs the
//! protocol crate's user agent, carries out the [`Controller`]'s actions
//! on it and on the media sender, and shows its status changes on the hub.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sipsensor_protocol::{
    Agreed, AgreedRecovery, IdGenerator, LocalEndpoint, RecoverySupport, RegistrationEvent,
    UaConfig, UaEvent, UserAgent,
};
use sipsensor_runtime::sip_transport::{NetConfig, NetStatsHandle, Network};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use tokio::sync::{mpsc, watch};

use super::flow::FlowPing;
use super::{Action, CallError, Controller, fleet, media};
use crate::config::Config;
use crate::status::{
    Direction, RegistrationState, RegistrationStatus, SessionStatus, StatusHub, unix_ms,
};
use crate::update::FleetWant;
use crate::update::run::{Report, SubscriptionEnds};
use sipsensor_protocol::CallRole;
use std::time::SystemTime;

mod settings;

use settings::{flow_target, outbound_proxy, product, resolve, resolver_for, settings};

/// How long shutdown waits for the BYE and the un-REGISTER to be answered.
const GOODBYE: Duration = Duration::from_millis(900);
/// In-dialog OPTIONS keep-alive: a restarted collector is noticed within it.
const KEEPALIVE: Duration = Duration::from_secs(20);
/// How long (in 5 ms steps) a hang-up waits for the sender thread's last
/// packet: 0.5 s at most, far above its wake-up latency.
const STOP_WAIT_STEPS: u32 = 100;

/// The media sender as the session sees it; the real-time streamer
/// implements it, tests fake it.
pub trait Media: Send {
    /// Start sending as agreed.
    fn start(&mut self, agreed: &Agreed, recovery: &AgreedRecovery) -> Result<(), SenderError>;
    /// Same session, new description (rate or channels changed).
    fn update(&mut self, agreed: &Agreed, recovery: &AgreedRecovery) -> Result<(), SenderError>;
    fn stop(&mut self);
    /// The stopped stream's last packet and RTCP BYE are out (the sender
    /// thread carries out `stop` on its own schedule).
    fn stopped(&self) -> bool {
        true
    }
    /// What our SDP offers and accepts of docs/protocol.md 11; asked again
    /// before each new session (the spool's oldest instant moves).
    fn recovery(&self) -> RecoverySupport {
        RecoverySupport::default()
    }
    /// RTCP compounds from the session's peer that reported on our stream
    /// since the stream started (docs/protocol.md 6.1); 0 when stopped.
    fn peer_reports(&self) -> u64;
}

/// Why the media sender cannot start or change a stream.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("the stream's parts are lost after an earlier failure")]
    PartsLost,
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot bind SIP to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: sipsensor_runtime::sip_transport::NetError,
    },
    #[error("cannot bind the RTP/RTCP port pair on {0}: {1}")]
    Rtp(IpAddr, std::io::Error),
    #[error("cannot find the local address towards {0}: {1}")]
    Route(String, std::io::Error),
    #[error("the stream cannot be described: {0}")]
    Media(#[from] media::MediaError),
    #[error("SIP over TLS: {0}")]
    Tls(#[from] sipsensor_runtime::sip_transport::tls::TlsError),
    #[error("user agent: {0}")]
    Ua(#[from] sipsensor_protocol::UaError),
}

/// The media sockets, bound before anything is offered.
#[derive(Debug)]
pub struct Sockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// The address this device is reached at (SIP and SDP).
    pub local_ip: IpAddr,
}

impl Sockets {
    /// An RTP port and the next one for RTCP (RFC 3550 11), on the address
    /// the device is reached at.
    pub fn bind(config: &Config) -> Result<Sockets, SessionError> {
        let local_ip = local_ip(config)?;
        let mut last = None;
        for _ in 0..32 {
            let rtp = UdpSocket::bind(SocketAddr::new(local_ip, 0))
                .map_err(|e| SessionError::Rtp(local_ip, e))?;
            let port = rtp
                .local_addr()
                .map_err(|e| SessionError::Rtp(local_ip, e))?
                .port();
            if port % 2 != 0 || port == u16::MAX {
                continue;
            }
            match UdpSocket::bind(SocketAddr::new(local_ip, port + 1)) {
                Ok(rtcp) => {
                    return Ok(Sockets {
                        rtp,
                        rtcp,
                        local_ip,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(SessionError::Rtp(
            local_ip,
            last.unwrap_or_else(|| std::io::Error::other("no even port pair free")),
        ))
    }

    pub fn rtp_addr(&self) -> Option<SocketAddr> {
        self.rtp.local_addr().ok()
    }
}

/// The address this device is reached at: the configured bind address, or
/// when that is a wildcard, the one the kernel would use towards the
/// registrar / proxy / collector (no packet is sent: `connect` on UDP only
/// picks a route).
fn local_ip(config: &Config) -> Result<IpAddr, SessionError> {
    let bind = config.sip.bind.ip();
    if !bind.is_unspecified() {
        return Ok(bind);
    }
    let peer = [
        &config.sip.outbound_proxy,
        &config.sip.registrar,
        &config.sip.collector,
    ]
    .into_iter()
    .flatten()
    .next();
    let Some(peer) = peer else {
        return Ok(if bind.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            bind
        });
    };
    let target = resolve(peer, config.sip.transport).ok_or_else(|| {
        SessionError::Route(
            peer.as_str().to_owned(),
            std::io::Error::other("cannot resolve"),
        )
    })?;
    let probe = UdpSocket::bind(SocketAddr::new(bind, 0))
        .and_then(|s| s.connect(target).map(|_| s))
        .and_then(|s| s.local_addr())
        .map_err(|e| SessionError::Route(peer.as_str().to_owned(), e))?;
    Ok(probe.ip())
}

/// Where this device's media is, as its SDP says.
#[derive(Debug, Clone, Copy)]
pub struct MediaAddress {
    pub rtp: SocketAddr,
    /// Announced with `a=ssrc` (RFC 5576); the sender uses it.
    pub ssrc: u32,
}

/// The CNAME of this device's RTCP (RFC 3550 6.5.1): its AOR without the
/// scheme, unique per device.
pub fn cname(config: &Config) -> String {
    config
        .identity
        .aor
        .as_str()
        .trim_start_matches("sip:")
        .to_owned()
}

/// Runs the session until `stop` turns true, then hangs up and
/// unregisters within [`GOODBYE`]. `updater`: the updater's channels
/// (docs/protocol.md 12), which the fleet subscriptions meet.
pub async fn run(
    config: &Config,
    media_address: MediaAddress,
    media: &mut dyn Media,
    hub: StatusHub,
    updater: SubscriptionEnds,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SessionError> {
    let bind = SocketAddr::new(media_address.rtp.ip(), config.sip.bind.port());
    let mut net = if config.sip.listen {
        NetConfig::udp_and_tcp(bind)
    } else if config.sip.tls.is_some() {
        // Calls come over our own TLS connection to the registrar: nothing
        // plain at all.
        NetConfig::default()
    } else {
        // Calls come over our own connection to the registrar (RFC 5626,
        // RFC 5923): no UDP socket, no listening TCP port.
        NetConfig {
            tcp: Some(SocketAddr::new(bind.ip(), 0)),
            tcp_accept: false,
            ..NetConfig::default()
        }
    };
    if let Some(tls) = &config.sip.tls {
        net.tls = Some(tls.net_config()?);
    }
    let resolver = resolver_for(config);
    let (network, incoming) = Network::bind(net)
        .await
        .map_err(|source| SessionError::Bind { addr: bind, source })?;
    if config.sip.tls.is_some() {
        // The registrar's / proxy's certificate must carry the name we
        // looked up, not only its address (RFC 5922 7.1).
        for (name, ip) in resolver.entries() {
            network
                .set_tls_server_name(ip, name)
                .map_err(|source| SessionError::Bind { addr: bind, source })?;
        }
    }
    let transport = config.sip.transport;
    // Nothing bound for connect-only TLS: the Via and Contact name the
    // configured port, or TLS's own when that is 0 (a sent-by port must not
    // be 0); replies and calls come on the connection anyway (RFC 3261
    // 18.2.2, RFC 5626 5.3).
    let addr = network
        .local_addr(transport)
        .unwrap_or_else(|| match bind.port() {
            0 => SocketAddr::new(bind.ip(), transport.default_port()),
            _ => bind,
        });
    let local = LocalEndpoint::new(transport, addr);
    let rtp = media_address.rtp;
    let mut settings = settings(config, &local, &media_address)?;
    settings.recovery = media.recovery();
    let flow = FlowProbe {
        peer: flow_target(config, &local),
        stats: network.stats_handle(),
        transport,
    };

    let mut ua_config = UaConfig::new(local.clone(), config.identity.aor.as_str());
    ua_config.display_name = config.identity.display_name.clone();
    ua_config.outbound_proxy = outbound_proxy(config);
    ua_config.product = product();
    // In-dialog BYE and re-INVITE pass the controller's trust first.
    ua_config.screen_in_dialog = true;
    // This sensor serves the fleet subscription (docs/protocol.md 12.1).
    ua_config.event_packages = vec![sipsensor_protocol::fleet::event_package(true)];
    ua_config.max_subscriptions = fleet::MAX_SUBSCRIPTIONS;
    ua_config.credentials = config.sip.password.as_ref().map(|p| {
        (
            config.sip.username.clone(),
            sipsensor_protocol::Password::new(p.expose()),
        )
    });
    let ua = UserAgent::new(ua_config, IdGenerator::from_entropy(), Box::new(resolver))?;
    tracing::info!("SIP on {} ({transport}), RTP on {rtp}", local.host_port());
    let (handle, mut events, task) = ua_driver::spawn(ua, network, incoming);
    let registrar = settings
        .registration
        .as_ref()
        .map(|r| (r.aor.clone(), r.registrar.clone()));
    let mut controller = Controller::new(settings, IdGenerator::from_entropy());
    controller.start(Instant::now());
    let SubscriptionEnds {
        wants,
        reports: mut updater_reports,
    } = updater;
    let around = Around {
        registrar,
        flow,
        wants,
    };

    let mut goodbye: Option<tokio::time::Instant> = None;
    let mut shown: Option<SessionStatus> = None;
    let mut reports_open = true;
    loop {
        carry_out(&mut shown, &mut controller, &handle, media, &hub, &around).await;
        let wake = controller
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let deadline = goodbye.map_or(wake, |g| g.min(wake));
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                if let UaEvent::Registration(e) = &event {
                    report_registration(&hub, around.registrar.as_ref(), e);
                    if goodbye.is_some() && *e == RegistrationEvent::Unregistered {
                        break;
                    }
                }
                controller.handle_event(event, Instant::now());
            }
            _ = tokio::time::sleep_until(deadline) => {
                if goodbye.is_some_and(|g| g <= tokio::time::Instant::now()) {
                    break;
                }
                controller.handle_timeout(Instant::now());
            }
            report = updater_reports.recv(), if reports_open => match report {
                Some(Report::State(state)) => controller.fleet_state(state, Instant::now()),
                Some(Report::GoingDown(ack)) => {
                    controller.fleet_going_down();
                    carry_out(&mut shown, &mut controller, &handle, media, &hub, &around).await;
                    let _ = ack.send(());
                }
                None => reports_open = false,
            },
            changed = stop.changed(), if goodbye.is_none() => {
                if changed.is_err() || *stop.borrow() {
                    controller.shutdown();
                    goodbye = Some(tokio::time::Instant::now() + GOODBYE);
                    if around.registrar.is_none() {
                        // Nothing to unregister: leave once the BYE is out.
                        carry_out(&mut shown, &mut controller, &handle, media, &hub, &around).await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                }
            }
        }
    }
    media.stop();
    drop(handle);
    task.abort();
    Ok(())
}

fn channel_names(agreed: &Agreed) -> Vec<String> {
    agreed
        .description
        .samples
        .as_ref()
        .map(|s| s.channels.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

/// What the shell reaches besides the user agent and the sender.
struct Around {
    /// The address of record and registrar the status shows.
    registrar: Option<(String, String)>,
    flow: FlowProbe,
    /// To the updater: each fleet SUBSCRIBE's want.
    wants: mpsc::UnboundedSender<Option<FleetWant>>,
}

/// Everything the controller asked for since the last call: its status
/// changes onto the hub, its actions onto the user agent and the sender.
async fn carry_out(
    shown: &mut Option<SessionStatus>,
    controller: &mut Controller,
    ua: &UaHandle,
    media: &mut dyn Media,
    hub: &StatusHub,
    around: &Around,
) {
    let registrar = around.registrar.as_ref();
    let flow = &around.flow;
    loop {
        // The controller's status changes first: it decided them before
        // the actions that follow (and `call_placed` below adds more).
        show_status(controller, hub);
        let Some(action) = controller.poll_action() else {
            break;
        };
        match action {
            Action::Register(config) => {
                if let Some((aor, registrar)) = registrar {
                    hub.set_registration(RegistrationStatus {
                        aor: aor.clone(),
                        registrar: registrar.clone(),
                        state: RegistrationState::Registering,
                        expires_in_s: None,
                        last_response: None,
                        failures: 0,
                    });
                }
                let result = ua.with(move |ua, now| ua.register(config, now)).await;
                if let Some(Err(e)) = result {
                    tracing::error!("cannot register: {e}");
                    hub.error("registration", e.to_string());
                }
            }
            Action::Unregister => {
                let _ = ua.with(|ua, now| ua.unregister(now)).await;
            }
            Action::PingFlow => {
                let ping = flow.ping(ua).await;
                controller.flow_checked(ping, Instant::now());
            }
            Action::CountPongs => controller.flow_pongs(flow.pongs(), Instant::now()),
            Action::Call { to, offer } => {
                let placed = ua
                    .with(move |ua, now| ua.call(&to, offer, now).map_err(CallError::from))
                    .await
                    .unwrap_or(Err(CallError::UaStopped));
                controller.call_placed(placed, Instant::now());
            }
            Action::Accept { session, answer } => {
                let _ = ua
                    .with(move |ua, now| ua.accept(session, answer, now))
                    .await;
            }
            Action::Reject {
                session,
                status,
                warning,
            } => {
                let _ = ua
                    .with(move |ua, now| ua.reject(session, status, Some(&warning), now))
                    .await;
            }
            Action::Challenge { session, response } => {
                let _ = ua
                    .with(move |ua, now| ua.respond_to_invite(session, *response, now))
                    .await;
            }
            Action::AdmitInDialog(id) => {
                let _ = ua.with(move |ua, now| ua.admit_in_dialog(id, now)).await;
            }
            Action::RefuseInDialog { id, response } => {
                let _ = ua
                    .with(move |ua, now| ua.refuse_in_dialog(id, *response, now))
                    .await;
            }
            Action::AnswerReoffer { session, answer } => {
                let _ = ua
                    .with(move |ua, now| ua.answer_reoffer(session, answer, now))
                    .await;
            }
            Action::Ping(session) => {
                let _ = ua
                    .with(move |ua, now| ua.ping(Some(session), "", now))
                    .await;
            }
            Action::CheckPeer => {
                controller.peer_checked(media.peer_reports(), Instant::now());
            }
            Action::Hangup(session) => {
                let _ = ua.with(move |ua, now| ua.hangup(session, now)).await;
            }
            Action::StartStream {
                session,
                agreed,
                recovery,
            } => {
                if let Err(e) = media.start(&agreed, &recovery) {
                    tracing::error!("cannot start streaming: {e}");
                    hub.error("stream", e.to_string());
                }
                let (call_id, caller) = ua
                    .with(move |ua, _| (ua.call_id(session), ua.session_role(session)))
                    .await
                    .unwrap_or((None, None));
                let status = SessionStatus {
                    call_id: call_id.unwrap_or_else(|| session.to_string()),
                    peer: agreed
                        .remote_cname
                        .clone()
                        .or_else(|| agreed.remote.map(|r| r.rtp.to_string()))
                        .unwrap_or_default(),
                    direction: match caller {
                        Some(CallRole::Callee) => Direction::Incoming,
                        _ => Direction::Outgoing,
                    },
                    state: "streaming".into(),
                    rate_hz: agreed.description.sample_rate_hz().unwrap_or(0.0).round() as u32,
                    channels: channel_names(&agreed),
                    packets_sent: 0,
                    samples_sent: 0,
                    samples_missing: 0,
                    started_unix_ms: unix_ms(SystemTime::now()),
                };
                hub.set_session(status.clone());
                *shown = Some(status);
            }
            Action::UpdateStream(agreed, recovery) => {
                if let Err(e) = media.update(&agreed, &recovery) {
                    tracing::error!("cannot change the stream: {e}");
                    hub.error("stream", e.to_string());
                }
                if let Some(status) = shown.as_mut() {
                    status.rate_hz =
                        agreed.description.sample_rate_hz().unwrap_or(0.0).round() as u32;
                    status.channels = channel_names(&agreed);
                    hub.set_session(status.clone());
                }
            }
            Action::StopStream => {
                media.stop();
                // The BYE that follows must not overtake the stream's last
                // packet: the collector takes in what its socket holds when
                // the BYE arrives, and drops what comes later.
                for _ in 0..STOP_WAIT_STEPS {
                    if media.stopped() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                controller.set_recovery(media.recovery());
                if let Some(status) = shown.take() {
                    hub.remove_session(&status.call_id);
                }
            }
            Action::AcceptSubscription {
                subscription,
                max_expires,
                body,
            } => {
                let _ = ua
                    .with(move |ua, now| {
                        ua.accept_subscription(subscription, max_expires, body, now)
                    })
                    .await;
            }
            Action::RejectSubscription {
                subscription,
                status,
                warning,
            } => {
                let _ = ua
                    .with(move |ua, now| {
                        ua.reject_subscription(subscription, status, Some(&warning), now)
                    })
                    .await;
            }
            Action::ChallengeSubscription {
                subscription,
                response,
            } => {
                let _ = ua
                    .with(move |ua, now| {
                        ua.reject_subscription_statelessly(subscription, *response, now)
                    })
                    .await;
            }
            Action::Notify {
                subscription,
                body,
                state,
            } => {
                let _ = ua
                    .with(move |ua, now| ua.notify(subscription, body, state, now))
                    .await;
            }
            Action::Want(want) => {
                // Gone only when the updater stopped: the agent is stopping.
                let _ = around.wants.send(want);
            }
        }
    }
}

/// The flow to the registrar as the shell checks it: where it goes and the
/// transport's pong count (RFC 5626 4.4.1).
struct FlowProbe {
    peer: Option<sipsensor_protocol::Target>,
    stats: NetStatsHandle,
    transport: sipsensor_protocol::Transport,
}

impl FlowProbe {
    async fn ping(&self, ua: &UaHandle) -> FlowPing {
        // No proxy address: the flow cannot be checked, only lost.
        let Some(peer) = self.peer else {
            return FlowPing::Unchecked;
        };
        let pongs = self.pongs();
        match ua.ping(peer).await {
            Some(Ok(())) => FlowPing::Sent { pongs },
            _ => FlowPing::Failed,
        }
    }

    fn pongs(&self) -> u64 {
        let stats = self.stats.stats();
        match self.transport {
            sipsensor_protocol::Transport::Tls => stats.tls.pongs,
            _ => stats.tcp.pongs,
        }
    }
}

/// The controller's status changes onto the hub, in the order decided.
pub(super) fn show_status(controller: &mut Controller, hub: &StatusHub) {
    while let Some(change) = controller.poll_status() {
        hub.apply(change);
    }
}

fn report_registration(
    hub: &StatusHub,
    registrar: Option<&(String, String)>,
    event: &RegistrationEvent,
) {
    let Some((aor, registrar)) = registrar else {
        return;
    };
    let (state, expires, last) = match event {
        RegistrationEvent::Registered { expires, .. } => (
            RegistrationState::Registered,
            Some(expires.as_secs()),
            Some("200 OK".to_owned()),
        ),
        RegistrationEvent::Failed { reason } => {
            (RegistrationState::Failed, None, Some(reason.to_string()))
        }
        RegistrationEvent::Unregistered => (RegistrationState::Unregistered, None, None),
        RegistrationEvent::Expired | RegistrationEvent::Retrying { .. } => {
            (RegistrationState::Registering, None, None)
        }
    };
    let failures = match event {
        RegistrationEvent::Failed { .. } => 1,
        _ => 0,
    };
    hub.set_registration(RegistrationStatus {
        aor: aor.clone(),
        registrar: registrar.clone(),
        state,
        expires_in_s: expires,
        last_response: last,
        failures,
    });
}
