//! Requests we originate: INVITE, re-INVITE, CANCEL, BYE, OPTIONS, and the
//! responses they get.

use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use rsip::{Header, Method, Request, Response, SipMessage};

use super::session::{Reoffer, Session};
use super::*;
use crate::sip::dialog::Dialog;
use crate::sip::response::set_body;

const SDP: &str = "application/sdp";

impl UserAgent {
    /// Calls `to` with an SDP offer (13.2.1). The session ends with
    /// [`UaEvent::Answered`] or [`UaEvent::Ended`].
    pub fn call(&mut self, to: &str, offer: Vec<u8>, now: Instant) -> Result<SessionId, UaError> {
        let to_uri = parse_uri(to)?;
        let target = self.out_of_dialog_target(&to_uri)?;
        let host = self.config.local.host_port();
        let call_id = self.ids.call_id(&host);
        let tag = self.ids.tag();
        let seq = self.ids.cseq_start();
        let branch = self.ids.branch();
        let mut request =
            self.out_of_dialog_request(Method::Invite, &to_uri, &call_id, &tag, seq, &branch);
        set_body(&mut request.headers, &mut request.body, SDP, offer);
        let id = self.layer.send_request(request.clone(), target, now)?;
        let mut session = Session::new(Role::Caller, SessionState::Calling);
        session.invite = Some(request);
        session.invite_tx = Some(id);
        session.give_up_at = Some(now + self.config.invite_timeout);
        session.flow = Some(target).filter(|t| t.transport.is_reliable());
        let sid = self.fresh_session(session);
        self.clients.insert(id, Purpose::Invite(sid));
        self.pump(now);
        Ok(sid)
    }

    /// A new offer inside an established session (14.1).
    pub fn reinvite(
        &mut self,
        session: SessionId,
        offer: Vec<u8>,
        now: Instant,
    ) -> Result<(), UaError> {
        let s = self
            .sessions
            .get(&session)
            .ok_or(UaError::UnknownSession(session))?;
        if s.state != SessionState::Established {
            return Err(UaError::WrongState {
                session,
                state: s.state,
                action: "send a re-INVITE",
            });
        }
        if s.reoffer.is_some() {
            return Err(UaError::OfferPending(session));
        }
        self.send_reinvite(session, offer, now)?;
        self.pump(now);
        Ok(())
    }

    fn send_reinvite(
        &mut self,
        session: SessionId,
        offer: Vec<u8>,
        now: Instant,
    ) -> Result<(), UaError> {
        let local = self.config.local.clone();
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(UaError::UnknownSession(session))?;
        let dialog = s.dialog.as_mut().ok_or(UaError::UnknownSession(session))?;
        let mut request = dialog.request(Method::Invite, &local, &mut self.ids);
        set_body(&mut request.headers, &mut request.body, SDP, offer.clone());
        let target = locate(&dialog.next_hop()?, self.resolver.as_ref())?;
        let id = self.layer.send_request(request.clone(), target, now)?;
        s.reoffer = Some(Reoffer::Sent { offer });
        self.clients.insert(id, Purpose::Reinvite(session));
        self.in_dialog_sent.insert(id, (request, target));
        Ok(())
    }

    /// Ends a session however far it got: CANCEL for our ringing INVITE
    /// (9.1), a failure for an incoming one, BYE for an established one
    /// (15.1.1).
    pub fn hangup(&mut self, session: SessionId, now: Instant) -> Result<(), UaError> {
        let state = self
            .sessions
            .get(&session)
            .map(|s| s.state)
            .ok_or(UaError::UnknownSession(session))?;
        match state {
            SessionState::Calling => self.cancel(session, now)?,
            SessionState::Cancelling => {}
            SessionState::Incoming => {
                self.reject(session, 480, Some("the sensor is shutting down"), now)?;
            }
            SessionState::Answered | SessionState::Established => {
                self.send_bye(session, now)?;
                self.end(session, EndReason::LocalBye, None, None);
            }
            SessionState::Terminated => {}
        }
        self.pump(now);
        Ok(())
    }

    /// Pings the peer with OPTIONS (11): inside the session when given, else
    /// to `uri` through the outbound proxy. A 481 or 408 inside a dialog
    /// ends the session (12.2.1.2).
    pub fn ping(
        &mut self,
        session: Option<SessionId>,
        uri: &str,
        now: Instant,
    ) -> Result<(), UaError> {
        let (request, target) = match session {
            Some(sid) => {
                let local = self.config.local.clone();
                let s = self
                    .sessions
                    .get_mut(&sid)
                    .ok_or(UaError::UnknownSession(sid))?;
                let dialog = s.dialog.as_mut().ok_or(UaError::WrongState {
                    session: sid,
                    state: s.state,
                    action: "ping inside a dialog",
                })?;
                let request = dialog.request(Method::Options, &local, &mut self.ids);
                let target = locate(&dialog.next_hop()?, self.resolver.as_ref())?;
                (request, target)
            }
            None => {
                let uri = parse_uri(uri)?;
                let target = self.out_of_dialog_target(&uri)?;
                let call_id = self.ids.call_id(&self.config.local.host_port());
                let tag = self.ids.tag();
                let seq = self.ids.cseq_start();
                let branch = self.ids.branch();
                let request =
                    self.out_of_dialog_request(Method::Options, &uri, &call_id, &tag, seq, &branch);
                (request, target)
            }
        };
        let id = self.layer.send_request(request, target, now)?;
        self.clients.insert(id, Purpose::Options(session));
        self.pump(now);
        Ok(())
    }

    /// 9.1: a CANCEL goes out only once a provisional response has arrived;
    /// before that the session waits in Cancelling and the first 1xx sends
    /// it.
    fn cancel(&mut self, session: SessionId, now: Instant) -> Result<(), UaError> {
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(UaError::UnknownSession(session))?;
        s.state = SessionState::Cancelling;
        if !s.provisional_seen || s.cancel_sent {
            return Ok(());
        }
        s.cancel_sent = true;
        let Some(tx) = s.invite_tx else { return Ok(()) };
        let (Some(invite), Some(target)) =
            (self.layer.client_request(tx), self.layer.client_target(tx))
        else {
            return Ok(());
        };
        let cancel = cancel_for(invite);
        let id = self.layer.send_request(cancel, target, now)?;
        self.clients.insert(id, Purpose::Cancel);
        Ok(())
    }

    fn send_bye(&mut self, session: SessionId, now: Instant) -> Result<(), UaError> {
        let local = self.config.local.clone();
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(UaError::UnknownSession(session))?;
        let Some(dialog) = s.dialog.as_mut() else {
            return Ok(());
        };
        let bye = dialog.request(Method::Bye, &local, &mut self.ids);
        let target = locate(&dialog.next_hop()?, self.resolver.as_ref())?;
        let id = self.layer.send_request(bye.clone(), target, now)?;
        self.clients.insert(id, Purpose::Bye);
        self.in_dialog_sent.insert(id, (bye, target));
        Ok(())
    }

    pub(super) fn out_of_dialog_request(
        &self,
        method: Method,
        to: &rsip::Uri,
        call_id: &str,
        tag: &str,
        seq: u32,
        branch: &str,
    ) -> Request {
        // 8.1.1: the mandatory header fields of a new request.
        let mut headers = Headers::default();
        headers.push(self.config.local.via(branch));
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
        let display = self
            .config
            .display_name
            .as_ref()
            .map(|d| format!("\"{}\" ", d.replace(['"', '\\'], "")))
            .unwrap_or_default();
        headers.push(Header::From(rsip::headers::From::new(format!(
            "{display}<{}>;tag={tag}",
            self.config.identity
        ))));
        headers.push(Header::To(rsip::headers::To::new(format!("<{to}>"))));
        headers.push(Header::CallId(rsip::headers::CallId::new(call_id)));
        headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
            "{seq} {method}"
        ))));
        if let Some(proxy) = &self.config.outbound_proxy {
            headers.push(Header::Route(rsip::headers::Route::new(format!(
                "<{};lr>",
                proxy
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .trim_end_matches(";lr")
            ))));
        }
        // A request to a `sips:` or `transport=tls` URI travels over TLS
        // (RFC 3263 4.1): our Contact then names the TLS listener.
        let over_tls = to.scheme == Some(rsip::Scheme::Sips)
            || to
                .params
                .iter()
                .any(|p| matches!(p, rsip::Param::Transport(t) if *t == rsip::Transport::Tls));
        let transport = if over_tls {
            Transport::Tls
        } else {
            self.config.local.transport
        };
        headers.push(Header::Contact(rsip::headers::Contact::new(format!(
            "<{}>",
            self.config.contact_for(transport)
        ))));
        if method == Method::Options {
            headers.push(Header::Accept(rsip::headers::Accept::new(SDP)));
        }
        headers.extend(self.base_headers().into_iter().collect());
        headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
            "0",
        )));
        Request {
            method,
            uri: to.clone(),
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
    }

    /// Handles the final or provisional response, or the failure (None),
    /// of one of our client transactions.
    pub(super) fn client_response(
        &mut self,
        id: ClientId,
        response: Option<Response>,
        now: Instant,
    ) {
        let Some(purpose) = self.clients.get(&id).copied() else {
            return;
        };
        let status = response.as_ref().map(|r| r.status_code.code());
        // An INVITE transaction passes 2xx retransmissions up until timer M
        // (RFC 6026); it is forgotten in `handle_timeout` once it ends.
        let keep = matches!(purpose, Purpose::Invite(_)) && status.is_some_and(|s| s < 300);
        let sent = if status.is_none_or(|s| s >= 200) {
            if !keep {
                self.clients.remove(&id);
            }
            self.in_dialog_sent.remove(&id)
        } else {
            None
        };
        match purpose {
            Purpose::Invite(sid) => self.invite_response(sid, response, now),
            Purpose::Reinvite(sid) => self.reinvite_response(sid, sent, response, now),
            Purpose::Bye => self.bye_response(sent, response.as_ref(), now),
            Purpose::Cancel => {}
            Purpose::Options(session) => {
                if status.is_some_and(|s| s < 200) {
                    return;
                }
                if let Some(sid) = session
                    && matches!(status, None | Some(408) | Some(481))
                {
                    self.end(
                        sid,
                        EndReason::DialogGone(status.unwrap_or(408)),
                        None,
                        None,
                    );
                }
                self.event(UaEvent::OptionsResult { session, status });
            }
            Purpose::Tu => self.event(UaEvent::Response { id, response }),
            Purpose::Register => self.registration_response(response, now),
            Purpose::Subscribe(sub) => self.subscribe_response(sub, sent, response, now),
            Purpose::Notify(sub) if status.is_none_or(|s| s >= 200) => {
                self.notify_response(sub, sent, response.as_ref(), now)
            }
            Purpose::Notify(_) => {}
        }
    }

    fn invite_response(&mut self, sid: SessionId, response: Option<Response>, now: Instant) {
        let Some(response) = response else {
            // Timer B or a transport failure: as a 408 (8.1.3.1).
            let reason = match self.sessions.get(&sid).map(|s| s.state) {
                Some(SessionState::Cancelling) => EndReason::LocalCancel,
                _ => EndReason::Timeout,
            };
            self.end(sid, reason, None, None);
            return;
        };
        let code = response.status_code.code();
        let Some(state) = self.sessions.get(&sid).map(|s| s.state) else {
            return;
        };
        match code {
            100..=199 => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.provisional_seen = true;
                }
                if state == SessionState::Cancelling {
                    let _ = self.cancel(sid, now);
                }
                if code > 100 {
                    self.event(UaEvent::Progress {
                        session: sid,
                        status: code,
                    });
                }
            }
            200..=299 => self.invite_accepted(sid, state, response, now),
            401 | 407 if state == SessionState::Calling => {
                self.invite_challenged(sid, &response, now)
            }
            _ => {
                let reason = if state == SessionState::Cancelling && code == 487 {
                    EndReason::LocalCancel
                } else {
                    EndReason::Failed {
                        status: code,
                        reason: response.status_code.to_string(),
                    }
                };
                let warning = warning_text(&response);
                let retry = retry_after(&response);
                self.end(sid, reason, warning, retry);
            }
        }
    }

    fn invite_accepted(
        &mut self,
        sid: SessionId,
        state: SessionState,
        response: Response,
        now: Instant,
    ) {
        let Some(dialog_id) = DialogId::of_response(&response) else {
            self.event(UaEvent::Malformed {
                source: self.config_target(),
                reason: "2xx to INVITE without a To tag".into(),
            });
            return;
        };
        // A 2xx from a second fork of our INVITE: ACK and BYE it (13.2.2.4).
        if let Some(existing) = self.by_dialog.get(&dialog_id) {
            if *existing == sid {
                self.resend_ack(sid);
            }
            return;
        }
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        let Some(invite) = session.invite.clone() else {
            return;
        };
        if session.dialog.is_some() {
            self.ack_and_bye_fork(&invite, &response, now);
            return;
        }
        let dialog = match Dialog::from_uac(&invite, &response) {
            Ok(d) => d,
            Err(e) => {
                self.end(
                    sid,
                    EndReason::Failed {
                        status: 500,
                        reason: e.to_string(),
                    },
                    None,
                    None,
                );
                return;
            }
        };
        let local = self.config.local.clone();
        let invite_seq = dialog.local_seq();
        let ack = dialog.ack(invite_seq, &local, &mut self.ids);
        let target = match dialog
            .next_hop()
            .map_err(UaError::from)
            .and_then(|h| locate(&h, self.resolver.as_ref()).map_err(UaError::from))
        {
            Ok(t) => t,
            Err(e) => {
                self.end(
                    sid,
                    EndReason::Failed {
                        status: 502,
                        reason: e.to_string(),
                    },
                    None,
                    None,
                );
                return;
            }
        };
        self.layer
            .send_stateless(SipMessage::Request(ack.clone()), target);
        self.by_dialog.insert(dialog.id.clone(), sid);
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.dialog = Some(dialog);
            s.ack = Some((ack, target));
            s.give_up_at = None;
            s.state = SessionState::Established;
        }
        if state == SessionState::Cancelling {
            // The 2xx crossed our CANCEL: the call is up, so hang it up.
            let _ = self.send_bye(sid, now);
            self.end(sid, EndReason::LocalCancel, None, None);
            return;
        }
        self.event(UaEvent::Answered {
            session: sid,
            answer: response.body,
        });
    }

    /// 22.2: answer a challenge with a new INVITE (same Call-ID and tags,
    /// CSeq + 1, new branch) carrying credentials; a second rejection of
    /// fresh credentials is a wrong password and ends the call.
    fn invite_challenged(&mut self, sid: SessionId, response: &Response, now: Instant) {
        let status = response.status_code.code();
        let fail = |reason: String| EndReason::Failed { status, reason };
        let Some(invite) = self.sessions.get(&sid).and_then(|s| s.invite.clone()) else {
            return;
        };
        let Some(digest) = self.digest.as_mut() else {
            self.end(
                sid,
                fail("authentication required and no credentials configured".into()),
                warning_text(response),
                None,
            );
            return;
        };
        if let Err(e) = digest.handle_challenge(&invite, response) {
            self.end(sid, fail(e.to_string()), warning_text(response), None);
            return;
        }
        let mut retry = invite.clone();
        let seq = invite
            .cseq_header()
            .ok()
            .and_then(|c| c.seq().ok())
            .unwrap_or(1);
        let mut headers = Headers::default();
        headers.push(self.config.local.via(&self.ids.branch()));
        for h in invite.headers.iter() {
            match h {
                Header::Via(_) => {}
                Header::CSeq(_) => headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
                    "{} INVITE",
                    seq.wrapping_add(1)
                )))),
                other => headers.push(other.clone()),
            }
        }
        retry.headers = headers;
        if let Some(digest) = self.digest.as_mut() {
            digest.authorize(&mut retry, &mut self.ids);
        }
        let target = match self.out_of_dialog_target(&retry.uri) {
            Ok(t) => t,
            Err(e) => {
                self.end(sid, fail(e.to_string()), None, None);
                return;
            }
        };
        match self.layer.send_request(retry.clone(), target, now) {
            Ok(id) => {
                self.clients.insert(id, Purpose::Invite(sid));
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.invite = Some(retry);
                    s.invite_tx = Some(id);
                    s.provisional_seen = false;
                }
            }
            Err(e) => self.end(sid, fail(e.to_string()), None, None),
        }
    }

    fn ack_and_bye_fork(&mut self, invite: &Request, response: &Response, now: Instant) {
        let Ok(mut fork) = Dialog::from_uac(invite, response) else {
            return;
        };
        let local = self.config.local.clone();
        let ack = fork.ack(fork.local_seq(), &local, &mut self.ids);
        let Ok(hop) = fork.next_hop() else { return };
        let Ok(target) = locate(&hop, self.resolver.as_ref()) else {
            return;
        };
        self.layer.send_stateless(SipMessage::Request(ack), target);
        let bye = fork.request(Method::Bye, &local, &mut self.ids);
        if let Ok(id) = self.layer.send_request(bye, target, now) {
            self.clients.insert(id, Purpose::Bye);
        }
    }

    fn resend_ack(&mut self, sid: SessionId) {
        if let Some((ack, target)) = self.sessions.get(&sid).and_then(|s| s.ack.clone()) {
            self.layer.send_stateless(SipMessage::Request(ack), target);
        }
    }

    /// A 2xx that outlived its transaction: ACK it again (13.2.2.4).
    pub(super) fn stray_response(&mut self, response: &Response) {
        let is_invite_2xx = response.status_code.code() / 100 == 2
            && response
                .cseq_header()
                .ok()
                .and_then(|c| c.method().ok())
                .is_some_and(|m| m == Method::Invite);
        if !is_invite_2xx {
            return;
        }
        if let Some(sid) =
            DialogId::of_response(response).and_then(|d| self.by_dialog.get(&d).copied())
        {
            self.resend_ack(sid);
        }
    }

    fn reinvite_response(
        &mut self,
        sid: SessionId,
        sent: Option<(Request, Target)>,
        response: Option<Response>,
        now: Instant,
    ) {
        let status = response.as_ref().map(|r| r.status_code.code());
        if status.is_some_and(|s| s < 200) {
            return;
        }
        if let (Some(401 | 407), Some(sent), Some(challenge)) = (status, sent, response.as_ref())
            && self.reinvite_challenged(sid, sent, challenge, now)
        {
            return;
        }
        let offer = match self.sessions.get_mut(&sid).and_then(|s| s.reoffer.take()) {
            Some(Reoffer::Sent { offer }) => offer,
            other => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.reoffer = other;
                }
                return;
            }
        };
        match (status, response) {
            (Some(200..=299), Some(response)) => {
                let local = self.config.local.clone();
                let seq = response.cseq_header().ok().and_then(|c| c.seq().ok());
                if let Some(s) = self.sessions.get_mut(&sid)
                    && let (Some(dialog), Some(seq)) = (s.dialog.as_mut(), seq)
                {
                    dialog.receive_target_refresh(&response);
                    let ack = dialog.ack(seq, &local, &mut self.ids);
                    if let Ok(target) = dialog
                        .next_hop()
                        .map_err(UaError::from)
                        .and_then(|h| locate(&h, self.resolver.as_ref()).map_err(UaError::from))
                    {
                        self.layer
                            .send_stateless(SipMessage::Request(ack.clone()), target);
                        s.ack = Some((ack, target));
                    }
                }
                self.event(UaEvent::ReofferAnswered {
                    session: sid,
                    answer: response.body,
                });
            }
            (Some(491), _) => {
                // 14.1: glare; retry after a random wait, longer for the
                // side that owns the Call-ID.
                let owns = self.sessions.get(&sid).is_some_and(|s| s.owns_call_id);
                let ms = if owns {
                    2100 + (self.ids.unit() * 1900.0) as u64
                } else {
                    (self.ids.unit() * 2000.0) as u64
                };
                let wait = Duration::from_millis(ms / 10 * 10);
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.reoffer = Some(Reoffer::RetryAt {
                        at: now + wait,
                        offer,
                    });
                }
            }
            (None | Some(408) | Some(481), _) => {
                self.end(
                    sid,
                    EndReason::DialogGone(status.unwrap_or(408)),
                    None,
                    None,
                );
            }
            (Some(code), response) => self.event(UaEvent::ReofferRejected {
                session: sid,
                status: code,
                warning: response.as_ref().and_then(warning_text),
            }),
        }
    }

    pub(super) fn session_timeout(&mut self, sid: SessionId, now: Instant) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        // 13.3.1.4: retransmit our 2xx at T1, 2T1 ... T2 until the ACK.
        if let Some(p) = s.pending_2xx.as_mut() {
            if p.give_up_at <= now {
                s.pending_2xx = None;
                // No ACK: end the session with a BYE (13.3.1.4).
                let _ = self.send_bye(sid, now);
                self.end(sid, EndReason::Timeout, None, None);
                return;
            }
            if p.next_at <= now {
                let message = SipMessage::Response(p.response.clone());
                let target = p.target;
                p.interval = self.config.timers.backoff(p.interval);
                p.next_at = now + p.interval;
                self.layer.send_stateless(message, target);
            }
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if let Some(Reoffer::RetryAt { at, offer }) = &s.reoffer
            && *at <= now
        {
            let offer = offer.clone();
            s.reoffer = None;
            if self.send_reinvite(sid, offer, now).is_err() {
                self.end(sid, EndReason::TransportError, None, None);
                return;
            }
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.give_up_at.is_some_and(|at| at <= now) {
            s.give_up_at = None;
            let _ = self.cancel(sid, now);
        }
    }

    fn config_target(&self) -> Target {
        Target::new(self.config.local.transport, self.config.local.addr)
    }
}

/// A CANCEL for a pending INVITE (9.1): same Request-URI, Call-ID, To,
/// From, CSeq number and top Via; the INVITE's Route headers.
pub(super) fn cancel_for(invite: &Request) -> Request {
    let mut headers = Headers::default();
    if let Ok(via) = invite.via_header() {
        headers.push(Header::Via(via.clone()));
    }
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    for h in invite.headers.iter() {
        if matches!(
            h,
            Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_)
        ) {
            headers.push(h.clone());
        }
    }
    let seq = invite
        .cseq_header()
        .ok()
        .and_then(|c| c.seq().ok())
        .unwrap_or(1);
    headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
        "{seq} CANCEL"
    ))));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}
