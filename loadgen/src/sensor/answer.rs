//! A simulated sensor answering the collector: its call (docs/protocol.md
//! 3, the sensor sends within what it can produce) and its re-offers.

use super::State;
use sipsensor_protocol::{AnswerPolicy, NegotiationError, SessionId, answer_offer, parse_sdp};

impl State {
    /// An INVITE from the collector: answered when not streaming yet.
    pub(super) async fn answer_call(&mut self, session: SessionId, offer: &[u8]) {
        let answered = parse_sdp(offer)
            .map_err(NegotiationError::from)
            .and_then(|o| {
                answer_offer(
                    &o,
                    &AnswerPolicy::Send {
                        capabilities: self.config.capabilities.clone(),
                    },
                    &self.local_media,
                    &mut self.origin,
                )
            });
        match answered {
            Ok((answer, agreed)) if self.stream_id.is_none() => {
                let bytes = answer.to_bytes();
                let _ = self
                    .with_ua(move |ua, now| ua.accept(session, bytes, now))
                    .await;
                self.session = Some(session);
                // Answering a plain offer: nothing of section 11.
                self.recovery = None;
                self.start_stream(&agreed);
            }
            Ok(_) => {
                let _ = self
                    .with_ua(move |ua, now| ua.reject(session, 486, Some("already streaming"), now))
                    .await;
            }
            Err(e) => {
                let (status, why) = (e.status_code(), e.to_string());
                let _ = self
                    .with_ua(move |ua, now| ua.reject(session, status, Some(&why), now))
                    .await;
            }
        }
    }

    /// A re-INVITE in the session: the new terms, switched to at once.
    pub(super) async fn answer_reoffer(&mut self, session: SessionId, offer: &[u8]) {
        let answered = parse_sdp(offer)
            .map_err(NegotiationError::from)
            .and_then(|o| {
                answer_offer(
                    &o,
                    &AnswerPolicy::Send {
                        capabilities: self.config.capabilities.clone(),
                    },
                    &self.local_media,
                    &mut self.origin,
                )
            });
        match answered {
            Ok((answer, agreed)) => {
                let bytes = answer.to_bytes();
                let _ = self
                    .with_ua(move |ua, now| ua.answer_reoffer(session, Ok(bytes), now))
                    .await;
                // docs/protocol.md 3.4: the answerer switches as soon
                // as its answer is sent.
                if let Some(id) = self.stream_id {
                    self.listen_srtcp(&agreed);
                    self.pump
                        .update(id, agreed.description.clone(), agreed.srtp.clone());
                }
                let _ = self.streaming.send(Some(agreed));
            }
            Err(e) => {
                let (status, why) = (e.status_code(), e.to_string());
                let _ = self
                    .with_ua(move |ua, now| ua.answer_reoffer(session, Err((status, why)), now))
                    .await;
            }
        }
    }
}
