//! The backfill's effects: a "backfill" thread at normal priority (never
//! the real-time one, so live goes first by construction) that reads the
//! spool, sends the core's packets from a clone of the stream's RTP socket
//! to the session's RTP destination, its RTCP compound (SR + SDES + APP
//! SSBF) to the RTCP destination, and releases the spool at the marks the
//! rtcp-receiver thread hands over. SRTP with a context of its own for the
//! backfill SSRC from the session's master key (docs/protocol.md 11.8).

use super::packet::layout_channels;
use super::{Backfill, BackfillPlan, READ_BATCH, ReadChunk, SpoolState};
use crate::spool::{Record, Replay, Spool, unix_ns};
use crate::status::Counters;
use crate::stoppable::StoppableThread;
use crate::stream::{CommittedMark, LiveStart, layout_id};
use sipsensor_protocol::{
    CompoundWriter, MAX_KEPT_PACKET, NtpTime, SrtpContext, SrtpError, SrtpKey,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The longest sleep. Marks are read when the thread wakes (nothing
/// wakes it for one), and in between nothing depends on them but
/// releasing the spool, which may wait: a mark acted on this late costs
/// spool space for that long, never data. The core's timers (pacing, RTCP,
/// ack timeout, reopen) read the mark first when they wake it, so a mark
/// read late can only delay a resend, never cause one.
const RELEASE_LAG: Duration = Duration::from_secs(5);
/// While the spool has not caught up with the live start (its writer
/// syncs, and so writes, once per `spool.fsync_interval_ms`): how soon
/// to look again.
const SPOOL_RETRY: Duration = Duration::from_millis(250);

/// Everything the thread needs from the session.
#[derive(Debug)]
pub struct ShellPlan {
    pub backfill: BackfillPlan,
    /// A clone of the stream's RTP socket (symmetric RTP: same port).
    pub rtp: UdpSocket,
    /// A clone of the stream's RTCP socket, for sending only.
    pub rtcp: UdpSocket,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    /// The session's sending master key; `None`: plain RTP.
    pub srtp: Option<SrtpKey>,
    pub cname: String,
    pub spool: Arc<Mutex<Spool>>,
    pub mark: CommittedMark,
    pub counters: Arc<Counters>,
    /// The backfill stream's first sequence number (random, RFC 3550 5.1).
    pub first_sequence: u16,
    /// L, when `backfill.live_start` is 0: the thread waits for the live
    /// stream's first instant before it plans anything.
    pub live_start: Option<LiveStart>,
}

/// The running thread; stopping it (or dropping) wakes and ends it.
#[derive(Debug)]
pub struct BackfillShell {
    thread: StoppableThread,
}

impl BackfillShell {
    pub fn start(plan: ShellPlan) -> Result<BackfillShell, ShellError> {
        let sealer = plan
            .srtp
            .as_ref()
            .map(SrtpContext::outbound)
            .transpose()
            .map_err(ShellError::Srtp)?;
        let thread = StoppableThread::spawn("backfill", move |stop| run(plan, sealer, stop))
            .map_err(ShellError::Thread)?;
        Ok(BackfillShell { thread })
    }

    /// End the thread (dropping does the same).
    pub fn stop(mut self) {
        self.thread.stop();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("SRTP for the backfill stream: {0}")]
    Srtp(#[source] SrtpError),
    #[error("cannot start the backfill thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The spool iterator kept between reads that continue each other.
pub(super) struct Reader {
    /// The request it answers next.
    after: u64,
    replay: Replay,
    /// Read past the last chunk's end.
    held: Option<Record>,
}

fn run(plan: ShellPlan, mut sealer: Option<SrtpContext>, stop: &AtomicBool) {
    let ShellPlan {
        backfill: bplan,
        rtp,
        rtcp,
        remote_rtp,
        remote_rtcp,
        cname,
        spool,
        mark,
        counters,
        first_sequence,
        live_start,
        ..
    } = plan;
    let mut bplan = bplan;
    if let Some(live) = live_start {
        // The first live packet goes within a sampling period of the
        // attach; until then there is no L to backfill up to.
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if let Some(l) = live.get() {
                bplan.live_start = l;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let desc = bplan.description.clone();
    let (state, layouts, run_ends) = {
        let mut s = spool.lock().unwrap_or_else(PoisonError::into_inner);
        // The live stream spools under this layout from now on.
        s.remember_layout(layout_id(&desc), &layout_channels(&desc));
        (spool_state(&s), s.layouts().clone(), s.run_ends().to_vec())
    };
    let mut core = Backfill::new(bplan, state, layouts, first_sequence, Instant::now());
    core.on_run_ends(&run_ends);
    core.set_wire_overhead(sealer.as_ref().map_or(0, SrtpContext::rtp_overhead));
    let mut reader: Option<Reader> = None;
    let mut buf = vec![0u8; MAX_KEPT_PACKET];
    let mut sealed = Vec::with_capacity(MAX_KEPT_PACKET + 64);
    let mut last_mark = 0;
    let mut send_failed = false;
    let mut restarts_seen = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let m = mark.get();
        if m > last_mark {
            last_mark = m;
            core.on_mark(m, now);
        }
        if let Some(at) = core.poll_release() {
            release(&spool, at, &counters);
        }
        let mut progressed = false;
        let mut asked = false;
        if let Some(after) = core.poll_read() {
            asked = true;
            match read(&spool, &mut reader, after, core.end()) {
                Ok(chunk) => {
                    progressed = !chunk.records.is_empty();
                    core.on_read(after, chunk);
                }
                Err(e) => core.on_read_error(&e),
            }
        }
        while let Some(n) = core.poll_transmit(now, &mut buf) {
            let sent = send(
                &rtp,
                remote_rtp,
                sealer.as_mut(),
                &mut sealed,
                &buf[..n],
                false,
            );
            if !sent && !send_failed {
                tracing::warn!(
                    "backfill: cannot send to {remote_rtp}; the collector's mark stalls and the packets go again after the ack timeout"
                );
            }
            send_failed = !sent;
            counters.backfill_packets.fetch_add(1, Ordering::Relaxed);
            let wire = n + sealer.as_ref().map_or(0, SrtpContext::rtp_overhead);
            counters
                .backfill_bytes
                .fetch_add(wire as u64, Ordering::Relaxed);
        }
        // Restarts happen in poll_transmit and poll_timeout alike.
        let restarts = core.stats().restarts;
        counters
            .backfill_restarts
            .fetch_add(restarts - restarts_seen, Ordering::Relaxed);
        restarts_seen = restarts;
        if let Some(messages) = core.poll_rtcp(now) {
            let n = compound(&core, &cname, &messages, &mut buf);
            if let Some(n) = n {
                send(
                    &rtcp,
                    remote_rtcp,
                    sealer.as_mut(),
                    &mut sealed,
                    &buf[..n],
                    true,
                );
            }
        }
        if progressed && core.poll_read().is_some() {
            continue;
        }
        let now = Instant::now();
        let waiting_for_spool = asked && core.poll_read().is_some();
        std::thread::park_timeout(nap(core.poll_timeout(now), waiting_for_spool, now));
    }
}

/// How long the thread sleeps at `now`: until the core's next timer
/// (`core_wake`; `None`: none), but no longer than `RELEASE_LAG`, and
/// `SPOOL_RETRY` when a read found the spool short of the live start and
/// the same read is due again. Nothing else can change while it sleeps.
fn nap(core_wake: Option<Instant>, waiting_for_spool: bool, now: Instant) -> Duration {
    let mut nap = core_wake.map_or(RELEASE_LAG, |w| {
        w.saturating_duration_since(now).min(RELEASE_LAG)
    });
    if waiting_for_spool {
        nap = nap.min(SPOOL_RETRY);
    }
    nap
}

fn spool_state(s: &Spool) -> SpoolState {
    SpoolState {
        oldest: s.oldest(),
        dropped_through: s.dropped_through(),
    }
}

fn release(spool: &Mutex<Spool>, at: u64, counters: &Counters) {
    let mut s = spool.lock().unwrap_or_else(PoisonError::into_inner);
    let before = s.stats().bytes_on_disk;
    s.release_through(i64::try_from(at).unwrap_or(i64::MAX), SystemTime::now());
    let freed = before.saturating_sub(s.stats().bytes_on_disk);
    counters
        .spool_released_bytes
        .fetch_add(freed, Ordering::Relaxed);
}

/// Up to `READ_BATCH` records after `after` and before `end`, plus every
/// record that overlaps the last of them (an edge inside a run must come
/// in the same chunk to be ordered into it).
pub(super) fn read(
    spool: &Mutex<Spool>,
    reader: &mut Option<Reader>,
    after: u64,
    end: u64,
) -> Result<ReadChunk, String> {
    let (state, spooled_through) = {
        let s = spool.lock().unwrap_or_else(PoisonError::into_inner);
        if reader.as_ref().is_none_or(|r| r.after != after) {
            let from = i64::try_from(after).unwrap_or(i64::MAX).saturating_add(1);
            *reader = Some(Reader {
                after,
                replay: s.read_from(from),
                held: None,
            });
        }
        (spool_state(&s), s.newest())
    };
    let Some(r) = reader.as_mut() else {
        return Err("no reader".into());
    };
    let end = i64::try_from(end).unwrap_or(i64::MAX);
    let mut records = Vec::new();
    let mut newest = i64::MIN;
    let mut complete = false;
    let mut ended = false;
    loop {
        let Some(record) = r.held.take().or_else(|| r.replay.next()) else {
            // The end of what the spool held when the reader started. It
            // is all before L only once the live stream's own records
            // (from L on) are spooled; until then look again later.
            complete = spooled_through.is_some_and(|n| n >= end);
            ended = true;
            break;
        };
        let (first, last) = record.span();
        if first >= end {
            complete = true;
            break;
        }
        if records.len() >= READ_BATCH && first > newest {
            r.held = Some(record);
            break;
        }
        newest = newest.max(last);
        records.push(record);
    }
    if let Some(e) = r.replay.error() {
        return Err(e.to_owned());
    }
    let drained = ended && !complete;
    // The request the core makes next if it takes these records.
    let through = u64::try_from(newest)
        .unwrap_or(0)
        .min(u64::try_from(end).unwrap_or(0).saturating_sub(1));
    r.after = r.after.max(through);
    if drained {
        // The next read lists the segments again, to see what was
        // appended since.
        *reader = None;
    }
    Ok(ReadChunk {
        records,
        complete,
        state,
    })
}

/// Seal (with SRTP) and send; `false` when it did not go.
fn send(
    socket: &UdpSocket,
    to: SocketAddr,
    sealer: Option<&mut SrtpContext>,
    sealed: &mut Vec<u8>,
    packet: &[u8],
    rtcp: bool,
) -> bool {
    let bytes = match sealer {
        None => packet,
        Some(c) => {
            let done = if rtcp {
                c.protect_rtcp(packet, sealed)
            } else {
                c.protect_rtp(packet, sealed)
            };
            if done.is_err() {
                return false;
            }
            sealed.as_slice()
        }
    };
    socket.send_to(bytes, to).is_ok()
}

/// SR for the backfill SSRC + SDES + the SSBF messages (11.4).
fn compound(
    core: &Backfill,
    cname: &str,
    messages: &[sipsensor_protocol::BackfillMessage],
    buf: &mut [u8],
) -> Option<usize> {
    let rtp = core.rtp();
    let now = SystemTime::now();
    let clock = core.units.desc.clock_rate;
    let ns = u64::try_from(unix_ns(now)).unwrap_or(0);
    let tick = (u128::from(ns) * u128::from(clock) / 1_000_000_000) as u64;
    let mut w = CompoundWriter::new(buf);
    w.sender_report(&rtp.sender_report(tick, NtpTime::from_system_time(now)))
        .ok()?;
    w.sdes(rtp.ssrc(), cname, &[]).ok()?;
    for m in messages {
        w.app(&m.to_app(rtp.ssrc())).ok()?;
    }
    w.finish().ok()
}

#[cfg(test)]
mod tests;
