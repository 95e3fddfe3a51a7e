//! When to send event packets (docs/protocol.md, "Event delivery").
//!
//! A new edge goes out at once with the marker bit. UDP may lose it, so
//! every record is sent three times in all: in the first packet and in
//! repeats `repeats[0]` and `repeats[1]` after it (or earlier, in packets
//! that new edges cause). The state of every input rides along in each
//! packet, and a state-only packet goes out at the start, after a change
//! of inputs and every `heartbeat` of silence, so a receiver that lost
//! everything still learns the levels. Fixed capacity: no allocation.

use super::{EventRecord, TickTime};
use std::time::{Duration, Instant};

/// Most records waiting for their repetitions.
pub const OUTBOX_CAPACITY: usize = 16;
/// How many times each record (and each state announcement) is sent.
const SENDS: u8 = 3;

/// Timing of repetitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Delays of the 2nd and 3rd transmission after the first.
    pub repeats: [Duration; 2],
    /// Longest silence before a state-only packet.
    pub heartbeat: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            repeats: [Duration::from_millis(40), Duration::from_millis(200)],
            heartbeat: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    serial: u16,
    input: u8,
    state: bool,
    time: TickTime,
    sends: u8,
    first_sent: Option<Instant>,
    queued: Instant,
}

/// One events packet to send, ready for [`super::encode_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventBatch {
    /// The RTP clock tick the packet's timestamp carries.
    pub tick: u64,
    /// Set when the packet carries an edge for the first time.
    pub marker: bool,
    pub inputs: u8,
    pub states: u64,
    records: [EventRecord; OUTBOX_CAPACITY],
    len: usize,
}

impl EventBatch {
    pub fn records(&self) -> &[EventRecord] {
        &self.records[..self.len]
    }

    /// Writes the payload.
    pub fn encode(&self, buf: &mut [u8], config: u8) -> Result<usize, super::EncodeError> {
        super::encode_events(
            buf,
            config,
            usize::from(self.inputs),
            self.states,
            self.records(),
        )
    }
}

/// Sans-I/O scheduler of event packets for one stream.
#[derive(Debug, Clone)]
pub struct EventOutbox {
    config: OutboxConfig,
    inputs: u8,
    states: u64,
    next_serial: u16,
    pending: [Option<Pending>; OUTBOX_CAPACITY],
    /// State-only announcements still owed, and when the last went out.
    announce_left: u8,
    announce_due: Instant,
    last_sent: Option<Instant>,
    overflowed: u64,
}

impl EventOutbox {
    /// An outbox for `inputs` inputs at levels `states`; it announces them
    /// at once.
    pub fn new(
        inputs: u8,
        states: u64,
        first_serial: u16,
        config: OutboxConfig,
        now: Instant,
    ) -> Self {
        Self {
            config,
            inputs,
            states: mask(inputs, states),
            next_serial: first_serial,
            pending: [None; OUTBOX_CAPACITY],
            announce_left: SENDS,
            announce_due: now,
            last_sent: None,
            overflowed: 0,
        }
    }

    /// New set of inputs after a re-INVITE: pending repeats refer to the
    /// old input numbers and are dropped; the new levels are announced.
    pub fn reconfigure(&mut self, inputs: u8, states: u64, now: Instant) {
        self.inputs = inputs;
        self.states = mask(inputs, states);
        self.pending = [None; OUTBOX_CAPACITY];
        self.announce_left = SENDS;
        self.announce_due = now;
    }

    /// Current levels, bit i for input i.
    pub fn states(&self) -> u64 {
        self.states
    }

    /// Records evicted before their third transmission because edges came
    /// faster than the capacity allows.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// An edge on `input` to level `state` at clock time `time`. Ignored
    /// for an input that does not exist.
    pub fn edge(&mut self, input: u8, state: bool, time: TickTime, now: Instant) {
        if input >= self.inputs || input >= 64 {
            return;
        }
        if state {
            self.states |= 1 << input;
        } else {
            self.states &= !(1 << input);
        }
        let slot = match self.pending.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                // Evict the record closest to done: most sends, then oldest.
                self.overflowed += 1;
                let newest = self.next_serial;
                self.pending
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| p.map(|p| (i, (p.sends, newest.wrapping_sub(p.serial)))))
                    .max_by_key(|(_, key)| *key)
                    .map_or(0, |(i, _)| i)
            }
        };
        self.pending[slot] = Some(Pending {
            serial: self.next_serial,
            input,
            state,
            time,
            sends: 0,
            first_sent: None,
            queued: now,
        });
        self.next_serial = self.next_serial.wrapping_add(1);
    }

    fn due(&self, p: &Pending) -> Instant {
        match (p.sends, p.first_sent) {
            (0, _) | (_, None) => p.queued,
            (n, Some(t)) => t + self.config.repeats[usize::from(n - 1).min(1)],
        }
    }

    /// When [`Self::poll_packet`] next has something to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let records = self.pending.iter().flatten().map(|p| self.due(p)).min();
        let announce = (self.announce_left > 0).then_some(self.announce_due);
        let heartbeat = self.last_sent.map(|t| t + self.config.heartbeat);
        [records, announce, heartbeat].into_iter().flatten().min()
    }

    /// The packet due at `now`, if any; `tick` is the clock tick at `now`
    /// (the packet's RTP timestamp). Everything still owed a transmission
    /// rides in it.
    pub fn poll_packet(&mut self, now: Instant, tick: u64) -> Option<EventBatch> {
        if self.poll_timeout().is_none_or(|t| t > now) {
            return None;
        }
        let mut batch = EventBatch {
            tick,
            marker: false,
            inputs: self.inputs,
            states: self.states,
            records: [EventRecord::default(); OUTBOX_CAPACITY],
            len: 0,
        };
        let mut order: [Option<Pending>; OUTBOX_CAPACITY] = self.pending;
        // Oldest edge first, by serial (wrapping) relative to the newest.
        let newest = self.next_serial;
        order.sort_by_key(|p| p.map(|p| std::cmp::Reverse(newest.wrapping_sub(p.serial))));
        for p in order.iter().flatten() {
            // An edge too far from `tick` for 32.32 cannot be expressed;
            // after seconds it is stale anyway and the state bits hold it.
            let Some(offset) = p.time.offset_from(tick) else {
                continue;
            };
            batch.marker |= p.sends == 0;
            batch.records[batch.len] = EventRecord {
                serial: p.serial,
                input: p.input,
                state: p.state,
                offset,
            };
            batch.len += 1;
        }
        for slot in &mut self.pending {
            if let Some(p) = slot {
                p.sends += 1;
                p.first_sent.get_or_insert(now);
                if p.sends >= SENDS {
                    *slot = None;
                }
            }
        }
        if self.announce_left > 0 {
            self.announce_left -= 1;
            let step = SENDS - self.announce_left;
            self.announce_due = now + self.config.repeats[usize::from(step - 1).min(1)];
        }
        self.last_sent = Some(now);
        Some(batch)
    }
}

fn mask(inputs: u8, states: u64) -> u64 {
    if inputs >= 64 {
        states
    } else {
        states & ((1u64 << inputs) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{Payload, decode};

    fn t0() -> Instant {
        crate::test_clock::base()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn announces_initial_state_three_times_then_heartbeats() {
        let now = t0();
        let mut o = EventOutbox::new(2, 0b10, 7, OutboxConfig::default(), now);
        let b = o.poll_packet(now, 100).unwrap();
        assert!(!b.marker);
        assert!(b.records().is_empty());
        assert_eq!(b.states, 0b10);
        assert_eq!(o.poll_timeout(), Some(now + ms(40)));
        assert!(o.poll_packet(now + ms(39), 103).is_none());
        assert!(o.poll_packet(now + ms(40), 104).is_some());
        assert_eq!(o.poll_timeout(), Some(now + ms(40) + ms(200)));
        assert!(o.poll_packet(now + ms(240), 124).is_some());
        // Announcements done: next is the heartbeat.
        assert_eq!(
            o.poll_timeout(),
            Some(now + ms(240) + Duration::from_secs(10))
        );
        assert!(o.poll_packet(now + ms(10_239), 1000).is_none());
        let hb = o.poll_packet(now + ms(10_240), 1124).unwrap();
        assert!(hb.records().is_empty() && !hb.marker);
    }

    #[test]
    fn an_edge_goes_out_at_once_with_marker_and_is_repeated_twice() {
        let now = t0();
        let mut o = EventOutbox::new(3, 0, 0, OutboxConfig::default(), now);
        for i in [0, 40, 240] {
            o.poll_packet(now + ms(i), 0).unwrap();
        }
        let t = now + ms(1000);
        let edge = TickTime {
            tick: 99,
            fraction: 1 << 31,
        };
        o.edge(1, true, edge, t);
        assert_eq!(o.poll_timeout(), Some(t));
        let b = o.poll_packet(t, 100).unwrap();
        assert!(b.marker);
        assert_eq!(b.states, 0b010);
        assert_eq!(b.records().len(), 1);
        let r = b.records()[0];
        assert_eq!((r.serial, r.input, r.state), (0, 1, true));
        assert_eq!(r.offset, -(1i64 << 31)); // half a tick before tick 100
        let r2 = o.poll_packet(t + ms(40), 104).unwrap();
        assert!(!r2.marker);
        assert_eq!(r2.records()[0].serial, 0);
        assert_eq!(r2.records()[0].offset, -(5i64 << 32) + (1 << 31));
        // The third transmission is 200 ms after the first.
        assert_eq!(o.poll_timeout(), Some(t + ms(200)));
        assert!(o.poll_packet(t + ms(199), 119).is_none());
        let r3 = o.poll_packet(t + ms(200), 120).unwrap();
        assert_eq!(r3.records().len(), 1);
        // Done: only the heartbeat remains.
        assert_eq!(
            o.poll_timeout(),
            Some(t + ms(200) + Duration::from_secs(10))
        );
    }

    #[test]
    fn a_new_edge_carries_older_records_still_owed_repeats() {
        let now = t0();
        let mut o = EventOutbox::new(2, 0, 65535, OutboxConfig::default(), now);
        for i in [0, 40, 240] {
            o.poll_packet(now + ms(i), 0);
        }
        let t = now + ms(500);
        o.edge(0, true, TickTime::from_tick(50), t);
        o.poll_packet(t, 50).unwrap();
        o.edge(0, false, TickTime::from_tick(51), t + ms(10));
        let b = o.poll_packet(t + ms(10), 51).unwrap();
        assert!(b.marker);
        let serials: Vec<u16> = b.records().iter().map(|r| r.serial).collect();
        assert_eq!(serials, [65535, 0], "oldest first across the wrap");
        assert_eq!(b.states, 0);
        // 65535 has been sent twice, 0 once: at +40 from t both are due.
        let b = o.poll_packet(t + ms(50), 55).unwrap();
        assert_eq!(b.records().len(), 2);
        let b = o.poll_packet(t + ms(250), 75).unwrap();
        assert_eq!(b.records().len(), 1, "65535 went out three times");
        assert_eq!(b.records()[0].serial, 0);
    }

    #[test]
    fn overflow_evicts_and_counts() {
        let now = t0();
        let mut o = EventOutbox::new(1, 0, 0, OutboxConfig::default(), now);
        for i in 0..(OUTBOX_CAPACITY as u64 + 3) {
            o.edge(0, i % 2 == 0, TickTime::from_tick(i), now);
        }
        assert_eq!(o.overflowed(), 3);
        let b = o.poll_packet(now, 20).unwrap();
        assert_eq!(b.records().len(), OUTBOX_CAPACITY);
        let payload = {
            let mut buf = [0u8; 512];
            let n = b.encode(&mut buf, 9).unwrap();
            buf[..n].to_vec()
        };
        let Payload::Events(e) = decode(&payload).unwrap() else {
            panic!("kind")
        };
        assert_eq!(e.len(), OUTBOX_CAPACITY);
        assert_eq!(e.config, 9);
    }

    #[test]
    fn reconfigure_drops_old_records_and_announces() {
        let now = t0();
        let mut o = EventOutbox::new(4, 0b1111, 0, OutboxConfig::default(), now);
        o.edge(3, false, TickTime::from_tick(1), now);
        o.reconfigure(2, 0b1111, now + ms(5));
        let b = o.poll_packet(now + ms(5), 1).unwrap();
        assert!(b.records().is_empty());
        assert_eq!((b.inputs, b.states), (2, 0b11));
        o.edge(7, true, TickTime::from_tick(2), now);
        assert_eq!(o.states(), 0b11, "unknown input ignored");
    }

    #[test]
    fn stale_edges_beyond_32_bits_of_ticks_are_left_out() {
        let now = t0();
        let mut o = EventOutbox::new(1, 0, 0, OutboxConfig::default(), now);
        o.edge(0, true, TickTime::from_tick(0), now);
        let b = o.poll_packet(now, 1 << 40).unwrap();
        assert!(b.records().is_empty());
        assert_eq!(b.states, 1);
    }
}
