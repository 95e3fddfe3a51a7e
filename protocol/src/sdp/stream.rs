//! The sensor stream as SDP describes it (docs/protocol.md, "SDP").
//!
//! One `m=application <port> RTP/AVP <pt>...` section carries up to two
//! dynamic payload types sharing one RTP clock: `sensor/<clock>` for
//! periodic samples and `sensor-event/<clock>` for discrete input edges.
//! Parameters are in `a=fmtp`, one `a=sensor-channel` or `a=sensor-input`
//! line per channel.

use super::units::Unit;
use std::time::Duration;
use thiserror::Error;

/// rtpmap encoding name of the samples format (compared case-insensitively,
/// RFC 4855 section 3).
pub const ENCODING_SAMPLES: &str = "sensor";
/// rtpmap encoding name of the events format.
pub const ENCODING_EVENTS: &str = "sensor-event";
/// Attribute naming one sampled channel.
pub const ATTR_CHANNEL: &str = "sensor-channel";
/// Attribute naming one event input.
pub const ATTR_INPUT: &str = "sensor-input";
/// The `ver=` of the format this code speaks.
pub const FORMAT_VERSION: u32 = 1;
/// Most sampled channels (and, separately, event inputs) in one stream.
pub const MAX_CHANNELS: usize = 64;
/// Highest RTP clock rate accepted.
pub const MAX_CLOCK_RATE: u32 = 1_000_000;
/// Longest channel or input name.
pub const MAX_NAME_LEN: usize = 32;
/// Largest sample payload in bytes: fits one IPv6 packet over a 1280-byte
/// minimum MTU with RTP, UDP and IP headers (RFC 8200 section 5).
pub const MAX_SAMPLE_PAYLOAD: usize = 1200;
/// Decimal exponents accepted for fixed-point scaling.
pub const SCALE_RANGE: std::ops::RangeInclusive<i8> = -18..=18;

/// One sampled channel: values are `raw * 10^scale` in `unit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    pub name: String,
    pub unit: Unit,
    pub scale: i8,
}

impl ChannelSpec {
    /// The physical value of a raw sample, `raw * 10^scale`; `None` for
    /// [`crate::payload::MISSING`].
    pub fn to_value(&self, raw: i32) -> Option<f64> {
        (raw != crate::payload::MISSING).then(|| f64::from(raw) * 10f64.powi(i32::from(self.scale)))
    }

    /// The raw sample for a physical value: rounded to the nearest step,
    /// saturated to the representable range (never [`crate::payload::MISSING`]);
    /// NaN gives MISSING.
    pub fn to_raw(&self, value: f64) -> i32 {
        if value.is_nan() {
            return crate::payload::MISSING;
        }
        let scaled = (value / 10f64.powi(i32::from(self.scale))).round();
        // `as` saturates; the lowest value is reserved for MISSING.
        (scaled as i32).max(i32::MIN + 1)
    }
}

/// The periodic samples format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFormat {
    pub payload_type: u8,
    /// RTP clock ticks between two sampling instants.
    pub period: u32,
    pub samples_per_packet: u8,
    pub channels: Vec<ChannelSpec>,
}

impl SampleFormat {
    /// The RTP timestamp of instant `k` of a packet stamped `timestamp`.
    pub fn instant_timestamp(&self, timestamp: u32, k: u8) -> u32 {
        timestamp.wrapping_add(self.period.wrapping_mul(u32::from(k)))
    }
}

/// The discrete events format: binary inputs reporting edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormat {
    pub payload_type: u8,
    pub inputs: Vec<String>,
}

/// Everything a receiver needs to decode the stream, agreed by offer/answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDescription {
    /// The RTP clock of both formats, in Hz; fixed for the whole session.
    pub clock_rate: u32,
    /// Configuration number carried in every packet, so a receiver tells
    /// packets of the previous and the new description apart after a
    /// re-INVITE.
    pub config: u8,
    pub samples: Option<SampleFormat>,
    pub events: Option<EventFormat>,
}

/// A description that breaks a rule of the format.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StreamError {
    #[error("the stream has neither sampled channels nor event inputs")]
    Empty,
    #[error("clock rate {0} Hz is outside 1..={MAX_CLOCK_RATE}")]
    ClockRate(u32),
    #[error("sample period of {0} ticks is outside the allowed range")]
    Period(u32),
    #[error("{0} samples per packet is outside 1..=255")]
    SamplesPerPacket(u8),
    #[error("{channels} channels x {samples} samples exceed a {MAX_SAMPLE_PAYLOAD}-byte payload")]
    PacketTooLarge { channels: usize, samples: u8 },
    #[error("{0} channels or inputs, more than {MAX_CHANNELS}")]
    TooManyChannels(usize),
    #[error("a format lists no channels")]
    NoChannels,
    #[error("name {0:?} is not 1-{MAX_NAME_LEN} of A-Z a-z 0-9 _ . -")]
    BadName(String),
    #[error("name {0:?} is used twice")]
    DuplicateName(String),
    #[error("scale 10^{0} is outside 10^-18..=10^18")]
    Scale(i8),
    #[error("payload type {0} is not dynamic (96..=127)")]
    PayloadType(u8),
    #[error("samples and events share payload type {0}")]
    SamePayloadType(u8),
    #[error("payload type {0} has no usable rtpmap")]
    Rtpmap(u8),
    #[error("samples clock {samples} Hz and events clock {events} Hz differ")]
    ClockMismatch { samples: u32, events: u32 },
    #[error(
        "payload type {pt}: format version {version:?} is not supported (only {FORMAT_VERSION})"
    )]
    Version { pt: u8, version: String },
    #[error("payload type {pt}: fmtp parameter {name} is {problem}")]
    Fmtp {
        pt: u8,
        name: &'static str,
        problem: &'static str,
    },
    #[error("samples and events carry different cfg numbers")]
    ConfigMismatch,
    #[error("bad a={attr} line {value:?}: {reason}")]
    ChannelLine {
        attr: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("unit {0:?} is not a SenML unit (RFC 8428 section 12.1)")]
    Unit(String),
}

impl StreamError {
    /// The SIP Warning code (RFC 3261 section 20.43) for a 488 that rejects
    /// an offer with this problem.
    pub fn warning_code(&self) -> u16 {
        match self {
            // The format itself is one we cannot take.
            StreamError::Version { .. } | StreamError::ClockMismatch { .. } => 305,
            // Our own attributes, present but unintelligible.
            StreamError::ChannelLine { .. } | StreamError::Unit(_) | StreamError::Rtpmap(_) => 306,
            _ => 307,
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Longest period: one sample a day at 1 Hz, and always below 2^31 ticks
/// so the RTP timestamp difference of two samples is unambiguous.
fn max_period(clock_rate: u32) -> u32 {
    let day = u64::from(clock_rate) * 86_400;
    u32::try_from(day.min(i32::MAX as u64)).unwrap_or(i32::MAX as u32)
}

impl StreamDescription {
    /// Checks every rule of docs/protocol.md "Stream description".
    pub fn validate(&self) -> Result<(), StreamError> {
        if !(1..=MAX_CLOCK_RATE).contains(&self.clock_rate) {
            return Err(StreamError::ClockRate(self.clock_rate));
        }
        if self.samples.is_none() && self.events.is_none() {
            return Err(StreamError::Empty);
        }
        // Names are unique across channels and inputs, ignoring case, so a
        // collector can use them as column names.
        let all: Vec<&str> = self
            .samples
            .iter()
            .flat_map(|s| s.channels.iter().map(|c| c.name.as_str()))
            .chain(
                self.events
                    .iter()
                    .flat_map(|e| e.inputs.iter().map(String::as_str)),
            )
            .collect();
        for (i, n) in all.iter().enumerate() {
            if !valid_name(n) {
                return Err(StreamError::BadName((*n).into()));
            }
            if all[..i].iter().any(|m| m.eq_ignore_ascii_case(n)) {
                return Err(StreamError::DuplicateName((*n).into()));
            }
        }
        if let Some(s) = &self.samples {
            check_pt(s.payload_type)?;
            if s.period == 0 || s.period > max_period(self.clock_rate) {
                return Err(StreamError::Period(s.period));
            }
            if s.samples_per_packet == 0 {
                return Err(StreamError::SamplesPerPacket(0));
            }
            if s.channels.is_empty() {
                return Err(StreamError::NoChannels);
            }
            if s.channels.len() > MAX_CHANNELS {
                return Err(StreamError::TooManyChannels(s.channels.len()));
            }
            if crate::payload::samples_len(s.channels.len(), usize::from(s.samples_per_packet))
                > MAX_SAMPLE_PAYLOAD
            {
                return Err(StreamError::PacketTooLarge {
                    channels: s.channels.len(),
                    samples: s.samples_per_packet,
                });
            }
            for c in &s.channels {
                if !SCALE_RANGE.contains(&c.scale) {
                    return Err(StreamError::Scale(c.scale));
                }
            }
        }
        if let Some(e) = &self.events {
            check_pt(e.payload_type)?;
            if e.inputs.is_empty() {
                return Err(StreamError::NoChannels);
            }
            if e.inputs.len() > MAX_CHANNELS {
                return Err(StreamError::TooManyChannels(e.inputs.len()));
            }
            if let Some(s) = &self.samples
                && s.payload_type == e.payload_type
            {
                return Err(StreamError::SamePayloadType(e.payload_type));
            }
        }
        Ok(())
    }

    /// Samples per second, `clock_rate / period`.
    pub fn sample_rate_hz(&self) -> Option<f64> {
        self.samples
            .as_ref()
            .map(|s| f64::from(self.clock_rate) / f64::from(s.period))
    }

    /// Time between two sample packets.
    pub fn packet_interval(&self) -> Option<Duration> {
        let s = self.samples.as_ref()?;
        let ticks = u64::from(s.period) * u64::from(s.samples_per_packet);
        let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(self.clock_rate.max(1));
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    /// The RTP session bandwidth in bit/s, IPv4/UDP/RTP headers included:
    /// the figure the RTCP interval is derived from (RFC 3550 6.2).
    /// Event traffic is sporadic; a stream of events alone is given a
    /// nominal 1 kbit/s.
    pub fn session_bandwidth_bps(&self) -> u64 {
        const OVERHEAD: u64 = 20 + 8 + 12;
        match &self.samples {
            Some(s) => {
                let bytes = crate::payload::samples_len(
                    s.channels.len(),
                    usize::from(s.samples_per_packet),
                ) as u64
                    + OVERHEAD;
                let ticks = u64::from(s.period) * u64::from(s.samples_per_packet);
                (bytes * 8 * u64::from(self.clock_rate) / ticks.max(1)).max(1)
            }
            None => 1000,
        }
    }
}

fn check_pt(pt: u8) -> Result<(), StreamError> {
    // RFC 3551 section 6: 96-127 is the dynamic range.
    if (96..=127).contains(&pt) {
        Ok(())
    } else {
        Err(StreamError::PayloadType(pt))
    }
}

/// The current description and the one before it, looked up by the config
/// number in each packet: packets sent before a re-INVITE took effect may
/// still arrive after it (RFC 3264 8.3.2 "loose synchronization").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfigs {
    current: StreamDescription,
    previous: Option<StreamDescription>,
}

impl StreamConfigs {
    pub fn new(current: StreamDescription) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// Makes `desc` current. A description with the current config number
    /// replaces it; another one pushes the current one to "previous".
    pub fn install(&mut self, desc: StreamDescription) {
        if desc.config == self.current.config {
            self.current = desc;
        } else {
            self.previous = Some(std::mem::replace(&mut self.current, desc));
        }
    }

    pub fn current(&self) -> &StreamDescription {
        &self.current
    }

    /// The description a packet with this config number was sent under.
    pub fn get(&self, config: u8) -> Option<&StreamDescription> {
        if self.current.config == config {
            Some(&self.current)
        } else {
            self.previous.as_ref().filter(|p| p.config == config)
        }
    }
}

#[cfg(test)]
mod tests;
