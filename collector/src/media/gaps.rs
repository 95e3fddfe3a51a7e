//! Holes in a stream's samples, found on the sample clock and classified by
//! sequence numbers (docs/protocol.md 5.3):
//!
//! - the next samples packet starts later than one period after the last
//!   instant of the previous one: instants are missing;
//! - if sequence numbers between the two packets are missing too, the
//!   network lost them ([`GapCause::Loss`]); if every packet in between
//!   arrived (events packets share the counter), the source skipped the
//!   instants ([`GapCause::Source`]).
//!
//! A gap waits for a grace time before it is reported, so a reordered
//! packet that arrives late fills its part of the gap instead (RFC 3550
//! A.1 accepts packets up to 100 sequence numbers late).

use crate::storage::{GapCause, SessionId};
use std::time::{Duration, Instant};

/// Received extended sequence numbers, the last [`WINDOW_BITS`].
const WINDOW_WORDS: usize = 16;
const WINDOW_BITS: u64 = 64 * WINDOW_WORDS as u64;

/// A samples packet as the gap finder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub ext: u64,
    /// RTP timestamps of its first and last instants.
    pub first_ts: u32,
    pub last_ts: u32,
    pub period: u32,
    pub session: SessionId,
}

/// A hole, in RTP timestamps: the last instant before it and the first
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundGap {
    pub from_ts: u32,
    pub to_ts: u32,
    /// Sampling instants missing.
    pub instants: i64,
    pub cause: GapCause,
    pub session: SessionId,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    from_ext: u64,
    to_ext: u64,
    from_ts: u32,
    to_ts: u32,
    period: u32,
    session: SessionId,
    since: Instant,
}

impl Pending {
    fn instants(&self) -> i64 {
        missing_instants(self.from_ts, self.to_ts, self.period)
    }
}

/// Instants strictly between two instants `period` apart.
fn missing_instants(from_ts: u32, to_ts: u32, period: u32) -> i64 {
    let d = i64::from(to_ts.wrapping_sub(from_ts) as i32);
    if period == 0 || d <= 0 {
        return 0;
    }
    d / i64::from(period) - 1
}

/// Bounded list of gaps awaiting their grace time: a stream losing a packet
/// in every other slot for seconds must not grow memory without end.
const MAX_PENDING: usize = 1024;

#[derive(Debug, Clone)]
pub struct GapFinder {
    last: Option<Mark>,
    pending: Vec<Pending>,
    window: [u64; WINDOW_WORDS],
    highest: Option<u64>,
    grace: Duration,
    /// Samples packets that arrived after their gap was reported.
    pub late_after_report: u64,
}

impl GapFinder {
    pub fn new(grace: Duration) -> Self {
        GapFinder {
            last: None,
            pending: Vec::new(),
            window: [0; WINDOW_WORDS],
            highest: None,
            grace,
            late_after_report: 0,
        }
    }

    fn bit(ext: u64) -> (usize, u64) {
        let i = ext % WINDOW_BITS;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Any accepted packet (samples or events): marks its sequence number.
    pub fn on_packet(&mut self, ext: u64) {
        match self.highest {
            Some(h) if ext <= h => {
                if h - ext < WINDOW_BITS {
                    let (w, b) = Self::bit(ext);
                    self.window[w] |= b;
                }
            }
            _ => {
                // Clear the slots between the old highest and `ext`.
                let start = self.highest.map_or(ext, |h| h + 1);
                if ext - start >= WINDOW_BITS {
                    self.window = [0; WINDOW_WORDS];
                } else {
                    for e in start..ext {
                        let (w, b) = Self::bit(e);
                        self.window[w] &= !b;
                    }
                }
                let (w, b) = Self::bit(ext);
                self.window[w] |= b;
                self.highest = Some(ext);
            }
        }
    }

    /// Sequence numbers strictly between `from` and `to` that did not
    /// arrive (all of them when the range left the window).
    fn missing_seqs(&self, from: u64, to: u64) -> u64 {
        let Some(h) = self.highest else { return 0 };
        if to <= from + 1 {
            return 0;
        }
        if h.saturating_sub(from + 1) >= WINDOW_BITS {
            return to - from - 1;
        }
        (from + 1..to)
            .filter(|e| {
                let (w, b) = Self::bit(*e);
                self.window[w] & b == 0
            })
            .count() as u64
    }

    /// The RTP time of the last instant before the oldest gap still waiting
    /// for its grace time, if one waits.
    pub fn oldest_pending_from_ts(&self) -> Option<u32> {
        self.pending
            .iter()
            .min_by_key(|p| p.from_ext)
            .map(|p| p.from_ts)
    }

    /// A samples packet whose instants are being stored. Returns gaps that
    /// need no grace time (none: every gap waits for late packets).
    pub fn on_samples(&mut self, mark: Mark, now: Instant) {
        let Some(last) = self.last else {
            self.last = Some(mark);
            return;
        };
        if mark.ext > last.ext {
            // A changed description may start on its own phase; count the
            // hole in the new period so the switch itself is no gap.
            let period = if mark.session == last.session {
                last.period
            } else {
                last.period.max(mark.period)
            };
            if missing_instants(last.last_ts, mark.first_ts, period) > 0 {
                if self.pending.len() >= MAX_PENDING {
                    self.pending.remove(0);
                }
                self.pending.push(Pending {
                    from_ext: last.ext,
                    to_ext: mark.ext,
                    from_ts: last.last_ts,
                    to_ts: mark.first_ts,
                    period,
                    session: mark.session,
                    since: now,
                });
            }
            self.last = Some(mark);
            return;
        }
        // A late packet: it fills part of the gap it falls into.
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.from_ext < mark.ext && mark.ext < p.to_ext)
        else {
            if mark.ext < last.ext {
                self.late_after_report += 1;
            }
            return;
        };
        let p = self.pending.remove(i);
        let before = Pending {
            to_ext: mark.ext,
            to_ts: mark.first_ts,
            ..p
        };
        let after = Pending {
            from_ext: mark.ext,
            from_ts: mark.last_ts,
            ..p
        };
        for part in [after, before] {
            if part.instants() > 0 {
                self.pending.insert(i, part);
            }
        }
    }

    /// Gaps whose grace time is over by `now` (all with `flush`).
    pub fn poll_due(&mut self, now: Instant, flush: bool, out: &mut Vec<FoundGap>) {
        let grace = self.grace;
        let mut i = 0;
        while i < self.pending.len() {
            let p = self.pending[i];
            if flush || p.since + grace <= now {
                self.pending.remove(i);
                let cause = if self.missing_seqs(p.from_ext, p.to_ext) > 0 {
                    GapCause::Loss
                } else {
                    GapCause::Source
                };
                out.push(FoundGap {
                    from_ts: p.from_ts,
                    to_ts: p.to_ts,
                    instants: p.instants(),
                    cause,
                    session: p.session,
                });
            } else {
                i += 1;
            }
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: SessionId = SessionId(1);

    fn mark(ext: u64, first: u32, spp: u32, period: u32) -> Mark {
        Mark {
            ext,
            first_ts: first,
            last_ts: first.wrapping_add((spp - 1) * period),
            period,
            session: S,
        }
    }

    /// Feeds samples packets (ext, first_ts) with spp 5, period 10.
    fn feed(f: &mut GapFinder, packets: &[(u64, u32)], now: Instant) {
        for &(ext, ts) in packets {
            f.on_packet(ext);
            f.on_samples(mark(ext, ts, 5, 10), now);
        }
    }

    fn due(f: &mut GapFinder, now: Instant) -> Vec<FoundGap> {
        let mut v = Vec::new();
        f.poll_due(now, false, &mut v);
        v
    }

    #[test]
    fn contiguous_packets_have_no_gap() {
        let t = Instant::now();
        let mut f = GapFinder::new(Duration::from_secs(1));
        feed(&mut f, &[(10, 0), (11, 50), (12, 100)], t);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn lost_packets_make_a_loss_gap_after_the_grace_time() {
        let t = Instant::now();
        let mut f = GapFinder::new(Duration::from_secs(1));
        // 11 and 12 lost: instants at 50..=140 missing (10 of them).
        feed(&mut f, &[(10, 0), (13, 150)], t);
        assert!(due(&mut f, t).is_empty());
        let g = due(&mut f, t + Duration::from_secs(1));
        assert_eq!(
            g,
            vec![FoundGap {
                from_ts: 40,
                to_ts: 150,
                instants: 10,
                cause: GapCause::Loss,
                session: S
            }]
        );
    }

    #[test]
    fn the_oldest_waiting_gap_bounds_what_may_be_acknowledged() {
        let t = Instant::now();
        let mut f = GapFinder::new(Duration::from_secs(1));
        feed(&mut f, &[(10, 0), (11, 50)], t);
        assert_eq!(f.oldest_pending_from_ts(), None);
        // 12 lost, then 14: two holes waiting, the older from tick 90.
        feed(&mut f, &[(13, 150), (15, 250)], t);
        assert_eq!(f.oldest_pending_from_ts(), Some(90));
        // 12 arrives late and fills the first: the hole after 13 (its
        // last tick, 190) bounds now.
        feed(&mut f, &[(12, 100)], t);
        assert_eq!(f.oldest_pending_from_ts(), Some(190));
        // Past its grace time it is reported (and stored): none waits.
        assert_eq!(due(&mut f, t + Duration::from_secs(1)).len(), 1);
        assert_eq!(f.oldest_pending_from_ts(), None);
    }

    #[test]
    fn a_late_packet_shrinks_the_gap_and_a_filled_gap_vanishes() {
        let t = Instant::now();
        let mut f = GapFinder::new(Duration::from_secs(1));
        feed(&mut f, &[(10, 0), (13, 150), (11, 50)], t);
        let g = due(&mut f, t + Duration::from_secs(2));
        assert_eq!(g.len(), 1);
        assert_eq!((g[0].from_ts, g[0].to_ts, g[0].instants), (90, 150, 5));
        // Both late packets arrive: nothing is missing.
        let mut f = GapFinder::new(Duration::from_secs(1));
        feed(&mut f, &[(10, 0), (13, 150), (12, 100), (11, 50)], t);
        assert!(due(&mut f, t + Duration::from_secs(2)).is_empty());
        assert_eq!(f.late_after_report, 0);
    }

    #[test]
    fn a_timestamp_jump_without_lost_packets_is_a_source_gap() {
        let t = Instant::now();
        let mut f = GapFinder::new(Duration::from_secs(1));
        // An events packet (11) in between, then samples resume 100 ticks late.
        f.on_packet(10);
        f.on_samples(mark(10, 0, 5, 10), t);
        f.on_packet(11);
        f.on_packet(12);
        f.on_samples(mark(12, 150, 5, 10), t);
        let g = due(&mut f, t + Duration::from_secs(1));
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].cause, GapCause::Source);
        assert_eq!(g[0].instants, 10);
    }

    #[test]
    fn a_lost_events_packet_is_no_sample_gap() {
        let t = Instant::now();
        let mut f = GapFinder::new(Duration::from_secs(1));
        feed(&mut f, &[(10, 0), (12, 50)], t);
        assert!(due(&mut f, t + Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn a_rate_change_is_no_gap() {
        let t = Instant::now();
        let mut f = GapFinder::new(Duration::from_secs(1));
        f.on_packet(10);
        f.on_samples(mark(10, 0, 5, 10), t);
        // New description: period 20, first instant one new period later.
        f.on_packet(11);
        f.on_samples(
            Mark {
                session: SessionId(2),
                ..mark(11, 60, 5, 20)
            },
            t,
        );
        let mut v = Vec::new();
        f.poll_due(t, true, &mut v);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn wraps_and_long_losses() {
        let t = Instant::now();
        let mut f = GapFinder::new(Duration::ZERO);
        let start = u32::MAX - 20;
        f.on_packet(5);
        f.on_samples(mark(5, start, 5, 10), t);
        // 5000 packets lost, timestamps across the 2^32 wrap.
        let ts = start.wrapping_add(50 * 5001);
        f.on_packet(5006);
        f.on_samples(mark(5006, ts, 5, 10), t);
        let g = due(&mut f, t);
        assert_eq!(g[0].cause, GapCause::Loss);
        assert_eq!(g[0].instants, 5000 * 5);
    }

    #[test]
    fn pending_gaps_are_bounded() {
        let t = Instant::now();
        let mut f = GapFinder::new(Duration::from_secs(60));
        for i in 0..(MAX_PENDING as u64 + 10) {
            f.on_packet(2 * i);
            f.on_samples(mark(2 * i, (2 * i as u32) * 50, 5, 10), t);
        }
        assert_eq!(f.pending(), MAX_PENDING);
    }
}
