//! One simulated sensor: a user agent of the protocol crate on its own SIP
//! socket, registering, calling the collector or answering it, and
//! streaming through the [`MediaPump`]; with a [`SimFleet`], answering the
//! collector's fleet subscription with a fake install (`sensor/fleet.rs`).

mod answer;
mod fleet;
mod offer;
mod redial;
mod ua;

use crate::fleet::{FleetNotifier, SimFleet};
use crate::pump::{Fault, MediaPump, PumpRecovery, PumpStream, StreamCounters};
use crate::sockets::SharedSocket;
use sipsensor_protocol::UserAgent;
use sipsensor_protocol::fleet::FleetState;
use sipsensor_protocol::{
    Agreed, ChannelSpec, EndReason, FailureReason, IdGenerator, LocalMedia, LocalSdp,
    MediaSecurity, NegotiationError, Password, RegistrationConfig, RegistrationEvent, SampleFormat,
    Sdp, SdpError, SessionId, SrtpPolicy, StreamDescription, StreamRole, UaError, UaEvent, Unit,
    apply_answer, parse_sdp,
};
use sipsensor_runtime::sip_transport::{NetError, TlsConfig};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

/// How long a sensor going down for a fleet update's reboot waits for its
/// un-REGISTER's answer, and for its user agent to stop.
const GOODBYE: Duration = Duration::from_secs(2);

/// `channels` channels (`ch0`, `ch1`, ... in hundredths of a degree) at
/// `rate_hz` on a clock of the same rate, `spp` instants per packet.
pub fn standard_stream(channels: usize, rate_hz: u32, spp: u8) -> StreamDescription {
    #[allow(clippy::expect_used)]
    let unit = Unit::from_symbol("Cel").expect("Cel is a SenML unit (RFC 8428 12.1)");
    StreamDescription {
        clock_rate: rate_hz,
        config: 1,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 1,
            samples_per_packet: spp,
            channels: (0..channels)
                .map(|i| ChannelSpec {
                    name: format!("ch{i}"),
                    unit,
                    scale: -2,
                })
                .collect(),
        }),
        events: None,
    }
}

/// How a simulated sensor behaves.
#[derive(Debug, Clone)]
pub struct SensorConfig {
    /// `sip:sensor-0001@127.0.0.1`
    pub aor: String,
    pub username: String,
    pub password: String,
    /// Address of its SIP socket.
    pub sip_ip: IpAddr,
    /// REGISTER here (a URI without user), if set.
    pub registrar: Option<String>,
    /// INVITE this URI on `call`.
    pub collector: Option<String>,
    pub expires: u32,
    /// What it can send (its full offer).
    pub capabilities: StreamDescription,
    /// Seed of its waveform.
    pub seed: u64,
}

/// A backfill a simulated sensor sends after its call, as an agent does
/// after an interruption.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadBackfill {
    /// How much lies before the stream's first instant.
    pub outage: Duration,
    /// Its own rate cap, bytes per second (the collector's may be lower).
    pub rate: u64,
}

enum Cmd {
    Register(oneshot::Sender<Result<(), SensorError>>),
    Call(oneshot::Sender<Result<Agreed, SensorError>>),
    Hangup(oneshot::Sender<()>),
    Fault(Fault),
    Backfill(LoadBackfill),
    KeepSession(Duration),
}

/// What the sensor last agreed to send (None: not streaming).
pub type Streaming = Option<Agreed>;

/// A running simulated sensor.
#[derive(Debug)]
pub struct SimSensor {
    cmd: mpsc::Sender<Cmd>,
    pub counters: Arc<StreamCounters>,
    pub sip_addr: SocketAddr,
    pub rtp_addr: SocketAddr,
    pub ssrc: u32,
    pub config: SensorConfig,
    streaming: watch::Receiver<Streaming>,
    /// With a fleet side: the state its NOTIFYs carry now.
    fleet_state: watch::Receiver<Option<FleetState>>,
}

struct State {
    config: SensorConfig,
    /// None while the fake reboot of a fleet update lasts.
    ua: Option<ua::RunningUa>,
    /// SIP over TLS (a client only), to start the user agent again with.
    tls: Option<TlsConfig>,
    /// The fleet subscription's notifier and fake install, if simulated.
    fleet: Option<FleetNotifier>,
    /// It placed the call (not the collector): after a reboot it calls
    /// again once registered, as the agent does.
    calls_out: bool,
    /// Up again after the fake reboot or a lost session: call once
    /// registered.
    call_when_registered: bool,
    /// Keep the session, and set it up again when it is lost.
    redial: Option<redial::Redial>,
    /// The SIP socket's port, to come back on after the fake reboot.
    sip_port: u16,
    pump: MediaPump,
    rtp: Arc<SharedSocket>,
    local_media: LocalMedia,
    origin: LocalSdp,
    counters: Arc<StreamCounters>,
    stream_id: Option<u64>,
    session: Option<SessionId>,
    offer: Option<Sdp>,
    /// Offer docs/protocol.md 11 (stamped live packets and backfill) and,
    /// when the collector agrees, backfill this outage after the call.
    backfill: Option<LoadBackfill>,
    /// Section 11 as the last answer agreed it.
    recovery: Option<PumpRecovery>,
    pending_call: Option<oneshot::Sender<Result<Agreed, SensorError>>>,
    pending_register: Option<oneshot::Sender<Result<(), SensorError>>>,
    streaming: watch::Sender<Streaming>,
    fleet_state: watch::Sender<Option<FleetState>>,
}

/// Why a simulated sensor could not start, register, call or reach a state.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error("cannot bind the sensor's SIP socket: {0}")]
    Bind(#[source] NetError),
    #[error("cannot bind the sensor's SIP socket: no UDP address")]
    NoUdpAddress,
    #[error("user agent: {0}")]
    Ua(#[source] UaError),
    #[error("sensor stopped")]
    Stopped,
    #[error("no registrar configured")]
    NoRegistrar,
    #[error("no collector configured")]
    NoCollector,
    /// The REGISTER could not be sent.
    #[error("{0}")]
    Register(#[source] UaError),
    /// The registrar refused it.
    #[error("{0}")]
    Refused(#[source] FailureReason),
    /// Our offer could not be made, or the collector's answer not used.
    #[error("{0}")]
    Negotiation(#[source] NegotiationError),
    #[error("{0}")]
    Answer(#[source] SdpError),
    #[error("no offer")]
    NoOffer,
    #[error("cannot call: {0}")]
    Call(#[source] UaError),
    /// The call ended before it was answered: the UA's reason and the
    /// peer's Warning, the text the tests read.
    #[error("{reason:?}{}", warning.as_ref().map(|w| format!(" ({w})")).unwrap_or_default())]
    Ended {
        reason: EndReason,
        warning: Option<String>,
    },
    #[error("{aor}: not in the expected state after {limit:?}")]
    NotInState { aor: String, limit: Duration },
}

impl SimSensor {
    /// Binds its SIP socket and starts its task (inside tokio): SIP over
    /// UDP, plain RTP.
    pub async fn start(
        config: SensorConfig,
        rtp: Arc<SharedSocket>,
        pump: MediaPump,
    ) -> Result<SimSensor, SensorError> {
        Self::launch(config, None, None, rtp, pump).await
    }

    /// Starts a sensor (over TLS and SRTP with `tls`, as
    /// [`Self::start_over_tls`]) that answers the collector's fleet
    /// subscription (docs/protocol.md 12) with a fake install, and reboots
    /// for an update: a new user agent registers (and calls, if it had
    /// called) again, every subscription forgotten.
    pub async fn start_with_fleet(
        config: SensorConfig,
        tls: Option<TlsConfig>,
        fleet: SimFleet,
        rtp: Arc<SharedSocket>,
        pump: MediaPump,
    ) -> Result<SimSensor, SensorError> {
        Self::launch(config, tls, Some(fleet), rtp, pump).await
    }

    /// Starts a sensor as a site's board runs: SIP over its own TLS
    /// connection to the registrar (`tls` a client only; calls come back
    /// on it, RFC 5923) and SRTP required, keyed by SDES (RFC 4568). The
    /// registrar and collector URIs must say `;transport=tls`.
    pub async fn start_over_tls(
        config: SensorConfig,
        tls: TlsConfig,
        rtp: Arc<SharedSocket>,
        pump: MediaPump,
    ) -> Result<SimSensor, SensorError> {
        Self::launch(config, Some(tls), None, rtp, pump).await
    }

    async fn launch(
        config: SensorConfig,
        tls: Option<TlsConfig>,
        fleet: Option<SimFleet>,
        rtp: Arc<SharedSocket>,
        pump: MediaPump,
    ) -> Result<SimSensor, SensorError> {
        let secure = tls.is_some();
        let (running, events) = ua::start(&config, tls.clone(), 0, fleet.is_some()).await?;
        let sip_addr = running.sip_addr;
        let mut ids = IdGenerator::from_entropy();
        let ssrc = ids.u32();
        let mut local_media = LocalMedia::new(rtp.addr);
        // RTCP on the RTP port (RFC 3605), so a shared socket reads both.
        local_media.rtcp = Some(rtp.addr);
        local_media.ssrc = Some(ssrc);
        local_media.cname = Some(config.aor.trim_start_matches("sip:").to_string());
        if secure {
            // SDES keys travel only over the TLS signalling (RFC 4568 8.3).
            local_media.security = MediaSecurity {
                srtp: SrtpPolicy::Required,
                signalling_secure: true,
            };
        }
        let counters = Arc::new(StreamCounters::default());
        rtp.listen(ssrc, counters.clone());
        let (tx, rx) = mpsc::channel(8);
        let (streaming_tx, streaming) = watch::channel(None);
        let fleet = fleet.map(SimFleet::notifier);
        let (fleet_state_tx, fleet_state) =
            watch::channel(fleet.as_ref().map(|f| f.state(std::time::Instant::now())));
        let user = config
            .aor
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("-");
        let state = State {
            origin: LocalSdp::new(user, rtp.addr.ip(), &mut ids),
            config: config.clone(),
            ua: Some(running),
            tls,
            fleet,
            calls_out: false,
            call_when_registered: false,
            redial: None,
            sip_port: sip_addr.port(),
            pump,
            rtp: rtp.clone(),
            local_media,
            counters: counters.clone(),
            stream_id: None,
            session: None,
            offer: None,
            backfill: None,
            recovery: None,
            pending_call: None,
            pending_register: None,
            streaming: streaming_tx,
            fleet_state: fleet_state_tx,
        };
        tokio::spawn(state.run(rx, events));
        Ok(SimSensor {
            cmd: tx,
            counters,
            sip_addr,
            rtp_addr: rtp.addr,
            ssrc,
            config,
            streaming,
            fleet_state,
        })
    }

    pub async fn register(&self) -> Result<(), SensorError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Register(tx))
            .await
            .map_err(|_| SensorError::Stopped)?;
        rx.await.map_err(|_| SensorError::Stopped)?
    }

    /// Calls the configured collector; Ok once it answered and streaming
    /// started.
    pub async fn call(&self) -> Result<Agreed, SensorError> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Call(tx))
            .await
            .map_err(|_| SensorError::Stopped)?;
        rx.await.map_err(|_| SensorError::Stopped)?
    }

    /// BYE (if in a call); the stream ends with an RTCP BYE.
    pub async fn hangup(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Hangup(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    pub async fn fault(&self, f: Fault) {
        let _ = self.cmd.send(Cmd::Fault(f)).await;
    }

    /// From the next call on, offer docs/protocol.md 11 and backfill
    /// `backfill.outage` once the collector agrees.
    pub async fn backfill(&self, backfill: LoadBackfill) {
        let _ = self.cmd.send(Cmd::Backfill(backfill)).await;
    }

    /// From now on keep the session it calls as the agent does: an OPTIONS
    /// in it every `every`, and a session lost without its own hang-up set
    /// up again (REGISTER, then the call).
    pub async fn keep_session(&self, every: Duration) {
        let _ = self.cmd.send(Cmd::KeepSession(every)).await;
    }

    /// What the sensor currently streams.
    pub fn streaming(&self) -> Streaming {
        self.streaming.borrow().clone()
    }

    /// With a fleet side: the state it reports (docs/protocol.md 12.3).
    pub fn fleet_state(&self) -> Option<FleetState> {
        self.fleet_state.borrow().clone()
    }

    /// Waits until `pred` holds for the streaming state, at most `limit`.
    pub async fn wait_streaming(
        &self,
        limit: Duration,
        pred: impl Fn(&Streaming) -> bool,
    ) -> Result<Streaming, SensorError> {
        let mut rx = self.streaming.clone();
        tokio::time::timeout(limit, rx.wait_for(|s| pred(s)))
            .await
            .map_err(|_| SensorError::NotInState {
                aor: self.config.aor.clone(),
                limit,
            })?
            .map(|s| s.clone())
            .map_err(|_| SensorError::Stopped)
    }
}

impl State {
    async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>, events: mpsc::Receiver<UaEvent>) {
        // None while the fake reboot lasts: no user agent to hear from.
        let mut events = Some(events);
        loop {
            let wake = [
                self.fleet.as_ref().and_then(FleetNotifier::poll_timeout),
                self.redial_wake(),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => self.command(c).await,
                    None => {
                        self.stop_stream();
                        return;
                    }
                },
                e = next_event(&mut events) => match e {
                    Some(e) => self.event(e).await,
                    None => return,
                },
                _ = tokio::time::sleep_until(wake.unwrap_or_else(far_future).into()), if wake.is_some() => {
                    let now = std::time::Instant::now();
                    if let Some(f) = &mut self.fleet {
                        f.handle_timeout(now);
                    }
                    self.redial_timer(now).await;
                }
            }
            self.fleet_actions(&mut events).await;
            if let Some(f) = &self.fleet {
                let now = f.state(std::time::Instant::now());
                self.fleet_state.send_if_modified(|s| {
                    let changed = s.as_ref() != Some(&now);
                    *s = Some(now);
                    changed
                });
            }
        }
    }

    /// Runs `f` on the user agent; `None` while it is down (the fake
    /// reboot) or once it has stopped.
    async fn with_ua<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut UserAgent, std::time::Instant) -> R + Send + 'static,
    ) -> Option<R> {
        self.ua.as_ref()?.handle.with(f).await
    }

    async fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Register(reply) => self.register(Some(reply)).await,
            Cmd::Call(reply) => {
                self.calls_out = true;
                self.call(Some(reply)).await;
            }
            Cmd::Hangup(reply) => {
                // Media stops first: nothing is sent after the BYE.
                if let Some(id) = self.stream_id.take() {
                    self.pump.finish(id).await;
                }
                let _ = self.streaming.send(None);
                if let Some(s) = self.session.take() {
                    let _ = self.with_ua(move |ua, now| ua.hangup(s, now)).await;
                }
                let _ = reply.send(());
            }
            Cmd::Fault(f) => {
                if let Some(id) = self.stream_id {
                    self.pump.fault(id, f);
                }
            }
            Cmd::Backfill(b) => self.backfill = Some(b),
            Cmd::KeepSession(every) => {
                self.redial = Some(redial::Redial {
                    every,
                    next_ping: std::time::Instant::now() + every,
                    call_at: None,
                });
            }
        }
    }

    /// REGISTERs at the configured registrar; `reply` hears the outcome.
    async fn register(&mut self, reply: Option<oneshot::Sender<Result<(), SensorError>>>) {
        let Some(registrar) = self.config.registrar.clone() else {
            if let Some(reply) = reply {
                let _ = reply.send(Err(SensorError::NoRegistrar));
            }
            return;
        };
        let local = self.with_ua(|ua, _| ua.config().local.clone()).await;
        let Some(local) = local else { return };
        let mut r = RegistrationConfig::new(
            registrar,
            self.config.aor.clone(),
            self.config.username.clone(),
            Password::new(self.config.password.clone()),
            local,
        );
        r.expires = self.config.expires;
        self.pending_register = reply;
        let res = self.with_ua(move |ua, now| ua.register(r, now)).await;
        if let Some(Err(e)) = res
            && let Some(reply) = self.pending_register.take()
        {
            let _ = reply.send(Err(SensorError::Register(e)));
        }
    }

    /// INVITEs the configured collector; `reply` hears when it answered.
    async fn call(&mut self, reply: Option<oneshot::Sender<Result<Agreed, SensorError>>>) {
        let fail = |reply: Option<oneshot::Sender<_>>, e| {
            if let Some(reply) = reply {
                let _ = reply.send(Err(e));
            }
        };
        let Some(to) = self.config.collector.clone() else {
            return fail(reply, SensorError::NoCollector);
        };
        let offer = match self.make_offer() {
            Ok(o) => o,
            Err(e) => return fail(reply, SensorError::Negotiation(e)),
        };
        let bytes = offer.to_bytes();
        let placed = self.with_ua(move |ua, now| ua.call(&to, bytes, now)).await;
        match placed {
            Some(Ok(s)) => {
                self.session = Some(s);
                self.offer = Some(offer);
                self.pending_call = reply;
            }
            Some(Err(e)) => fail(reply, SensorError::Call(e)),
            None => fail(reply, SensorError::Stopped),
        }
    }

    /// The collector's SRTCP to this stream opens with the agreed keys.
    fn listen_srtcp(&self, agreed: &Agreed) {
        let Some(keys) = &agreed.srtp else { return };
        if self
            .rtp
            .listen_srtcp(self.local_media.ssrc.unwrap_or_default(), keys)
            .is_err()
        {
            // Its receiver reports stay unread: the run reports them missing.
            self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn start_stream(&mut self, agreed: &Agreed) {
        let Some(remote) = agreed.remote else { return };
        self.stop_stream();
        self.listen_srtcp(agreed);
        let id = NEXT_STREAM.fetch_add(1, Ordering::Relaxed);
        self.pump.begin(
            id,
            PumpStream {
                socket: self.rtp.socket.clone(),
                rtp_dest: remote.rtp,
                rtcp_dest: remote.rtcp,
                desc: agreed.description.clone(),
                ssrc: self.local_media.ssrc.unwrap_or_default(),
                cname: self.local_media.cname.clone().unwrap_or_default(),
                seed: self.config.seed,
                counters: self.counters.clone(),
                srtp: agreed.srtp.clone(),
                recovery: self.recovery.clone(),
            },
        );
        self.stream_id = Some(id);
        let _ = self.streaming.send(Some(agreed.clone()));
    }

    fn stop_stream(&mut self) {
        if let Some(id) = self.stream_id.take() {
            self.pump.end(id);
        }
        let _ = self.streaming.send(None);
    }

    async fn event(&mut self, e: UaEvent) {
        match e {
            UaEvent::Registration(r) => {
                let outcome = match r {
                    RegistrationEvent::Registered { .. } => Some(Ok(())),
                    RegistrationEvent::Failed { reason } => Some(Err(SensorError::Refused(reason))),
                    _ => None,
                };
                let registered = matches!(outcome, Some(Ok(())));
                if matches!(outcome, Some(Err(_))) && self.call_when_registered {
                    self.call_when_registered = false;
                    self.session_lost(std::time::Instant::now());
                }
                if let Some(o) = outcome
                    && let Some(reply) = self.pending_register.take()
                {
                    let _ = reply.send(o);
                }
                if registered
                    && self.call_when_registered
                    && self.calls_out
                    && self.session.is_none()
                {
                    // Back from a fleet update's reboot, or a lost session:
                    // stream again, as the agent does once registered.
                    self.call_when_registered = false;
                    self.call(None).await;
                    if self.session.is_none() {
                        self.session_lost(std::time::Instant::now());
                    }
                }
            }
            UaEvent::Answered { session, answer } => {
                let agreed = match (&self.offer, parse_sdp(&answer)) {
                    (Some(o), Ok(a)) => {
                        self.recovery = self.agree_recovery(o, &a);
                        apply_answer(o, &a, StreamRole::Sender).map_err(SensorError::Negotiation)
                    }
                    (_, Err(e)) => Err(SensorError::Answer(e)),
                    (None, _) => Err(SensorError::NoOffer),
                };
                match agreed {
                    Ok(a) => {
                        self.session = Some(session);
                        self.start_stream(&a);
                        if let Some(r) = self.pending_call.take() {
                            let _ = r.send(Ok(a));
                        }
                    }
                    Err(e) => {
                        let _ = self.with_ua(move |ua, now| ua.hangup(session, now)).await;
                        if let Some(r) = self.pending_call.take() {
                            let _ = r.send(Err(e));
                        }
                    }
                }
            }
            UaEvent::IncomingCall { session, offer, .. } => {
                self.answer_call(session, &offer).await;
            }
            UaEvent::ReofferReceived { session, offer } => {
                self.answer_reoffer(session, &offer).await;
            }
            UaEvent::Ended {
                session,
                reason,
                warning,
                ..
            } => {
                if self.session == Some(session) {
                    self.session = None;
                    self.stop_stream();
                    self.session_lost(std::time::Instant::now());
                }
                if let Some(r) = self.pending_call.take() {
                    let _ = r.send(Err(SensorError::Ended { reason, warning }));
                }
            }
            UaEvent::Subscription(e) => self.fleet_event(e).await,
            _ => {}
        }
    }
}

/// The next event of the user agent; never, while there is none.
async fn next_event(events: &mut Option<mpsc::Receiver<UaEvent>>) -> Option<UaEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// A deadline for a branch that is off (its `if` is false).
fn far_future() -> std::time::Instant {
    std::time::Instant::now() + Duration::from_secs(86_400)
}

impl Drop for State {
    fn drop(&mut self) {
        self.rtp.forget(self.local_media.ssrc.unwrap_or_default());
        if let Some(id) = self.stream_id.take() {
            self.pump.end(id);
        }
    }
}
