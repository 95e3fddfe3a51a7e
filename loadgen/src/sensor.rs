//! One simulated sensor: a user agent of the protocol crate on its own SIP
//! socket, registering, calling the collector or answering it, and
//! streaming through the [`MediaPump`].

use crate::pump::{BackfillPlan, Fault, MediaPump, PumpRecovery, PumpStream, StreamCounters};
use crate::sockets::SharedSocket;
use sipsensor_protocol::{
    Agreed, AnswerPolicy, ChannelSpec, EndReason, FailureReason, IdGenerator, LiteralsOnly,
    LocalEndpoint, LocalMedia, LocalSdp, MediaSecurity, NegotiationError, Password,
    RegistrationConfig, RegistrationEvent, SampleFormat, Sdp, SdpError, SessionId, SrtpPolicy,
    StreamDescription, StreamRole, Transport, UaConfig, UaError, UaEvent, Unit, UserAgent,
    answer_offer, apply_answer, make_offer, parse_sdp,
};
use sipsensor_protocol::{BackfillSupport, RecoverySupport, agreed_recovery, offer_with_recovery};
use sipsensor_runtime::sip_transport::{NetConfig, NetError, Network, TlsConfig};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

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
}

struct State {
    config: SensorConfig,
    ua: UaHandle,
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
        Self::launch(config, None, rtp, pump).await
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
        Self::launch(config, Some(tls), rtp, pump).await
    }

    async fn launch(
        config: SensorConfig,
        tls: Option<TlsConfig>,
        rtp: Arc<SharedSocket>,
        pump: MediaPump,
    ) -> Result<SimSensor, SensorError> {
        let secure = tls.is_some();
        let net = NetConfig {
            udp: (!secure).then_some(SocketAddr::new(config.sip_ip, 0)),
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
        let mut ids = IdGenerator::from_entropy();
        let ua = UserAgent::new(
            ua_config,
            IdGenerator::from_entropy(),
            Box::new(LiteralsOnly),
        )
        .map_err(SensorError::Ua)?;
        let (handle, events, _task) = ua_driver::spawn(ua, network, incoming);
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
        let user = config
            .aor
            .trim_start_matches("sip:")
            .split('@')
            .next()
            .unwrap_or("-");
        let state = State {
            origin: LocalSdp::new(user, rtp.addr.ip(), &mut ids),
            config: config.clone(),
            ua: handle,
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

    /// What the sensor currently streams.
    pub fn streaming(&self) -> Streaming {
        self.streaming.borrow().clone()
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
    async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>, mut events: mpsc::Receiver<UaEvent>) {
        loop {
            tokio::select! {
                c = cmds.recv() => match c {
                    Some(c) => self.command(c).await,
                    None => {
                        self.stop_stream();
                        return;
                    }
                },
                e = events.recv() => match e {
                    Some(e) => self.event(e).await,
                    None => return,
                },
            }
        }
    }

    async fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Register(reply) => {
                let Some(registrar) = self.config.registrar.clone() else {
                    let _ = reply.send(Err(SensorError::NoRegistrar));
                    return;
                };
                let local = self.ua.with(|ua, _| ua.config().local.clone()).await;
                let Some(local) = local else { return };
                let mut r = RegistrationConfig::new(
                    registrar,
                    self.config.aor.clone(),
                    self.config.username.clone(),
                    Password::new(self.config.password.clone()),
                    local,
                );
                r.expires = self.config.expires;
                self.pending_register = Some(reply);
                let res = self.ua.with(move |ua, now| ua.register(r, now)).await;
                if let Some(Err(e)) = res
                    && let Some(reply) = self.pending_register.take()
                {
                    let _ = reply.send(Err(SensorError::Register(e)));
                }
            }
            Cmd::Call(reply) => {
                let Some(to) = self.config.collector.clone() else {
                    let _ = reply.send(Err(SensorError::NoCollector));
                    return;
                };
                let offer = match self.make_offer() {
                    Ok(o) => o,
                    Err(e) => {
                        let _ = reply.send(Err(SensorError::Negotiation(e)));
                        return;
                    }
                };
                let bytes = offer.to_bytes();
                let placed = self.ua.with(move |ua, now| ua.call(&to, bytes, now)).await;
                match placed {
                    Some(Ok(s)) => {
                        self.session = Some(s);
                        self.offer = Some(offer);
                        self.pending_call = Some(reply);
                    }
                    Some(Err(e)) => {
                        let _ = reply.send(Err(SensorError::Call(e)));
                    }
                    None => {
                        let _ = reply.send(Err(SensorError::Stopped));
                    }
                }
            }
            Cmd::Hangup(reply) => {
                // Media stops first: nothing is sent after the BYE.
                if let Some(id) = self.stream_id.take() {
                    self.pump.finish(id).await;
                }
                let _ = self.streaming.send(None);
                if let Some(s) = self.session.take() {
                    let _ = self.ua.with(move |ua, now| ua.hangup(s, now)).await;
                }
                let _ = reply.send(());
            }
            Cmd::Fault(f) => {
                if let Some(id) = self.stream_id {
                    self.pump.fault(id, f);
                }
            }
            Cmd::Backfill(b) => self.backfill = Some(b),
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

    /// Our offer: with section 11 when the sensor backfills.
    fn make_offer(&mut self) -> Result<Sdp, NegotiationError> {
        let caps = &self.config.capabilities;
        let Some(bf) = self.backfill else {
            return make_offer(
                caps,
                StreamRole::Sender,
                &self.local_media,
                &mut self.origin,
            );
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let support = RecoverySupport {
            instant: true,
            rtx: None,
            backfill: Some(BackfillSupport {
                oldest: u64::try_from(now.saturating_sub(bf.outage).as_nanos()).ok(),
                ssrc: Some(self.backfill_ssrc()),
                ..BackfillSupport::default()
            }),
        };
        offer_with_recovery(
            caps,
            StreamRole::Sender,
            &self.local_media,
            &support,
            &mut self.origin,
        )
    }

    /// Another SSRC than the live one (docs/protocol.md 11.6).
    fn backfill_ssrc(&self) -> u32 {
        self.local_media.ssrc.unwrap_or_default() ^ 0x0bf0_0000
    }

    /// What of section 11 `answer` agreed to our `offer`, for the pump.
    fn agree_recovery(&self, offer: &Sdp, answer: &Sdp) -> Option<PumpRecovery> {
        let own = self.backfill?;
        let agreed = agreed_recovery(offer, answer, StreamRole::Sender);
        let backfill = agreed.backfill.map(|b| BackfillPlan {
            payload_type: b.payload_type,
            ssrc: self.backfill_ssrc(),
            outage: own.outage,
            rate: b.max_rate.map_or(own.rate, |m| m.min(own.rate)),
        });
        Some(PumpRecovery {
            instant_id: agreed.instant_id?,
            backfill,
        })
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
                if let Some(o) = outcome
                    && let Some(reply) = self.pending_register.take()
                {
                    let _ = reply.send(o);
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
                        let _ = self.ua.with(move |ua, now| ua.hangup(session, now)).await;
                        if let Some(r) = self.pending_call.take() {
                            let _ = r.send(Err(e));
                        }
                    }
                }
            }
            UaEvent::IncomingCall { session, offer, .. } => {
                let answered = parse_sdp(&offer)
                    .map_err(NegotiationError::from)
                    .and_then(|o| {
                        answer_offer(
                            &o,
                            &AnswerPolicy::Send {
                                capabilities: self.config.capabilities.clone(),
                            },
                            &self.local_media,
                            &mut self.origin,
                        )
                    });
                match answered {
                    Ok((answer, agreed)) if self.stream_id.is_none() => {
                        let bytes = answer.to_bytes();
                        let _ = self
                            .ua
                            .with(move |ua, now| ua.accept(session, bytes, now))
                            .await;
                        self.session = Some(session);
                        // Answering a plain offer: nothing of section 11.
                        self.recovery = None;
                        self.start_stream(&agreed);
                    }
                    Ok(_) => {
                        let _ = self
                            .ua
                            .with(move |ua, now| {
                                ua.reject(session, 486, Some("already streaming"), now)
                            })
                            .await;
                    }
                    Err(e) => {
                        let (status, why) = (e.status_code(), e.to_string());
                        let _ = self
                            .ua
                            .with(move |ua, now| ua.reject(session, status, Some(&why), now))
                            .await;
                    }
                }
            }
            UaEvent::ReofferReceived { session, offer } => {
                let answered = parse_sdp(&offer)
                    .map_err(NegotiationError::from)
                    .and_then(|o| {
                        answer_offer(
                            &o,
                            &AnswerPolicy::Send {
                                capabilities: self.config.capabilities.clone(),
                            },
                            &self.local_media,
                            &mut self.origin,
                        )
                    });
                match answered {
                    Ok((answer, agreed)) => {
                        let bytes = answer.to_bytes();
                        let _ = self
                            .ua
                            .with(move |ua, now| ua.answer_reoffer(session, Ok(bytes), now))
                            .await;
                        // docs/protocol.md 3.4: the answerer switches as soon
                        // as its answer is sent.
                        if let Some(id) = self.stream_id {
                            self.listen_srtcp(&agreed);
                            self.pump
                                .update(id, agreed.description.clone(), agreed.srtp.clone());
                        }
                        let _ = self.streaming.send(Some(agreed));
                    }
                    Err(e) => {
                        let (status, why) = (e.status_code(), e.to_string());
                        let _ = self
                            .ua
                            .with(move |ua, now| {
                                ua.answer_reoffer(session, Err((status, why)), now)
                            })
                            .await;
                    }
                }
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
                }
                if let Some(r) = self.pending_call.take() {
                    let _ = r.send(Err(SensorError::Ended { reason, warning }));
                }
            }
            _ => {}
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.rtp.forget(self.local_media.ssrc.unwrap_or_default());
        if let Some(id) = self.stream_id.take() {
            self.pump.end(id);
        }
    }
}
