//! A simulated sensor that keeps its session as the agent does
//! (docs/protocol.md 6.1, in short): an OPTIONS inside the session every
//! `every` (a collector restarted since answers 481, a dead one not at
//! all, and either ends the session, RFC 3261 12.2.1.2), and a session it
//! had called that ended without its own hang-up is set up again: REGISTER
//! (a restarted registrar may have lost the binding), then the call, every
//! [`REDIAL_PAUSE`] while that fails.

use super::State;
use std::time::{Duration, Instant};

/// The pause before calling again, and between failed attempts.
pub(super) const REDIAL_PAUSE: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(super) struct Redial {
    pub every: Duration,
    pub next_ping: Instant,
    /// When to set the session up again; `None`: nothing to set up.
    pub call_at: Option<Instant>,
}

impl State {
    /// When the redial wants to wake, if it is on.
    pub(super) fn redial_wake(&self) -> Option<Instant> {
        let r = self.redial.as_ref()?;
        Some(r.call_at.map_or(r.next_ping, |at| at.min(r.next_ping)))
    }

    pub(super) async fn redial_timer(&mut self, now: Instant) {
        let Some(r) = &mut self.redial else { return };
        let ping = now >= r.next_ping;
        if ping {
            r.next_ping = now + r.every;
        }
        let call = r.call_at.is_some_and(|at| now >= at);
        if call {
            r.call_at = None;
        }
        if ping
            && self.stream_id.is_some()
            && let Some(session) = self.session
        {
            let _ = self
                .with_ua(move |ua, now| ua.ping(Some(session), "", now))
                .await;
        }
        if call {
            self.set_up_again(now).await;
        }
    }

    /// A session it called is gone (or could not be set up): again after
    /// the pause. Not while the fake reboot lasts: that brings its own.
    pub(super) fn session_lost(&mut self, now: Instant) {
        if let Some(r) = &mut self.redial
            && self.calls_out
            && self.ua.is_some()
        {
            r.call_at = Some(now + REDIAL_PAUSE);
        }
    }

    async fn set_up_again(&mut self, now: Instant) {
        if self.session.is_some() {
            return;
        }
        if self.config.registrar.is_some() {
            self.call_when_registered = true;
            self.register(None).await;
        } else {
            self.call(None).await;
            if self.session.is_none() {
                self.session_lost(now);
            }
        }
    }
}
