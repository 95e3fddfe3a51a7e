//! Descriptions and stream set-ups shared by the media unit tests.

use super::stream::{ClockBounds, StreamLimits};
use super::{StreamSetup, stream_spec};
use crate::stats::{StreamInfo, StreamsRegistry};
use crate::storage::{SensorId, SessionId};
use sipsensor_protocol::{
    Agreed, ChannelSpec, EventFormat, MediaDirection, RemoteMedia, SampleFormat, StreamDescription,
    Unit,
};
use std::sync::Arc;
use std::time::Duration;

pub const SSRC: u32 = 0x1a2b_3c4d;
/// 2026-01-01T00:00:00Z in ns.
pub const T0_NS: i64 = 1_767_225_600_000_000_000;

pub fn desc(config: u8, period: u32) -> StreamDescription {
    let ch = |n: &str, u: &str, s: i8| ChannelSpec {
        name: n.into(),
        unit: Unit::from_symbol(u).unwrap(),
        scale: s,
    };
    StreamDescription {
        clock_rate: 100,
        config,
        samples: Some(SampleFormat {
            payload_type: 96,
            period,
            samples_per_packet: 5,
            channels: vec![ch("temperature", "Cel", -2), ch("pressure", "Pa", 0)],
        }),
        events: Some(EventFormat {
            payload_type: 97,
            inputs: vec!["door".into(), "motion".into()],
        }),
    }
}

/// The documented defaults, holding `hold` packets for the first SR.
pub fn limits(hold: usize) -> StreamLimits {
    StreamLimits {
        hold_before_sr: hold,
        clock: ClockBounds {
            max_step: Duration::from_secs(2),
            max_offset: Duration::from_secs(60),
        },
    }
}

/// `d` from 127.0.0.1:40000 (RTCP 40001) with [`SSRC`] signalled.
pub fn agreed(d: StreamDescription) -> Agreed {
    Agreed {
        description: d,
        direction: MediaDirection::RecvOnly,
        remote: Some(RemoteMedia {
            rtp: "127.0.0.1:40000".parse().unwrap(),
            rtcp: "127.0.0.1:40001".parse().unwrap(),
        }),
        remote_ssrc: Some(SSRC),
        remote_cname: None,
        srtp: None,
    }
}

/// Sensor 3's stream under `agreed`, its statistics in `registry`.
pub fn setup(
    registry: &Arc<StreamsRegistry>,
    agreed: Agreed,
    session: Option<SessionId>,
    previous_sample_ns: Option<i64>,
) -> StreamSetup {
    let spec = stream_spec(&agreed.description);
    let stats = registry.open(StreamInfo {
        sensor: SensorId(3),
        aor: "sip:s1@example.net".into(),
        session: SessionId(7),
        call_id: "c".into(),
        ssrc: agreed.remote_ssrc.unwrap_or_default(),
        remote: None,
        rate_hz: spec.rate_hz,
        channels: spec.channels,
        started_ns: T0_NS,
    });
    StreamSetup {
        sensor: SensorId(3),
        aor: "sip:s1@example.net".into(),
        session,
        agreed,
        signalling_ip: None,
        local_ssrc: 0x0bad_cafe,
        cname: "collector@127.0.0.1".into(),
        previous_sample_ns,
        acknowledge: false,
        stats,
    }
}
