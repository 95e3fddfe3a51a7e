//! The flow the agent keeps to its registrar over TCP (RFC 5626 4.4),
//! sans-I/O: when to send a CRLF keep-alive, when its pong is overdue,
//! and when to register again after the connection failed. Calls arrive
//! on this flow, so a dead one must be noticed within a keep-alive
//! interval, not at the next refresh half an hour later.

use std::time::{Duration, Instant};

use sipsensor_protocol::IdGenerator;

use super::{Action, Controller, Phase};
use crate::backoff::Backoff;
use crate::status::AgentState;

/// RFC 5626 4.4.1: without a Flow-Timer from the registrar, keep-alives on
/// a connection-oriented flow go out every 80-100 % of 120 s (below the
/// 300 s after which our own transport closes an idle connection).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(120);
/// RFC 5626 4.5: base and ceiling of the wait before registering a
/// failed flow again (30 s when every flow failed, at most 1800 s).
pub const RETRY_BASE: Duration = Duration::from_secs(30);
pub const RETRY_MAX: Duration = Duration::from_secs(1800);
/// RFC 5626 4.4.1: a ping whose pong has not come within 10 s means the
/// flow failed. Sooner here: a proxy answers at once, and a path that
/// lost the session's RTCP (docs/protocol.md 6.1) is checked with a ping
/// whose answer should be known within the 5 s of a failover.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(4);

/// What became of a keep-alive the shell was asked to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowPing {
    /// Sent; `pongs` is the transport's count of pongs before it.
    Sent { pongs: u64 },
    /// Sent where no pong can be told apart (no proxy address known).
    Unchecked,
    /// Not sent: the connection is gone.
    Failed,
}
/// What the flow needs done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStep {
    /// Send a CRLF keep-alive on the connection.
    Ping,
    /// A pong is due: count the pongs.
    CheckPong,
    /// The flow failed a while ago: register again (a new connection).
    Reregister,
}

#[derive(Debug)]
enum State {
    /// No registration on the flow yet, or one under way.
    Down,
    Up {
        next_ping: Instant,
        /// The pong awaited: when it is overdue, and the pong count
        /// before its ping.
        pong: Option<(Instant, u64)>,
    },
    Failed {
        retry_at: Instant,
    },
}

#[derive(Debug)]
pub struct FlowKeeper {
    interval: Duration,
    state: State,
    backoff: Backoff,
}

impl FlowKeeper {
    pub fn new(interval: Duration, retry_base: Duration, retry_max: Duration) -> Self {
        Self {
            interval,
            state: State::Down,
            backoff: Backoff::new(retry_base, retry_max),
        }
    }

    /// The registrar bound us over the flow: keep it alive from now on.
    pub fn up(&mut self, now: Instant, ids: &mut IdGenerator) {
        self.backoff.reset();
        self.state = State::Up {
            next_ping: now + self.jittered(ids),
            pong: None,
        };
    }

    /// A keep-alive went out with `pongs` counted before it: its pong is
    /// awaited (an earlier one still awaited keeps its deadline).
    pub fn sent(&mut self, pongs: u64, now: Instant) {
        if let State::Up { pong: p @ None, .. } = &mut self.state {
            *p = Some((now + PONG_TIMEOUT, pongs));
        }
    }

    /// The pong count after [`FlowStep::CheckPong`]: whether a pong came.
    pub fn pong_checked(&mut self, pongs: u64) -> bool {
        match &mut self.state {
            State::Up { pong, .. } => match pong.take() {
                Some((_, before)) => pongs > before,
                None => true,
            },
            _ => true,
        }
    }

    /// A keep-alive could not be sent: the connection is gone. Returns
    /// the wait before registering again.
    pub fn failed(&mut self, now: Instant, ids: &mut IdGenerator) -> Duration {
        let wait = self.backoff.next_delay(ids);
        self.state = State::Failed {
            retry_at: now + wait,
        };
        wait
    }

    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Down => None,
            State::Up { next_ping, pong } => {
                Some(pong.map_or(next_ping, |(due, _)| due.min(next_ping)))
            }
            State::Failed { retry_at } => Some(retry_at),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, ids: &mut IdGenerator) -> Option<FlowStep> {
        let interval = self.jittered(ids);
        match &mut self.state {
            State::Up {
                pong: Some((due, _)),
                ..
            } if *due <= now => {
                // Asked once: `pong_checked` clears it.
                *due = now + PONG_TIMEOUT;
                Some(FlowStep::CheckPong)
            }
            State::Up { next_ping, .. } if *next_ping <= now => {
                *next_ping = now + interval;
                Some(FlowStep::Ping)
            }
            State::Failed { retry_at } if *retry_at <= now => {
                self.state = State::Down;
                Some(FlowStep::Reregister)
            }
            _ => None,
        }
    }

    /// 80-100 % of the interval, so sensors that came up together do not
    /// ping together.
    fn jittered(&self, ids: &mut IdGenerator) -> Duration {
        self.interval.mul_f64(0.8 + 0.2 * ids.unit())
    }
}

/// The controller's side of the flow: keep-alives and re-registering.
impl Controller {
    pub(super) fn flow_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Stopping {
            return;
        }
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        match flow.handle_timeout(now, &mut self.ids) {
            Some(FlowStep::Ping) => self.actions.push_back(Action::PingFlow),
            Some(FlowStep::CheckPong) => self.actions.push_back(Action::CountPongs),
            Some(FlowStep::Reregister) => {
                if let Some(registration) = self.settings.registration.clone() {
                    self.actions.push_back(Action::Register(registration));
                }
            }
            None => {}
        }
    }

    /// The shell's answer to [`Action::PingFlow`]: whether the keep-alive
    /// went out. A flow that cannot carry one is gone, and with it every
    /// call that would reach us on it (RFC 5626 4.4.1): register again.
    pub fn flow_checked(&mut self, ping: FlowPing, now: Instant) {
        if self.phase == Phase::Stopping {
            return;
        }
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        match ping {
            FlowPing::Sent { pongs } => flow.sent(pongs, now),
            FlowPing::Unchecked => {}
            FlowPing::Failed => self.flow_failed("the connection to the registrar failed", now),
        }
    }

    /// The shell's answer to [`Action::CountPongs`]: the transport's pong
    /// count. None since the ping: the registrar or the path to it is gone
    /// even though the connection looks open (RFC 5626 4.4.1).
    pub fn flow_pongs(&mut self, pongs: u64, now: Instant) {
        if self.phase == Phase::Stopping {
            return;
        }
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        if !flow.pong_checked(pongs) {
            self.flow_failed("the registrar did not answer a keep-alive", now);
        }
    }

    fn flow_failed(&mut self, what: &str, now: Instant) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        let wait = flow.failed(now, &mut self.ids);
        self.registered = false;
        self.problem(
            "registration",
            format!("{what}; registering again in {:.0} s", wait.as_secs_f64()),
        );
        if !matches!(self.phase, Phase::Streaming { .. }) {
            self.set_state(AgentState::Registering);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeper() -> FlowKeeper {
        FlowKeeper::new(KEEPALIVE_INTERVAL, RETRY_BASE, RETRY_MAX)
    }

    #[test]
    fn pings_every_96_to_120_s_while_up_and_not_before() {
        let (mut f, mut ids, t0) = (keeper(), IdGenerator::seeded(1), Instant::now());
        assert_eq!(f.poll_timeout(), None, "nothing to keep alive yet");
        f.up(t0, &mut ids);
        let mut now = t0;
        for _ in 0..5 {
            let due = f.poll_timeout().unwrap();
            let gap = due - now;
            assert!(
                gap >= Duration::from_secs(96) && gap <= KEEPALIVE_INTERVAL,
                "{gap:?}"
            );
            assert_eq!(
                f.handle_timeout(due - Duration::from_millis(1), &mut ids),
                None
            );
            assert_eq!(f.handle_timeout(due, &mut ids), Some(FlowStep::Ping));
            now = due;
        }
    }

    #[test]
    fn a_pong_is_awaited_for_its_timeout_and_only_a_new_one_counts() {
        let (mut f, mut ids, t0) = (keeper(), IdGenerator::seeded(3), Instant::now());
        f.up(t0, &mut ids);
        let ping = f.poll_timeout().unwrap();
        assert_eq!(f.handle_timeout(ping, &mut ids), Some(FlowStep::Ping));
        f.sent(10, ping);
        // A second ping before the first pong keeps the first deadline.
        f.sent(11, ping + Duration::from_secs(1));
        let due = ping + PONG_TIMEOUT;
        assert_eq!(f.poll_timeout(), Some(due));
        assert_eq!(
            f.handle_timeout(due - Duration::from_millis(1), &mut ids),
            None
        );
        assert_eq!(f.handle_timeout(due, &mut ids), Some(FlowStep::CheckPong));
        assert!(!f.pong_checked(10), "the count before the ping: no pong");
        // Answered: the next check waits for the next ping.
        f.sent(10, due);
        let due = f.poll_timeout().unwrap();
        assert_eq!(f.handle_timeout(due, &mut ids), Some(FlowStep::CheckPong));
        assert!(f.pong_checked(11));
        assert!(f.poll_timeout().unwrap() - due >= Duration::from_secs(90));
    }

    #[test]
    fn a_failed_flow_is_registered_again_with_growing_waits_until_it_is_up() {
        let (mut f, mut ids, t0) = (keeper(), IdGenerator::seeded(2), Instant::now());
        f.up(t0, &mut ids);
        let first = f.failed(t0, &mut ids);
        assert!(first >= RETRY_BASE / 2 && first <= RETRY_BASE, "{first:?}");
        assert!(!f.is_up());
        assert_eq!(
            f.handle_timeout(t0 + first, &mut ids),
            Some(FlowStep::Reregister)
        );
        // No pings while the registration is under way.
        assert_eq!(f.poll_timeout(), None);
        let second = f.failed(t0 + first, &mut ids);
        assert!(
            second >= RETRY_BASE && second <= 2 * RETRY_BASE,
            "{second:?}"
        );
        // Up again: the next failure starts from the base again.
        f.up(t0 + first + second, &mut ids);
        let again = f.failed(t0 + first + second, &mut ids);
        assert!(again <= RETRY_BASE, "{again:?}");
    }
}
