//! Changes of a running stream: a sensor's re-INVITE (docs/protocol.md
//! 3.4), and how our own re-INVITE ends (the offer is made in
//! `outgoing.rs`).

use super::{Action, Core, Phase, RenegotiateError};
use crate::sip::control::Reply;
use crate::sip::offer;
use crate::storage::SessionId;
use sipsensor_protocol::sdp::{self, Agreed, AnswerPolicy};
use sipsensor_protocol::sip::ua::{SessionId as UaSession, UaError};

impl Core {
    pub(super) fn reoffer(&mut self, session: UaSession, body: &[u8]) {
        let host = self.settings.host.clone();
        let policy_cfg = self.settings.policy;
        let Some(call) = self.calls.get_mut(&session) else {
            self.push(Action::AnswerReoffer {
                session,
                answer: Err((481, "no such stream".into())),
            });
            return;
        };
        let (Some(opened), Phase::Active) = (call.opened, call.phase) else {
            // RFC 3261 14.2: an offer while ours is being set up.
            self.push(Action::AnswerReoffer {
                session,
                answer: Err((491, "the stream is still being set up".into())),
            });
            return;
        };
        let result = sdp::parse(body)
            .map_err(sdp::NegotiationError::from)
            .and_then(|offer| {
                let full = offer::sensor_description(&offer);
                let policy = full
                    .as_ref()
                    .map(|f| offer::receive_policy(&policy_cfg, f))
                    .unwrap_or_default();
                sdp::answer(
                    &offer,
                    &AnswerPolicy::Receive(policy),
                    &call.local,
                    &mut call.origin,
                )
                .map(|(a, g)| (a, g, full))
            });
        let (answer, agreed, full) = match result {
            Ok(x) => x,
            Err(e) => {
                let status = e.status_code();
                let text = e.to_string();
                let message = format!("re-offer from {} ({host}): {status} {text}", call.aor);
                self.warn("reoffer", message);
                self.push(Action::AnswerReoffer {
                    session,
                    answer: Err((status, text)),
                });
                return;
            }
        };
        if let Some(f) = full {
            self.offers.insert(call.aor.clone(), f);
        }
        let unchanged = call
            .agreed
            .as_ref()
            .is_some_and(|a| a.description == agreed.description);
        let answer = answer.to_bytes();
        if unchanged {
            // Same stream (a refresh, or a new address): nothing to record.
            call.agreed = Some(agreed);
            self.push(Action::AnswerReoffer {
                session,
                answer: Ok(answer),
            });
            return;
        }
        tracing::info!(
            "{} changes its stream: {}",
            call.aor,
            offer::summary(&agreed.description)
        );
        let call_id = call.call_id.clone();
        self.push(Action::Renegotiate {
            session,
            opened,
            call_id,
            agreed,
            answer: Some(answer),
        });
    }

    pub(super) fn renegotiated(
        &mut self,
        session: UaSession,
        answer: Option<Vec<u8>>,
        result: Result<(SessionId, Agreed), RenegotiateError>,
    ) {
        if let Some(answer) = answer {
            // The sensor's re-offer is answered once the change is stored.
            let answer = match &result {
                Ok(_) => Ok(answer),
                Err(e) => Err((500, e.to_string())),
            };
            self.push(Action::AnswerReoffer { session, answer });
        }
        let Some(call) = self.calls.get_mut(&session) else {
            return;
        };
        call.offer = None;
        let reply = call.reply.take();
        let (to, message) = match result {
            Ok((record, agreed)) => {
                let summary = offer::summary(&agreed.description);
                if let Some(o) = call.opened.as_mut() {
                    o.session = record;
                }
                call.agreed = Some(agreed);
                tracing::info!("{} now streams {summary}", call.aor);
                (reply, Reply::ok(format!("{} now streams {summary}", call.aor)))
            }
            Err(e) => {
                tracing::error!("{}: the changed stream cannot be recorded: {e}", call.aor);
                (reply, Reply::error(e.to_string()))
            }
        };
        if let Some(to) = to {
            self.reply(to, message);
        }
    }

    pub(super) fn reinvite_failed(&mut self, session: UaSession, error: &UaError) {
        if let Some(c) = self.calls.get_mut(&session) {
            c.offer = None;
            if let Some(to) = c.reply.take() {
                self.reply(to, Reply::error(error.to_string()));
            }
        }
    }

    pub(super) fn reoffer_rejected(
        &mut self,
        session: UaSession,
        status: u16,
        warning: Option<String>,
    ) {
        if let Some(c) = self.calls.get_mut(&session) {
            c.offer = None;
            if let Some(to) = c.reply.take() {
                let why = warning.map(|w| format!(": {w}")).unwrap_or_default();
                let message = format!("{} refused the change with {status}{why}", c.aor);
                self.reply(to, Reply::error(message));
            }
        }
    }
}
