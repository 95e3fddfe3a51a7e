//! One thread sends RTP and RTCP sender reports for every simulated stream,
//! each packet at its tick on the sample clock (docs/protocol.md 4, 6).

mod backfill;

pub use backfill::{BackfillPlan, PumpRecovery};

use crate::waveform;
use backfill::Backfill;
use sipsensor_protocol::{
    CompoundWriter, IdGenerator, NtpTime, RtcpConfig, RtcpScheduler, RtpSender, SrtpContext,
    SrtpKeys, StreamDescription,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What one stream did, shared with its sensor and its RTCP reader.
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// RTP packets sent (faults included: a duplicate counts once, a
    /// deliberately dropped packet not at all).
    pub packets: AtomicU64,
    /// Sample values sent (instants x channels).
    pub samples: AtomicU64,
    /// Packets written but deliberately not sent (Fault::Drop).
    pub dropped: AtomicU64,
    pub send_errors: AtomicU64,
    /// Unix time (ns) of tick 0 of the stream; 0 before it starts.
    pub start_unix_ns: AtomicI64,
    pub sender_reports: AtomicU64,
    /// From the collector's latest receiver report about this stream.
    pub rr_count: AtomicU64,
    pub rr_lost: AtomicI64,
    pub rr_jitter: AtomicU64,
    pub rr_highest_seq: AtomicU64,
    /// Sequence number of the stream's first packet.
    pub first_seq: AtomicU64,
    /// Backfill (docs/protocol.md 11.6) packets sent, sample values sent
    /// (each once), and sample values sent again from the mark (11.7).
    pub backfill_packets: AtomicU64,
    pub backfill_samples: AtomicU64,
    pub backfill_samples_again: AtomicU64,
    /// Unix time (ns) the collector's mark passed the whole backfill; 0
    /// before.
    pub backfill_done_unix_ns: AtomicI64,
    /// The collector's latest committed mark (11.4) for the stream.
    pub committed_mark_ns: AtomicU64,
}

impl StreamCounters {
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Packets the collector said it received in its latest receiver
    /// report (RFC 3550 6.4.1: highest sequence number, cumulative loss).
    pub fn received_per_report(&self) -> Option<u64> {
        if self.rr_count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let highest = self.rr_highest_seq.load(Ordering::Relaxed);
        let first = self.first_seq.load(Ordering::Relaxed);
        let expected = highest.checked_sub(first)? + 1;
        u64::try_from(expected as i64 - self.rr_lost.load(Ordering::Relaxed)).ok()
    }
}

/// Misbehaviour to inject into a stream, for the collector's tests.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Send each of the next n packets twice.
    Duplicate(u32),
    /// Write the next n packets (their sequence numbers are used) but do
    /// not send them: a network loss.
    Drop(u32),
    /// Skip n sampling instants before the next packet, which carries the
    /// marker bit: a gap at the source (docs/protocol.md 5.3).
    SkipInstants(u32),
    /// With each of the next n packets, send one from another SSRC.
    ForeignSsrc(u32),
    /// With each of the next n packets, send a copy from this socket.
    FromOtherSocket(Arc<UdpSocket>, u32),
}

/// A stream to send.
#[derive(Debug)]
pub struct PumpStream {
    pub socket: Arc<UdpSocket>,
    pub rtp_dest: SocketAddr,
    pub rtcp_dest: SocketAddr,
    pub desc: StreamDescription,
    pub ssrc: u32,
    pub cname: String,
    pub seed: u64,
    pub counters: Arc<StreamCounters>,
    /// The keys agreed in SDES (RFC 4568): RTP and RTCP leave protected
    /// with `send` (RFC 3711); `None` sends plain RTP.
    pub srtp: Option<SrtpKeys>,
    /// Section 11 as agreed: live packets stamped, a backfill sent.
    pub recovery: Option<PumpRecovery>,
}

enum Cmd {
    Start(u64, Box<PumpStream>),
    Update(u64, StreamDescription, Option<SrtpKeys>),
    Fault(u64, Fault),
    Stop(u64, Option<tokio::sync::oneshot::Sender<()>>),
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Rtp,
    Rtcp,
    Backfill,
}

struct Live {
    s: PumpStream,
    sender: RtpSender,
    start: Instant,
    start_unix_ns: i64,
    next_tick: u64,
    marker: bool,
    faults: VecDeque<Fault>,
    rtcp: RtcpScheduler,
    generation: u64,
    foreign: RtpSender,
    /// This stream's SRTP sender (both RTP and SRTCP), when it has keys.
    seal: Option<SrtpContext>,
    backfill: Option<Backfill>,
}

impl Live {
    fn due(&self, tick: u64) -> Instant {
        let ns = u128::from(tick) * 1_000_000_000 / u128::from(self.s.desc.clock_rate.max(1));
        self.start + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    fn ntp_of_tick(&self, tick: u64) -> NtpTime {
        let ns = i128::from(self.start_unix_ns)
            + i128::from(tick) * 1_000_000_000 / i128::from(self.s.desc.clock_rate.max(1));
        NtpTime::from_unix(Duration::from_nanos(u64::try_from(ns).unwrap_or(0)))
    }
}

/// Sends for every started stream until dropped.
#[derive(Debug, Clone)]
pub struct MediaPump {
    tx: mpsc::Sender<Cmd>,
    /// Largest delay of a packet behind its due time, µs: a pump that
    /// falls behind sends what is overdue at once, a burst no sensor fleet
    /// sends, and a benchmark must say so.
    max_late_us: Arc<AtomicU64>,
}

impl MediaPump {
    pub fn start() -> std::io::Result<MediaPump> {
        let (tx, rx) = mpsc::channel();
        let max_late_us = Arc::new(AtomicU64::new(0));
        let late = max_late_us.clone();
        std::thread::Builder::new()
            .name("rtp-pump".into())
            .spawn(move || run(rx, &late))?;
        Ok(MediaPump { tx, max_late_us })
    }

    /// The largest delay of an RTP packet behind its due time so far.
    pub fn max_late(&self) -> Duration {
        Duration::from_micros(self.max_late_us.load(Ordering::Relaxed))
    }

    /// Starts sending `stream` now (tick 0 is now); returns its id.
    pub fn begin(&self, id: u64, stream: PumpStream) {
        let _ = self.tx.send(Cmd::Start(id, Box::new(stream)));
    }

    /// A new description (re-INVITE): samples continue on the same clock,
    /// under the keys of the new exchange (RFC 4568 7.1.4: the exchange of a
    /// re-INVITE may bring new keys).
    pub fn update(&self, id: u64, desc: StreamDescription, srtp: Option<SrtpKeys>) {
        let _ = self.tx.send(Cmd::Update(id, desc, srtp));
    }

    pub fn fault(&self, id: u64, fault: Fault) {
        let _ = self.tx.send(Cmd::Fault(id, fault));
    }

    /// Stops a stream with an RTCP BYE (RFC 3550 6.6).
    pub fn end(&self, id: u64) {
        let _ = self.tx.send(Cmd::Stop(id, None));
    }

    /// Stops a stream; returns once no packet of it will be sent any more.
    pub async fn finish(&self, id: u64) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Cmd::Stop(id, Some(tx))).is_ok() {
            let _ = rx.await;
        }
    }

    pub fn quit(&self) {
        let _ = self.tx.send(Cmd::Quit);
    }
}

fn rtcp_config(desc: &StreamDescription) -> RtcpConfig {
    RtcpConfig::new(desc.session_bandwidth_bps())
}

fn run(rx: mpsc::Receiver<Cmd>, max_late_us: &AtomicU64) {
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<(Instant, u64, Kind, u64)>> = BinaryHeap::new();
    let mut ids = IdGenerator::from_entropy();
    let mut buf = Buffers {
        plain: [0u8; 1500],
        sealed: Vec::with_capacity(1600),
    };
    loop {
        let wait = heap
            .peek()
            .map(|Reverse((due, ..))| due.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(200));
        match rx.recv_timeout(wait) {
            Ok(cmd) => {
                if !command(cmd, &mut live, &mut heap, &mut ids, &mut buf) {
                    return;
                }
                while let Ok(cmd) = rx.try_recv() {
                    if !command(cmd, &mut live, &mut heap, &mut ids, &mut buf) {
                        return;
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        // Bounded, so commands (a hangup waits for one) are heard even when
        // the thread has fallen behind its schedule.
        let mut budget = 4096;
        while let Some(Reverse((due, id, kind, generation))) = heap.peek().copied() {
            if due > now || budget == 0 {
                break;
            }
            budget -= 1;
            heap.pop();
            let Some(l) = live.get_mut(&id) else { continue };
            if l.generation != generation {
                continue;
            }
            match kind {
                Kind::Rtp => {
                    let late = u64::try_from(now.saturating_duration_since(due).as_micros())
                        .unwrap_or(u64::MAX);
                    max_late_us.fetch_max(late, Ordering::Relaxed);
                    send_samples(l, &mut buf);
                    heap.push(Reverse((l.due(l.next_tick), id, Kind::Rtp, generation)));
                }
                Kind::Backfill => {
                    if let Some(at) = send_backfill(l, &mut buf, now) {
                        heap.push(Reverse((at, id, Kind::Backfill, generation)));
                    }
                }
                Kind::Rtcp => {
                    if l.rtcp.handle_timeout(now, &mut ids) {
                        let n = sender_report(l, now, &mut buf, false);
                        l.rtcp.on_sent(n, now, &mut ids);
                    }
                    heap.push(Reverse((l.rtcp.poll_timeout(), id, Kind::Rtcp, generation)));
                }
            }
        }
    }
}

/// The pump's packet buffers, reused for every packet: a load generator
/// that allocates per packet measures its allocator, not the collector.
struct Buffers {
    plain: [u8; 1500],
    /// Room for a packet and the SRTP/SRTCP overhead (RFC 3711 3.1, 3.4).
    sealed: Vec<u8>,
}

/// The stream's SRTP sender, or a note of why it has none: a key the
/// crypto refuses is counted as a send error, and the stream stays silent
/// rather than sending in clear what was agreed as SRTP.
fn sealer(keys: Option<&SrtpKeys>, counters: &StreamCounters) -> Result<Option<SrtpContext>, ()> {
    match keys.map(|k| SrtpContext::outbound(&k.send)).transpose() {
        Ok(seal) => Ok(seal),
        Err(_) => {
            counters.send_errors.fetch_add(1, Ordering::Relaxed);
            Err(())
        }
    }
}

/// Sends one RTP (`rtcp` false) or RTCP compound packet of the stream,
/// SRTP-protected when it has keys.
fn transmit(
    seal: &mut Option<SrtpContext>,
    socket: &UdpSocket,
    packet: &[u8],
    rtcp: bool,
    sealed: &mut Vec<u8>,
    dest: SocketAddr,
) -> std::io::Result<usize> {
    let Some(seal) = seal else {
        return socket.send_to(packet, dest);
    };
    let protected = if rtcp {
        seal.protect_rtcp(packet, sealed)
    } else {
        seal.protect_rtp(packet, sealed)
    };
    protected.map_err(std::io::Error::other)?;
    socket.send_to(sealed, dest)
}

fn command(
    cmd: Cmd,
    live: &mut HashMap<u64, Live>,
    heap: &mut BinaryHeap<Reverse<(Instant, u64, Kind, u64)>>,
    ids: &mut IdGenerator,
    buf: &mut Buffers,
) -> bool {
    match cmd {
        Cmd::Start(id, s) => {
            let Ok(seal) = sealer(s.srtp.as_ref(), &s.counters) else {
                return true;
            };
            let now = Instant::now();
            let unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(0));
            s.counters.start_unix_ns.store(unix, Ordering::Relaxed);
            let mut rtcp_cfg = rtcp_config(&s.desc);
            rtcp_cfg.immediate_first = true;
            let first_seq = ids.u32() as u16;
            s.counters
                .first_seq
                .store(u64::from(first_seq), Ordering::Relaxed);
            let backfill = s.recovery.as_ref().and_then(|r| {
                let plan = r.backfill.clone()?;
                Some(Backfill::new(plan, r.instant_id, &s.desc, unix, s.seed))
            });
            let mut l = Live {
                backfill,
                sender: RtpSender::with_start(s.ssrc, first_seq, ids.u32()),
                foreign: RtpSender::new(ids),
                rtcp: RtcpScheduler::new(rtcp_cfg, true, now, ids),
                s: *s,
                start: now,
                start_unix_ns: unix,
                next_tick: 0,
                marker: true,
                faults: VecDeque::new(),
                generation: 0,
                seal,
            };
            // docs/protocol.md 6: the first SR goes out at once.
            let n = sender_report(&mut l, now, buf, false);
            l.rtcp.on_sent(n, now, ids);
            let generation = live.get(&id).map_or(0, |o| o.generation + 1);
            l.generation = generation;
            heap.push(Reverse((now, id, Kind::Rtp, generation)));
            heap.push(Reverse((l.rtcp.poll_timeout(), id, Kind::Rtcp, generation)));
            if l.backfill.is_some() {
                heap.push(Reverse((now, id, Kind::Backfill, generation)));
            }
            live.insert(id, l);
        }
        Cmd::Update(id, desc, keys) => {
            if let Some(l) = live.get_mut(&id) {
                let Ok(seal) = sealer(keys.as_ref(), &l.s.counters) else {
                    live.remove(&id);
                    return true;
                };
                l.seal = seal;
                let old = l.s.desc.samples.as_ref().map_or(1, |s| s.period);
                let new = desc.samples.as_ref().map_or(1, |s| s.period);
                // The last instant sent stays; the next follows at the new period.
                l.next_tick = l.next_tick.saturating_sub(u64::from(old)) + u64::from(new);
                l.s.desc = desc;
                l.marker = true;
                l.generation += 1;
                heap.push(Reverse((l.due(l.next_tick), id, Kind::Rtp, l.generation)));
                heap.push(Reverse((
                    l.rtcp.poll_timeout(),
                    id,
                    Kind::Rtcp,
                    l.generation,
                )));
                if l.backfill.is_some() {
                    heap.push(Reverse((Instant::now(), id, Kind::Backfill, l.generation)));
                }
            }
        }
        Cmd::Fault(id, f) => {
            if let Some(l) = live.get_mut(&id) {
                l.faults.push_back(f);
            }
        }
        Cmd::Stop(id, done) => {
            if let Some(mut l) = live.remove(&id) {
                sender_report(&mut l, Instant::now(), buf, true);
            }
            if let Some(d) = done {
                let _ = d.send(());
            }
        }
        Cmd::Quit => return false,
    }
    true
}

/// Takes one unit of the front fault if it is of the kind `pick` accepts.
fn take_fault(l: &mut Live, pick: impl Fn(&Fault) -> bool) -> Option<Fault> {
    let f = l.faults.front_mut()?;
    if !pick(f) {
        return None;
    }
    let taken = f.clone();
    let left = match f {
        Fault::SkipInstants(_) => 0,
        Fault::Duplicate(n)
        | Fault::Drop(n)
        | Fault::ForeignSsrc(n)
        | Fault::FromOtherSocket(_, n) => {
            *n = n.saturating_sub(1);
            *n
        }
    };
    if left == 0 {
        l.faults.pop_front();
    }
    Some(taken)
}

fn send_samples(l: &mut Live, buf: &mut Buffers) {
    let Some(fmt) = l.s.desc.samples.clone() else {
        l.next_tick += 1_000_000;
        return;
    };
    if let Some(Fault::SkipInstants(n)) = take_fault(l, |f| matches!(f, Fault::SkipInstants(_))) {
        l.next_tick += u64::from(n) * u64::from(fmt.period);
        l.marker = true;
        return; // the packet goes out at its (later) tick
    }
    let tick = l.next_tick;
    let channels = fmt.channels.len();
    let spp = usize::from(fmt.samples_per_packet);
    let mut values = Vec::with_capacity(channels * spp);
    for k in 0..spp {
        let t = tick + (k as u64) * u64::from(fmt.period);
        for ch in 0..channels {
            values.push(waveform::raw(l.s.seed, ch, t));
        }
    }
    l.next_tick += (spp as u64) * u64::from(fmt.period);
    let marker = std::mem::take(&mut l.marker);
    let written = match &l.s.recovery {
        Some(r) => {
            let stamp = backfill::instant(&l.s.desc, l.start_unix_ns, tick);
            l.sender.write_samples_stamped(
                &mut buf.plain,
                &l.s.desc,
                tick,
                &values,
                marker,
                (r.instant_id, stamp),
            )
        }
        None => l
            .sender
            .write_samples(&mut buf.plain, &l.s.desc, tick, &values, marker),
    };
    let n = match written {
        Ok(n) => n,
        Err(_) => return,
    };
    if take_fault(l, |f| matches!(f, Fault::Drop(_))).is_some() {
        l.s.counters.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let times = if take_fault(l, |f| matches!(f, Fault::Duplicate(_))).is_some() {
        2
    } else {
        1
    };
    // A duplicate is the same protected bytes again: a replay to SRTP.
    let sent = transmit(
        &mut l.seal,
        &l.s.socket,
        &buf.plain[..n],
        false,
        &mut buf.sealed,
        l.s.rtp_dest,
    );
    let wire: &[u8] = if l.seal.is_some() {
        &buf.sealed
    } else {
        &buf.plain[..n]
    };
    let c = &l.s.counters;
    if sent.is_err() || (times == 2 && l.s.socket.send_to(wire, l.s.rtp_dest).is_err()) {
        c.send_errors.fetch_add(1, Ordering::Relaxed);
    }
    c.packets.fetch_add(1, Ordering::Relaxed);
    c.samples
        .fetch_add((channels * spp) as u64, Ordering::Relaxed);
    if let Some(Fault::FromOtherSocket(other, _)) =
        take_fault(l, |f| matches!(f, Fault::FromOtherSocket(..)))
    {
        let _ = other.send_to(wire, l.s.rtp_dest);
    }
    if take_fault(l, |f| matches!(f, Fault::ForeignSsrc(_))).is_some() {
        let mut b = [0u8; 1500];
        if let Ok(m) = l
            .foreign
            .write_samples(&mut b, &l.s.desc, tick, &values, false)
        {
            let _ = l.s.socket.send_to(&b[..m], l.s.rtp_dest);
        }
    }
}

/// The stream's next backfill packet if its pace allows; when to try
/// again (`None`: the outage is sent).
fn send_backfill(l: &mut Live, buf: &mut Buffers, now: Instant) -> Option<Instant> {
    let mut bf = l.backfill.take()?;
    let (seal, socket, dest, counters) = (&mut l.seal, &l.s.socket, l.s.rtp_dest, &l.s.counters);
    let mark = counters.committed_mark_ns.load(Ordering::Relaxed);
    let next = bf.poll(&l.s.desc, &mut buf.plain, now, mark, |packet, sent| {
        if transmit(seal, socket, packet, false, &mut buf.sealed, dest).is_err() {
            counters.send_errors.fetch_add(1, Ordering::Relaxed);
        }
        counters.backfill_packets.fetch_add(1, Ordering::Relaxed);
        let samples = if sent.again {
            &counters.backfill_samples_again
        } else {
            &counters.backfill_samples
        };
        samples.fetch_add(sent.samples as u64, Ordering::Relaxed);
    });
    match next {
        Some(_) => l.backfill = Some(bf),
        None => {
            let unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(0));
            counters
                .backfill_done_unix_ns
                .store(unix, Ordering::Relaxed);
        }
    }
    next
}

/// SR (+ SDES CNAME, + BYE) pinned to the current tick (docs/protocol.md 6).
fn sender_report(l: &mut Live, now: Instant, buf: &mut Buffers, bye: bool) -> usize {
    let elapsed = now.saturating_duration_since(l.start);
    let tick = u64::try_from(elapsed.as_nanos() * u128::from(l.s.desc.clock_rate) / 1_000_000_000)
        .unwrap_or(0);
    let sr = l.sender.sender_report(tick, l.ntp_of_tick(tick));
    let mut w = CompoundWriter::new(&mut buf.plain);
    let built = w
        .sender_report(&sr)
        .and_then(|()| w.sdes(sr.ssrc, &l.s.cname, &[]))
        .and_then(|()| if bye { w.bye(&[sr.ssrc], None) } else { Ok(()) })
        .and_then(|()| w.finish());
    match built {
        Ok(n) => {
            let _ = transmit(
                &mut l.seal,
                &l.s.socket,
                &buf.plain[..n],
                true,
                &mut buf.sealed,
                l.s.rtcp_dest,
            );
            l.s.counters.sender_reports.fetch_add(1, Ordering::Relaxed);
            n
        }
        Err(_) => 0,
    }
}
