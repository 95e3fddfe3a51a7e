//! The receive thread: sockets, demultiplexing, timers, and the hand-over
//! of rows to the storage writer. The SIP side talks to it through
//! [`MediaHandle`].

use super::mailbox::{Inbox, Outbox, Taken, mailbox};
use super::rejects::RejectCounts;
use super::socket::{batch_rx, bind_pair};
use super::stream::{RxTotals, Sink, StreamRx};
use super::{Reject, StreamSetup};
use crate::config::MediaConfig;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use crate::storage::writer::WriterHandle;
use crate::storage::{Batch, SessionId};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use sipsensor_protocol::rtcp::{RtcpPacket, parse_compound};
use sipsensor_protocol::rtp;
use sipsensor_protocol::sdp::Agreed;
use sipsensor_protocol::sip::ids::IdGenerator;
use sipsensor_runtime::batch_recv::BatchRx;
use sipsensor_runtime::socket_buffer::receive_buffer;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// Identifies a stream in the engine for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey(pub u64);

/// What a stream received, reported when it is removed.
pub type StreamSummary = RxTotals;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("cannot bind the RTP/RTCP port pair at {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the receive thread: {0}")]
    Thread(std::io::Error),
    #[error("{0} streams are being received, the configured maximum")]
    Full(u32),
    #[error("the media engine has stopped")]
    Stopped,
}

/// Rows handed to the writer at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// ... or as soon as this many are waiting.
const FLUSH_ROWS: usize = 8192;
/// Timer and housekeeping resolution.
const TICK: Duration = Duration::from_millis(20);
/// Per-stream housekeeping (gaps past their grace time) this often.
const HOUSEKEEPING: Duration = Duration::from_millis(200);
/// Packets from an awaited address kept before their stream is set up.
const LIMBO_MAX: usize = 4096;
const LIMBO_AGE: Duration = Duration::from_secs(3);
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

enum Command {
    Add {
        setup: Box<StreamSetup>,
        reply: oneshot::Sender<Result<StreamKey, MediaError>>,
    },
    Update {
        key: StreamKey,
        agreed: Box<Agreed>,
        session: SessionId,
        reply: oneshot::Sender<bool>,
    },
    ExpectConfig {
        key: StreamKey,
        until: Instant,
    },
    ExpectSource {
        ip: IpAddr,
        until: Instant,
    },
    Remove {
        key: StreamKey,
        reply: oneshot::Sender<Option<StreamSummary>>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
    Stop {
        reply: oneshot::Sender<()>,
    },
}

/// Cloneable access to the receive thread.
#[derive(Clone)]
pub struct MediaHandle {
    tx: Outbox<Command>,
    waker: Arc<UnixDatagram>,
    rtp_addr: SocketAddr,
}

impl std::fmt::Debug for MediaHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaHandle")
            .field("rtp_addr", &self.rtp_addr)
            .finish()
    }
}

impl MediaHandle {
    /// The RTP socket's address (RTCP is on the next port).
    pub fn rtp_addr(&self) -> SocketAddr {
        self.rtp_addr
    }

    fn send(&self, c: Command) -> bool {
        if self.tx.send(c).is_err() {
            return false;
        }
        // A full waker buffer means the thread is awake already.
        let _ = self.waker.send(&[1]);
        true
    }

    /// Starts receiving a stream; returns once packets are accepted.
    pub async fn add(&self, setup: StreamSetup) -> Result<StreamKey, MediaError> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Command::Add {
            setup: Box::new(setup),
            reply,
        }) {
            return Err(MediaError::Stopped);
        }
        rx.await.map_err(|_| MediaError::Stopped)?
    }

    /// Installs a renegotiated description and its storage record.
    pub async fn update(&self, key: StreamKey, agreed: Agreed, session: SessionId) -> bool {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Update {
            key,
            agreed: Box::new(agreed),
            session,
            reply,
        }) && rx.await.unwrap_or(false)
    }

    /// A re-INVITE is under way: keep packets of a new `cfg` until `until`.
    pub fn expect_config(&self, key: StreamKey, until: Instant) {
        self.send(Command::ExpectConfig { key, until });
    }

    /// A call to a sensor at `ip` is under way: keep its early packets.
    pub fn expect_source(&self, ip: IpAddr, until: Instant) {
        self.send(Command::ExpectSource { ip, until });
    }

    /// Ends a stream: its rows go to the writer, a BYE goes to the agent.
    pub async fn remove(&self, key: StreamKey) -> Option<StreamSummary> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Command::Remove { key, reply }) {
            return None;
        }
        rx.await.ok().flatten()
    }

    /// Hands every row received so far to the writer.
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.send(Command::Flush { reply }) {
            let _ = rx.await;
        }
    }
}

/// The receive thread and its handle.
#[derive(Debug)]
pub struct MediaEngine {
    handle: MediaHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MediaEngine {
    /// Binds the port pair and starts the thread. Must be called inside a
    /// tokio runtime (the thread hands rows to the async writer).
    pub fn start(
        config: &MediaConfig,
        advertise: IpAddr,
        writer: WriterHandle,
        metrics: Arc<Metrics>,
    ) -> Result<MediaEngine, MediaError> {
        let (rtp, rtcp) =
            bind_pair(config.rtp_bind, config.receive_buffer_bytes).map_err(|source| {
                MediaError::Bind {
                    addr: config.rtp_bind,
                    source,
                }
            })?;
        let bound = rtp.local_addr().map_err(|source| MediaError::Bind {
            addr: config.rtp_bind,
            source,
        })?;
        let granted = receive_buffer(&rtp);
        let (wake_tx, wake_rx) = UnixDatagram::pair().map_err(MediaError::Thread)?;
        wake_tx.set_nonblocking(true).map_err(MediaError::Thread)?;
        wake_rx.set_nonblocking(true).map_err(MediaError::Thread)?;
        let (tx, commands) = mailbox();
        let handle = MediaHandle {
            tx,
            waker: Arc::new(wake_tx),
            rtp_addr: SocketAddr::new(advertise, bound.port()),
        };
        let engine = Engine {
            rtp,
            rtcp,
            waker: wake_rx,
            commands,
            commands_busy: false,
            slots: Vec::new(),
            free: Vec::new(),
            keys: HashMap::new(),
            by_addr: HashMap::new(),
            by_ssrc: HashMap::new(),
            by_ip: HashMap::new(),
            latched: Vec::new(),
            awaiting: HashMap::new(),
            limbo: VecDeque::new(),
            timers: BinaryHeap::new(),
            sink: Sink::default(),
            writer,
            rt: tokio::runtime::Handle::current(),
            metrics,
            counts: RejectCounts::default(),
            logs: HashMap::new(),
            ids: IdGenerator::from_entropy(),
            max_streams: config.max_streams.get(),
            hold_limit: config.hold_before_sr_packets.get() as usize,
            next_key: 0,
            last_flush: Instant::now(),
            last_housekeeping: Instant::now(),
            last_metrics: Instant::now(),
        };
        let priority = config.receive_priority.0;
        let thread = std::thread::Builder::new()
            .name("media-rx".into())
            .spawn(move || {
                super::realtime::report(super::realtime::enter(priority), priority);
                engine.run()
            })
            .map_err(MediaError::Thread)?;
        tracing::info!(
            "RTP on {} (RTCP {}), receive buffers of {granted} bytes",
            bound,
            bound.port().wrapping_add(1),
        );
        Ok(MediaEngine {
            handle,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> MediaHandle {
        self.handle.clone()
    }

    /// Ends every stream (BYE to each agent, rows to the writer) and stops
    /// the thread.
    pub async fn stop(mut self) {
        let (reply, rx) = oneshot::channel();
        if self.handle.send(Command::Stop { reply }) {
            let _ = rx.await;
        }
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

struct Engine {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    waker: UnixDatagram,
    commands: Inbox<Command>,
    /// A sender held the command queue at the last look.
    commands_busy: bool,
    slots: Vec<Option<(StreamKey, StreamRx)>>,
    free: Vec<usize>,
    keys: HashMap<StreamKey, usize>,
    /// Latched streams by where their packets come from.
    by_addr: HashMap<(SocketAddr, u32), usize>,
    /// Streams by SSRC (signalled, or learnt when they latched).
    by_ssrc: HashMap<u32, Vec<usize>>,
    /// Streams without a signalled SSRC, by the addresses they may use.
    by_ip: HashMap<IpAddr, Vec<usize>>,
    /// Per slot: the (address, SSRC) it latched to, its key in `by_addr`.
    latched: Vec<Option<(SocketAddr, u32)>>,
    awaiting: HashMap<IpAddr, Instant>,
    limbo: VecDeque<(SocketAddr, Vec<u8>, Instant)>,
    timers: BinaryHeap<Reverse<(Instant, usize, StreamKey)>>,
    sink: Sink,
    writer: WriterHandle,
    rt: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    counts: RejectCounts,
    logs: HashMap<Reject, RateLimit>,
    ids: IdGenerator,
    max_streams: u32,
    hold_limit: usize,
    next_key: u64,
    last_flush: Instant,
    last_housekeeping: Instant,
    last_metrics: Instant,
}

fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Takes `slot` out of the list under `key` (one entry, not a scan of the
/// map: 10,000 sessions hanging up at once must not cost 10,000 scans).
fn remove_slot<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<usize>>, key: K, slot: usize) {
    if let Some(v) = map.get_mut(&key) {
        v.retain(|s| *s != slot);
        if v.is_empty() {
            map.remove(&key);
        }
    }
}

impl Engine {
    fn run(mut self) {
        // Built on this thread: recvmmsg's headers hold raw pointers.
        let mut rx = batch_rx();
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
                got += self.receive(&mut rx, true);
            }
            if rtcp_ready {
                got += self.receive(&mut rx, false);
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
                self.tick(now);
                next_tick = now + TICK;
            }
            if self.sink.batch.rows() >= FLUSH_ROWS {
                self.flush_rows();
            }
            self.drain_rejects();
            // A light turn (less than one batch): nap so the next one finds
            // a batch. A heavy one: straight back, the socket has more.
            if got > 0 && got < super::socket::BATCH {
                std::thread::sleep(COALESCE);
            }
            backlog = got >= super::socket::BATCH;
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
                    session,
                    reply,
                } => {
                    let ok = match self.keys.get(&key).copied() {
                        Some(slot) => {
                            if let Some((_, s)) = self.slots.get_mut(slot).and_then(Option::as_mut)
                            {
                                s.update(*agreed, session, now, &mut self.sink);
                            }
                            true
                        }
                        None => false,
                    };
                    let _ = reply.send(ok);
                }
                Command::ExpectConfig { key, until } => {
                    if let Some((_, s)) = self
                        .keys
                        .get(&key)
                        .and_then(|slot| self.slots.get_mut(*slot))
                        .and_then(Option::as_mut)
                    {
                        s.expect_new_config(until);
                    }
                }
                Command::ExpectSource { ip, until } => {
                    self.awaiting.insert(ip.to_canonical(), until);
                }
                Command::Remove { key, reply } => {
                    let summary = self.remove(key, now);
                    self.flush_rows();
                    let _ = reply.send(summary);
                }
                Command::Flush { reply } => {
                    self.drain_rejects();
                    self.flush_rows();
                    let _ = reply.send(());
                }
                Command::Stop { reply } => {
                    let keys: Vec<StreamKey> = self.keys.keys().copied().collect();
                    for k in keys {
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
        if self.keys.len() >= self.max_streams as usize {
            return Err(MediaError::Full(self.max_streams));
        }
        self.next_key += 1;
        let key = StreamKey(self.next_key);
        let stream = StreamRx::new(setup, self.hold_limit, now, &mut self.ids);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.latched.push(None);
                self.slots.len() - 1
            }
        };
        match stream.expected_ssrc {
            Some(ssrc) => self.by_ssrc.entry(ssrc).or_default().push(slot),
            None => {
                for ip in &stream.allowed_ips {
                    self.by_ip.entry(*ip).or_default().push(slot);
                }
            }
        }
        for ip in &stream.allowed_ips {
            self.awaiting.remove(ip);
        }
        self.timers.push(Reverse((stream.rtcp_due(), slot, key)));
        let allowed = stream.allowed_ips.clone();
        self.latched[slot] = None;
        self.slots[slot] = Some((key, stream));
        self.keys.insert(key, slot);
        // Packets that came before the stream existed (a sensor answering
        // our INVITE starts at once) are replayed now.
        let early: Vec<_> = {
            let (mine, rest): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.limbo)
                .into_iter()
                .partition(|(from, _, _)| allowed.contains(&from.ip().to_canonical()));
            self.limbo = rest;
            mine.into_iter().collect()
        };
        let now_ns = wall_ns();
        for (from, data, arrival) in early {
            self.rtp_datagram(&data, from, arrival, now_ns, false);
        }
        Ok(key)
    }

    fn remove(&mut self, key: StreamKey, now: Instant) -> Option<StreamSummary> {
        let slot = self.keys.remove(&key)?;
        let (_, mut stream) = self.slots.get_mut(slot)?.take()?;
        let mut buf = [0u8; 256];
        if let Some(n) = stream.finish(now, &mut self.sink, &mut buf)
            && let Some(dest) = stream.rtcp_dest
        {
            let _ = self.rtcp.send_to(&buf[..n], dest);
        }
        if let Some((addr, ssrc)) = self.latched[slot].take() {
            self.by_addr.remove(&(addr, ssrc));
            remove_slot(&mut self.by_ssrc, ssrc, slot);
        }
        match stream.expected_ssrc {
            Some(ssrc) => remove_slot(&mut self.by_ssrc, ssrc, slot),
            None => {
                for ip in &stream.allowed_ips {
                    remove_slot(&mut self.by_ip, *ip, slot);
                }
            }
        }
        self.free.push(slot);
        Some(stream.totals)
    }

    fn stream(&mut self, slot: usize) -> Option<&mut StreamRx> {
        self.slots
            .get_mut(slot)
            .and_then(Option::as_mut)
            .map(|(_, s)| s)
    }

    /// Takes in everything waiting on both sockets (at most a few thousand
    /// datagrams: under a flood the sockets never run dry).
    fn drain(&mut self, rx: &mut BatchRx) {
        for _ in 0..DRAIN_TURNS {
            let got = self.receive(rx, true) + self.receive(rx, false);
            if got < BATCHES_PER_TURN * super::socket::BATCH {
                break;
            }
        }
    }

    /// Takes what is waiting on one socket; the number of datagrams.
    fn receive(&mut self, rx: &mut BatchRx, rtp: bool) -> usize {
        let mut total = 0;
        for _ in 0..BATCHES_PER_TURN {
            let sock = if rtp { &self.rtp } else { &self.rtcp };
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
            for i in 0..n {
                let Some((data, meta)) = rx.get(i) else {
                    continue;
                };
                let Some(from) = meta.from else { continue };
                if meta.truncated {
                    self.reject(Reject::Oversized, from, "datagram larger than 2048 bytes");
                } else if rtp {
                    self.rtp_datagram(data, from, arrival, now_ns, true);
                } else {
                    self.rtcp_datagram(data, from, arrival);
                }
            }
            if n < super::socket::BATCH {
                break;
            }
        }
        total
    }

    fn rtp_datagram(
        &mut self,
        data: &[u8],
        from: SocketAddr,
        arrival: Instant,
        now_ns: i64,
        may_park: bool,
    ) {
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let pkt = match rtp::parse(data) {
            Ok(p) => p,
            Err(e) => {
                self.reject(Reject::MalformedRtp, from, &e.to_string());
                return;
            }
        };
        let slot = match self.by_addr.get(&(from, pkt.ssrc)) {
            Some(s) => *s,
            None => match self.latch(from, pkt.ssrc) {
                Ok(s) => s,
                Err(r) => {
                    let awaited = self
                        .awaiting
                        .get(&from.ip())
                        .is_some_and(|until| arrival < *until);
                    if r == Reject::UnknownSource && awaited && may_park {
                        if self.limbo.len() >= LIMBO_MAX {
                            self.limbo.pop_front();
                            self.counts.add(Reject::UnknownSource);
                        }
                        self.limbo.push_back((from, data.to_vec(), arrival));
                        return;
                    }
                    self.reject(r, from, &format!("SSRC {:#010x}", pkt.ssrc));
                    return;
                }
            },
        };
        if let Some((_, stream)) = self.slots.get_mut(slot).and_then(Option::as_mut) {
            stream.on_rtp(&pkt, arrival, now_ns, &mut self.sink);
        }
    }

    /// Binds an (address, SSRC) to a stream on its first packet.
    fn latch(&mut self, from: SocketAddr, ssrc: u32) -> Result<usize, Reject> {
        let ip = from.ip();
        if let Some(slots) = self.by_ssrc.get(&ssrc) {
            let mut wrong_address = false;
            for &slot in slots {
                let Some((_, s)) = self.slots.get(slot).and_then(Option::as_ref) else {
                    continue;
                };
                if self.latched[slot].is_some() {
                    wrong_address = true;
                    continue;
                }
                if s.allowed_ips.contains(&ip) {
                    self.latched[slot] = Some((from, ssrc));
                    self.by_addr.insert((from, ssrc), slot);
                    return Ok(slot);
                }
                wrong_address = true;
            }
            if wrong_address {
                return Err(Reject::WrongAddress);
            }
        }
        // Streams without a signalled SSRC: the first packet from one of
        // their addresses (the exact SDP address first) decides it, and
        // RFC 3550 A.1 probation validates it.
        if let Some(slots) = self.by_ip.get(&ip) {
            let pick = slots
                .iter()
                .copied()
                .filter(|s| self.latched[*s].is_none())
                .max_by_key(|s| {
                    self.slots
                        .get(*s)
                        .and_then(Option::as_ref)
                        .is_some_and(|(_, st)| st.sdp_rtp == Some(from))
                });
            if let Some(slot) = pick {
                self.latched[slot] = Some((from, ssrc));
                self.by_addr.insert((from, ssrc), slot);
                self.by_ssrc.entry(ssrc).or_default().push(slot);
                return Ok(slot);
            }
        }
        Err(Reject::UnknownSource)
    }

    fn rtcp_datagram(&mut self, data: &[u8], from: SocketAddr, arrival: Instant) {
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let packets = match parse_compound(data) {
            Ok(p) => p,
            Err(e) => {
                self.reject(Reject::MalformedRtcp, from, &e.to_string());
                return;
            }
        };
        for p in packets {
            let RtcpPacket::SenderReport(sr) = p else {
                // Receiver reports, SDES and BYE from an agent carry
                // nothing the collector stores; the session ends by SIP BYE.
                continue;
            };
            let slots = self.by_ssrc.get(&sr.ssrc).cloned().unwrap_or_default();
            let mut used = false;
            for slot in slots {
                let ok_source = match self.latched.get(slot).copied().flatten() {
                    Some((addr, _)) => addr.ip() == from.ip(),
                    None => self
                        .stream(slot)
                        .is_some_and(|s| s.allowed_ips.contains(&from.ip())),
                };
                if !ok_source {
                    continue;
                }
                let size = data.len();
                if let Some((_, s)) = self.slots.get_mut(slot).and_then(Option::as_mut)
                    && s.on_sender_report(&sr, from, size, arrival, &mut self.sink)
                {
                    used = true;
                    break;
                }
            }
            if !used {
                self.reject(
                    Reject::UnknownSource,
                    from,
                    &format!("RTCP sender report from SSRC {:#010x}", sr.ssrc),
                );
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        // Receiver reports that are due (RFC 3550 6.3).
        let mut buf = [0u8; 256];
        while let Some(Reverse((due, slot, key))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            let Some((k, s)) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if *k != key {
                continue;
            }
            if let Some(n) = s.poll_rtcp(now, &mut self.ids, &mut buf)
                && let Some(dest) = s.rtcp_dest
            {
                let _ = self.rtcp.send_to(&buf[..n], dest);
            }
            self.timers.push(Reverse((s.rtcp_due(), slot, key)));
        }
        if now.saturating_duration_since(self.last_housekeeping) >= HOUSEKEEPING {
            self.last_housekeeping = now;
            for (_, s) in self.slots.iter_mut().flatten() {
                s.tick(now, &mut self.sink);
            }
            self.awaiting.retain(|_, until| *until > now);
            while self
                .limbo
                .front()
                .is_some_and(|(_, _, at)| now.saturating_duration_since(*at) > LIMBO_AGE)
            {
                if let Some((from, _, _)) = self.limbo.pop_front() {
                    self.reject(Reject::UnknownSource, from, "no session was set up for it");
                }
            }
        }
        if now.saturating_duration_since(self.last_flush) >= FLUSH_EVERY {
            self.flush_rows();
        }
        if now.saturating_duration_since(self.last_metrics) >= Duration::from_secs(1) {
            self.last_metrics = now;
            self.counts.drain_into(&self.metrics);
        }
    }

    fn flush_rows(&mut self) {
        self.last_flush = Instant::now();
        if self.sink.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.sink.batch);
        let rows = batch.rows();
        // The writer's queue has room for thousands of batches; waiting
        // here happens only when the writer itself is stuck.
        if self.rt.block_on(self.writer.submit(batch)).is_err() {
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

    fn reject(&mut self, r: Reject, from: SocketAddr, detail: &str) {
        self.counts.add(r);
        if !r.is_quiet() {
            self.log(r, Some(from), detail);
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
