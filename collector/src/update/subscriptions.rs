//! The collector's fleet subscriptions (docs/protocol.md 12.1), sans I/O:
//! [`SubscriptionManager`] takes stream-session starts and ends, the
//! answers to its SUBSCRIBEs, the NOTIFYs' subscription states and the
//! rollout's wants, each with `now`, and returns the SUBSCRIBEs to send
//! ([`SubscriptionManager::poll_command`]) and when to wake it
//! ([`SubscriptionManager::poll_timeout`]). [`run`] is its shell.
//!
//! One request per sensor is in flight at a time, so an answer is matched
//! by its [`RequestId`]; a late or forged answer to an older request
//! changes nothing.

pub mod run;

use super::fleet::FleetWant;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// `Expires` the collector asks for (RFC 6665 4.1.2.1; 12.1).
pub const REQUESTED_EXPIRES: Duration = Duration::from_secs(3600);
/// The shortest grant 12.1 allows; a shorter one is scheduled as this, so
/// a sensor cannot make the collector refresh in a tight loop.
pub const MIN_EXPIRES: Duration = Duration::from_secs(60);
/// How long after a subscription ended, while the sensor streams, the
/// collector subscribes again (12.1).
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// A SUBSCRIBE still unanswered after this is taken as timed out: longer
/// than the transaction's own timeout (64*T1, RFC 3261 17.1.2.2), so it
/// only acts when an answer was lost between the SIP side and here.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(40);

/// Names one SUBSCRIBE so its answer finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// A SUBSCRIBE for the SIP side to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub request: RequestId,
    /// The sensor's address of record.
    pub sensor: String,
    pub kind: CommandKind,
    /// The body (12.4); `None`: report only.
    pub want: Option<FleetWant>,
    pub expires: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// A new subscription (a new dialog), routed like an INVITE.
    Subscribe,
    /// A re-SUBSCRIBE in the subscription's dialog (RFC 6665 4.1.2.2):
    /// a new want, or the check at a new stream session (12.1).
    Refresh,
    /// Half the grant has passed (12.1). The protocol crate's user agent
    /// refreshes at that point by itself and reports the subscription's
    /// end, so the SIP side answers from what it holds and sends nothing
    /// more: one re-SUBSCRIBE per half-grant, not two.
    Renew,
}

/// How a SUBSCRIBE ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx with the granted `Expires`.
    Accepted { expires: Duration },
    /// 481: the sensor holds no such subscription (it restarted).
    Gone,
    /// Any other final status.
    Refused { status: u16 },
    /// No final answer (RFC 3261 17.1.2.2 Timer F).
    TimedOut,
}

/// A NOTIFY's `Subscription-State` (RFC 6665 4.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyStatus {
    Active { expires: Duration },
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    /// No subscription; a retry is due at `retry_at`, if set.
    None { retry_at: Option<Instant> },
    /// A SUBSCRIBE is out, given up at `give_up_at`.
    Requesting {
        request: RequestId,
        give_up_at: Instant,
        /// Sent because a new stream session started: a 481 then means
        /// the sensor restarted, so a new subscription goes out at once.
        session_check: bool,
    },
    Active {
        refresh_at: Instant,
        expires_at: Instant,
    },
}

#[derive(Debug)]
struct Entry {
    want: Option<FleetWant>,
    streaming: bool,
    sub: Sub,
    /// The want changed while a request was out: send it once answered.
    resend: bool,
}

/// Subscriptions to every sensor the collector streams with.
#[derive(Debug, Default)]
pub struct SubscriptionManager {
    sensors: HashMap<String, Entry>,
    commands: VecDeque<Command>,
    next_request: u64,
}

fn grant(expires: Duration) -> Duration {
    expires.max(MIN_EXPIRES)
}

impl SubscriptionManager {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, sensor: &str) -> &mut Entry {
        self.sensors
            .entry(sensor.to_string())
            .or_insert_with(|| Entry {
                want: None,
                streaming: false,
                sub: Sub::None { retry_at: None },
                resend: false,
            })
    }

    fn send(&mut self, sensor: &str, kind: CommandKind, session_check: bool, now: Instant) {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        let entry = self.entry(sensor);
        entry.sub = Sub::Requesting {
            request,
            give_up_at: now + REQUEST_TIMEOUT,
            session_check,
        };
        entry.resend = false;
        let want = entry.want.clone();
        self.commands.push_back(Command {
            request,
            sensor: sensor.to_string(),
            kind,
            want,
            expires: REQUESTED_EXPIRES,
        });
    }

    /// Ends the sensor's subscription: the next one goes out at its next
    /// stream session or, while it streams, [`RETRY_AFTER`] from now.
    fn ended(&mut self, sensor: &str, now: Instant) {
        let entry = self.entry(sensor);
        let retry_at = entry.streaming.then_some(now + RETRY_AFTER);
        entry.sub = Sub::None { retry_at };
    }

    /// A stream session with the sensor started (its first, or one after
    /// a restart): subscribe, or check with a refresh that the sensor
    /// still holds the subscription (a rebooted one lost it).
    pub fn session_started(&mut self, sensor: &str, now: Instant) {
        let entry = self.entry(sensor);
        entry.streaming = true;
        match entry.sub {
            Sub::None { .. } => self.send(sensor, CommandKind::Subscribe, false, now),
            Sub::Active { expires_at, .. } if expires_at > now => {
                self.send(sensor, CommandKind::Refresh, true, now)
            }
            Sub::Active { .. } => self.send(sensor, CommandKind::Subscribe, false, now),
            Sub::Requesting { .. } => {}
        }
    }

    /// The sensor's stream session ended; its subscription may outlive
    /// it, but no retry is scheduled until the next session.
    pub fn session_ended(&mut self, sensor: &str) {
        let Some(entry) = self.sensors.get_mut(sensor) else {
            return;
        };
        entry.streaming = false;
        if let Sub::None { retry_at } = &mut entry.sub {
            *retry_at = None;
        }
    }

    /// The rollout's want for the sensor (12.4); `None`: report only. An
    /// active subscription carries it at once in a refresh.
    pub fn set_want(&mut self, sensor: &str, want: Option<FleetWant>, now: Instant) {
        let entry = self.entry(sensor);
        if entry.want == want {
            return;
        }
        entry.want = want;
        match entry.sub {
            Sub::Active { .. } => self.send(sensor, CommandKind::Refresh, false, now),
            Sub::Requesting { .. } => entry.resend = true,
            // Carried by the next SUBSCRIBE.
            Sub::None { .. } => {}
        }
    }

    /// The want the sensor is (or will be) told.
    pub fn want(&self, sensor: &str) -> Option<&FleetWant> {
        self.sensors.get(sensor).and_then(|e| e.want.as_ref())
    }

    /// Whether the sensor holds a subscription the collector knows of.
    pub fn is_active(&self, sensor: &str) -> bool {
        self.sensors
            .get(sensor)
            .is_some_and(|e| matches!(e.sub, Sub::Active { .. }))
    }

    /// The answer to `request`; one to any other request than the one out
    /// for the sensor is ignored.
    pub fn answered(&mut self, sensor: &str, request: RequestId, answer: Answer, now: Instant) {
        let Some(entry) = self.sensors.get_mut(sensor) else {
            return;
        };
        let Sub::Requesting {
            request: out,
            session_check,
            ..
        } = entry.sub
        else {
            return;
        };
        if out != request {
            return;
        }
        match answer {
            // Expires 0 in a 2xx ends the subscription (RFC 6665 4.1.2.1).
            Answer::Accepted { expires } if expires.is_zero() => self.ended(sensor, now),
            Answer::Accepted { expires } => {
                let expires = grant(expires);
                entry.sub = Sub::Active {
                    refresh_at: now + expires / 2,
                    expires_at: now + expires,
                };
                if entry.resend {
                    self.send(sensor, CommandKind::Refresh, false, now);
                }
            }
            Answer::Gone if session_check && entry.streaming => {
                self.send(sensor, CommandKind::Subscribe, false, now)
            }
            Answer::Gone | Answer::Refused { .. } | Answer::TimedOut => self.ended(sensor, now),
        }
    }

    /// A NOTIFY in the sensor's subscription arrived (its state goes to
    /// the fleet view: see [`run`]). Returns whether the manager knows the
    /// subscription (a NOTIFY may come before the SUBSCRIBE's 2xx,
    /// RFC 6665 4.1.2.4).
    pub fn notified(&mut self, sensor: &str, status: NotifyStatus, now: Instant) -> bool {
        let Some(entry) = self.sensors.get_mut(sensor) else {
            return false;
        };
        if matches!(entry.sub, Sub::None { .. }) {
            return false;
        }
        match status {
            NotifyStatus::Terminated => self.ended(sensor, now),
            NotifyStatus::Active { expires } => {
                if let Sub::Active {
                    refresh_at,
                    expires_at,
                } = &mut entry.sub
                {
                    // The notifier may shorten the subscription
                    // (RFC 6665 4.2.2): refresh by its clock.
                    let expires = grant(expires);
                    *expires_at = (*expires_at).min(now + expires);
                    *refresh_at = (*refresh_at).min(now + expires / 2);
                }
            }
        }
        true
    }

    /// The next SUBSCRIBE to send.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When [`Self::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sensors
            .values()
            .filter_map(|e| match e.sub {
                Sub::None { retry_at } => retry_at,
                Sub::Active { refresh_at, .. } => Some(refresh_at),
                Sub::Requesting { give_up_at, .. } => Some(give_up_at),
            })
            .min()
    }

    /// Sends the refreshes and retries due at `now`; a request unanswered
    /// for [`REQUEST_TIMEOUT`] ends the subscription like a timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<(String, CommandKind)> = Vec::new();
        let mut expired: Vec<String> = Vec::new();
        for (sensor, e) in &self.sensors {
            match e.sub {
                Sub::None { retry_at: Some(at) } if at <= now => {
                    due.push((sensor.clone(), CommandKind::Subscribe))
                }
                Sub::Active { refresh_at, .. } if refresh_at <= now => {
                    due.push((sensor.clone(), CommandKind::Renew))
                }
                Sub::Requesting { give_up_at, .. } if give_up_at <= now => {
                    expired.push(sensor.clone())
                }
                _ => {}
            }
        }
        for sensor in expired {
            self.ended(&sensor, now);
        }
        for (sensor, kind) in due {
            self.send(&sensor, kind, false, now);
        }
    }
}

#[cfg(test)]
mod tests;
