//! RTP/RTCP reception for every session, on one port pair.
//!
//! Every session's SDP answer points at the same RTP port (and RTCP on the
//! next one). A dedicated OS thread receives both sockets in batches
//! (`recvmmsg`), finds the stream of each packet by (source address, SSRC)
//! (`demux`, sans-I/O; the thread in `engine/receive.rs` is its shell) and
//! runs docs/protocol.md section 7 on it: sequence and loss (RFC 3550
//! A.1/A.3), jitter (A.8), duplicates, payload decoding by `cfg`, absolute
//! time from the sender reports (6.4.1), gaps, events. Rows go to the
//! storage writer in batches; receiver reports go back to each agent.
//!
//! Why one shared port pair and one thread, not a socket per session: at
//! 10,000 streams a socket per session means 20,000 file descriptors and
//! one readiness event and one `recvfrom` per packet, where the shared
//! socket takes up to 64 packets per system call. `docs/benchmarks.md`
//! ("collector: receive path") has the measurement.
//!
//! Event inputs are stored as channels after the sampled ones (unit
//! [`EVENT_UNIT`]), so an [`Event`](crate::storage::Event)'s `channel` is
//! `sampled channels + input index` in its session's stream description.

pub mod acks;
mod demux;
mod engine;
#[cfg(test)]
mod fixtures;
pub mod gaps;
mod mailbox;
mod realtime;
mod rejects;
mod silence;
mod socket;
mod stream;

pub use demux::StreamKey;
pub use engine::{
    Declared, MediaEngine, MediaError, MediaHandle, MediaNotice, Silent, StreamSummary,
};
pub use rejects::Reject;
pub use socket::bind_pair;
pub use stream::RepairTally;

use crate::stats::StreamHandle;
use crate::storage::{ChannelSpec, SensorId, SessionId, StreamSpec};
use sipsensor_protocol::{Agreed, AgreedRecovery, StreamDescription};
use std::net::IpAddr;

/// Unit of a channel that is an event input (0/1 levels), not a SenML unit.
pub const EVENT_UNIT: &str = "event";

/// What the media thread needs to receive one stream.
#[derive(Debug)]
pub struct StreamSetup {
    pub sensor: SensorId,
    pub aor: String,
    /// The storage record of `agreed.description` (its `cfg`). `None`:
    /// packets are held until [`MediaHandle::update`] gives it.
    pub session: Option<SessionId>,
    pub agreed: Agreed,
    /// What the session agreed of docs/protocol.md section 11 (sample
    /// instants, NACK + RTX, backfill); `Default`: none of it.
    pub recovery: AgreedRecovery,
    /// Where the SIP request came from: RTP from this address is accepted
    /// too when the SDP address is a private one behind NAT.
    pub signalling_ip: Option<IpAddr>,
    /// Our SSRC and CNAME in receiver reports.
    pub local_ssrc: u32,
    pub cname: String,
    /// Time of the sensor's last stored sample before this session: the
    /// first sample of this one closes a session-break gap from it.
    pub previous_sample_ns: Option<i64>,
    pub stats: StreamHandle,
    /// Both ends agreed backfill, and with it acknowledgement
    /// (docs/protocol.md 11.1: `AgreedRecovery::backfill`): the agent gets
    /// committed marks at least once a second, and its expired and
    /// unsampled ranges are recorded.
    pub acknowledge: bool,
}

/// The stored form of a negotiated stream: sampled channels, then event
/// inputs (unit [`EVENT_UNIT`]).
pub fn stream_spec(desc: &StreamDescription) -> StreamSpec {
    let mut channels = Vec::new();
    let mut spp = 1;
    if let Some(s) = &desc.samples {
        spp = u32::from(s.samples_per_packet);
        channels.extend(s.channels.iter().map(|c| ChannelSpec {
            name: c.name.clone(),
            unit: c.unit.symbol().to_string(),
            scale: 10f64.powi(i32::from(c.scale)),
        }));
    }
    if let Some(e) = &desc.events {
        channels.extend(e.inputs.iter().map(|name| ChannelSpec {
            name: name.clone(),
            unit: EVENT_UNIT.to_string(),
            scale: 1.0,
        }));
    }
    StreamSpec {
        rate_hz: desc.sample_rate_hz().unwrap_or(f64::from(desc.clock_rate)),
        samples_per_packet: spp,
        channels,
    }
}

/// Index of the first event input among a description's channels.
pub fn first_input_channel(desc: &StreamDescription) -> usize {
    desc.samples.as_ref().map_or(0, |s| s.channels.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_protocol::{ChannelSpec as Wire, EventFormat, SampleFormat, Unit};

    #[test]
    fn spec_lists_channels_then_inputs() {
        let desc = StreamDescription {
            clock_rate: 100,
            config: 1,
            samples: Some(SampleFormat {
                payload_type: 96,
                period: 10,
                samples_per_packet: 5,
                channels: vec![Wire {
                    name: "temperature".into(),
                    unit: Unit::from_symbol("Cel").unwrap(),
                    scale: -2,
                }],
            }),
            events: Some(EventFormat {
                payload_type: 97,
                inputs: vec!["door".into()],
            }),
        };
        let s = stream_spec(&desc);
        assert_eq!(s.rate_hz, 10.0);
        assert_eq!(s.samples_per_packet, 5);
        assert_eq!(s.channels.len(), 2);
        assert_eq!(s.channels[0].unit, "Cel");
        assert!((s.channels[0].scale - 0.01).abs() < 1e-15);
        assert_eq!(s.channels[1].unit, EVENT_UNIT);
        assert_eq!(first_input_channel(&desc), 1);
        let events_only = StreamDescription {
            samples: None,
            ..desc
        };
        assert_eq!(stream_spec(&events_only).rate_hz, 100.0);
        assert_eq!(first_input_channel(&events_only), 0);
    }
}
