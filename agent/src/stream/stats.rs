//! The sender's figures: atomics written by the real-time thread and the
//! RTCP receiver, read by anyone through [`StreamStats`] snapshots.
//!
//! Only relaxed atomic stores and adds: the hot path never waits for a
//! reader. The last receiver report is packed into one word so a reader
//! never sees the loss of one report with the jitter of another.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// No round-trip time known.
const NO_RTT: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Shared {
    pub packets: AtomicU64,
    pub sample_packets: AtomicU64,
    pub event_packets: AtomicU64,
    pub samples: AtomicU64,
    pub samples_missing: AtomicU64,
    pub instants_skipped: AtomicU64,
    pub edges_sent: AtomicU64,
    pub events_filtered: AtomicU64,
    pub events_dropped: AtomicU64,
    pub spool_dropped: AtomicU64,
    pub events_evicted: AtomicU64,
    pub send_errors: AtomicU64,
    pub sender_reports: AtomicU64,
    pub max_lateness_ns: AtomicU64,
    pub config: AtomicU64,
    pub rtcp_received: AtomicU64,
    pub rtcp_malformed: AtomicU64,
    pub srtcp_rejected: AtomicU64,
    pub receiver_reports: AtomicU64,
    /// Compounds from the peer's RTCP address (or SRTCP-authenticated)
    /// with a report on our stream: the session's heartbeat.
    pub peer_reports: AtomicU64,
    /// The report block's second word (fraction lost << 24 | cumulative
    /// lost, 24-bit signed) in the high half, jitter in the low half.
    pub last_report: AtomicU64,
    pub extended_highest_seq: AtomicU64,
    pub rtt_ns: AtomicU64,
    pub peer_bye: AtomicBool,
    /// The collector's SSBF committed mark for this stream (0: none yet;
    /// docs/protocol.md 11.4), the highest received.
    pub committed_mark: AtomicU64,
    pub nacks_received: AtomicU64,
    pub nacks_refused: AtomicU64,
    pub rtx_sent: AtomicU64,
    pub rtx_unavailable: AtomicU64,
    /// The sample instant (ns since the Unix epoch) of the first live
    /// sample; 0 until it is sampled.
    pub first_live_ns: AtomicU64,
    /// The sample instant (ns since the Unix epoch) of the first sample
    /// handed to the spool in this run; 0 until then. The spool may not
    /// hold it on disk yet when a session is offered: it is held all the
    /// same (docs/protocol.md 11.1 `oldest`).
    pub first_spooled_ns: AtomicU64,
    /// Sessions the sender thread attached to so far (set before
    /// `first_live_ns` is cleared for the new one).
    pub attaches: AtomicU64,
    /// Detach commands the sender thread has carried out (the stream's
    /// last packet and RTCP BYE sent).
    pub detaches: AtomicU64,
    pub realtime: AtomicBool,
    pub memory_locked: AtomicBool,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            packets: AtomicU64::new(0),
            sample_packets: AtomicU64::new(0),
            event_packets: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            samples_missing: AtomicU64::new(0),
            instants_skipped: AtomicU64::new(0),
            edges_sent: AtomicU64::new(0),
            events_filtered: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
            spool_dropped: AtomicU64::new(0),
            events_evicted: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            sender_reports: AtomicU64::new(0),
            max_lateness_ns: AtomicU64::new(0),
            config: AtomicU64::new(0),
            rtcp_received: AtomicU64::new(0),
            rtcp_malformed: AtomicU64::new(0),
            srtcp_rejected: AtomicU64::new(0),
            receiver_reports: AtomicU64::new(0),
            peer_reports: AtomicU64::new(0),
            last_report: AtomicU64::new(0),
            extended_highest_seq: AtomicU64::new(0),
            rtt_ns: AtomicU64::new(NO_RTT),
            peer_bye: AtomicBool::new(false),
            committed_mark: AtomicU64::new(0),
            nacks_received: AtomicU64::new(0),
            nacks_refused: AtomicU64::new(0),
            rtx_sent: AtomicU64::new(0),
            rtx_unavailable: AtomicU64::new(0),
            first_live_ns: AtomicU64::new(0),
            first_spooled_ns: AtomicU64::new(0),
            attaches: AtomicU64::new(0),
            detaches: AtomicU64::new(0),
            realtime: AtomicBool::new(false),
            memory_locked: AtomicBool::new(false),
        }
    }
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The collector's committed mark as the RTCP receiver last saw it, for
/// the backfill sender on another thread (crate::backfill).
#[derive(Debug, Clone)]
pub struct CommittedMark(pub(crate) std::sync::Arc<Shared>);

impl CommittedMark {
    /// The highest mark received so far (0: none).
    pub fn get(&self) -> u64 {
        self.0.committed_mark.load(Ordering::Relaxed)
    }

    /// One not tied to a stream, set by hand (tests of its readers).
    #[cfg(test)]
    pub(crate) fn detached() -> CommittedMark {
        CommittedMark(std::sync::Arc::default())
    }

    #[cfg(test)]
    pub(crate) fn set(&self, through: u64) {
        self.0.committed_mark.fetch_max(through, Ordering::Relaxed);
    }
}

/// docs/protocol.md 11.7's L of the session attached after this handle
/// was taken: the caller's thread learns it only once the sender thread
/// has attached and sampled the first live instant.
#[derive(Debug, Clone)]
pub struct LiveStart {
    pub(crate) shared: std::sync::Arc<Shared>,
    pub(crate) attaches_before: u64,
}

impl LiveStart {
    /// The first live instant of the next session, once it is sampled.
    pub fn get(&self) -> Option<u64> {
        if self.shared.attaches.load(Ordering::Acquire) <= self.attaches_before {
            return None;
        }
        Some(self.shared.first_live_ns.load(Ordering::Acquire)).filter(|&l| l != 0)
    }
}

/// The last receiver report about our stream (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastReport {
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24-bit signed on the wire).
    pub cumulative_lost: i32,
    /// Interarrival jitter in RTP clock ticks (A.8).
    pub jitter: u32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Round-trip time from LSR/DLSR, when the report referred to an SR.
    pub round_trip: Option<Duration>,
}

/// A snapshot of one stream's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// RTP packets sent, both formats.
    pub packets: u64,
    pub sample_packets: u64,
    pub event_packets: u64,
    /// Channel values sent with a reading.
    pub samples: u64,
    /// Channel values sent as MISSING (stale, empty or failed sensor).
    pub samples_missing: u64,
    /// Sampling instants skipped because the thread woke too late to
    /// sample them (docs/protocol.md 5.3: marker, timestamp jump).
    pub instants_skipped: u64,
    /// Edges sent (first transmissions; repeats not counted).
    pub edges_sent: u64,
    /// Edges on inputs the agreed description does not carry.
    pub events_filtered: u64,
    /// Edges lost because the input's ring was full.
    pub events_dropped: u64,
    /// Sample runs and edges not spooled because the spool writer's ring
    /// was full (they were still sent live).
    pub spool_dropped: u64,
    /// Edges evicted from the outbox before their third transmission.
    pub events_evicted: u64,
    /// Datagrams the kernel refused (buffer full, no route).
    pub send_errors: u64,
    pub sender_reports: u64,
    /// Latest wake-up after a sampling instant, in nanoseconds.
    pub max_lateness_ns: u64,
    /// The `cfg` of the description in force.
    pub config: u8,
    /// RTCP compounds received, and how many of them were malformed.
    pub rtcp_received: u64,
    pub rtcp_malformed: u64,
    /// RTCP compounds dropped because they failed SRTCP authentication or
    /// were replays (RFC 3711 3.4): forged, or under another key.
    pub srtcp_rejected: u64,
    /// Report blocks about our SSRC received.
    pub receiver_reports: u64,
    /// Compounds from the session's peer that reported on our stream
    /// (docs/protocol.md 6.1): what keeps the session alive.
    pub peer_reports: u64,
    pub last_report: Option<LastReport>,
    /// The peer sent an RTCP BYE.
    pub peer_bye: bool,
    /// Generic NACKs (RFC 4585 6.2.1) about our stream from the session's
    /// peer, and NACKs ignored: another SSRC, or not from the peer.
    pub nacks_received: u64,
    pub nacks_refused: u64,
    /// RTX packets sent (RFC 4588), and NACKed sequence numbers no longer
    /// (or never) kept.
    pub rtx_sent: u64,
    pub rtx_unavailable: u64,
    /// The first live sample's instant (docs/protocol.md 11.7's L), ns
    /// since the Unix epoch; `None` before it is sampled.
    pub first_live_ns: Option<u64>,
    /// The sender thread runs under SCHED_FIFO.
    pub realtime: bool,
    /// mlockall succeeded.
    pub memory_locked: bool,
}

impl Shared {
    pub fn snapshot(&self) -> StreamStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let receiver_reports = l(&self.receiver_reports);
        let last_report = (receiver_reports > 0).then(|| {
            let packed = l(&self.last_report);
            let word = (packed >> 32) as u32;
            // Sign-extend the 24-bit cumulative loss.
            let lost = ((word << 8) as i32) >> 8;
            let rtt = l(&self.rtt_ns);
            LastReport {
                fraction_lost: (word >> 24) as u8,
                cumulative_lost: lost,
                jitter: packed as u32,
                extended_highest_seq: l(&self.extended_highest_seq) as u32,
                round_trip: (rtt != NO_RTT).then(|| Duration::from_nanos(rtt)),
            }
        });
        StreamStats {
            packets: l(&self.packets),
            sample_packets: l(&self.sample_packets),
            event_packets: l(&self.event_packets),
            samples: l(&self.samples),
            samples_missing: l(&self.samples_missing),
            instants_skipped: l(&self.instants_skipped),
            edges_sent: l(&self.edges_sent),
            events_filtered: l(&self.events_filtered),
            events_dropped: l(&self.events_dropped),
            spool_dropped: l(&self.spool_dropped),
            events_evicted: l(&self.events_evicted),
            send_errors: l(&self.send_errors),
            sender_reports: l(&self.sender_reports),
            max_lateness_ns: l(&self.max_lateness_ns),
            config: l(&self.config) as u8,
            rtcp_received: l(&self.rtcp_received),
            rtcp_malformed: l(&self.rtcp_malformed),
            srtcp_rejected: l(&self.srtcp_rejected),
            receiver_reports,
            peer_reports: l(&self.peer_reports),
            last_report,
            peer_bye: self.peer_bye.load(Ordering::Relaxed),
            nacks_received: l(&self.nacks_received),
            nacks_refused: l(&self.nacks_refused),
            rtx_sent: l(&self.rtx_sent),
            rtx_unavailable: l(&self.rtx_unavailable),
            first_live_ns: Some(l(&self.first_live_ns)).filter(|&t| t != 0),
            realtime: self.realtime.load(Ordering::Relaxed),
            memory_locked: self.memory_locked.load(Ordering::Relaxed),
        }
    }

    /// The figures `status` shows of repair and acknowledgement.
    pub fn repair_status(&self) -> crate::status::RepairStatus {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let set = |ns: u64| Some(ns).filter(|&ns| ns != 0);
        crate::status::RepairStatus {
            nacks_received: l(&self.nacks_received),
            nacks_refused: l(&self.nacks_refused),
            packets_resent: l(&self.rtx_sent),
            given_up: l(&self.rtx_unavailable),
            committed_mark_ns: set(l(&self.committed_mark)),
            first_live_ns: set(l(&self.first_live_ns)),
        }
    }

    /// Record a report block about our stream.
    pub fn report(&self, block: &sipsensor_protocol::ReportBlock, round_trip: Option<Duration>) {
        let lost = (block.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        let word = u32::from(block.fraction_lost) << 24 | lost;
        self.last_report.store(
            u64::from(word) << 32 | u64::from(block.jitter),
            Ordering::Relaxed,
        );
        self.extended_highest_seq
            .store(u64::from(block.extended_highest_seq), Ordering::Relaxed);
        let rtt = round_trip.map_or(NO_RTT, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(NO_RTT - 1)
        });
        self.rtt_ns.store(rtt, Ordering::Relaxed);
        bump(&self.receiver_reports, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_protocol::ReportBlock;

    #[test]
    fn a_report_round_trips_through_the_packed_word() {
        let s = Shared::default();
        assert_eq!(s.snapshot().last_report, None);
        for lost in [-0x80_0000, -1, 0, 1, 0x7f_ffff] {
            s.report(
                &ReportBlock {
                    ssrc: 1,
                    fraction_lost: 200,
                    cumulative_lost: lost,
                    extended_highest_seq: 0x1_0005,
                    jitter: 0xdead_beef,
                    last_sr: 0,
                    delay_since_last_sr: 0,
                },
                Some(Duration::from_micros(1500)),
            );
            let r = s.snapshot().last_report.unwrap();
            assert_eq!(r.cumulative_lost, lost);
            assert_eq!(r.fraction_lost, 200);
            assert_eq!(r.jitter, 0xdead_beef);
            assert_eq!(r.extended_highest_seq, 0x1_0005);
            assert_eq!(r.round_trip, Some(Duration::from_micros(1500)));
        }
        s.report(&ReportBlock::default(), None);
        let snap = s.snapshot();
        assert_eq!(snap.receiver_reports, 6);
        assert_eq!(snap.last_report.unwrap().round_trip, None);
    }

    #[test]
    fn repair_figures_are_the_senders_own() {
        let s = Shared::default();
        assert_eq!(s.repair_status(), crate::status::RepairStatus::default());
        bump(&s.nacks_received, 3);
        bump(&s.nacks_refused, 1);
        bump(&s.rtx_sent, 5);
        bump(&s.rtx_unavailable, 2);
        s.committed_mark.store(1_000, Ordering::Relaxed);
        s.first_live_ns.store(2_000, Ordering::Relaxed);
        let r = s.repair_status();
        assert_eq!(
            (
                r.nacks_received,
                r.nacks_refused,
                r.packets_resent,
                r.given_up
            ),
            (3, 1, 5, 2)
        );
        assert_eq!(
            (r.committed_mark_ns, r.first_live_ns),
            (Some(1_000), Some(2_000))
        );
    }
}
