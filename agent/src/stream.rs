//! The real-time RTP sender: one stream (one SSRC) from the sensor board
//! and the GPIO events to the collector, on its own OS thread.
//!
//! ```text
//!  sensor I/O threads ──triple buffers──► Board ─┐
//!  GPIO tasks ──────────SPSC rings + Wake──► EventReceiver ─┤
//!                                                           ▼
//!   Streamer ──commands ring──► "rtp-sender" thread (SCHED_FIFO, mlockall)
//!     ▲   └──retired ring (freed here)◄─┘   │ RTP + SR/SDES/BYE (non-blocking)
//!     │                                      ▼
//!     └── stats (atomics) ◄── "rtcp-receiver" thread ◄── RR/BYE from the peer
//! ```
//!
//! The sender thread samples the board at every sampling instant (it never
//! waits for a sensor: what is missing is sent as MISSING), sends each
//! samples packet when its last instant is sampled, sends GPIO edges at
//! once with their repeats (docs/protocol.md 5.5), and an SR at the
//! RTCP interval (RFC 3550 6.2) pinned to a tick. It sleeps until the
//! next deadline on CLOCK_MONOTONIC, and is woken early by an event (the
//! ring's `Wake` unparks it) or a command. Nothing on that path
//! allocates, locks or blocks: see `engine` and `worker`, and the counting
//! allocator in agent/tests/stream_no_alloc.rs.

mod engine;
mod layout;
mod rt;
mod rtcp_rx;
#[cfg(any(test, feature = "bench"))]
pub mod sim;
mod stats;
mod terms;
#[cfg(test)]
mod test_spool;
mod worker;

pub(crate) use layout::layout_id;
pub use sipsensor_runtime::realtime::MemoryLock;
pub use stats::{CommittedMark, LastReport, LiveStart, StreamStats};
pub use terms::{LiveRecovery, RtxPlan, SessionPlan};

use crate::config::RealtimeConfig;
use crate::handoff::{Board, EventReceiver};
use crate::spool::SpoolFeed;
use crate::status::StatusHub;
use engine::{CoreOptions, CoreParts};
use layout::Layout;
use rtcp_rx::RtcpReceiver;
use sipsensor_protocol::{
    IdGenerator, OutboxConfig, RtpSender, SrtpError, SrtpKeys, StreamDescription,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use terms::session_terms;
use worker::{Command, Job, Sockets};

/// Commands in flight; a reconfiguration needs one slot.
const COMMANDS: usize = 4;
/// Why a stream cannot start or change.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("stream description: {0}")]
    Description(#[from] sipsensor_protocol::StreamError),
    #[error("channel {0:?} of the description is none of the board's channels")]
    UnknownChannel(String),
    #[error("input {0:?} of the description is none of the GPIO inputs")]
    UnknownInput(String),
    #[error("the board has {board} channels but the plan names {named}")]
    BoardMismatch { board: usize, named: usize },
    #[error(
        "clock rate {new} Hz differs from the stream's {current} Hz; a payload type's clock \
         never changes in a session (RFC 3264 8.3.2)"
    )]
    ClockChanged { current: u32, new: u32 },
    #[error("socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("SRTP: {0}")]
    Srtp(#[source] SrtpError),
    #[error("cannot start the sender threads: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the sender has {COMMANDS} commands queued already")]
    Busy,
    #[error("the sender thread ended abnormally")]
    Died,
}

/// How a stream is sent; the defaults are what the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// Event repeat timing (docs/protocol.md 5.5).
    pub outbox: OutboxConfig,
    /// RTCP minimum interval (RFC 3550 6.2: 5 s). Shorter only in tests.
    pub rtcp_min_interval: Duration,
    /// Sampling instants overdue by more than this are skipped, with the
    /// marker bit on the next packet (docs/protocol.md 5.3); fewer are
    /// sampled late. `None`: twice the packet interval, at least 100 ms.
    pub late_limit: Option<Duration>,
    /// In a stream with GPIO events, the last stretch before a deadline
    /// is slept in `clock_nanosleep` on the absolute deadline instead of
    /// parked (an edge arriving then waits at most this long; each stretch
    /// costs a second wake-up). Streams without events always sleep in
    /// `clock_nanosleep`.
    pub fine_sleep: Duration,
    pub memory_lock: MemoryLock,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            outbox: OutboxConfig::default(),
            rtcp_min_interval: Duration::from_secs(5),
            late_limit: None,
            fine_sleep: Duration::ZERO,
            memory_lock: MemoryLock::default(),
        }
    }
}

/// Everything one stream needs besides the board and the events.
#[derive(Debug)]
pub struct StreamPlan {
    /// Bound to the port in the SDP; RTP leaves from it (symmetric RTP).
    pub rtp: UdpSocket,
    /// The RTP port + 1: SRs leave from it, RRs arrive on it.
    pub rtcp: UdpSocket,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    /// The agreed description (offer/answer done).
    pub description: StreamDescription,
    /// SSRC, first sequence number and timestamp base (RFC 3550 5.1): made
    /// by the caller with `RtpSender::new(&mut ids)`, so the SSRC is known
    /// for `a=ssrc` before the stream starts.
    pub sender: RtpSender,
    /// Randomness for the RTCP interval and event serials.
    pub ids: IdGenerator,
    /// The SDES CNAME (RFC 3550 6.5.1), e.g. `sensor-0001@198.51.100.10`.
    pub cname: String,
    /// Names of the board's channels, in board order (the config's
    /// `stream.channels`); the description's channels are found here by
    /// name (ignoring case).
    pub channels: Vec<String>,
    /// Names of the GPIO inputs, in the order of `Event::input`.
    pub inputs: Vec<String>,
    pub options: StreamOptions,
    /// The SRTP keys agreed (RFC 4568): every RTP and RTCP packet is
    /// protected with `send`, the collector's RTCP checked with `receive`.
    /// `None`: plain RTP.
    pub srtp: Option<SrtpKeys>,
    /// Every sample run and edge is handed here for spooling (crate::spool);
    /// comes back in `Stopped` or `StartFailed`.
    pub spool: Option<SpoolFeed>,
    /// The acknowledgement and repair agreed (docs/protocol.md 11).
    pub recovery: LiveRecovery,
}

/// A `start` that failed, with the parts it was given back.
#[derive(Debug)]
pub struct StartFailed {
    pub error: StreamError,
    pub board: Board,
    pub events: EventReceiver,
    pub spool: Option<SpoolFeed>,
}

/// What a stopped stream hands back.
#[derive(Debug)]
pub struct Stopped {
    pub board: Board,
    pub events: EventReceiver,
    pub spool: Option<SpoolFeed>,
    pub stats: StreamStats,
    /// The sockets, still bound to the ports the SDP named.
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub ids: IdGenerator,
    ssrc: u32,
    next_sequence: u16,
    timestamp_base: u32,
    clock_rate: u32,
    epoch: Instant,
}

impl Stopped {
    /// An `RtpSender` that continues this stream in a new `Streamer`
    /// started at `now` (after a hold): same SSRC, the next sequence
    /// number, and timestamps that count the ticks that passed.
    pub fn resume_sender(&self, now: Instant) -> RtpSender {
        let elapsed = now.saturating_duration_since(self.epoch);
        let ticks = sipsensor_protocol::TickTime::from_elapsed(elapsed, self.clock_rate);
        RtpSender::with_start(
            self.ssrc,
            self.next_sequence,
            self.timestamp_base.wrapping_add(ticks.tick as u32),
        )
    }
}

/// A running stream. Dropping it stops it (without returning the parts).
#[derive(Debug)]
pub struct Streamer {
    thread: Option<JoinHandle<Option<worker::End>>>,
    receiver: Option<RtcpReceiver>,
    commands: rtrb::Producer<Command>,
    retired: rtrb::Consumer<worker::Retired>,
    stats: Arc<stats::Shared>,
    channels: Vec<String>,
    inputs: Vec<String>,
    description: StreamDescription,
    ssrc: u32,
    srtp: Option<SrtpKeys>,
    recovery: LiveRecovery,
    /// The peer's RTCP address, which NACKs must come from (plain RTP);
    /// `None` while detached.
    peer_rtcp: Arc<Mutex<Option<SocketAddr>>>,
    /// The RTCP receiver's SRTCP context, the session's.
    srtcp: rtcp_rx::SharedSrtcp,
    /// A handle on the RTP socket (non-blocking) for other senders of the
    /// session (the backfill stream, docs/protocol.md 11.6).
    rtp: UdpSocket,
    /// Where the session's RTP goes; `None` while detached.
    remote_rtp: Option<SocketAddr>,
    /// Detach commands sent to the sender thread.
    detaches_asked: u64,
}

impl Streamer {
    /// Check the plan against the board, then start the sender thread
    /// (with `rt`'s priority and CPU) and the RTCP receiver thread. Tick
    /// 0 of the sample clock is about a millisecond after this returns.
    /// Packets and values are added to `status`'s counters.
    pub fn start(
        plan: StreamPlan,
        board: Board,
        events: EventReceiver,
        rt: &RealtimeConfig,
        status: StatusHub,
    ) -> Result<Streamer, Box<StartFailed>> {
        Self::launch(plan, board, events, rt, status, true)
    }

    /// [`Self::start`] without a session: the board is sampled on the
    /// plan's description and everything spooled, nothing sent (the
    /// plan's remote addresses, keys and recovery are not used) until
    /// [`Self::attach`].
    pub fn start_detached(
        plan: StreamPlan,
        board: Board,
        events: EventReceiver,
        rt: &RealtimeConfig,
        status: StatusHub,
    ) -> Result<Streamer, Box<StartFailed>> {
        Self::launch(plan, board, events, rt, status, false)
    }

    fn launch(
        mut plan: StreamPlan,
        board: Board,
        events: EventReceiver,
        rt: &RealtimeConfig,
        status: StatusHub,
        attached: bool,
    ) -> Result<Streamer, Box<StartFailed>> {
        if !attached {
            plan.srtp = None;
            plan.recovery = LiveRecovery::default();
        }
        let spool = plan.spool.take();
        let fail = |error, board, events, spool| {
            Box::new(StartFailed {
                error,
                board,
                events,
                spool,
            })
        };
        if board.channels() != plan.channels.len() {
            let error = StreamError::BoardMismatch {
                board: board.channels(),
                named: plan.channels.len(),
            };
            return Err(fail(error, board, events, spool));
        }
        let layout = match Layout::new(plan.description.clone(), &plan.channels, &plan.inputs) {
            Ok(l) => Box::new(l),
            Err(e) => return Err(fail(e, board, events, spool)),
        };
        let sockets = match sockets(&plan) {
            Ok(s) => s,
            Err(e) => return Err(fail(StreamError::Socket(e), board, events, spool)),
        };
        let rtp_handle = match sockets.0.try_clone() {
            Ok(s) => s,
            Err(e) => return Err(fail(StreamError::Socket(e), board, events, spool)),
        };
        let (terms, srtcp_in) = match session_terms(
            plan.srtp.as_ref(),
            &plan.recovery,
            &plan.description,
            &mut plan.ids,
        ) {
            Ok(c) => c,
            Err(e) => return Err(fail(StreamError::Srtp(e), board, events, spool)),
        };
        let levels = status
            .snapshot()
            .inputs
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, i)| i.level == Some(true))
            .fold(0u64, |acc, (g, _)| acc | 1 << g);
        let stats = Arc::new(stats::Shared::default());
        let figures = stats.clone();
        status.set_repair_source(crate::status::RepairSource::new(move || {
            figures.repair_status()
        }));
        let (sizes_tx, sizes_rx) = rtrb::RingBuffer::new(64);
        let (commands, commands_rx) = rtrb::RingBuffer::new(COMMANDS);
        // Room for every command in flight and the one being replaced.
        let (retired_tx, retired) = rtrb::RingBuffer::new(2 * COMMANDS + 2);
        let ssrc = plan.sender.ssrc();
        let (rtcp_rx, rtcp_tx) = (plan.rtcp, sockets.1);
        let (nacks_tx, nacks_rx) = rtrb::RingBuffer::new(rtcp_rx::MAX_PER_COMPOUND);
        let peer_rtcp = Arc::new(Mutex::new(attached.then_some(plan.remote_rtcp)));
        let srtcp = Arc::new(Mutex::new(srtcp_in));
        let repair = rtcp_rx::Repair {
            peer: peer_rtcp.clone(),
            nacks: nacks_tx,
        };
        let receiver = match RtcpReceiver::spawn(
            rtcp_rx,
            ssrc,
            stats.clone(),
            sizes_tx,
            srtcp.clone(),
            repair,
        ) {
            Ok(r) => r,
            Err(e) => return Err(fail(StreamError::Thread(e), board, events, spool)),
        };
        let handover: worker::Handover = Arc::new(Mutex::new(Some(worker::Handed {
            board,
            events,
            spool,
        })));
        let job = Job {
            layout,
            parts: CoreParts {
                rtp: plan.sender,
                ids: plan.ids,
                cname: plan.cname,
                options: CoreOptions {
                    outbox: plan.options.outbox,
                    rtcp_min_interval: plan.options.rtcp_min_interval,
                    late_limit: plan.options.late_limit,
                },
                board_channels: plan.channels.len(),
                levels,
                stats: stats.clone(),
                counters: status.counters().clone(),
                // Travels in the handover, so a failed start returns it.
                spool: None,
                instant_id: terms.instant_id,
                history: terms.history,
                attached,
            },
            handover: handover.clone(),
            sockets: Sockets {
                rtp: sockets.0,
                rtcp: rtcp_tx,
                remote_rtp: plan.remote_rtp,
                remote_rtcp: plan.remote_rtcp,
                srtp: terms.srtp,
                rtx_srtp: terms.rtx_srtp,
            },
            commands: commands_rx,
            retired: retired_tx,
            rtcp_sizes: sizes_rx,
            nacks: nacks_rx,
            realtime: *rt,
            memory: plan.options.memory_lock,
            fine_sleep: plan.options.fine_sleep,
        };
        let spawned = std::thread::Builder::new()
            .name("rtp-sender".into())
            .stack_size(256 * 1024)
            .spawn(move || worker::run(job));
        match spawned {
            Ok(thread) => Ok(Streamer {
                thread: Some(thread),
                receiver: Some(receiver),
                commands,
                retired,
                stats,
                channels: plan.channels,
                inputs: plan.inputs,
                description: plan.description,
                ssrc,
                srtp: plan.srtp,
                recovery: plan.recovery,
                peer_rtcp,
                srtcp,
                rtp: rtp_handle,
                remote_rtp: attached.then_some(plan.remote_rtp),
                detaches_asked: 0,
            }),
            Err(e) => {
                let _ = receiver.stop();
                let parts = handover.lock().unwrap_or_else(|p| p.into_inner()).take();
                match parts {
                    Some(h) => Err(fail(StreamError::Thread(e), h.board, h.events, h.spool)),
                    // Unreachable: the closure that would take them never ran.
                    None => panic!("sender thread failed to start yet took the board"),
                }
            }
        }
    }

    /// Switch to a new agreed description at the next packet boundary: same
    /// SSRC, sequence numbers and timestamps continue, the first packet
    /// under the new `cfg` has the marker bit (docs/protocol.md 3.4). Give
    /// it a new `cfg` when anything changed (`next_config_after`).
    pub fn reconfigure(&mut self, description: StreamDescription) -> Result<(), StreamError> {
        if description.clock_rate != self.description.clock_rate {
            return Err(StreamError::ClockChanged {
                current: self.description.clock_rate,
                new: description.clock_rate,
            });
        }
        let layout = Layout::new(description.clone(), &self.channels, &self.inputs)?;
        self.collect_retired();
        self.send(Command::Stage(Box::new(layout)))?;
        self.description = description;
        Ok(())
    }

    /// Send to a new address (a re-INVITE moved the collector).
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: SocketAddr) -> Result<(), StreamError> {
        *self.peer_rtcp.lock().unwrap_or_else(|p| p.into_inner()) = Some(rtcp);
        self.send(Command::Remote { rtp, rtcp })?;
        self.remote_rtp = Some(rtp);
        Ok(())
    }

    /// Another handle on the RTP socket (non-blocking): packets of the
    /// session's other streams (backfill, docs/protocol.md 11.6) leave
    /// from the same port, to [`Self::remote_rtp`].
    pub fn rtp_socket(&self) -> std::io::Result<UdpSocket> {
        self.rtp.try_clone()
    }

    /// Where the attached session's RTP goes.
    pub fn remote_rtp(&self) -> Option<SocketAddr> {
        self.remote_rtp
    }

    /// Send to a session from the next sampling instant (or, attached
    /// already, end that stream and send under these terms): `session`'s
    /// peer, description (same clock rate), keys and recovery. The SSRC,
    /// sequence numbers and timestamps continue; the first packet has the
    /// marker bit.
    pub fn attach(&mut self, session: SessionPlan) -> Result<(), StreamError> {
        if session.description.clock_rate != self.description.clock_rate {
            return Err(StreamError::ClockChanged {
                current: self.description.clock_rate,
                new: session.description.clock_rate,
            });
        }
        let layout = Layout::new(session.description.clone(), &self.channels, &self.inputs)?;
        let mut ids = IdGenerator::from_entropy();
        let (terms, srtcp_in) = session_terms(
            session.srtp.as_ref(),
            &session.recovery,
            &session.description,
            &mut ids,
        )
        .map_err(StreamError::Srtp)?;
        self.collect_retired();
        // A BYE of an earlier session says nothing about this one.
        self.stats
            .peer_bye
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // The receiver checks under the new terms before the first packet.
        *self.srtcp.lock().unwrap_or_else(|p| p.into_inner()) = srtcp_in;
        *self.peer_rtcp.lock().unwrap_or_else(|p| p.into_inner()) = Some(session.remote_rtcp);
        self.send(Command::Attach {
            rtp: session.remote_rtp,
            rtcp: session.remote_rtcp,
            terms: Box::new(terms),
            layout: Box::new(layout),
        })?;
        self.description = session.description;
        self.srtp = session.srtp;
        self.recovery = session.recovery;
        self.remote_rtp = Some(session.remote_rtp);
        Ok(())
    }

    /// End the session's stream (partial packet, SR + SDES + BYE) and go on
    /// sampling and spooling under `idle` (same clock rate).
    pub fn detach(&mut self, idle: StreamDescription) -> Result<(), StreamError> {
        let layout = Layout::new(idle.clone(), &self.channels, &self.inputs)?;
        self.collect_retired();
        *self.peer_rtcp.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.send(Command::Detach {
            spent: Box::default(),
            layout: Box::new(layout),
        })?;
        self.detaches_asked += 1;
        *self.srtcp.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.description = idle;
        self.remote_rtp = None;
        self.srtp = None;
        self.recovery = LiveRecovery::default();
        Ok(())
    }

    /// The sender thread has carried out every detach asked of it: the
    /// stream's last packet and its RTCP BYE are out.
    pub fn detached(&self) -> bool {
        self.stats
            .detaches
            .load(std::sync::atomic::Ordering::Acquire)
            >= self.detaches_asked
    }

    /// The acknowledgement and repair the stream was started with.
    pub fn recovery(&self) -> &LiveRecovery {
        &self.recovery
    }

    /// docs/protocol.md 11.7's L: the sample instant of the first live
    /// sample (ns since the Unix epoch), once it is sampled. Backfill
    /// covers what lies before it.
    pub fn first_spooled_ns(&self) -> Option<u64> {
        Some(
            self.stats
                .first_spooled_ns
                .load(std::sync::atomic::Ordering::Acquire),
        )
        .filter(|&t| t != 0)
    }

    pub fn first_live_ns(&self) -> Option<u64> {
        self.stats.snapshot().first_live_ns
    }

    /// The SRTP keys the stream was started with.
    pub fn srtp_keys(&self) -> Option<&SrtpKeys> {
        self.srtp.as_ref()
    }

    /// The description last given (applied at the next packet boundary).
    pub fn description(&self) -> &StreamDescription {
        &self.description
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// L of the session the next [`Self::attach`] starts (take it before).
    pub fn next_live_start(&self) -> LiveStart {
        LiveStart {
            attaches_before: self
                .stats
                .attaches
                .load(std::sync::atomic::Ordering::Acquire),
            shared: self.stats.clone(),
        }
    }

    /// The collector's committed mark as it arrives (SSBF, verified).
    pub fn committed_mark(&self) -> CommittedMark {
        CommittedMark(self.stats.clone())
    }

    /// The figures so far (lock-free reads), over the sender's life: every
    /// session it was attached to (`first_live_ns`, `peer_bye` and `peer_reports` are the
    /// current session's).
    pub fn stats(&self) -> StreamStats {
        self.stats.snapshot()
    }

    /// Send the partial packet and SR + SDES + BYE, end both threads and
    /// hand the parts back. Within 50 ms: a sender that cannot be unparked
    /// naps at most that long (`MAX_NAP`).
    pub fn stop(mut self) -> Result<Stopped, StreamError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<Stopped, StreamError> {
        let thread = self.thread.take().ok_or(StreamError::Died)?;
        // The ring holds COMMANDS; the thread drains it at every wake.
        for _ in 0..100 {
            match self.commands.push(Command::Stop) {
                Ok(()) => break,
                Err(_) => {
                    thread.thread().unpark();
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        thread.thread().unpark();
        let end = thread.join().ok().flatten();
        let rtcp = self.receiver.take().and_then(RtcpReceiver::stop);
        self.collect_retired();
        let (Some(end), Some(rtcp)) = (end, rtcp) else {
            return Err(StreamError::Died);
        };
        Ok(Stopped {
            board: end.board,
            events: end.events,
            spool: end.spool,
            stats: self.stats.snapshot(),
            rtp: end.rtp,
            rtcp,
            ids: end.ids,
            ssrc: end.ssrc,
            next_sequence: end.next_sequence,
            timestamp_base: end.timestamp_base,
            clock_rate: end.clock_rate,
            epoch: end.epoch,
        })
    }

    fn send(&mut self, cmd: Command) -> Result<(), StreamError> {
        self.commands.push(cmd).map_err(|_| StreamError::Busy)?;
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
        Ok(())
    }

    /// Free the descriptions the thread replaced (here, not there).
    fn collect_retired(&mut self) {
        while self.retired.pop().is_ok() {}
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.shutdown();
        }
    }
}

/// Non-blocking sockets, and a second handle on the RTCP one for sending
/// (the receiver thread reads the original).
fn sockets(plan: &StreamPlan) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let rtp = plan.rtp.try_clone()?;
    rtp.set_nonblocking(true)?;
    plan.rtcp.set_nonblocking(true)?;
    Ok((rtp, plan.rtcp.try_clone()?))
}

#[cfg(test)]
mod tests;
