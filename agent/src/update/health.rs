//! The health check's question (docs/protocol.md 12.6): has the agent
//! been registered **and** streaming to a collector for a while? Asked by
//! the image's health check through `sipsensor-agent status
//! --wait-registered TIMEOUT --wait-streamed SECONDS`; a trial slot is
//! marked good only then.

use crate::status::client::{self, ClientError};
use crate::status::{AgentState, Status};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
#[error("not registered and streaming for {wanted:?} within {waited:?} (last: {last})")]
pub struct NotHealthy {
    pub wanted: Duration,
    pub waited: Duration,
    pub last: String,
}

/// An unbroken run of "streaming" answers: a poll that finds the agent
/// not streaming (or unreachable) starts it over.
#[derive(Debug, Default)]
pub struct Streak {
    since: Option<Instant>,
}

impl Streak {
    /// Take one poll's answer; how long the run has lasted at `now`.
    pub fn observe(&mut self, streaming: bool, now: Instant) -> Duration {
        if !streaming {
            self.since = None;
            return Duration::ZERO;
        }
        now.saturating_duration_since(*self.since.get_or_insert(now))
    }
}

/// Registered (or not registering) with a session streaming: the daemon's
/// own summary.
pub fn is_streaming(s: &Status) -> bool {
    s.state == AgentState::Streaming
}

/// Poll every `every` until the agent has streamed for `streamed` without
/// a break, for at most `within`.
pub fn wait_streamed(
    socket: &Path,
    within: Duration,
    streamed: Duration,
    every: Duration,
) -> Result<Status, NotHealthy> {
    let start = Instant::now();
    let mut streak = Streak::default();
    loop {
        let answer = client::fetch(socket, every.max(Duration::from_millis(200)));
        let streaming = matches!(&answer, Ok(s) if is_streaming(s));
        let lasted = streak.observe(streaming, Instant::now());
        let last = match answer {
            Ok(s) if streaming && lasted >= streamed => return Ok(s),
            Ok(s) => s.state.as_str().to_owned(),
            Err(ClientError::Connect { .. }) => "agent not reachable".into(),
            Err(e) => e.to_string(),
        };
        let waited = start.elapsed();
        if waited >= within {
            return Err(NotHealthy {
                wanted: streamed,
                waited,
                last,
            });
        }
        std::thread::sleep(every.min(within - waited));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_break_in_streaming_starts_the_run_over() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut streak = Streak::default();
        assert_eq!(streak.observe(true, t0), s(0));
        assert_eq!(streak.observe(true, t0 + s(30)), s(30));
        assert_eq!(streak.observe(false, t0 + s(31)), s(0));
        assert_eq!(streak.observe(true, t0 + s(32)), s(0));
        assert_eq!(streak.observe(true, t0 + s(92)), s(60));
    }
}
