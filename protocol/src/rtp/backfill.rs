//! The agent's side of backfill (docs/protocol.md 11.6, 11.7):
//! [`BackfillPacer`] decides when the next backfill packet may go (never
//! above the rate limit, never ahead of a live packet), and
//! [`BackfillCursor`] keeps track of what to send next from the
//! collector's committed-through marks, going back when they stall, and
//! of the expired and unsampled ranges to report until the collector has
//! them (the agent's downtimes inside its spool among them, 11.7 step 4).

use super::rate::ByteRate;
use super::rtx::MAX_KEPT_PACKET;
use std::time::{Duration, Instant};

/// Whether a backfill packet may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Send it now (the rate budget is spent).
    Now,
    /// Not before this instant; wake then and ask again.
    At(Instant),
    /// A live packet is waiting: send it first, then ask again.
    AfterLive,
    /// Never at this rate (0, or a packet larger than one burst).
    Never,
}

/// The backfill stream's rate limit: `max_rate` bytes per second (RTP
/// headers included) with a burst of one packet, and live first.
#[derive(Debug, Clone)]
pub struct BackfillPacer {
    rate: ByteRate,
}

impl BackfillPacer {
    pub fn new(max_rate: u64, now: Instant) -> Self {
        Self {
            rate: ByteRate::new(max_rate, MAX_KEPT_PACKET as u64, now),
        }
    }

    /// May the next backfill packet, `len` bytes, go at `now`?
    /// `live_pending`: a live (or RTX) packet is ready to send; it always
    /// goes first. On [`Pace::Now`] the packet's bytes are spent.
    pub fn poll(&mut self, len: usize, live_pending: bool, now: Instant) -> Pace {
        if live_pending {
            return Pace::AfterLive;
        }
        match self.rate.ready_at(len, now) {
            None => Pace::Never,
            Some(at) if at > now => Pace::At(at),
            Some(_) => {
                self.rate.try_spend(len, now);
                Pace::Now
            }
        }
    }
}

/// What the backfill has to send and what the collector holds, in sample
/// instants (integer ns, docs/protocol.md 11.2).
#[derive(Debug, Clone)]
pub struct BackfillCursor {
    /// The collector's committed-through mark (0: nothing).
    mark: u64,
    /// Backfill covers instants after the mark and before this: the
    /// first live instant of the session.
    end: u64,
    /// The newest instant handed to the backfill stream.
    sent_through: u64,
    mark_moved_at: Instant,
    ack_timeout: Duration,
    expired: Option<(u64, u64)>,
    /// Sent everything the spool has before the live start.
    exhausted: bool,
    /// Where the agent was not running inside the spool, oldest first.
    downtimes: Vec<Downtime>,
}

/// At most this many downtimes are kept (one per restart the spool still
/// holds); past it the oldest goes, and its range stays a gap the mark
/// cannot pass until an agent reports it again.
pub const MAX_DOWNTIMES: usize = 64;

/// A stretch of the spool between two runs of the agent (a restart, a
/// reboot, a power cut): nothing was sampled after `run_end`, the earlier
/// run's last durable instant, and before `next_start`, the next run's
/// first spooled instant (known once the backfill read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Downtime {
    run_end: u64,
    next_start: Option<u64>,
}

impl BackfillCursor {
    /// At the start of a session: `mark` from the collector's SDP,
    /// `live_start` the instant of the first live sample.
    pub fn new(mark: u64, live_start: u64, ack_timeout: Duration, now: Instant) -> Self {
        Self {
            mark,
            end: live_start,
            sent_through: mark,
            mark_moved_at: now,
            ack_timeout,
            expired: None,
            exhausted: false,
            downtimes: Vec::new(),
        }
    }

    pub fn mark(&self) -> u64 {
        self.mark
    }

    /// The collector's mark, from an `SSBF` committed message. It only
    /// moves forward within a session; spool space at or below it may be
    /// released.
    pub fn on_committed(&mut self, through: u64, now: Instant) {
        if through > self.mark {
            self.mark = through;
            self.mark_moved_at = now;
            self.sent_through = self.sent_through.max(through);
        }
        if self.expired.is_some_and(|(_, before)| self.mark >= before) {
            self.expired = None;
        }
    }

    /// The next backfill packet starts with the first spooled instant
    /// strictly after this one and before [`Self::end`]; `None` when the
    /// backfill has sent everything (it may still go back, see
    /// [`Self::poll`]). Sending in instant order is what lets the
    /// collector's mark advance with each packet.
    pub fn next_after(&self) -> Option<u64> {
        (self.sent_through.saturating_add(1) < self.end).then_some(self.sent_through)
    }

    /// Instants before this one are the backfill's; from it on, live.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// A backfill packet whose last instant is `last` went out.
    pub fn on_sent(&mut self, last: u64) {
        self.sent_through = self.sent_through.max(last.min(self.end.saturating_sub(1)));
    }

    /// The spool has nothing after [`Self::next_after`] and before the
    /// end: from here on the agent reports the rest as unsampled.
    pub fn on_spool_exhausted(&mut self) {
        self.exhausted = true;
    }

    /// The range `(after, before)` to report as unsampled in every RTCP
    /// compound (an `SSBF` subtype 2) once the spool is exhausted, until
    /// the collector's mark reaches the live start: it closes the hole
    /// between the last backfilled instant and the first live one.
    pub fn unsampled(&self) -> Option<(u64, u64)> {
        (self.exhausted && !self.is_done()).then_some((self.sent_through, self.end))
    }

    /// An earlier run of the agent ended at `run_end` (its last durable
    /// instant in the spool): the next run's first spooled instant, once
    /// [`Self::on_spooled`] sees it, bounds a downtime to report as
    /// unsampled. An end at or after the live start is ignored (the range
    /// before L is reported on its own); one below the mark is kept, as
    /// the mark may lie inside the downtime (the collector holds live
    /// samples the spool lost).
    pub fn on_run_end(&mut self, run_end: u64) {
        if run_end.saturating_add(1) >= self.end {
            return;
        }
        if self.downtimes.iter().any(|d| d.run_end == run_end) {
            return;
        }
        if self.downtimes.len() >= MAX_DOWNTIMES {
            self.downtimes.remove(0);
        }
        let at = self.downtimes.partition_point(|d| d.run_end < run_end);
        self.downtimes.insert(
            at,
            Downtime {
                run_end,
                next_start: None,
            },
        );
    }

    /// A spooled record whose first instant is `first` was read (records
    /// come in instant order): the first one after a run's end is the
    /// next run's start.
    pub fn on_spooled(&mut self, first: u64) {
        for d in &mut self.downtimes {
            if d.next_start.is_none() && first > d.run_end && first < self.end {
                d.next_start = Some(first);
            }
        }
    }

    /// The downtimes to report as unsampled (an `SSBF` subtype 2 each) in
    /// every RTCP compound, as `(after, before)`: those whose earlier run
    /// the collector holds whole (its mark at or past the run's end) and
    /// whose next run's start it does not hold yet. The range starts at
    /// the mark: the collector may hold live samples after the run's last
    /// durable instant (the spool lost its unsynced tail, the live stream
    /// had sent it), and a range holding stored samples is refused.
    pub fn downtimes(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mark = self.mark;
        self.downtimes.iter().filter_map(move |d| {
            let before = d.next_start?;
            (mark >= d.run_end && mark.saturating_add(1) < before).then_some((mark, before))
        })
    }

    /// The agent holds nothing before this instant that it did not send:
    /// past a run's end it has sent, nothing was sampled until the next
    /// run's start. A collector's mark up to here is genuine (it may hold
    /// live samples the spool lost). `None`: no such downtime.
    pub fn known_empty_through(&self) -> Option<u64> {
        self.downtimes
            .iter()
            .filter(|d| d.run_end <= self.sent_through)
            .filter_map(|d| d.next_start)
            .map(|f| f.saturating_sub(1))
            .max()
    }

    /// Whether the collector holds everything before the live start.
    pub fn is_done(&self) -> bool {
        self.mark.saturating_add(1) >= self.end
    }

    /// Goes back to the mark when it has not moved for the ack timeout
    /// although more was sent: backfill packets were lost (docs/protocol.md
    /// 11.7). Returns when to call again.
    pub fn poll(&mut self, now: Instant) -> Option<Instant> {
        if self.is_done() || self.sent_through <= self.mark {
            return None;
        }
        let due = self.mark_moved_at + self.ack_timeout;
        if now >= due {
            self.sent_through = self.mark;
            self.mark_moved_at = now;
            self.exhausted = false;
            return None;
        }
        Some(due)
    }

    /// docs/protocol.md 11.7 step 7: a live packet the collector gave up on
    /// (its NACKs unanswered for `rtx-time`) stops its mark past the live
    /// start. When the mark has not moved for the ack timeout although
    /// live instants up to `settled` (old enough that live repair has given
    /// up on them) lie beyond it, the backfill takes over up to `settled`,
    /// from the mark. Returns whether it did.
    pub fn reopen(&mut self, settled: u64, now: Instant) -> bool {
        if !self.is_done()
            || settled <= self.end
            || settled <= self.mark.saturating_add(1)
            || now < self.mark_moved_at + self.ack_timeout
        {
            return false;
        }
        self.end = settled;
        self.sent_through = self.mark;
        self.mark_moved_at = now;
        self.exhausted = false;
        true
    }

    /// When [`Self::reopen`] may take over at the earliest (the mark is
    /// past the live start); `None` while the backfill runs.
    pub fn reopen_due(&self) -> Option<Instant> {
        self.is_done()
            .then_some(self.mark_moved_at + self.ack_timeout)
    }

    /// The spool dropped samples the collector had not committed: it holds
    /// nothing newer than the mark before `oldest` any more.
    pub fn on_spool_dropped(&mut self, dropped_through: u64, oldest: u64) {
        if dropped_through <= self.mark {
            return;
        }
        let after = self.expired.map_or(self.mark, |(a, _)| a.min(self.mark));
        self.expired = Some((after, oldest));
        self.sent_through = self.sent_through.max(oldest.saturating_sub(1));
    }

    /// The expired range `(after, before)` to report in every RTCP
    /// compound until the collector's mark reaches `before`.
    pub fn expired(&self) -> Option<(u64, u64)> {
        self.expired
    }
}

#[cfg(test)]
mod tests;
