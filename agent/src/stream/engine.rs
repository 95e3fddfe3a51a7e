//! What the real-time sender does at each wake-up, without threads,
//! sockets or clocks: time comes in as `Instant`/`SystemTime` arguments,
//! datagrams go out through a [`Sink`]. The thread in `worker` is a thin
//! loop around it; the tests drive it with a fake clock.
//!
//! Timeline (docs/protocol.md 4): tick 0 of the sample clock is `epoch`;
//! sampling instant k is at tick `k × period` (continuing across
//! reconfigurations), a samples packet leaves when its last instant has
//! been sampled and carries the tick of its first one. Deadlines are
//! computed from the epoch and the tick number, never by adding intervals,
//! so no rounding error accumulates.
//!
//! Nothing here allocates after construction: the packet buffer, the
//! value buffers (in [`Layout`]) and the event outbox are sized up front.

use super::layout::Layout;
use super::stats::{Shared, bump};
use crate::handoff::{Board, EventReceiver};
use crate::spool::{GpioEdge, SampleRunRef, SpoolFeed};
use crate::status::Counters;
use sipsensor_protocol::{
    CompoundWriter, EventOutbox, IdGenerator, MISSING_SAMPLE, NtpTime, OutboxConfig,
    RetransmitHistory, RtcpConfig, RtcpScheduler, RtpSender, SampleInstant, StreamDescription,
    TickTime, sender_report_compound,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Room for the largest packet: a 1200-byte sample payload (the format's
/// limit) or 16 event records, plus the RTP header; and for SR + SDES + BYE.
pub(crate) const PACKET_BUF: usize = 1500;
/// A wall-clock step larger than this makes the next SR go out at once
/// (docs/protocol.md 6). NTP slews move CLOCK_MONOTONIC with
/// CLOCK_REALTIME, so only steps change their difference.
const WALL_STEP: Duration = Duration::from_millis(1);
/// Events handled per wake-up; the rest wait for the next one (bounded
/// work per wake, the rings are bounded anyway).
const EVENTS_PER_WAKE: usize = 256;
/// Event packets per wake-up: the outbox rarely has more than one due.
const EVENT_PACKETS_PER_WAKE: usize = 4;
/// Longest sleep of a detached core without samples (events only).
const IDLE_NAP: Duration = Duration::from_secs(1);
/// RTX packets per wake-up: the rate limit spaces them anyway, and live
/// packets due at the next wake are not held up behind a long queue.
const RTX_PER_WAKE: usize = 8;

/// Where the core's datagrams go. `false`: the kernel refused it.
pub(crate) trait Sink {
    fn rtp(&mut self, packet: &[u8]) -> bool;
    fn rtcp(&mut self, packet: &[u8]) -> bool;
    /// An RTX packet (RFC 4588): same socket and peer as `rtp`, sealed in
    /// the RTX SSRC's own SRTP context (docs/protocol.md 11.8).
    fn rtx(&mut self, packet: &[u8]) -> bool;
}

/// Tunables of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CoreOptions {
    pub outbox: OutboxConfig,
    pub rtcp_min_interval: Duration,
    /// Instants overdue by more than this are skipped; `None`: twice the
    /// packet interval, at least 100 ms.
    pub late_limit: Option<Duration>,
}

/// The sender's state for one stream (one SSRC).
#[derive(Debug)]
pub(crate) struct Core {
    layout: Box<Layout>,
    staged: Option<Box<Layout>>,
    retired: Option<Box<Layout>>,
    rtp: RtpSender,
    ids: IdGenerator,
    cname: String,
    options: CoreOptions,
    clock_rate: u32,
    epoch: Instant,
    board_values: Vec<Option<f64>>,
    /// Tick of the next sampling instant.
    next_tick: u64,
    /// Tick of the first instant of the packet being filled.
    packet_tick: u64,
    /// Instants in the packet being filled.
    filled: usize,
    marker: bool,
    outbox: Option<EventOutbox>,
    evicted_seen: u64,
    dropped_seen: u64,
    /// GPIO input levels, bit g for input g.
    levels: u64,
    rtcp: RtcpScheduler,
    /// The stamping offset (ns) the last SR went out with.
    sr_offset: Option<i128>,
    buf: Vec<u8>,
    stats: Arc<Shared>,
    counters: Arc<Counters>,
    /// Where every sample run and edge is handed for spooling.
    spool: Option<SpoolFeed>,
    spool_dropped_seen: u64,
    /// Wall clock minus monotonic clock (ns) the instants are stamped
    /// with; re-pinned only when the wall clock steps, so spacing stays
    /// exact between steps.
    stamp_offset: Option<i128>,
    /// An offset seen once beyond [`WALL_STEP`] from the pinned one,
    /// waiting for the next wake to confirm it.
    step_seen: Option<i128>,
    /// The `a=extmap` ID of the sample instant when agreed: every live
    /// packet carries it (docs/protocol.md 11.2).
    instant_id: Option<u8>,
    /// The live packets kept for RTX when NACK + RTX is agreed (11.5).
    history: Option<RetransmitHistory>,
    /// When the history next has an RTX packet to send.
    rtx_due: Option<Instant>,
    rtx_unavailable_seen: u64,
    /// A session is up: packets go out. Detached, the board is still
    /// sampled on the same grid and everything spooled (`attach.rs`).
    attached: bool,
    /// When `handle` last ran.
    woke: Instant,
}

/// What `Core::new` needs besides the layout.
#[derive(Debug)]
pub(crate) struct CoreParts {
    pub rtp: RtpSender,
    pub ids: IdGenerator,
    pub cname: String,
    pub options: CoreOptions,
    pub board_channels: usize,
    /// GPIO levels when the stream starts.
    pub levels: u64,
    pub stats: Arc<Shared>,
    pub counters: Arc<Counters>,
    pub spool: Option<SpoolFeed>,
    /// Stamp live packets with the sample instant in this extmap ID.
    pub instant_id: Option<u8>,
    /// Keep live packets and answer NACKs with RTX (allocated up front).
    pub history: Option<RetransmitHistory>,
    /// Sending from the start; `false`: sample and spool only until
    /// [`Core::attach`].
    pub attached: bool,
}

impl Core {
    /// A stream whose tick 0 is `epoch`. Edges already queued are folded
    /// into the levels the stream announces first, not sent as edges.
    pub fn new(
        layout: Box<Layout>,
        mut parts: CoreParts,
        epoch: Instant,
        events: &mut EventReceiver,
    ) -> Core {
        let mut levels = parts.levels;
        for _ in 0..EVENTS_PER_WAKE * 4 {
            let Some(e) = events.pop() else { break };
            set_level(&mut levels, e.input, e.level);
        }
        let clock_rate = layout.desc.clock_rate;
        let rtcp = RtcpScheduler::new(
            rtcp_config(&layout.desc, &parts.options, true),
            true,
            epoch,
            &mut parts.ids,
        );
        let outbox = layout.desc.events.as_ref().map(|_| {
            EventOutbox::new(
                layout.input_count(),
                layout.remap(levels),
                parts.ids.u32() as u16,
                parts.options.outbox,
                epoch,
            )
        });
        parts
            .stats
            .config
            .store(u64::from(layout.desc.config), Ordering::Relaxed);
        Core {
            layout,
            staged: None,
            retired: None,
            rtp: parts.rtp,
            ids: parts.ids,
            cname: parts.cname,
            options: parts.options,
            clock_rate,
            epoch,
            board_values: vec![None; parts.board_channels],
            next_tick: 0,
            packet_tick: 0,
            filled: 0,
            marker: true,
            outbox,
            evicted_seen: 0,
            dropped_seen: events.dropped(),
            levels,
            rtcp,
            sr_offset: None,
            buf: vec![0; PACKET_BUF],
            stats: parts.stats,
            counters: parts.counters,
            spool_dropped_seen: parts.spool.as_ref().map_or(0, SpoolFeed::dropped),
            spool: parts.spool,
            stamp_offset: None,
            step_seen: None,
            instant_id: parts.instant_id,
            history: parts.history,
            rtx_due: None,
            rtx_unavailable_seen: 0,
            attached: parts.attached,
            woke: epoch,
        }
    }

    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    pub fn rtp(&self) -> &RtpSender {
        &self.rtp
    }

    /// What outlives the stream: the randomness and the spool feed.
    pub fn into_parts(self) -> (IdGenerator, Option<SpoolFeed>) {
        (self.ids, self.spool)
    }

    /// The instant of `tick` as the agent stamps samples: ns since the
    /// Unix epoch, from the pinned wall-clock offset. Spooled runs carry
    /// it; live packets that carry instants must use the same.
    pub fn stamp_ns(&self, tick: u64) -> i64 {
        stamp_at(self.stamp_offset, self.clock_rate, tick)
    }

    /// Pin the stamping offset, or re-pin it after a wall-clock step.
    ///
    /// One reading is not enough to re-pin: a thread preempted between
    /// reading the monotonic and the wall clock sees an offset late by the
    /// delay (a millisecond and more on a loaded board), and pinning it
    /// would shift every later instant by that much. A step is taken when
    /// the next wake sees the same offset again.
    fn pin_stamp(&mut self, now: Instant, wall: SystemTime) {
        let offset = wall_offset(self.epoch, now, wall);
        let near = |a: i128, b: i128| (a - b).unsigned_abs() <= WALL_STEP.as_nanos();
        let Some(pinned) = self.stamp_offset else {
            self.stamp_offset = Some(offset);
            return;
        };
        if near(offset, pinned) {
            self.step_seen = None;
            return;
        }
        match self.step_seen {
            Some(seen) if near(offset, seen) => {
                self.stamp_offset = Some(offset);
                self.step_seen = None;
            }
            _ => self.step_seen = Some(offset),
        }
    }

    fn count_spool_drops(&mut self) {
        let dropped = self.spool.as_ref().map_or(0, SpoolFeed::dropped);
        if dropped > self.spool_dropped_seen {
            bump(&self.stats.spool_dropped, dropped - self.spool_dropped_seen);
            self.spool_dropped_seen = dropped;
        }
    }

    /// The sample-clock tick at `now` (whole ticks since the epoch).
    pub fn tick_at(&self, now: Instant) -> u64 {
        TickTime::from_elapsed(now.saturating_duration_since(self.epoch), self.clock_rate).tick
    }

    /// The moment tick `tick` begins, rounded up to the nanosecond so that
    /// `tick_at(instant_of(t)) == t`.
    pub fn instant_of(&self, tick: u64) -> Instant {
        let rate = u128::from(self.clock_rate.max(1));
        let ns = (u128::from(tick) * 1_000_000_000).div_ceil(rate);
        self.epoch + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Queue a new description for the next packet boundary. Returns the
    /// one it displaces, if an earlier one was still waiting.
    pub fn stage(&mut self, layout: Box<Layout>) -> Option<Box<Layout>> {
        self.staged.replace(layout)
    }

    /// A description replaced since the last call, to be freed elsewhere.
    pub fn take_retired(&mut self) -> Option<Box<Layout>> {
        self.retired.take()
    }

    /// An RTCP compound of `size` bytes arrived (for the interval, 6.3.3).
    pub fn rtcp_received(&mut self, size: usize) {
        self.rtcp.on_received(size);
    }

    /// Whether the stream carries GPIO events (which must wake the thread
    /// at once).
    pub fn has_events(&self) -> bool {
        self.outbox.is_some()
    }

    /// When `handle` next has something to do.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = if self.attached {
            self.rtcp.poll_timeout()
        } else {
            // Nothing to report: wake for the samples; edges wake the
            // thread themselves.
            self.woke + IDLE_NAP
        };
        if self.layout.desc.samples.is_some() {
            t = t.min(self.instant_of(self.next_tick));
        }
        if let Some(at) = self
            .outbox
            .as_ref()
            .filter(|_| self.attached)
            .and_then(EventOutbox::poll_timeout)
        {
            t = t.min(at);
        }
        if let Some(at) = self.rtx_due {
            t = t.min(at);
        }
        t
    }

    /// Everything due at `now`: queued edges, sampling instants and full
    /// packets, event repeats, the RTCP report. `wall` is the wall clock
    /// read together with `now`.
    pub fn handle(
        &mut self,
        now: Instant,
        wall: SystemTime,
        board: &mut Board,
        events: &mut EventReceiver,
        sink: &mut impl Sink,
    ) {
        self.woke = now;
        if self.layout.desc.samples.is_none() && self.staged.is_some() {
            self.apply_staged(now);
        }
        self.pin_stamp(now, wall);
        self.take_events(now, events);
        self.send_events(now, sink);
        self.sample_due(now, board, sink);
        self.send_report(now, wall, sink);
        // Last: a resend never goes before a live packet that is due.
        self.send_rtx(now, sink);
    }

    /// Nanoseconds between two sampling instants, truncated: the spacing
    /// the spool records and live packets carry (docs/protocol.md 11.2).
    fn spacing_ns(&self, period: u32) -> u64 {
        let rate = u128::from(self.clock_rate.max(1));
        u64::try_from(u128::from(period) * 1_000_000_000 / rate).unwrap_or(u64::MAX)
    }

    /// The end of the stream: the partial packet, then SR + SDES + BYE
    /// (RFC 3550 6.6, docs/protocol.md 6).
    pub fn finish(&mut self, now: Instant, _wall: SystemTime, sink: &mut impl Sink) {
        if self.filled > 0 {
            self.send_samples(now, sink);
        }
        if !self.attached {
            return;
        }
        let tick = self.tick_at(now);
        let sr = self.rtp.sender_report(tick, self.ntp_of_tick(tick));
        let mut w = CompoundWriter::new(&mut self.buf);
        let built = w
            .sender_report(&sr)
            .and_then(|()| w.sdes(sr.ssrc, &self.cname, &[]))
            .and_then(|()| w.bye(&[sr.ssrc], None))
            .and_then(|()| w.finish());
        match built {
            Ok(n) => self.count_send(sink.rtcp(&self.buf[..n])),
            Err(_) => bump(&self.stats.send_errors, 1),
        }
    }

    fn take_events(&mut self, now: Instant, events: &mut EventReceiver) {
        for _ in 0..EVENTS_PER_WAKE {
            let Some(e) = events.pop() else { break };
            set_level(&mut self.levels, e.input, e.level);
            let at =
                TickTime::from_elapsed(e.at.saturating_duration_since(self.epoch), self.clock_rate);
            if let Some(feed) = self.spool.as_mut() {
                // docs/protocol.md 11.2: the instant a receiver derives from
                // any copy of the edge, `first + floor(offset × step / 2³²)`,
                // so a live and a backfilled copy have one key.
                let step = u128::from(tick_step_ns(self.clock_rate));
                let within = (u128::from(at.fraction) * step) >> 32;
                let tick_ns = stamp_at(self.stamp_offset, self.clock_rate, at.tick);
                feed.edge(&GpioEdge {
                    at_ns: clamp_ns(i128::from(tick_ns) + within as i128),
                    input: e.input,
                    level: e.level,
                });
            }
            let target = self
                .layout
                .inputs
                .get(usize::from(e.input))
                .copied()
                .flatten();
            match (self.outbox.as_mut().filter(|_| self.attached), target) {
                (Some(o), Some(j)) => {
                    o.edge(j, e.level, at, now);
                    bump(&self.stats.edges_sent, 1);
                    bump(&self.counters.events_sent, 1);
                }
                _ => bump(&self.stats.events_filtered, 1),
            }
        }
        self.count_spool_drops();
        let dropped = events.dropped();
        if dropped > self.dropped_seen {
            bump(&self.stats.events_dropped, dropped - self.dropped_seen);
            bump(&self.counters.events_dropped, dropped - self.dropped_seen);
            self.dropped_seen = dropped;
        }
    }

    fn send_events(&mut self, now: Instant, sink: &mut impl Sink) {
        let tick_ns = self.spacing_ns(1);
        let Some(outbox) = self.outbox.as_mut().filter(|_| self.attached) else {
            return;
        };
        for _ in 0..EVENT_PACKETS_PER_WAKE {
            let tick =
                TickTime::from_elapsed(now.saturating_duration_since(self.epoch), self.clock_rate)
                    .tick;
            let Some(batch) = outbox.poll_packet(now, tick) else {
                break;
            };
            let written = match (self.instant_id, &self.layout.desc.events) {
                (Some(id), Some(format)) => {
                    // docs/protocol.md 11.2: `first` is the instant of the
                    // packet's tick, `step` the nanoseconds per tick.
                    let stamp = SampleInstant {
                        first_ns: u64::try_from(stamp_at(
                            self.stamp_offset,
                            self.clock_rate,
                            batch.tick,
                        ))
                        .unwrap_or(0),
                        step_ns: tick_ns,
                    }
                    .encode();
                    let config = self.layout.desc.config;
                    let timestamp = self.rtp.timestamp(batch.tick);
                    self.rtp.write_extended(
                        &mut self.buf,
                        format.payload_type,
                        batch.marker,
                        timestamp,
                        &[(id, &stamp)],
                        |b| batch.encode(b, config),
                    )
                }
                _ => self
                    .rtp
                    .write_events(&mut self.buf, &self.layout.desc, &batch),
            };
            let sent = match written {
                Ok(n) => {
                    let sent = sink.rtp(&self.buf[..n]);
                    if let Some(history) = self.history.as_mut() {
                        history.record(&self.buf[..n], now);
                    }
                    sent
                }
                Err(_) => false,
            };
            if sent {
                bump(&self.stats.packets, 1);
                bump(&self.stats.event_packets, 1);
                bump(&self.counters.packets_sent, 1);
            } else {
                bump(&self.stats.send_errors, 1);
            }
        }
        let evicted = outbox.overflowed();
        if evicted > self.evicted_seen {
            bump(&self.stats.events_evicted, evicted - self.evicted_seen);
            self.evicted_seen = evicted;
        }
    }

    fn late_limit(&self) -> Duration {
        self.options.late_limit.unwrap_or_else(|| {
            let packet = self.layout.desc.packet_interval().unwrap_or_default();
            (packet * 2).max(Duration::from_millis(100))
        })
    }

    fn sample_due(&mut self, now: Instant, board: &mut Board, sink: &mut impl Sink) {
        // Bounded: each pass either samples an instant no older than the
        // late limit or skips past all overdue ones.
        loop {
            if self.filled == 0 && self.staged.is_some() && self.instant_of(self.next_tick) <= now {
                self.apply_staged(now);
            }
            let Some(s) = &self.layout.desc.samples else {
                return;
            };
            let period = u64::from(s.period);
            let spp = usize::from(s.samples_per_packet);
            let due = self.instant_of(self.next_tick);
            if due > now {
                return;
            }
            let late = now - due;
            if late > self.late_limit() {
                self.skip_to(now, period, sink);
                continue;
            }
            self.stats.max_lateness_ns.fetch_max(
                u64::try_from(late.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            board.sample(now, &mut self.board_values);
            let (mut present, mut missing) = (0, 0);
            let Layout {
                desc,
                select,
                values,
                ..
            } = &mut *self.layout;
            let channels = desc.samples.as_ref().map_or(&[][..], |s| &s.channels[..]);
            let row = self.filled * channels.len();
            for (i, (spec, b)) in channels.iter().zip(select.iter()).enumerate() {
                let raw = match self.board_values.get(*b).copied().flatten() {
                    Some(v) => spec.to_raw(v),
                    None => MISSING_SAMPLE,
                };
                if raw == MISSING_SAMPLE {
                    missing += 1;
                } else {
                    present += 1;
                }
                if let Some(slot) = values.get_mut(row + i) {
                    *slot = raw;
                }
            }
            if self.attached {
                bump(&self.stats.samples, present);
                bump(&self.stats.samples_missing, missing);
                bump(&self.counters.samples_sent, present);
                bump(&self.counters.samples_missing, missing);
            }
            self.filled += 1;
            self.next_tick += period;
            if self.filled >= spp {
                self.send_samples(now, sink);
            }
        }
    }

    /// The thread woke too late to sample the overdue instants: send what
    /// was sampled, and continue at the latest instant with the marker bit
    /// (docs/protocol.md 5.3: a gap at the source).
    fn skip_to(&mut self, now: Instant, period: u64, sink: &mut impl Sink) {
        if self.filled > 0 {
            self.send_samples(now, sink);
        }
        let behind = self.tick_at(now).saturating_sub(self.next_tick) / period.max(1);
        let skipped = behind.max(1);
        self.next_tick += skipped * period;
        self.packet_tick = self.next_tick;
        self.marker = true;
        bump(&self.stats.instants_skipped, skipped);
    }

    fn send_samples(&mut self, now: Instant, sink: &mut impl Sink) {
        let (channels, period) = self
            .layout
            .desc
            .samples
            .as_ref()
            .map_or((0, 1), |s| (s.channels.len(), s.period));
        let n = (self.filled * channels).min(self.layout.values.len());
        self.spool_samples(n, channels);
        if !self.attached {
            // No session: spooled only, for the backfill (docs/protocol.md
            // 11.7). The next live packet starts a new run with the marker.
            self.filled = 0;
            self.packet_tick = self.next_tick;
            return;
        }
        let first_ns = u64::try_from(self.stamp_ns(self.packet_tick)).unwrap_or(0);
        // docs/protocol.md 11.7: L, where the backfill ends.
        let _ = self.stats.first_live_ns.compare_exchange(
            0,
            first_ns,
            Ordering::Release,
            Ordering::Relaxed,
        );
        let step_ns = self.spacing_ns(period);
        let written = match self.instant_id {
            // The same first instant and spacing the spool records: a
            // sample sent live and later backfilled has one key (11.3).
            Some(id) => self.rtp.write_samples_stamped(
                &mut self.buf,
                &self.layout.desc,
                self.packet_tick,
                &self.layout.values[..n],
                self.marker,
                (id, SampleInstant { first_ns, step_ns }),
            ),
            None => self.rtp.write_samples(
                &mut self.buf,
                &self.layout.desc,
                self.packet_tick,
                &self.layout.values[..n],
                self.marker,
            ),
        };
        let sent = match written {
            Ok(len) => {
                let sent = sink.rtp(&self.buf[..len]);
                self.keep(len, now);
                sent
            }
            Err(_) => false,
        };
        if sent {
            bump(&self.stats.packets, 1);
            bump(&self.stats.sample_packets, 1);
            bump(&self.counters.packets_sent, 1);
        } else {
            bump(&self.stats.send_errors, 1);
        }
        self.marker = false;
        self.filled = 0;
        self.packet_tick = self.next_tick;
    }

    /// Hand the packet's `n` values to the spool writer (a copy into its
    /// ring; nothing here waits or allocates).
    fn spool_samples(&mut self, n: usize, channels: usize) {
        let Some(s) = &self.layout.desc.samples else {
            return;
        };
        if self.spool.is_none() || n == 0 {
            return;
        }
        let spacing = self.spacing_ns(s.period);
        let run = SampleRunRef {
            stream: self.layout.id,
            first_ns: self.stamp_ns(self.packet_tick),
            spacing_ns: u32::try_from(spacing).unwrap_or(u32::MAX),
            channels: u8::try_from(channels).unwrap_or(u8::MAX),
            values: &self.layout.values[..n],
        };
        if let Some(feed) = self.spool.as_mut() {
            feed.samples(&run);
        }
        self.count_spool_drops();
    }

    /// The NTP time of tick `tick`: its stamped instant, so that SRs and
    /// the instants packets carry agree (docs/protocol.md 6: the pair is
    /// pinned to a tick, not a send time).
    fn ntp_of_tick(&self, tick: u64) -> NtpTime {
        let ns = u64::try_from(self.stamp_ns(tick)).unwrap_or(0);
        NtpTime::from_system_time(UNIX_EPOCH + Duration::from_nanos(ns))
    }

    fn send_report(&mut self, now: Instant, wall: SystemTime, sink: &mut impl Sink) {
        if !self.attached {
            return;
        }
        let offset = self
            .stamp_offset
            .unwrap_or_else(|| wall_offset(self.epoch, now, wall));
        if let Some(last) = self.sr_offset
            && (offset - last).unsigned_abs() > WALL_STEP.as_nanos()
        {
            self.rtcp.send_soon(now);
        }
        if now < self.rtcp.poll_timeout() || !self.rtcp.handle_timeout(now, &mut self.ids) {
            return;
        }
        let tick = self.tick_at(now);
        let sr = self.rtp.sender_report(tick, self.ntp_of_tick(tick));
        match sender_report_compound(&mut self.buf, &sr, &self.cname) {
            Ok(n) => {
                let sent = sink.rtcp(&self.buf[..n]);
                self.count_send(sent);
                if sent {
                    bump(&self.stats.sender_reports, 1);
                }
                self.rtcp.on_sent(n, now, &mut self.ids);
            }
            Err(_) => {
                bump(&self.stats.send_errors, 1);
                self.rtcp.on_sent(0, now, &mut self.ids);
            }
        }
        self.sr_offset = Some(offset);
    }

    fn count_send(&self, sent: bool) {
        if !sent {
            bump(&self.stats.send_errors, 1);
        }
    }

    /// Switch to the staged description: at a packet boundary when
    /// sampling (timestamps and sequence numbers continue, docs/protocol.md
    /// 3.4), at once otherwise.
    fn apply_staged(&mut self, now: Instant) {
        let Some(new) = self.staged.take() else {
            return;
        };
        let had_samples = self.layout.desc.samples.is_some();
        let old_bw = self.layout.desc.session_bandwidth_bps();
        let old = std::mem::replace(&mut self.layout, new);
        if !had_samples {
            // Sampling starts at the next whole tick.
            let t = self.tick_at(now);
            self.next_tick = if self.instant_of(t) >= now { t } else { t + 1 };
            self.packet_tick = self.next_tick;
        }
        self.marker = true;
        let inputs = self.layout.input_count();
        let states = self.layout.remap(self.levels);
        match (&mut self.outbox, &self.layout.desc.events) {
            (Some(o), Some(_)) => o.reconfigure(inputs, states, now),
            (None, Some(_)) => {
                self.outbox = Some(EventOutbox::new(
                    inputs,
                    states,
                    self.ids.u32() as u16,
                    self.options.outbox,
                    now,
                ));
                self.evicted_seen = 0;
            }
            (_, None) => self.outbox = None,
        }
        if self.layout.desc.session_bandwidth_bps() != old_bw {
            // RFC 3550 6.2: the interval follows the session bandwidth.
            self.rtcp = RtcpScheduler::new(
                rtcp_config(&self.layout.desc, &self.options, false),
                true,
                now,
                &mut self.ids,
            );
        }
        self.stats
            .config
            .store(u64::from(self.layout.desc.config), Ordering::Relaxed);
        self.retired = Some(old);
    }
}

fn set_level(levels: &mut u64, input: u16, level: bool) {
    if input < 64 {
        if level {
            *levels |= 1 << input;
        } else {
            *levels &= !(1 << input);
        }
    }
}

fn rtcp_config(desc: &StreamDescription, options: &CoreOptions, first: bool) -> RtcpConfig {
    let mut c = RtcpConfig::new(desc.session_bandwidth_bps());
    c.min_interval = options.rtcp_min_interval;
    c.immediate_first = first;
    c
}

/// [`Core::stamp_ns`] from its parts (callable while the core is borrowed):
/// tick n at `base + n × step` (docs/protocol.md 11.2), exact for every
/// clock rate that divides 10⁹ ns, a fraction of a nanosecond per tick
/// early for the others.
fn stamp_at(offset: Option<i128>, clock_rate: u32, tick: u64) -> i64 {
    let since = i128::from(tick) * i128::from(tick_step_ns(clock_rate));
    clamp_ns(offset.unwrap_or(0) + since)
}

/// Nanoseconds per tick of the sample clock, truncated.
fn tick_step_ns(clock_rate: u32) -> u64 {
    1_000_000_000 / u64::from(clock_rate.max(1))
}

fn clamp_ns(ns: i128) -> i64 {
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

/// Wall clock minus the stream's monotonic time, in nanoseconds.
fn wall_offset(epoch: Instant, now: Instant, wall: SystemTime) -> i128 {
    let wall_ns = wall
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    wall_ns - now.saturating_duration_since(epoch).as_nanos() as i128
}

mod attach;
mod repair;
#[cfg(test)]
mod tests;
