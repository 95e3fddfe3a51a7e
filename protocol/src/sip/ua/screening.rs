//! In-dialog requests the TU screens before they take effect
//! ([`UaConfig::screen_in_dialog`]): a BYE ends the stream and a
//! re-INVITE can point it elsewhere, yet the Call-ID and tags that route
//! them into the dialog (RFC 3261 12.2.2) are no secret to whoever sees
//! the signalling in clear. The TU lets the request through, or answers it
//! once with a challenge (22.2) or a refusal; until then the dialog's
//! remote CSeq does not move, so a forged request cannot push the genuine
//! peer's next one out of order.

use std::time::Instant;

use rsip::{Request, Response, StatusCode};

use super::*;

impl UserAgent {
    /// Keeps the request until the TU has decided, and hands it up.
    pub(super) fn hold_for_screening(
        &mut self,
        session: SessionId,
        id: ServerId,
        request: Request,
        source: Target,
    ) {
        let on_dialog_flow = source.transport.is_reliable()
            && self
                .sessions
                .get(&session)
                .and_then(|s| s.flow)
                .is_some_and(|flow| flow == source);
        self.screening
            .insert(id, (Screened::Session(session), request.clone()));
        self.event(UaEvent::InDialogRequest {
            session,
            id,
            request,
            source,
            on_dialog_flow,
        });
    }

    /// Lets a request handed up in [`UaEvent::InDialogRequest`] (or
    /// [`SubscriptionEvent::InDialogRequest`]) take effect, as if it had
    /// not been screened. A session that ended in the meantime answers it
    /// 481 (12.2.2).
    pub fn admit_in_dialog(&mut self, id: ServerId, now: Instant) -> Result<(), UaError> {
        let (screened, request) = self.screening.remove(&id).ok_or(UaError::UnknownRequest)?;
        match screened {
            Screened::Session(session) if self.sessions.get(&session).is_some() => {
                self.serve_in_dialog(session, id, request, now);
            }
            Screened::Subscription(sub) => self.serve_subscription_request(sub, id, request, now),
            Screened::Session(_) => {
                self.reply_status(id, &request, StatusCode::CallTransactionDoesNotExist, now);
            }
        }
        self.pump(now);
        Ok(())
    }

    /// Answers a request handed up in [`UaEvent::InDialogRequest`] with
    /// `response` (a 401 challenge, a 403), once and without keeping its
    /// transaction, so that a spoofed source gets one packet per packet it
    /// sent; the session goes on untouched.
    pub fn refuse_in_dialog(
        &mut self,
        id: ServerId,
        response: Response,
        now: Instant,
    ) -> Result<(), UaError> {
        self.screening.remove(&id).ok_or(UaError::UnknownRequest)?;
        self.layer.respond_statelessly(id, response)?;
        self.pump(now);
        Ok(())
    }

    /// The in-dialog requests still waiting for the TU's decision.
    pub fn screening_count(&self) -> usize {
        self.screening.len()
    }
}
