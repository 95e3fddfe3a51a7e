//! Calls the collector places: `call` (INVITE a sensor by its address of
//! record) and `set-rate` (a re-INVITE, docs/protocol.md 3.3 and 3.4).

use super::control::{CallRequest, Reply};
use super::offer;
use super::tu::{Call, Command, OpenArgs, Phase, Tu, canonical_aor, now_ns, open, renegotiate};
use sipsensor_protocol::sdp::{self, LocalMedia, LocalSdp, Role, Sdp};
use sipsensor_protocol::sip::Transport;
use sipsensor_protocol::sip::registrar::Binding;
use sipsensor_protocol::sip::registrar::uri::SipUri;
use sipsensor_protocol::sip::ua::SessionId as UaSession;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Packets of a sensor we call are kept this long before its stream exists.
const EARLY_MEDIA_WAIT: Duration = Duration::from_secs(40);
/// A re-INVITE's new `cfg` is awaited this long (64*T1 is 32 s).
const REINVITE_WAIT: Duration = Duration::from_secs(35);

/// A call between `ua.call` and its `Placed` report.
#[derive(Debug)]
pub struct PendingCall {
    aor: String,
    offer: Sdp,
    origin: LocalSdp,
    local: LocalMedia,
    reply: oneshot::Sender<Reply>,
    source_ip: Option<IpAddr>,
}

/// Where to send the INVITE for a binding: its Contact, or where its
/// REGISTER came from when the sensor is behind NAT (RFC 3581, RFC 5626).
fn target_of(b: &Binding) -> String {
    target_for(&b.contact, b.source, b.transport, b.behind_nat())
}

fn target_for(
    contact: &SipUri,
    source: std::net::SocketAddr,
    transport: Transport,
    behind_nat: bool,
) -> String {
    if !behind_nat {
        return contact.to_string();
    }
    let user = contact
        .user
        .as_ref()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let host = match source {
        std::net::SocketAddr::V4(a) => a.to_string(),
        std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    match transport {
        Transport::Udp => format!("sip:{user}{host}"),
        Transport::Tcp => format!("sip:{user}{host};transport=tcp"),
    }
}

impl Tu {
    /// `sipsensor-collector call AOR`.
    pub(super) fn call(&mut self, req: CallRequest, reply: oneshot::Sender<Reply>) {
        let prepared = self.prepare_call(&req);
        let (target, aor, offer, origin, local, source_ip) = match prepared {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Reply::error(e));
                return;
            }
        };
        if let Some(ip) = source_ip {
            self.ctx
                .media
                .expect_source(ip, Instant::now() + EARLY_MEDIA_WAIT);
        }
        tracing::info!("calling {aor} at {target}: {}", summary_of(&offer));
        let bytes = offer.to_bytes();
        let pending = PendingCall {
            aor,
            offer,
            origin,
            local,
            reply,
            source_ip,
        };
        let tx = self.ctx.tx.clone();
        self.ctx.ua.fire(move |ua, now| {
            let r = ua.call(&target, bytes, now).map_err(|e| e.to_string());
            let _ = tx.send(Command::Placed(r, Box::new(pending)));
        });
    }

    #[allow(clippy::type_complexity)]
    fn prepare_call(
        &mut self,
        req: &CallRequest,
    ) -> Result<(String, String, Sdp, LocalSdp, LocalMedia, Option<IpAddr>), String> {
        let aor =
            canonical_aor(&req.aor).ok_or_else(|| format!("{:?} is not a SIP URI", req.aor))?;
        let desc = match (&req.stream, self.offers.get(&aor)) {
            (Some(w), _) => offer::wanted_description(w)?,
            (None, Some(full)) => {
                let policy = offer::receive_policy(&self.settings.policy, full);
                offer::narrowed(full, &policy).map_err(|e| e.to_string())?
            }
            (None, None) => {
                return Err(format!(
                    "{aor} has not offered its stream to this collector yet: describe what to \
                     ask for (--clock, --channel, --input)"
                ));
            }
        };
        let (target, source_ip) = if self.settings.embedded_registrar {
            let now = Instant::now();
            let bindings = self
                .registrar
                .as_ref()
                .map(|r| r.lookup(&aor, now))
                .unwrap_or_default();
            let b = bindings
                .first()
                .ok_or_else(|| format!("{aor} is not registered here"))?;
            (target_of(b), Some(b.source.ip().to_canonical()))
        } else {
            // Through the outbound proxy: it knows where the sensor is.
            (aor.clone(), None)
        };
        let local = self.local_media();
        let mut origin = LocalSdp::new("collector", self.settings.rtp.ip(), &mut self.ids);
        let offer =
            sdp::offer(&desc, Role::Receiver, &local, &mut origin).map_err(|e| e.to_string())?;
        Ok((target, aor, offer, origin, local, source_ip))
    }

    pub(super) fn placed(&mut self, result: Result<UaSession, String>, p: PendingCall) {
        match result {
            Ok(session) => {
                let call_id = format!("collector-{}", self.ids.hex(8));
                self.calls.insert(
                    session,
                    Call {
                        aor: p.aor,
                        call_id,
                        phase: Phase::Setup,
                        opened: None,
                        agreed: None,
                        origin: p.origin,
                        local: p.local,
                        offer: Some(p.offer),
                        reply: Some(p.reply),
                        source_ip: p.source_ip,
                        started_ns: now_ns(),
                    },
                );
            }
            Err(e) => {
                let _ = p
                    .reply
                    .send(Reply::error(format!("cannot call {}: {e}", p.aor)));
            }
        }
    }

    /// The sensor answered our INVITE.
    pub(super) fn answered(&mut self, session: UaSession, body: &[u8]) {
        let Some(call) = self.calls.get_mut(&session) else {
            return;
        };
        let Some(offer) = call.offer.take() else {
            return;
        };
        let agreed = sdp::parse(body)
            .map_err(sdp::NegotiationError::from)
            .and_then(|answer| sdp::apply_answer(&offer, &answer, Role::Receiver));
        let agreed = match agreed {
            Ok(a) => a,
            Err(e) => {
                // RFC 3264 / docs/protocol.md 3.1: an unusable answer ends
                // the session (ACK, then BYE).
                let aor = call.aor.clone();
                if let Some(r) = call.reply.take() {
                    let _ = r.send(Reply::error(format!("{aor} answered unusably: {e}")));
                }
                self.ctx.ua.fire(move |ua, now| {
                    let _ = ua.hangup(session, now);
                });
                return;
            }
        };
        tracing::info!(
            "{} answered: {}",
            call.aor,
            offer::summary(&agreed.description)
        );
        call.agreed = Some(agreed.clone());
        let args = OpenArgs {
            aor: call.aor.clone(),
            sensor: self.sensors.get(&call.aor).copied(),
            call_id: call.call_id.clone(),
            agreed,
            signalling_ip: call.source_ip,
            local_ssrc: call.local.ssrc.unwrap_or_default(),
            started_ns: call.started_ns,
        };
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            let result = open(&ctx, args, false).await.map_err(|(status, why)| {
                let w = why.clone();
                ctx.ua.fire(move |ua, now| {
                    let _ = ua.hangup(session, now);
                });
                format!("{status} {w}")
            });
            let _ = ctx.tx.send(Command::Opened { session, result });
        });
    }

    /// `sipsensor-collector set-rate SENSOR HZ`.
    pub(super) fn set_rate(&mut self, sensor: &str, hz: f64, reply: oneshot::Sender<Reply>) {
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
            let _ = reply.send(Reply::error(format!("no active stream of {sensor}")));
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
            let _ = reply.send(Reply::error(format!(
                "a change of {}'s stream is already under way",
                call.aor
            )));
            return;
        }
        let (Some(agreed), Some(opened)) = (&call.agreed, call.opened) else {
            return;
        };
        let current = agreed.description.clone();
        let next = match offer::with_rate(&current, full.as_ref(), hz) {
            Ok(d) => d,
            Err(e) => {
                let _ = reply.send(Reply::error(e));
                return;
            }
        };
        if next == current {
            let _ = reply.send(Reply::ok(format!(
                "{} already streams {}",
                call.aor,
                offer::summary(&current)
            )));
            return;
        }
        let offer = match sdp::offer(&next, Role::Receiver, &call.local, &mut call.origin) {
            Ok(o) => o,
            Err(e) => {
                let _ = reply.send(Reply::error(e.to_string()));
                return;
            }
        };
        tracing::info!("asking {} for {}", call.aor, offer::summary(&next));
        self.ctx
            .media
            .expect_config(opened.media, Instant::now() + REINVITE_WAIT);
        let bytes = offer.to_bytes();
        call.offer = Some(offer);
        call.reply = Some(reply);
        let tx = self.ctx.tx.clone();
        self.ctx.ua.fire(move |ua, now| {
            if let Err(e) = ua.reinvite(session, bytes, now) {
                let _ = tx.send(Command::ReinviteFailed {
                    session,
                    error: e.to_string(),
                });
            }
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
        let agreed = sdp::parse(body)
            .map_err(sdp::NegotiationError::from)
            .and_then(|answer| sdp::apply_answer(&offer, &answer, Role::Receiver));
        match agreed {
            Ok(agreed) => {
                let ctx = self.ctx.clone();
                let call_id = call.call_id.clone();
                tokio::spawn(async move {
                    let result = renegotiate(&ctx, opened, &call_id, agreed).await;
                    let _ = ctx.tx.send(Command::Renegotiated { session, result });
                });
            }
            Err(e) => {
                call.offer = None;
                let aor = call.aor.clone();
                if let Some(r) = call.reply.take() {
                    let _ = r.send(Reply::error(format!(
                        "{aor} answered the change unusably ({e}); hanging up"
                    )));
                }
                self.ctx.ua.fire(move |ua, now| {
                    let _ = ua.hangup(session, now);
                });
            }
        }
    }
}

fn summary_of(offer: &Sdp) -> String {
    offer::sensor_description(offer)
        .map(|d| offer::summary(&d))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_bindings_are_reached_where_they_registered_from() {
        let contact = SipUri::parse("sip:s1@10.0.0.5:5070").unwrap();
        let local = "10.0.0.5:5070".parse().unwrap();
        let nat = "198.51.100.7:40123".parse().unwrap();
        assert_eq!(
            target_for(&contact, local, Transport::Udp, false),
            "sip:s1@10.0.0.5:5070"
        );
        assert_eq!(
            target_for(&contact, nat, Transport::Udp, true),
            "sip:s1@198.51.100.7:40123"
        );
        assert_eq!(
            target_for(&contact, nat, Transport::Tcp, true),
            "sip:s1@198.51.100.7:40123;transport=tcp"
        );
    }
}
