//! The transaction layer (RFC 3261 section 17), sans-I/O.
//!
//! Feed it received messages ([`TransactionLayer::handle_message`]), the
//! TU's requests and responses ([`TransactionLayer::send_request`],
//! [`TransactionLayer::respond`]) and the passing of time
//! ([`TransactionLayer::handle_timeout`]); drain what to send and what
//! happened with [`TransactionLayer::poll_output`], and sleep until
//! [`TransactionLayer::poll_timeout`].

mod client;
mod key;
mod server;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rsip::prelude::*;
use rsip::{Method, Request, Response, SipMessage};

pub use client::ClientState;
pub use server::ServerState;

use self::client::ClientTransaction;
use self::key::{ClientKey, ServerKey};
use self::server::ServerTransaction;
use super::timers::TimerConfig;
use super::{Target, Transport};

/// Names a client transaction for the lifetime of the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u64);

/// Names a server transaction for the lifetime of the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(u64);

impl ServerId {
    /// A server transaction id from its number: for tests of code that
    /// consumes the user agent's events.
    pub fn from_raw(n: u64) -> Self {
        Self(n)
    }
}

/// Either kind of transaction, as an entry of the deadline index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TxRef {
    Client(ClientId),
    Server(ServerId),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransactionError {
    #[error("the message has no {0} header")]
    MissingHeader(&'static str),
    #[error("the {0} header cannot be read")]
    BadHeader(&'static str),
    #[error("the top Via has no branch parameter")]
    MissingBranch,
    #[error("a client transaction with this branch and method already exists")]
    DuplicateBranch,
    #[error("no such transaction (it may have terminated)")]
    UnknownTransaction,
    #[error("cannot {action} in state {state}")]
    InvalidState { state: String, action: String },
    #[error("an ACK has no transaction: send it with send_stateless")]
    AckIsNotATransaction,
    #[error("{0} client transactions are pending, the most this layer keeps")]
    Full(usize),
    /// RFC 3261 26.2.2, RFC 5630 3.1.3: a `sips:` Request-URI travels over
    /// TLS on every hop, never in clear text.
    #[error("a sips: request cannot go over {0}")]
    SipsOverInsecure(Transport),
}

/// RFC 3261 26.2.2: a request for a `sips:` URI leaves only over TLS.
fn allowed_over(request: &Request, transport: Transport) -> Result<(), TransactionError> {
    if matches!(request.uri.scheme, Some(rsip::Scheme::Sips)) && !transport.is_secure() {
        return Err(TransactionError::SipsOverInsecure(transport));
    }
    Ok(())
}

/// A message to put on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Transmit {
    pub target: Target,
    pub message: SipMessage,
}

/// What the layer tells its transaction user.
#[derive(Debug, Clone, PartialEq)]
pub enum TransactionEvent {
    /// A new request created a server transaction; answer it with
    /// [`TransactionLayer::respond`].
    Request {
        id: ServerId,
        request: Request,
        source: Target,
    },
    /// An ACK that belongs to no failure response: the ACK for a 2xx,
    /// which the dialog layer consumes (13.3.1.4, 17.2.3).
    Ack { request: Request, source: Target },
    /// A response for one of our client transactions: provisionals, the
    /// final response, and for INVITE every 2xx (RFC 6026 7.2).
    Response { id: ClientId, response: Response },
    /// A response matching no client transaction (18.1.2): a 2xx
    /// retransmission after the transaction ended still needs an ACK.
    StrayResponse { response: Response, source: Target },
    /// Timer B or F fired: the TU treats this as a 408 (8.1.3.1).
    Timeout { id: ClientId },
    /// The transport failed for a client transaction (8.1.3.1: as a 503).
    TransportError { id: ClientId },
    /// Timer H fired: our failure response was never acknowledged.
    AckTimeout { id: ServerId },
    /// A new request found the layer full ([`TransactionLayer::set_limit`]):
    /// it got a stateless 503 with Retry-After and no transaction.
    Refused { request: Request, source: Target },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Transmit(Transmit),
    Event(TransactionEvent),
}

#[derive(Debug)]
pub struct TransactionLayer {
    timers: TimerConfig,
    next_id: u64,
    clients: HashMap<ClientId, ClientTransaction>,
    client_keys: HashMap<ClientKey, ClientId>,
    servers: HashMap<ServerId, ServerTransaction>,
    server_keys: HashMap<ServerKey, ServerId>,
    /// Every live transaction's next timer, earliest first, and the entry
    /// each one has there: a collector holds thousands of transactions (a
    /// server transaction lives 32 s after its final response), so neither
    /// a message nor the next wake-up may cost a scan of all of them.
    deadlines: BTreeSet<(Instant, TxRef)>,
    scheduled: HashMap<TxRef, Instant>,
    /// The most transactions of each kind kept at once: each holds its
    /// request and last response for up to 64*T1, so a flood of requests
    /// would otherwise grow memory without bound. Counted apart, so that
    /// a flood of requests cannot stop our own (a BYE, a re-REGISTER).
    limit: usize,
    out: VecDeque<Output>,
}

/// What a full layer tells the client to wait, in seconds (RFC 3261
/// 21.5.4): about two transaction lifetimes, when the flood's own
/// transactions are gone.
pub const FULL_RETRY_AFTER_SECS: u32 = 60;

impl TransactionLayer {
    pub fn new(timers: TimerConfig) -> Self {
        Self {
            timers,
            next_id: 0,
            clients: HashMap::new(),
            client_keys: HashMap::new(),
            servers: HashMap::new(),
            server_keys: HashMap::new(),
            deadlines: BTreeSet::new(),
            scheduled: HashMap::new(),
            limit: usize::MAX,
            out: VecDeque::new(),
        }
    }

    /// Keep at most `limit` server and `limit` client transactions;
    /// beyond, new requests get a stateless 503 and
    /// [`TransactionLayer::send_request`] fails.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Starts a client transaction for `request`, whose top Via carries a
    /// fresh branch (8.1.1.7).
    pub fn send_request(
        &mut self,
        request: Request,
        target: Target,
        now: Instant,
    ) -> Result<ClientId, TransactionError> {
        if request.method == Method::Ack {
            return Err(TransactionError::AckIsNotATransaction);
        }
        allowed_over(&request, target.transport)?;
        let key = ClientKey::of_request(&request)?;
        if self.client_keys.contains_key(&key) {
            return Err(TransactionError::DuplicateBranch);
        }
        if self.clients.len() >= self.limit {
            return Err(TransactionError::Full(self.clients.len()));
        }
        let id = ClientId(self.fresh_id());
        let tx = ClientTransaction::start(id, request, target, &self.timers, now, &mut self.out);
        self.client_keys.insert(key, id);
        self.clients.insert(id, tx);
        self.settle(TxRef::Client(id));
        Ok(id)
    }

    /// Sends a message outside any transaction: the ACK for a 2xx and the
    /// TU's 2xx retransmissions after timer L (13.3.1.4, 17.1.1.3).
    /// An ACK for a `sips:` URI over a non-TLS target is not sent (26.2.2).
    pub fn send_stateless(&mut self, message: SipMessage, target: Target) {
        if let SipMessage::Request(request) = &message
            && allowed_over(request, target.transport).is_err()
        {
            return;
        }
        self.out
            .push_back(Output::Transmit(Transmit { target, message }));
    }

    /// Answers the request of a server transaction once and forgets the
    /// transaction: no retransmission of the response, no 100 Trying, no
    /// state kept. A retransmitted request is then a new one and gets its
    /// own answer, so each request received yields one response. The TU
    /// may answer so (17.2.1 for INVITE, as a stateless proxy's 16.11
    /// replies) when it keeps nothing for the request: a challenge or a
    /// refusal to a peer it does not know.
    pub fn respond_statelessly(
        &mut self,
        id: ServerId,
        response: Response,
    ) -> Result<(), TransactionError> {
        let tx = self
            .servers
            .get(&id)
            .ok_or(TransactionError::UnknownTransaction)?;
        let target = tx.response_target();
        self.send_stateless(SipMessage::Response(response), target);
        if let Some(at) = self.scheduled.remove(&TxRef::Server(id)) {
            self.deadlines.remove(&(at, TxRef::Server(id)));
        }
        self.forget(TxRef::Server(id));
        Ok(())
    }

    /// Answers the request of a server transaction.
    pub fn respond(
        &mut self,
        id: ServerId,
        response: Response,
        now: Instant,
    ) -> Result<(), TransactionError> {
        let tx = self
            .servers
            .get_mut(&id)
            .ok_or(TransactionError::UnknownTransaction)?;
        let result = tx.respond(response, &self.timers, now, &mut self.out);
        self.settle(TxRef::Server(id));
        result
    }

    /// The request of a live client transaction (to build a CANCEL, 9.1).
    pub fn client_request(&self, id: ClientId) -> Option<&Request> {
        self.clients.get(&id).map(|t| t.request())
    }

    pub fn client_state(&self, id: ClientId) -> Option<ClientState> {
        self.clients.get(&id).map(|t| t.state())
    }

    pub fn client_target(&self, id: ClientId) -> Option<Target> {
        self.clients.get(&id).map(|t| t.target())
    }

    #[cfg(test)]
    pub fn server_state(&self, id: ServerId) -> Option<ServerState> {
        self.servers.get(&id).map(|t| t.state())
    }

    /// Where the responses of a server transaction go (18.2.2).
    pub fn server_target(&self, id: ServerId) -> Option<Target> {
        self.servers.get(&id).map(|t| t.response_target())
    }

    /// The INVITE server transaction a CANCEL refers to (9.2).
    pub fn invite_for_cancel(&self, cancel: &Request) -> Option<ServerId> {
        let key = ServerKey::invite_of_cancel(cancel).ok()?;
        self.server_keys.get(&key).copied()
    }

    /// A message from the network, already checked by
    /// [`crate::sip::message`]. Matching per 17.1.3 and 17.2.3.
    pub fn handle_message(
        &mut self,
        message: SipMessage,
        source: Target,
        now: Instant,
    ) -> Result<(), TransactionError> {
        match message {
            SipMessage::Response(response) => {
                let key = ClientKey::of_response(&response)?;
                let id = self.client_keys.get(&key).copied();
                match id.and_then(|id| self.clients.get_mut(&id)) {
                    Some(tx) => tx.on_response(response, &self.timers, now, &mut self.out),
                    None => self.event(TransactionEvent::StrayResponse { response, source }),
                }
                if let Some(id) = id {
                    self.settle(TxRef::Client(id));
                }
            }
            SipMessage::Request(request) => {
                let key = ServerKey::of_request(&request)?;
                let existing = self.server_keys.get(&key).copied();
                match (request.method, existing) {
                    (Method::Ack, Some(id)) => {
                        let to_tu = self
                            .servers
                            .get_mut(&id)
                            .is_some_and(|tx| tx.on_ack(&self.timers, now));
                        if to_tu {
                            self.event(TransactionEvent::Ack { request, source });
                        }
                        self.settle(TxRef::Server(id));
                    }
                    (Method::Ack, None) => self.event(TransactionEvent::Ack { request, source }),
                    (_, Some(id)) => {
                        if let Some(tx) = self.servers.get_mut(&id) {
                            tx.on_retransmission(&mut self.out);
                        }
                        self.settle(TxRef::Server(id));
                    }
                    (_, None) if self.servers.len() >= self.limit => {
                        self.refuse_full(request, source)
                    }
                    (_, None) => {
                        let id = ServerId(self.fresh_id());
                        let target = response_target(&request, source);
                        let tx = ServerTransaction::new(id, request.clone(), target, now);
                        self.server_keys.insert(key, id);
                        self.servers.insert(id, tx);
                        self.settle(TxRef::Server(id));
                        self.event(TransactionEvent::Request {
                            id,
                            request,
                            source,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The transport could not deliver to `target`: every client
    /// transaction waiting on it fails (17.1.4).
    pub fn handle_transport_error(&mut self, target: Target) {
        // Rare (a refused TCP connection, an ICMP error): a scan is fine.
        let failed: Vec<ClientId> = self
            .clients
            .iter_mut()
            .filter(|(_, t)| t.target() == target)
            .map(|(id, t)| {
                t.on_transport_error(&mut self.out);
                *id
            })
            .collect();
        for id in failed {
            self.settle(TxRef::Client(id));
        }
    }

    /// Fires every timer due at `now`, each transaction once per call.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<TxRef> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, r)| *r)
            .collect();
        for r in due {
            match r {
                TxRef::Client(id) => {
                    if let Some(tx) = self.clients.get_mut(&id) {
                        tx.on_timeout(&self.timers, now, &mut self.out);
                    }
                }
                TxRef::Server(id) => {
                    if let Some(tx) = self.servers.get_mut(&id) {
                        tx.on_timeout(&self.timers, now, &mut self.out);
                    }
                }
            }
            self.settle(r);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Live server transactions.
    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// Live transactions, for statistics and tests.
    pub fn len(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn event(&mut self, event: TransactionEvent) {
        self.out.push_back(Output::Event(event));
    }

    /// RFC 3261 21.5.4: 503 with Retry-After, sent without a transaction.
    fn refuse_full(&mut self, request: Request, source: Target) {
        let mut busy = super::response::response_to(
            &request,
            rsip::StatusCode::ServiceUnavailable,
            // 8.2.6.2 wants a To tag; no dialog can come of this one.
            Some("full"),
        );
        busy.headers
            .push(rsip::Header::RetryAfter(rsip::headers::RetryAfter::new(
                FULL_RETRY_AFTER_SECS.to_string(),
            )));
        let target = response_target(&request, source);
        self.send_stateless(SipMessage::Response(busy), target);
        self.event(TransactionEvent::Refused { request, source });
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// After anything touched transaction `r`: forgets it once terminated,
    /// else files its next timer in the deadline index.
    fn settle(&mut self, r: TxRef) {
        let (next, terminated) = match r {
            TxRef::Client(id) => match self.clients.get(&id) {
                Some(t) => (t.next_timeout(), t.state() == ClientState::Terminated),
                None => (None, true),
            },
            TxRef::Server(id) => match self.servers.get(&id) {
                Some(t) => (t.next_timeout(), t.state() == ServerState::Terminated),
                None => (None, true),
            },
        };
        let next = if terminated { None } else { next };
        if self.scheduled.get(&r).copied() != next {
            if let Some(old) = self.scheduled.remove(&r) {
                self.deadlines.remove(&(old, r));
            }
            if let Some(at) = next {
                self.scheduled.insert(r, at);
                self.deadlines.insert((at, r));
            }
        }
        if terminated {
            self.forget(r);
        }
    }

    fn forget(&mut self, r: TxRef) {
        match r {
            TxRef::Client(id) => {
                if let Some(tx) = self.clients.remove(&id) {
                    match ClientKey::of_request(tx.request()) {
                        Ok(key) if self.client_keys.get(&key) == Some(&id) => {
                            self.client_keys.remove(&key);
                        }
                        // Not where it was filed (cannot happen: the key
                        // was computed from this request): look for it.
                        _ => self.client_keys.retain(|_, k| *k != id),
                    }
                }
            }
            TxRef::Server(id) => {
                if let Some(tx) = self.servers.remove(&id) {
                    match ServerKey::of_request(tx.request()) {
                        Ok(key) if self.server_keys.get(&key) == Some(&id) => {
                            self.server_keys.remove(&key);
                        }
                        _ => self.server_keys.retain(|_, k| *k != id),
                    }
                }
            }
        }
    }
}

/// Where a server transaction sends its responses (RFC 3261 18.2.2,
/// RFC 3581 section 5): back over the same connection for reliable
/// transports; over UDP to the source IP (what `received` records), at the
/// source port when the client asked for `rport`, else at the sent-by port
/// (5060 by default). `maddr` (multicast) is not supported.
pub fn response_target(request: &Request, source: Target) -> Target {
    if source.transport.is_reliable() {
        return source;
    }
    let Some(via) = request.via_header().ok().and_then(|v| v.typed().ok()) else {
        return source;
    };
    let asked_rport = via.params.iter().any(
        |p| matches!(p, rsip::Param::Other(name, _) if name.value().eq_ignore_ascii_case("rport")),
    );
    if asked_rport {
        return source;
    }
    let port = via
        .sent_by()
        .host_with_port
        .port
        .map(|p| *p.value())
        .unwrap_or(source.transport.default_port());
    Target::new(source.transport, SocketAddr::new(source.addr.ip(), port))
}

#[cfg(test)]
mod tests;
