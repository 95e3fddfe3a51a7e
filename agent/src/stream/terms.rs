//! What a session adds to the sampling (docs/protocol.md 11): the peer,
//! the SRTP keys, the sample instant and NACK + RTX, and how they become
//! the sender thread's contexts and RTX history.

use super::worker::{Protector, SessionTerms};
use sipsensor_protocol::{
    IdGenerator, MAX_KEPT_PACKET, RetransmitHistory, RtpSender, RtxConfig, SrtpContext, SrtpError,
    SrtpKeys, StreamDescription,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A packet is resent at most once per this, however often it is NACKed
/// (docs/protocol.md 11.5).
const RESEND_HOLDOFF: Duration = Duration::from_millis(100);
/// The least RTX byte rate: a slow stream can still repair a burst of
/// losses within a few retries.
const RTX_MIN_RATE: u64 = 1500;
/// Packets kept for RTX at most (memory: this × 1500 bytes).
const RTX_MAX_KEPT: usize = 2048;

/// What the session agreed of docs/protocol.md 11 for the live stream
/// (`Default`: nothing, the stream of sections 1-9).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveRecovery {
    /// The `a=extmap` ID of the sample instant (11.2): every live packet
    /// carries it.
    pub instant_id: Option<u8>,
    /// NACK + RTX (11.5).
    pub rtx: Option<RtxPlan>,
}

/// The RTX stream (RFC 4588 8.3): its SSRC (our `a=ssrc-group:FID`), the
/// agreed `(apt, rtx pt)` pairs and `rtx-time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtxPlan {
    pub ssrc: u32,
    pub payload_types: Vec<(u8, u8)>,
    pub rtx_time: Duration,
}

impl RtxPlan {
    /// The history's limits for `desc`: enough slots for `rtx-time` of
    /// packets, and an RTX rate of the live stream's own (so repair at
    /// most doubles the traffic), at least [`RTX_MIN_RATE`].
    fn config(&self, desc: &StreamDescription) -> RtxConfig {
        let rtx_ns = self.rtx_time.as_nanos();
        let samples = desc
            .packet_interval()
            .map_or(0, |i| rtx_ns / i.as_nanos().max(1) + 1);
        // Event packets are sporadic; room for a busy input's repeats.
        let events = if desc.events.is_some() { 64 } else { 0 };
        let capacity = usize::try_from(samples)
            .unwrap_or(RTX_MAX_KEPT)
            .saturating_add(events)
            .clamp(16, RTX_MAX_KEPT);
        RtxConfig {
            payload_types: self.payload_types.clone(),
            rtx_time: self.rtx_time,
            capacity,
            max_rate: (desc.session_bandwidth_bps() / 8).max(RTX_MIN_RATE),
            burst: 2 * MAX_KEPT_PACKET as u64,
            resend_holdoff: RESEND_HOLDOFF,
        }
    }
}

/// What [`Streamer::attach`] needs of a session.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    /// The agreed description; its clock rate is the stream's.
    pub description: StreamDescription,
    pub srtp: Option<SrtpKeys>,
    pub recovery: LiveRecovery,
}

/// One session's terms for the sender thread (its outbound SRTP contexts,
/// live and RTX, docs/protocol.md 11.8; the RTX history, allocated here
/// once, the thread only copies into it) and the RTCP receiver's inbound
/// context.
pub(super) fn session_terms(
    keys: Option<&SrtpKeys>,
    recovery: &LiveRecovery,
    description: &StreamDescription,
    ids: &mut IdGenerator,
) -> Result<(SessionTerms, Option<SrtpContext>), SrtpError> {
    let history = recovery.rtx.as_ref().map(|r| {
        let sender = RtpSender::with_start(r.ssrc, ids.u32() as u16, 0);
        RetransmitHistory::new(r.config(description), sender, Instant::now())
    });
    let mut terms = SessionTerms {
        instant_id: recovery.instant_id,
        history,
        ..SessionTerms::default()
    };
    let Some(keys) = keys else {
        return Ok((terms, None));
    };
    terms.srtp = Some(Protector::new(SrtpContext::outbound(&keys.send)?));
    if recovery.rtx.is_some() {
        terms.rtx_srtp = Some(Protector::new(SrtpContext::outbound(&keys.send)?));
    }
    Ok((terms, Some(SrtpContext::inbound(&keys.receive)?)))
}
