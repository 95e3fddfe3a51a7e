//! Server transactions: INVITE (RFC 3261 17.2.1, with RFC 6026's Accepted
//! state) and non-INVITE (17.2.2).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rsip::{Method, Request, Response, SipMessage, StatusCode};

use super::{Output, ServerId, TransactionError, TransactionEvent, Transmit};
use crate::sip::Target;
use crate::sip::response::response_to;
use crate::sip::timers::TimerConfig;

/// 17.2.1: a 100 Trying goes out unless the TU answers within 200 ms.
const TRYING_DELAY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE only: request received, nothing sent yet.
    Trying,
    Proceeding,
    Completed,
    /// INVITE only, RFC 6026 section 8.7: a 2xx was sent; the TU
    /// retransmits it and the ACK goes to the TU.
    Accepted,
    /// INVITE only: the ACK for a failure arrived (17.2.1).
    Confirmed,
    Terminated,
}

#[derive(Debug)]
pub(super) struct ServerTransaction {
    id: ServerId,
    invite: bool,
    state: ServerState,
    request: Request,
    response_target: Target,
    last_response: Option<Response>,
    /// INVITE: when to send 100 Trying if the TU stays silent.
    trying_at: Option<Instant>,
    /// Timer G: next retransmission of a failure and the interval used.
    retransmit: Option<(Instant, Duration)>,
    /// Timer H: give up waiting for the ACK.
    give_up_at: Option<Instant>,
    /// Timers I, J, L.
    terminate_at: Option<Instant>,
}

impl ServerTransaction {
    pub fn new(id: ServerId, request: Request, response_target: Target, now: Instant) -> Self {
        let invite = request.method == Method::Invite;
        Self {
            id,
            invite,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            request,
            response_target,
            last_response: None,
            trying_at: invite.then(|| now + TRYING_DELAY),
            retransmit: None,
            give_up_at: None,
            terminate_at: None,
        }
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    pub fn response_target(&self) -> Target {
        self.response_target
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        [
            self.trying_at,
            self.retransmit.map(|(at, _)| at),
            self.give_up_at,
            self.terminate_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The same request again: answer with what we last said (17.2.1,
    /// 17.2.2), or absorb it.
    pub fn on_retransmission(&mut self, out: &mut VecDeque<Output>) {
        let resend = match self.state {
            ServerState::Proceeding | ServerState::Completed => self.last_response.clone(),
            _ => None,
        };
        if let Some(response) = resend {
            out.push_back(self.transmit(response));
        }
    }

    /// An ACK matching this INVITE transaction (17.2.1). Returns true when
    /// it must go up to the TU (an ACK for a 2xx, RFC 6026 8.7).
    pub fn on_ack(&mut self, timers: &TimerConfig, now: Instant) -> bool {
        match self.state {
            ServerState::Completed => {
                self.state = ServerState::Confirmed;
                self.retransmit = None;
                self.give_up_at = None;
                let wait = timers.timer_t4_or_zero(self.response_target.transport.is_reliable());
                self.terminate_after(wait, now);
                false
            }
            ServerState::Accepted => true,
            _ => false,
        }
    }

    pub fn respond(
        &mut self,
        response: Response,
        timers: &TimerConfig,
        now: Instant,
        out: &mut VecDeque<Output>,
    ) -> Result<(), TransactionError> {
        let code = response.status_code.code();
        let reliable = self.response_target.transport.is_reliable();
        use ServerState::*;
        match (self.invite, self.state, code) {
            (_, Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.trying_at = None;
            }
            (true, Proceeding, 200..=299) => {
                // RFC 6026 8.7: Accepted; timer L = 64*T1.
                self.state = Accepted;
                self.trying_at = None;
                self.terminate_after(timers.transaction_timeout(), now);
            }
            // The TU's own 2xx retransmissions (13.3.1.4) pass through.
            (true, Accepted, 200..=299) => {}
            (true, Proceeding, 300..) => {
                // 17.2.1: Completed; G retransmits over UDP, H gives up.
                self.state = Completed;
                self.trying_at = None;
                if !reliable {
                    self.retransmit = Some((now + timers.t1, timers.t1));
                }
                self.give_up_at = Some(now + timers.transaction_timeout());
            }
            (false, Trying | Proceeding, 200..) => {
                // 17.2.2: Completed; timer J absorbs retransmissions.
                self.state = Completed;
                self.terminate_after(timers.timer_j(reliable), now);
            }
            (_, state, _) => {
                return Err(TransactionError::InvalidState {
                    state: format!("{state:?}"),
                    action: format!("send a {code} response"),
                });
            }
        }
        self.last_response = Some(response.clone());
        out.push_back(self.transmit(response));
        Ok(())
    }

    pub fn on_timeout(&mut self, timers: &TimerConfig, now: Instant, out: &mut VecDeque<Output>) {
        if self.terminate_at.is_some_and(|at| at <= now) {
            self.state = ServerState::Terminated;
            return;
        }
        if self.give_up_at.is_some_and(|at| at <= now) {
            // Timer H: the ACK never came (17.2.1).
            self.state = ServerState::Terminated;
            out.push_back(Output::Event(TransactionEvent::AckTimeout { id: self.id }));
            return;
        }
        if self.trying_at.is_some_and(|at| at <= now) {
            self.trying_at = None;
            let trying = response_to(&self.request, StatusCode::Trying, None);
            self.last_response = Some(trying.clone());
            out.push_back(self.transmit(trying));
        }
        if let Some((at, interval)) = self.retransmit
            && at <= now
        {
            if let Some(response) = self.last_response.clone() {
                out.push_back(self.transmit(response));
            }
            let next = timers.backoff(interval);
            self.retransmit = Some((now + next, next));
        }
    }

    fn terminate_after(&mut self, wait: Duration, now: Instant) {
        if wait.is_zero() {
            self.state = ServerState::Terminated;
        } else {
            self.terminate_at = Some(now + wait);
        }
    }

    fn transmit(&self, response: Response) -> Output {
        Output::Transmit(Transmit {
            target: self.response_target,
            message: SipMessage::Response(response),
        })
    }
}
