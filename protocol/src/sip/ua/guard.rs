//! Answers that keep no state: a `sips:` request over a transport that is
//! not TLS, and the TU's refusals of peers it does not know (challenges,
//! 403), sent once per request received so that a spoofed source cannot
//! use us as a reflector.

use std::time::Instant;

use rsip::{Method, Request, Response, SipMessage, StatusCode};

use super::incoming::add_warning;
use super::*;
use crate::sip::response::response_to;

impl UserAgent {
    /// False for a `sips:` Request-URI over a transport without TLS.
    pub(super) fn scheme_fits_transport(&self, request: &Request, source: Target) -> bool {
        request.uri.scheme != Some(rsip::Scheme::Sips) || source.transport.is_secure()
    }

    /// RFC 3261 26.2.2 and 8.2.2.1: a request for a `sips:` URI that came
    /// in clear cannot be served as asked; 416 Unsupported URI Scheme,
    /// sent back without a transaction (an ACK gets nothing).
    pub(super) fn refuse_insecure_sips(&mut self, request: &Request, source: Target) {
        let reason = format!("sips: Request-URI over {:?}", source.transport);
        if request.method != Method::Ack {
            let mut r = response_to(request, StatusCode::UnsupportedUriScheme, Some("sips"));
            add_warning(&mut r, &self.config.local.host_port(), &reason);
            let target = crate::sip::transaction::response_target(request, source);
            self.layer.send_stateless(SipMessage::Response(r), target);
        }
        self.event(UaEvent::Refused {
            source,
            status: 416,
            reason,
        });
    }

    /// Refuses an incoming call (handed up in [`UaEvent::IncomingCall`])
    /// with one response and no transaction kept: no retransmissions
    /// until an ACK, no 100 Trying (17.2.1 lets the TU answer an INVITE
    /// so, as Kamailio's `sl_send_reply`). For challenges and refusals of
    /// unauthenticated peers; a retransmitted INVITE comes up again as a
    /// new call and gets a new answer.
    pub fn reject_statelessly(
        &mut self,
        session: SessionId,
        response: Response,
        now: Instant,
    ) -> Result<(), UaError> {
        let server_tx = self.unanswered_invite(session)?;
        let status = response.status_code.code();
        self.layer.respond_statelessly(server_tx, response)?;
        self.end(session, EndReason::Rejected(status), None, None);
        self.pump(now);
        Ok(())
    }

    /// Answers a request handed up in [`UaEvent::Request`] once, keeping
    /// no transaction (a REGISTER's challenge): a retransmission is
    /// answered anew.
    pub fn respond_statelessly(
        &mut self,
        id: ServerId,
        response: Response,
        now: Instant,
    ) -> Result<(), UaError> {
        self.layer.respond_statelessly(id, response)?;
        self.pump(now);
        Ok(())
    }
}
