//! Streams gone silent, sans-I/O: the receive thread notes when it last
//! heard each stream's source (an RTP packet routed to it, a sender report
//! it took), and asks now and then which have been silent for
//! `media.silence_timeout_s`. An agent that was killed, or whose path was
//! cut, sends no BYE: without this its stream would show as streaming
//! forever (issue 15).
//!
//! Only what the demultiplexer routed to the stream counts: it came from
//! the stream's latched address and SSRC, and under SRTP it authenticated
//! (docs/security.md), so a stranger cannot keep a dead stream alive by
//! sending to the port.

use super::demux::StreamKey;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A stream that went silent: when it was last heard, on the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silent {
    pub key: StreamKey,
    /// Wall-clock time (ns since the Unix epoch) of the last packet heard,
    /// or of the stream's start when none came.
    pub last_heard_ns: i64,
}

#[derive(Debug, Clone, Copy)]
struct Heard {
    at: Instant,
    at_ns: i64,
}

/// Last-heard times of every stream being received.
#[derive(Debug)]
pub struct SilenceWatch {
    timeout: Duration,
    heard: HashMap<StreamKey, Heard>,
}

impl SilenceWatch {
    pub fn new(timeout: Duration) -> Self {
        SilenceWatch {
            timeout,
            heard: HashMap::new(),
        }
    }

    /// A stream starts: it counts as heard now, so one whose agent never
    /// sends anything ends after the timeout too.
    pub fn add(&mut self, key: StreamKey, now: Instant, now_ns: i64) {
        self.heard.insert(
            key,
            Heard {
                at: now,
                at_ns: now_ns,
            },
        );
    }

    /// Something of the stream's source arrived at `now`. A stream not
    /// (or no longer) watched is left alone.
    pub fn heard(&mut self, key: StreamKey, now: Instant, now_ns: i64) {
        if let Some(h) = self.heard.get_mut(&key)
            && now >= h.at
        {
            *h = Heard {
                at: now,
                at_ns: now_ns,
            };
        }
    }

    pub fn remove(&mut self, key: StreamKey) {
        self.heard.remove(&key);
    }

    /// The streams silent for the timeout at `now`; each is reported once
    /// (it is no longer watched: the SIP side ends it).
    pub fn poll_silent(&mut self, now: Instant) -> Vec<Silent> {
        let timeout = self.timeout;
        let mut silent: Vec<Silent> = self
            .heard
            .iter()
            .filter(|(_, h)| now.saturating_duration_since(h.at) >= timeout)
            .map(|(key, h)| Silent {
                key: *key,
                last_heard_ns: h.at_ns,
            })
            .collect();
        silent.sort_by_key(|s| s.key);
        for s in &silent {
            self.heard.remove(&s.key);
        }
        silent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_stream_heard_from_stays_and_a_silent_one_is_reported_once() {
        let t0 = Instant::now();
        let mut w = SilenceWatch::new(TIMEOUT);
        w.add(StreamKey(1), t0, 1_000);
        w.add(StreamKey(2), t0, 1_000);
        w.heard(StreamKey(1), t0 + secs(6), 7_000);
        assert!(w.poll_silent(t0 + secs(9)).is_empty());
        assert_eq!(
            w.poll_silent(t0 + TIMEOUT),
            vec![Silent {
                key: StreamKey(2),
                last_heard_ns: 1_000
            }]
        );
        // Reported once: the SIP side ends it.
        assert!(w.poll_silent(t0 + secs(12)).is_empty());
        assert_eq!(
            w.poll_silent(t0 + secs(16)),
            vec![Silent {
                key: StreamKey(1),
                last_heard_ns: 7_000
            }]
        );
    }

    #[test]
    fn packets_after_the_end_or_out_of_order_change_nothing() {
        let t0 = Instant::now();
        let mut w = SilenceWatch::new(TIMEOUT);
        w.add(StreamKey(1), t0 + secs(5), 5);
        // A batch timed before the stream was added does not age it.
        w.heard(StreamKey(1), t0, 0);
        assert!(w.poll_silent(t0 + secs(14)).is_empty());
        w.remove(StreamKey(1));
        w.heard(StreamKey(1), t0 + secs(20), 20);
        assert!(w.poll_silent(t0 + secs(60)).is_empty());
    }
}
