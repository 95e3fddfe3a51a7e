//! Authentication failures per source address: what each attempt's
//! outcome is called in logs and `/metrics`, the one log line a failure
//! gets (at most one per source per interval, and a bound for all sources
//! together, since UDP sources can be forged), and the back-off a source
//! earns with too many password failures in a window.

use sipsensor_protocol::AuthFailure;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How an authentication attempt ended; the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated.
    Accepted,
    /// No credentials yet: the normal first challenge.
    Challenged,
    UnknownUser,
    WrongPassword,
    /// Credentials that cannot be checked (syntax, qop, uri, algorithm).
    BadCredentials,
    /// Authenticated, but claiming another identity (From of an INVITE).
    WrongIdentity,
    /// Right password, expired nonce: the client retries (RFC 7616 3.3).
    StaleNonce,
    /// Right password, a nonce we did not issue (ours before a restart).
    ForeignNonce,
    /// Right password, a nonce count seen before: a replayed request.
    ReplayedNonce,
    /// Refused unheard: the source is backing off.
    Blocked,
}

impl Outcome {
    pub fn of(failure: &AuthFailure) -> Outcome {
        match failure {
            AuthFailure::NoCredentials(_) => Outcome::Challenged,
            AuthFailure::UnknownUser(_) => Outcome::UnknownUser,
            AuthFailure::WrongResponse(_) => Outcome::WrongPassword,
            AuthFailure::Malformed(_)
            | AuthFailure::QopMissing
            | AuthFailure::UriMismatch { .. }
            | AuthFailure::UnsupportedAlgorithm(_) => Outcome::BadCredentials,
            AuthFailure::StaleNonce => Outcome::StaleNonce,
            AuthFailure::ForeignNonce => Outcome::ForeignNonce,
            AuthFailure::Replay(_) => Outcome::ReplayedNonce,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Challenged => "challenged",
            Outcome::UnknownUser => "unknown_user",
            Outcome::WrongPassword => "wrong_password",
            Outcome::BadCredentials => "bad_credentials",
            Outcome::WrongIdentity => "wrong_identity",
            Outcome::StaleNonce => "stale_nonce",
            Outcome::ForeignNonce => "foreign_nonce",
            Outcome::ReplayedNonce => "replayed_nonce",
            Outcome::Blocked => "blocked",
        }
    }

    /// A failure that is logged.
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            Outcome::Accepted | Outcome::Challenged | Outcome::Blocked
        )
    }

    /// A failure that counts towards a back-off (and that the fail2ban
    /// filter matches): a guess or a replay. A stale or foreign nonce
    /// came with the right password: an honest client after our nonce
    /// expired or we restarted.
    pub fn is_attack(self) -> bool {
        self.is_failure() && !matches!(self, Outcome::StaleNonce | Outcome::ForeignNonce)
    }
}

/// The log line of an authentication failure; its format is what
/// `contrib/fail2ban/filter.d/sipsensor-collector.conf` parses: keep both
/// in step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureLine {
    pub source: IpAddr,
    /// What the request claimed (To of a REGISTER, From of an INVITE),
    /// reduced to printable characters.
    pub aor: String,
    pub method: String,
    pub outcome: Outcome,
    /// Lines held back for this source since its last one.
    pub held: u64,
}

impl fmt::Display for FailureLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sip auth failure: source={} aor={} method={} outcome={} held={}",
            self.source,
            self.aor,
            self.method,
            self.outcome.label(),
            self.held
        )
    }
}

/// Text from a request made safe for a log line: no spaces or control
/// characters (so it cannot fake a field or a line), at most 100 bytes.
pub fn loggable(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(100)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// Attacks from one source within `window` that start a back-off.
    pub failures: u32,
    pub window: Duration,
    /// How long a source is refused once it has earned it.
    pub backoff: Duration,
    /// At most one failure line per source per interval.
    pub log_interval: Duration,
    /// At most this many failure lines per second from all sources.
    pub lines_per_second: u32,
    /// Sources remembered at once; the oldest is forgotten past it.
    pub max_sources: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            failures: 10,
            window: Duration::from_secs(60),
            backoff: Duration::from_secs(300),
            log_interval: Duration::from_secs(1),
            lines_per_second: 20,
            max_sources: 10_000,
        }
    }
}

#[derive(Debug)]
struct Source {
    window_start: Instant,
    attacks: u32,
    blocked_until: Option<Instant>,
    last_line: Option<Instant>,
    held: u64,
    seen: Instant,
}

/// What to do about one failure.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Log it, with this many lines held back before it.
    pub log: Option<u64>,
    /// This failure started the source's back-off.
    pub blocked: bool,
}

#[derive(Debug)]
pub struct FailureLimiter {
    limits: Limits,
    sources: HashMap<IpAddr, Source>,
    /// The current second's start and the lines logged in it.
    second: Option<(Instant, u32)>,
}

impl FailureLimiter {
    pub fn new(limits: Limits) -> FailureLimiter {
        FailureLimiter {
            limits,
            sources: HashMap::new(),
            second: None,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether `ip` is backing off at `now`.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.sources
            .get(&ip)
            .and_then(|s| s.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Notes a failed attempt from `ip`.
    pub fn failed(&mut self, ip: IpAddr, outcome: Outcome, now: Instant) -> Verdict {
        if !self.sources.contains_key(&ip) {
            self.make_room(now);
        }
        let limits = &self.limits;
        let s = self.sources.entry(ip).or_insert(Source {
            window_start: now,
            attacks: 0,
            blocked_until: None,
            last_line: None,
            held: 0,
            seen: now,
        });
        s.seen = now;
        let mut verdict = Verdict::default();
        if outcome.is_attack() {
            if now.saturating_duration_since(s.window_start) >= limits.window {
                s.window_start = now;
                s.attacks = 0;
            }
            s.attacks += 1;
            if s.attacks >= limits.failures && s.blocked_until.is_none_or(|u| u <= now) {
                s.blocked_until = Some(now + limits.backoff);
                s.window_start = now;
                s.attacks = 0;
                verdict.blocked = true;
            }
        }
        let due = s
            .last_line
            .is_none_or(|t| now.saturating_duration_since(t) >= limits.log_interval);
        let second_full = match self.second {
            Some((start, n)) if now.saturating_duration_since(start) < Duration::from_secs(1) => {
                n >= limits.lines_per_second
            }
            _ => false,
        };
        if due && !second_full {
            s.last_line = Some(now);
            verdict.log = Some(std::mem::take(&mut s.held));
            self.second = match self.second {
                Some((start, n))
                    if now.saturating_duration_since(start) < Duration::from_secs(1) =>
                {
                    Some((start, n + 1))
                }
                _ => Some((now, 1)),
            };
        } else {
            s.held += 1;
        }
        verdict
    }

    /// Forgets sources with nothing left to remember; if still full, the
    /// one heard from longest ago, one backing off last.
    fn make_room(&mut self, now: Instant) {
        if self.sources.len() < self.limits.max_sources {
            return;
        }
        let limits = &self.limits;
        self.sources.retain(|_, s| {
            let backing_off = s.blocked_until.is_some_and(|u| now < u);
            let counting = now.saturating_duration_since(s.window_start) < limits.window;
            backing_off || counting
        });
        if self.sources.len() >= self.limits.max_sources
            && let Some(oldest) = self
                .sources
                .iter()
                .min_by_key(|(_, s)| (s.blocked_until.is_some_and(|u| now < u), s.seen))
                .map(|(ip, _)| *ip)
        {
            self.sources.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests;
