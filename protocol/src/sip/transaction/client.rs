//! Client transactions: INVITE (RFC 3261 17.1.1, with RFC 6026's Accepted
//! state) and non-INVITE (17.1.2).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use rsip::{Header, Headers, Method, Request, Response, SipMessage};

use super::{ClientId, Output, TransactionEvent, Transmit};
use crate::sip::Target;
use crate::sip::timers::TimerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, nothing heard yet (17.1.1.2); "Trying" for non-INVITE.
    Calling,
    Proceeding,
    Completed,
    /// RFC 6026 section 7.2: after a 2xx, absorb nothing, pass every 2xx
    /// (retransmissions and forks) up so the dialog layer can ACK them.
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub(super) struct ClientTransaction {
    id: ClientId,
    invite: bool,
    state: ClientState,
    request: Request,
    target: Target,
    /// Timer A or E: when to retransmit next and the interval just used.
    retransmit: Option<(Instant, Duration)>,
    /// Timer B or F.
    give_up_at: Option<Instant>,
    /// Timer D, K or M.
    terminate_at: Option<Instant>,
    /// The ACK for a non-2xx final response, resent on its retransmissions.
    ack: Option<Request>,
}

impl ClientTransaction {
    pub fn start(
        id: ClientId,
        request: Request,
        target: Target,
        timers: &TimerConfig,
        now: Instant,
        out: &mut VecDeque<Output>,
    ) -> Self {
        let invite = request.method == Method::Invite;
        // Timers A/E run only over unreliable transports (17.1.1.2, 17.1.2.2);
        // B/F run always.
        let retransmit = (!target.transport.is_reliable()).then(|| (now + timers.t1, timers.t1));
        out.push_back(transmit(target, request.clone()));
        Self {
            id,
            invite,
            state: ClientState::Calling,
            request,
            target,
            retransmit,
            give_up_at: Some(now + timers.transaction_timeout()),
            terminate_at: None,
            ack: None,
        }
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    pub fn target(&self) -> Target {
        self.target
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        [
            self.retransmit.map(|(at, _)| at),
            self.give_up_at,
            self.terminate_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn on_response(
        &mut self,
        response: Response,
        timers: &TimerConfig,
        now: Instant,
        out: &mut VecDeque<Output>,
    ) {
        let code = response.status_code.code();
        let reliable = self.target.transport.is_reliable();
        use ClientState::*;
        match (self.invite, self.state, code) {
            // Provisional responses stop INVITE retransmissions and timer B
            // (17.1.1.2); for non-INVITE, E keeps firing at T2 (17.1.2.2).
            (_, Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                if self.invite {
                    self.retransmit = None;
                    self.give_up_at = None;
                }
                self.pass_up(response, out);
            }
            (true, Calling | Proceeding, 200..=299) => {
                // RFC 6026 7.2: Accepted, timer M = 64*T1.
                self.state = Accepted;
                self.retransmit = None;
                self.give_up_at = None;
                self.terminate_at = Some(now + timers.transaction_timeout());
                self.pass_up(response, out);
            }
            (true, Accepted, 200..=299) => self.pass_up(response, out),
            (true, Calling | Proceeding, 300..) => {
                // 17.1.1.3: ACK the failure ourselves, then wait timer D to
                // absorb retransmissions of the final response.
                let ack = ack_for(&self.request, &response);
                out.push_back(transmit(self.target, ack.clone()));
                self.ack = Some(ack);
                self.state = Completed;
                self.retransmit = None;
                self.give_up_at = None;
                self.terminate_after(timers.timer_d(reliable), now);
                self.pass_up(response, out);
            }
            (true, Completed, 300..) => {
                if let Some(ack) = &self.ack {
                    out.push_back(transmit(self.target, ack.clone()));
                }
            }
            (false, Calling | Proceeding, 200..) => {
                // 17.1.2.2: Completed, timer K absorbs retransmissions.
                self.state = Completed;
                self.retransmit = None;
                self.give_up_at = None;
                self.terminate_after(timers.timer_t4_or_zero(reliable), now);
                self.pass_up(response, out);
            }
            // Everything else is a retransmission or out of order: absorbed.
            _ => {}
        }
    }

    pub fn on_timeout(&mut self, timers: &TimerConfig, now: Instant, out: &mut VecDeque<Output>) {
        if self.terminate_at.is_some_and(|at| at <= now) {
            self.state = ClientState::Terminated;
            return;
        }
        if self.give_up_at.is_some_and(|at| at <= now) {
            // Timer B (17.1.1.2) or F (17.1.2.2): the TU treats it as 408.
            self.state = ClientState::Terminated;
            out.push_back(Output::Event(TransactionEvent::Timeout { id: self.id }));
            return;
        }
        if let Some((at, interval)) = self.retransmit
            && at <= now
        {
            out.push_back(transmit(self.target, self.request.clone()));
            let next = if self.invite {
                // Timer A doubles without a cap (17.1.1.2).
                interval * 2
            } else if self.state == ClientState::Proceeding {
                // 17.1.2.2: in Proceeding, E is reset to T2.
                timers.t2
            } else {
                timers.backoff(interval)
            };
            self.retransmit = Some((now + next, next));
        }
    }

    /// The transport could not deliver the request (17.1.1.2, 17.1.2.2).
    pub fn on_transport_error(&mut self, out: &mut VecDeque<Output>) {
        if matches!(self.state, ClientState::Calling | ClientState::Proceeding) {
            out.push_back(Output::Event(TransactionEvent::TransportError {
                id: self.id,
            }));
        }
        self.state = ClientState::Terminated;
    }

    fn terminate_after(&mut self, wait: Duration, now: Instant) {
        if wait.is_zero() {
            self.state = ClientState::Terminated;
        } else {
            self.terminate_at = Some(now + wait);
        }
    }

    fn pass_up(&self, response: Response, out: &mut VecDeque<Output>) {
        out.push_back(Output::Event(TransactionEvent::Response {
            id: self.id,
            response,
        }));
    }
}

fn transmit(target: Target, request: Request) -> Output {
    Output::Transmit(Transmit {
        target,
        message: SipMessage::Request(request),
    })
}

/// The ACK for a non-2xx final response (17.1.1.3): same Request-URI,
/// Call-ID, From, CSeq number and single top Via as the INVITE; To from the
/// response (with its tag); the INVITE's Route headers.
pub(super) fn ack_for(invite: &Request, response: &Response) -> Request {
    let mut headers = Headers::default();
    if let Ok(via) = invite.via_header() {
        headers.push(Header::Via(via.clone()));
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    for header in invite.headers.iter() {
        match header {
            Header::From(_) | Header::CallId(_) | Header::Route(_) => headers.push(header.clone()),
            _ => {}
        }
    }
    if let Ok(to) = response.to_header() {
        headers.push(Header::To(to.clone()));
    }
    let seq = invite
        .cseq_header()
        .ok()
        .and_then(|c| c.seq().ok())
        .unwrap_or(1);
    headers.push(Header::CSeq(rsip::headers::CSeq::new(format!("{seq} ACK"))));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}
