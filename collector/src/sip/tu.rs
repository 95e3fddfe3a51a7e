//! The TU: events of the user agent, requests of the control socket, and
//! the results of the storage work it spawns, all handled in one task.
//!
//! The task never waits for the user agent (the driver would wait for it
//! when its event queue is full): commands go through [`UaPump`] in order,
//! and anything slow (storage, media set-up) runs in spawned tasks that
//! report back as [`Command`]s.

use super::control::{Reply, Request};
use super::credentials::Credentials;
use super::offer;
use crate::config::Policy;
use crate::media::{MediaHandle, StreamKey, StreamSetup, stream_spec};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use crate::stats::{StreamInfo, StreamsRegistry};
use crate::storage::{NewSession, Order, SampleQuery, SensorId, SensorState, SessionId, Storage};
use ipnet::IpNet;
use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use sipsensor_protocol::sdp::{self, Agreed, AnswerPolicy, LocalMedia, LocalSdp, Sdp};
use sipsensor_protocol::sip::Target;
use sipsensor_protocol::sip::ids::IdGenerator;
use sipsensor_protocol::sip::registrar::Registrar;
use sipsensor_protocol::sip::registrar::uri::SipUri;
use sipsensor_protocol::sip::registration::RegistrationEvent;
use sipsensor_protocol::sip::response::response_to;
use sipsensor_protocol::sip::transaction::ServerId;
use sipsensor_protocol::sip::ua::{EndReason, SessionId as UaSession, UaEvent, UserAgent};
use sipsensor_runtime::ua_driver::{self as driver, UaHandle};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// What the TU is told besides user agent events.
pub enum Command {
    Control(Request, oneshot::Sender<Reply>),
    /// Our INVITE went out (or could not).
    Placed(Result<UaSession, String>, Box<super::outgoing::PendingCall>),
    /// Storage record and media stream of a call are ready (or failed).
    Opened {
        session: UaSession,
        result: Result<Opened, String>,
    },
    /// A renegotiated stream is recorded and installed.
    Renegotiated {
        session: UaSession,
        result: Result<(SessionId, Agreed), String>,
    },
    /// A re-INVITE of ours could not be sent.
    ReinviteFailed {
        session: UaSession,
        error: String,
    },
    /// A call's stream is closed and stored.
    Closed {
        aor: String,
        sensor: SensorId,
    },
    Shutdown(oneshot::Sender<()>),
}

/// A call's resources.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    pub sensor: SensorId,
    pub session: SessionId,
    pub media: StreamKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Answered or accepted; storage and media being set up.
    Setup,
    Active,
    /// Over, but its set-up task has not reported yet.
    Ended,
}

/// One call (either direction).
#[derive(Debug)]
pub struct Call {
    pub aor: String,
    pub call_id: String,
    pub phase: Phase,
    pub opened: Option<Opened>,
    pub agreed: Option<Agreed>,
    pub origin: LocalSdp,
    pub local: LocalMedia,
    /// Our offer awaiting its answer (INVITE or re-INVITE).
    pub offer: Option<Sdp>,
    /// A control client waiting for the outcome.
    pub reply: Option<oneshot::Sender<Reply>>,
    pub source_ip: Option<IpAddr>,
    pub started_ns: i64,
}

/// Fixed settings of the TU.
#[derive(Debug, Clone)]
pub struct Settings {
    /// host:port for Warning headers.
    pub host: String,
    pub identity: String,
    /// Where every session's RTP goes (RTCP on the next port).
    pub rtp: SocketAddr,
    pub policy: Policy,
    pub trusted: Vec<IpNet>,
    pub embedded_registrar: bool,
    pub credentials_file: Option<PathBuf>,
    pub realm: String,
    pub own_user: Option<String>,
}

/// Runs user agent commands in order, without making the TU wait.
#[derive(Clone)]
pub struct UaPump(mpsc::UnboundedSender<driver::Command>);

impl UaPump {
    fn start(handle: UaHandle) -> UaPump {
        let (tx, mut rx) = mpsc::unbounded_channel::<driver::Command>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Everything queued runs in one turn of the driver: each
                // turn costs a pass over all transactions and sessions.
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                let ran = handle
                    .with(move |ua, now| {
                        for c in batch {
                            c(ua, now);
                        }
                    })
                    .await;
                if ran.is_none() {
                    break;
                }
            }
        });
        UaPump(tx)
    }

    pub fn fire(&self, f: impl FnOnce(&mut UserAgent, Instant) + Send + 'static) {
        let _ = self.0.send(Box::new(f));
    }

    /// Runs `f` after everything queued before it; its result.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut UserAgent, Instant) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.fire(move |ua, now| {
            let _ = tx.send(f(ua, now));
        });
        rx.await.ok()
    }
}

/// What spawned tasks share.
#[derive(Clone)]
pub struct Ctx {
    pub ua: UaPump,
    pub storage: Arc<dyn Storage>,
    pub streams: Arc<StreamsRegistry>,
    pub media: MediaHandle,
    pub tx: mpsc::UnboundedSender<Command>,
    pub cname: String,
    /// Sensor states, written in the order they happen.
    pub states: mpsc::UnboundedSender<(String, SensorState)>,
}

/// Writes sensor states one after the other (creating sensors on first
/// sight), so a later state never lands before an earlier one.
fn state_writer(storage: Arc<dyn Storage>) -> mpsc::UnboundedSender<(String, SensorState)> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, SensorState)>();
    tokio::spawn(async move {
        let mut ids: HashMap<String, SensorId> = HashMap::new();
        while let Some((aor, state)) = rx.recv().await {
            let id = match ids.get(&aor) {
                Some(id) => *id,
                None => match storage.upsert_sensor(&aor, None).await {
                    Ok(s) => {
                        ids.insert(aor.clone(), s.id);
                        s.id
                    }
                    Err(e) => {
                        tracing::error!("cannot record sensor {aor}: {e}");
                        continue;
                    }
                },
            };
            if let Err(e) = storage.set_sensor_state(id, state).await {
                tracing::error!("cannot record the state of {aor}: {e}");
            }
        }
    });
    tx
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The canonical AOR (`sip:user@host`) of a URI.
pub fn canonical_aor(uri: &str) -> Option<String> {
    let bare = uri.trim().trim_start_matches('<').trim_end_matches('>');
    SipUri::parse(bare).ok().map(|u| u.aor())
}

fn from_aor(request: &rsip::Request) -> Option<String> {
    let uri = request.from_header().ok()?.uri().ok()?;
    canonical_aor(&uri.to_string())
}

fn to_aor(request: &rsip::Request) -> Option<String> {
    let uri = request.to_header().ok()?.uri().ok()?;
    canonical_aor(&uri.to_string())
}

/// Why an INVITE is not let in.
enum Refusal {
    /// The digest challenge (or 400) to send.
    Challenge(rsip::Response),
    Forbidden(String),
}

pub struct Tu {
    pub(super) ctx: Ctx,
    pub(super) settings: Settings,
    pub(super) registrar: Option<Registrar>,
    pub(super) calls: HashMap<UaSession, Call>,
    pub(super) sensors: HashMap<String, SensorId>,
    /// The last full offer of each sensor (docs/protocol.md 3.3: the
    /// collector remembers it to ask for channels again).
    pub(super) offers: HashMap<String, sdp::StreamDescription>,
    pub(super) ids: IdGenerator,
    metrics: Arc<Metrics>,
    logs: HashMap<&'static str, RateLimit>,
}

/// Resolves on SIGHUP (never, if the handler cannot be installed).
async fn hangup(sig: &mut Option<tokio::signal::unix::Signal>) {
    match sig {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

impl Tu {
    pub fn new(
        settings: Settings,
        handle: UaHandle,
        registrar: Option<Registrar>,
        parts: super::Parts,
        media: MediaHandle,
        tx: mpsc::UnboundedSender<Command>,
    ) -> Tu {
        let cname = format!("collector@{}", settings.host);
        Tu {
            ctx: Ctx {
                ua: UaPump::start(handle),
                states: state_writer(parts.storage.clone()),
                storage: parts.storage,
                streams: parts.streams,
                media,
                tx,
                cname,
            },
            settings,
            registrar,
            calls: HashMap::new(),
            sensors: HashMap::new(),
            offers: HashMap::new(),
            ids: IdGenerator::from_entropy(),
            metrics: parts.metrics,
            logs: HashMap::new(),
        }
    }

    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<UaEvent>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).ok();
        loop {
            let expiry = self
                .registrar
                .as_ref()
                .and_then(|r| r.poll_timeout())
                .map(tokio::time::Instant::from_std);
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                // Commands first: a call's `Placed` must be seen before the
                // events of its session (the driver sends it earlier).
                biased;
                cmd = commands.recv() => match cmd {
                    Some(Command::Shutdown(reply)) => {
                        self.shutdown(&mut events).await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(c) => self.command(c),
                    None => return,
                },
                ev = events.recv() => match ev {
                    Some(ev) => self.event(ev),
                    None => return,
                },
                () = tokio::time::sleep_until(expiry.unwrap_or(far)), if expiry.is_some() => {
                    self.expire();
                }
                () = hangup(&mut hup) => self.reload(),
            }
        }
    }

    pub(super) fn count(&self, reason: &'static str) {
        self.metrics
            .packets_rejected
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// A warning, at most once per 10 s per kind.
    pub(super) fn warn(&mut self, kind: &'static str, message: String) {
        let l = self
            .logs
            .entry(kind)
            .or_insert_with(|| RateLimit::new(Duration::from_secs(10)));
        if let Some(held) = l.allow(tokio::time::Instant::now()) {
            tracing::warn!("{message} ({held} similar messages suppressed)");
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Control(req, reply) => match req {
                Request::Call(r) => self.call(r, reply),
                Request::SetRate { sensor, hz } => self.set_rate(&sensor, hz, reply),
                Request::Sessions => {
                    let list: Vec<serde_json::Value> = self
                        .calls
                        .values()
                        .filter(|c| c.phase == Phase::Active)
                        .map(|c| {
                            serde_json::json!({
                                "aor": c.aor,
                                "call_id": c.call_id,
                                "stream": c.agreed.as_ref().map(|a| offer::summary(&a.description)),
                            })
                        })
                        .collect();
                    let mut r = Reply::ok(format!("{} active sessions", list.len()));
                    r.detail = Some(serde_json::Value::Array(list));
                    let _ = reply.send(r);
                }
            },
            Command::Placed(result, pending) => self.placed(result, *pending),
            Command::Opened { session, result } => self.opened(session, result),
            Command::Renegotiated { session, result } => self.renegotiated(session, result),
            Command::ReinviteFailed { session, error } => {
                if let Some(c) = self.calls.get_mut(&session) {
                    c.offer = None;
                    if let Some(r) = c.reply.take() {
                        let _ = r.send(Reply::error(error));
                    }
                }
            }
            Command::Closed { aor, sensor } => self.closed(aor, sensor),
            Command::Shutdown(_) => {}
        }
    }

    fn event(&mut self, ev: UaEvent) {
        match ev {
            UaEvent::IncomingCall {
                session,
                request,
                source,
                offer,
            } => self.incoming(session, request, source, offer),
            UaEvent::Answered { session, answer } => self.answered(session, &answer),
            UaEvent::ReofferReceived { session, offer } => self.reoffer(session, &offer),
            UaEvent::ReofferAnswered { session, answer } => self.reoffer_answered(session, &answer),
            UaEvent::ReofferRejected {
                session,
                status,
                warning,
            } => {
                if let Some(c) = self.calls.get_mut(&session) {
                    c.offer = None;
                    let why = warning.map(|w| format!(": {w}")).unwrap_or_default();
                    if let Some(r) = c.reply.take() {
                        let _ = r.send(Reply::error(format!(
                            "{} refused the change with {status}{why}",
                            c.aor
                        )));
                    }
                }
            }
            UaEvent::Ended {
                session,
                reason,
                warning,
                ..
            } => self.ended(session, reason, warning),
            UaEvent::Request {
                id,
                request,
                source,
            } => self.register(id, request, source),
            UaEvent::Registration(e) => match e {
                RegistrationEvent::Registered { expires, contact } => tracing::info!(
                    "registered as {} ({contact}, {} s)",
                    self.settings.identity,
                    expires.as_secs()
                ),
                RegistrationEvent::Failed { reason } => {
                    self.warn("registration", format!("cannot register: {reason}"))
                }
                RegistrationEvent::Expired => {
                    self.warn("registration", "our registration expired".into())
                }
                RegistrationEvent::Retrying { after } => {
                    tracing::info!("registering again in {:.0} s", after.as_secs_f64())
                }
                RegistrationEvent::Unregistered => tracing::info!("unregistered"),
            },
            UaEvent::Malformed { source, reason } => {
                self.count("sip_malformed");
                self.warn(
                    "malformed",
                    format!("unusable SIP message from {}: {reason}", source.addr),
                );
            }
            UaEvent::Progress { .. }
            | UaEvent::Confirmed { .. }
            | UaEvent::OptionsResult { .. }
            | UaEvent::Response { .. } => {}
        }
    }

    // ---- REGISTER (embedded registrar) ----

    fn register(&mut self, id: ServerId, request: rsip::Request, source: Target) {
        let now = Instant::now();
        let Some(reg) = self.registrar.as_mut() else {
            let tag = self.ids.tag();
            let r = response_to(&request, rsip::StatusCode::MethodNotAllowed, Some(&tag));
            self.ctx.ua.fire(move |ua, now| {
                let _ = ua.respond(id, r, now);
            });
            return;
        };
        let response = reg.handle_register(&request, source.addr, source.transport, now);
        let code = response.status_code.code();
        let aor = to_aor(&request);
        let bound = aor.as_ref().is_some_and(|a| !reg.lookup(a, now).is_empty());
        self.ctx.ua.fire(move |ua, now| {
            let _ = ua.respond(id, response, now);
        });
        match code {
            200 => {
                if let Some(aor) = aor {
                    let streaming = self.streaming(&aor);
                    let state = match (streaming, bound) {
                        (true, _) => SensorState::Streaming,
                        (false, true) => SensorState::Registered,
                        (false, false) => SensorState::Offline,
                    };
                    self.set_state(aor, state);
                }
            }
            401 | 407 => {}
            _ => {
                self.count("register_refused");
                self.warn(
                    "register",
                    format!(
                        "REGISTER for {} from {} refused with {code}",
                        aor.unwrap_or_default(),
                        source.addr
                    ),
                );
            }
        }
    }

    fn streaming(&self, aor: &str) -> bool {
        self.calls
            .values()
            .any(|c| c.aor == aor && matches!(c.phase, Phase::Setup | Phase::Active))
    }

    /// Stores a sensor's state (creating the sensor when needed).
    pub(super) fn set_state(&mut self, aor: String, state: SensorState) {
        let _ = self.ctx.states.send((aor, state));
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let gone = reg.expire(now);
        let mut aors: Vec<String> = gone.into_iter().map(|b| b.aor).collect();
        aors.dedup();
        for aor in aors {
            let still = self
                .registrar
                .as_ref()
                .is_some_and(|r| !r.lookup(&aor, now).is_empty());
            if !still && !self.streaming(&aor) {
                tracing::info!("registration of {aor} expired");
                self.set_state(aor, SensorState::Offline);
            }
        }
    }

    /// SIGHUP: read the credentials file again; a bad file keeps the old
    /// users.
    fn reload(&mut self) {
        let Some(path) = self.settings.credentials_file.clone() else {
            tracing::info!("SIGHUP: no credentials file to reload");
            return;
        };
        match Credentials::load(&path, &self.settings.realm) {
            Ok(c) => {
                for w in &c.warnings {
                    tracing::warn!("{w}");
                }
                tracing::info!("SIGHUP: {} users from {}", c.len(), path.display());
                if let Some(user) = self.settings.own_user.clone()
                    && let Some(pw) = c.password(&user)
                {
                    self.ctx.ua.fire(move |ua, now| {
                        ua.set_registration_credentials(&user, pw.clone(), now);
                        ua.set_credentials(Some((user, pw)));
                    });
                }
                if let Some(r) = self.registrar.as_mut() {
                    r.set_credentials(Box::new(c.store));
                }
            }
            Err(e) => tracing::error!("SIGHUP: {e}; keeping the users loaded before"),
        }
    }

    // ---- INVITE from a sensor ----

    fn authorize(
        &mut self,
        request: &rsip::Request,
        source: Target,
        from: Option<&str>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let ip = source.addr.ip().to_canonical();
        if self.settings.trusted.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        let Some(reg) = self.registrar.as_mut() else {
            return Err(Refusal::Forbidden(format!(
                "{ip} is not a trusted peer and this collector has no credentials"
            )));
        };
        match reg.authenticate_request(request, now) {
            Ok(user) => {
                let from_user = from
                    .and_then(|f| SipUri::parse(f).ok())
                    .and_then(|u| u.user);
                if from_user.as_deref() == Some(user.username.as_str()) {
                    Ok(())
                } else {
                    Err(Refusal::Forbidden(format!(
                        "user {} may not call as {}",
                        user.username,
                        from.unwrap_or("?")
                    )))
                }
            }
            Err(challenge) => Err(Refusal::Challenge(challenge)),
        }
    }

    pub(super) fn local_media(&mut self) -> LocalMedia {
        let mut m = LocalMedia::new(self.settings.rtp);
        m.ssrc = Some(self.ids.u32());
        m.cname = Some(self.ctx.cname.clone());
        m
    }

    /// A final failure with `Warning: <value>` (RFC 3261 20.43).
    fn refuse(
        &mut self,
        session: UaSession,
        request: &rsip::Request,
        status: u16,
        warning: String,
    ) {
        let tag = self.ids.tag();
        let mut r = response_to(request, rsip::StatusCode::from(status), Some(&tag));
        r.headers
            .push(rsip::Header::Warning(rsip::headers::Warning::new(warning)));
        self.ctx.ua.fire(move |ua, now| {
            let _ = ua.respond_to_invite(session, r, now);
        });
    }

    fn incoming(
        &mut self,
        session: UaSession,
        request: rsip::Request,
        source: Target,
        body: Vec<u8>,
    ) {
        let now = Instant::now();
        let from = from_aor(&request);
        if let Err(refusal) = self.authorize(&request, source, from.as_deref(), now) {
            match refusal {
                Refusal::Challenge(r) => {
                    if r.status_code.code() != 401 {
                        self.count("sip_unauthenticated");
                    }
                    self.ctx.ua.fire(move |ua, now| {
                        let _ = ua.respond_to_invite(session, r, now);
                    });
                }
                Refusal::Forbidden(why) => {
                    self.count("sip_forbidden");
                    self.warn(
                        "forbidden",
                        format!("INVITE from {}: 403, {why}", source.addr),
                    );
                    let w = format!("399 {} \"{}\"", self.settings.host, why.replace('"', "'"));
                    self.refuse(session, &request, 403, w);
                }
            }
            return;
        }
        let Some(aor) = from else {
            let w = format!("399 {} \"no readable From\"", self.settings.host);
            self.refuse(session, &request, 400, w);
            return;
        };
        let offer = match sdp::parse(&body) {
            Ok(o) => o,
            Err(e) => {
                self.count("sip_not_acceptable");
                let w = format!(
                    "399 {} \"malformed SDP: {}\"",
                    self.settings.host,
                    e.to_string().replace('"', "'")
                );
                self.refuse(session, &request, 400, w);
                return;
            }
        };
        let full = offer::sensor_description(&offer);
        let policy = full
            .as_ref()
            .map(|f| offer::receive_policy(&self.settings.policy, f))
            .unwrap_or_default();
        let local = self.local_media();
        let mut origin = LocalSdp::new("collector", self.settings.rtp.ip(), &mut self.ids);
        let (answer, agreed) =
            match sdp::answer(&offer, &AnswerPolicy::Receive(policy), &local, &mut origin) {
                Ok(x) => x,
                Err(e) => {
                    // RFC 3261 21.4.26 and docs/protocol.md 3.5.
                    self.count("sip_not_acceptable");
                    self.warn(
                        "not_acceptable",
                        format!(
                            "INVITE from {aor} ({}): {} {e}",
                            source.addr,
                            e.status_code()
                        ),
                    );
                    let w = e.warning_header(&self.settings.host);
                    self.refuse(session, &request, e.status_code(), w);
                    return;
                }
            };
        if let Some(f) = full {
            self.offers.insert(aor.clone(), f);
        }
        let call_id = request
            .call_id_header()
            .map(|c| c.value().to_string())
            .unwrap_or_default();
        tracing::info!(
            "{aor} calls from {}: {}",
            source.addr,
            offer::summary(&agreed.description)
        );
        let started_ns = now_ns();
        self.calls.insert(
            session,
            Call {
                aor: aor.clone(),
                call_id: call_id.clone(),
                phase: Phase::Setup,
                opened: None,
                agreed: Some(agreed.clone()),
                origin,
                local: local.clone(),
                offer: None,
                reply: None,
                source_ip: Some(source.addr.ip()),
                started_ns,
            },
        );
        let args = OpenArgs {
            aor,
            sensor: None,
            call_id,
            agreed,
            signalling_ip: Some(source.addr.ip()),
            local_ssrc: local.ssrc.unwrap_or_default(),
            started_ns,
        };
        let args = OpenArgs {
            sensor: self.sensors.get(&args.aor).copied(),
            ..args
        };
        let ctx = self.ctx.clone();
        let answer = answer.to_bytes();
        tokio::spawn(async move {
            let result = match open(&ctx, args, true).await {
                Ok(o) => {
                    let accepted = ctx
                        .ua
                        .run(move |ua, now| ua.accept(session, answer, now))
                        .await;
                    match accepted {
                        Some(Ok(())) => Ok(o),
                        other => {
                            close(&ctx, o, now_ns()).await;
                            Err(format!("cannot accept: {other:?}"))
                        }
                    }
                }
                Err((status, why)) => {
                    let w = why.clone();
                    ctx.ua.fire(move |ua, now| {
                        let _ = ua.reject(session, status, Some(&w), now);
                    });
                    Err(why)
                }
            };
            let _ = ctx.tx.send(Command::Opened { session, result });
        });
    }

    fn opened(&mut self, session: UaSession, result: Result<Opened, String>) {
        let Some(call) = self.calls.get_mut(&session) else {
            // The call is gone from our books: release what was built.
            if let Ok(o) = result {
                let ctx = self.ctx.clone();
                tokio::spawn(async move { close(&ctx, o, now_ns()).await });
            }
            return;
        };
        match result {
            Ok(o) => {
                self.sensors.insert(call.aor.clone(), o.sensor);
                call.opened = Some(o);
                if call.phase == Phase::Ended {
                    let call = self.calls.remove(&session);
                    if let Some(c) = call {
                        self.finish(c);
                    }
                    return;
                }
                call.phase = Phase::Active;
                if let Some(r) = call.reply.take() {
                    let summary = call
                        .agreed
                        .as_ref()
                        .map(|a| offer::summary(&a.description))
                        .unwrap_or_default();
                    let mut reply = Reply::ok(format!("{} streaming: {summary}", call.aor));
                    reply.detail = Some(serde_json::json!({ "call_id": call.call_id }));
                    let _ = r.send(reply);
                }
            }
            Err(e) => {
                let aor = call.aor.clone();
                if let Some(c) = self.calls.remove(&session)
                    && let Some(r) = c.reply
                {
                    let _ = r.send(Reply::error(format!("{aor}: {e}")));
                }
                tracing::error!("call with {aor} failed: {e}");
            }
        }
    }

    fn ended(&mut self, session: UaSession, reason: EndReason, warning: Option<String>) {
        let Some(mut call) = self.calls.remove(&session) else {
            return;
        };
        if let Some(r) = call.reply.take() {
            let why = warning.map(|w| format!(" ({w})")).unwrap_or_default();
            let _ = r.send(Reply::error(format!(
                "call with {} ended: {reason:?}{why}",
                call.aor
            )));
        }
        tracing::info!("call with {} ended: {reason:?}", call.aor);
        match (call.phase, call.opened.is_some()) {
            (_, true) => self.finish(call),
            (Phase::Setup, false) => {
                // Its set-up task reports later and is cleaned up then.
                call.phase = Phase::Ended;
                self.calls.insert(session, call);
            }
            _ => {}
        }
    }

    /// Releases a call's stream and record.
    pub(super) fn finish(&mut self, call: Call) {
        let Some(o) = call.opened else { return };
        let ctx = self.ctx.clone();
        let aor = call.aor;
        tokio::spawn(async move {
            close(&ctx, o, now_ns()).await;
            let _ = ctx.tx.send(Command::Closed {
                aor,
                sensor: o.sensor,
            });
        });
    }

    fn closed(&mut self, aor: String, _sensor: SensorId) {
        if self.streaming(&aor) {
            return;
        }
        let now = Instant::now();
        let bound = self
            .registrar
            .as_ref()
            .is_some_and(|r| !r.lookup(&aor, now).is_empty());
        let state = if bound {
            SensorState::Registered
        } else {
            SensorState::Offline
        };
        self.set_state(aor, state);
    }

    // ---- re-INVITE from a sensor ----

    fn reoffer(&mut self, session: UaSession, body: &[u8]) {
        let host = self.settings.host.clone();
        let policy_cfg = self.settings.policy;
        let Some(call) = self.calls.get_mut(&session) else {
            self.ctx.ua.fire(move |ua, now| {
                let _ = ua.answer_reoffer(session, Err((481, "no such stream".into())), now);
            });
            return;
        };
        let (Some(o), Phase::Active) = (call.opened, call.phase) else {
            // RFC 3261 14.2: an offer while ours is being set up.
            self.ctx.ua.fire(move |ua, now| {
                let _ = ua.answer_reoffer(
                    session,
                    Err((491, "the stream is still being set up".into())),
                    now,
                );
            });
            return;
        };
        let result = sdp::parse(body)
            .map_err(sdp::NegotiationError::from)
            .and_then(|offer| {
                let full = offer::sensor_description(&offer);
                let policy = full
                    .as_ref()
                    .map(|f| offer::receive_policy(&policy_cfg, f))
                    .unwrap_or_default();
                sdp::answer(
                    &offer,
                    &AnswerPolicy::Receive(policy),
                    &call.local,
                    &mut call.origin,
                )
                .map(|(a, g)| (a, g, full))
            });
        let (answer, agreed, full) = match result {
            Ok(x) => x,
            Err(e) => {
                let status = e.status_code();
                let text = e.to_string();
                let message = format!("re-offer from {} ({host}): {status} {text}", call.aor);
                self.warn("reoffer", message);
                self.ctx.ua.fire(move |ua, now| {
                    let _ = ua.answer_reoffer(session, Err((status, text)), now);
                });
                return;
            }
        };
        if let Some(f) = full {
            self.offers.insert(call.aor.clone(), f);
        }
        let unchanged = call
            .agreed
            .as_ref()
            .is_some_and(|a| a.description == agreed.description);
        let answer = answer.to_bytes();
        if unchanged {
            // Same stream (a refresh, or a new address): nothing to record.
            call.agreed = Some(agreed);
            self.ctx.ua.fire(move |ua, now| {
                let _ = ua.answer_reoffer(session, Ok(answer), now);
            });
            return;
        }
        tracing::info!(
            "{} changes its stream: {}",
            call.aor,
            offer::summary(&agreed.description)
        );
        let ctx = self.ctx.clone();
        let call_id = call.call_id.clone();
        tokio::spawn(async move {
            let result = renegotiate(&ctx, o, &call_id, agreed).await;
            let answer = match &result {
                Ok(_) => Ok(answer),
                Err(e) => Err((500, e.clone())),
            };
            ctx.ua.fire(move |ua, now| {
                let _ = ua.answer_reoffer(session, answer, now);
            });
            let _ = ctx.tx.send(Command::Renegotiated { session, result });
        });
    }

    fn renegotiated(&mut self, session: UaSession, result: Result<(SessionId, Agreed), String>) {
        let Some(call) = self.calls.get_mut(&session) else {
            return;
        };
        call.offer = None;
        match result {
            Ok((record, agreed)) => {
                let summary = offer::summary(&agreed.description);
                if let Some(o) = call.opened.as_mut() {
                    o.session = record;
                }
                call.agreed = Some(agreed);
                tracing::info!("{} now streams {summary}", call.aor);
                if let Some(r) = call.reply.take() {
                    let _ = r.send(Reply::ok(format!("{} now streams {summary}", call.aor)));
                }
            }
            Err(e) => {
                tracing::error!("{}: the changed stream cannot be recorded: {e}", call.aor);
                if let Some(r) = call.reply.take() {
                    let _ = r.send(Reply::error(e));
                }
            }
        }
    }

    // ---- SIGTERM ----

    async fn shutdown(&mut self, events: &mut mpsc::Receiver<UaEvent>) {
        let sessions: Vec<UaSession> = self.calls.keys().copied().collect();
        let n = sessions.len();
        for s in sessions {
            self.ctx.ua.fire(move |ua, now| {
                let _ = ua.hangup(s, now);
            });
        }
        if self.settings.own_user.is_some() {
            self.ctx.ua.fire(|ua, now| ua.unregister(now));
        }
        let mut tasks = tokio::task::JoinSet::new();
        let ended = now_ns();
        for (_, call) in self.calls.drain() {
            if let Some(o) = call.opened {
                let ctx = self.ctx.clone();
                let aor = call.aor.clone();
                tasks.spawn(async move {
                    close(&ctx, o, ended).await;
                    // Written directly: the state writer stops with us.
                    let _ = ctx
                        .storage
                        .set_sensor_state(o.sensor, SensorState::Offline)
                        .await;
                    let _ = aor;
                });
            }
        }
        if n > 0 {
            tracing::info!("shutting down: BYE to {n} sensors");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let _ = tokio::time::timeout_at(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        // Let the BYEs and the un-REGISTER be answered (or retransmitted once).
        let grace =
            tokio::time::Instant::now() + Duration::from_millis(if n > 0 { 300 } else { 50 });
        let wait_unregister = self.settings.own_user.is_some();
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(UaEvent::Registration(RegistrationEvent::Unregistered)) if wait_unregister => {
                        tracing::info!("unregistered");
                        break;
                    }
                    Some(_) => {}
                    None => break,
                },
                () = tokio::time::sleep_until(grace), if !wait_unregister => break,
                () = tokio::time::sleep_until(grace + Duration::from_millis(1000)) => break,
            }
        }
    }
}

/// Arguments of [`open`].
#[derive(Debug, Clone)]
pub struct OpenArgs {
    pub aor: String,
    pub sensor: Option<SensorId>,
    pub call_id: String,
    pub agreed: Agreed,
    pub signalling_ip: Option<IpAddr>,
    pub local_ssrc: u32,
    pub started_ns: i64,
}

/// The time of the sensor's latest stored sample.
async fn last_sample_ns(storage: &dyn Storage, sensor: SensorId) -> Option<i64> {
    storage
        .samples(&SampleQuery {
            sensor,
            from_ns: i64::MIN,
            to_ns: crate::storage::TS_MAX,
            limit: 1,
            order: Order::Desc,
            after: None,
        })
        .await
        .ok()?
        .first()
        .map(|s| s.ts_ns)
}

fn stream_info(a: &OpenArgs, sensor: SensorId, session: SessionId) -> StreamInfo {
    let spec = stream_spec(&a.agreed.description);
    StreamInfo {
        sensor,
        aor: a.aor.clone(),
        session,
        call_id: a.call_id.clone(),
        ssrc: a.agreed.remote_ssrc.unwrap_or(0),
        remote: a.agreed.remote.map(|r| r.rtp),
        rate_hz: spec.rate_hz,
        channels: spec.channels,
        started_ns: a.started_ns,
    }
}

/// Records the session and starts receiving. With `storage_first` the
/// record exists before the media stream (an incoming call is answered only
/// once it can be stored); without, the stream starts first and holds its
/// packets until the record exists (our call: the sensor streams as soon
/// as it answers).
pub async fn open(ctx: &Ctx, a: OpenArgs, storage_first: bool) -> Result<Opened, (u16, String)> {
    let storage_err = |e: crate::storage::StorageError| (500, format!("storage: {e}"));
    let sensor = match a.sensor {
        Some(s) => s,
        None => {
            ctx.storage
                .upsert_sensor(&a.aor, None)
                .await
                .map_err(storage_err)?
                .id
        }
    };
    let previous = last_sample_ns(ctx.storage.as_ref(), sensor).await;
    let new = NewSession {
        sensor,
        call_id: a.call_id.clone(),
        ssrc: a.agreed.remote_ssrc.unwrap_or(0),
        stream: stream_spec(&a.agreed.description),
        started_ns: a.started_ns,
    };
    let setup = |session: Option<SessionId>, stats| StreamSetup {
        sensor,
        aor: a.aor.clone(),
        session,
        agreed: a.agreed.clone(),
        signalling_ip: a.signalling_ip,
        local_ssrc: a.local_ssrc,
        cname: ctx.cname.clone(),
        previous_sample_ns: previous,
        stats,
    };
    let media_err = |e: crate::media::MediaError| match e {
        crate::media::MediaError::Full(_) => (503, e.to_string()),
        e => (500, e.to_string()),
    };
    let (record, key) = if storage_first {
        let record = ctx.storage.open_session(&new).await.map_err(storage_err)?;
        let stats = ctx.streams.open(stream_info(&a, sensor, record.id));
        let key = match ctx.media.add(setup(Some(record.id), stats)).await {
            Ok(k) => k,
            Err(e) => {
                let _ = ctx.storage.close_session(record.id, now_ns()).await;
                return Err(media_err(e));
            }
        };
        (record.id, key)
    } else {
        let stats = ctx.streams.open(stream_info(&a, sensor, SessionId(0)));
        let key = ctx.media.add(setup(None, stats)).await.map_err(media_err)?;
        let record = match ctx.storage.open_session(&new).await {
            Ok(r) => r,
            Err(e) => {
                ctx.media.remove(key).await;
                return Err(storage_err(e));
            }
        };
        ctx.media.update(key, a.agreed.clone(), record.id).await;
        (record.id, key)
    };
    let _ = ctx.states.send((a.aor.clone(), SensorState::Streaming));
    Ok(Opened {
        sensor,
        session: record,
        media: key,
    })
}

/// Ends a call's stream: rows to the writer, BYE (RTCP) to the agent, the
/// record closed.
pub async fn close(ctx: &Ctx, o: Opened, ended_ns: i64) {
    if let Some(t) = ctx.media.remove(o.media).await {
        tracing::debug!(
            "stream closed: {} packets, {} lost, {} duplicates, {} samples, {} events, {} gaps",
            t.received,
            t.lost,
            t.duplicates,
            t.samples,
            t.events,
            t.gaps
        );
    }
    if let Err(e) = ctx.storage.close_session(o.session, ended_ns).await {
        tracing::error!("cannot close session record {}: {e}", o.session);
    }
}

/// A renegotiated stream (docs/protocol.md 3.4): a new record for the new
/// description (the old one closed), installed in the media thread, which
/// keeps decoding the old `cfg`'s late packets under the old record.
pub async fn renegotiate(
    ctx: &Ctx,
    o: Opened,
    call_id: &str,
    agreed: Agreed,
) -> Result<(SessionId, Agreed), String> {
    let now = now_ns();
    let record = ctx
        .storage
        .open_session(&NewSession {
            sensor: o.sensor,
            call_id: call_id.to_string(),
            ssrc: agreed.remote_ssrc.unwrap_or(0),
            stream: stream_spec(&agreed.description),
            started_ns: now,
        })
        .await
        .map_err(|e| format!("storage: {e}"))?;
    if !ctx.media.update(o.media, agreed.clone(), record.id).await {
        return Err("the stream is gone".into());
    }
    if let Err(e) = ctx.storage.close_session(o.session, now).await {
        tracing::error!("cannot close session record {}: {e}", o.session);
    }
    Ok((record.id, agreed))
}
