//! Who may call: a trusted peer by its source address, or a user who
//! proves a password by digest (RFC 3261 22.4) and calls as itself.

use super::Core;
use sipsensor_protocol::{Request, Response, SipUri, Target};
use std::time::Instant;

/// Why an INVITE is not let in.
pub(super) enum Refusal {
    /// The digest challenge (or 400) to send.
    Challenge(Response),
    Forbidden(String),
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
        if self.settings.trusted.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        let Some(reg) = self.registrar.as_mut() else {
            return Err(Refusal::Forbidden(format!(
                "{ip} is not a trusted peer and this collector has no credentials"
            )));
        };
        match reg.authenticate_request(request, now) {
            Ok(user) => {
                let from_user = from
                    .and_then(|f| SipUri::parse(f).ok())
                    .and_then(|u| u.user);
                if from_user.as_deref() == Some(user.username.as_str()) {
                    Ok(())
                } else {
                    Err(Refusal::Forbidden(format!(
                        "user {} may not call as {}",
                        user.username,
                        from.unwrap_or("?")
                    )))
                }
            }
            Err(challenge) => Err(Refusal::Challenge(challenge)),
        }
    }
}

#[cfg(test)]
mod tests;
