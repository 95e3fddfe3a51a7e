//! Calls a sensor places to us (INVITE), and what both directions share
//! once set up: the storage report and the end of the call.

use super::authorisation::Refusal;
use super::{Action, Call, Core, Direction, Now, OpenArgs, Opened, Phase, SetupError};
use crate::sip::control::Reply;
use crate::sip::offer;
use sipsensor_protocol::prelude::*;
use sipsensor_protocol::{
    AnswerPolicy, EndReason, Header, LocalSdp, Request, Response, SessionId as UaSession,
    StatusCode, Target, answer_with_recovery, bottom_via, headers, parse_sdp, response_to,
};
use std::net::IpAddr;

fn from_aor(request: &Request) -> Option<String> {
    let uri = request.from_header().ok()?.uri().ok()?;
    super::canonical_aor(&uri.to_string())
}

impl Core {
    /// A final failure with `Warning: <value>` (RFC 3261 20.43).
    fn refuse(&mut self, session: UaSession, request: &Request, status: u16, warning: String) {
        let response = self.failure_response(request, status, warning);
        self.push(Action::RespondToInvite { session, response });
    }

    fn failure_response(&mut self, request: &Request, status: u16, warning: String) -> Response {
        let tag = self.ids.tag();
        let mut response = response_to(request, StatusCode::from(status), Some(&tag));
        response
            .headers
            .push(Header::Warning(headers::Warning::new(warning)));
        response
    }

    /// A refusal of a peer not authenticated: sent once, statelessly.
    fn refuse_unknown(&mut self, session: UaSession, request: &Request, why: &str) {
        let w = format!("399 {} \"{}\"", self.settings.host, why.replace('"', "'"));
        let response = self.failure_response(request, 403, w);
        self.push(Action::RefuseInviteStatelessly { session, response });
    }

    /// Where the sensor's media may come from before its stream latches,
    /// besides its SDP address: the INVITE's source or, when a trusted
    /// proxy relayed it, where the proxy saw the sensor's request come
    /// from (the `received` it added to the sensor's own Via, RFC 3261
    /// 18.2.1, RFC 3581 4). A sensor behind a NAT streams from the NAT's
    /// address, which neither its SDP (its private address) nor the
    /// proxy's address names; only a trusted proxy's word is taken.
    fn sensor_source_ip(&self, request: &Request, source: Target) -> IpAddr {
        if self.trusted(source.addr.ip())
            && let Ok(via) = bottom_via(&request.headers)
            && let Ok(Some(ip)) = via.received()
        {
            return ip;
        }
        source.addr.ip()
    }

    pub(super) fn incoming(
        &mut self,
        session: UaSession,
        request: Request,
        source: Target,
        body: Vec<u8>,
        now: Now,
    ) {
        let from = from_aor(&request);
        if let Err(refusal) = self.authorize(&request, source, from.as_deref(), now.instant) {
            match refusal {
                Refusal::Challenge(response) => {
                    self.push(Action::RefuseInviteStatelessly { session, response });
                }
                Refusal::Forbidden(why) => {
                    self.count("sip_forbidden");
                    self.warn(
                        "forbidden",
                        format!("INVITE from {}: 403, {why}", source.addr),
                    );
                    self.refuse_unknown(session, &request, &why);
                }
                Refusal::Blocked => {
                    self.refuse_unknown(session, &request, "too many authentication failures");
                }
            }
            return;
        }
        let Some(aor) = from else {
            let w = format!("399 {} \"no readable From\"", self.settings.host);
            self.refuse(session, &request, 400, w);
            return;
        };
        let offer = match parse_sdp(&body) {
            Ok(o) => o,
            Err(e) => {
                self.count("sip_not_acceptable");
                let w = format!(
                    "399 {} \"malformed SDP: {}\"",
                    self.settings.host,
                    e.to_string().replace('"', "'")
                );
                self.refuse(session, &request, 400, w);
                return;
            }
        };
        let full = offer::sensor_description(&offer);
        let policy = full
            .as_ref()
            .map(|f| offer::receive_policy(&self.settings.policy, f))
            .unwrap_or_default();
        let mut local = self.local_media();
        // SDES keys only over TLS (RFC 4568 8.3): a sensor's INVITE that
        // came over TLS may be answered with SRTP, any other only in clear.
        if source.transport.is_secure()
            && let Some(security) = self.settings.media_security_over_tls
        {
            local.security = security;
        }
        let mut origin = LocalSdp::new("collector", self.settings.rtp.ip(), &mut self.ids);
        // docs/protocol.md 11.1: an agent without section 11 gets the
        // answer of section 3; its `mark` is set by the shell (storage).
        let support =
            offer::collector_support(self.settings.recovery, self.settings.backfill_max_rate);
        let (answer, agreed, recovery) = match answer_with_recovery(
            &offer,
            &AnswerPolicy::Receive(policy),
            &local,
            &support,
            &mut origin,
        ) {
            Ok(x) => x,
            Err(e) => {
                // RFC 3261 21.4.26 and docs/protocol.md 3.5.
                self.count("sip_not_acceptable");
                self.warn(
                    "not_acceptable",
                    format!(
                        "INVITE from {aor} ({}): {} {e}",
                        source.addr,
                        e.status_code()
                    ),
                );
                let w = e.warning_header(&self.settings.host);
                self.refuse(session, &request, e.status_code(), w);
                return;
            }
        };
        if let Some(f) = full {
            self.offers.insert(aor.clone(), f);
        }
        let call_id = request
            .call_id_header()
            .map(|c| c.value().to_string())
            .unwrap_or_default();
        tracing::info!(
            "{aor} calls from {}: {}",
            source.addr,
            offer::summary(&agreed.description)
        );
        self.calls.insert(
            session,
            Call {
                aor: aor.clone(),
                call_id: call_id.clone(),
                direction: Direction::Incoming,
                phase: Phase::Setup,
                opened: None,
                agreed: Some(agreed.clone()),
                recovery: recovery.clone(),
                origin,
                local: local.clone(),
                offer: None,
                reply: None,
                source_ip: Some(source.addr.ip()),
                started_ns: now.unix_ns,
            },
        );
        let args = OpenArgs {
            sensor: self.sensors.get(&aor).copied(),
            aor,
            call_id,
            agreed,
            recovery,
            signalling_ip: Some(self.sensor_source_ip(&request, source)),
            local_ssrc: local.ssrc.unwrap_or_default(),
            started_ns: now.unix_ns,
        };
        self.push(Action::Open {
            session,
            args,
            accept: Some(answer.to_bytes()),
        });
    }

    pub(super) fn opened(&mut self, session: UaSession, result: Result<Opened, SetupError>) {
        let Some(call) = self.calls.get_mut(&session) else {
            // The call is gone from our books: release what was built.
            if let Ok(opened) = result {
                self.push(Action::Close {
                    opened,
                    report: None,
                });
            }
            return;
        };
        let e = match result {
            Ok(o) => {
                self.sensors.insert(call.aor.clone(), o.sensor);
                call.opened = Some(o);
                if call.phase == Phase::Ended {
                    if let Some(c) = self.calls.remove(&session) {
                        self.finish(c);
                    }
                    return;
                }
                call.phase = Phase::Active;
                let aor = call.aor.clone();
                if let Some(to) = call.reply.take() {
                    let summary = call
                        .agreed
                        .as_ref()
                        .map(|a| offer::summary(&a.description))
                        .unwrap_or_default();
                    let mut reply = Reply::ok(format!("{} streaming: {summary}", call.aor));
                    reply.detail = Some(serde_json::json!({ "call_id": call.call_id }));
                    self.reply(to, reply);
                }
                self.fleet_session_started(&aor);
                return;
            }
            Err(e) => e,
        };
        let direction = call.direction;
        let aor = call.aor.clone();
        let why = match (&e, direction) {
            (SetupError::Open { status, reason }, Direction::Outgoing) => {
                format!("{status} {reason}")
            }
            _ => e.to_string(),
        };
        match (e, direction) {
            (SetupError::Open { status, reason }, Direction::Incoming) => {
                self.push(Action::Reject {
                    session,
                    status,
                    reason,
                });
            }
            (SetupError::Open { .. }, Direction::Outgoing) => self.push(Action::Hangup(session)),
            // The shell released what it built.
            (SetupError::NotAccepted(_), _) => {}
        }
        if let Some(c) = self.calls.remove(&session)
            && let Some(to) = c.reply
        {
            self.reply(to, Reply::error(format!("{aor}: {why}")));
        }
        tracing::error!("call with {aor} failed: {why}");
    }

    pub(super) fn ended(&mut self, session: UaSession, reason: EndReason, warning: Option<String>) {
        let Some(mut call) = self.calls.remove(&session) else {
            return;
        };
        if let Some(to) = call.reply.take() {
            let why = warning.map(|w| format!(" ({w})")).unwrap_or_default();
            self.reply(
                to,
                Reply::error(format!("call with {} ended: {reason:?}{why}", call.aor)),
            );
        }
        tracing::info!("call with {} ended: {reason:?}", call.aor);
        match (call.phase, call.opened.is_some()) {
            (_, true) => self.finish(call),
            (Phase::Setup, false) => {
                // Its set-up reports later and is cleaned up then.
                call.phase = Phase::Ended;
                self.calls.insert(session, call);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
