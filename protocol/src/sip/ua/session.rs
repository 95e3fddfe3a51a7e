//! One INVITE session as the user agent core tracks it.

use std::time::{Duration, Instant};

use rsip::{Request, Response};

use crate::sip::Target;
use crate::sip::dialog::Dialog;
use crate::sip::transaction::{ClientId, ServerId};

/// Names a session for the lifetime of the user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub(crate) u64);

impl SessionId {
    /// A session id from its number: for tests of code that consumes
    /// [`super::UaEvent`]s, and for logs.
    pub fn from_raw(n: u64) -> Self {
        Self(n)
    }

    pub fn raw(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the INVITE.
    Caller,
    /// We received it.
    Callee,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// UAC: INVITE sent, no final response yet.
    Calling,
    /// UAC: a CANCEL went out; waiting for the 487 (or a racing 2xx).
    Cancelling,
    /// UAS: INVITE received, the TU has not answered yet.
    Incoming,
    /// UAS: 2xx sent, waiting for the ACK (13.3.1.4).
    Answered,
    Established,
    Terminated,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE.
    RemoteBye,
    /// We sent BYE (its response, or its timeout, closes it).
    LocalBye,
    /// The peer cancelled its INVITE before we answered (9.2).
    RemoteCancel,
    /// We cancelled our INVITE.
    LocalCancel,
    /// We answered the INVITE with a failure.
    Rejected(u16),
    /// Our INVITE got a final failure.
    Failed { status: u16, reason: String },
    /// No final response to our INVITE, or no ACK for our 2xx (13.3.1.4).
    Timeout,
    /// An in-dialog request got 481 or 408: the dialog is gone (12.2.1.2).
    DialogGone(u16),
    /// The transport to the peer failed.
    TransportError,
}

/// Our 2xx, retransmitted until the ACK arrives (13.3.1.4).
#[derive(Debug, Clone)]
pub(crate) struct Pending2xx {
    pub response: Response,
    pub target: Target,
    pub next_at: Instant,
    pub interval: Duration,
    pub give_up_at: Instant,
}

/// Our re-INVITE in progress inside the dialog (14.1).
#[derive(Debug, Clone)]
pub(crate) enum Reoffer {
    /// Sent; its client transaction is running.
    Sent { offer: Vec<u8> },
    /// It got 491; resend at this time (14.1).
    RetryAt { at: Instant, offer: Vec<u8> },
}

#[derive(Debug)]
pub(crate) struct Session {
    pub role: Role,
    pub state: SessionState,
    pub dialog: Option<Dialog>,
    /// UAC: the INVITE as last sent (after auth retries), and its
    /// transaction while it lives.
    pub invite: Option<Request>,
    pub invite_tx: Option<ClientId>,
    /// UAS: the INVITE's server transaction and our To tag.
    pub server_tx: Option<ServerId>,
    pub local_tag: Option<String>,
    /// UAC: the ACK for the 2xx, resent on every 2xx retransmission.
    pub ack: Option<(Request, Target)>,
    pub pending_2xx: Option<Pending2xx>,
    pub reoffer: Option<Reoffer>,
    /// The peer's re-INVITE whose answer the TU owes (14.2).
    pub reoffer_in: Option<(ServerId, Request)>,
    /// When an unanswered INVITE of ours is given up (a UA's timer C).
    pub give_up_at: Option<Instant>,
    /// Whether we generated the Call-ID (glare back-off, 14.1).
    pub owns_call_id: bool,
    /// UAC: a provisional arrived, so a CANCEL may be sent (9.1).
    pub provisional_seen: bool,
    pub cancel_sent: bool,
    /// The TCP or TLS connection the session was set up on: where the
    /// INVITE came from (UAS) or went to (UAC). `None` over UDP, where a
    /// source address proves nothing.
    pub flow: Option<Target>,
}

impl Session {
    pub fn new(role: Role, state: SessionState) -> Self {
        Self {
            role,
            state,
            dialog: None,
            invite: None,
            invite_tx: None,
            server_tx: None,
            local_tag: None,
            ack: None,
            pending_2xx: None,
            reoffer: None,
            reoffer_in: None,
            give_up_at: None,
            owns_call_id: role == Role::Caller,
            provisional_seen: false,
            cancel_sent: false,
            flow: None,
        }
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        let retry = match &self.reoffer {
            Some(Reoffer::RetryAt { at, .. }) => Some(*at),
            _ => None,
        };
        [
            self.pending_2xx
                .as_ref()
                .map(|p| p.next_at.min(p.give_up_at)),
            retry,
            self.give_up_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
