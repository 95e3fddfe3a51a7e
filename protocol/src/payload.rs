//! The RTP payload of a sensor stream (docs/protocol.md, "RTP payload").
//!
//! Every payload starts with a 4-byte header: `0x1K` (format version 1 in
//! the high nibble, kind K in the low one), the config number, and two
//! counts. Samples are big-endian `i32`s interleaved per sampling instant;
//! events are records of an input edge with its exact time.
//!
//! Encoding writes into a caller's buffer and never allocates, so the
//! agent's real-time thread can use it; decoding borrows the packet.

mod outbox;

pub use outbox::{EventBatch, EventOutbox, OutboxConfig};

use crate::sdp::{MAX_CHANNELS, StreamDescription};
use thiserror::Error;

/// Format version in the high nibble of byte 0.
pub const VERSION: u8 = 1;
/// Kind nibble of a samples payload.
pub const KIND_SAMPLES: u8 = 0;
/// Kind nibble of an events payload.
pub const KIND_EVENTS: u8 = 1;
/// Bytes before the samples or the state bitmap.
pub const HEADER_LEN: usize = 4;
/// The raw value that says "no reading for this channel at this instant".
pub const MISSING: i32 = i32::MIN;
/// Bytes of one event record.
pub const EVENT_RECORD_LEN: usize = 12;
/// Most samples in one packet (the count is one byte).
pub const MAX_SAMPLES: usize = 255;
/// Most records in one events packet.
pub const MAX_RECORDS: usize = 255;

/// Payload length of `samples` instants of `channels` values.
pub const fn samples_len(channels: usize, samples: usize) -> usize {
    HEADER_LEN + 4 * channels * samples
}

/// Bytes of the input-state bitmap: one bit per input, padded to 32 bits.
pub const fn state_bitmap_len(inputs: usize) -> usize {
    inputs.div_ceil(32) * 4
}

/// Payload length of an events packet.
pub const fn events_len(inputs: usize, records: usize) -> usize {
    HEADER_LEN + state_bitmap_len(inputs) + EVENT_RECORD_LEN * records
}

/// A payload that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("buffer of {have} bytes, {need} needed")]
    BufferTooSmall { need: usize, have: usize },
    #[error("{0} channels or inputs, must be 1..=64")]
    Channels(usize),
    #[error("{values} values do not make whole instants of {channels} channels")]
    Shape { values: usize, channels: usize },
    #[error("{0} samples, must be 1..=255")]
    Samples(usize),
    #[error("{0} event records, at most 255")]
    Records(usize),
    #[error("event record for input {input}, but there are {inputs} inputs")]
    Input { input: u8, inputs: usize },
}

/// A payload that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("payload of {0} bytes is shorter than its header")]
    Truncated(usize),
    #[error("format version {0}, only 1 is known")]
    Version(u8),
    #[error("payload kind {0} is unknown")]
    Kind(u8),
    #[error("{0} channels or inputs, must be 1..=64")]
    Channels(u8),
    #[error("a samples payload with no samples")]
    NoSamples,
    #[error("payload is {actual} bytes, its header says {expected}")]
    Length { expected: usize, actual: usize },
    #[error("state bits beyond the last input are set")]
    StatePadding,
    #[error("event record {record}: input {input} of {inputs}")]
    Input {
        record: usize,
        input: u8,
        inputs: u8,
    },
    #[error("event record {record}: state {state}, must be 0 or 1")]
    State { record: usize, state: u8 },
    #[error("config {0} is not a description this receiver knows")]
    UnknownConfig(u8),
    #[error("{got} channels or inputs, the description has {expected}")]
    Mismatch { expected: usize, got: usize },
    #[error("payload kind does not match its payload type")]
    WrongKind,
}

/// Writes a samples payload: `values` holds whole instants of `channels`
/// values each, interleaved (instant 0 channel 0, instant 0 channel 1, ...).
/// Returns the payload length.
pub fn encode_samples(
    buf: &mut [u8],
    config: u8,
    channels: usize,
    values: &[i32],
) -> Result<usize, EncodeError> {
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(EncodeError::Channels(channels));
    }
    if !values.len().is_multiple_of(channels) {
        return Err(EncodeError::Shape {
            values: values.len(),
            channels,
        });
    }
    let samples = values.len() / channels;
    if samples == 0 || samples > MAX_SAMPLES {
        return Err(EncodeError::Samples(samples));
    }
    let need = samples_len(channels, samples);
    let have = buf.len();
    let out = buf
        .get_mut(..need)
        .ok_or(EncodeError::BufferTooSmall { need, have })?;
    // Casts are exact: both counts were range-checked above.
    out[..HEADER_LEN].copy_from_slice(&[
        (VERSION << 4) | KIND_SAMPLES,
        config,
        channels as u8,
        samples as u8,
    ]);
    for (chunk, v) in out[HEADER_LEN..].chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    Ok(need)
}

/// One input edge. `offset` is the edge time relative to the packet's RTP
/// timestamp, in clock ticks as signed 32.32 fixed point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventRecord {
    /// Per-stream counter that identifies the edge across repetitions.
    pub serial: u16,
    pub input: u8,
    /// The input's level after the edge.
    pub state: bool,
    pub offset: i64,
}

impl EventRecord {
    /// The offset in ticks as a float (for display; use `offset` to compute).
    pub fn offset_ticks(&self) -> f64 {
        self.offset as f64 / 4_294_967_296.0
    }
}

/// Writes an events payload: the state of all `inputs` (bit i of `states`
/// is input i) and the records. Returns the payload length.
pub fn encode_events(
    buf: &mut [u8],
    config: u8,
    inputs: usize,
    states: u64,
    records: &[EventRecord],
) -> Result<usize, EncodeError> {
    if inputs == 0 || inputs > MAX_CHANNELS {
        return Err(EncodeError::Channels(inputs));
    }
    if records.len() > MAX_RECORDS {
        return Err(EncodeError::Records(records.len()));
    }
    if let Some(r) = records.iter().find(|r| usize::from(r.input) >= inputs) {
        return Err(EncodeError::Input {
            input: r.input,
            inputs,
        });
    }
    let need = events_len(inputs, records.len());
    let have = buf.len();
    let out = buf
        .get_mut(..need)
        .ok_or(EncodeError::BufferTooSmall { need, have })?;
    out[..HEADER_LEN].copy_from_slice(&[
        (VERSION << 4) | KIND_EVENTS,
        config,
        inputs as u8,
        records.len() as u8,
    ]);
    let bitmap_len = state_bitmap_len(inputs);
    let states = states & input_mask(inputs);
    // Input 0 is the most significant bit of the first byte.
    let bitmap = states.reverse_bits().to_be_bytes();
    out[HEADER_LEN..HEADER_LEN + bitmap_len].copy_from_slice(&bitmap[..bitmap_len]);
    let recs = &mut out[HEADER_LEN + bitmap_len..];
    for (chunk, r) in recs.chunks_exact_mut(EVENT_RECORD_LEN).zip(records) {
        chunk[0..2].copy_from_slice(&r.serial.to_be_bytes());
        chunk[2] = r.input;
        chunk[3] = u8::from(r.state);
        chunk[4..12].copy_from_slice(&r.offset.to_be_bytes());
    }
    Ok(need)
}

fn input_mask(inputs: usize) -> u64 {
    if inputs >= 64 {
        u64::MAX
    } else {
        (1u64 << inputs) - 1
    }
}

/// A decoded payload, borrowing the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    Samples(Samples<'a>),
    Events(Events<'a>),
}

impl Payload<'_> {
    pub fn config(&self) -> u8 {
        match self {
            Payload::Samples(s) => s.config,
            Payload::Events(e) => e.config,
        }
    }
}

/// A samples payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Samples<'a> {
    pub config: u8,
    pub channels: u8,
    pub count: u8,
    data: &'a [u8],
}

impl<'a> Samples<'a> {
    /// The raw value of one channel at one instant (`MISSING` included).
    pub fn raw(&self, sample: usize, channel: usize) -> Option<i32> {
        let ch = usize::from(self.channels);
        if channel >= ch || sample >= usize::from(self.count) {
            return None;
        }
        let i = 4 * (sample * ch + channel);
        let b = self.data.get(i..i + 4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// One instant's values, `None` where the value is [`MISSING`].
    pub fn instant(&self, sample: usize) -> impl Iterator<Item = Option<i32>> + 'a {
        let ch = usize::from(self.channels);
        let start = (4 * sample * ch).min(self.data.len());
        let end = (start + 4 * ch).min(self.data.len());
        self.data[start..end]
            .chunks_exact(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .map(|v| (v != MISSING).then_some(v))
    }

    /// Checks the payload against the description its config names.
    pub fn check(&self, desc: &StreamDescription) -> Result<(), DecodeError> {
        let Some(s) = &desc.samples else {
            return Err(DecodeError::WrongKind);
        };
        if desc.config != self.config {
            return Err(DecodeError::UnknownConfig(self.config));
        }
        if s.channels.len() != usize::from(self.channels) {
            return Err(DecodeError::Mismatch {
                expected: s.channels.len(),
                got: usize::from(self.channels),
            });
        }
        Ok(())
    }
}

/// An events payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events<'a> {
    pub config: u8,
    pub inputs: u8,
    /// Bit i is the current level of input i.
    pub states: u64,
    records: &'a [u8],
}

impl<'a> Events<'a> {
    pub fn state(&self, input: u8) -> Option<bool> {
        (input < self.inputs).then(|| self.states >> input & 1 == 1)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len() / EVENT_RECORD_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, validated by [`decode`].
    pub fn records(&self) -> impl Iterator<Item = EventRecord> + 'a {
        self.records.chunks_exact(EVENT_RECORD_LEN).map(|c| {
            let mut off = [0u8; 8];
            off.copy_from_slice(&c[4..12]);
            EventRecord {
                serial: u16::from_be_bytes([c[0], c[1]]),
                input: c[2],
                state: c[3] == 1,
                offset: i64::from_be_bytes(off),
            }
        })
    }

    /// Checks the payload against the description its config names.
    pub fn check(&self, desc: &StreamDescription) -> Result<(), DecodeError> {
        let Some(e) = &desc.events else {
            return Err(DecodeError::WrongKind);
        };
        if desc.config != self.config {
            return Err(DecodeError::UnknownConfig(self.config));
        }
        if e.inputs.len() != usize::from(self.inputs) {
            return Err(DecodeError::Mismatch {
                expected: e.inputs.len(),
                got: usize::from(self.inputs),
            });
        }
        Ok(())
    }
}

/// Reads a payload. Every length and field is checked here, so the views
/// it returns never fail later.
pub fn decode(payload: &[u8]) -> Result<Payload<'_>, DecodeError> {
    let Some(&[b0, config, count_a, count_b]) = payload.first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::Truncated(payload.len()));
    };
    if b0 >> 4 != VERSION {
        return Err(DecodeError::Version(b0 >> 4));
    }
    if count_a == 0 || usize::from(count_a) > MAX_CHANNELS {
        return Err(DecodeError::Channels(count_a));
    }
    let body = &payload[HEADER_LEN..];
    match b0 & 0x0f {
        KIND_SAMPLES => {
            if count_b == 0 {
                return Err(DecodeError::NoSamples);
            }
            let expected = samples_len(usize::from(count_a), usize::from(count_b));
            if payload.len() != expected {
                return Err(DecodeError::Length {
                    expected,
                    actual: payload.len(),
                });
            }
            Ok(Payload::Samples(Samples {
                config,
                channels: count_a,
                count: count_b,
                data: body,
            }))
        }
        KIND_EVENTS => {
            let inputs = usize::from(count_a);
            let expected = events_len(inputs, usize::from(count_b));
            if payload.len() != expected {
                return Err(DecodeError::Length {
                    expected,
                    actual: payload.len(),
                });
            }
            let bitmap_len = state_bitmap_len(inputs);
            let mut be = [0u8; 8];
            be[..bitmap_len].copy_from_slice(&body[..bitmap_len]);
            let raw = u64::from_be_bytes(be).reverse_bits();
            if raw & !input_mask(inputs) != 0 {
                return Err(DecodeError::StatePadding);
            }
            let records = &body[bitmap_len..];
            for (i, c) in records.chunks_exact(EVENT_RECORD_LEN).enumerate() {
                if c[2] >= count_a {
                    return Err(DecodeError::Input {
                        record: i,
                        input: c[2],
                        inputs: count_a,
                    });
                }
                if c[3] > 1 {
                    return Err(DecodeError::State {
                        record: i,
                        state: c[3],
                    });
                }
            }
            Ok(Payload::Events(Events {
                config,
                inputs: count_a,
                states: raw,
                records,
            }))
        }
        k => Err(DecodeError::Kind(k)),
    }
}

/// A point on the sample clock: whole ticks since the stream's epoch plus
/// a 32-bit binary fraction of a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TickTime {
    pub tick: u64,
    pub fraction: u32,
}

impl TickTime {
    pub const fn from_tick(tick: u64) -> Self {
        Self { tick, fraction: 0 }
    }

    /// The clock position `elapsed` after the epoch at `clock_rate` Hz.
    pub fn from_elapsed(elapsed: std::time::Duration, clock_rate: u32) -> Self {
        // ticks * 2^32 = nanos * rate * 2^32 / 1e9, exact in u128.
        let q = elapsed.as_nanos() * u128::from(clock_rate) * (1u128 << 32) / 1_000_000_000;
        Self {
            tick: u64::try_from(q >> 32).unwrap_or(u64::MAX),
            fraction: (q & 0xffff_ffff) as u32,
        }
    }

    /// `self - base` in 32.32 ticks, if it fits an i64.
    pub fn offset_from(self, base: u64) -> Option<i64> {
        let a = (i128::from(self.tick) << 32) | i128::from(self.fraction);
        let b = i128::from(base) << 32;
        i64::try_from(a - b).ok()
    }
}

#[cfg(test)]
mod tests;
