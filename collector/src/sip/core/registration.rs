//! REGISTER at the embedded registrar, its bindings' expiry, our own
//! registration elsewhere, and the sensor states they imply.

pub(super) mod sources;

use self::sources::AORS_PER_SOURCE;
use super::authorisation::limiter::Outcome;
use super::{Action, Core};
use crate::sip::credentials::Credentials;
use crate::storage::SensorState;
use sipsensor_protocol::prelude::*;
use sipsensor_protocol::{
    Header, RegistrationEvent, Request, ServerId, StatusCode, Target, headers, response_to,
};
use std::time::Instant;

/// What an address with too many sensors is told to wait, in seconds.
const SOURCE_FULL_RETRY_AFTER_SECS: u32 = 300;

fn to_aor(request: &Request) -> Option<String> {
    let uri = request.to_header().ok()?.uri().ok()?;
    super::canonical_aor(&uri.to_string())
}

impl Core {
    pub(super) fn register(
        &mut self,
        id: ServerId,
        request: Request,
        source: Target,
        now: Instant,
    ) {
        if self.registrar.is_none() {
            let tag = self.ids.tag();
            let response = response_to(&request, StatusCode::MethodNotAllowed, Some(&tag));
            self.push(Action::Respond { id, response });
            return;
        }
        let ip = source.addr.ip().to_canonical();
        let aor = to_aor(&request);
        let method = request.method.to_string();
        if !self.trusted(ip) && self.limiter.blocked(ip, now) {
            self.note_auth(ip, aor.as_deref(), &method, Outcome::Blocked, now);
            let tag = self.ids.tag();
            let response = response_to(&request, StatusCode::Forbidden, Some(&tag));
            self.push(Action::RespondStatelessly { id, response });
            return;
        }
        if !self.trusted(ip)
            && let Some(aor) = &aor
            && self.bound_by_source.full_for(ip, aor)
        {
            // RFC 3261 21.5.4: full for this address, try again later.
            let tag = self.ids.tag();
            let mut response = response_to(&request, StatusCode::ServiceUnavailable, Some(&tag));
            response
                .headers
                .push(Header::RetryAfter(headers::RetryAfter::new(
                    SOURCE_FULL_RETRY_AFTER_SECS.to_string(),
                )));
            self.push(Action::RespondStatelessly { id, response });
            self.count("register_source_full");
            self.warn(
                "register",
                format!(
                    "REGISTER for {aor} from {} refused with 503: {AORS_PER_SOURCE} sensors \
                     are registered from this address",
                    source.addr
                ),
            );
            return;
        }
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let response = reg.handle_register(&request, source.addr, source.transport, now);
        let code = response.status_code.code();
        let failure = reg.take_auth_failure();
        let bound = aor.as_ref().is_some_and(|a| !reg.lookup(a, now).is_empty());
        if let Some(failure) = failure {
            // A challenge or a refusal keeps no state: a forged source
            // gets one answer per REGISTER it sent.
            self.note_auth(ip, aor.as_deref(), &method, Outcome::of(&failure), now);
            self.push(Action::RespondStatelessly { id, response });
            return;
        }
        if code == 200 && reg.config().authenticate {
            self.note_auth(ip, aor.as_deref(), &method, Outcome::Accepted, now);
        }
        self.push(Action::Respond { id, response });
        match code {
            200 => {
                if let Some(aor) = aor {
                    if bound {
                        self.bound_by_source.bound(&aor, ip);
                    } else {
                        self.bound_by_source.unbound(&aor);
                    }
                    let state = match (self.streaming(&aor), bound) {
                        (true, _) => SensorState::Streaming,
                        (false, true) => SensorState::Registered,
                        (false, false) => SensorState::Offline,
                    };
                    self.set_state(aor, state);
                }
            }
            401 | 407 => {}
            _ => {
                self.count("register_refused");
                self.warn(
                    "register",
                    format!(
                        "REGISTER for {} from {} refused with {code}",
                        aor.unwrap_or_default(),
                        source.addr
                    ),
                );
            }
        }
    }

    /// The registrar's bindings that ran out by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(reg) = self.registrar.as_mut() else {
            return;
        };
        let gone = reg.expire(now);
        let mut aors: Vec<String> = gone.into_iter().map(|b| b.aor).collect();
        aors.dedup();
        for aor in aors {
            if !self.bound(&aor, now) {
                self.bound_by_source.unbound(&aor);
            }
            if !self.bound(&aor, now) && !self.streaming(&aor) {
                tracing::info!("registration of {aor} expired");
                self.set_state(aor, SensorState::Offline);
            }
        }
    }

    fn bound(&self, aor: &str, now: Instant) -> bool {
        self.registrar
            .as_ref()
            .is_some_and(|r| !r.lookup(aor, now).is_empty())
    }

    /// A call's stream is closed: the sensor is registered or offline,
    /// unless another call of it streams.
    pub(super) fn closed(&mut self, aor: String, now: Instant) {
        if self.streaming(&aor) {
            return;
        }
        self.fleet_session_ended(&aor);
        let state = if self.bound(&aor, now) {
            SensorState::Registered
        } else {
            SensorState::Offline
        };
        self.set_state(aor, state);
    }

    /// SIGHUP read the credentials file again: its users replace the old.
    pub fn reload(&mut self, credentials: Credentials) {
        if let Some(user) = self.settings.own_user.clone()
            && let Some(password) = credentials.password(&user)
        {
            self.push(Action::SetOwnCredentials { user, password });
        }
        if let Some(r) = self.registrar.as_mut() {
            r.set_credentials(Box::new(credentials.store));
        }
    }

    /// Our own registration's progress (`sip.register`).
    pub(super) fn registration(&mut self, e: RegistrationEvent) {
        match e {
            RegistrationEvent::Registered { expires, contact } => tracing::info!(
                "registered as {} ({contact}, {} s)",
                self.settings.identity,
                expires.as_secs()
            ),
            RegistrationEvent::Failed { reason } => {
                self.warn("registration", format!("cannot register: {reason}"))
            }
            RegistrationEvent::Expired => {
                self.warn("registration", "our registration expired".into())
            }
            RegistrationEvent::Retrying { after } => {
                tracing::info!("registering again in {:.0} s", after.as_secs_f64())
            }
            RegistrationEvent::Unregistered => tracing::info!("unregistered"),
        }
    }
}

#[cfg(test)]
mod tests;
