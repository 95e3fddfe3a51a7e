//! [`Media`] on the real-time [`Streamer`]: the sender thread runs from
//! the agent's start, sampling the board and spooling everything; a
//! session's start, update and stop attach it to the collector, change
//! what it sends and detach it again (docs/protocol.md 11.7: an outage is
//! no hole in the spool).

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use sipsensor_protocol::{
    Agreed, AgreedBackfill, AgreedRecovery, IdGenerator, RecoverySupport, RtpSender,
    StreamDescription,
};

use super::media::{self, RecoverySsrcs, recovery_support};
use super::run::{Media, SenderError, Sockets};
use crate::backfill::{BackfillPlan, BackfillShell, ShellPlan};
use crate::config::Config;
use crate::handoff::{Board, EventReceiver};
use crate::spool::{Spool, SpoolFeed};
use crate::status::StatusHub;
use crate::stream::{
    LiveRecovery, LiveStart, RtxPlan, SessionPlan, StreamOptions, StreamPlan, Streamer,
};

/// What a session agreed of docs/protocol.md 11 beyond the live stream,
/// for the backfill sender (which runs beside the live stream on the same
/// RTP socket, under the same SRTP master key, 11.6, 11.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// Everything the exchange agreed, the peer's statements included.
    pub agreed: AgreedRecovery,
    /// The backfill SSRC our SDP announced (`a=ssrc`, 11.1).
    pub backfill_ssrc: u32,
    /// The RTX SSRC our SDP announced (`a=ssrc-group:FID`).
    pub rtx_ssrc: u32,
}

impl RecoveryPlan {
    /// The backfill terms when backfill (and so the acknowledgement) was
    /// agreed: payload type, the collector's `mark` and `max-rate`.
    pub fn backfill(&self) -> Option<&AgreedBackfill> {
        self.agreed.backfill.as_ref()
    }
}

/// The live stream's part of what was agreed: the sample instant, and
/// RTX from our own SSRC when NACK + RTX is on for at least one format.
fn live_recovery(agreed: &AgreedRecovery, ssrcs: RecoverySsrcs) -> LiveRecovery {
    LiveRecovery {
        instant_id: agreed.instant_id,
        rtx: agreed
            .rtx
            .as_ref()
            .filter(|r| !r.payload_types.is_empty())
            .map(|r| RtxPlan {
                ssrc: ssrcs.rtx,
                payload_types: r.payload_types.clone(),
                rtx_time: r.rtx_time,
            }),
    }
}

#[derive(Debug)]
pub struct StreamerMedia {
    /// Runs from construction; `None` only when it could not start.
    streamer: Option<Streamer>,
    /// What is sampled while no session is up: the configured stream at
    /// full rate.
    idle: StreamDescription,
    attached: bool,
    hub: StatusHub,
    ssrcs: RecoverySsrcs,
    /// The spool, for its oldest instant; `None` when it is off (no
    /// backfill is offered then).
    spool_view: Option<Arc<Mutex<Spool>>>,
    /// What the running (or last) session agreed beyond the live stream.
    plan: Option<RecoveryPlan>,
    /// The backfill of the attached session (docs/protocol.md 11.6), when
    /// it agreed backfill.
    backfill: Option<BackfillShell>,
    /// What the backfill thread needs that the live stream does not hand
    /// out: a sending handle on the RTCP port, and the config's parts.
    backfill_parts: BackfillParts,
}

/// L (docs/protocol.md 11.7) for the backfill thread: known, or the first
/// live instant of the session being attached.
enum LiveAt {
    Known(u64),
    Next(LiveStart),
}

#[derive(Debug)]
struct BackfillParts {
    rtcp: Option<UdpSocket>,
    cname: String,
    inputs: Vec<String>,
    rate: u64,
}

impl StreamerMedia {
    /// Starts sampling and spooling at once (`spool`, when on, gets every
    /// sample run and edge from now on). `ssrc` is the one our offers
    /// announce; `spool_view` states the spool's oldest instant in our SDP.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        board: Board,
        events: EventReceiver,
        sockets: Sockets,
        ssrc: u32,
        cname: String,
        hub: StatusHub,
        spool: Option<SpoolFeed>,
        spool_view: Option<Arc<Mutex<Spool>>>,
    ) -> Self {
        let mut ids = IdGenerator::from_entropy();
        let sender = RtpSender::with_start(ssrc, ids.u32() as u16, ids.u32());
        // RFC 3550 8.1: SSRCs of one sender differ; a clash is redrawn.
        let mut fresh = |taken: &[u32]| loop {
            let s = ids.u32();
            if !taken.contains(&s) {
                break s;
            }
        };
        let rtx = fresh(&[ssrc]);
        let backfill = fresh(&[ssrc, rtx]);
        let idle = media::capabilities(config);
        let backfill_parts = BackfillParts {
            rtcp: sockets.rtcp.try_clone().ok(),
            cname: cname.clone(),
            inputs: config.gpio.inputs.iter().map(|i| i.name.clone()).collect(),
            rate: config
                .spool
                .as_ref()
                .map_or(crate::config::raw::DEFAULT_BACKFILL_RATE, |s| {
                    s.backfill_rate
                }),
        };
        let streamer = idle.as_ref().map_err(ToString::to_string).and_then(|idle| {
            // Nothing is sent before `attach`: the address is a placeholder.
            let nowhere = SocketAddr::from(([127, 0, 0, 1], 9));
            let plan = StreamPlan {
                rtp: sockets.rtp,
                rtcp: sockets.rtcp,
                remote_rtp: nowhere,
                remote_rtcp: nowhere,
                description: idle.clone(),
                sender,
                ids,
                cname,
                channels: config
                    .stream
                    .channels
                    .iter()
                    .map(|c| c.spec.name.clone())
                    .collect(),
                inputs: config.gpio.inputs.iter().map(|i| i.name.clone()).collect(),
                options: StreamOptions::default(),
                srtp: None,
                spool,
                recovery: LiveRecovery::default(),
            };
            Streamer::start_detached(plan, board, events, &config.realtime, hub.clone())
                .map_err(|failed| failed.error.to_string())
        });
        let streamer = match streamer {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("cannot start the sender: {e}");
                hub.error("stream", e);
                None
            }
        };
        Self {
            streamer,
            idle: idle.unwrap_or(StreamDescription {
                clock_rate: config.stream.rate_hz,
                config: 1,
                samples: None,
                events: None,
            }),
            attached: false,
            hub,
            ssrcs: RecoverySsrcs { rtx, backfill },
            spool_view,
            plan: None,
            backfill: None,
            backfill_parts,
        }
    }

    /// Starts the backfill of the session just attached when it agreed
    /// backfill (docs/protocol.md 11.6, 11.7): from the collector's mark
    /// to the first live instant, on its own thread beside the live one.
    fn start_backfill(
        &mut self,
        agreed: &Agreed,
        recovery: &AgreedRecovery,
        remote_rtp: SocketAddr,
        remote_rtcp: SocketAddr,
        live_start: LiveAt,
    ) {
        self.stop_backfill();
        let (Some(streamer), Some(spool)) = (self.streamer.as_ref(), self.spool_view.as_ref())
        else {
            return;
        };
        let Some(plan) = BackfillPlan::from_agreed(
            recovery,
            self.ssrcs.backfill,
            streamer.ssrc(),
            match live_start {
                LiveAt::Known(l) => l,
                LiveAt::Next(_) => 0,
            },
            self.backfill_parts.rate,
            agreed.description.clone(),
            self.backfill_parts.inputs.clone(),
        ) else {
            return;
        };
        let sockets = streamer.rtp_socket().and_then(|rtp| {
            let rtcp = self
                .backfill_parts
                .rtcp
                .as_ref()
                .ok_or_else(|| std::io::Error::other("no RTCP socket"))?
                .try_clone()?;
            Ok((rtp, rtcp))
        });
        let (rtp, rtcp) = match sockets {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot start the backfill: {e}");
                return;
            }
        };
        let started = BackfillShell::start(ShellPlan {
            backfill: plan,
            rtp,
            rtcp,
            remote_rtp,
            remote_rtcp,
            srtp: agreed.srtp.as_ref().map(|k| k.send.clone()),
            cname: self.backfill_parts.cname.clone(),
            spool: spool.clone(),
            mark: streamer.committed_mark(),
            counters: self.hub.counters().clone(),
            first_sequence: IdGenerator::from_entropy().u32() as u16,
            live_start: match live_start {
                LiveAt::Known(_) => None,
                LiveAt::Next(next) => Some(next),
            },
        });
        match started {
            Ok(shell) => self.backfill = Some(shell),
            Err(e) => tracing::error!("cannot start the backfill: {e}"),
        }
    }

    fn stop_backfill(&mut self) {
        if let Some(shell) = self.backfill.take() {
            shell.stop();
        }
    }

    /// What the current session agreed for backfill and acknowledgement;
    /// `None` while no session is attached.
    pub fn recovery_plan(&self) -> Option<&RecoveryPlan> {
        self.plan.as_ref().filter(|_| self.attached)
    }

    /// The sender (its stats, `first_live_ns`: 11.7's L of the session).
    pub fn streamer(&self) -> Option<&Streamer> {
        self.streamer.as_ref()
    }

    /// End the sender thread (after [`Media::stop`]): sampling and
    /// spooling stop.
    pub fn shutdown(&mut self) {
        if let Some(s) = self.streamer.take()
            && let Err(e) = s.stop()
        {
            tracing::error!("the sender did not stop cleanly: {e}");
        }
    }
}

impl Media for StreamerMedia {
    fn recovery(&self) -> RecoverySupport {
        // Samples handed to the spool but not written yet are held too: a
        // session offered right after start with an empty spool file still
        // has them to backfill (e2e s17: without `oldest` the collector's
        // mark passed them and two were lost).
        let fed = self
            .streamer
            .as_ref()
            .and_then(Streamer::first_spooled_ns)
            .and_then(|t| i64::try_from(t).ok());
        let oldest = self.spool_view.as_ref().map(|spool| {
            spool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .oldest()
                .or(fed)
        });
        recovery_support(self.ssrcs, oldest)
    }

    fn start(&mut self, agreed: &Agreed, recovery: &AgreedRecovery) -> Result<(), SenderError> {
        self.plan = Some(RecoveryPlan {
            agreed: recovery.clone(),
            backfill_ssrc: self.ssrcs.backfill,
            rtx_ssrc: self.ssrcs.rtx,
        });
        let Some(remote) = agreed.remote else {
            // On hold (RFC 3264 8.4): nothing to send until a new offer.
            self.stop();
            return Ok(());
        };
        let streamer = self.streamer.as_mut().ok_or(SenderError::PartsLost)?;
        let live_start = streamer.next_live_start();
        streamer.attach(SessionPlan {
            remote_rtp: remote.rtp,
            remote_rtcp: remote.rtcp,
            description: agreed.description.clone(),
            srtp: agreed.srtp.clone(),
            recovery: live_recovery(recovery, self.ssrcs),
        })?;
        self.attached = true;
        self.start_backfill(
            agreed,
            recovery,
            remote.rtp,
            remote.rtcp,
            LiveAt::Next(live_start),
        );
        Ok(())
    }

    fn update(&mut self, agreed: &Agreed, recovery: &AgreedRecovery) -> Result<(), SenderError> {
        let Some(streamer) = self.streamer.as_mut().filter(|_| self.attached) else {
            return self.start(agreed, recovery);
        };
        if streamer.srtp_keys() != agreed.srtp.as_ref()
            || streamer.recovery() != &live_recovery(recovery, self.ssrcs)
        {
            // New keys (each offer/answer makes fresh ones, RFC 4568 7.1)
            // or other stamping or repair: attached again under them, the
            // SSRC, sequence and timestamps continuing.
            return self.start(agreed, recovery);
        }
        if let Some(plan) = self.plan.as_mut() {
            // 11.1 rule 5: a re-INVITE carries the current mark and rates.
            plan.agreed = recovery.clone();
        }
        let Some(remote) = agreed.remote else {
            self.stop();
            return Ok(());
        };
        let moved = streamer.remote_rtp() != Some(remote.rtp);
        streamer.set_remote(remote.rtp, remote.rtcp)?;
        let live = streamer.first_live_ns();
        if streamer.description() != &agreed.description {
            streamer.reconfigure(agreed.description.clone())?;
        }
        if moved
            && self.backfill.is_some()
            && let Some(l) = live
        {
            // The backfill thread sends where it started: it starts again
            // toward the new address, from the collector's mark.
            self.start_backfill(agreed, recovery, remote.rtp, remote.rtcp, LiveAt::Known(l));
        }
        Ok(())
    }

    fn stop(&mut self) {
        self.stop_backfill();
        if !std::mem::take(&mut self.attached) {
            return;
        }
        let Some(streamer) = self.streamer.as_mut() else {
            return;
        };
        if let Err(e) = streamer.detach(self.idle.clone()) {
            tracing::error!("the sender did not stop cleanly: {e}");
            self.hub.error("stream", e.to_string());
        }
    }

    fn stopped(&self) -> bool {
        self.streamer.as_ref().is_none_or(Streamer::detached)
    }

    fn peer_reports(&self) -> u64 {
        self.streamer
            .as_ref()
            .filter(|_| self.attached)
            .map_or(0, |s| s.stats().peer_reports)
    }
}
