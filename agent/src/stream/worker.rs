//! The real-time thread: wake, run the core, sleep until its next
//! deadline. Commands (a new description, a new destination, stop) come in
//! through a wait-free ring; replaced descriptions go back through another
//! so they are freed on the caller's thread, not here.

use super::engine::{Core, CoreParts, Sink};
use super::layout::Layout;
use super::rt::{self, MonoClock};
use super::stats::Shared;
use crate::config::RealtimeConfig;
use crate::handoff::{Board, EventReceiver};
use crate::spool::SpoolFeed;
use sipsensor_protocol::{IdGenerator, RetransmitHistory, SrtpContext};
use sipsensor_runtime::realtime::MemoryLock;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Time between the thread being ready and tick 0, so the first instant
/// is not already late.
const LEAD: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub(crate) enum Command {
    Stage(Box<Layout>),
    Remote {
        rtp: SocketAddr,
        rtcp: SocketAddr,
    },
    /// Send to a session (`Core::attach`) under these terms, with this
    /// description from the next packet boundary.
    Attach {
        rtp: SocketAddr,
        rtcp: SocketAddr,
        terms: Box<SessionTerms>,
        layout: Box<Layout>,
    },
    /// End the session's stream, keep sampling under `layout`; `spent`
    /// (empty) comes back through the retired ring with the session's
    /// contexts and history, so they are freed off this thread.
    Detach {
        spent: Box<SessionTerms>,
        layout: Box<Layout>,
    },
    Stop,
}

/// What one session adds to the sampling: its SRTP contexts, the sample
/// instant's extmap ID and the RTX history.
#[derive(Debug, Default)]
pub(crate) struct SessionTerms {
    pub srtp: Option<Protector>,
    pub rtx_srtp: Option<Protector>,
    pub instant_id: Option<u8>,
    pub history: Option<RetransmitHistory>,
}

/// Things the thread replaced, handed back to be freed elsewhere.
#[derive(Debug)]
#[expect(dead_code, reason = "held only to be dropped on the caller's thread")]
pub(crate) enum Retired {
    Layout(Box<Layout>),
    Terms(Box<SessionTerms>),
}

/// The sockets, sending without blocking.
#[derive(Debug)]
pub(crate) struct Sockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    /// SRTP/SRTCP when negotiated: every packet is protected before it
    /// leaves (RFC 3711 3.3, 3.4).
    pub srtp: Option<Protector>,
    /// The RTX SSRC's own context under the same master key, with its own
    /// rollover counter (docs/protocol.md 11.8, RFC 3711 3.2.3).
    pub rtx_srtp: Option<Protector>,
}

/// This side's outbound SRTP context and the buffer protected packets are
/// written to (sized up front so sending does not grow it).
#[derive(Debug)]
pub(crate) struct Protector {
    pub context: SrtpContext,
    pub buf: Vec<u8>,
}

impl Protector {
    /// Room for the largest datagram plus the SRTCP trailer.
    const CAPACITY: usize = 2048;

    pub fn new(context: SrtpContext) -> Self {
        Protector {
            context,
            buf: Vec::with_capacity(Self::CAPACITY),
        }
    }
}

impl Sink for Sockets {
    fn rtp(&mut self, packet: &[u8]) -> bool {
        match &mut self.srtp {
            None => self.rtp.send_to(packet, self.remote_rtp).is_ok(),
            Some(p) => {
                p.context.protect_rtp(packet, &mut p.buf).is_ok()
                    && self.rtp.send_to(&p.buf, self.remote_rtp).is_ok()
            }
        }
    }

    fn rtx(&mut self, packet: &[u8]) -> bool {
        match &mut self.rtx_srtp {
            None => self.rtp.send_to(packet, self.remote_rtp).is_ok(),
            Some(p) => {
                p.context.protect_rtp(packet, &mut p.buf).is_ok()
                    && self.rtp.send_to(&p.buf, self.remote_rtp).is_ok()
            }
        }
    }

    fn rtcp(&mut self, packet: &[u8]) -> bool {
        match &mut self.srtp {
            None => self.rtcp.send_to(packet, self.remote_rtcp).is_ok(),
            Some(p) => {
                p.context.protect_rtcp(packet, &mut p.buf).is_ok()
                    && self.rtcp.send_to(&p.buf, self.remote_rtcp).is_ok()
            }
        }
    }
}

/// The board, events and spool feed, parked where `Streamer::start` can
/// take them back if the thread never starts.
pub(crate) type Handover = Arc<Mutex<Option<Handed>>>;

#[derive(Debug)]
pub(crate) struct Handed {
    pub board: Board,
    pub events: EventReceiver,
    pub spool: Option<SpoolFeed>,
}

/// Everything the thread needs.
#[derive(Debug)]
pub(crate) struct Job {
    pub layout: Box<Layout>,
    pub parts: CoreParts,
    pub handover: Handover,
    pub sockets: Sockets,
    pub commands: rtrb::Consumer<Command>,
    pub retired: rtrb::Producer<Retired>,
    pub rtcp_sizes: rtrb::Consumer<u16>,
    /// Sequence numbers the peer NACKed (from the RTCP receiver).
    pub nacks: rtrb::Consumer<u16>,
    pub realtime: RealtimeConfig,
    pub memory: MemoryLock,
    pub fine_sleep: Duration,
}

/// What the thread hands back when it stops.
#[derive(Debug)]
pub(crate) struct End {
    pub board: Board,
    pub events: EventReceiver,
    pub rtp: UdpSocket,
    pub ssrc: u32,
    pub next_sequence: u16,
    /// RTP timestamp of tick 0.
    pub timestamp_base: u32,
    pub clock_rate: u32,
    pub epoch: Instant,
    pub ids: IdGenerator,
    pub spool: Option<SpoolFeed>,
}

pub(crate) fn run(mut job: Job) -> Option<End> {
    let stats: Arc<Shared> = job.parts.stats.clone();
    let taken = job
        .handover
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let Handed {
        mut board,
        mut events,
        spool,
    } = taken?;
    job.parts.spool = spool;
    let outcome = rt::enter(&job.realtime, job.memory);
    stats.realtime.store(outcome.fifo, Ordering::Relaxed);
    stats.memory_locked.store(outcome.locked, Ordering::Relaxed);
    events.wake().register(std::thread::current());
    let clock = MonoClock::new();
    let clock_rate = job.layout.desc.clock_rate;
    let mut core = Core::new(job.layout, job.parts, Instant::now() + LEAD, &mut events);
    let sockets = &mut job.sockets;
    loop {
        while let Ok(cmd) = job.commands.pop() {
            match cmd {
                Command::Stage(l) => {
                    if let Some(old) = core.stage(l) {
                        retire(&mut job.retired, Retired::Layout(old));
                    }
                }
                Command::Remote { rtp, rtcp } => {
                    sockets.remote_rtp = rtp;
                    sockets.remote_rtcp = rtcp;
                }
                Command::Attach {
                    rtp,
                    rtcp,
                    mut terms,
                    layout,
                } => {
                    if core.attached() {
                        // The partial packet leaves under the old terms.
                        core.detach(Instant::now(), SystemTime::now(), sockets);
                    }
                    sockets.remote_rtp = rtp;
                    sockets.remote_rtcp = rtcp;
                    std::mem::swap(&mut sockets.srtp, &mut terms.srtp);
                    std::mem::swap(&mut sockets.rtx_srtp, &mut terms.rtx_srtp);
                    let history = terms.history.take();
                    terms.history = core.attach(terms.instant_id, history, Instant::now());
                    if let Some(old) = core.stage(layout) {
                        retire(&mut job.retired, Retired::Layout(old));
                    }
                    retire(&mut job.retired, Retired::Terms(terms));
                }
                Command::Detach { mut spent, layout } => {
                    spent.history = core.detach(Instant::now(), SystemTime::now(), sockets);
                    spent.srtp = sockets.srtp.take();
                    spent.rtx_srtp = sockets.rtx_srtp.take();
                    if let Some(old) = core.stage(layout) {
                        retire(&mut job.retired, Retired::Layout(old));
                    }
                    retire(&mut job.retired, Retired::Terms(spent));
                }
                Command::Stop => {
                    core.finish(Instant::now(), SystemTime::now(), sockets);
                    let rtp = core.rtp().clone();
                    let epoch = core.epoch();
                    let (ids, spool) = core.into_parts();
                    return Some(End {
                        board,
                        events,
                        rtp: job.sockets.rtp,
                        ssrc: rtp.ssrc(),
                        next_sequence: rtp.next_sequence(),
                        timestamp_base: rtp.timestamp(0),
                        clock_rate,
                        epoch,
                        ids,
                        spool,
                    });
                }
            }
        }
        while let Ok(size) = job.rtcp_sizes.pop() {
            core.rtcp_received(usize::from(size));
        }
        if !job.nacks.is_empty() {
            let nacks = &mut job.nacks;
            core.on_nack(std::iter::from_fn(|| nacks.pop().ok()), Instant::now());
        }
        core.handle(
            Instant::now(),
            SystemTime::now(),
            &mut board,
            &mut events,
            sockets,
        );
        if let Some(old) = core.take_retired() {
            retire(&mut job.retired, Retired::Layout(old));
        }
        rt::wait(
            &clock,
            core.poll_timeout(),
            core.has_events(),
            job.fine_sleep,
        );
    }
}

/// Hand a replaced description back for freeing. The ring has room for
/// every command in flight, so dropping it here (a free on this thread)
/// is only a fallback.
fn retire(ring: &mut rtrb::Producer<Retired>, retired: Retired) {
    if let Err(rtrb::PushError::Full(r)) = ring.push(retired) {
        drop(r);
    }
}
