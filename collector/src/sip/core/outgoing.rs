//! Calls the collector places: `call` (INVITE a sensor by its address of
//! record, docs/protocol.md 3.3); `set-rate` is in `reoffer.rs`.

use super::{
    Action, Call, Core, Direction, Now, OpenArgs, PendingCall, PendingId, Phase, ReplyTo,
    canonical_aor,
};
use crate::sip::control::{CallRequest, Reply};
use crate::sip::credentials::Credentials;
use crate::sip::offer;
use sipsensor_protocol::{
    AgreedRecovery, Binding, LocalMedia, LocalSdp, NegotiationError, Sdp, SessionId as UaSession,
    SipUri, StreamRole, Transport, UaError, agreed_recovery, apply_answer, offer_with_recovery,
    parse_sdp,
};
use std::net::IpAddr;
use std::time::Duration;

/// Packets of a sensor we call are kept this long before its stream exists.
const EARLY_MEDIA_WAIT: Duration = Duration::from_secs(40);

/// A call ready to be placed.
struct Prepared {
    target: String,
    aor: String,
    offer: Sdp,
    origin: LocalSdp,
    local: LocalMedia,
    source_ip: Option<IpAddr>,
}

/// Where to send the INVITE for a binding: its Contact, or where its
/// REGISTER came from when the sensor is behind NAT (RFC 3581, RFC 5626),
/// and always over TLS: a sensor keeps no TLS listener, it is reached on
/// the connection it registered over (RFC 5923, RFC 5626 5.3).
pub(super) fn target_of(b: &Binding) -> String {
    target_for(
        &b.contact,
        b.source,
        b.transport,
        b.behind_nat() || b.transport == Transport::Tls || is_flow(b),
    )
}

/// A binding registered as an RFC 5626 flow over a connection (`ob` in
/// its Contact, or a `reg-id`) is reached over that connection whatever
/// its Contact says (RFC 5626 5.3, 6): the sensor need not listen at all.
/// Should the connection be gone, the call fails rather than reaching
/// whoever now answers at the Contact.
fn is_flow(b: &Binding) -> bool {
    b.transport.is_reliable()
        && (b.contact.param("ob").is_some()
            || b.params
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("reg-id")))
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
        // Over the sensor's own TLS connection (RFC 5923), never in clear.
        Transport::Tls => format!("sips:{user}{host}"),
    }
}

/// A URI that is reached over TLS: `sips:` (RFC 3261 26.2) or
/// `;transport=tls`.
pub(crate) fn over_tls(uri: &str) -> bool {
    SipUri::parse(uri).is_ok_and(|u| {
        u.is_secure()
            || u.param("transport")
                .flatten()
                .is_some_and(|t| t.eq_ignore_ascii_case("tls"))
    })
}

fn summary_of(offer: &Sdp) -> String {
    offer::sensor_description(offer)
        .map(|d| offer::summary(&d))
        .unwrap_or_default()
}

impl Core {
    /// SIGHUP read the credentials file again: the password our calls
    /// answer sensors' challenges with (RFC 3261 22.2) follows it. With
    /// `sip.register` too, the registration's reload sets the same user.
    pub fn reload_calling(&mut self, credentials: &Credentials) {
        if self.settings.own_user.is_some() {
            return;
        }
        let Some(user) = self.settings.calling_user.clone() else {
            return;
        };
        match credentials.password(&user) {
            Some(password) => self.push(Action::SetOwnCredentials { user, password }),
            None => self.warn(
                "credentials",
                format!(
                    "sip.calling: user {user:?} has no plain password in the credentials \
                     file; calls keep the old one"
                ),
            ),
        }
    }

    /// `sipsensor-collector call AOR`.
    pub(super) fn call(&mut self, req: CallRequest, reply: ReplyTo, now: Now) {
        let p = match self.prepare_call(&req, now) {
            Ok(p) => p,
            Err(e) => {
                self.reply(reply, Reply::error(e));
                return;
            }
        };
        if let Some(ip) = p.source_ip {
            self.push(Action::ExpectSource {
                ip,
                until: now.instant + EARLY_MEDIA_WAIT,
            });
        }
        tracing::info!(
            "calling {} at {}: {}",
            p.aor,
            p.target,
            summary_of(&p.offer)
        );
        let call = PendingId(self.next_pending);
        self.next_pending += 1;
        self.push(Action::Call {
            call,
            aor: p.aor.clone(),
            target: p.target,
            offer: p.offer.to_bytes(),
        });
        self.pending.insert(
            call,
            PendingCall {
                aor: p.aor,
                offer: p.offer,
                origin: p.origin,
                local: p.local,
                reply,
                source_ip: p.source_ip,
            },
        );
    }

    fn prepare_call(&mut self, req: &CallRequest, now: Now) -> Result<Prepared, String> {
        let aor =
            canonical_aor(&req.aor).ok_or_else(|| format!("{:?} is not a SIP URI", req.aor))?;
        let desc = match (&req.stream, self.offers.get(&aor)) {
            (Some(w), _) => offer::wanted_description(w).map_err(|e| e.to_string())?,
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
            let bindings = self
                .registrar
                .as_ref()
                .map(|r| r.lookup(&aor, now.instant))
                .unwrap_or_default();
            let b = bindings
                .first()
                .ok_or_else(|| format!("{aor} is not registered here"))?;
            (target_of(b), Some(b.source.ip().to_canonical()))
        } else {
            // Through the outbound proxy: it knows where the sensor is.
            (aor.clone(), None)
        };
        let mut local = self.local_media();
        // SDES keys only go into an offer whose every hop we send it on is
        // TLS: straight to a sensor on its TLS flow, or to a TLS proxy.
        let direct = self.settings.embedded_registrar;
        let secure = if direct {
            over_tls(&target)
        } else {
            self.settings.proxy_over_tls
        };
        if let (true, Some(security)) = (secure, self.settings.media_security_over_tls) {
            local.security = security;
        }
        let mut origin = LocalSdp::new("collector", self.settings.rtp.ip(), &mut self.ids);
        // docs/protocol.md 11.1; the shell sets the `mark` (storage).
        let support =
            offer::collector_support(self.settings.recovery, self.settings.backfill_max_rate);
        let offer = offer_with_recovery(&desc, StreamRole::Receiver, &local, &support, &mut origin)
            .map_err(|e| e.to_string())?;
        Ok(Prepared {
            target,
            aor,
            offer,
            origin,
            local,
            source_ip,
        })
    }

    pub(super) fn placed(&mut self, call: PendingId, result: Result<UaSession, UaError>, now: Now) {
        let Some(p) = self.pending.remove(&call) else {
            return;
        };
        match result {
            Ok(session) => {
                let call_id = format!("collector-{}", self.ids.hex(8));
                self.calls.insert(
                    session,
                    Call {
                        aor: p.aor,
                        call_id,
                        direction: Direction::Outgoing,
                        phase: Phase::Setup,
                        opened: None,
                        agreed: None,
                        recovery: AgreedRecovery::default(),
                        origin: p.origin,
                        local: p.local,
                        offer: Some(p.offer),
                        reply: Some(p.reply),
                        source_ip: p.source_ip,
                        started_ns: now.unix_ns,
                    },
                );
            }
            Err(e) => {
                self.reply(p.reply, Reply::error(format!("cannot call {}: {e}", p.aor)));
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
        let agreed = parse_sdp(body)
            .map_err(NegotiationError::from)
            .and_then(|answer| {
                let agreed = apply_answer(&offer, &answer, StreamRole::Receiver)?;
                Ok((
                    agreed,
                    agreed_recovery(&offer, &answer, StreamRole::Receiver),
                ))
            });
        let (agreed, recovery) = match agreed {
            Ok(a) => a,
            Err(e) => {
                // RFC 3264 / docs/protocol.md 3.1: an unusable answer ends
                // the session (ACK, then BYE).
                let message = format!("{} answered unusably: {e}", call.aor);
                if let Some(to) = call.reply.take() {
                    self.reply(to, Reply::error(message));
                }
                self.push(Action::Hangup(session));
                return;
            }
        };
        tracing::info!(
            "{} answered: {}",
            call.aor,
            offer::summary(&agreed.description)
        );
        call.agreed = Some(agreed.clone());
        call.recovery = recovery.clone();
        let args = OpenArgs {
            aor: call.aor.clone(),
            sensor: self.sensors.get(&call.aor).copied(),
            call_id: call.call_id.clone(),
            agreed,
            recovery,
            signalling_ip: call.source_ip,
            local_ssrc: call.local.ssrc.unwrap_or_default(),
            started_ns: call.started_ns,
        };
        self.push(Action::Open {
            session,
            args,
            accept: None,
        });
    }
}

#[cfg(test)]
mod tests;
