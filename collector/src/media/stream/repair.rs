//! The packets of docs/protocol.md section 11 on one stream: the sample
//! instant that times them (11.2), retransmissions (11.5, RFC 4588) and
//! backfill (11.6), and the NACKs that ask for the lost live ones.

use super::recovery::RepairTally;
use super::{Bucket, Outcome, Pkt, Reject, Sink, StreamRx, ns_of};
use crate::storage::ReadingSource;
use sipsensor_protocol::{RtpPacket, SampleInstant, SrMapping, parse_rtx};
use std::time::Instant;

/// How a packet's instants get their wall-clock time.
#[derive(Debug, Clone, Copy)]
pub(super) enum Timing<'a> {
    /// docs/protocol.md 11.2: `first + k × step`, exactly.
    Stamped(SampleInstant),
    /// RFC 3550 6.4.1: the RTP timestamp through the last sender report.
    Mapped(&'a SrMapping),
}

impl Timing<'_> {
    /// Instant `k` of a samples packet whose instant 0 is at `ts_k`.
    pub(super) fn sample_ns(&self, k: u8, ts_k: u32) -> Option<i64> {
        match self {
            Timing::Stamped(i) => i.sample(k).and_then(|ns| i64::try_from(ns).ok()),
            Timing::Mapped(m) => ns_of(m, ts_k, 0),
        }
    }

    /// Nanoseconds between two instants `period` ticks apart (of a
    /// `clock_rate` clock when mapped).
    pub(super) fn step_ns(&self, period: u32, clock_rate: u32) -> i64 {
        match self {
            Timing::Stamped(i) => i64::try_from(i.step_ns).unwrap_or(i64::MAX),
            Timing::Mapped(_) => {
                let ns = u64::from(period) * 1_000_000_000 / u64::from(clock_rate.max(1));
                i64::try_from(ns).unwrap_or(i64::MAX)
            }
        }
    }

    /// An event edge `offset` (32.32 ticks) from the packet's timestamp.
    pub(super) fn edge_ns(&self, ts: u32, offset: i64) -> Option<i64> {
        match self {
            Timing::Stamped(i) => i.edge(offset).and_then(|ns| i64::try_from(ns).ok()),
            Timing::Mapped(m) => ns_of(m, ts, offset),
        }
    }
}

impl StreamRx {
    /// The sample instant of a packet when the session agreed it; a packet
    /// without one is dropped (docs/protocol.md 11.2).
    pub(super) fn instant_of(
        &self,
        pkt: &RtpPacket<'_>,
        sink: &mut Sink,
    ) -> Result<Option<SampleInstant>, Reject> {
        let Some(id) = self.recovery.instant_id else {
            return Ok(None);
        };
        match pkt.sample_instant(id) {
            Ok(Some(i)) => Ok(Some(i)),
            Ok(None) | Err(_) => {
                sink.reject(
                    Reject::NoInstant,
                    format!("{}: sequence number {}", self.aor, pkt.sequence),
                );
                Err(Reject::NoInstant)
            }
        }
    }

    pub(super) fn flooded(
        bucket: &mut Bucket,
        aor: &str,
        arrival: Instant,
        sink: &mut Sink,
    ) -> bool {
        if bucket.take(arrival) {
            return false;
        }
        sink.reject(Reject::Flood, format!("{aor} sends too fast"));
        true
    }

    /// A retransmission (RFC 4588 4): stored as its original, only when it
    /// is one our NACKs wait for.
    pub(super) fn on_rtx(
        &mut self,
        pkt: &RtpPacket<'_>,
        arrival: Instant,
        sink: &mut Sink,
    ) -> Outcome {
        if Self::flooded(&mut self.recovery_bucket, &self.aor, arrival, sink) {
            return Outcome::Dropped(Reject::Flood);
        }
        let Some(apt) = self.recovery.apt(pkt.payload_type) else {
            sink.reject(
                Reject::WrongPayloadType,
                format!("{}: RTX payload type {}", self.aor, pkt.payload_type),
            );
            return Outcome::Dropped(Reject::WrongPayloadType);
        };
        let Ok((osn, original)) = parse_rtx(pkt.payload) else {
            sink.reject(Reject::MalformedPayload, format!("{}: RTX", self.aor));
            return Outcome::Dropped(Reject::MalformedPayload);
        };
        let instant = match self.instant_of(pkt, sink) {
            Ok(i) => i,
            Err(r) => return Outcome::Dropped(r),
        };
        let Some(ext) = self.recovery.on_rtx(osn, arrival) else {
            sink.reject(
                Reject::Unrequested,
                format!("{}: RTX of sequence number {osn}", self.aor),
            );
            return Outcome::Dropped(Reject::Unrequested);
        };
        // Not marked received for the gap finder: the writer may yet defer
        // or give up a resent row (storage/writer/late.rs), and a hole
        // counted as filled leaves as a source gap that the committed mark
        // passes, so the agent would release what storage never got. Left
        // missing, the hole is stored as a loss gap, which the resent rows
        // cut away once they are stored (storage/gap_cuts.rs) and which
        // otherwise holds the mark until backfill brings them (11.7 step 7).
        self.process(
            Pkt {
                ext,
                pt: apt,
                ts: pkt.timestamp,
                payload: original,
                arrival,
                instant,
                source: ReadingSource::Resent,
            },
            sink,
        )
    }

    /// A backfill packet (docs/protocol.md 11.6): timed by its instant
    /// only, decoded under the current description, stored by key.
    pub(super) fn on_backfill(
        &mut self,
        pkt: &RtpPacket<'_>,
        arrival: Instant,
        sink: &mut Sink,
    ) -> Outcome {
        if Self::flooded(&mut self.recovery_bucket, &self.aor, arrival, sink) {
            return Outcome::Dropped(Reject::Flood);
        }
        if !self.recovery.is_backfill_pt(pkt.payload_type) {
            sink.reject(
                Reject::WrongPayloadType,
                format!("{}: backfill payload type {}", self.aor, pkt.payload_type),
            );
            return Outcome::Dropped(Reject::WrongPayloadType);
        }
        let instant = match self.instant_of(pkt, sink) {
            Ok(i) => i,
            Err(r) => return Outcome::Dropped(r),
        };
        // Storage serves live rows first (docs/protocol.md 11.6): while its
        // late rows wait, a backfill packet is refused before any decoding,
        // and the mark, stopping before it, makes the agent resend it.
        let first_ns = instant.map_or(0, |i| i.first_ns);
        if !self.backfill_gate.admit(first_ns, !sink.late_closed) {
            sink.reject(Reject::BackfillDeferred, String::new());
            return Outcome::Dropped(Reject::BackfillDeferred);
        }
        self.process(
            Pkt {
                // The backfill's own sequence: it has no place in the live
                // stream's.
                ext: u64::from(pkt.sequence),
                pt: pkt.payload_type,
                ts: pkt.timestamp,
                payload: pkt.payload,
                arrival,
                instant,
                source: ReadingSource::Backfilled,
            },
            sink,
        )
    }

    /// Whether lost live packets are awaited: the shell polls
    /// [`Self::poll_nack`] while they are.
    pub fn nacking(&self) -> bool {
        self.recovery.nacking()
    }

    /// A compound with a generic NACK for the lost live packets due now
    /// (docs/protocol.md 11.5), to go to [`Self::rtcp_dest`].
    pub fn poll_nack(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let media_ssrc = self.receiver.ssrc().or(self.expected_ssrc)?;
        self.recovery
            .poll_nack(now, (self.local_ssrc, media_ssrc, &self.cname), buf)
    }

    /// The repair counters since the last call.
    pub fn take_repair_tally(&mut self) -> RepairTally {
        std::mem::take(&mut self.recovery.tally)
    }
}
