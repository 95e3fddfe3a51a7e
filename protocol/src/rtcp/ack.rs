//! When the collector sends its committed-through mark (docs/protocol.md
//! 11.4): soon after each commit that moved it, but at most once per
//! interval, however often the store commits.

use std::time::{Duration, Instant};

/// The collector's side of acknowledgement for one stream.
#[derive(Debug, Clone)]
pub struct AckPacer {
    min_interval: Duration,
    mark: u64,
    sent_mark: Option<u64>,
    sent_at: Option<Instant>,
}

impl AckPacer {
    /// `min_interval`: the least time between two acks sent for commits
    /// (docs/protocol.md: at most 4 a second, so 250 ms).
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            mark: 0,
            sent_mark: None,
            sent_at: None,
        }
    }

    /// The store committed everything through `mark`. A lower mark than
    /// the current one is ignored: within a session it never goes back.
    pub fn on_commit(&mut self, mark: u64) {
        self.mark = self.mark.max(mark);
    }

    /// The mark every regular RTCP compound repeats.
    pub fn mark(&self) -> u64 {
        self.mark
    }

    /// When the next ack is due: never while the peer has the mark.
    fn due(&self, now: Instant) -> Option<Instant> {
        if self.mark == 0 || self.sent_mark == Some(self.mark) {
            return None;
        }
        Some(
            self.sent_at
                .map_or(now, |t| (t + self.min_interval).max(now)),
        )
    }

    /// The mark to send in an extra compound now, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<u64> {
        let due = self.due(now)?;
        if now < due {
            return None;
        }
        self.note_sent(now);
        Some(self.mark)
    }

    /// A compound carried the mark (a regular one, or the extra one).
    pub fn note_sent(&mut self, now: Instant) {
        self.sent_mark = Some(self.mark);
        self.sent_at = Some(now);
    }

    /// When [`Self::poll_transmit`] will have something to send.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.due(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock::base;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_commit_is_acked_at_once_then_at_most_once_per_interval() {
        let t0 = base();
        let mut a = AckPacer::new(ms(250));
        assert_eq!(a.poll_transmit(t0), None, "nothing committed yet");
        a.on_commit(1_000);
        assert_eq!(a.poll_transmit(t0), Some(1_000));
        assert_eq!(a.poll_transmit(t0 + ms(1)), None, "the peer has it");
        // The store commits every 10 ms: one ack per 250 ms.
        let mut acks = 0;
        for i in 1..=100u64 {
            a.on_commit(1_000 + i);
            if a.poll_transmit(t0 + ms(10 * i)).is_some() {
                acks += 1;
            }
        }
        assert_eq!(acks, 4, "at 250, 500, 750 and 1000 ms");
        a.on_commit(5_000);
        assert_eq!(a.poll_timeout(t0 + ms(1_001)), Some(t0 + ms(1_250)));
    }

    #[test]
    fn a_regular_compound_counts_as_an_ack_and_marks_never_go_back() {
        let t0 = base();
        let mut a = AckPacer::new(ms(250));
        a.on_commit(7);
        a.note_sent(t0);
        assert_eq!(a.poll_timeout(t0), None);
        a.on_commit(3);
        assert_eq!(a.mark(), 7);
        assert_eq!(a.poll_transmit(t0 + ms(500)), None);
    }
}
