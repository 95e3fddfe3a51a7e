//! Who may call: a trusted peer by its source address, or a user who
//! proves a password by digest (RFC 3261 22.4) and calls as itself.

pub(super) mod limiter;

use self::limiter::{FailureLine, Outcome, loggable};
use super::{Action, Core};
use sipsensor_protocol::{Request, Response, SipUri, Target};
use std::net::IpAddr;
use std::time::Instant;

/// Why an INVITE is not let in.
pub(super) enum Refusal {
    /// The digest challenge (or 400) to send.
    Challenge(Response),
    Forbidden(String),
    /// The source is backing off after too many failures.
    Blocked,
}

impl Core {
    pub(super) fn authorize(
        &mut self,
        request: &Request,
        source: Target,
        from: Option<&str>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let ip = source.addr.ip().to_canonical();
        if self.trusted(ip) {
            return Ok(());
        }
        let Some(reg) = self.registrar.as_mut() else {
            return Err(Refusal::Forbidden(format!(
                "{ip} is not a trusted peer and this collector has no credentials"
            )));
        };
        let method = request.method.to_string();
        if self.limiter.blocked(ip, now) {
            self.note_auth(ip, from, &method, Outcome::Blocked, now);
            return Err(Refusal::Blocked);
        }
        match reg.authenticate_request(request, now) {
            Ok(user) => {
                let from_user = from
                    .and_then(|f| SipUri::parse(f).ok())
                    .and_then(|u| u.user);
                if from_user.as_deref() == Some(user.username.as_str()) {
                    self.note_auth(ip, from, &method, Outcome::Accepted, now);
                    Ok(())
                } else {
                    self.note_auth(ip, from, &method, Outcome::WrongIdentity, now);
                    Err(Refusal::Forbidden(format!(
                        "user {} may not call as {}",
                        user.username,
                        from.unwrap_or("?")
                    )))
                }
            }
            Err(challenge) => {
                let outcome = reg
                    .take_auth_failure()
                    .map_or(Outcome::Challenged, |f| Outcome::of(&f));
                self.note_auth(ip, from, &method, outcome, now);
                Err(Refusal::Challenge(challenge))
            }
        }
    }

    pub(super) fn trusted(&self, ip: IpAddr) -> bool {
        self.settings.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Counts an authentication attempt by outcome; a failure gets its
    /// (rate-limited) log line and may start the source's back-off.
    pub(super) fn note_auth(
        &mut self,
        ip: IpAddr,
        aor: Option<&str>,
        method: &str,
        outcome: Outcome,
        now: Instant,
    ) {
        self.push(Action::CountAuth(outcome.label()));
        if !outcome.is_failure() {
            return;
        }
        let verdict = self.limiter.failed(ip, outcome, now);
        if let Some(held) = verdict.log {
            let line = FailureLine {
                source: ip,
                aor: loggable(aor.unwrap_or_default()),
                method: loggable(method),
                outcome,
                held,
            };
            self.push(Action::LogAuth(line.to_string()));
        }
        if verdict.blocked {
            let l = self.limiter.limits();
            let line = format!(
                "sip auth back-off: source={ip} refused for {} s after {} failures within {} s",
                l.backoff.as_secs(),
                l.failures,
                l.window.as_secs()
            );
            self.push(Action::LogAuth(line));
        }
    }
}

#[cfg(test)]
mod tests;
