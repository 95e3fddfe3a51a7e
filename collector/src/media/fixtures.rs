//! Descriptions and stream set-ups shared by the media unit tests.

use super::stream::{ClockBounds, StreamLimits};
use super::{StreamSetup, stream_spec};
use crate::stats::{StreamInfo, StreamsRegistry};
use crate::storage::{SensorId, SessionId};
use sipsensor_protocol::{
    Agreed, AgreedBackfill, AgreedRecovery, AgreedRtx, ChannelSpec, EventFormat, MISSING_SAMPLE,
    MediaDirection, RemoteMedia, RtpSender, SampleFormat, SampleInstant, StreamDescription, Unit,
    parse_rtp, write_rtx_payload,
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
        recovery: AgreedRecovery::default(),
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

/// The agent's RTX and backfill SSRCs (docs/protocol.md 11.1's example).
pub const RTX_SSRC: u32 = 0x5e1f_0001;
pub const BACKFILL_SSRC: u32 = 0x0bf0_0001;
/// Payload types of RTX for 96 and of the backfill format.
pub const RTX_PT: u8 = 98;
pub const BACKFILL_PT: u8 = 100;
/// The spacing of `desc(1, 10)`'s instants: 10 Hz.
pub const STEP_NS: u64 = 100_000_000;

/// Everything of docs/protocol.md section 11 agreed, as the 11.1 example.
pub fn recovery() -> AgreedRecovery {
    AgreedRecovery {
        instant_id: Some(1),
        rtx: Some(AgreedRtx {
            payload_types: vec![(96, RTX_PT), (97, 99)],
            rtx_time: Duration::from_secs(3),
            ssrc: Some(RTX_SSRC),
        }),
        backfill: Some(AgreedBackfill {
            payload_type: BACKFILL_PT,
            mark: 0,
            oldest: None,
            max_rate: Some(2000),
            ssrc: Some(BACKFILL_SSRC),
        }),
    }
}

/// An agent of section 11 streaming `desc(1, 10)`: stamped live packets,
/// their retransmissions and backfill, built by the protocol's writers.
pub struct StampedAgent {
    pub live: RtpSender,
    rtx: RtpSender,
    backfill: RtpSender,
}

impl StampedAgent {
    pub fn new(first_seq: u16) -> Self {
        StampedAgent {
            live: RtpSender::with_start(SSRC, first_seq, 0x1000),
            rtx: RtpSender::with_start(RTX_SSRC, 7, 0),
            backfill: RtpSender::with_start(BACKFILL_SSRC, 500, 0),
        }
    }

    /// The instant of sample `tick` (100 Hz clock ticks from T0).
    pub fn instant(tick: u64) -> SampleInstant {
        SampleInstant {
            first_ns: T0_NS as u64 + tick * 10_000_000,
            step_ns: STEP_NS,
        }
    }

    /// The value of channel `ch` at `tick`.
    pub fn value(tick: u64, ch: usize) -> i32 {
        tick as i32 * 3 + ch as i32 * 1000
    }

    fn write(tx: &mut RtpSender, d: &StreamDescription, tick: u64) -> Vec<u8> {
        let period = u64::from(d.samples.as_ref().map_or(10, |s| s.period));
        let values: Vec<i32> = (0..5)
            .flat_map(|k| (0..2).map(move |ch| Self::value(tick + k * period, ch)))
            .collect();
        Self::write_values(tx, d, tick, &values)
    }

    fn write_values(
        tx: &mut RtpSender,
        d: &StreamDescription,
        tick: u64,
        values: &[i32],
    ) -> Vec<u8> {
        let mut buf = [0u8; 160];
        let n = tx
            .write_samples_stamped(&mut buf, d, tick, values, false, (1, Self::instant(tick)))
            .unwrap();
        buf[..n].to_vec()
    }

    /// The live samples packet starting at `tick`.
    pub fn samples(&mut self, tick: u64) -> Vec<u8> {
        Self::write(&mut self.live, &desc(1, 10), tick)
    }

    /// The live samples packet starting at `tick` with instant `k` of it
    /// without any reading where `empty(k)` (docs/protocol.md 5.2).
    pub fn samples_without(&mut self, tick: u64, empty: impl Fn(u64) -> bool) -> Vec<u8> {
        let values: Vec<i32> = (0..5)
            .flat_map(|k| {
                let missing = empty(k);
                (0..2).map(move |ch| {
                    if missing {
                        MISSING_SAMPLE
                    } else {
                        Self::value(tick + k * 10, ch)
                    }
                })
            })
            .collect();
        Self::write_values(&mut self.live, &desc(1, 10), tick, &values)
    }

    /// The same samples in a backfill packet (docs/protocol.md 11.6).
    pub fn backfill(&mut self, tick: u64) -> Vec<u8> {
        let mut d = desc(1, 10);
        if let Some(s) = d.samples.as_mut() {
            s.payload_type = BACKFILL_PT;
        }
        Self::write(&mut self.backfill, &d, tick)
    }

    /// The RTX packet of a live packet (RFC 4588 4: OSN, then the
    /// original payload; the original's timestamp and extension).
    pub fn rtx_of(&mut self, original: &[u8]) -> Vec<u8> {
        let o = parse_rtp(original).unwrap();
        let instant = o.sample_instant(1).unwrap().unwrap().encode();
        let mut buf = [0u8; 200];
        let n = self
            .rtx
            .write_extended(
                &mut buf,
                RTX_PT,
                o.marker,
                o.timestamp,
                &[(1, &instant)],
                |b| write_rtx_payload(b, o.sequence, o.payload),
            )
            .unwrap();
        buf[..n].to_vec()
    }
}
