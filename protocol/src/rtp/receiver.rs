//! Reception statistics for one RTP source: RFC 3550 A.1 (sequence
//! validation and extension), A.3 (loss), A.8 (jitter), plus duplicate
//! detection that A.1 leaves out, so loss counts stay exact when a
//! network duplicates packets.

use super::RtpPacket;
use crate::rtcp::{ReportBlock, SenderReport, SrMapping};
use std::time::{Duration, Instant};

const RTP_SEQ_MOD: u32 = 1 << 16;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const MIN_SEQUENTIAL: u32 = 2;
/// Duplicate window: covers the MAX_MISORDER packets A.1 accepts as late.
const WINDOW: u64 = 128;

/// What became of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted. `extended_seq` places it in the stream; `restarted` means
    /// the source's sequence was re-initialised (A.1: a large jump
    /// confirmed by the next packet), so a gap here is not loss.
    Accepted { extended_seq: u64, restarted: bool },
    /// Same sequence number as a packet already counted.
    Duplicate,
    /// A.1 probation: the source is not yet validated.
    Probation,
    /// A.1: a large jump, held back until the next packet confirms it.
    BadSequence,
    /// Late by more than the stream has been validated for.
    TooOld,
    /// Not the session's source.
    ForeignSource(u32),
}

/// A snapshot of the counters, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiverStats {
    pub ssrc: Option<u32>,
    pub received: u64,
    pub expected: u64,
    /// Expected minus received; negative only after duplicates A.1 would
    /// have counted, which this receiver does not.
    pub lost: i64,
    pub extended_highest_seq: u64,
    /// Interarrival jitter in timestamp units (A.8).
    pub jitter: u32,
    pub duplicates: u64,
    pub foreign: u64,
}

#[derive(Debug, Clone)]
struct Source {
    ssrc: u32,
    max_seq: u16,
    cycles: u64,
    base_seq: u64,
    bad_seq: u32,
    probation: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Bit k set: extended seq `highest - k` was received.
    window: u128,
    transit: Option<u32>,
    /// Jitter scaled by 16 (A.8, integer form); u64 so that wild
    /// timestamps cannot overflow it.
    jitter16: u64,
}

impl Source {
    fn new(ssrc: u32, seq: u16, probation: u32) -> Self {
        let mut s = Self {
            ssrc,
            max_seq: seq,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            window: 0,
            transit: None,
            jitter16: 0,
        };
        s.init_seq(seq);
        // A.1: a new source starts one below its first packet.
        s.max_seq = seq.wrapping_sub(1);
        s
    }

    /// A.1 init_seq.
    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u64::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.window = 1;
    }

    fn highest(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    fn expected(&self) -> u64 {
        (self.highest() + 1).saturating_sub(self.base_seq)
    }

    /// A.1 update_seq, extended with the duplicate window.
    fn update_seq(&mut self, seq: u16) -> Verdict {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return Verdict::Accepted {
                        extended_seq: self.highest(),
                        restarted: false,
                    };
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return Verdict::Probation;
        }
        if udelta == 0 {
            return Verdict::Duplicate;
        }
        if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                self.cycles += u64::from(RTP_SEQ_MOD);
            }
            self.window = if u64::from(udelta) >= WINDOW {
                1
            } else {
                (self.window << udelta) | 1
            };
            self.max_seq = seq;
            self.received += 1;
            return Verdict::Accepted {
                extended_seq: self.highest(),
                restarted: false,
            };
        }
        if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // The sequence number made a very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: the other side restarted
                // without telling us, so re-sync (A.1).
                self.init_seq(seq);
                self.received += 1;
                return Verdict::Accepted {
                    extended_seq: self.highest(),
                    restarted: true,
                };
            }
            self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
            return Verdict::BadSequence;
        }
        // Late (reordered) or a duplicate of an older packet.
        let behind = u64::from(self.max_seq.wrapping_sub(seq));
        let Some(ext) = self.highest().checked_sub(behind) else {
            return Verdict::TooOld;
        };
        if ext < self.base_seq {
            return Verdict::TooOld;
        }
        if behind < WINDOW {
            let bit = 1u128 << behind;
            if self.window & bit != 0 {
                return Verdict::Duplicate;
            }
            self.window |= bit;
        }
        self.received += 1;
        Verdict::Accepted {
            extended_seq: ext,
            restarted: false,
        }
    }

    /// A.8 interarrival jitter, integer form.
    fn update_jitter(&mut self, rtp_ts: u32, arrival: u32) {
        let transit = arrival.wrapping_sub(rtp_ts);
        if let Some(prev) = self.transit {
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            // jitter += (|D| - jitter) / 16, kept scaled by 16.
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.transit = Some(transit);
    }
}

/// Receive-side state of one RTP session with one expected source.
#[derive(Debug, Clone)]
pub struct RtpReceiver {
    clock_rate: u32,
    expected_ssrc: Option<u32>,
    jitter_payload_type: Option<u8>,
    source: Option<Source>,
    epoch: Option<Instant>,
    last_sr: Option<(u32, Instant)>,
    mapping: Option<SrMapping>,
    duplicates: u64,
    foreign: u64,
}

impl RtpReceiver {
    /// A receiver for a stream with this RTP clock. With `expected_ssrc`
    /// (from `a=ssrc` in the SDP) only that source is accepted and it is
    /// valid from its first packet; without it, the first source to pass
    /// A.1 probation (two packets in sequence) becomes the session's.
    pub fn new(clock_rate: u32, expected_ssrc: Option<u32>) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            expected_ssrc,
            jitter_payload_type: None,
            source: None,
            epoch: None,
            last_sr: None,
            mapping: None,
            duplicates: 0,
            foreign: 0,
        }
    }

    /// Computes jitter over this payload type only. Event packets have a
    /// different relation of timestamp to send time than sample packets,
    /// so the collector restricts jitter to the samples format.
    pub fn set_jitter_payload_type(&mut self, pt: Option<u8>) {
        self.jitter_payload_type = pt;
    }

    /// Forgets the source, e.g. after a re-INVITE announced a new SSRC.
    pub fn reset(&mut self, expected_ssrc: Option<u32>) {
        *self = Self {
            jitter_payload_type: self.jitter_payload_type,
            ..Self::new(self.clock_rate, expected_ssrc)
        };
    }

    /// The session's source, once known.
    pub fn ssrc(&self) -> Option<u32> {
        self.source
            .as_ref()
            .filter(|s| s.probation == 0)
            .map(|s| s.ssrc)
            .or(self.expected_ssrc)
    }

    /// A packet arrived at `arrival`.
    pub fn on_packet(&mut self, pkt: &RtpPacket<'_>, arrival: Instant) -> Verdict {
        let epoch = *self.epoch.get_or_insert(arrival);
        let nanos = arrival.saturating_duration_since(epoch).as_nanos();
        // Arrival in timestamp units; only differences matter (A.8).
        let units = (nanos * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        self.on_packet_at(pkt, units)
    }

    /// A packet arrived at `arrival` in RTP timestamp units of some local
    /// clock (RFC 3550 A.8).
    pub fn on_packet_at(&mut self, pkt: &RtpPacket<'_>, arrival: u32) -> Verdict {
        if let Some(want) = self.expected_ssrc
            && pkt.ssrc != want
        {
            self.foreign += 1;
            return Verdict::ForeignSource(pkt.ssrc);
        }
        let source = match &mut self.source {
            Some(s) if s.ssrc == pkt.ssrc => s,
            // Another SSRC while the current one is still on probation
            // replaces it; once validated, others are foreign.
            Some(s) if s.probation == 0 => {
                self.foreign += 1;
                return Verdict::ForeignSource(pkt.ssrc);
            }
            slot => {
                let probation = if self.expected_ssrc.is_some() {
                    0
                } else {
                    MIN_SEQUENTIAL
                };
                let mut s = Source::new(pkt.ssrc, pkt.sequence, probation);
                if probation == 0 {
                    // Signalled in SDP: valid from the first packet.
                    s.init_seq(pkt.sequence);
                    s.received = 1;
                    s.update_jitter(pkt.timestamp, arrival);
                    let extended_seq = s.highest();
                    *slot = Some(s);
                    return Verdict::Accepted {
                        extended_seq,
                        restarted: false,
                    };
                }
                slot.insert(s)
            }
        };
        let verdict = source.update_seq(pkt.sequence);
        let jitter_counts = self
            .jitter_payload_type
            .is_none_or(|pt| pt == pkt.payload_type);
        match verdict {
            Verdict::Accepted { .. } if jitter_counts => {
                source.update_jitter(pkt.timestamp, arrival)
            }
            Verdict::Duplicate => self.duplicates += 1,
            _ => {}
        }
        verdict
    }

    /// Remembers a sender report from the session's source: for LSR/DLSR
    /// and for the RTP-to-wall-clock mapping. False if it is from another
    /// source.
    pub fn on_sender_report(&mut self, sr: &SenderReport, now: Instant) -> bool {
        if self.ssrc().is_some_and(|s| s != sr.ssrc) {
            return false;
        }
        self.last_sr = Some((sr.ntp.middle32(), now));
        self.mapping = Some(SrMapping {
            ntp: sr.ntp,
            rtp_timestamp: sr.rtp_timestamp,
            clock_rate: self.clock_rate,
        });
        true
    }

    /// The latest sender report's NTP/RTP pairing.
    pub fn mapping(&self) -> Option<SrMapping> {
        self.mapping
    }

    /// A report block for the source (RFC 3550 6.4.1, A.3); it starts a new
    /// interval for the fraction lost. `None` before the source is valid.
    pub fn report_block(&mut self, now: Instant) -> Option<ReportBlock> {
        let s = self.source.as_mut().filter(|s| s.probation == 0)?;
        let expected = s.expected();
        let lost = expected as i64 - s.received as i64;
        let expected_interval = expected - s.expected_prior;
        let received_interval = s.received - s.received_prior;
        s.expected_prior = expected;
        s.received_prior = s.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64) as u8
        };
        let (last_sr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (lsr, to_1_65536(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: s.ssrc,
            fraction_lost: fraction,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest_seq: s.highest() as u32,
            jitter: jitter_units(s.jitter16),
            last_sr,
            delay_since_last_sr: dlsr,
        })
    }

    pub fn stats(&self) -> ReceiverStats {
        let mut st = ReceiverStats {
            duplicates: self.duplicates,
            foreign: self.foreign,
            ..ReceiverStats::default()
        };
        if let Some(s) = self.source.as_ref().filter(|s| s.probation == 0) {
            st.ssrc = Some(s.ssrc);
            st.received = s.received;
            st.expected = s.expected();
            st.lost = st.expected as i64 - st.received as i64;
            st.extended_highest_seq = s.highest();
            st.jitter = jitter_units(s.jitter16);
        }
        st
    }

    /// The jitter as a duration.
    pub fn jitter(&self) -> Duration {
        let units = u64::from(self.stats().jitter);
        Duration::from_nanos(units * 1_000_000_000 / u64::from(self.clock_rate))
    }
}

fn jitter_units(jitter16: u64) -> u32 {
    u32::try_from(jitter16 >> 4).unwrap_or(u32::MAX)
}

/// DLSR units: 1/65536 s, saturating.
fn to_1_65536(d: Duration) -> u32 {
    let v = d.as_nanos() * 65_536 / 1_000_000_000;
    u32::try_from(v).unwrap_or(u32::MAX)
}
