//! One stream's reception, sans-I/O: docs/protocol.md section 7 from the
//! moment the engine has found the packet's stream.
//!
//! Packets arrive here already matched to the session by address and
//! SSRC. The RTP receiver (RFC 3550 A.1/A.3/A.8) classifies them; the
//! payload is decoded by its `cfg` (current or previous description,
//! RFC 3264 8.3.2 loose synchronisation); samples get their wall-clock time
//! from the latest sender report (6.4.1) and become rows. Packets that
//! arrive before the first sender report are held (bounded), and so are
//! packets of a `cfg` whose re-INVITE is still being completed.

mod absent;
mod backfill_gate;
mod clock;
mod recovery;
mod repair;

pub use clock::{ClockBounds, ClockRefusal};
pub use recovery::RepairTally;
use recovery::{Recovery, Source};
use repair::Timing;

use super::gaps::{FoundGap, GapFinder, Mark};
use super::{Reject, StreamSetup, first_input_channel, stream_spec};
use crate::config::MediaConfig;
use crate::stats::{Reception, StreamHandle, Tally};
use crate::storage::{Batch, Event, Gap, GapCause, Reading, ReadingSource, SensorId, SessionId};
use sipsensor_protocol::{
    Agreed, AgreedRecovery, CompoundWriter, Events, IdGenerator, MISSING_SAMPLE, Payload,
    ReceiverReport, RtcpApp, RtcpConfig, RtcpScheduler, RtpPacket, RtpReceiver, RtpVerdict,
    SampleInstant, Samples, SenderReport, SrMapping, StreamConfigs, StreamDescription,
    decode_payload,
};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Packets of an unknown `cfg` kept while a re-INVITE completes.
const PARK_MAX: usize = 512;
/// Event serials remembered for deduplication (docs/protocol.md 5.5: a
/// record is repeated within 200 ms; at most 16 are outstanding).
const SERIAL_MEMORY: usize = 256;
/// How long a gap waits for reordered packets before it is stored.
const GAP_GRACE: Duration = Duration::from_secs(2);
/// The sensor's last-seen time is written at most this often: it is a
/// row update per sensor (10,000 streaming sensors: 2,000 updates/s at
/// 5 s), and a streaming sensor's freshest time is its newest sample.
const SEEN_EVERY_NS: i64 = 5_000_000_000;
/// Last values reach the statistics this often.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// What the `media` configuration sets for every stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Packets held until the first sender report.
    pub hold_before_sr: usize,
    pub clock: ClockBounds,
}

impl StreamLimits {
    pub fn of(config: &MediaConfig) -> Self {
        StreamLimits {
            hold_before_sr: config.hold_before_sr_packets.get() as usize,
            clock: ClockBounds {
                max_step: Duration::from_millis(u64::from(config.max_clock_step_ms.get())),
                max_offset: Duration::from_secs(u64::from(config.max_clock_offset_s.get())),
            },
        }
    }
}

/// Why a sender report was not taken by a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrRefusal {
    /// Another SSRC than the stream's: perhaps another stream's.
    #[error("SSRC {0:#010x} is not the stream's")]
    ForeignSsrc(u32),
    #[error(transparent)]
    Clock(#[from] ClockRefusal),
}

/// Where rows and rejections go.
#[derive(Debug, Default)]
pub struct Sink {
    pub batch: Batch,
    /// Dropped packets with a detail for the (rate-limited) log.
    pub rejects: Vec<(Reject, String)>,
    /// Set by the shell from the storage writer: it takes no resent or
    /// backfilled rows now, so backfill packets are refused undecoded.
    pub late_closed: bool,
    /// Likewise for live rows (its memory is nearly full): live packets
    /// are refused before the stream counts them received.
    pub live_closed: bool,
}

impl Sink {
    fn reject(&mut self, r: Reject, detail: impl Into<String>) {
        self.rejects.push((r, detail.into()));
    }
}

/// A packet kept for later, with its own copy of the payload.
#[derive(Debug, Clone)]
struct Kept {
    ext: u64,
    pt: u8,
    ts: u32,
    payload: Vec<u8>,
    arrival: Instant,
    instant: Option<SampleInstant>,
    source: ReadingSource,
}

/// Borrowed view of an accepted packet. For a retransmission: the
/// original's sequence number, payload type and payload.
#[derive(Debug, Clone, Copy)]
struct Pkt<'a> {
    ext: u64,
    pt: u8,
    ts: u32,
    payload: &'a [u8],
    arrival: Instant,
    /// The sample instant it carried (docs/protocol.md 11.2), when the
    /// session agreed it: its samples are timed by it alone.
    instant: Option<SampleInstant>,
    source: ReadingSource,
}

/// What became of one RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    /// Kept until the first sender report.
    Held,
    /// Kept until the re-INVITE that announced its `cfg` completes.
    Parked,
    Dropped(Reject),
}

/// Overload: held packets given up before the first sender report.
#[derive(Debug, Clone, Copy)]
struct Dropped {
    first_ts: u32,
    instants: i64,
}

/// Token bucket against a sender that sends far more than its stream.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// The retransmission and backfill sources together: as much again as
    /// the live stream, and the backfill rate we allowed (bytes/s; a
    /// backfill packet is at least 32 bytes of headers and instant).
    fn for_recovery(desc: &StreamDescription, max_rate: Option<u64>, now: Instant) -> Bucket {
        let mut b = Bucket::for_stream(desc, now);
        b.rate += max_rate.unwrap_or(0) as f64 / 32.0;
        b.burst = (b.rate * 2.0).max(100.0);
        b.tokens = b.burst;
        b
    }

    fn for_stream(desc: &StreamDescription, now: Instant) -> Bucket {
        let samples_pps = desc.samples.as_ref().map_or(0.0, |s| {
            f64::from(desc.clock_rate)
                / (f64::from(s.period) * f64::from(s.samples_per_packet)).max(1.0)
        });
        // Four times the stream, plus room for event bursts (each edge is
        // sent three times) and RTCP-less agents' restarts.
        let rate = samples_pps * 4.0 + 50.0;
        Bucket {
            rate,
            burst: (rate * 2.0).max(100.0),
            tokens: (rate * 2.0).max(100.0),
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now.max(self.at);
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Figures kept when a stream ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxTotals {
    pub received: u64,
    pub lost: i64,
    pub duplicates: u64,
    pub samples: u64,
    pub events: u64,
    pub gaps: u64,
}

#[derive(Debug)]
pub(super) struct StreamRx {
    pub sensor: SensorId,
    pub aor: String,
    pub local_ssrc: u32,
    pub expected_ssrc: Option<u32>,
    /// Addresses RTP may come from before the stream has latched: the SDP
    /// connection address and the SIP peer's address.
    pub allowed_ips: Vec<IpAddr>,
    pub sdp_rtp: Option<SocketAddr>,
    /// The negotiated RTCP address (SDP `a=rtcp`, or the RTP port + 1).
    pub sdp_rtcp: Option<SocketAddr>,
    /// Where receiver reports go (SDP RTCP address, or where SRs come from).
    pub rtcp_dest: Option<SocketAddr>,
    cname: String,
    clock_rate: u32,
    receiver: RtpReceiver,
    configs: StreamConfigs,
    /// Storage records: current `cfg` (its record may not exist yet when
    /// we called the sensor) and the previous one.
    sessions: (u8, Option<SessionId>, Option<(u8, SessionId)>),
    held: VecDeque<Kept>,
    hold_limit: usize,
    clock_bounds: ClockBounds,
    held_dropped: Option<Dropped>,
    /// Sender reports refused for their clock: why packets may wait.
    srs_refused: u64,
    /// When the last accepted sender report arrived.
    last_sr_at: Option<Instant>,
    parked: VecDeque<Kept>,
    park_until: Option<Instant>,
    gaps: GapFinder,
    serials: VecDeque<u16>,
    break_from_ns: Option<i64>,
    stats: StreamHandle,
    scheduler: RtcpScheduler,
    bucket: Bucket,
    /// docs/protocol.md section 11 as agreed: instants, RTX, backfill.
    recovery: Recovery,
    /// A live samples packet's stamp (docs/protocol.md 11.2): RTP time
    /// `ts` is instant `ns`, and every `period` ticks are `step_ns`. With
    /// it, holes found on the sample clock are timed exactly, before and
    /// without any sender report.
    stamp_anchor: Option<StampAnchor>,
    /// Flood limit of the RTX and backfill sources.
    recovery_bucket: Bucket,
    /// Backfill refused while storage defers late rows (11.6, 11.7).
    backfill_gate: backfill_gate::BackfillGate,
    /// Live instants without any reading, not yet stored as a gap.
    absent: absent::AbsentRuns,
    last_seen_ns: i64,
    /// Latest value per channel (all descriptions' indexes), published to
    /// the statistics once per [`PUBLISH_EVERY`]: a person watches them,
    /// and publishing copies names and units.
    latest: Vec<Option<(i64, i64)>>,
    published: Option<Instant>,
    /// Packet counters not yet handed to the statistics (with `latest`).
    tally: Tally,
    pub totals: RxTotals,
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// See [`StreamRx::stamp_anchor`].
#[derive(Debug, Clone, Copy)]
struct StampAnchor {
    ts: u32,
    ns: i64,
    step_ns: i64,
    period: u32,
}

impl StampAnchor {
    /// The instant of RTP time `ts` on the anchor's grid (within 2^31
    /// ticks of it, as RFC 3550 A.1 reckons sequence and time).
    fn ns_at(&self, ts: u32) -> Option<i64> {
        let ticks = i64::from(ts.wrapping_sub(self.ts) as i32);
        let period = i64::from(self.period.max(1));
        let steps = ticks.checked_mul(self.step_ns)? / period;
        self.ns.checked_add(steps)
    }
}

fn ns_of(mapping: &SrMapping, ts: u32, offset: i64) -> Option<i64> {
    let t = mapping.system_time_at(ts, offset)?;
    let d = t.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(d.as_nanos()).ok()
}

impl StreamRx {
    pub fn new(
        setup: StreamSetup,
        limits: StreamLimits,
        now: Instant,
        ids: &mut IdGenerator,
    ) -> Self {
        let desc = setup.agreed.description.clone();
        let mut receiver = RtpReceiver::new(desc.clock_rate, setup.agreed.remote_ssrc);
        receiver.set_jitter_payload_type(desc.samples.as_ref().map(|s| s.payload_type));
        let mut allowed_ips = Vec::new();
        let sdp_rtp = setup.agreed.remote.map(|r| r.rtp);
        if let Some(r) = sdp_rtp {
            allowed_ips.push(r.ip().to_canonical());
        }
        if let Some(ip) = setup.signalling_ip {
            let ip = ip.to_canonical();
            if !allowed_ips.contains(&ip) {
                allowed_ips.push(ip);
            }
        }
        let mut rtcp = RtcpConfig::new(desc.session_bandwidth_bps());
        // The receiver's first report waits for something to report on.
        rtcp.immediate_first = false;
        let scheduler = RtcpScheduler::new(rtcp, false, now, ids);
        let max_backfill_rate = setup.recovery.backfill.as_ref().and_then(|b| b.max_rate);
        StreamRx {
            recovery: Recovery::new(&setup.recovery),
            stamp_anchor: None,
            recovery_bucket: Bucket::for_recovery(&desc, max_backfill_rate, now),
            backfill_gate: backfill_gate::BackfillGate::default(),
            absent: absent::AbsentRuns::default(),
            sensor: setup.sensor,
            aor: setup.aor,
            local_ssrc: setup.local_ssrc,
            expected_ssrc: setup.agreed.remote_ssrc,
            allowed_ips,
            sdp_rtp,
            sdp_rtcp: setup.agreed.remote.map(|r| canonical(r.rtcp)),
            rtcp_dest: setup.agreed.remote.map(|r| r.rtcp),
            cname: setup.cname,
            clock_rate: desc.clock_rate.max(1),
            receiver,
            sessions: (desc.config, setup.session, None),
            bucket: Bucket::for_stream(&desc, now),
            configs: StreamConfigs::new(desc),
            held: VecDeque::new(),
            hold_limit: limits.hold_before_sr.max(1),
            clock_bounds: limits.clock,
            held_dropped: None,
            srs_refused: 0,
            last_sr_at: None,
            parked: VecDeque::new(),
            park_until: None,
            gaps: GapFinder::new(GAP_GRACE),
            serials: VecDeque::new(),
            break_from_ns: setup.previous_sample_ns,
            stats: setup.stats,
            scheduler,
            last_seen_ns: i64::MIN,
            latest: Vec::new(),
            published: None,
            tally: Tally::default(),
            totals: RxTotals::default(),
        }
    }

    fn session_of(&self, cfg: u8) -> Option<SessionId> {
        match self.sessions {
            (c, s, _) if c == cfg => s,
            (_, _, Some((c, s))) if c == cfg => Some(s),
            _ => None,
        }
    }

    /// The SSRCs besides the live one whose packets are this stream's
    /// (its retransmissions and its backfill, docs/protocol.md 11.5, 11.6).
    pub fn extra_ssrcs(&self) -> Vec<u32> {
        self.recovery.extra_ssrcs()
    }

    /// An RTP packet from the stream's address: live, a retransmission or
    /// backfill, by its SSRC.
    pub fn on_rtp(
        &mut self,
        pkt: &RtpPacket<'_>,
        arrival: Instant,
        now_ns: i64,
        sink: &mut Sink,
    ) -> Outcome {
        match self.recovery.source_of(pkt.ssrc) {
            Source::Live => self.on_live(pkt, arrival, now_ns, sink),
            Source::Rtx => self.on_rtx(pkt, arrival, sink),
            Source::Backfill => self.on_backfill(pkt, arrival, sink),
        }
    }

    fn on_live(
        &mut self,
        pkt: &RtpPacket<'_>,
        arrival: Instant,
        now_ns: i64,
        sink: &mut Sink,
    ) -> Outcome {
        if Self::flooded(&mut self.bucket, &self.aor, arrival, sink) {
            return Outcome::Dropped(Reject::Flood);
        }
        if sink.live_closed {
            // Never seen, so lost: NACKed, and the hole holds the mark
            // until a retransmission or the backfill brings it.
            sink.reject(
                Reject::StorageFull,
                format!("{}: sequence number {}", self.aor, pkt.sequence),
            );
            return Outcome::Dropped(Reject::StorageFull);
        }
        let ext = match self.receiver.on_packet(pkt, arrival) {
            RtpVerdict::Accepted {
                extended_seq,
                restarted,
            } => {
                self.recovery.on_live(extended_seq, restarted, arrival);
                extended_seq
            }
            RtpVerdict::Duplicate => {
                self.tally.duplicate();
                self.totals.duplicates += 1;
                sink.reject(Reject::Duplicate, String::new());
                return Outcome::Dropped(Reject::Duplicate);
            }
            // A.1 probation: counted by the receiver, not yet stored.
            RtpVerdict::Probation => return Outcome::Dropped(Reject::BadSequence),
            RtpVerdict::BadSequence | RtpVerdict::TooOld => {
                sink.reject(
                    Reject::BadSequence,
                    format!("{}: sequence number {}", self.aor, pkt.sequence),
                );
                return Outcome::Dropped(Reject::BadSequence);
            }
            RtpVerdict::ForeignSource(ssrc) => {
                sink.reject(
                    Reject::ForeignSsrc,
                    format!("{}: SSRC {ssrc:#010x}", self.aor),
                );
                return Outcome::Dropped(Reject::ForeignSsrc);
            }
        };
        self.totals.received += 1;
        self.tally.packet(pkt.payload.len() + 12, now_ns);
        if now_ns.saturating_sub(self.last_seen_ns) >= SEEN_EVERY_NS {
            self.last_seen_ns = now_ns;
            sink.batch.seen.push((self.sensor, now_ns));
        }
        self.gaps.on_packet(ext);
        let instant = match self.instant_of(pkt, sink) {
            Ok(i) => i,
            Err(r) => return Outcome::Dropped(r),
        };
        let p = Pkt {
            ext,
            pt: pkt.payload_type,
            ts: pkt.timestamp,
            payload: pkt.payload,
            arrival,
            instant,
            source: ReadingSource::Live,
        };
        self.process(p, sink)
    }

    fn keep(p: &Pkt<'_>) -> Kept {
        Kept {
            ext: p.ext,
            pt: p.pt,
            ts: p.ts,
            payload: p.payload.to_vec(),
            arrival: p.arrival,
            instant: p.instant,
            source: p.source,
        }
    }

    fn process(&mut self, p: Pkt<'_>, sink: &mut Sink) -> Outcome {
        let decoded = match decode_payload(p.payload) {
            Ok(d) => d,
            Err(e) => {
                sink.reject(Reject::MalformedPayload, format!("{}: {e}", self.aor));
                return Outcome::Dropped(Reject::MalformedPayload);
            }
        };
        let cfg = decoded.config();
        let Some(desc) = self.configs.get(cfg) else {
            let parking = self.park_until.is_some_and(|t| p.arrival < t);
            if parking && self.parked.len() < PARK_MAX {
                self.parked.push_back(Self::keep(&p));
                return Outcome::Parked;
            }
            sink.reject(
                Reject::UnknownConfig,
                format!("{}: cfg {cfg} is not negotiated", self.aor),
            );
            return Outcome::Dropped(Reject::UnknownConfig);
        };
        // A backfill packet has its own payload type; its KIND says which
        // format it is (docs/protocol.md 11.6).
        let pt_is = |format_pt: Option<u8>| {
            p.source == ReadingSource::Backfilled && format_pt.is_some() || format_pt == Some(p.pt)
        };
        let checked = match &decoded {
            Payload::Samples(s) => {
                if !pt_is(desc.samples.as_ref().map(|f| f.payload_type)) {
                    Err(Reject::WrongPayloadType)
                } else {
                    s.check(desc).map_err(|_| Reject::PayloadMismatch)
                }
            }
            Payload::Events(e) => {
                if !pt_is(desc.events.as_ref().map(|f| f.payload_type)) {
                    Err(Reject::WrongPayloadType)
                } else {
                    e.check(desc).map_err(|_| Reject::PayloadMismatch)
                }
            }
        };
        if let Err(r) = checked {
            sink.reject(r, format!("{}: payload type {} cfg {cfg}", self.aor, p.pt));
            return Outcome::Dropped(r);
        }
        let mapping = self.receiver.mapping();
        let timing = match (p.instant, &mapping) {
            (Some(i), _) => Timing::Stamped(i),
            (None, Some(m)) => Timing::Mapped(m),
            (None, None) => {
                self.hold(&p, sink);
                return Outcome::Held;
            }
        };
        let Some(session) = self.session_of(cfg) else {
            // Our call's storage record is still being written.
            self.hold(&p, sink);
            return Outcome::Held;
        };
        let first_input = first_input_channel(desc);
        match decoded {
            Payload::Samples(s) => {
                let Some(fmt) = desc.samples.as_ref() else {
                    return Outcome::Dropped(Reject::WrongPayloadType);
                };
                let period = fmt.period;
                self.emit_samples(&p, &s, period, session, timing, sink)
            }
            Payload::Events(e) => self.emit_events(&p, &e, first_input, session, timing, sink),
        }
    }

    fn hold(&mut self, p: &Pkt<'_>, sink: &mut Sink) {
        if self.held.len() >= self.hold_limit
            && let Some(old) = self.held.pop_front()
        {
            // The oldest held packet is given up; its instants become an
            // overload gap once the first sender report times the rest.
            if let Ok(Payload::Samples(s)) = decode_payload(&old.payload) {
                let d = self.held_dropped.get_or_insert(Dropped {
                    first_ts: old.ts,
                    instants: 0,
                });
                d.instants += i64::from(s.count);
            }
            let refused = match self.srs_refused {
                0 => String::new(),
                n => format!(" ({n} refused for their clock: see clock_offset, clock_jump)"),
            };
            sink.reject(
                Reject::NoSenderReport,
                format!(
                    "{}: no usable RTCP sender report after {} packets{refused}",
                    self.aor, self.hold_limit
                ),
            );
        }
        self.held.push_back(Self::keep(p));
    }

    fn emit_samples(
        &mut self,
        p: &Pkt<'_>,
        s: &Samples<'_>,
        period: u32,
        session: SessionId,
        timing: Timing<'_>,
        sink: &mut Sink,
    ) -> Outcome {
        let count = s.count;
        let channels = usize::from(s.channels);
        if let (Timing::Stamped(i), ReadingSource::Live) = (&timing, p.source) {
            self.stamp_anchor = Some(StampAnchor {
                ts: p.ts,
                ns: i64::try_from(i.first_ns).unwrap_or(i64::MAX),
                step_ns: i64::try_from(i.step_ns).unwrap_or(i64::MAX),
                period,
            });
        }
        let mut first_ns = None;
        let mut last: Vec<Option<(i64, i32)>> = vec![None; channels];
        // Live instants arrive in order, so their runs span packets; a
        // resent or backfilled packet's runs end with it.
        let mut absent = if p.source == ReadingSource::Live {
            std::mem::take(&mut self.absent)
        } else {
            absent::AbsentRuns::default()
        };
        let mut runs = Vec::new();
        let step_ns = timing.step_ns(period, self.clock_rate);
        for k in 0..count {
            let ts_k = p.ts.wrapping_add(period.wrapping_mul(u32::from(k)));
            let Some(ns) = timing.sample_ns(k, ts_k) else {
                if p.source == ReadingSource::Live {
                    self.absent = absent;
                }
                self.store_absent(&runs, sink);
                sink.reject(
                    Reject::BadTimestamp,
                    format!("{}: RTP time {ts_k}", self.aor),
                );
                return Outcome::Dropped(Reject::BadTimestamp);
            };
            first_ns.get_or_insert(ns);
            let mut raws = Vec::with_capacity(channels);
            for (ch, slot) in last.iter_mut().enumerate() {
                // docs/protocol.md 5.2: MISSING_SAMPLE is no reading, not a value.
                let raw = s
                    .raw(usize::from(k), ch)
                    .filter(|&raw| raw != MISSING_SAMPLE);
                if let Some(raw) = raw {
                    *slot = Some((ns, raw));
                    self.totals.samples += 1;
                }
                raws.push(raw.map(i64::from));
            }
            if raws.iter().any(Option::is_some) {
                absent.present(ns, &mut runs);
                sink.batch.readings.push(Reading {
                    session,
                    sensor: self.sensor,
                    seq: p.ext as i64,
                    index: u32::from(k),
                    ts_ns: ns,
                    raws,
                    source: p.source,
                });
            } else {
                absent.absent(session, ns, step_ns, &mut runs);
            }
        }
        if p.source == ReadingSource::Live {
            self.absent = absent;
        } else {
            absent.close(&mut runs);
        }
        self.store_absent(&runs, sink);
        if p.source != ReadingSource::Live {
            // Repair and backfill fill the past: no new latest value, no
            // session break, nothing for the live stream's gap finder.
            return Outcome::Stored;
        }
        // The statistics describe the current description only.
        if self.sessions.1 == Some(session) {
            for (ch, v) in last.iter().enumerate() {
                if let Some((ns, raw)) = v {
                    self.note_latest(ch, *ns, i64::from(*raw));
                }
            }
        }
        if let (Some(prev), Some(first)) = (self.break_from_ns.take(), first_ns) {
            self.session_break(prev, first, period, session, sink);
        }
        let last_ts =
            p.ts.wrapping_add(period.wrapping_mul(u32::from(count.saturating_sub(1))));
        self.gaps.on_samples(
            Mark {
                ext: p.ext,
                first_ts: p.ts,
                last_ts,
                period,
                session,
            },
            p.arrival,
        );
        Outcome::Stored
    }

    /// Instants without any reading, as `source` gaps (docs/protocol.md
    /// 5.2, 5.3; see `absent`).
    fn store_absent(&mut self, runs: &[absent::AbsentRun], sink: &mut Sink) {
        for run in runs {
            sink.batch.gaps.push(run.gap(self.sensor));
            self.totals.gaps += 1;
        }
    }

    fn session_break(
        &mut self,
        prev_ns: i64,
        first_ns: i64,
        period: u32,
        session: SessionId,
        sink: &mut Sink,
    ) {
        if first_ns <= prev_ns {
            return;
        }
        let period_ns = (i128::from(period) * 1_000_000_000 / i128::from(self.clock_rate)).max(1);
        let missing = (i128::from(first_ns - prev_ns) / period_ns - 1).max(0);
        sink.batch.gaps.push(Gap {
            sensor: self.sensor,
            session: Some(session),
            from_ns: prev_ns,
            to_ns: first_ns,
            samples: i64::try_from(missing).unwrap_or(i64::MAX),
            cause: GapCause::SessionBreak,
        });
        self.totals.gaps += 1;
    }

    fn emit_events(
        &mut self,
        p: &Pkt<'_>,
        e: &Events<'_>,
        first_input: usize,
        session: SessionId,
        timing: Timing<'_>,
        sink: &mut Sink,
    ) -> Outcome {
        let Some(now_ns) = timing.edge_ns(p.ts, 0) else {
            sink.reject(
                Reject::BadTimestamp,
                format!("{}: RTP time {}", self.aor, p.ts),
            );
            return Outcome::Dropped(Reject::BadTimestamp);
        };
        for (i, r) in e.records().enumerate() {
            // docs/protocol.md 5.5: each record comes three times; the first
            // copy counts (its packet's sequence number keys the row). A
            // backfilled edge's serial is of another time: storage keeps
            // it once by its instant (11.3).
            if p.source != ReadingSource::Backfilled {
                if self.serials.contains(&r.serial) {
                    continue;
                }
                if self.serials.len() >= SERIAL_MEMORY {
                    self.serials.pop_front();
                }
                self.serials.push_back(r.serial);
            }
            let Some(ts_ns) = timing.edge_ns(p.ts, r.offset) else {
                continue;
            };
            sink.batch.events.push(Event {
                session,
                sensor: self.sensor,
                channel: (first_input + usize::from(r.input)) as u16,
                seq: p.ext as i64,
                index: i as u32,
                ts_ns,
                value: i64::from(r.state),
            });
            self.totals.events += 1;
        }
        if self.sessions.1 == Some(session) && p.source == ReadingSource::Live {
            for input in 0..e.inputs {
                if let Some(level) = e.state(input) {
                    self.note_latest(first_input + usize::from(input), now_ns, i64::from(level));
                }
            }
        }
        Outcome::Stored
    }

    fn note_latest(&mut self, ch: usize, ns: i64, raw: i64) {
        if self.latest.len() <= ch {
            self.latest.resize(ch + 1, None);
        }
        let slot = &mut self.latest[ch];
        if slot.is_none_or(|(t, _)| t <= ns) {
            *slot = Some((ns, raw));
        }
    }

    /// Hands the counters and latest values to the statistics (see
    /// [`PUBLISH_EVERY`]).
    fn publish(&mut self, now: Instant) {
        if self
            .published
            .is_some_and(|t| now.saturating_duration_since(t) < PUBLISH_EVERY)
        {
            return;
        }
        self.published = Some(now);
        self.publish_now();
    }

    fn publish_now(&mut self) {
        self.stats.add(std::mem::take(&mut self.tally));
        for (ch, v) in self.latest.iter_mut().enumerate() {
            if let Some((ns, raw)) = v.take() {
                self.stats.set_last_value(ch as u16, ns, raw);
            }
        }
    }

    /// A sender report from this stream's source (RFC 3550 6.4.1), which
    /// arrived at `now` (`now_ns` on the collector's wall clock). Refused,
    /// it changes nothing: the samples keep the times they had.
    pub fn on_sender_report(
        &mut self,
        sr: &SenderReport,
        from: SocketAddr,
        size: usize,
        now: Instant,
        now_ns: i64,
        sink: &mut Sink,
    ) -> Result<(), SrRefusal> {
        if self.receiver.ssrc().is_some_and(|s| s != sr.ssrc) {
            return Err(SrRefusal::ForeignSsrc(sr.ssrc));
        }
        let mapping = self.receiver.mapping();
        let previous = mapping
            .as_ref()
            .zip(self.last_sr_at.map(|at| now.saturating_duration_since(at)));
        if let Err(e) = self.clock_bounds.check(sr, previous, now_ns) {
            self.srs_refused += 1;
            return Err(e.into());
        }
        if !self.receiver.on_sender_report(sr, now) {
            return Err(SrRefusal::ForeignSsrc(sr.ssrc));
        }
        self.last_sr_at = Some(now);
        self.scheduler.on_received(size);
        // Symmetric RTCP (RFC 4961): our reports, NACKs and marks go where
        // the agent's reports really come from, when that is not the SDP
        // address (a NAT that rewrote the address or only the port). The
        // agent takes RTCP only from the address its SDP named (docs/
        // protocol.md 6.1): the NAT maps our replies back to it.
        if self.rtcp_dest != Some(from) {
            self.rtcp_dest = Some(from);
        }
        self.release_held(sink);
        Ok(())
    }

    fn release_held(&mut self, sink: &mut Sink) {
        let mapping = self.receiver.mapping();
        // Stamped packets wait only for their storage record.
        if mapping.is_none() && self.recovery.instant_id.is_none() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        if let (Some(mapping), Some(d), Some(first)) =
            (mapping, self.held_dropped.take(), held.front())
        {
            // Held packets given up for want of a sender report.
            if let (Some(from), Some(to)) =
                (ns_of(&mapping, d.first_ts, 0), ns_of(&mapping, first.ts, 0))
            {
                sink.batch.gaps.push(Gap {
                    sensor: self.sensor,
                    session: self.sessions.1,
                    from_ns: from,
                    to_ns: to,
                    samples: d.instants,
                    cause: GapCause::Overload,
                });
                self.totals.gaps += 1;
            }
        }
        for k in held {
            self.replay(&k, sink);
        }
    }

    /// Processes a packet kept earlier (held or parked), at its own arrival.
    fn replay(&mut self, k: &Kept, sink: &mut Sink) {
        let p = Pkt {
            ext: k.ext,
            pt: k.pt,
            ts: k.ts,
            payload: &k.payload,
            arrival: k.arrival,
            instant: k.instant,
            source: k.source,
        };
        self.process(p, sink);
    }

    /// A re-INVITE is under way: packets of an unknown `cfg` are kept
    /// until `until` instead of dropped.
    pub fn expect_new_config(&mut self, until: Instant) {
        self.park_until = Some(until);
    }

    /// A new description and recovery agreement (re-INVITE) with its
    /// storage record.
    pub fn update(
        &mut self,
        agreed: Agreed,
        recovery: &AgreedRecovery,
        session: SessionId,
        now: Instant,
        sink: &mut Sink,
    ) {
        let desc = agreed.description;
        self.recovery.reconfigure(recovery);
        let max_backfill_rate = recovery.backfill.as_ref().and_then(|b| b.max_rate);
        self.recovery_bucket = Bucket::for_recovery(&desc, max_backfill_rate, now);
        let cfg = desc.config;
        if cfg == self.sessions.0 {
            self.sessions.1 = Some(session);
        } else {
            let previous = self.sessions.1.map(|s| (self.sessions.0, s));
            self.sessions = (cfg, Some(session), previous);
        }
        let spec = stream_spec(&desc);
        self.stats
            .renegotiated(session, spec.rate_hz, spec.channels.clone());
        self.latest.clear();
        self.receiver
            .set_jitter_payload_type(desc.samples.as_ref().map(|s| s.payload_type));
        self.bucket = Bucket::for_stream(&desc, now);
        self.configs.install(desc);
        if let Some(r) = agreed.remote {
            self.rtcp_dest = Some(r.rtcp);
            self.sdp_rtcp = Some(canonical(r.rtcp));
        }
        self.park_until = None;
        for k in std::mem::take(&mut self.parked) {
            self.replay(&k, sink);
        }
        self.release_held(sink);
    }

    /// Periodic work: gaps past their grace time, parked packets whose
    /// re-INVITE never completed.
    pub fn tick(&mut self, now: Instant, sink: &mut Sink) {
        self.publish(now);
        if self.gaps.pending() > 0 {
            let mut found = Vec::new();
            self.gaps.poll_due(now, false, &mut found);
            self.store_gaps(&found, sink);
        }
        if self.park_until.is_some_and(|t| now >= t) {
            self.park_until = None;
            for _ in self.parked.drain(..) {
                sink.rejects.push((
                    Reject::UnknownConfig,
                    format!("{}: the re-INVITE did not complete", self.aor),
                ));
            }
        }
    }

    /// The instant of RTP time `ts`: on the stamps' grid when the session
    /// agreed them, else by the sender report's mapping.
    fn ns_at(&self, ts: u32) -> Option<i64> {
        match self.stamp_anchor {
            Some(a) => a.ns_at(ts),
            None => self.receiver.mapping().and_then(|m| ns_of(&m, ts, 0)),
        }
    }

    fn store_gaps(&mut self, found: &[FoundGap], sink: &mut Sink) {
        for g in found {
            let (Some(from), Some(to)) = (self.ns_at(g.from_ts), self.ns_at(g.to_ts)) else {
                continue;
            };
            sink.batch.gaps.push(Gap {
                sensor: self.sensor,
                session: Some(g.session),
                from_ns: from,
                to_ns: to,
                samples: g.instants,
                cause: g.cause,
            });
            self.totals.gaps += 1;
        }
    }

    /// When the next receiver report is due.
    pub fn rtcp_due(&self) -> Instant {
        self.scheduler.poll_timeout()
    }

    /// A receiver report compound (RR + SDES CNAME, RFC 3550 6.1) if one is
    /// due; also publishes loss and jitter to the statistics.
    pub fn poll_rtcp(
        &mut self,
        now: Instant,
        ids: &mut IdGenerator,
        buf: &mut [u8],
    ) -> Option<usize> {
        if !self.scheduler.handle_timeout(now, ids) {
            return None;
        }
        let n = self.report(now, buf, false, None);
        self.scheduler.on_sent(n.unwrap_or(0), now, ids);
        n
    }

    /// A receiver report compound now, outside the RFC 3550 schedule, with
    /// `app` after the SDES (docs/protocol.md 11.4: an acknowledged stream
    /// gets its mark at least once a second). It counts as the scheduled
    /// one: the next waits a full interval.
    pub fn rtcp_now(
        &mut self,
        now: Instant,
        ids: &mut IdGenerator,
        buf: &mut [u8],
        app: Option<&RtcpApp>,
    ) -> Option<usize> {
        let n = self.report(now, buf, false, app);
        self.scheduler.on_sent(n.unwrap_or(0), now, ids);
        n
    }

    /// The live source's SSRC: latched, or signalled.
    pub fn remote_ssrc(&self) -> Option<u32> {
        self.receiver.ssrc().or(self.expected_ssrc)
    }

    /// The last instant before the oldest hole of this session that is not
    /// stored as a gap yet (still within its grace time for reordered
    /// packets): no committed mark may pass it, as storage cannot know of
    /// it. `None` when no hole waits.
    pub fn hole_from_ns(&self) -> Option<i64> {
        let from_ts = self.gaps.oldest_pending_from_ts()?;
        // Without a stamp or a mapping nothing of the session is stored yet.
        if self.stamp_anchor.is_none() && self.receiver.mapping().is_none() {
            return Some(i64::MIN);
        }
        self.ns_at(from_ts)
    }

    fn report(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        bye: bool,
        app: Option<&RtcpApp>,
    ) -> Option<usize> {
        let block = self.receiver.report_block(now);
        if let Some(b) = &block {
            let st = self.receiver.stats();
            self.stats.set_reception(Reception {
                lost: st.lost,
                fraction_lost: f64::from(b.fraction_lost) / 256.0,
                jitter_seconds: f64::from(b.jitter) / f64::from(self.clock_rate),
            });
        }
        let rr = ReceiverReport {
            ssrc: self.local_ssrc,
            reports: block.into_iter().collect(),
        };
        let mut w = CompoundWriter::new(buf);
        w.receiver_report(&rr).ok()?;
        w.sdes(self.local_ssrc, &self.cname, &[]).ok()?;
        if let Some(app) = app {
            w.app(app).ok()?;
        }
        if bye {
            // RFC 3550 6.6: leaving the session.
            w.bye(&[self.local_ssrc], None).ok()?;
        }
        w.finish().ok()
    }

    /// The stream ends: pending gaps are stored, packets still waiting for a
    /// sender report are given up, and an RR + SDES + BYE is returned.
    pub fn finish(&mut self, now: Instant, sink: &mut Sink, buf: &mut [u8]) -> Option<usize> {
        self.publish_now();
        let mut found = Vec::new();
        self.gaps.poll_due(now, true, &mut found);
        self.store_gaps(&found, sink);
        let mut runs = Vec::new();
        self.absent.close(&mut runs);
        self.store_absent(&runs, sink);
        for _ in self.held.drain(..) {
            sink.rejects.push((
                Reject::NoSenderReport,
                format!(
                    "{}: the session ended before any RTCP sender report",
                    self.aor
                ),
            ));
        }
        for _ in self.parked.drain(..) {
            sink.rejects.push((Reject::UnknownConfig, String::new()));
        }
        let st = self.receiver.stats();
        self.totals.lost = st.lost;
        self.report(now, buf, true, None)
    }
}

#[cfg(test)]
mod tests;
