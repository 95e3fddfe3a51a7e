//! [`Media`] on the real-time [`Streamer`]: the session's start, update and
//! stop become a sender thread's life, and the board, events and sockets
//! come back after every stream for the next one.

use std::net::UdpSocket;
use std::time::Instant;

use sipsensor_protocol::{Agreed, IdGenerator, RtpSender};

use super::run::{Media, SenderError, Sockets};
use crate::config::{Config, RealtimeConfig};
use crate::handoff::{Board, EventReceiver};
use crate::spool::SpoolFeed;
use crate::status::StatusHub;
use crate::stream::{StreamOptions, StreamPlan, Streamer};

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
}

impl StreamerMedia {
    /// `ssrc` is the one our offers announce; `spool` (when on) gets every
    /// sample run and edge of every stream.
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
    ) -> Self {
        let mut ids = IdGenerator::from_entropy();
        let sender = RtpSender::with_start(ssrc, ids.u32() as u16, ids.u32());
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
        }
    }
}

impl Media for StreamerMedia {
    fn start(&mut self, agreed: &Agreed) -> Result<(), SenderError> {
        self.stop();
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

    fn update(&mut self, agreed: &Agreed) -> Result<(), SenderError> {
        let Some(streamer) = self.running.as_mut() else {
            return self.start(agreed);
        };
        if streamer.srtp_keys() != agreed.srtp.as_ref() {
            // New keys (each offer/answer makes fresh ones, RFC 4568 7.1):
            // a new stream under them, continuing the SSRC, sequence and
            // timestamps (`stop` keeps them for `start`).
            return self.start(agreed);
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

    fn peer_reports(&self) -> u64 {
        self.running.as_ref().map_or(0, |s| s.stats().peer_reports)
    }
}
