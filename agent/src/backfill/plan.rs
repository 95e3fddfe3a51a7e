//! What the backfill core is given and gives back besides packets: the
//! session's agreed plan, the spool's answers, the figures.

use crate::spool::Record;
use sipsensor_protocol::{AgreedRecovery, StreamDescription};
use std::time::Duration;

/// The ack timeout when RTX was not agreed: 2 × the default `rtx-time`.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(6);

/// What a session agreed for backfill, and where the live stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillPlan {
    /// The backfill stream's SSRC (this agent's second `a=ssrc`).
    pub ssrc: u32,
    /// The live stream's SSRC: the media SSRC of the SSBF messages.
    pub live_ssrc: u32,
    pub payload_type: u8,
    /// The sample instant's `a=extmap` ID.
    pub instant_id: u8,
    /// The collector's mark M from its SDP (0: it holds nothing).
    pub mark: u64,
    /// The first live instant L: backfill covers (M, L).
    pub live_start: u64,
    /// Bytes per second, RTP headers included: the lower of the config's
    /// and the collector's `max-rate`.
    pub max_rate: u64,
    /// 2 × `rtx-time` (11.7 step 6).
    pub ack_timeout: Duration,
    /// The current description: backfill packets are encoded under it.
    pub description: StreamDescription,
    /// The GPIO inputs in the config's order (a spooled edge's `input`).
    pub inputs: Vec<String>,
}

impl BackfillPlan {
    /// The plan for a session whose SDP agreed backfill and the sample
    /// instant; `None` when it did not (then nothing of this runs).
    pub fn from_agreed(
        agreed: &AgreedRecovery,
        ssrc: u32,
        live_ssrc: u32,
        live_start: u64,
        config_rate: u64,
        description: StreamDescription,
        inputs: Vec<String>,
    ) -> Option<BackfillPlan> {
        let backfill = agreed.backfill.as_ref()?;
        let instant_id = agreed.instant_id?;
        let max_rate = backfill
            .max_rate
            .map_or(config_rate, |r| r.min(config_rate));
        let ack_timeout = agreed
            .rtx
            .as_ref()
            .map_or(DEFAULT_ACK_TIMEOUT, |r| r.rtx_time.saturating_mul(2));
        Some(BackfillPlan {
            ssrc,
            live_ssrc,
            payload_type: backfill.payload_type,
            instant_id,
            mark: backfill.mark,
            live_start,
            max_rate,
            ack_timeout,
            description,
            inputs,
        })
    }
}

/// What the spool holds besides the records, read with them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolState {
    pub oldest: Option<i64>,
    pub dropped_through: Option<i64>,
}

/// The spool's answer to a read request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadChunk {
    /// Records after the request's instant, in instant order.
    pub records: Vec<Record>,
    /// The spool has nothing more before the live start.
    pub complete: bool,
    pub state: SpoolState,
}

/// The figures of one backfill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillStats {
    pub packets: u64,
    /// RTP bytes (headers included, before SRTP).
    pub bytes: u64,
    /// Times it went back to the mark after the ack timeout (a lost
    /// backfill packet, or, past the live start, a live one given up on).
    pub restarts: u64,
    /// Spooled runs and edges not sent: their layout is unknown, or the
    /// current description carries none of their channels or inputs.
    pub unplaceable: u64,
    /// Marks ignored (backwards) or clamped (beyond what was sent).
    pub odd_marks: u64,
}
