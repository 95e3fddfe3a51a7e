//! The user agent core: transactions, dialogs and INVITE sessions behind
//! one sans-I/O interface, in the style of str0m's `Rtc`.
//!
//! The shell feeds it datagrams and stream-framed messages
//! ([`UserAgent::handle_input`]) and wakes it at [`UserAgent::poll_timeout`]
//! ([`UserAgent::handle_timeout`]); the TU (agent or collector) gives it
//! commands ([`UserAgent::call`], [`UserAgent::accept`], ...) and reads
//! [`Output`]s: bytes to send and [`UaEvent`]s. Session descriptions are
//! opaque bytes here; offer/answer lives in [`crate::sdp`]. Event
//! subscriptions (RFC 6665) live beside the sessions, in [`subscription`]. The tokio task
//! that runs it on sockets is `sipsensor-runtime`'s `ua_driver`.

mod challenged;
mod guard;
mod incoming;
mod outgoing;
mod registration;
mod screening;
mod session;
mod session_table;
mod subscription;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Request, Response, SipMessage};

pub use session::{EndReason, Role, SessionId, SessionState};
pub use subscription::{
    BodyCheck, DEFAULT_MAX_SUBSCRIPTIONS, EventPackage, MIN_EXPIRES, NotifyState, SubscriptionEnd,
    SubscriptionEvent, SubscriptionId, SubscriptionState, SubscriptionStatus, TerminatedReason,
};

use self::session::Session;
use self::session_table::SessionTable;
use self::subscription::{Screened, Subscriptions};
use super::dialog::DialogId;
use super::digest::{DigestClient, Password};
use super::locate::{LocateError, Resolver, locate};
use super::message::{Inbound, InspectConfig, inspect};
use super::registration::{RegistrationClient, RegistrationEvent};
use super::timers::TimerConfig;
use super::transaction::{
    ClientId, Output as TxOutput, ServerId, TransactionEvent, TransactionLayer,
};
use super::transport::stamp_received;
use super::{LocalEndpoint, Target, Transport, ipv6};
use crate::ids::IdGenerator;

/// The methods this user agent understands (RFC 3261 20.5 Allow).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";

#[derive(Debug, Clone)]
pub struct UaConfig {
    pub local: LocalEndpoint,
    /// Our address of record, the From of what we send.
    pub identity: String,
    pub display_name: Option<String>,
    /// Every out-of-dialog request goes here first (8.1.2), as a loose
    /// route.
    pub outbound_proxy: Option<String>,
    pub timers: TimerConfig,
    /// Product token for User-Agent and Server (20.41, 20.35).
    pub product: String,
    /// How long an unanswered INVITE of ours may ring before it is
    /// cancelled: a UA's version of a proxy's timer C (16.6 step 11).
    pub invite_timeout: Duration,
    /// Hand REGISTER requests to the TU (an embedded registrar) instead of
    /// answering 405.
    pub accept_register: bool,
    /// Username and password for INVITEs a proxy or the callee challenges
    /// (RFC 3261 22.2, RFC 8760).
    pub credentials: Option<(String, Password)>,
    /// The most server transactions kept at once (and apart, the most
    /// client ones); beyond, new requests get a stateless 503 (RFC 3261
    /// 21.5.4) and [`UaEvent::Refused`].
    pub max_transactions: usize,
    /// Hand in-dialog BYE and re-INVITE to the TU before they are
    /// answered ([`UaEvent::InDialogRequest`]): the dialog's identifiers
    /// travel in clear over UDP, so matching them proves nothing about
    /// who sent the request.
    pub screen_in_dialog: bool,
    /// Our TLS listener, when `local` is another transport: the Contact
    /// of a request or 2xx that travels over TLS names it (RFC 3261
    /// 12.1.1, RFC 5630 3.1.1), so that the peer's requests inside the
    /// dialog (ACK, BYE) come back over TLS and not in clear to a UDP
    /// port a TLS-only peer cannot reach.
    pub tls_local: Option<LocalEndpoint>,
    /// The event packages we subscribe to or serve (RFC 6665); none: a
    /// SUBSCRIBE gets 405 and a NOTIFY 481.
    pub event_packages: Vec<EventPackage>,
    /// The most subscriptions kept at once, both sides and those the TU
    /// has not answered yet; beyond, a SUBSCRIBE gets a stateless 503 and
    /// [`UaEvent::Refused`], and [`UserAgent::subscribe`] fails.
    pub max_subscriptions: usize,
}

/// The default [`UaConfig::max_transactions`]: a collector setting up
/// 10,000 sensors at once holds about two transactions per sensor for
/// 32 s (REGISTER and INVITE); a few kilobytes each.
pub const DEFAULT_MAX_TRANSACTIONS: usize = 50_000;

impl UaConfig {
    pub fn new(local: LocalEndpoint, identity: impl Into<String>) -> Self {
        Self {
            local,
            identity: identity.into(),
            display_name: None,
            outbound_proxy: None,
            timers: TimerConfig::default(),
            product: concat!("sipsensor/", env!("CARGO_PKG_VERSION")).to_owned(),
            invite_timeout: Duration::from_secs(180),
            accept_register: false,
            credentials: None,
            max_transactions: DEFAULT_MAX_TRANSACTIONS,
            screen_in_dialog: false,
            tls_local: None,
            event_packages: Vec::new(),
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
        }
    }
}

impl UaConfig {
    /// The Contact URI for a message that travels over `transport`: the
    /// TLS listener for TLS when there is one, else `local`.
    pub fn contact_for(&self, transport: Transport) -> String {
        match &self.tls_local {
            Some(tls) if transport == Transport::Tls => tls.contact_uri(None),
            _ => self.local.contact_uri(None),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UaError {
    #[error("not a SIP URI: {0}")]
    BadUri(String),
    #[error(transparent)]
    Locate(#[from] LocateError),
    #[error("no such session {0}")]
    UnknownSession(SessionId),
    #[error("session {session} is {state:?}; cannot {action}")]
    WrongState {
        session: SessionId,
        state: SessionState,
        action: &'static str,
    },
    #[error("an offer/answer exchange is already in progress in session {0}")]
    OfferPending(SessionId),
    #[error("no such request awaiting an answer")]
    UnknownRequest,
    #[error("transaction layer: {0}")]
    Transaction(#[from] super::transaction::TransactionError),
    #[error("dialog: {0}")]
    Dialog(#[from] super::dialog::DialogError),
    #[error("registration: {0}")]
    Registration(#[from] super::registration::RegistrationError),
    #[error("event package {0} is not configured")]
    UnknownEvent(String),
    #[error("no such subscription {0}")]
    UnknownSubscription(SubscriptionId),
    #[error("subscription {0} is not in a state for this")]
    SubscriptionNotActive(SubscriptionId),
    #[error("{0} subscriptions already")]
    TooManySubscriptions(usize),
}

/// What happened, for the TU.
#[derive(Debug, Clone, PartialEq)]
pub enum UaEvent {
    /// A new INVITE: answer with [`UserAgent::accept`] or
    /// [`UserAgent::reject`]. The TU checks `source` and the request
    /// (authentication, trusted callers) before accepting.
    IncomingCall {
        session: SessionId,
        request: Request,
        source: Target,
        offer: Vec<u8>,
    },
    /// A BYE or re-INVITE inside a session, not yet answered nor counted
    /// by the dialog (only with [`UaConfig::screen_in_dialog`]): let it
    /// through with [`UserAgent::admit_in_dialog`] or answer it once with
    /// [`UserAgent::refuse_in_dialog`] (a challenge, 403).
    /// `on_dialog_flow`: it came on the TCP or TLS connection the session
    /// was set up on.
    InDialogRequest {
        session: SessionId,
        id: ServerId,
        request: Request,
        source: Target,
        on_dialog_flow: bool,
    },
    /// A provisional response to our INVITE.
    Progress { session: SessionId, status: u16 },
    /// Our INVITE was answered with a 2xx; the body is the answer.
    Answered { session: SessionId, answer: Vec<u8> },
    /// The ACK for our 2xx arrived: media may flow both ways.
    Confirmed { session: SessionId },
    /// The peer sends a new offer (re-INVITE); answer with
    /// [`UserAgent::answer_reoffer`].
    ReofferReceived { session: SessionId, offer: Vec<u8> },
    /// Our re-INVITE was accepted; the body is the answer.
    ReofferAnswered { session: SessionId, answer: Vec<u8> },
    /// Our re-INVITE was refused; the session goes on unchanged (14.1).
    ReofferRejected {
        session: SessionId,
        status: u16,
        warning: Option<String>,
    },
    /// The session is over. For a failed call, `status`, `warning` and
    /// `retry_after` say why.
    Ended {
        session: SessionId,
        reason: EndReason,
        warning: Option<String>,
        retry_after: Option<u32>,
    },
    /// An answer to an OPTIONS ping (None: timed out or unreachable).
    OptionsResult {
        session: Option<SessionId>,
        status: Option<u16>,
    },
    /// A request for the TU to answer with [`UserAgent::respond`]
    /// (REGISTER when `accept_register` is on).
    Request {
        id: ServerId,
        request: Request,
        source: Target,
    },
    /// A response to a request sent with [`UserAgent::send_request`].
    Response {
        id: ClientId,
        response: Option<Response>,
    },
    /// Our registration's progress.
    Registration(RegistrationEvent),
    /// A subscription's progress, either side (RFC 6665).
    Subscription(SubscriptionEvent),
    /// A message that could not be processed; already answered when it
    /// was a request that could be answered. For counters and logs.
    Malformed { source: Target, reason: String },
    /// A well-formed request the stack answered itself, statelessly, with
    /// `status`: 503 when full ([`UaConfig::max_transactions`]), 416 for
    /// a `sips:` Request-URI over a transport that is not TLS. For
    /// counters and logs.
    Refused {
        source: Target,
        status: u16,
        reason: String,
    },
}

// Events carry whole requests but are rare next to transmits; boxing them
// would cost an allocation on every event for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Transmit { target: Target, bytes: Vec<u8> },
    Event(UaEvent),
}

/// What a client transaction of ours is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Invite(SessionId),
    Reinvite(SessionId),
    Bye,
    Cancel,
    Options(Option<SessionId>),
    /// Sent by the TU through [`UserAgent::send_request`].
    Tu,
    /// Our own REGISTER.
    Register,
    /// A SUBSCRIBE of ours: initial, refresh or unsubscribe.
    Subscribe(subscription::SubscriptionId),
    /// A NOTIFY of ours.
    Notify(subscription::SubscriptionId),
}

pub struct UserAgent {
    config: UaConfig,
    ids: IdGenerator,
    layer: TransactionLayer,
    resolver: Box<dyn Resolver + Send>,
    digest: Option<DigestClient>,
    registration: Option<RegistrationClient>,
    next_session: u64,
    sessions: SessionTable,
    by_dialog: HashMap<DialogId, SessionId>,
    by_server: HashMap<ServerId, SessionId>,
    clients: HashMap<ClientId, Purpose>,
    /// In-dialog requests the TU has not screened yet.
    screening: HashMap<ServerId, (Screened, Request)>,
    /// Our in-dialog BYE and re-INVITE, and our SUBSCRIBE and NOTIFY, as
    /// sent, while unanswered: a challenge is answered from them (22.2).
    in_dialog_sent: HashMap<ClientId, (Request, Target)>,
    subscriptions: Subscriptions,
    out: VecDeque<Output>,
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgent")
            .field("identity", &self.config.identity)
            .field("sessions", &self.sessions.len())
            .field("transactions", &self.layer.len())
            .finish()
    }
}

impl UserAgent {
    pub fn new(
        config: UaConfig,
        ids: IdGenerator,
        resolver: Box<dyn Resolver + Send>,
    ) -> Result<Self, UaError> {
        parse_uri(&config.identity)?;
        if let Some(proxy) = &config.outbound_proxy {
            parse_uri(proxy)?;
        }
        let digest = config
            .credentials
            .as_ref()
            .map(|(user, password)| DigestClient::new(user.clone(), password.clone()));
        let mut layer = TransactionLayer::new(config.timers);
        layer.set_limit(config.max_transactions);
        Ok(Self {
            digest,
            registration: None,
            layer,
            config,
            ids,
            resolver,
            next_session: 0,
            sessions: SessionTable::default(),
            by_dialog: HashMap::new(),
            by_server: HashMap::new(),
            clients: HashMap::new(),
            screening: HashMap::new(),
            in_dialog_sent: HashMap::new(),
            subscriptions: Subscriptions::default(),
            out: VecDeque::new(),
        })
    }

    pub fn config(&self) -> &UaConfig {
        &self.config
    }

    /// The public address learnt from `received`/`rport` moves our Via and
    /// Contact (RFC 3581 section 4).
    pub fn set_local(&mut self, local: LocalEndpoint) {
        self.config.local = local;
    }

    /// New credentials (a fixed secrets file, SIGHUP): cached challenges
    /// are dropped.
    pub fn set_credentials(&mut self, credentials: Option<(String, Password)>) {
        self.digest = credentials
            .as_ref()
            .map(|(user, password)| DigestClient::new(user.clone(), password.clone()));
        self.config.credentials = credentials;
    }

    pub fn ids(&mut self) -> &mut IdGenerator {
        &mut self.ids
    }

    pub fn session_state(&self, session: SessionId) -> Option<SessionState> {
        self.sessions.get(&session).map(|s| s.state)
    }

    /// The Call-ID of a session (for status displays and logs).
    pub fn call_id(&self, session: SessionId) -> Option<String> {
        let invite = self.sessions.get(&session)?.invite.as_ref()?;
        invite.headers.iter().find_map(|h| match h {
            Header::CallId(c) => Some(c.value().to_owned()),
            _ => None,
        })
    }

    /// A session's dialog tags, ours then the peer's (for tests that
    /// play an eavesdropper, and for logs).
    pub fn dialog_tags(&self, session: SessionId) -> Option<(String, String)> {
        let id = &self.sessions.get(&session)?.dialog.as_ref()?.id;
        Some((id.local_tag.clone(), id.remote_tag.clone()))
    }

    pub fn session_role(&self, session: SessionId) -> Option<Role> {
        self.sessions.get(&session).map(|s| s.role)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// A message from the network: a datagram, or one message framed from
    /// a stream. It goes through the stack's entry point
    /// ([`crate::sip::message::inspect`]) first: what cannot be processed
    /// is answered there (400, 416, 501, 505 ...) or discarded, and
    /// reported as [`UaEvent::Malformed`].
    pub fn handle_input(&mut self, bytes: &[u8], source: Target, now: Instant) {
        let internal = ipv6_head_to_internal(bytes);
        let mut config = InspectConfig::new(source.transport);
        if self.config.accept_register {
            config.allow.push(rsip::Method::Register);
        }
        if self.config.event_packages.iter().any(|p| p.notifier) {
            config.allow.push(rsip::Method::Subscribe);
        }
        if !self.config.event_packages.is_empty() {
            config.allow.push(rsip::Method::Notify);
        }
        for package in &self.config.event_packages {
            config.accept.push(package.content_type.clone());
        }
        config.warning_agent = self.config.local.host_port();
        let message = match inspect(&internal, &config, &mut self.ids) {
            Inbound::Request(request) if !self.scheme_fits_transport(&request, source) => {
                self.refuse_insecure_sips(&request, source);
                self.pump(now);
                return;
            }
            Inbound::Request(request) => SipMessage::Request(request),
            Inbound::Response(response) => SipMessage::Response(response),
            Inbound::Reject { response, reason } => {
                // Answered statelessly, back where it came from (18.2.2).
                self.layer
                    .send_stateless(SipMessage::Response(response), source);
                self.event(UaEvent::Malformed {
                    source,
                    reason: reason.to_string(),
                });
                self.pump(now);
                return;
            }
            Inbound::Discard(reason) => {
                self.event(UaEvent::Malformed {
                    source,
                    reason: reason.to_string(),
                });
                return;
            }
        };
        let mut message = message;
        // 18.2.1 and RFC 3581 4: note where the request really came from, so
        // the response goes back through any NAT.
        if let SipMessage::Request(request) = &mut message
            && let Err(e) = stamp_received(request, source.addr)
        {
            self.event(UaEvent::Malformed {
                source,
                reason: e.to_string(),
            });
            return;
        }
        if let Err(e) = self.layer.handle_message(message, source, now) {
            self.event(UaEvent::Malformed {
                source,
                reason: e.to_string(),
            });
        }
        self.pump(now);
    }

    /// The transport could not reach `target`.
    pub fn handle_transport_error(&mut self, target: Target, now: Instant) {
        self.layer.handle_transport_error(target);
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        if let Some(client) = self.registration.as_mut() {
            client.handle_timeout(now);
        }
        self.pump(now);
        for id in self.sessions.due(now) {
            self.session_timeout(id, now);
        }
        self.subscription_timeouts(now);
        self.pump(now);
        let layer = &self.layer;
        self.clients
            .retain(|id, _| layer.client_state(*id).is_some());
        self.in_dialog_sent
            .retain(|id, _| layer.client_state(*id).is_some());
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let registration = self.registration.as_ref().and_then(|c| c.poll_timeout());
        self.sessions
            .next_timeout()
            .into_iter()
            .chain(self.subscriptions.table.next_timeout())
            .chain(self.layer.poll_timeout())
            .chain(registration)
            .min()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Answers a request handed up in [`UaEvent::Request`].
    pub fn respond(
        &mut self,
        id: ServerId,
        response: Response,
        now: Instant,
    ) -> Result<(), UaError> {
        self.layer.respond(id, response, now)?;
        self.pump(now);
        Ok(())
    }

    /// Sends an out-of-dialog request the TU built itself (REGISTER from
    /// the registration client): it goes to the outbound proxy when there
    /// is one, else to its Request-URI. The answer comes back as
    /// [`UaEvent::Response`].
    pub fn send_request(&mut self, request: Request, now: Instant) -> Result<ClientId, UaError> {
        let target = self.out_of_dialog_target(&request.uri)?;
        let id = self.layer.send_request(request, target, now)?;
        self.clients.insert(id, Purpose::Tu);
        self.pump(now);
        Ok(id)
    }

    /// Where an out-of-dialog request for `uri` goes first (8.1.2).
    fn out_of_dialog_target(&self, uri: &rsip::Uri) -> Result<Target, UaError> {
        let next_hop = match &self.config.outbound_proxy {
            Some(proxy) => parse_uri(proxy)?,
            None => uri.clone(),
        };
        Ok(locate(&next_hop, self.resolver.as_ref())?)
    }

    fn fresh_session(&mut self, session: Session) -> SessionId {
        self.next_session += 1;
        let id = SessionId(self.next_session);
        self.sessions.insert(id, session);
        id
    }

    fn event(&mut self, event: UaEvent) {
        self.out.push_back(Output::Event(event));
    }

    /// Moves the transaction layer's and the registration's output into
    /// ours until both are quiet.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut moved = self.drive_registration(now);
            while let Some(output) = self.layer.poll_output() {
                moved = true;
                match output {
                    TxOutput::Transmit(t) => self.out.push_back(Output::Transmit {
                        target: t.target,
                        bytes: serialize(&t.message),
                    }),
                    TxOutput::Event(event) => self.transaction_event(event, now),
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn transaction_event(&mut self, event: TransactionEvent, now: Instant) {
        match event {
            TransactionEvent::Request {
                id,
                request,
                source,
            } => self.incoming_request(id, request, source, now),
            TransactionEvent::Ack { request, .. } => self.incoming_ack(&request),
            TransactionEvent::Response { id, response } => {
                self.client_response(id, Some(response), now)
            }
            TransactionEvent::StrayResponse { response, .. } => self.stray_response(&response),
            TransactionEvent::Timeout { id } | TransactionEvent::TransportError { id } => {
                self.client_response(id, None, now)
            }
            // Our failure was never acknowledged: the session is already
            // over; nothing more to do (17.2.1).
            TransactionEvent::AckTimeout { .. } => {}
            TransactionEvent::Refused { request, source } => self.event(UaEvent::Refused {
                source,
                status: 503,
                reason: format!(
                    "{} refused: {} server transactions pending",
                    request.method,
                    self.layer.server_count()
                ),
            }),
        }
    }

    fn end(
        &mut self,
        id: SessionId,
        reason: EndReason,
        warning: Option<String>,
        retry_after: Option<u32>,
    ) {
        if let Some(mut session) = self.sessions.remove(&id) {
            session.state = SessionState::Terminated;
            if let Some(dialog) = &session.dialog {
                self.by_dialog.remove(&dialog.id);
            }
            if let Some(tx) = session.server_tx {
                self.by_server.remove(&tx);
            }
            self.event(UaEvent::Ended {
                session: id,
                reason,
                warning,
                retry_after,
            });
        }
    }

    fn base_headers(&self) -> Headers {
        let mut headers = Headers::default();
        headers.push(Header::UserAgent(rsip::headers::UserAgent::new(
            self.config.product.clone(),
        )));
        headers.push(Header::Allow(rsip::headers::Allow::new(self.allow())));
        headers
    }
}

/// Parses a URI as the stack holds it (IPv6 references mapped, see
/// [`ipv6`]).
pub(crate) fn parse_uri(text: &str) -> Result<rsip::Uri, UaError> {
    let bare = text.trim().trim_start_matches('<').trim_end_matches('>');
    let bad = || UaError::BadUri(text.to_owned());
    // rsip accepts almost anything; a URI we can use has a sip: or sips:
    // scheme, a host, and no white space (RFC 3261 25.1).
    let scheme_ok = bare
        .get(..4)
        .is_some_and(|s| s.eq_ignore_ascii_case("sip:"))
        || bare
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("sips:"));
    if !scheme_ok || bare.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let internal = ipv6::to_internal(bare);
    let uri = rsip::Uri::try_from(internal.as_ref()).map_err(|_| bad())?;
    if uri.host_with_port.host.to_string().is_empty() {
        return Err(bad());
    }
    Ok(uri)
}

/// A message on its way out, with IPv6 references restored.
pub fn serialize(message: &SipMessage) -> Vec<u8> {
    match message {
        SipMessage::Request(r) => serialize_parts(&request_head(r), &r.body),
        SipMessage::Response(r) => serialize_parts(&response_head(r), &r.body),
    }
}

fn request_head(r: &Request) -> String {
    format!("{} {} {}\r\n{}\r\n", r.method, r.uri, r.version, r.headers)
}

fn response_head(r: &Response) -> String {
    let status = super::response::status_line(&r.status_code);
    format!("{} {status}\r\n{}\r\n", r.version, r.headers)
}

fn serialize_parts(head: &str, body: &[u8]) -> Vec<u8> {
    let head = ipv6::to_wire(head);
    let mut bytes = Vec::with_capacity(head.len() + body.len());
    bytes.extend_from_slice(head.as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Received bytes with the IPv6 references of their head in the stack's
/// internal form ([`ipv6`]); the body is untouched.
fn ipv6_head_to_internal(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let head_len = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |at| at + 4);
    let Ok(head) = std::str::from_utf8(&bytes[..head_len]) else {
        return std::borrow::Cow::Borrowed(bytes);
    };
    match ipv6::to_internal(head) {
        std::borrow::Cow::Borrowed(_) => std::borrow::Cow::Borrowed(bytes),
        std::borrow::Cow::Owned(mapped) => {
            let mut out = mapped.into_bytes();
            out.extend_from_slice(&bytes[head_len..]);
            std::borrow::Cow::Owned(out)
        }
    }
}

fn warning_text(response: &Response) -> Option<String> {
    response.headers.iter().find_map(|h| match h {
        Header::Warning(w) => Some(w.value().to_owned()),
        _ => None,
    })
}

fn retry_after(response: &Response) -> Option<u32> {
    response.headers.iter().find_map(|h| match h {
        Header::RetryAfter(r) => r
            .value()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok(),
        _ => None,
    })
}
