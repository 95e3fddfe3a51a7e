//! Requests we receive, and the TU's answers to them.

use std::time::Instant;

use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use rsip::{Header, Method, Request, Response, StatusCode};

use super::session::{Pending2xx, Reoffer, Session};
use super::*;
use crate::sip::dialog::Dialog;
use crate::sip::response::{response_to, set_body};

const SDP: &str = "application/sdp";

impl UserAgent {
    pub(super) fn incoming_request(
        &mut self,
        id: ServerId,
        request: Request,
        source: Target,
        now: Instant,
    ) {
        let has_to_tag = request
            .to_header()
            .ok()
            .and_then(|t| t.tag().ok().flatten())
            .is_some();
        match request.method {
            Method::Cancel => self.incoming_cancel(id, &request, now),
            _ if has_to_tag => self.in_dialog_request(id, request, source, now),
            Method::Invite => self.incoming_invite(id, request, source, now),
            // Reaches here only when we serve a package (the Allow of
            // `handle_input`).
            Method::Subscribe => self.incoming_subscribe(id, request, source, now),
            // RFC 6665 4.1.2.4 and 3261 12.2.2: a NOTIFY names a dialog (our
            // tag in To); without one it matches nothing.
            Method::Notify => {
                self.reply_status(id, &request, StatusCode::CallTransactionDoesNotExist, now)
            }
            Method::Options => {
                // 11.2: what we can do, as a 200.
                let mut ok = self.response(&request, StatusCode::OK, None);
                ok.headers
                    .push(Header::Accept(rsip::headers::Accept::new(SDP)));
                self.reply(id, ok, now);
            }
            Method::Register if self.config.accept_register => {
                self.event(UaEvent::Request {
                    id,
                    request,
                    source,
                });
            }
            // 12.2.2 / 15.1.2: a BYE outside any dialog.
            Method::Bye => {
                self.reply_status(id, &request, StatusCode::CallTransactionDoesNotExist, now)
            }
            _ => self.reply_status(id, &request, StatusCode::MethodNotAllowed, now),
        }
    }

    fn incoming_invite(&mut self, id: ServerId, request: Request, source: Target, now: Instant) {
        // 8.2.2.2: the same request arriving by another path is a loop.
        if self.is_merged(&request) {
            self.reply_status(id, &request, StatusCode::LoopDetected, now);
            return;
        }
        let tag = self.ids.tag();
        let mut session = Session::new(Role::Callee, SessionState::Incoming);
        session.server_tx = Some(id);
        session.local_tag = Some(tag);
        session.flow = Some(source).filter(|s| s.transport.is_reliable());
        let offer = request.body.clone();
        session.invite = Some(request.clone());
        let sid = self.fresh_session(session);
        self.by_server.insert(id, sid);
        self.event(UaEvent::IncomingCall {
            session: sid,
            request,
            source,
            offer,
        });
    }

    fn is_merged(&self, request: &Request) -> bool {
        let key = |r: &Request| {
            Some((
                r.call_id_header().ok()?.value().to_owned(),
                r.from_header().ok()?.tag().ok()??.value().to_owned(),
                r.cseq_header().ok()?.value().to_owned(),
            ))
        };
        let Some(mine) = key(request) else {
            return false;
        };
        self.sessions
            .values()
            .filter(|s| s.state == SessionState::Incoming)
            .filter_map(|s| s.invite.as_ref())
            .any(|other| {
                key(other).as_ref() == Some(&mine)
                    && other.via_header().ok() != request.via_header().ok()
            })
    }

    fn incoming_cancel(&mut self, id: ServerId, cancel: &Request, now: Instant) {
        // 9.2: match the INVITE's transaction; answer the CANCEL 200 and
        // the INVITE 487 if it is still unanswered.
        let Some(invite_tx) = self.layer.invite_for_cancel(cancel) else {
            self.reply_status(id, cancel, StatusCode::CallTransactionDoesNotExist, now);
            return;
        };
        self.reply_status(id, cancel, StatusCode::OK, now);
        let Some(sid) = self.by_server.get(&invite_tx).copied() else {
            return;
        };
        if self.sessions.get(&sid).map(|s| s.state) != Some(SessionState::Incoming) {
            return;
        }
        if let Some((invite, tag)) = self.pending_invite(sid) {
            let terminated = response_to(&invite, StatusCode::RequestTerminated, Some(&tag));
            let _ = self.layer.respond(invite_tx, terminated, now);
        }
        self.end(sid, EndReason::RemoteCancel, None, None);
    }

    fn in_dialog_request(&mut self, id: ServerId, request: Request, source: Target, now: Instant) {
        let Some(sid) =
            DialogId::of_incoming_request(&request).and_then(|d| self.by_dialog.get(&d).copied())
        else {
            if let Some(sub) = self.subscription_of(&request) {
                self.in_subscription_dialog(sub, id, request, source, now);
                return;
            }
            // 12.2.2: a request for a dialog we do not know.
            self.reply_status(id, &request, StatusCode::CallTransactionDoesNotExist, now);
            return;
        };
        if self.config.screen_in_dialog && matches!(request.method, Method::Bye | Method::Invite) {
            self.hold_for_screening(sid, id, request, source);
            return;
        }
        self.serve_in_dialog(sid, id, request, now);
    }

    /// An in-dialog request the TU let through (or never screens): CSeq
    /// order, then what the method asks for.
    pub(super) fn serve_in_dialog(
        &mut self,
        sid: SessionId,
        id: ServerId,
        request: Request,
        now: Instant,
    ) {
        let order = self
            .sessions
            .get_mut(&sid)
            .and_then(|s| s.dialog.as_mut())
            .map(|d| d.receive_request(&request));
        if let Some(Err(e)) = order {
            // 12.2.2: out of order CSeq gets a 500.
            let mut r = self.response(&request, StatusCode::ServerInternalError, None);
            add_warning(&mut r, &self.config.local.host_port(), &e.to_string());
            self.reply(id, r, now);
            return;
        }
        match request.method {
            Method::Bye => {
                self.reply_status(id, &request, StatusCode::OK, now);
                self.end(sid, EndReason::RemoteBye, None, None);
            }
            Method::Invite => self.incoming_reinvite(sid, id, request, now),
            Method::Options => {
                let mut ok = self.response(&request, StatusCode::OK, None);
                ok.headers
                    .push(Header::Accept(rsip::headers::Accept::new(SDP)));
                self.reply(id, ok, now);
            }
            _ => self.reply_status(id, &request, StatusCode::MethodNotAllowed, now),
        }
    }

    fn incoming_reinvite(&mut self, sid: SessionId, id: ServerId, request: Request, now: Instant) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let ours_in_progress = matches!(s.reoffer, Some(Reoffer::Sent { .. }));
        let theirs_unfinished = s.reoffer_in.is_some() || s.pending_2xx.is_some();
        match (ours_in_progress, theirs_unfinished) {
            // 14.2: our own re-INVITE is in progress: glare.
            (true, _) => {
                self.reply_status(id, &request, StatusCode::RequestPending, now);
            }
            // 14.2: their previous one is still unanswered (or
            // unacknowledged): 500 with a Retry-After of 0-10 s.
            (false, true) => {
                let mut r = self.response(&request, StatusCode::ServerInternalError, None);
                let wait = (self.ids.unit() * 10.0) as u32;
                r.headers
                    .push(Header::RetryAfter(rsip::headers::RetryAfter::new(
                        wait.to_string(),
                    )));
                self.reply(id, r, now);
            }
            (false, false) => {
                let offer = request.body.clone();
                s.reoffer_in = Some((id, request));
                self.event(UaEvent::ReofferReceived {
                    session: sid,
                    offer,
                });
            }
        }
    }

    pub(super) fn incoming_ack(&mut self, request: &Request) {
        let Some(sid) =
            DialogId::of_incoming_request(request).and_then(|d| self.by_dialog.get(&d).copied())
        else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.pending_2xx.take().is_some() && s.state == SessionState::Answered {
            s.state = SessionState::Established;
            self.event(UaEvent::Confirmed { session: sid });
        }
    }

    /// Accepts an incoming call with an SDP answer (13.3.1.4): 200 OK,
    /// retransmitted until the ACK comes.
    pub fn accept(
        &mut self,
        session: SessionId,
        answer: Vec<u8>,
        now: Instant,
    ) -> Result<(), UaError> {
        let (invite, tag) = self.incoming_only(session, "accept")?;
        let server_tx = self
            .sessions
            .get(&session)
            .and_then(|s| s.server_tx)
            .ok_or(UaError::UnknownRequest)?;
        let dialog = Dialog::from_uas(&invite, &tag, &mut self.ids)?;
        let target = self
            .layer
            .server_target(server_tx)
            .ok_or(UaError::UnknownRequest)?;
        let ok = self.answer_2xx(&invite, &tag, answer, target.transport);
        self.layer.respond(server_tx, ok.clone(), now)?;
        self.by_dialog.insert(dialog.id.clone(), session);
        let t1 = self.config.timers.t1;
        if let Some(s) = self.sessions.get_mut(&session) {
            s.dialog = Some(dialog);
            s.state = SessionState::Answered;
            s.pending_2xx = Some(Pending2xx {
                response: ok,
                target,
                next_at: now + t1,
                interval: t1,
                give_up_at: now + self.config.timers.transaction_timeout(),
            });
        }
        self.pump(now);
        Ok(())
    }

    /// Refuses an incoming call, with a Warning (20.43, code 399) saying
    /// why when given: 488 for a stream the collector cannot take, 403 for
    /// an untrusted caller.
    pub fn reject(
        &mut self,
        session: SessionId,
        status: u16,
        warning: Option<&str>,
        now: Instant,
    ) -> Result<(), UaError> {
        let (invite, tag) = self.incoming_only(session, "reject")?;
        let mut response = response_to(&invite, StatusCode::from(status), Some(&tag));
        if let Some(text) = warning {
            add_warning(&mut response, &self.config.local.host_port(), text);
        }
        self.respond_to_invite(session, response, now)
    }

    /// Refuses an incoming call with a response the TU built (a digest
    /// challenge from the registrar's verifier, for example).
    pub fn respond_to_invite(
        &mut self,
        session: SessionId,
        response: Response,
        now: Instant,
    ) -> Result<(), UaError> {
        let server_tx = self.unanswered_invite(session)?;
        let status = response.status_code.code();
        self.layer.respond(server_tx, response, now)?;
        if status >= 300 {
            self.end(session, EndReason::Rejected(status), None, None);
        }
        self.pump(now);
        Ok(())
    }

    /// Answers a re-INVITE: `Ok(answer)` accepts the new offer, `Err((488,
    /// why))` refuses it and keeps the session as it was (14.2).
    pub fn answer_reoffer(
        &mut self,
        session: SessionId,
        answer: Result<Vec<u8>, (u16, String)>,
        now: Instant,
    ) -> Result<(), UaError> {
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(UaError::UnknownSession(session))?;
        let Some((id, request)) = s.reoffer_in.take() else {
            return Err(UaError::UnknownRequest);
        };
        let tag = s
            .dialog
            .as_ref()
            .map(|d| d.id.local_tag.clone())
            .unwrap_or_default();
        match answer {
            Ok(sdp) => {
                let target = self
                    .layer
                    .server_target(id)
                    .ok_or(UaError::UnknownRequest)?;
                let ok = self.answer_2xx(&request, &tag, sdp, target.transport);
                self.layer.respond(id, ok.clone(), now)?;
                let t1 = self.config.timers.t1;
                let give_up = now + self.config.timers.transaction_timeout();
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.pending_2xx = Some(Pending2xx {
                        response: ok,
                        target,
                        next_at: now + t1,
                        interval: t1,
                        give_up_at: give_up,
                    });
                }
            }
            Err((status, why)) => {
                let mut r = response_to(&request, StatusCode::from(status), Some(&tag));
                add_warning(&mut r, &self.config.local.host_port(), &why);
                self.layer.respond(id, r, now)?;
            }
        }
        self.pump(now);
        Ok(())
    }

    fn answer_2xx(
        &self,
        invite: &Request,
        tag: &str,
        answer: Vec<u8>,
        transport: Transport,
    ) -> Response {
        let mut ok = self.response(invite, StatusCode::OK, Some(tag));
        // 12.1.1: a dialog-creating 2xx copies Record-Route and carries our
        // Contact.
        for h in invite.headers.iter() {
            if matches!(h, Header::RecordRoute(_)) {
                ok.headers.push(h.clone());
            }
        }
        ok.headers
            .push(Header::Contact(rsip::headers::Contact::new(format!(
                "<{}>",
                self.config.contact_for(transport)
            ))));
        set_body(&mut ok.headers, &mut ok.body, SDP, answer);
        ok
    }

    /// The server transaction of an incoming call not yet answered.
    pub(super) fn unanswered_invite(&self, session: SessionId) -> Result<ServerId, UaError> {
        self.incoming_only(session, "answer")?;
        self.sessions
            .get(&session)
            .and_then(|s| s.server_tx)
            .ok_or(UaError::UnknownRequest)
    }

    fn incoming_only(
        &self,
        session: SessionId,
        action: &'static str,
    ) -> Result<(Request, String), UaError> {
        let s = self
            .sessions
            .get(&session)
            .ok_or(UaError::UnknownSession(session))?;
        if s.state != SessionState::Incoming {
            return Err(UaError::WrongState {
                session,
                state: s.state,
                action,
            });
        }
        self.pending_invite(session).ok_or(UaError::UnknownRequest)
    }

    fn pending_invite(&self, session: SessionId) -> Option<(Request, String)> {
        let s = self.sessions.get(&session)?;
        Some((s.invite.clone()?, s.local_tag.clone()?))
    }

    pub(super) fn response(
        &self,
        request: &Request,
        status: StatusCode,
        tag: Option<&str>,
    ) -> Response {
        let mut r = response_to(request, status, tag);
        r.headers.push(Header::Server(rsip::headers::Server::new(
            self.config.product.clone(),
        )));
        r.headers
            .push(Header::Allow(rsip::headers::Allow::new(self.allow())));
        // RFC 6665 7.2.2: the packages we serve; a 489 must say.
        if let Some(h) = self.allow_events() {
            r.headers.push(h);
        }
        r
    }

    pub(super) fn reply_status(
        &mut self,
        id: ServerId,
        request: &Request,
        status: StatusCode,
        now: Instant,
    ) {
        // A To tag is needed on final responses that could create nothing
        // but must still be matched (8.2.6.2).
        let tag = self.ids.tag();
        let r = self.response(request, status, Some(&tag));
        self.reply(id, r, now);
    }

    /// A status with a Warning saying why (RFC 3261 20.43).
    pub(super) fn reply_warning(
        &mut self,
        id: ServerId,
        request: &Request,
        status: StatusCode,
        why: &str,
        now: Instant,
    ) {
        let tag = self.ids.tag();
        let mut r = self.response(request, status, Some(&tag));
        add_warning(&mut r, &self.config.local.host_port(), why);
        self.reply(id, r, now);
    }

    pub(super) fn reply(&mut self, id: ServerId, response: Response, now: Instant) {
        if let Err(e) = self.layer.respond(id, response, now) {
            self.event(UaEvent::Malformed {
                source: Target::new(self.config.local.transport, self.config.local.addr),
                reason: format!("could not answer: {e}"),
            });
        }
    }
}

/// RFC 3261 20.43: `Warning: 399 host "text"`, the text stripped of quotes.
pub(crate) fn add_warning(response: &mut Response, host: &str, text: &str) {
    let clean: String = text
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect();
    response
        .headers
        .push(Header::Warning(rsip::headers::Warning::new(format!(
            "399 {host} \"{clean}\""
        ))));
}
