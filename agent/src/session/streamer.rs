//! [`Media`] on the real-time [`Streamer`]: the session's start, update and
//! stop become a sender thread's life, and the board, events and sockets
//! come back after every stream for the next one.

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sipsensor_protocol::{
    Agreed, AgreedBackfill, AgreedRecovery, IdGenerator, RecoverySupport, RtpSender,
};

use super::media::{RecoverySsrcs, recovery_support};
use super::run::{Media, SenderError, Sockets};
use crate::config::{Config, RealtimeConfig};
use crate::handoff::{Board, EventReceiver};
use crate::spool::{Spool, SpoolFeed};
use crate::status::StatusHub;
use crate::stream::{LiveRecovery, RtxPlan, StreamOptions, StreamPlan, Streamer};

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

/// What a stream needs that outlives it.
#[derive(Debug)]
struct Parts {
    board: Board,
    events: EventReceiver,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    ids: IdGenerator,
    /// The SSRC, sequence and timestamp to continue with (the SSRC is in
    /// our SDP's `a=ssrc`).
    sender: RtpSender,
    spool: Option<SpoolFeed>,
}

#[derive(Debug)]
pub struct StreamerMedia {
    parts: Option<Parts>,
    running: Option<Streamer>,
    /// Kept so a failed start does not lose the ports the SDP named.
    spare: Option<(UdpSocket, UdpSocket)>,
    realtime: RealtimeConfig,
    hub: StatusHub,
    cname: String,
    channels: Vec<String>,
    inputs: Vec<String>,
    ssrcs: RecoverySsrcs,
    /// The spool, for its oldest instant; `None` when it is off (no
    /// backfill is offered then).
    spool_view: Option<Arc<Mutex<Spool>>>,
    /// What the running (or last) session agreed beyond the live stream.
    plan: Option<RecoveryPlan>,
}

impl StreamerMedia {
    /// `ssrc` is the one our offers announce; `spool` (when on) gets every
    /// sample run and edge of every stream, and `spool_view` states its
    /// oldest instant in our SDP.
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
        Self {
            parts: Some(Parts {
                board,
                events,
                rtp: sockets.rtp,
                rtcp: sockets.rtcp,
                ids,
                sender,
                spool,
            }),
            running: None,
            spare: None,
            realtime: config.realtime,
            hub,
            cname,
            channels: config
                .stream
                .channels
                .iter()
                .map(|c| c.spec.name.clone())
                .collect(),
            inputs: config.gpio.inputs.iter().map(|i| i.name.clone()).collect(),
            ssrcs: RecoverySsrcs { rtx, backfill },
            spool_view,
            plan: None,
        }
    }

    /// What the current session agreed for backfill and acknowledgement;
    /// `None` while no stream runs.
    pub fn recovery_plan(&self) -> Option<&RecoveryPlan> {
        self.plan.as_ref().filter(|_| self.running.is_some())
    }

    /// The running stream (its stats, `first_live_ns`).
    pub fn streamer(&self) -> Option<&Streamer> {
        self.running.as_ref()
    }
}

impl Media for StreamerMedia {
    fn recovery(&self) -> RecoverySupport {
        let oldest = self
            .spool_view
            .as_ref()
            .map(|spool| spool.lock().unwrap_or_else(|p| p.into_inner()).oldest());
        recovery_support(self.ssrcs, oldest)
    }

    fn start(&mut self, agreed: &Agreed, recovery: &AgreedRecovery) -> Result<(), SenderError> {
        self.stop();
        self.plan = Some(RecoveryPlan {
            agreed: recovery.clone(),
            backfill_ssrc: self.ssrcs.backfill,
            rtx_ssrc: self.ssrcs.rtx,
        });
        let Some(remote) = agreed.remote else {
            // On hold (RFC 3264 8.4): nothing to send until a new offer.
            return Ok(());
        };
        let Some(parts) = self.parts.take() else {
            return Err(SenderError::PartsLost);
        };
        self.spare = match (parts.rtp.try_clone(), parts.rtcp.try_clone()) {
            (Ok(a), Ok(b)) => Some((a, b)),
            _ => None,
        };
        let plan = StreamPlan {
            rtp: parts.rtp,
            rtcp: parts.rtcp,
            remote_rtp: remote.rtp,
            remote_rtcp: remote.rtcp,
            description: agreed.description.clone(),
            sender: parts.sender,
            ids: parts.ids,
            cname: self.cname.clone(),
            channels: self.channels.clone(),
            inputs: self.inputs.clone(),
            options: StreamOptions::default(),
            srtp: agreed.srtp.clone(),
            spool: parts.spool,
            recovery: live_recovery(recovery, self.ssrcs),
        };
        match Streamer::start(
            plan,
            parts.board,
            parts.events,
            &self.realtime,
            self.hub.clone(),
        ) {
            Ok(streamer) => {
                self.running = Some(streamer);
                Ok(())
            }
            Err(failed) => {
                let failed = *failed;
                if let Some((rtp, rtcp)) = self.spare.take() {
                    let mut ids = IdGenerator::from_entropy();
                    let sender = RtpSender::new(&mut ids);
                    self.parts = Some(Parts {
                        board: failed.board,
                        events: failed.events,
                        rtp,
                        rtcp,
                        ids,
                        sender,
                        spool: failed.spool,
                    });
                }
                Err(failed.error.into())
            }
        }
    }

    fn update(&mut self, agreed: &Agreed, recovery: &AgreedRecovery) -> Result<(), SenderError> {
        let Some(streamer) = self.running.as_mut() else {
            return self.start(agreed, recovery);
        };
        if streamer.srtp_keys() != agreed.srtp.as_ref()
            || streamer.recovery() != &live_recovery(recovery, self.ssrcs)
        {
            // New keys (each offer/answer makes fresh ones, RFC 4568 7.1)
            // or other stamping or repair: a new stream under them,
            // continuing the SSRC, sequence and timestamps (`stop` keeps
            // them for `start`).
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
        streamer.set_remote(remote.rtp, remote.rtcp)?;
        if streamer.description() != &agreed.description {
            streamer.reconfigure(agreed.description.clone())?;
        }
        Ok(())
    }

    fn stop(&mut self) {
        let Some(streamer) = self.running.take() else {
            return;
        };
        match streamer.stop() {
            Ok(stopped) => {
                let sender = stopped.resume_sender(Instant::now());
                self.parts = Some(Parts {
                    board: stopped.board,
                    events: stopped.events,
                    rtp: stopped.rtp,
                    rtcp: stopped.rtcp,
                    ids: stopped.ids,
                    sender,
                    spool: stopped.spool,
                });
            }
            Err(e) => {
                tracing::error!("the sender did not stop cleanly: {e}");
                self.hub.error("stream", e.to_string());
            }
        }
        self.spare = None;
    }
}
