//! The core with and without a session: from the agent's start the board
//! is sampled on one grid of instants and every run and edge spooled;
//! packets go out only while a session is attached. A session starts
//! live at the next instant, so the spool holds everything before it
//! (the backfill, docs/protocol.md 11.7) and the live stream everything
//! from it, with no instant in both or neither.

use super::{Core, Sink, rtcp_config};
use sipsensor_protocol::{RetransmitHistory, RtcpScheduler};
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

impl Core {
    /// Whether a session is attached.
    pub fn attached(&self) -> bool {
        self.attached
    }

    /// Start (or continue, under new terms) sending to a session. From
    /// detached: the instants sampled so far are spooled as they are, the
    /// first live packet starts at the next instant with the marker bit,
    /// and that instant is the stats' `first_live_ns` (11.7's L). Returns
    /// the RTX history it replaces, to be freed elsewhere.
    pub fn attach(
        &mut self,
        instant_id: Option<u8>,
        history: Option<RetransmitHistory>,
        now: Instant,
    ) -> Option<RetransmitHistory> {
        if !self.attached {
            let channels = self
                .layout
                .desc
                .samples
                .as_ref()
                .map_or(0, |s| s.channels.len());
            let n = (self.filled * channels).min(self.layout.values.len());
            self.spool_samples(n, channels);
            self.filled = 0;
            self.packet_tick = self.next_tick;
            self.marker = true;
            self.stats.first_live_ns.store(0, Ordering::Relaxed);
            // The heartbeat counts this session's peer (docs/protocol.md 6.1).
            self.stats.peer_reports.store(0, Ordering::Relaxed);
            // After the clear: a `LiveStart` seeing the new count reads
            // this session's L or nothing.
            self.stats.attaches.fetch_add(1, Ordering::Release);
            // A new session's RTCP: the first report soon (RFC 3550 6.2).
            self.rtcp = RtcpScheduler::new(
                rtcp_config(&self.layout.desc, &self.options, true),
                true,
                now,
                &mut self.ids,
            );
            self.sr_offset = None;
            let inputs = self.layout.input_count();
            let states = self.layout.remap(self.levels);
            if let Some(outbox) = self.outbox.as_mut() {
                // Announce the levels as they are now (docs/protocol.md 5.5).
                outbox.reconfigure(inputs, states, now);
            }
            self.attached = true;
        }
        self.instant_id = instant_id;
        self.rtx_due = None;
        self.rtx_unavailable_seen = history.as_ref().map_or(0, RetransmitHistory::unavailable);
        std::mem::replace(&mut self.history, history)
    }

    /// End the session's stream (the partial packet, SR + SDES + BYE) and
    /// go on sampling and spooling. Returns the RTX history, to be freed
    /// elsewhere.
    pub fn detach(
        &mut self,
        now: Instant,
        wall: SystemTime,
        sink: &mut impl Sink,
    ) -> Option<RetransmitHistory> {
        if !self.attached {
            self.stats.detaches.fetch_add(1, Ordering::Release);
            return None;
        }
        self.finish(now, wall, sink);
        self.attached = false;
        self.stats.detaches.fetch_add(1, Ordering::Release);
        self.rtx_due = None;
        self.instant_id = None;
        self.history.take()
    }
}
