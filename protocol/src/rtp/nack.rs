//! When the collector asks for lost packets (docs/protocol.md 11.5):
//! [`NackScheduler`] turns the sequence numbers a stream delivers into
//! generic NACKs (RFC 4585 6.2.1) with retries, and gives up on a packet
//! once its `rtx-time` (RFC 4588 8.1) has passed. Its state is bounded
//! whatever the sender does with its sequence numbers.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

/// The receiver's repair timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NackConfig {
    /// Wait this long after a gap appears before the first NACK: a packet
    /// merely reordered arrives within it.
    pub reorder_delay: Duration,
    /// Between two NACKs for the same packet: a round trip and a margin.
    pub retry_interval: Duration,
    /// NACKs per lost packet, the first included.
    pub max_nacks: u8,
    /// Give up this long after the gap appeared: the sender's `rtx-time`.
    pub give_up_after: Duration,
    /// Lost packets tracked at once; older ones are given up first.
    pub max_tracked: usize,
    /// Sequence numbers in one NACK at most.
    pub max_per_nack: usize,
}

impl Default for NackConfig {
    fn default() -> Self {
        Self {
            reorder_delay: Duration::from_millis(20),
            retry_interval: Duration::from_millis(200),
            max_nacks: 5,
            give_up_after: Duration::from_secs(3),
            max_tracked: 1024,
            max_per_nack: 128,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    give_up_at: Instant,
    next_nack: Instant,
    nacks: u8,
}

/// One stream's missing packets and when to NACK them.
#[derive(Debug, Clone)]
pub struct NackScheduler {
    config: NackConfig,
    highest: Option<u64>,
    /// By extended sequence number (RFC 3550 A.1).
    missing: BTreeMap<u64, Missing>,
    given_up: Vec<Range<u64>>,
}

impl NackScheduler {
    pub fn new(config: NackConfig) -> Self {
        Self {
            config,
            highest: None,
            missing: BTreeMap::new(),
            given_up: Vec::new(),
        }
    }

    /// Packets currently awaited.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }

    /// Whether the packet with this extended sequence number is missing
    /// and not yet given up: a retransmission of anything else (received,
    /// given up, never lost) is not asked for.
    pub fn awaits(&self, extended_seq: u64) -> bool {
        self.missing.contains_key(&extended_seq)
    }

    fn give_up(&mut self, seqs: Range<u64>) {
        if seqs.is_empty() {
            return;
        }
        match self.given_up.last_mut() {
            Some(last) if last.end == seqs.start => last.end = seqs.end,
            _ => self.given_up.push(seqs),
        }
        // Bounded even if the caller never drains it.
        if self.given_up.len() > self.config.max_tracked {
            self.given_up.remove(0);
        }
    }

    /// A packet (live, or the original a repair carried) with this
    /// extended sequence number arrived: the accepted verdicts of
    /// [`crate::RtpReceiver`], and the OSNs of RTX packets extended the
    /// same way.
    pub fn on_received(&mut self, extended_seq: u64, now: Instant) {
        let Some(highest) = self.highest else {
            self.highest = Some(extended_seq);
            return;
        };
        if extended_seq <= highest {
            self.missing.remove(&extended_seq);
            return;
        }
        self.highest = Some(extended_seq);
        // Only the newest `max_tracked` of a gap are worth tracking; the
        // rest is given up at once, so a sender jumping its sequence
        // numbers cannot grow this state.
        let first = (highest + 1).max(extended_seq.saturating_sub(self.config.max_tracked as u64));
        self.give_up(highest + 1..first);
        let entry = Missing {
            give_up_at: now + self.config.give_up_after,
            next_nack: now + self.config.reorder_delay,
            nacks: 0,
        };
        for seq in first..extended_seq {
            self.missing.insert(seq, entry);
        }
        while self.missing.len() > self.config.max_tracked {
            if let Some((seq, _)) = self.missing.pop_first() {
                self.give_up(seq..seq + 1);
            }
        }
    }

    /// The sender restarted its sequence (RFC 3550 A.1): what was
    /// missing is no longer comparable.
    pub fn on_restart(&mut self, extended_seq: u64) {
        let pending: Vec<u64> = self.missing.keys().copied().collect();
        for seq in pending {
            self.give_up(seq..seq + 1);
        }
        self.missing.clear();
        self.highest = Some(extended_seq);
    }

    /// The sequence numbers (16-bit, for the NACK's PID/BLP) to NACK now,
    /// oldest first; empty when none is due. Packets past their give-up
    /// time or out of NACKs are dropped and reported by
    /// [`Self::take_given_up`].
    pub fn poll_nack(&mut self, now: Instant) -> Vec<u16> {
        let expired: Vec<u64> = self
            .missing
            .iter()
            .filter(|(_, m)| {
                now >= m.give_up_at || (m.nacks >= self.config.max_nacks && now >= m.next_nack)
            })
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            self.missing.remove(&seq);
            self.give_up(seq..seq + 1);
        }
        let mut due = Vec::new();
        for (seq, m) in self.missing.iter_mut() {
            if due.len() >= self.config.max_per_nack {
                break;
            }
            if m.next_nack <= now && m.nacks < self.config.max_nacks {
                m.nacks += 1;
                m.next_nack = now + self.config.retry_interval;
                due.push(*seq as u16);
            }
        }
        due
    }

    /// When [`Self::poll_nack`] has something to do next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.missing
            .values()
            .map(|m| m.next_nack.min(m.give_up_at))
            .min()
    }

    /// Extended sequence numbers given up since the last call, as ranges:
    /// losses that repair did not fill (the agent's backfill may, later).
    /// Drain it after each [`Self::poll_nack`]; only the latest
    /// `max_tracked` ranges are kept.
    pub fn take_given_up(&mut self) -> Vec<Range<u64>> {
        std::mem::take(&mut self.given_up)
    }
}

#[cfg(test)]
mod tests;
