//! A simulated sensor stream end to end, for the loopback tests, the
//! benchmark and the cross-build check: a board fed by the real sensor
//! I/O thread reading a `simulated` sensor, a description for it, and a
//! checker that decodes received packets with the protocol crate and
//! compares every value with the waveform (`SimConfig::value` is a pure
//! function, so the receiver recomputes what the sender must have sent).

use crate::handoff::{self, Board};
use crate::sensor::runner::{RetryPolicy, Runner};
use crate::sensor::sim::{SimChannel, SimConfig};
use crate::sensor::{SensorConfig, SensorEnv, SensorKind};
use crate::status::StatusHub;
use crate::units::Unit as AgentUnit;
use sipsensor_protocol::{
    ChannelSpec, MISSING_SAMPLE, Payload, PayloadDecodeError, RtpPacket, SampleFormat, Samples,
    StreamConfigs, StreamDescription, Unit, decode_payload, parse_rtp,
};
use std::time::Duration;

/// Name of the simulated sensor; its channels are `sim.c0`, `sim.c1`, ...
pub const SENSOR: &str = "sim";
/// Name of the sensor that never answers (a hung bus): `silent.x`.
pub const SILENT: &str = "silent.x";
/// Samples payload type.
pub const PT_SAMPLES: u8 = 96;

/// The waveform, the sample clock and the names.
#[derive(Debug, Clone)]
pub struct SimStream {
    pub config: SimConfig,
    /// The sensor's read interval, which is also the sample period.
    pub interval: Duration,
    pub rate_hz: u32,
    /// Board channel names: `sim.c0` ... then `silent.x` when present.
    pub channels: Vec<String>,
}

impl SimStream {
    /// `channels` waveform channels at `rate_hz`, plus a silent one when
    /// `silent` is set.
    pub fn new(seed: u64, channels: usize, rate_hz: u32, silent: bool) -> SimStream {
        let config = SimConfig {
            seed,
            channels: (0..channels)
                .map(|c| SimChannel {
                    name: format!("c{c}"),
                    unit: AgentUnit::CELSIUS,
                    scale: 0.01,
                    offset: 20.0 + c as f64,
                    amplitude: 5.0,
                    period: Duration::from_millis(1000 + 250 * c as u64),
                    noise: 0.5,
                })
                .collect(),
        };
        let mut names: Vec<String> = (0..channels).map(|c| format!("{SENSOR}.c{c}")).collect();
        if silent {
            names.push(SILENT.into());
        }
        SimStream {
            config,
            interval: Duration::from_secs(1) / rate_hz.max(1),
            rate_hz,
            channels: names,
        }
    }

    /// A description carrying `names` (board channel names), `spp`
    /// instants per packet, every `period` ticks of a `rate_hz` clock.
    pub fn description(&self, cfg: u8, period: u32, spp: u8, names: &[&str]) -> StreamDescription {
        StreamDescription {
            clock_rate: self.rate_hz,
            config: cfg,
            samples: Some(SampleFormat {
                payload_type: PT_SAMPLES,
                period,
                samples_per_packet: spp,
                channels: names
                    .iter()
                    .map(|n| ChannelSpec {
                        name: (*n).to_owned(),
                        unit: Unit::from_symbol("Cel").expect("Cel is in the SenML registry"),
                        scale: -2,
                    })
                    .collect(),
            }),
            events: None,
        }
    }

    /// Every board channel, one instant per `spp`.
    pub fn full_description(&self, spp: u8) -> StreamDescription {
        let names: Vec<&str> = self.channels.iter().map(String::as_str).collect();
        self.description(1, 1, spp, &names)
    }

    /// The board: sensor 0 is the simulated one, read by its own I/O
    /// thread (the returned `Runner`); sensor 1, when `silent`, never
    /// publishes. Stop the runner when done.
    pub fn board(&self, hub: &StatusHub) -> std::io::Result<(Board, Runner)> {
        let n = self.config.channels.len();
        let sensor = SensorConfig {
            name: SENSOR.into(),
            interval: self.interval,
            kind: SensorKind::Simulated(self.config.clone()),
        };
        let (w, r) = handoff::samples(n, sensor.stale_after());
        let runner = Runner::spawn(
            0,
            sensor,
            SensorEnv::system("/nonexistent".into(), "/nonexistent".into()),
            w,
            hub.clone(),
            RetryPolicy::default(),
        )?;
        let mut readers = vec![r];
        let mut sizes = vec![n];
        let mut map: Vec<(usize, usize)> = (0..n).map(|c| (0, c)).collect();
        if self.channels.len() > n {
            let (_never, silent) = handoff::samples(1, self.interval * 3);
            readers.push(silent);
            sizes.push(1);
            map.push((1, 0));
        }
        Ok((Board::new(readers, &sizes, map), runner))
    }

    /// The raw value channel `name` has at waveform index `k`, or MISSING_SAMPLE
    /// for a channel that is not the simulated sensor's.
    fn expected(&self, spec: &ChannelSpec, k: u64) -> i32 {
        let c = spec
            .name
            .strip_prefix(SENSOR)
            .and_then(|s| s.strip_prefix(".c"))
            .and_then(|s| s.parse::<usize>().ok());
        match c {
            Some(c) if c < self.config.channels.len() => {
                spec.to_raw(self.config.value(c, k, self.interval))
            }
            _ => MISSING_SAMPLE,
        }
    }
}

/// What a checker saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub packets: u64,
    pub sample_packets: u64,
    pub event_packets: u64,
    /// Instants whose values equal the waveform's at some index.
    pub instants_matched: u64,
    /// Instants with every waveform channel MISSING_SAMPLE (before the sensor's
    /// first reading, or stale).
    pub instants_missing: u64,
    /// Packets whose timestamp did not follow on without the marker bit.
    pub marker_jumps: u64,
    pub configs: Vec<u8>,
}

/// A rule of the stream a received packet broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    #[error("RTP: {0}")]
    Rtp(#[from] sipsensor_protocol::RtpError),
    #[error("SSRC changed to {0:#x}")]
    SsrcChanged(u32),
    #[error("sequence {got} after {after}")]
    Sequence { got: u16, after: u16 },
    #[error("payload: {0}")]
    Payload(PayloadDecodeError),
    #[error("unknown cfg {0}")]
    UnknownConfig(u8),
    #[error("events: {0}")]
    Events(PayloadDecodeError),
    #[error("samples: {0}")]
    Samples(PayloadDecodeError),
    #[error("samples under a description without them")]
    NoSamplesFormat,
    #[error("samples with payload type {0}")]
    PayloadType(u8),
    #[error("first samples packet without the marker")]
    NoMarker,
    #[error("timestamp {got} where {due} was due")]
    Timestamp { got: u32, due: u32 },
    #[error("{channel} should be MISSING_SAMPLE, got {got}")]
    NotMissing { channel: String, got: i32 },
    #[error("values {values:?} match no waveform index from {from} on")]
    NoMatch { values: Vec<i32>, from: u64 },
}

/// Checks a stream packet by packet; the first violation is an error.
#[derive(Debug)]
pub struct Checker {
    sim: SimStream,
    descriptions: StreamConfigs,
    ssrc: Option<u32>,
    next_seq: Option<u16>,
    next_ts: Option<u32>,
    last_k: u64,
    /// How far ahead of the last matched index a match is looked for.
    window: u64,
    pub report: CheckReport,
}

impl Checker {
    pub fn new(sim: SimStream, first: StreamDescription) -> Checker {
        Checker {
            sim,
            descriptions: StreamConfigs::new(first),
            ssrc: None,
            next_seq: None,
            next_ts: None,
            last_k: 0,
            window: 2000,
            report: CheckReport::default(),
        }
    }

    /// The description the sender switches to next.
    pub fn expect(&mut self, desc: StreamDescription) {
        self.descriptions.install(desc);
    }

    /// One datagram from the RTP port.
    pub fn packet(&mut self, bytes: &[u8]) -> Result<(), Violation> {
        let p = parse_rtp(bytes)?;
        if *self.ssrc.get_or_insert(p.ssrc) != p.ssrc {
            return Err(Violation::SsrcChanged(p.ssrc));
        }
        if let Some(s) = self.next_seq
            && s != p.sequence
        {
            return Err(Violation::Sequence {
                got: p.sequence,
                after: s.wrapping_sub(1),
            });
        }
        self.next_seq = Some(p.sequence.wrapping_add(1));
        self.report.packets += 1;
        let decoded = decode_payload(p.payload).map_err(Violation::Payload)?;
        let cfg = decoded.config();
        if !self.report.configs.contains(&cfg) {
            self.report.configs.push(cfg);
        }
        let desc = self
            .descriptions
            .get(cfg)
            .ok_or(Violation::UnknownConfig(cfg))?
            .clone();
        match decoded {
            Payload::Events(e) => {
                e.check(&desc).map_err(Violation::Events)?;
                self.report.event_packets += 1;
                Ok(())
            }
            Payload::Samples(s) => {
                s.check(&desc).map_err(Violation::Samples)?;
                self.samples(&p, &s, &desc)
            }
        }
    }

    fn samples(
        &mut self,
        p: &RtpPacket<'_>,
        s: &Samples<'_>,
        desc: &StreamDescription,
    ) -> Result<(), Violation> {
        let Some(format) = &desc.samples else {
            return Err(Violation::NoSamplesFormat);
        };
        if p.payload_type != format.payload_type {
            return Err(Violation::PayloadType(p.payload_type));
        }
        match self.next_ts {
            None if !p.marker => return Err(Violation::NoMarker),
            Some(t) if t != p.timestamp && !p.marker => {
                return Err(Violation::Timestamp {
                    got: p.timestamp,
                    due: t,
                });
            }
            Some(t) if t != p.timestamp => self.report.marker_jumps += 1,
            _ => {}
        }
        self.next_ts = Some(
            p.timestamp
                .wrapping_add(format.period.wrapping_mul(u32::from(s.count))),
        );
        self.report.sample_packets += 1;
        for i in 0..usize::from(s.count) {
            let got: Vec<i32> = (0..format.channels.len())
                .map(|c| s.raw(i, c).unwrap_or(MISSING_SAMPLE))
                .collect();
            self.instant(&got, &format.channels)?;
        }
        Ok(())
    }

    fn instant(&mut self, got: &[i32], channels: &[ChannelSpec]) -> Result<(), Violation> {
        let waveform: Vec<usize> = (0..channels.len())
            .filter(|c| self.sim.expected(&channels[*c], 0) != MISSING_SAMPLE)
            .collect();
        for (c, spec) in channels.iter().enumerate() {
            if !waveform.contains(&c) && got[c] != MISSING_SAMPLE {
                return Err(Violation::NotMissing {
                    channel: spec.name.clone(),
                    got: got[c],
                });
            }
        }
        if waveform.iter().all(|c| got[*c] == MISSING_SAMPLE) {
            self.report.instants_missing += 1;
            return Ok(());
        }
        for k in self.last_k..self.last_k + self.window {
            if waveform
                .iter()
                .all(|c| got[*c] == self.sim.expected(&channels[*c], k))
            {
                self.last_k = k;
                self.report.instants_matched += 1;
                return Ok(());
            }
        }
        Err(Violation::NoMatch {
            values: got.to_vec(),
            from: self.last_k,
        })
    }
}
