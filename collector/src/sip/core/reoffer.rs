//! Changes of a running stream (docs/protocol.md 3.4): a sensor's
//! re-INVITE, and ours (`set-rate`).

use super::{Action, Core, Now, Phase, RenegotiateError, ReplyTo, canonical_aor};
use crate::sip::control::Reply;
use crate::sip::offer;
use crate::storage::SessionId;
use sipsensor_protocol::{
    Agreed, AgreedRecovery, AnswerPolicy, NegotiationError, SessionId as UaSession, StreamRole,
    UaError, agreed_recovery, answer_with_recovery, apply_answer, offer_with_recovery, parse_sdp,
};
use std::time::Duration;

/// A re-INVITE's new `cfg` is awaited this long (64*T1 is 32 s).
const REINVITE_WAIT: Duration = Duration::from_secs(35);

impl Core {
    /// `sipsensor-collector set-rate SENSOR HZ`.
    pub(super) fn set_rate(&mut self, sensor: &str, hz: f64, reply: ReplyTo, now: Now) {
        let wanted = canonical_aor(sensor);
        let found = self
            .calls
            .iter()
            .filter(|(_, c)| c.phase == Phase::Active)
            .filter(|(_, c)| {
                Some(&c.aor) == wanted.as_ref()
                    || c.aor.strip_prefix("sip:").and_then(|r| r.split('@').next()) == Some(sensor)
            })
            .max_by_key(|(_, c)| c.started_ns)
            .map(|(s, _)| *s);
        let Some(session) = found else {
            self.reply(reply, Reply::error(format!("no active stream of {sensor}")));
            return;
        };
        let full = self
            .calls
            .get(&session)
            .and_then(|c| self.offers.get(&c.aor))
            .cloned();
        let Some(call) = self.calls.get_mut(&session) else {
            return;
        };
        if call.offer.is_some() {
            let message = format!("a change of {}'s stream is already under way", call.aor);
            self.reply(reply, Reply::error(message));
            return;
        }
        let (Some(agreed), Some(opened)) = (&call.agreed, call.opened) else {
            return;
        };
        let current = agreed.description.clone();
        let next = match offer::with_rate(&current, full.as_ref(), hz) {
            Ok(d) => d,
            Err(e) => {
                self.reply(reply, Reply::error(e.to_string()));
                return;
            }
        };
        if next == current {
            let message = format!("{} already streams {}", call.aor, offer::summary(&current));
            self.reply(reply, Reply::ok(message));
            return;
        }
        let support =
            offer::collector_support(self.settings.recovery, self.settings.backfill_max_rate);
        let made = offer_with_recovery(
            &next,
            StreamRole::Receiver,
            &call.local,
            &support,
            &mut call.origin,
        );
        let offer = match made {
            Ok(o) => o,
            Err(e) => {
                self.reply(reply, Reply::error(e.to_string()));
                return;
            }
        };
        tracing::info!("asking {} for {}", call.aor, offer::summary(&next));
        let bytes = offer.to_bytes();
        call.offer = Some(offer);
        call.reply = Some(reply);
        self.push(Action::ExpectConfig {
            media: opened.media,
            until: now.instant + REINVITE_WAIT,
        });
        self.push(Action::Reinvite {
            session,
            sensor: opened.sensor,
            offer: bytes,
        });
    }

    /// The sensor answered our re-INVITE.
    pub(super) fn reoffer_answered(&mut self, session: UaSession, body: &[u8]) {
        let Some(call) = self.calls.get_mut(&session) else {
            return;
        };
        let (Some(offer), Some(opened)) = (call.offer.clone(), call.opened) else {
            return;
        };
        let agreed = parse_sdp(body)
            .map_err(NegotiationError::from)
            .and_then(|answer| {
                let agreed = apply_answer(&offer, &answer, StreamRole::Receiver)?;
                Ok((
                    agreed,
                    agreed_recovery(&offer, &answer, StreamRole::Receiver),
                ))
            });
        match agreed {
            Ok((agreed, recovery)) => {
                let call_id = call.call_id.clone();
                call.recovery = recovery.clone();
                self.push(Action::Renegotiate {
                    session,
                    opened,
                    call_id,
                    agreed,
                    recovery,
                    answer: None,
                });
            }
            Err(e) => {
                call.offer = None;
                let message = format!(
                    "{} answered the change unusably ({e}); hanging up",
                    call.aor
                );
                if let Some(to) = call.reply.take() {
                    self.reply(to, Reply::error(message));
                }
                self.push(Action::Hangup(session));
            }
        }
    }
    pub(super) fn reoffer(&mut self, session: UaSession, body: &[u8]) {
        let host = self.settings.host.clone();
        let policy_cfg = self.settings.policy;
        // docs/protocol.md 11.1 rule 5: a re-INVITE carries section 11 too.
        let support =
            offer::collector_support(self.settings.recovery, self.settings.backfill_max_rate);
        let Some(call) = self.calls.get_mut(&session) else {
            self.push(Action::AnswerReoffer {
                session,
                sensor: None,
                answer: Err((481, "no such stream".into())),
            });
            return;
        };
        let (Some(opened), Phase::Active) = (call.opened, call.phase) else {
            // RFC 3261 14.2: an offer while ours is being set up.
            self.push(Action::AnswerReoffer {
                session,
                sensor: None,
                answer: Err((491, "the stream is still being set up".into())),
            });
            return;
        };
        let result = parse_sdp(body)
            .map_err(NegotiationError::from)
            .and_then(|offer| {
                let full = offer::sensor_description(&offer);
                let policy = full
                    .as_ref()
                    .map(|f| offer::receive_policy(&policy_cfg, f))
                    .unwrap_or_default();
                answer_with_recovery(
                    &offer,
                    &AnswerPolicy::Receive(policy),
                    &call.local,
                    &support,
                    &mut call.origin,
                )
                .map(|(a, g, r)| (a, g, r, full))
            });
        let (answer, agreed, recovery, full) = match result {
            Ok(x) => x,
            Err(e) => {
                let status = e.status_code();
                let text = e.to_string();
                let message = format!("re-offer from {} ({host}): {status} {text}", call.aor);
                self.warn("reoffer", message);
                self.push(Action::AnswerReoffer {
                    session,
                    sensor: None,
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
        let repair_changed = !same_repair(&call.recovery, &recovery);
        call.recovery = recovery.clone();
        if unchanged {
            // Same stream (a refresh, or a new address): nothing to record,
            // but NACKs, RTX, backfill and acknowledgement follow the new
            // agreement (docs/protocol.md 11.1 rule 5).
            call.agreed = Some(agreed.clone());
            if repair_changed {
                self.push(Action::Recover {
                    opened,
                    agreed,
                    recovery,
                });
            }
            self.push(Action::AnswerReoffer {
                session,
                sensor: Some(opened.sensor),
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
            recovery,
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
            let sensor = match &answer {
                Ok(_) => self
                    .calls
                    .get(&session)
                    .and_then(|c| c.opened)
                    .map(|o| o.sensor),
                Err(_) => None,
            };
            self.push(Action::AnswerReoffer {
                session,
                sensor,
                answer,
            });
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
                (
                    reply,
                    Reply::ok(format!("{} now streams {summary}", call.aor)),
                )
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
                // A sensor challenges a re-INVITE that reaches it over UDP;
                // our UA answered with the calling credential (RFC 3261
                // 22.2), and a refusal now means that credential is not
                // the sensor's.
                let ours =
                    (self.settings.calling_user.as_ref()).or(self.settings.own_user.as_ref());
                let hint = match (status, ours) {
                    (401 | 403 | 407, Some(user)) => format!(
                        " (the sensor did not accept sip.calling user {user:?}: is its password                          the one under callers: in the sensor's secrets file?)"
                    ),
                    (401 | 403 | 407, None) => " (the sensor wants credentials: set sip.calling                                                 to a user the sensor lists in sip.callers)"
                        .to_owned(),
                    _ => String::new(),
                };
                let message = format!("{} refused the change with {status}{why}{hint}", c.aor);
                self.reply(to, Reply::error(message));
            }
        }
    }
}

/// Whether two agreements ask the same of the media stream: the sample
/// instant, NACK + RTX, backfill and with it acknowledgement. A backfill's
/// `mark` and `oldest` change with every offer and ask nothing of it.
fn same_repair(a: &AgreedRecovery, b: &AgreedRecovery) -> bool {
    let backfill = |r: &AgreedRecovery| {
        r.backfill
            .as_ref()
            .map(|b| (b.payload_type, b.ssrc, b.max_rate))
    };
    a.instant_id == b.instant_id && a.rtx == b.rtx && backfill(a) == backfill(b)
}

#[cfg(test)]
mod tests;
