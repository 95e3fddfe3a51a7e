//! RTP header extensions (RFC 8285) and the one this format defines: the
//! sample instant (docs/protocol.md 11.2), which every live, RTX and
//! backfill packet carries so a receiver derives the same instant for a
//! sample whichever way it arrived.

use thiserror::Error;

/// The "defined by profile" value of the one-byte form (RFC 8285 4.2).
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// The two-byte form: 0x100 and 4 application bits (RFC 8285 4.3).
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
const TWO_BYTE_PROFILE: u16 = 0x1000;
/// Largest element of the one-byte form: a 4-bit length of 0..=15 means
/// 1..=16 bytes (RFC 8285 4.2).
pub const MAX_ONE_BYTE_ELEMENT: usize = 16;
/// The extension URI of the sample instant, for `a=extmap` (RFC 8285 5).
/// Not IETF-registered, so a URL of the project (RFC 8285 5, "URI").
pub const SAMPLE_INSTANT_URI: &str =
    "https://github.com/sipsensor/sipsensor/blob/main/docs/protocol.md#sample-instant";
/// The element's length: two 64-bit integers.
pub const SAMPLE_INSTANT_LEN: usize = 16;

/// A packet's header extension as RFC 3550 5.3.1 frames it: the 16-bit
/// profile value and the data after the length word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    pub profile: u16,
    pub data: &'a [u8],
}

/// Why an extension block does not hold the elements it announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ExtensionError {
    #[error("element {id} runs past the end of the extension block")]
    Truncated { id: u8 },
    #[error("element ID {0} is outside 1..=14 (RFC 8285 4.2)")]
    Id(u8),
    #[error("element of {0} bytes; the one-byte form holds 1..=16")]
    Length(usize),
    #[error("buffer too small for the extension block")]
    BufferTooSmall,
    #[error("sample instant element of {0} bytes, must be {SAMPLE_INSTANT_LEN}")]
    InstantLength(usize),
}

impl<'a> HeaderExtension<'a> {
    /// The data of element `id`, if the block is in the one-byte or the
    /// two-byte form and has it. Other profiles (RFC 3550's own use) hold
    /// no elements: `Ok(None)`.
    pub fn element(&self, id: u8) -> Result<Option<&'a [u8]>, ExtensionError> {
        for e in self.elements() {
            let (eid, data) = e?;
            if eid == id {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    /// Every element of the block, in order, until the first malformed one.
    pub fn elements(&self) -> Elements<'a> {
        let form = if self.profile == ONE_BYTE_PROFILE {
            Form::OneByte
        } else if self.profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
            Form::TwoByte
        } else {
            Form::None
        };
        Elements {
            data: self.data,
            form,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    OneByte,
    TwoByte,
    None,
}

/// Iterator over `(id, data)` of an extension block.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    data: &'a [u8],
    form: Form,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<(u8, &'a [u8]), ExtensionError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&first, rest) = self.data.split_first()?;
            let (id, len, rest) = match self.form {
                Form::None => return None,
                // RFC 8285 4.2: ID 0 is a padding byte; ID 15 stops parsing.
                Form::OneByte if first == 0 => {
                    self.data = rest;
                    continue;
                }
                Form::OneByte if first >> 4 == 15 => return None,
                // ID 0 with a length is no padding byte and no element
                // (RFC 8285 4.2 reserves ID 0): the block is malformed.
                Form::OneByte if first >> 4 == 0 => {
                    self.data = &[];
                    return Some(Err(ExtensionError::Id(0)));
                }
                Form::OneByte => (first >> 4, usize::from(first & 0x0f) + 1, rest),
                // RFC 8285 4.3: ID 0 pads; then an 8-bit length of 0..=255.
                Form::TwoByte if first == 0 => {
                    self.data = rest;
                    continue;
                }
                Form::TwoByte => {
                    let Some((&len, rest)) = rest.split_first() else {
                        self.data = &[];
                        return Some(Err(ExtensionError::Truncated { id: first }));
                    };
                    (first, usize::from(len), rest)
                }
            };
            let Some((data, after)) = rest.split_at_checked(len) else {
                self.data = &[];
                return Some(Err(ExtensionError::Truncated { id }));
            };
            self.data = after;
            return Some(Ok((id, data)));
        }
    }
}

/// Writes one-byte-form elements (RFC 8285 4.2) into `out`, padded with
/// zero bytes to a multiple of 4, and returns the block's length: the data
/// that follows the 0xBEDE profile and length word.
pub fn write_one_byte(out: &mut [u8], elements: &[(u8, &[u8])]) -> Result<usize, ExtensionError> {
    let mut at = 0;
    for &(id, data) in elements {
        if !(1..=14).contains(&id) {
            return Err(ExtensionError::Id(id));
        }
        if data.is_empty() || data.len() > MAX_ONE_BYTE_ELEMENT {
            return Err(ExtensionError::Length(data.len()));
        }
        let slot = out
            .get_mut(at..at + 1 + data.len())
            .ok_or(ExtensionError::BufferTooSmall)?;
        slot[0] = id << 4 | (data.len() - 1) as u8;
        slot[1..].copy_from_slice(data);
        at += 1 + data.len();
    }
    let padded = at.div_ceil(4) * 4;
    out.get_mut(at..padded)
        .ok_or(ExtensionError::BufferTooSmall)?
        .fill(0);
    Ok(padded)
}

/// The sampling instant a packet carries (docs/protocol.md 11.2): the
/// agent's stamp of its first sample, in integer nanoseconds since the
/// Unix epoch, and the spacing that gives every other one.
///
/// Receivers never compute an instant from RTP timestamps or SRs for
/// storage: integer arithmetic on these two numbers is what makes a sample
/// resent by RTX or backfill land on exactly the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SampleInstant {
    /// Samples packet: instant 0 of the payload. Events packet: the
    /// instant of the RTP timestamp (the send tick).
    pub first_ns: u64,
    /// Samples packet: nanoseconds between consecutive instants. Events
    /// packet: nanoseconds per RTP clock tick.
    pub step_ns: u64,
}

impl SampleInstant {
    /// Reads the element's 16 bytes: `first_ns`, `step_ns`, big-endian.
    pub fn decode(data: &[u8]) -> Result<Self, ExtensionError> {
        let bytes: &[u8; SAMPLE_INSTANT_LEN] = data
            .try_into()
            .map_err(|_| ExtensionError::InstantLength(data.len()))?;
        let (first, step) = bytes.split_at(8);
        let be = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_be_bytes(a)
        };
        Ok(Self {
            first_ns: be(first),
            step_ns: be(step),
        })
    }

    pub fn encode(&self) -> [u8; SAMPLE_INSTANT_LEN] {
        let mut out = [0u8; SAMPLE_INSTANT_LEN];
        out[..8].copy_from_slice(&self.first_ns.to_be_bytes());
        out[8..].copy_from_slice(&self.step_ns.to_be_bytes());
        out
    }

    /// Instant `k` of a samples packet: `first + k × step`; `None` past
    /// the year 2554 (u64 nanoseconds), which no agent stamps.
    pub fn sample(&self, k: u8) -> Option<u64> {
        self.step_ns
            .checked_mul(u64::from(k))?
            .checked_add(self.first_ns)
    }

    /// The instant of an event edge `offset` ticks (signed 32.32 fixed
    /// point, docs/protocol.md 5.4) from an events packet's timestamp:
    /// `first + floor(offset × step / 2³²)`. The floor is taken of the
    /// exact product, so every copy of an edge (sent at other ticks with
    /// other offsets) gives the same instant when the agent's tick
    /// instants are `base + n × step`.
    pub fn edge(&self, offset: i64) -> Option<u64> {
        let delta = (i128::from(offset) * i128::from(self.step_ns)) >> 32;
        u64::try_from(i128::from(self.first_ns) + delta).ok()
    }
}

#[cfg(test)]
mod tests;
