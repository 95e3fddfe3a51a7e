//! The transaction user, sans-I/O: what to do about the user agent's events,
//! the control socket's requests, the reports of storage and media work and
//! the passing of time.
//!
//! [`Core`] takes inputs with the time they happen ([`Now`]) and answers
//! with [`Action`]s (send on the user agent, open or close a stream, record
//! a sensor's state, reply to a control client) and the instant it next
//! wants to be woken ([`Core::poll_timeout`]); `run.rs` carries them out.
//! Every decision here is tested without a socket, on a virtual clock.

mod authorisation;
mod fleet;
mod incoming;
mod outgoing;
pub(crate) use outgoing::over_tls;
mod registration;
mod reoffer;
mod silent;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use self::authorisation::limiter::{FailureLimiter, Limits};
use self::registration::sources::{AORS_PER_SOURCE, BoundBySource};
use super::control::{Reply, Request};
use super::offer;
use crate::config::Policy;
use crate::media::StreamKey;
use crate::storage::{SensorId, SensorState, SessionId, StorageError};
use crate::update::subscriptions::RequestId;
use crate::update::subscriptions::run::SipEvent;
use ipnet::IpNet;
use sipsensor_protocol::{
    Agreed, AgreedRecovery, IdGenerator, LocalMedia, LocalSdp, MediaSecurity, Password, Registrar,
    Sdp, ServerId, SessionId as UaSession, SipUri, StreamDescription, SubscriptionId, UaError,
    UaEvent,
};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// When an input happens: the monotonic instant (timers, the registrar)
/// and the wall clock in Unix nanoseconds (what session records carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub instant: Instant,
    pub unix_ns: i64,
}

/// Names a control client waiting for its [`Reply`]; the shell holds the
/// channel behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyTo(pub u64);

/// A call's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub sensor: SensorId,
    pub session: SessionId,
    pub media: StreamKey,
}

/// What a call's stream is opened with.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenArgs {
    pub aor: String,
    pub sensor: Option<SensorId>,
    pub call_id: String,
    pub agreed: Agreed,
    /// What the exchange agreed of docs/protocol.md section 11.
    pub recovery: AgreedRecovery,
    pub signalling_ip: Option<IpAddr>,
    pub local_ssrc: u32,
    pub started_ns: i64,
}

/// Why a call's storage record and media stream could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// Storage or media refused; `status` is the SIP answer it calls for.
    #[error("{reason}")]
    Open { status: u16, reason: String },
    /// Stored and receiving, but the user agent could not send the 200.
    #[error("cannot accept: {0}")]
    NotAccepted(String),
}

/// Why a changed stream could not be recorded and installed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenegotiateError {
    #[error("storage: {0}")]
    Storage(StorageError),
    #[error("the stream is gone")]
    Gone,
}

/// The outcome of work the shell did for the core.
#[derive(Debug)]
pub enum Report {
    /// Our INVITE went out (or could not).
    Placed {
        call: PendingId,
        result: Result<UaSession, UaError>,
    },
    /// Storage record and media stream of a call are ready (or failed).
    Opened {
        session: UaSession,
        result: Result<Opened, SetupError>,
    },
    /// A changed stream is recorded and installed (or not); `answer` is
    /// the sensor's re-offer's answer, when the change was the sensor's.
    Renegotiated {
        session: UaSession,
        answer: Option<Vec<u8>>,
        result: Result<(SessionId, Agreed), RenegotiateError>,
    },
    /// A re-INVITE of ours could not be sent.
    ReinviteFailed { session: UaSession, error: UaError },
    /// A call's stream is closed and stored.
    Closed { aor: String },
    /// Our fleet SUBSCRIBE went out (or could not): [`Action::Subscribe`].
    Subscribed {
        request: RequestId,
        result: Result<SubscriptionId, UaError>,
    },
    /// A refresh of [`Action::RefreshSubscription`] could not be sent.
    RefreshFailed { sub: SubscriptionId },
    /// The media engine heard nothing authenticated from a stream for
    /// `media.silence_timeout_s`; `last_heard_ns` on the wall clock.
    Silent {
        media: StreamKey,
        last_heard_ns: i64,
    },
}

/// What the core asks the shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Reply {
        to: ReplyTo,
        reply: Reply,
    },
    /// Answer a request the user agent handed up (REGISTER).
    Respond {
        id: ServerId,
        response: sipsensor_protocol::Response,
    },
    /// A final answer to an INVITE, built here (4xx with Warning).
    RespondToInvite {
        session: UaSession,
        response: sipsensor_protocol::Response,
    },
    /// A refusal of an INVITE from a peer not (yet) authenticated: a
    /// challenge, 403. Sent once, no transaction kept, so that each
    /// INVITE received gets one answer (RFC 3261 17.2.1; a forged source
    /// gets no more from us than it sent).
    RefuseInviteStatelessly {
        session: UaSession,
        response: sipsensor_protocol::Response,
    },
    /// Likewise for a REGISTER's challenge or refusal.
    RespondStatelessly {
        id: ServerId,
        response: sipsensor_protocol::Response,
    },
    Reject {
        session: UaSession,
        status: u16,
        reason: String,
    },
    /// Answer a re-INVITE; an answer to `sensor`'s gets its backfill
    /// `mark` from storage in the shell (docs/protocol.md 11.1 rule 5).
    AnswerReoffer {
        session: UaSession,
        sensor: Option<SensorId>,
        answer: Result<Vec<u8>, (u16, String)>,
    },
    Hangup(UaSession),
    /// INVITE `target` (the sensor `aor`, whose backfill `mark` the shell
    /// sets in `offer` from storage); report [`Report::Placed`] with `call`.
    Call {
        call: PendingId,
        aor: String,
        target: String,
        offer: Vec<u8>,
    },
    /// re-INVITE `sensor` (its backfill `mark` set from storage by the
    /// shell); report [`Report::ReinviteFailed`] if it cannot be sent.
    Reinvite {
        session: UaSession,
        sensor: SensorId,
        offer: Vec<u8>,
    },
    Unregister,
    /// New credentials for our own registration and requests.
    SetOwnCredentials {
        user: String,
        password: Password,
    },
    /// Hold packets from `ip` until `until` (a sensor we call).
    ExpectSource {
        ip: IpAddr,
        until: Instant,
    },
    /// A stream's new `cfg` may arrive until `until` (our re-INVITE).
    ExpectConfig {
        media: StreamKey,
        until: Instant,
    },
    /// Record the session and start receiving; report [`Report::Opened`].
    /// With `accept` (an incoming call) the record comes first and the
    /// INVITE is answered with it once stored; without (our call) the
    /// stream starts first.
    Open {
        session: UaSession,
        args: OpenArgs,
        accept: Option<Vec<u8>>,
    },
    /// Record and install a changed stream; report [`Report::Renegotiated`]
    /// with `answer` passed through.
    Renegotiate {
        session: UaSession,
        opened: Opened,
        call_id: String,
        agreed: Agreed,
        /// What the exchange agreed of docs/protocol.md section 11.
        recovery: AgreedRecovery,
        answer: Option<Vec<u8>>,
    },
    /// The same stream with another recovery agreement (docs/protocol.md
    /// 11.1 rule 5): install it in the media stream, under its record.
    Recover {
        opened: Opened,
        agreed: Agreed,
        recovery: AgreedRecovery,
    },
    /// Release a stream and its record; with `report`, report
    /// [`Report::Closed`] for that AOR afterwards.
    Close {
        opened: Opened,
        report: Option<String>,
    },
    /// A call whose stream went silent was hung up: release its stream and
    /// record (ended at `last_heard_ns`), log it and count it, then report
    /// [`Report::Closed`] for `aor`.
    CloseSilent {
        opened: Opened,
        aor: String,
        last_heard_ns: i64,
        silent_for: std::time::Duration,
    },
    /// SUBSCRIBE to the sensor's fleet state at `target` (docs/protocol.md
    /// 12.1); report [`Report::Subscribed`] with `request`.
    Subscribe {
        request: RequestId,
        target: String,
        body: Vec<u8>,
        expires: u32,
    },
    /// Refresh the subscription now with `body` (empty: report only);
    /// report [`Report::RefreshFailed`] if it cannot be sent.
    RefreshSubscription {
        sub: SubscriptionId,
        body: Vec<u8>,
    },
    Unsubscribe(SubscriptionId),
    /// Let a screened in-dialog request (a BYE, a NOTIFY) take effect.
    AdmitInDialog(ServerId),
    /// Answer a screened in-dialog request once, statelessly.
    RefuseInDialog {
        id: ServerId,
        response: sipsensor_protocol::Response,
    },
    /// Tell the fleet subscriptions' manager.
    Fleet(SipEvent),
    /// Record a sensor's state (in order, creating the sensor if needed).
    SetState {
        aor: String,
        state: SensorState,
    },
    /// Count a rejected message by reason.
    Count(&'static str),
    /// Count an authentication attempt by outcome.
    CountAuth(&'static str),
    /// A line about authentication failures, already rate-limited here;
    /// its format is what the fail2ban filter in contrib/ parses.
    LogAuth(String),
    /// A warning, rate-limited per kind by the shell.
    Warn {
        kind: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Answered or accepted; storage and media being set up.
    Setup,
    Active,
    /// Over, but its set-up has not reported yet.
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// The sensor called.
    Incoming,
    /// We called the sensor.
    Outgoing,
}

/// One call (either direction).
#[derive(Debug)]
struct Call {
    aor: String,
    call_id: String,
    direction: Direction,
    phase: Phase,
    opened: Option<Opened>,
    agreed: Option<Agreed>,
    /// What the last exchange agreed of docs/protocol.md section 11.
    recovery: AgreedRecovery,
    origin: LocalSdp,
    local: LocalMedia,
    /// Our offer awaiting its answer (INVITE or re-INVITE).
    offer: Option<Sdp>,
    /// A control client waiting for the outcome.
    reply: Option<ReplyTo>,
    source_ip: Option<IpAddr>,
    started_ns: i64,
}

/// Names a call between [`Action::Call`] and its [`Report::Placed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PendingId(pub u64);

/// A call between `ua.call` and its `Placed` report.
#[derive(Debug)]
struct PendingCall {
    aor: String,
    offer: Sdp,
    origin: LocalSdp,
    local: LocalMedia,
    reply: ReplyTo,
    source_ip: Option<IpAddr>,
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
    pub credentials_file: Option<std::path::PathBuf>,
    pub realm: String,
    pub own_user: Option<String>,
    /// `sip.calling`: the user our calls answer sensors' challenges as
    /// (the same as `own_user` when both are set).
    pub calling_user: Option<String>,
    /// Whether streams are offered and taken with SRTP over plain
    /// signalling (never with SDES keys in the SDP).
    pub media_security: MediaSecurity,
    /// The same for a call placed over TLS (`outgoing.rs`); `None`
    /// without `sip.tls`.
    pub media_security_over_tls: Option<MediaSecurity>,
    /// The outbound proxy calls go through is reached over TLS.
    pub proxy_over_tls: bool,
    /// `media.recovery`: section 11 in our SDP at all.
    pub recovery: bool,
    /// `media.backfill_max_rate`: the `max-rate` of our SDP (bytes/s).
    pub backfill_max_rate: u64,
}

impl Settings {
    /// The RTCP CNAME of every stream we receive.
    pub fn cname(&self) -> String {
        format!("collector@{}", self.host)
    }
}

/// What is left to do when the collector stops (SIGTERM).
#[derive(Debug, PartialEq)]
pub struct Stopping {
    /// Streams to close, each sensor then recorded offline.
    pub close: Vec<Opened>,
    /// How many calls got a BYE.
    pub calls: usize,
    /// Our own registration is being removed: wait for its answer.
    pub unregistering: bool,
}

pub struct Core {
    settings: Settings,
    registrar: Option<Registrar>,
    calls: HashMap<UaSession, Call>,
    /// Calls between [`Action::Call`] and [`Report::Placed`].
    pending: HashMap<PendingId, PendingCall>,
    next_pending: u64,
    sensors: HashMap<String, SensorId>,
    /// The last full offer of each sensor (docs/protocol.md 3.3: the
    /// collector remembers it to ask for channels again).
    offers: HashMap<String, StreamDescription>,
    ids: IdGenerator,
    /// Authentication failures per source and their back-off.
    limiter: FailureLimiter,
    /// Registrar state per source: the AORs each address holds.
    bound_by_source: BoundBySource,
    /// The fleet subscriptions (docs/protocol.md 12.1).
    fleet: fleet::FleetSubs,
    actions: VecDeque<Action>,
}

/// The canonical AOR (`sip:user@host`) of a URI.
pub fn canonical_aor(uri: &str) -> Option<String> {
    let bare = uri.trim().trim_start_matches('<').trim_end_matches('>');
    SipUri::parse(bare).ok().map(|u| u.aor())
}

impl Core {
    pub fn new(settings: Settings, registrar: Option<Registrar>, ids: IdGenerator) -> Core {
        Core {
            settings,
            registrar,
            calls: HashMap::new(),
            pending: HashMap::new(),
            next_pending: 0,
            sensors: HashMap::new(),
            offers: HashMap::new(),
            ids,
            limiter: FailureLimiter::new(Limits::default()),
            bound_by_source: BoundBySource::new(AORS_PER_SOURCE),
            fleet: fleet::FleetSubs::default(),
            actions: VecDeque::new(),
        }
    }

    #[cfg(test)]
    fn set_aors_per_source(&mut self, limit: usize) {
        self.bound_by_source = BoundBySource::new(limit);
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Core::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.registrar.as_ref().and_then(|r| r.poll_timeout())
    }

    pub fn handle_event(&mut self, ev: UaEvent, now: Now) {
        match ev {
            UaEvent::IncomingCall {
                session,
                request,
                source,
                offer,
            } => self.incoming(session, request, source, offer, now),
            UaEvent::Answered { session, answer } => self.answered(session, &answer),
            UaEvent::ReofferReceived { session, offer } => self.reoffer(session, &offer),
            UaEvent::ReofferAnswered { session, answer } => self.reoffer_answered(session, &answer),
            UaEvent::ReofferRejected {
                session,
                status,
                warning,
            } => self.reoffer_rejected(session, status, warning),
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
            } => self.register(id, request, source, now.instant),
            UaEvent::Registration(e) => self.registration(e),
            UaEvent::Malformed { source, reason } => {
                self.count("sip_malformed");
                self.warn(
                    "malformed",
                    format!("unusable SIP message from {}: {reason}", source.addr),
                );
            }
            UaEvent::Refused {
                source,
                status,
                reason,
            } => {
                match status {
                    503 => self.count("sip_overloaded"),
                    416 => self.count("sip_insecure_scheme"),
                    _ => self.count("sip_refused"),
                }
                self.warn(
                    "refused",
                    format!("answered {status} to {}: {reason}", source.addr),
                );
            }
            UaEvent::Progress { .. }
            | UaEvent::Confirmed { .. }
            | UaEvent::OptionsResult { .. }
            | UaEvent::Response { .. } => {}
            // The user agent screens in-dialog requests for the NOTIFYs'
            // sake (`fleet.rs`); a call's BYE and re-INVITE go on as ever.
            UaEvent::InDialogRequest { id, .. } => self.push(Action::AdmitInDialog(id)),
            UaEvent::Subscription(e) => self.subscription(e, now),
        }
    }

    pub fn handle_control(&mut self, request: Request, to: ReplyTo, now: Now) {
        match request {
            Request::Call(r) => self.call(r, to, now),
            Request::SetRate { sensor, hz } => self.set_rate(&sensor, hz, to, now),
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
                self.reply(to, r);
            }
            // The shell hands these to the rollouts when it has them.
            Request::Update(_) => self.reply(
                to,
                Reply::error("this collector runs no rollouts (fleet updates are not set up)"),
            ),
        }
    }

    pub fn handle_report(&mut self, report: Report, now: Now) {
        match report {
            Report::Placed { call, result } => self.placed(call, result, now),
            Report::Opened { session, result } => self.opened(session, result),
            Report::Renegotiated {
                session,
                answer,
                result,
            } => self.renegotiated(session, answer, result),
            Report::ReinviteFailed { session, error } => self.reinvite_failed(session, &error),
            Report::Closed { aor } => self.closed(aor, now.instant),
            Report::Subscribed { request, result } => self.subscribed(request, result, now),
            Report::RefreshFailed { sub } => self.refresh_failed(sub),
            Report::Silent {
                media,
                last_heard_ns,
            } => self.silent(media, last_heard_ns, now),
        }
    }

    /// SIGTERM: BYE to every call, un-REGISTER, and the streams to close.
    pub fn stop(&mut self) -> Stopping {
        let sessions: Vec<UaSession> = self.calls.keys().copied().collect();
        let calls = sessions.len();
        for s in sessions {
            self.push(Action::Hangup(s));
        }
        let unregistering = self.settings.own_user.is_some();
        if unregistering {
            self.push(Action::Unregister);
        }
        let close = self.calls.drain().filter_map(|(_, c)| c.opened).collect();
        Stopping {
            close,
            calls,
            unregistering,
        }
    }

    fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    fn reply(&mut self, to: ReplyTo, reply: Reply) {
        self.push(Action::Reply { to, reply });
    }

    fn count(&mut self, reason: &'static str) {
        self.push(Action::Count(reason));
    }

    fn warn(&mut self, kind: &'static str, message: String) {
        self.push(Action::Warn { kind, message });
    }

    fn set_state(&mut self, aor: String, state: SensorState) {
        self.push(Action::SetState { aor, state });
    }

    fn streaming(&self, aor: &str) -> bool {
        self.calls
            .values()
            .any(|c| c.aor == aor && matches!(c.phase, Phase::Setup | Phase::Active))
    }

    fn local_media(&mut self) -> LocalMedia {
        let mut m = LocalMedia::new(self.settings.rtp);
        m.ssrc = Some(self.ids.u32());
        m.cname = Some(self.settings.cname());
        m.security = self.settings.media_security;
        m
    }

    /// Releases a call's stream and record.
    fn finish(&mut self, call: Call) {
        let Some(opened) = call.opened else { return };
        self.push(Action::Close {
            opened,
            report: Some(call.aor),
        });
    }
}
