//! The backfill sender's decisions, sans-I/O (docs/protocol.md 11.6,
//! 11.7): what of the spool to send after an interruption, when (paced
//! below the agreed rate), which expired and unsampled ranges to report
//! (the agent's own downtimes inside the spool among them),
//! how far the spool may be released, and when to go back to the
//! collector's mark because a backfill packet was lost.
//!
//! ```text
//!   shell (shell.rs, its own normal-priority thread)
//!     │ poll_read ──► Spool::read_from ──► on_read(chunk)
//!     │ on_mark ◄── SSBF committed (rtcp-receiver, verified)
//!     │ poll_transmit ──► SRTP ──► RTP socket (bf SSRC)
//!     │ poll_release ──► Spool::release_through
//!     │ poll_rtcp ──► SR + SDES + APP SSBF expired/unsampled
//!     └ poll_timeout: when to wake
//! ```
//!
//! Live first holds by construction: the live sender runs SCHED_FIFO and
//! this never runs on its thread, so the pacer never sees a live packet
//! waiting.

mod packet;
mod plan;
mod shell;

pub use plan::{BackfillPlan, BackfillStats, DEFAULT_ACK_TIMEOUT, ReadChunk, SpoolState};
pub use shell::{BackfillShell, ShellError, ShellPlan};

use crate::spool::{LayoutChannel, Record};
use packet::{Unit, Units};
use sipsensor_protocol::{
    BackfillCursor, BackfillMessage, BackfillPace, BackfillPacer, MAX_KEPT_PACKET, RtpSender,
};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How often the backfill stream's RTCP compound goes while it reports a
/// range: the repetition is the report's reliability (11.4).
pub const RTCP_INTERVAL: Duration = Duration::from_secs(1);
/// Records asked of the spool at once.
pub const READ_BATCH: usize = 256;

/// The backfill of one session. See the module's picture.
#[derive(Debug)]
pub struct Backfill {
    cursor: BackfillCursor,
    pacer: BackfillPacer,
    rtp: RtpSender,
    units: Units,
    payload_type: u8,
    instant_id: u8,
    live_ssrc: u32,
    /// Records read, after `sent`.
    queue: VecDeque<Record>,
    /// The next packet, built from the queue, waiting for the pacer, and
    /// its length on the wire.
    next: Option<(Unit, usize)>,
    /// Where packets are measured before they go (no sequence number is
    /// spent on a packet that never goes: gaps mean loss, 11.6).
    scratch: Vec<u8>,
    /// Bytes the shell adds to each packet on the wire (the SRTP tag),
    /// counted against the rate like the headers.
    overhead: usize,
    /// The newest instant read from the spool (the next read is after it).
    read_through: u64,
    /// The spool holds nothing more before the live start.
    read_complete: bool,
    /// The newest instant handed to the socket since the last restart.
    sent: u64,
    /// The release the shell has not carried out yet.
    release: Option<u64>,
    released: u64,
    known_dropped: i64,
    rtcp_due: Instant,
    stopped: bool,
    odd_mark_logged: bool,
    stats: BackfillStats,
    /// L and when the core started (about when L was sampled): where the
    /// live stream is now, for repairs past L (11.7 step 7).
    live_start: u64,
    started: Instant,
    ack_timeout: std::time::Duration,
}

impl Backfill {
    /// A backfill starting at `now`, with what the spool says of itself
    /// and the channels of every layout it remembers. `first_sequence`:
    /// a random start (RFC 3550 5.1).
    pub fn new(
        plan: BackfillPlan,
        spool: SpoolState,
        layouts: HashMap<u32, Vec<LayoutChannel>>,
        first_sequence: u16,
        now: Instant,
    ) -> Backfill {
        let BackfillPlan {
            ssrc,
            live_ssrc,
            payload_type,
            instant_id,
            mark,
            live_start,
            max_rate,
            ack_timeout,
            description,
            inputs,
        } = plan;
        let mut b = Backfill {
            live_start,
            started: now,
            ack_timeout,
            cursor: BackfillCursor::new(mark, live_start, ack_timeout, now),
            pacer: BackfillPacer::new(max_rate, now),
            // Timestamps count clock ticks since the Unix epoch (informative,
            // 11.6), so the SR maps them with no state.
            rtp: RtpSender::with_start(ssrc, first_sequence, 0),
            units: Units::new(description, inputs, layouts),
            payload_type,
            instant_id,
            live_ssrc,
            queue: VecDeque::new(),
            next: None,
            scratch: vec![0; MAX_KEPT_PACKET],
            overhead: 0,
            read_through: mark,
            read_complete: false,
            sent: mark,
            release: None,
            released: 0,
            known_dropped: i64::MIN,
            rtcp_due: now,
            stopped: false,
            odd_mark_logged: false,
            stats: BackfillStats::default(),
        };
        b.on_spool_state(spool);
        // The SDP's mark is a committed mark like any other.
        if mark > 0 {
            b.release = Some(mark);
        }
        if max_rate == 0 && !b.cursor.is_done() {
            tracing::warn!(
                "backfill: the agreed rate is 0 bytes/s; nothing is backfilled this session"
            );
        }
        b
    }

    /// Each packet gets `bytes` more on the wire (SRTP's tag, RFC 3711
    /// 3.1): the rate limit counts them too.
    /// The spool's earlier runs ended at these instants (their last
    /// durable records, docs/protocol.md 11.7 step 4): the time from each
    /// to the next run's first spooled instant is reported unsampled.
    pub fn on_run_ends(&mut self, run_ends: &[i64]) {
        for end in run_ends {
            if let Ok(end) = u64::try_from(*end) {
                self.cursor.on_run_end(end);
            }
        }
    }

    pub fn set_wire_overhead(&mut self, bytes: usize) {
        self.overhead = bytes;
        self.next = None;
    }

    pub fn stats(&self) -> BackfillStats {
        self.stats
    }

    /// Whether the collector holds everything before the live start.
    pub fn is_done(&self) -> bool {
        self.cursor.is_done()
    }

    /// Instants before this one are backfilled: L, or further once a live
    /// packet the collector gave up on reopened it (11.7 step 7).
    pub fn end(&self) -> u64 {
        self.cursor.end()
    }

    /// The collector's committed mark (0: nothing).
    pub fn mark(&self) -> u64 {
        self.cursor.mark()
    }

    /// An `SSBF` committed mark from the session's peer, verified (SRTCP)
    /// by the caller. A mark that goes back is ignored; one inside the
    /// backfill range beyond what was sent or reported is clamped to that
    /// (a copy sent twice is stored once, a sample released unsent is
    /// lost), logged once.
    pub fn on_mark(&mut self, through: u64, now: Instant) {
        let current = self.cursor.mark();
        if through <= current {
            if through < current && self.odd_mark() {
                tracing::warn!(
                    "backfill: the collector's mark went back from {current} to {through} ns; ignored (later odd marks are only counted)"
                );
            }
            return;
        }
        let ceiling = self.claimed_through();
        let accepted = if through < self.cursor.end() && through > ceiling {
            if self.odd_mark() {
                tracing::info!(
                    "backfill: the collector's mark {through} ns is beyond what was backfilled; taken as {ceiling} ns (later odd marks are only counted)"
                );
            }
            ceiling
        } else {
            through
        };
        if accepted > current {
            let reported = self.cursor.downtimes().next().map(|(_, before)| before);
            self.cursor.on_committed(accepted, now);
            // A downtime just became reportable: say so now rather than at
            // the next interval, as the mark waits for it.
            if let Some((_, before)) = self.cursor.downtimes().next()
                && Some(before) != reported
            {
                self.rtcp_due = self.rtcp_due.min(now);
            }
        }
        if accepted > self.released {
            self.release = Some(accepted);
        }
    }

    /// Where the spool should be read from: records after the returned
    /// instant. `None`: nothing to read now.
    pub fn poll_read(&self) -> Option<u64> {
        let reading = !self.stopped
            && self.queue.is_empty()
            && self.next.is_none()
            && !self.read_complete
            && !self.cursor.is_done()
            && self.cursor.next_after().is_some();
        reading.then_some(self.read_through)
    }

    /// The spool's answer to `poll_read() == Some(after)`. An answer to an
    /// older request (the backfill went back meanwhile) is dropped.
    pub fn on_read(&mut self, after: u64, chunk: ReadChunk) {
        self.on_spool_state(chunk.state);
        if self.stopped || after != self.read_through {
            return;
        }
        let end = self.cursor.end();
        for record in chunk.records {
            let (first, last) = record.span();
            if let Ok(first) = u64::try_from(first) {
                self.cursor.on_spooled(first);
            }
            let last = u64::try_from(last).unwrap_or(0);
            if last <= after {
                continue;
            }
            self.read_through = self.read_through.max(last.min(end.saturating_sub(1)));
            self.queue.push_back(record);
        }
        // Not complete: the spool has not caught up with the live start
        // yet (the writer lags the sender); the same read is asked again.
        if chunk.complete || self.read_through.saturating_add(1) >= end {
            self.read_complete = true;
        }
    }

    /// The spool could not be read: backfill ends for this session (what
    /// it could not send stays in the spool for the next one).
    pub fn on_read_error(&mut self, error: &str) {
        if !self.stopped {
            tracing::warn!(
                "backfill: cannot read the spool ({error}); backfill stops for this session"
            );
        }
        self.stopped = true;
        self.queue.clear();
        self.next = None;
    }

    /// The next backfill packet into `buf` if the rate allows it at `now`:
    /// its length. Call until `None`, then sleep until `poll_timeout`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.handle_timeout(now);
        if self.stopped || self.cursor.is_done() {
            return None;
        }
        if self.next.is_none() {
            self.next = self.build_next();
        }
        let (_, len) = self.next.as_ref()?;
        match self.pacer.poll(*len, false, now) {
            BackfillPace::Now => {}
            _ => return None,
        }
        let (unit, _) = self.next.take()?;
        let written = unit.write(
            &mut self.rtp,
            buf,
            self.payload_type,
            self.instant_id,
            &self.units.desc,
        );
        let n = match written {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("backfill: cannot build a packet ({e}); backfill stops");
                self.stopped = true;
                return None;
            }
        };
        self.cursor.on_sent(unit.last_ns());
        self.sent = self.sent.max(unit.last_ns());
        self.stats.packets += 1;
        self.stats.bytes += (n + self.overhead) as u64;
        Some(n)
    }

    /// The spool may drop everything at or below the returned instant.
    pub fn poll_release(&mut self) -> Option<u64> {
        let at = self.release.take()?;
        self.released = self.released.max(at);
        Some(at)
    }

    /// The SSBF messages to put in the compound, if one is due at `now`
    /// (every `RTCP_INTERVAL` while anything is being backfilled or
    /// reported). `None`: no compound now.
    pub fn poll_rtcp(&mut self, now: Instant) -> Option<Vec<BackfillMessage>> {
        if now < self.rtcp_due || self.cursor.is_done() || self.stopped {
            return None;
        }
        self.rtcp_due = now + RTCP_INTERVAL;
        let media_ssrc = self.live_ssrc;
        let mut out = Vec::new();
        if let Some((after_ns, before_ns)) = self.cursor.expired() {
            out.push(BackfillMessage::Expired {
                media_ssrc,
                after_ns,
                before_ns,
            });
        }
        for (after_ns, before_ns) in self.cursor.downtimes() {
            out.push(BackfillMessage::Unsampled {
                media_ssrc,
                after_ns,
                before_ns,
            });
        }
        if let Some((after_ns, before_ns)) = self.cursor.unsampled() {
            out.push(BackfillMessage::Unsampled {
                media_ssrc,
                after_ns,
                before_ns,
            });
        }
        Some(out)
    }

    /// The RTP sender of the backfill stream (SSRC, counts for the SR).
    pub fn rtp(&self) -> &RtpSender {
        &self.rtp
    }

    /// When to call again at the latest (`None`: only on new input).
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        self.handle_timeout(now);
        // Polled again at the same `now`: it reports when it is due.
        let mut wake = self.cursor.poll(now);
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        if let Some(due) = self.cursor.reopen_due() {
            // Looked at again while live repair may leave a hole behind
            // the mark; not more often than twice a second.
            at(due.max(now + std::time::Duration::from_millis(500)));
        }
        if !self.cursor.is_done() {
            at(self.rtcp_due);
        }
        if let Some((_, len)) = &self.next
            && let BackfillPace::At(t) = self.pacer_peek(*len, now)
        {
            at(t);
        }
        wake
    }

    fn pacer_peek(&self, len: usize, now: Instant) -> BackfillPace {
        // A clone so that asking does not spend the budget.
        self.pacer.clone().poll(len, false, now)
    }

    /// Go back to the mark if it stalled (11.7 step 6), or, past the live
    /// start, if a live packet the collector gave up on holds it (step 7):
    /// then the backfill resends from the mark up to instants the live
    /// repair has given up on (an ack timeout old).
    fn handle_timeout(&mut self, now: Instant) {
        if self.cursor.is_done() && !self.stopped {
            let live_for = now.saturating_duration_since(self.started);
            let settled = self
                .live_start
                .saturating_add(u64::try_from(live_for.as_nanos()).unwrap_or(u64::MAX))
                .saturating_sub(u64::try_from(self.ack_timeout.as_nanos()).unwrap_or(u64::MAX));
            if self.cursor.reopen(settled, now) {
                let from = self.cursor.mark();
                self.stats.restarts += 1;
                tracing::debug!(
                    "backfill: the collector's mark stayed at {from} ns past the live start; resending up to {settled} ns"
                );
                self.sent = from;
                self.read_through = from;
                self.read_complete = false;
                self.queue.clear();
                self.next = None;
                return;
            }
        }
        let before = self.cursor.next_after();
        self.cursor.poll(now);
        let after = self.cursor.next_after();
        if after != before
            && let Some(from) = after
            && from < self.sent
        {
            self.stats.restarts += 1;
            tracing::info!(
                "backfill: the collector's mark stayed at {from} ns for the ack timeout; resending from there"
            );
            self.sent = from;
            self.read_through = from;
            self.read_complete = false;
            self.queue.clear();
            self.next = None;
        }
    }

    fn build_next(&mut self) -> Option<(Unit, usize)> {
        let after = self.cursor.next_after()?;
        let end = self.cursor.end();
        loop {
            let Some(record) = self.queue.pop_front() else {
                if self.read_complete {
                    // Everything before the live start went: report the
                    // rest as unsampled (11.7 step 4).
                    self.cursor.on_spool_exhausted();
                }
                return None;
            };
            match self.units.unit(record, &mut self.queue, after, end) {
                Ok(Some(unit)) => {
                    let measured = unit.write(
                        &mut self.rtp.clone(),
                        &mut self.scratch,
                        self.payload_type,
                        self.instant_id,
                        &self.units.desc,
                    );
                    match measured {
                        Ok(len) => return Some((unit, len + self.overhead)),
                        Err(e) => self.unplaceable(format_args!("cannot encode it: {e}")),
                    }
                }
                Ok(None) => {}
                Err(why) => self.unplaceable(format_args!("{why}")),
            }
        }
    }

    fn unplaceable(&mut self, why: std::fmt::Arguments<'_>) {
        self.stats.unplaceable += 1;
        if self.stats.unplaceable == 1 {
            tracing::warn!("backfill: spooled data not sent ({why}); later cases are only counted");
        }
    }

    /// Everything up to here was sent or reported (the mark may get there).
    fn claimed_through(&self) -> u64 {
        let mut through = self.sent.max(self.cursor.next_after().unwrap_or(0));
        if let Some((_, before)) = self.cursor.expired() {
            through = through.max(before.saturating_sub(1));
        }
        if let Some((_, before)) = self.cursor.unsampled() {
            through = through.max(before);
        }
        if let Some(empty) = self.cursor.known_empty_through() {
            through = through.max(empty);
        }
        through
    }

    fn on_spool_state(&mut self, state: SpoolState) {
        let Some(dropped) = state.dropped_through else {
            return;
        };
        // An empty spool that dropped something has lost all up to now.
        let oldest = state.oldest.unwrap_or(i64::MAX);
        if dropped <= self.known_dropped {
            return;
        }
        self.known_dropped = dropped;
        let dropped = u64::try_from(dropped).unwrap_or(0);
        let oldest = u64::try_from(oldest).unwrap_or(0).min(self.cursor.end());
        if dropped > self.cursor.mark() {
            self.cursor.on_spool_dropped(dropped, oldest);
            tracing::info!(
                "backfill: the spool dropped samples the collector did not have; reporting {} to {oldest} ns as expired",
                self.cursor.mark()
            );
        }
    }

    /// Count an odd mark; `true` for the first (the one to log).
    fn odd_mark(&mut self) -> bool {
        self.stats.odd_marks += 1;
        !std::mem::replace(&mut self.odd_mark_logged, true)
    }
}

#[cfg(test)]
mod tests;
