//! Why a datagram was not used: counted in
//! `sipsensor_collector_packets_rejected_total{reason}` and logged at most
//! once per interval per reason.

/// Every reason a packet is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Not an RTP packet (RFC 3550 5.1 / A.1 header checks).
    MalformedRtp,
    /// Not a valid compound RTCP packet (RFC 3550 6.1, A.2).
    MalformedRtcp,
    /// Larger than any sensor stream packet (truncated on receipt).
    Oversized,
    /// No session has this source address and SSRC.
    UnknownSource,
    /// The session's SSRC from another address than the one it streams
    /// from, or RTCP from another than its RTCP address.
    WrongAddress,
    /// Another SSRC than the session's (RFC 3550 A.1 source validation).
    ForeignSsrc,
    /// Plain RTP or RTCP naming an SRTP session (its SSRC, or its address
    /// before it latched), or SRTP under another session's key (RFC 3711:
    /// an SRTP session takes only what its key authenticates).
    Unauthenticated,
    /// Same sequence number as a packet already received.
    Duplicate,
    /// A.1: a large sequence jump not (yet) confirmed, or a packet too late.
    BadSequence,
    /// The payload does not decode (docs/protocol.md 5).
    MalformedPayload,
    /// A `cfg` number the session does not know.
    UnknownConfig,
    /// A payload type or kind that is not the session's.
    WrongPayloadType,
    /// Channel or input count differs from the description.
    PayloadMismatch,
    /// More packets than the stream can legitimately send.
    Flood,
    /// Held for a sender report too long (the first SR never came).
    NoSenderReport,
    /// A sample time that maps outside the representable range.
    BadTimestamp,
    /// A sender report whose clock is too far from the collector's
    /// (`media.max_clock_offset_s`).
    ClockOffset,
    /// A sender report whose clock jumped from the previous report's
    /// (`media.max_clock_step_ms`).
    ClockJump,
    /// A packet of a session that agreed the sample instant without one
    /// (docs/protocol.md 11.2).
    NoInstant,
    /// A retransmission of a packet no NACK waits for (never lost,
    /// already filled, given up, or an OSN made up).
    Unrequested,
    /// An acknowledgement range (docs/protocol.md 11.4 `SSBF` expired or
    /// unsampled) that is not the stream's agent's, or that cannot be
    /// true: another stream's, empty, in the future, contradicting stored
    /// samples.
    BackfillRange,
    /// A backfill packet (docs/protocol.md 11.6) while the storage writer
    /// takes no more resent or backfilled rows: refused before decoding,
    /// so the mark stops before it and the agent sends it again (11.7).
    BackfillDeferred,
    /// A live packet while the storage writer's memory is nearly full
    /// (`storage.max_pending_rows`): refused before decoding, so its
    /// stream counts it lost (NACK, then a loss gap that holds the mark)
    /// instead of the writer dropping its rows after the stream counted
    /// them received.
    StorageFull,
}

impl Reject {
    pub const ALL: [Reject; 23] = [
        Reject::MalformedRtp,
        Reject::MalformedRtcp,
        Reject::Oversized,
        Reject::UnknownSource,
        Reject::WrongAddress,
        Reject::ForeignSsrc,
        Reject::Unauthenticated,
        Reject::Duplicate,
        Reject::BadSequence,
        Reject::MalformedPayload,
        Reject::UnknownConfig,
        Reject::WrongPayloadType,
        Reject::PayloadMismatch,
        Reject::Flood,
        Reject::NoSenderReport,
        Reject::BadTimestamp,
        Reject::ClockOffset,
        Reject::ClockJump,
        Reject::NoInstant,
        Reject::Unrequested,
        Reject::BackfillRange,
        Reject::BackfillDeferred,
        Reject::StorageFull,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::MalformedRtp => "malformed_rtp",
            Reject::MalformedRtcp => "malformed_rtcp",
            Reject::Oversized => "oversized",
            Reject::UnknownSource => "unknown_source",
            Reject::WrongAddress => "wrong_address",
            Reject::ForeignSsrc => "foreign_ssrc",
            Reject::Unauthenticated => "unauthenticated",
            Reject::Duplicate => "duplicate",
            Reject::BadSequence => "bad_sequence",
            Reject::MalformedPayload => "malformed_payload",
            Reject::UnknownConfig => "unknown_cfg",
            Reject::WrongPayloadType => "wrong_payload_type",
            Reject::PayloadMismatch => "payload_mismatch",
            Reject::Flood => "flood",
            Reject::NoSenderReport => "no_sender_report",
            Reject::BadTimestamp => "bad_timestamp",
            Reject::ClockOffset => "clock_offset",
            Reject::ClockJump => "clock_jump",
            Reject::NoInstant => "no_instant",
            Reject::Unrequested => "unrequested_rtx",
            Reject::BackfillRange => "backfill_range",
            Reject::BackfillDeferred => "backfill_deferred",
            Reject::StorageFull => "storage_full",
        }
    }

    pub fn index(self) -> usize {
        Reject::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// Duplicates are normal on real networks, and deferred backfill on a
    /// busy collector (the writer logs it): counted, never logged.
    pub fn is_quiet(self) -> bool {
        matches!(self, Reject::Duplicate | Reject::BackfillDeferred)
    }
}

/// Counts per reason, added to the metrics family now and then (a family
/// lookup per packet would cost a lock each).
#[derive(Debug, Default, Clone)]
pub struct RejectCounts([u64; Reject::ALL.len()]);

impl RejectCounts {
    pub fn add(&mut self, r: Reject) {
        self.0[r.index()] += 1;
    }

    #[cfg(test)]
    pub fn get(&self, r: Reject) -> u64 {
        self.0[r.index()]
    }

    /// Moves the counts into the metrics and resets them.
    pub fn drain_into(&mut self, metrics: &crate::metrics::Metrics) {
        for r in Reject::ALL {
            let n = std::mem::take(&mut self.0[r.index()]);
            if n > 0 {
                metrics
                    .packets_rejected
                    .get_or_create(&[("reason", r.as_str())])
                    .inc_by(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_indexes_dense() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert!(seen.insert(r.as_str()));
            assert_eq!(r.index(), i);
        }
        let mut c = RejectCounts::default();
        c.add(Reject::Flood);
        c.add(Reject::Flood);
        assert_eq!(c.get(Reject::Flood), 2);
        let m = crate::metrics::Metrics::new(crate::stats::StreamsRegistry::new());
        c.drain_into(&m);
        assert_eq!(c.get(Reject::Flood), 0);
        assert!(
            m.render()
                .unwrap()
                .contains("sipsensor_collector_packets_rejected_total{reason=\"flood\"} 2")
        );
    }
}
