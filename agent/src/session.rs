//! The agent's SIP life cycle, sans-I/O: register, call the collector,
//! stream, answer re-INVITEs, recover from everything the field throws at
//! a sensor, and hang up cleanly.
//!
//! [`Controller`] reads the user agent's [`UaEvent`]s and the passing of
//! time and answers with [`Action`]s and [`StatusChange`]s; `run.rs`
//! carries the actions out on the protocol crate's user agent and the
//! real-time sender, and applies the status changes to the daemon's hub.
//! Every rule here is tested without a socket.

pub mod fleet;
pub mod flow;
pub mod liveness;
pub mod media;
pub mod run;
pub mod streamer;
#[cfg(test)]
mod tests;
mod trust;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use sipsensor_protocol::fleet::FleetWant;
use sipsensor_protocol::{
    Agreed, AgreedRecovery, AnswerPolicy, EndReason, FailureReason, IdGenerator, LocalMedia,
    LocalSdp, NotifyState, RecoverySupport, RegistrationConfig, RegistrationEvent, Response, Sdp,
    ServerId, SessionId, StreamDescription, StreamRole, SubscriptionId, Transport, UaError,
    UaEvent, agreed_recovery, answer_with_recovery, apply_answer, offer_with_recovery, parse_sdp,
};

use crate::backoff::Backoff;
use crate::status::{AgentState, StatusChange};
use flow::FlowKeeper;
use liveness::PeerWatch;
pub use trust::{Admission, Opener, Refusal, Trust, TrustConfig};

/// Added to "registrar unreachable" over TLS: a certificate the CA file
/// does not verify looks the same to the registration.
const TLS_UNREACHABLE_HINT: &str = "; over TLS: is the registrar's certificate signed by the \
                                    CA in sip.ca_file, for the name or address in \
                                    sip.registrar? (the log names the TLS error)";

/// What the controller needs to know, taken from the agent's config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to send the INVITE; `None`: wait to be called.
    pub collector: Option<String>,
    /// `None`: no registrar configured, call straight away.
    pub registration: Option<RegistrationConfig>,
    pub trust: TrustConfig,
    /// What this device can send.
    pub capabilities: StreamDescription,
    /// Where this device's RTP leaves from (its SDP address).
    pub local_media: LocalMedia,
    /// The acknowledgement, repair and backfill this device offers and
    /// accepts (docs/protocol.md 11.1); `Default`: none.
    pub recovery: RecoverySupport,
    /// In-dialog OPTIONS interval: how fast a collector that forgot the
    /// session (restarted within the peer timeout) is noticed.
    pub keepalive: Duration,
    /// The longest silence of the peer's RTCP before the session is
    /// declared dead, when backfill is agreed (at least
    /// [`liveness::LEGACY_PEER_TIMEOUT`] when it is not).
    pub peer_timeout: Duration,
    /// CRLF keep-alive interval of the flow to the registrar (RFC 5626
    /// 4.4.1); `None` when the registration is no flow (UDP, no registrar).
    pub flow_keepalive: Option<Duration>,
    /// Back-off between call attempts.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// o= username and address of our SDP.
    pub sdp_user: String,
    pub sdp_address: IpAddr,
}

/// What the controller asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Register(RegistrationConfig),
    Unregister,
    /// Send a CRLF keep-alive on the flow to the registrar; report with
    /// [`Controller::flow_checked`].
    PingFlow,
    /// Count the pongs on the flow; report with [`Controller::flow_pongs`].
    CountPongs,
    Call {
        to: String,
        offer: Vec<u8>,
    },
    Accept {
        session: SessionId,
        answer: Vec<u8>,
    },
    Reject {
        session: SessionId,
        status: u16,
        warning: String,
    },
    /// Answer an incoming INVITE with this response: our digest challenge
    /// (401) or the 400 for broken credentials.
    Challenge {
        session: SessionId,
        response: Box<Response>,
    },
    /// Let an in-dialog BYE or re-INVITE take effect.
    AdmitInDialog(ServerId),
    /// Answer an in-dialog BYE or re-INVITE with this response (our
    /// challenge, 403) and leave the session as it is.
    RefuseInDialog {
        id: ServerId,
        response: Box<Response>,
    },
    AnswerReoffer {
        session: SessionId,
        answer: Result<Vec<u8>, (u16, String)>,
    },
    Ping(SessionId),
    /// Count the session peer's RTCP reports about our stream; report
    /// with [`Controller::peer_checked`].
    CheckPeer,
    Hangup(SessionId),
    /// Start streaming as agreed (remote address, description, and the
    /// recovery of docs/protocol.md 11.1).
    StartStream {
        session: SessionId,
        agreed: Agreed,
        recovery: AgreedRecovery,
    },
    /// Same session, new description (a re-INVITE changed rate or channels).
    UpdateStream(Agreed, AgreedRecovery),
    StopStream,
    /// Grant a fleet subscription (at most `max_expires`) and send its
    /// first NOTIFY with `body` (docs/protocol.md 12.1).
    AcceptSubscription {
        subscription: SubscriptionId,
        max_expires: u32,
        body: Vec<u8>,
    },
    RejectSubscription {
        subscription: SubscriptionId,
        status: u16,
        warning: String,
    },
    /// Answer a SUBSCRIBE with our digest challenge (or the 400 for
    /// broken credentials), keeping nothing: the retry is a new one.
    ChallengeSubscription {
        subscription: SubscriptionId,
        response: Box<Response>,
    },
    /// A NOTIFY in a fleet subscription (`Terminated` ends it).
    Notify {
        subscription: SubscriptionId,
        body: Vec<u8>,
        state: NotifyState,
    },
    /// Hand a SUBSCRIBE's want to the updater (`None`: a body without
    /// `want`, docs/protocol.md 12.4).
    Want(Option<FleetWant>),
}

/// Why the shell could not place the controller's `Call`.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Ua(#[from] UaError),
    #[error("the user agent stopped")]
    UaStopped,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Waiting for the registration (or for a call when no collector is
    /// configured).
    Idle,
    /// `session` is known once the shell placed the call.
    Calling {
        session: Option<SessionId>,
        offer: Box<Sdp>,
    },
    Streaming {
        session: SessionId,
        next_ping: Instant,
        /// `None` while on hold: no media, no reports to expect.
        watch: Option<PeerWatch>,
    },
    /// The next call attempt is at `until`.
    Waiting {
        until: Instant,
    },
    Stopping,
}

#[derive(Debug)]
pub struct Controller {
    settings: Settings,
    trust: Trust,
    ids: IdGenerator,
    origin: LocalSdp,
    phase: Phase,
    registered: bool,
    backoff: Backoff,
    actions: VecDeque<Action>,
    /// The daemon state last reported, so a call that ends does not hide
    /// an error that needs attention.
    state: AgentState,
    status: VecDeque<StatusChange>,
    /// The last problem reported, so a failing loop logs once, not forever.
    last_problem: Option<String>,
    /// The flow to the registrar, when the registration is one.
    flow: Option<FlowKeeper>,
    /// How the session being set up or streamed came about: its in-dialog
    /// requests must come the same way.
    opener: Option<(SessionId, Opener)>,
    /// In-dialog requests refused (not challenged): forged or of another
    /// caller.
    refused_in_dialog: u64,
    /// Calls made again since a live session's peer fell silent
    /// (docs/protocol.md 6.1); `None` when not re-establishing one.
    recalls: Option<u32>,
    /// The registrar stopped answering (or refused) and has not taken a
    /// registration since: when it does, the path is back.
    registration_failing: bool,
    /// When a call made again is given up if not answered by then.
    call_deadline: Option<Instant>,
    /// The fleet subscriptions this sensor serves (docs/protocol.md 12.1).
    fleet: fleet::Subscribers,
}

impl Controller {
    /// What the next offer or answer states about recovery: the spool's
    /// oldest instant moves as it fills and releases.
    pub fn set_recovery(&mut self, support: RecoverySupport) {
        self.settings.recovery = support;
    }

    pub fn new(settings: Settings, mut ids: IdGenerator) -> Self {
        let origin = LocalSdp::new(&settings.sdp_user, settings.sdp_address, &mut ids);
        let backoff = Backoff::new(settings.retry_initial, settings.retry_max);
        let trust = Trust::new(&settings.trust, &mut ids).unwrap_or_else(|e| {
            // Only a nonce secret under 16 bytes fails, and ours has 32;
            // should it happen, callers are refused rather than let in.
            tracing::error!("cannot check callers' credentials: {e}");
            Trust::flow_only(&settings.trust)
        });
        let flow = settings
            .flow_keepalive
            .filter(|_| settings.registration.is_some())
            .map(|interval| FlowKeeper::new(interval, flow::RETRY_BASE, flow::RETRY_MAX));
        Self {
            flow,
            settings,
            trust,
            ids,
            origin,
            phase: Phase::Idle,
            registered: false,
            backoff,
            actions: VecDeque::new(),
            // What the daemon shows until `start`.
            state: AgentState::Starting,
            status: VecDeque::new(),
            last_problem: None,
            opener: None,
            refused_in_dialog: 0,
            recalls: None,
            registration_failing: false,
            call_deadline: None,
            fleet: fleet::Subscribers::default(),
        }
    }

    pub fn start(&mut self, now: Instant) {
        match self.settings.registration.clone() {
            Some(registration) => {
                self.set_state(AgentState::Registering);
                self.actions.push_back(Action::Register(registration));
            }
            None => {
                self.set_state(AgentState::Registered);
                self.call(now);
            }
        }
    }

    /// SIGTERM: hang up, unregister. The shell waits for `Unregistered`
    /// (or its own deadline) before it exits.
    pub fn shutdown(&mut self) {
        self.fleet_going_down();
        match std::mem::replace(&mut self.phase, Phase::Stopping) {
            Phase::Calling {
                session: Some(session),
                ..
            } => self.actions.push_back(Action::Hangup(session)),
            Phase::Streaming { session, .. } => {
                self.actions.push_back(Action::StopStream);
                self.actions.push_back(Action::Hangup(session));
            }
            _ => {}
        }
        if self.settings.registration.is_some() {
            self.actions.push_back(Action::Unregister);
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// What the daemon's status should show now, in the order decided;
    /// the shell applies these before it carries out the actions.
    pub fn poll_status(&mut self) -> Option<StatusChange> {
        self.status.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Streaming {
                next_ping, watch, ..
            } => Some(
                watch
                    .as_ref()
                    .map_or(*next_ping, |w| w.poll_timeout().min(*next_ping)),
            ),
            Phase::Waiting { until } => Some(*until),
            Phase::Calling { .. } => self.call_deadline,
            _ => None,
        };
        let flow = self.flow.as_ref().and_then(FlowKeeper::poll_timeout);
        let fleet = self.fleet.poll_timeout();
        phase.into_iter().chain(flow).chain(fleet).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.forget_expired(now);
        self.flow_timeout(now);
        self.watch_timeout(now);
        self.recall_timeout(now);
        match &mut self.phase {
            Phase::Streaming {
                session, next_ping, ..
            } if *next_ping <= now => {
                self.actions.push_back(Action::Ping(*session));
                *next_ping = now + self.settings.keepalive;
            }
            Phase::Waiting { until } if *until <= now => {
                self.phase = Phase::Idle;
                if self.may_call() {
                    self.call(now);
                }
            }
            _ => {}
        }
    }

    pub fn handle_event(&mut self, event: UaEvent, now: Instant) {
        match event {
            UaEvent::Registration(event) => self.registration(event, now),
            UaEvent::Answered { session, answer } => self.answered(session, &answer, now),
            UaEvent::Ended {
                session,
                reason,
                warning,
                retry_after,
            } => self.ended(session, reason, warning, retry_after, now),
            UaEvent::IncomingCall {
                session,
                request,
                source,
                offer,
            } => self.incoming_call(session, &request, source, &offer, now),
            UaEvent::InDialogRequest {
                session,
                id,
                request,
                source,
                on_dialog_flow,
            } => self.in_dialog_request(session, id, &request, source, on_dialog_flow, now),
            UaEvent::ReofferReceived { session, offer } => self.reoffer(session, &offer, now),
            UaEvent::Malformed { source, reason } => {
                tracing::debug!("ignored a message from {}: {reason}", source.addr);
            }
            UaEvent::Progress { .. }
            | UaEvent::Confirmed { .. }
            | UaEvent::ReofferAnswered { .. }
            | UaEvent::ReofferRejected { .. }
            | UaEvent::OptionsResult { .. }
            | UaEvent::Request { .. }
            | UaEvent::Refused { .. }
            | UaEvent::Response { .. } => {}
            UaEvent::Subscription(event) => self.subscription_event(event, now),
        }
    }

    fn may_call(&self) -> bool {
        self.settings.collector.is_some()
            && (self.registered || self.settings.registration.is_none())
    }

    fn call(&mut self, now: Instant) {
        let Some(to) = self.settings.collector.clone() else {
            return;
        };
        match offer_with_recovery(
            &self.settings.capabilities,
            StreamRole::Sender,
            &self.settings.local_media,
            &self.settings.recovery,
            &mut self.origin,
        ) {
            Ok(offer) => {
                self.actions.push_back(Action::Call {
                    to,
                    offer: offer.to_bytes(),
                });
                self.call_deadline = self.recalls.map(|_| now + liveness::RECALL_ANSWER);
                // The session id arrives with the shell's answer to Call.
                self.phase = Phase::Calling {
                    session: None,
                    offer: Box::new(offer),
                };
            }
            Err(e) => {
                self.problem("stream", format!("cannot describe the stream: {e}"));
                self.wait(now, None);
            }
        }
    }

    /// The shell reports which session its `Call` created (or that it
    /// could not place it).
    pub fn call_placed(&mut self, result: Result<SessionId, CallError>, now: Instant) {
        let Phase::Calling { offer, .. } = &self.phase else {
            return;
        };
        match result {
            Ok(session) => {
                self.phase = Phase::Calling {
                    session: Some(session),
                    offer: offer.clone(),
                };
            }
            Err(e) => {
                self.problem("call", format!("cannot call the collector: {e}"));
                self.wait(now, None);
            }
        }
    }

    fn registration(&mut self, event: RegistrationEvent, now: Instant) {
        match event {
            RegistrationEvent::Registered { expires, contact } => {
                if !self.registered {
                    tracing::info!("registered as {contact} for {} s", expires.as_secs());
                }
                self.registered = true;
                if let Some(flow) = self.flow.as_mut() {
                    flow.up(now, &mut self.ids);
                }
                self.solved("registration");
                if !matches!(self.phase, Phase::Streaming { .. }) {
                    self.set_state(AgentState::Registered);
                }
                let path_back = std::mem::take(&mut self.registration_failing);
                if path_back && matches!(self.phase, Phase::Waiting { .. }) {
                    // The registrar answers again, so the path is back
                    // (a network cut ended, docs/protocol.md 6.1): a call
                    // waiting out a back-off of minutes goes now.
                    self.phase = Phase::Idle;
                }
                if self.phase == Phase::Idle && self.may_call() {
                    self.call(now);
                }
            }
            RegistrationEvent::Failed { reason } => {
                self.registration_failing = true;
                let wrong = matches!(reason, FailureReason::WrongCredentials { .. });
                let over_tls = self
                    .settings
                    .registration
                    .as_ref()
                    .is_some_and(|r| r.local.transport == Transport::Tls);
                let mut message = reason.to_string();
                if over_tls && matches!(reason, FailureReason::Unreachable) {
                    // The handshake's own error is in the log; the status
                    // names the likeliest cause.
                    message.push_str(TLS_UNREACHABLE_HINT);
                }
                self.problem("registration", message);
                if wrong {
                    tracing::error!(
                        "fix the credentials (sip.username / secrets file) and send SIGHUP"
                    );
                    self.set_state(AgentState::Error);
                } else if !matches!(self.phase, Phase::Streaming { .. }) {
                    self.set_state(AgentState::Registering);
                }
            }
            RegistrationEvent::Retrying { after } => {
                tracing::debug!("registering again in {:.1} s", after.as_secs_f64());
            }
            RegistrationEvent::Expired => {
                self.registered = false;
                tracing::warn!("registration expired: the registrar is not answering");
                if !matches!(self.phase, Phase::Streaming { .. }) {
                    self.set_state(AgentState::Registering);
                }
            }
            RegistrationEvent::Unregistered => {
                self.registered = false;
                tracing::info!("unregistered");
            }
        }
    }

    fn answered(&mut self, session: SessionId, answer: &[u8], now: Instant) {
        let Phase::Calling {
            session: calling,
            offer,
        } = &self.phase
        else {
            return;
        };
        if *calling != Some(session) {
            return;
        }
        let agreed = parse_sdp(answer).map_err(|e| e.to_string()).and_then(|a| {
            let agreed = apply_answer(offer, &a, StreamRole::Sender).map_err(|e| e.to_string())?;
            let timeout =
                liveness::peer_timeout(self.settings.peer_timeout, offer, &a, &agreed.description);
            Ok((
                agreed,
                agreed_recovery(offer, &a, StreamRole::Sender),
                timeout,
            ))
        });
        match agreed {
            Ok((agreed, recovery, timeout)) => {
                self.opener = Some((session, Opener::Us));
                self.stream(session, agreed, recovery, timeout, now);
            }
            Err(e) => {
                self.problem("call", format!("the collector's answer is unusable: {e}"));
                self.actions.push_back(Action::Hangup(session));
                self.wait(now, None);
            }
        }
    }

    pub(super) fn incoming(
        &mut self,
        session: SessionId,
        offer: &[u8],
        opener: Opener,
        now: Instant,
    ) {
        if matches!(
            self.phase,
            Phase::Streaming { .. } | Phase::Calling { .. } | Phase::Stopping
        ) {
            self.actions.push_back(Action::Reject {
                session,
                status: 486,
                warning: "this sensor is already streaming".into(),
            });
            return;
        }
        match self.answer(offer) {
            Ok((answer, agreed, recovery, timeout)) => {
                self.opener = Some((session, opener));
                self.actions.push_back(Action::Accept { session, answer });
                self.stream(session, agreed, recovery, timeout, now);
            }
            Err((status, warning)) => {
                tracing::warn!("refused an incoming call: {warning}");
                self.actions.push_back(Action::Reject {
                    session,
                    status,
                    warning,
                });
            }
        }
    }

    fn reoffer(&mut self, session: SessionId, offer: &[u8], now: Instant) {
        let ours = matches!(self.phase, Phase::Streaming { session: s, .. } if s == session);
        if !ours {
            self.actions.push_back(Action::AnswerReoffer {
                session,
                answer: Err((481, "no such stream".into())),
            });
            return;
        }
        match self.answer(offer) {
            Ok((answer, agreed, recovery, timeout)) => {
                tracing::info!(
                    "collector changed the stream: {}",
                    summary(&agreed.description)
                );
                if let Phase::Streaming { watch, .. } = &mut self.phase {
                    // A new agreement, perhaps a new address or new keys:
                    // the peer gets a whole timeout under it.
                    *watch = agreed.is_active().then(|| PeerWatch::new(timeout, now));
                }
                self.actions.push_back(Action::AnswerReoffer {
                    session,
                    answer: Ok(answer),
                });
                self.actions
                    .push_back(Action::UpdateStream(agreed, recovery));
            }
            Err((status, warning)) => {
                tracing::warn!("refused the collector's new offer: {warning}");
                self.actions.push_back(Action::AnswerReoffer {
                    session,
                    answer: Err((status, warning)),
                });
            }
        }
    }

    /// Our answer to an offer (RFC 3264 6): what we can send within what
    /// was asked for, what of docs/protocol.md 11 was agreed and the
    /// session's peer timeout, or the 488 and why.
    #[allow(clippy::type_complexity)]
    fn answer(
        &mut self,
        offer: &[u8],
    ) -> Result<(Vec<u8>, Agreed, AgreedRecovery, Duration), (u16, String)> {
        let offer = parse_sdp(offer).map_err(|e| (400, format!("malformed SDP: {e}")))?;
        let policy = AnswerPolicy::Send {
            capabilities: self.settings.capabilities.clone(),
        };
        answer_with_recovery(
            &offer,
            &policy,
            &self.settings.local_media,
            &self.settings.recovery,
            &mut self.origin,
        )
        .map(|(sdp, agreed, recovery)| {
            let timeout = liveness::peer_timeout(
                self.settings.peer_timeout,
                &offer,
                &sdp,
                &agreed.description,
            );
            (sdp.to_bytes(), agreed, recovery, timeout)
        })
        .map_err(|e| (e.status_code(), e.to_string()))
    }

    fn stream(
        &mut self,
        session: SessionId,
        agreed: Agreed,
        recovery: AgreedRecovery,
        peer_timeout: Duration,
        now: Instant,
    ) {
        tracing::info!("streaming: {}", summary(&agreed.description));
        self.solved("call");
        self.call_deadline = None;
        // With media, the back-off is reset once the peer's first report
        // proves the session alive (`peer_checked`): a collector that
        // answers and then falls silent is called again with back-off.
        let watch = agreed
            .is_active()
            .then(|| PeerWatch::new(peer_timeout, now));
        if watch.is_none() {
            self.backoff.reset();
        }
        self.set_state(AgentState::Streaming);
        self.actions.push_back(Action::StartStream {
            session,
            agreed,
            recovery,
        });
        self.phase = Phase::Streaming {
            session,
            next_ping: now + self.settings.keepalive,
            watch,
        };
    }

    fn ended(
        &mut self,
        session: SessionId,
        reason: EndReason,
        warning: Option<String>,
        retry_after: Option<u32>,
        now: Instant,
    ) {
        let current = match &self.phase {
            Phase::Calling { session: s, .. } => *s,
            Phase::Streaming { session: s, .. } => Some(*s),
            _ => return,
        };
        if current != Some(session) {
            return;
        }
        self.opener = None;
        if matches!(self.phase, Phase::Streaming { .. }) {
            self.actions.push_back(Action::StopStream);
        }
        let why = warning.map(|w| format!(" ({w})")).unwrap_or_default();
        match &reason {
            EndReason::Failed { status, reason } if is_media_refusal(*status) => {
                self.problem(
                    "call",
                    format!(
                        "the peer cannot take sensor streams: {status} {}{why}",
                        phrase(*status, reason)
                    ),
                );
                self.set_state(AgentState::Error);
            }
            EndReason::Failed { status, reason } => {
                self.problem(
                    "call",
                    format!(
                        "the collector refused the call: {status} {}{why}",
                        phrase(*status, reason)
                    ),
                );
            }
            EndReason::RemoteBye => tracing::info!("the collector ended the stream"),
            other => self.problem("call", format!("the session ended: {other:?}{why}")),
        }
        if self.state != AgentState::Error {
            let state = if self.registered || self.settings.registration.is_none() {
                AgentState::Registered
            } else {
                AgentState::Registering
            };
            self.set_state(state);
        }
        self.wait(now, retry_after.map(|s| Duration::from_secs(u64::from(s))));
    }

    /// Back off before the next call attempt: exponential with jitter, or
    /// the peer's Retry-After when it gave one (RFC 3261 21.5.4).
    fn wait(&mut self, now: Instant, retry_after: Option<Duration>) {
        if self.phase == Phase::Stopping {
            return;
        }
        self.call_deadline = None;
        let delay = match (retry_after, self.recall_delay()) {
            (Some(d), _) => d.min(self.settings.retry_max),
            (None, Some(d)) => d,
            (None, None) => self.backoff.next_delay(&mut self.ids),
        };
        if self.settings.collector.is_some() {
            tracing::info!(
                "calling the collector again in {:.1} s",
                delay.as_secs_f64()
            );
        }
        self.phase = Phase::Waiting { until: now + delay };
    }

    /// In-dialog BYEs and re-INVITEs refused since start (forged, or
    /// another caller's).
    pub fn refused_in_dialog(&self) -> u64 {
        self.refused_in_dialog
    }

    pub(super) fn set_state(&mut self, state: AgentState) {
        self.state = state;
        self.status.push_back(StatusChange::State(state));
    }

    /// One clear log line per distinct problem, not one per retry; the
    /// status shows each one as the last error.
    pub(super) fn problem(&mut self, source: &'static str, message: String) {
        if self.last_problem.as_deref() != Some(message.as_str()) {
            tracing::error!("{source}: {message}");
        }
        self.status.push_back(StatusChange::Error {
            source,
            message: message.clone(),
        });
        self.last_problem = Some(message);
    }

    fn solved(&mut self, source: &str) {
        if self.last_problem.take().is_some() {
            tracing::info!("{source}: working again");
        }
    }
}

/// The reason phrase without the status code the UA may have put in
/// front of it ("488 Not Acceptable Here"), so a log line says it once.
fn phrase(status: u16, reason: &str) -> &str {
    reason
        .strip_prefix(&status.to_string())
        .map_or(reason, str::trim_start)
}

/// Responses that mean "I cannot take this kind of stream" rather than
/// "not now" (RFC 3261 21.4.19, 21.6.4; RFC 3264 6).
fn is_media_refusal(status: u16) -> bool {
    matches!(status, 415 | 488 | 606)
}

fn summary(desc: &StreamDescription) -> String {
    let rate = desc
        .sample_rate_hz()
        .map(|r| format!("{r} Hz"))
        .unwrap_or_else(|| "no samples".into());
    let channels = desc
        .samples
        .as_ref()
        .map(|s| {
            s.channels
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let inputs = desc
        .events
        .as_ref()
        .map(|e| e.inputs.len())
        .unwrap_or_default();
    format!("{rate} [{channels}], {inputs} inputs, cfg {}", desc.config)
}
