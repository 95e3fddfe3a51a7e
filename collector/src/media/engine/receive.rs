//! The receive thread, a shell around the [`Demux`]: it takes datagrams off
//! the sockets in batches, runs the commands of the
//! [`MediaHandle`](super::MediaHandle), hands rows to the storage writer,
//! sends receiver reports, and counts and logs what was refused.

use super::decrypt::{Decryptor, Refusals};
use super::send::BatchTx;
use super::{Command, MediaError, MediaNotice, StreamSummary};
use crate::config::MediaConfig;
use crate::media::acks::StreamAcks;
use crate::media::acks::unconfirmed::{UnconfirmedGaps, caps_of};
use crate::media::demux::{Datagram, Delivery, Demux, Port, Rejected, Report, StreamKey};
use crate::media::mailbox::{Inbox, Taken};
use crate::media::rejects::RejectCounts;
use crate::media::silence::SilenceWatch;
use crate::media::socket::{BATCH, batch_rx};
use crate::media::stream::{RepairTally, Sink, StreamLimits, StreamRx};
use crate::media::{Reject, StreamSetup};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use crate::storage::writer::{CommitWatch, WriterHandle};
use crate::storage::{Batch, SensorId, SessionId};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use sipsensor_protocol::{Agreed, AgreedRecovery, IdGenerator};
use sipsensor_runtime::batch_recv::BatchRx;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedSender;

/// Rows handed to the writer at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// ... or as soon as this many are waiting.
const FLUSH_ROWS: usize = 8192;
/// Timer and housekeeping resolution.
const TICK: Duration = Duration::from_millis(20);
/// Per-stream housekeeping (gaps past their grace time) this often.
const HOUSEKEEPING: Duration = Duration::from_millis(200);
/// Acknowledged streams are looked at this often for a mark to send
/// (docs/protocol.md 11.4: at most 4 a second, at least one a second).
const ACK_TICK: Duration = Duration::from_millis(50);
/// Batches taken from one socket before the other gets its turn.
const BATCHES_PER_TURN: usize = 16;
/// Turns of [`BATCHES_PER_TURN`] taken in before a stream is removed.
const DRAIN_TURNS: usize = 8;
/// After a wake-up that found less than a batch, the thread naps this long
/// so the next wake-up finds one: a wake-up per packet costs more in
/// context switches than the packets themselves (measured,
/// docs/benchmarks.md). After a heavy turn it goes straight on: on a busy
/// machine a nap can last far longer than asked, and the socket buffer
/// must not fill meanwhile.
const COALESCE: Duration = Duration::from_millis(2);
/// How soon commands are looked for again when a sender held the queue.
const COMMAND_RETRY: Duration = Duration::from_millis(1);

pub(super) struct ReceiveThread {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    waker: UnixDatagram,
    commands: Inbox<Command>,
    /// A sender held the command queue at the last look.
    commands_busy: bool,
    /// SRTP: packets of SRTP streams are opened here before the demux.
    decrypt: Decryptor,
    /// The streams and which packets are theirs.
    demux: Demux,
    /// Receiver reports due, per stream (RFC 3550 6.3).
    timers: BinaryHeap<Reverse<(Instant, StreamKey)>>,
    /// Streams with lost live packets awaited: polled for NACKs every tick
    /// (docs/protocol.md 11.5).
    nacking: HashSet<StreamKey>,
    repair: RepairTally,
    sink: Sink,
    writer: WriterHandle,
    rt: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    counts: RejectCounts,
    logs: HashMap<Reject, RateLimit>,
    srtp_log: Option<RateLimit>,
    ids: IdGenerator,
    limits: StreamLimits,
    /// Streams whose source has gone quiet (`media.silence_timeout_s`).
    silence: SilenceWatch,
    /// What the SIP side is told (a silent stream to end).
    notices: UnboundedSender<MediaNotice>,
    /// Acknowledged streams (docs/protocol.md 11.4).
    acks: HashMap<StreamKey, StreamAcks>,
    /// Loss gaps handed to the writer that marks may not pass yet.
    unconfirmed: UnconfirmedGaps,
    /// Which sensors the writer reports commits of.
    commits: CommitWatch,
    /// How far ahead of ours an agent's clock may be (a declared range
    /// beyond is refused): `media.max_clock_offset_s`.
    max_ahead_ns: i64,
    /// Committed marks sent, not yet in the metrics.
    marks_sent: u64,
    last_acks: Instant,
    last_flush: Instant,
    last_housekeeping: Instant,
    last_metrics: Instant,
}

fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl ReceiveThread {
    pub(super) fn new(
        (rtp, rtcp): (UdpSocket, UdpSocket),
        waker: UnixDatagram,
        commands: Inbox<Command>,
        config: &MediaConfig,
        writer: WriterHandle,
        metrics: Arc<Metrics>,
        notices: UnboundedSender<MediaNotice>,
    ) -> Self {
        let commits = writer.commits().clone();
        ReceiveThread {
            rtp,
            rtcp,
            waker,
            commands,
            commands_busy: false,
            decrypt: Decryptor::default(),
            demux: Demux::new(config.max_streams.get()),
            timers: BinaryHeap::new(),
            nacking: HashSet::new(),
            repair: RepairTally::default(),
            sink: Sink::default(),
            writer,
            rt: tokio::runtime::Handle::current(),
            metrics,
            counts: RejectCounts::default(),
            logs: HashMap::new(),
            srtp_log: None,
            ids: IdGenerator::from_entropy(),
            limits: StreamLimits::of(config),
            silence: SilenceWatch::new(Duration::from_secs(u64::from(
                config.silence_timeout_s.get(),
            ))),
            notices,
            acks: HashMap::new(),
            unconfirmed: UnconfirmedGaps::default(),
            commits,
            max_ahead_ns: i64::from(config.max_clock_offset_s.get()) * 1_000_000_000,
            marks_sent: 0,
            last_acks: Instant::now(),
            last_flush: Instant::now(),
            last_housekeeping: Instant::now(),
            last_metrics: Instant::now(),
        }
    }

    pub(super) fn run(mut self) {
        // Built on this thread: recvmmsg's headers hold raw pointers.
        let mut rx = batch_rx();
        // Likewise the batched sends of acknowledgements.
        let mut tx = BatchTx::default();
        let mut next_tick = Instant::now() + TICK;
        let mut backlog = false;
        loop {
            let mut wait = if backlog {
                Duration::ZERO
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            if self.commands_busy {
                // A real sleep, not a spin: the sender holding the queue
                // may share this CPU (see `mailbox`).
                wait = wait.min(COMMAND_RETRY);
            }
            let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
            let (rtp_ready, rtcp_ready, wake_ready) = {
                let mut fds = [
                    PollFd::new(self.rtp.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.rtcp.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.waker.as_fd(), PollFlags::POLLIN),
                ];
                if let Err(e) = poll(&mut fds, timeout)
                    && e != nix::errno::Errno::EINTR
                {
                    tracing::error!("media receive: poll failed: {e}");
                    std::thread::sleep(TICK);
                }
                let ready = |f: &PollFd<'_>| {
                    f.revents()
                        .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR))
                };
                (ready(&fds[0]), ready(&fds[1]), ready(&fds[2]))
            };
            let mut got = 0;
            if rtp_ready {
                got += self.receive(&mut rx, Port::Rtp);
            }
            if rtcp_ready {
                got += self.receive(&mut rx, Port::Rtcp);
            }
            if wake_ready {
                let mut b = [0u8; 64];
                while self.waker.recv(&mut b).is_ok() {}
            }
            if self.commands(&mut rx) {
                return;
            }
            let now = Instant::now();
            if now >= next_tick {
                self.tick(now, &mut tx);
                next_tick = now + TICK;
            }
            if self.sink.batch.rows() >= FLUSH_ROWS {
                self.flush_rows();
            }
            self.drain_rejects();
            // A light turn (less than one batch): nap so the next one finds
            // a batch. A heavy one: straight back, the socket has more.
            if got > 0 && got < BATCH {
                std::thread::sleep(COALESCE);
            }
            backlog = got >= BATCH;
        }
    }

    /// Runs the queued commands; true when the thread is to stop.
    fn commands(&mut self, rx: &mut BatchRx) -> bool {
        let queued = match self.commands.take() {
            Taken::Items(items) => items,
            Taken::Busy => {
                self.commands_busy = true;
                return false;
            }
        };
        self.commands_busy = false;
        let mut drained = false;
        for c in queued {
            // A stream ends when its BYE is handled; the packets its sensor
            // sent before the BYE may still wait in the socket behind other
            // streams' (10,000 hanging up at once): take them in first.
            if matches!(c, Command::Remove { .. } | Command::Stop { .. }) && !drained {
                self.drain(rx);
                drained = true;
            }
            let now = Instant::now();
            match c {
                Command::Add { setup, reply } => {
                    let r = self.add(*setup, now);
                    let _ = reply.send(r);
                }
                Command::Update {
                    key,
                    agreed,
                    recovery,
                    session,
                    reply,
                } => {
                    let ok = self.update(key, *agreed, &recovery, session, now);
                    let _ = reply.send(ok);
                }
                Command::ExpectConfig { key, until } => {
                    if let Some(s) = self.demux.stream_mut(key) {
                        s.expect_new_config(until);
                    }
                }
                Command::ExpectSource { ip, until } => self.demux.expect_source(ip, until),
                Command::Remove { key, reply } => {
                    let summary = self.remove(key, now);
                    self.flush_rows();
                    let _ = reply.send(summary);
                }
                Command::Marks(marks, asked) => self.on_marks(&marks, asked),
                Command::Flush { reply } => {
                    self.drain_rejects();
                    self.flush_rows();
                    let _ = reply.send(());
                }
                Command::Stop { reply } => {
                    for k in self.demux.keys() {
                        self.remove(k, now);
                    }
                    self.drain_rejects();
                    self.flush_rows();
                    self.counts.drain_into(&self.metrics);
                    let _ = reply.send(());
                    return true;
                }
            }
        }
        false
    }

    fn add(&mut self, setup: StreamSetup, now: Instant) -> Result<StreamKey, MediaError> {
        let srtp = setup.agreed.srtp.clone();
        let ssrc = setup.agreed.remote_ssrc;
        let acknowledged = setup.acknowledge.then_some(setup.sensor);
        let stream = StreamRx::new(setup, self.limits, now, &mut self.ids);
        let extra_ssrcs = stream.extra_ssrcs();
        let due = stream.rtcp_due();
        let ips = stream.allowed_ips.clone();
        // An SRTP stream's early packets are opened like any other.
        let kept = match srtp {
            Some(_) => self.demux.take_kept(&ips),
            None => Vec::new(),
        };
        let (key, replayed) = self.demux.add(stream, wall_ns(), &mut self.sink)?;
        // Nothing was replayed to an SRTP stream (its kept packets were
        // taken above), so marking it now is in time.
        self.demux.set_srtp(key, srtp.is_some());
        let keyed = self
            .decrypt
            .set(key, srtp.as_ref(), ssrc, ips)
            .and_then(|()| self.decrypt.add_sources(key, srtp.as_ref(), &extra_ssrcs));
        if let Err(e) = keyed {
            // Not expected for keys offer/answer checked: refuse the stream
            // rather than read it unchecked.
            self.demux.remove(key);
            return Err(MediaError::Srtp(e));
        }
        self.timers.push(Reverse((due, key)));
        self.silence.add(key, now, wall_ns());
        if let Some(sensor) = acknowledged {
            self.acks.insert(key, StreamAcks::new(sensor));
            self.commits.watch(sensor);
        }
        for d in replayed {
            self.carry_out(d);
        }
        let now_ns = wall_ns();
        for (data, from, arrival) in kept {
            self.open_and_route(&data, from, Port::Rtp, false, arrival, now_ns);
        }
        Ok(key)
    }

    /// A re-INVITE's description, recovery agreement and record: the
    /// stream decodes, NACKs and routes as agreed now, its sources are
    /// keyed for SRTP, and it is acknowledged when backfill is agreed
    /// (docs/protocol.md 11.1 rule 5). False when the stream is gone or
    /// its SRTP contexts could not be made.
    fn update(
        &mut self,
        key: StreamKey,
        agreed: Agreed,
        recovery: &AgreedRecovery,
        session: SessionId,
        now: Instant,
    ) -> bool {
        let srtp = agreed.srtp.clone();
        let ssrc = agreed.remote_ssrc;
        let mut changed = None;
        let found = self.demux.change_stream(key, |s| {
            s.update(agreed, recovery, session, now, &mut self.sink);
            changed = Some((s.sensor, s.allowed_ips.clone(), s.extra_ssrcs()));
        });
        self.demux.set_srtp(key, srtp.is_some());
        let Some((sensor, ips, extra_ssrcs)) = changed.filter(|_| found) else {
            return false;
        };
        match (recovery.backfill.is_some(), self.acks.contains_key(&key)) {
            (true, false) => {
                self.acks.insert(key, StreamAcks::new(sensor));
                self.commits.watch(sensor);
            }
            (false, true) => {
                self.acks.remove(&key);
                self.commits.unwatch(sensor);
            }
            _ => {}
        }
        let keyed = self
            .decrypt
            .set(key, srtp.as_ref(), ssrc, ips)
            .and_then(|()| self.decrypt.add_sources(key, srtp.as_ref(), &extra_ssrcs));
        if let Err(e) = &keyed {
            tracing::error!("stream {}: SRTP context: {e}", key.0);
        }
        keyed.is_ok()
    }

    fn remove(&mut self, key: StreamKey, now: Instant) -> Option<StreamSummary> {
        self.silence.remove(key);
        if let Some(a) = self.acks.remove(&key) {
            self.commits.unwatch(a.sensor);
        }
        let mut stream = self.demux.remove(key)?;
        self.nacking.remove(&key);
        self.repair.add(stream.take_repair_tally());
        let mut buf = [0u8; 256];
        if let Some(n) = stream.finish(now, &mut self.sink, &mut buf)
            && let Some(dest) = stream.rtcp_dest
            && let Some(packet) = self.decrypt.seal(key, &buf[..n])
        {
            let _ = self.rtcp.send_to(packet, dest);
        }
        self.decrypt.remove(key);
        Some(stream.totals)
    }

    /// One datagram through SRTP (when its stream has it) and the demux.
    fn open_and_route(
        &mut self,
        data: &[u8],
        from: SocketAddr,
        port: Port,
        truncated: bool,
        arrival: Instant,
        now_ns: i64,
    ) {
        let datagram = Datagram {
            data,
            from,
            port,
            truncated,
            authenticated_for: None,
        };
        let Some(datagram) = self.decrypt.open_datagram(datagram) else {
            return;
        };
        let d = self
            .demux
            .on_datagram(datagram, arrival, now_ns, &mut self.sink);
        self.note_heard(&d, arrival, now_ns);
        self.carry_out(d);
    }

    /// What the demultiplexer routed to a stream came from its source (its
    /// address and SSRC; under SRTP, authenticated): the stream is alive.
    fn note_heard(&mut self, d: &Delivery, arrival: Instant, now_ns: i64) {
        match d {
            Delivery::Rtp { key, .. } => self.silence.heard(*key, arrival, now_ns),
            Delivery::Rtcp(reports) => {
                for r in reports {
                    if let Report::Taken(key) = r {
                        self.silence.heard(*key, arrival, now_ns);
                    }
                }
            }
            Delivery::Kept { .. } | Delivery::Rejected(_) => {}
        }
    }

    /// Takes in everything waiting on both sockets (at most a few thousand
    /// datagrams: under a flood the sockets never run dry).
    fn drain(&mut self, rx: &mut BatchRx) {
        for _ in 0..DRAIN_TURNS {
            let got = self.receive(rx, Port::Rtp) + self.receive(rx, Port::Rtcp);
            if got < BATCHES_PER_TURN * BATCH {
                break;
            }
        }
    }

    /// Takes what is waiting on one socket; the number of datagrams.
    fn receive(&mut self, rx: &mut BatchRx, port: Port) -> usize {
        let mut total = 0;
        for _ in 0..BATCHES_PER_TURN {
            let sock = match port {
                Port::Rtp => &self.rtp,
                Port::Rtcp => &self.rtcp,
            };
            let n = match rx.recv(sock) {
                Ok(n) => n,
                Err(e) => {
                    // ICMP errors from earlier sends surface here; keep going.
                    tracing::debug!("media receive: {e}");
                    0
                }
            };
            if n == 0 {
                break;
            }
            total += n;
            let arrival = Instant::now();
            let now_ns = wall_ns();
            self.sink.late_closed = !self.writer.late_room().open();
            self.sink.live_closed = !self.writer.live_room().open();
            for i in 0..n {
                let Some((data, meta)) = rx.get(i) else {
                    continue;
                };
                let Some(from) = meta.from else { continue };
                self.open_and_route(data, from, port, meta.truncated, arrival, now_ns);
            }
            if n < BATCH {
                break;
            }
        }
        total
    }

    /// Counts and logs what the demultiplexer refused; the streams' rows
    /// and rejects are in the sink already.
    fn carry_out(&mut self, d: Delivery) {
        match d {
            Delivery::Rtp { key, .. } => {
                if !self.nacking.contains(&key)
                    && self.demux.stream_mut(key).is_some_and(|s| s.nacking())
                {
                    self.nacking.insert(key);
                }
            }
            Delivery::Kept { evicted: false } => {}
            // The evicted packet is counted, not logged: a flood of them
            // is one sensor streaming early.
            Delivery::Kept { evicted: true } => self.counts.add(Reject::UnknownSource),
            Delivery::Rejected(r) => self.reject(r),
            Delivery::Rtcp(reports) => {
                for r in reports {
                    match r {
                        Report::Refused(r) => self.reject(r),
                        Report::Backfill { key, message } => self.on_backfill(key, message),
                        Report::Taken(_) => {}
                    }
                }
            }
        }
    }

    fn tick(&mut self, now: Instant, tx: &mut BatchTx) {
        // Receiver reports that are due (RFC 3550 6.3).
        let mut buf = [0u8; 256];
        while let Some(Reverse((due, key))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            // A removed stream's timer is dropped here.
            let Some(s) = self.demux.stream_mut(key) else {
                continue;
            };
            if let Some(n) = s.poll_rtcp(now, &mut self.ids, &mut buf)
                && let Some(dest) = s.rtcp_dest
                && let Some(packet) = self.decrypt.seal(key, &buf[..n])
            {
                let _ = self.rtcp.send_to(packet, dest);
            }
            self.timers.push(Reverse((s.rtcp_due(), key)));
        }
        self.send_nacks(now);
        if !self.acks.is_empty() && now.saturating_duration_since(self.last_acks) >= ACK_TICK {
            self.last_acks = now;
            self.poll_unconfirmed(now);
            self.send_acks(now, tx);
        }
        if now.saturating_duration_since(self.last_housekeeping) >= HOUSEKEEPING {
            self.last_housekeeping = now;
            for s in self.demux.streams_mut() {
                s.tick(now, &mut self.sink);
            }
            for r in self.demux.expire(now) {
                self.reject(r);
            }
            for s in self.silence.poll_silent(now) {
                // The SIP side sends BYE and closes the record; gone, the
                // stream stays in the demux until then.
                let _ = self.notices.send(MediaNotice::Silent(s));
            }
        }
        if now.saturating_duration_since(self.last_flush) >= FLUSH_EVERY {
            self.flush_rows();
        }
        if now.saturating_duration_since(self.last_metrics) >= Duration::from_secs(1) {
            self.last_metrics = now;
            self.counts.drain_into(&self.metrics);
            self.report_refusals();
            self.report_repair();
            if self.marks_sent > 0 {
                self.metrics
                    .backfill_marks
                    .get_or_create(&[("kind", "committed_sent")])
                    .inc_by(std::mem::take(&mut self.marks_sent));
            }
        }
    }

    /// Generic NACKs that are due (RFC 4585 6.2.1), SRTCP under SRTP.
    fn send_nacks(&mut self, now: Instant) {
        if self.nacking.is_empty() {
            return;
        }
        let mut buf = [0u8; 1024];
        let mut done = Vec::new();
        for &key in &self.nacking {
            let Some(s) = self.demux.stream_mut(key) else {
                done.push(key);
                continue;
            };
            if let Some(n) = s.poll_nack(now, &mut buf)
                && let Some(dest) = s.rtcp_dest
                && let Some(packet) = self.decrypt.seal(key, &buf[..n])
            {
                let _ = self.rtcp.send_to(packet, dest);
            }
            self.repair.add(s.take_repair_tally());
            if !s.nacking() {
                done.push(key);
            }
        }
        for key in done {
            self.nacking.remove(&key);
        }
    }

    fn report_repair(&mut self) {
        let r = std::mem::take(&mut self.repair);
        self.metrics.nacks_sent.inc_by(r.nacks_sent);
        self.metrics.packets_recovered.inc_by(r.recovered);
        self.metrics.packets_given_up.inc_by(r.given_up);
    }

    /// SRTP refusals to `/metrics`, and one log line per interval.
    fn report_refusals(&mut self) {
        let r = self.decrypt.take_refusals();
        if r == Refusals::default() {
            return;
        }
        let m = &self.metrics.srtp_rejected;
        m.get_or_create(&[("reason", "authentication")])
            .inc_by(r.authentication);
        m.get_or_create(&[("reason", "replay")]).inc_by(r.replay);
        m.get_or_create(&[("reason", "foreign_ssrc")])
            .inc_by(r.foreign_ssrc);
        let limit = self
            .srtp_log
            .get_or_insert_with(|| RateLimit::new(Duration::from_secs(10)));
        if let Some(held) = limit.allow(tokio::time::Instant::now()) {
            tracing::warn!(
                "dropped SRTP/SRTCP packets: {} failed authentication, {} replayed, {} from \
                 another SSRC ({held} such reports held back; see \
                 sipsensor_collector_srtp_rejected_total)",
                r.authentication,
                r.replay,
                r.foreign_ssrc
            );
        }
    }

    fn flush_rows(&mut self) {
        self.last_flush = Instant::now();
        if self.sink.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.sink.batch);
        let rows = batch.rows();
        let caps = self.caps_of(&batch);
        // The writer's queue has room for thousands of batches; waiting
        // here happens only when the writer itself is stuck.
        let submitted = self.rt.block_on(self.writer.submit(batch));
        if submitted.is_ok()
            && !caps.is_empty()
            && let Ok(reply) = self.rt.block_on(self.writer.flush_later())
        {
            self.unconfirmed.handed(caps, reply);
        }
        if submitted.is_err() {
            self.metrics.rows_dropped.inc_by(rows as u64);
            let l = self
                .logs
                .entry(Reject::NoSenderReport)
                .or_insert_with(|| RateLimit::new(Duration::from_secs(10)));
            if let Some(held) = l.allow(tokio::time::Instant::now()) {
                tracing::error!(
                    "the storage writer has stopped: {rows} received rows dropped \
                     ({held} similar messages suppressed)"
                );
            }
        }
        // Keep the next batch's vectors sized like the last.
        self.sink.batch = Batch {
            readings: Vec::with_capacity(rows.min(FLUSH_ROWS * 2)),
            ..Batch::default()
        };
    }

    /// What a batch keeps acknowledged sensors' marks below until it is
    /// committed (`acks/unconfirmed.rs`).
    fn caps_of(&self, batch: &Batch) -> Vec<(SensorId, i64)> {
        if self.acks.is_empty() {
            return Vec::new();
        }
        let acked: HashSet<SensorId> = self.acks.values().map(|a| a.sensor).collect();
        caps_of(batch, &acked)
    }

    fn drain_rejects(&mut self) {
        if self.sink.rejects.is_empty() {
            return;
        }
        let rejects = std::mem::take(&mut self.sink.rejects);
        for (r, detail) in rejects {
            self.counts.add(r);
            if !r.is_quiet() {
                self.log(r, None, &detail);
            }
        }
    }

    fn reject(&mut self, r: Rejected) {
        self.counts.add(r.reason);
        if !r.reason.is_quiet() {
            self.log(r.reason, Some(r.from), &r.detail);
        }
    }

    fn log(&mut self, r: Reject, from: Option<SocketAddr>, detail: &str) {
        let limit = self
            .logs
            .entry(r)
            .or_insert_with(|| RateLimit::new(Duration::from_secs(10)));
        if let Some(held) = limit.allow(tokio::time::Instant::now()) {
            let from = from.map(|f| format!(" from {f}")).unwrap_or_default();
            tracing::warn!(
                reason = r.as_str(),
                "dropped a media packet{from}: {detail} ({held} similar dropped since the last \
                 message; see sipsensor_collector_packets_rejected_total)"
            );
        }
    }
}

mod acks;
#[cfg(test)]
mod tests;
