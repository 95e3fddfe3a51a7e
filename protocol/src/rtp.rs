//! RTP (RFC 3550) on the `rtp-rs` crate: parsing, the sender's state
//! (5.1), and the receiver's statistics (A.1, A.3, A.8) in [`RtpReceiver`].

mod backfill;
mod extension;
mod nack;
mod rate;
mod receiver;
mod rtx;
mod srtp;

pub use backfill::{BackfillCursor, BackfillPacer, Pace as BackfillPace};
pub use extension::{
    ExtensionError, HeaderExtension, ONE_BYTE_PROFILE, SAMPLE_INSTANT_LEN, SAMPLE_INSTANT_URI,
    SampleInstant, write_one_byte,
};
pub use nack::{NackConfig, NackScheduler};
pub use rate::ByteRate;
pub use receiver::{ReceiverStats, RtpReceiver, Verdict};
pub use rtx::{
    MAX_KEPT_PACKET, RetransmitHistory, RtxConfig, RtxError, parse_rtx, write_rtx_payload,
};
pub use srtp::{SrtpContext, SrtpError};

use crate::ids::IdGenerator;
use crate::payload::{self, EncodeError, EventBatch};
use crate::rtcp::{NtpTime, SenderReport};
use crate::sdp::StreamDescription;
use rtp_rs::{RtpPacketBuilder, RtpReader, RtpReaderError, Seq};
use thiserror::Error;

/// The fixed header without CSRCs or extension.
pub const HEADER_LEN: usize = 12;

/// The fields of a parsed packet, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc_count: u8,
    pub has_extension: bool,
    /// The header extension (RFC 3550 5.3.1), when X is set.
    pub extension: Option<HeaderExtension<'a>>,
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// The sample instant in element `id` (the `a=extmap` ID the session
    /// agreed, docs/protocol.md 11.2); `Ok(None)` when the packet has none.
    pub fn sample_instant(&self, id: u8) -> Result<Option<SampleInstant>, ExtensionError> {
        let Some(ext) = self.extension else {
            return Ok(None);
        };
        ext.element(id)?.map(SampleInstant::decode).transpose()
    }
}

/// Why bytes are not an RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("{0} bytes, shorter than an RTP header")]
    TooShort(usize),
    #[error("RTP version {0}, must be 2")]
    Version(u8),
    #[error("headers of {header_len} bytes in a {len}-byte packet")]
    Truncated { header_len: usize, len: usize },
    #[error("padding count {0} is invalid")]
    Padding(u8),
    #[error("payload type {0} with the marker bit is an RTCP packet type (RFC 5761 4)")]
    LooksLikeRtcp(u8),
}

/// Parses one packet. Validates the header as RFC 3550 A.1 asks (version,
/// lengths, padding) and refuses what is really RTCP sent to the RTP port.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    let r = RtpReader::new(buf).map_err(|e| match e {
        RtpReaderError::BufferTooShort(n) => RtpError::TooShort(n),
        RtpReaderError::UnsupportedVersion(v) => RtpError::Version(v),
        RtpReaderError::HeadersTruncated {
            header_len,
            buffer_len,
        } => RtpError::Truncated {
            header_len,
            len: buffer_len,
        },
        RtpReaderError::PaddingLengthInvalid(p) => RtpError::Padding(p),
    })?;
    // RFC 5761 4: RTCP types 200-204 look like marker + PT 72-76.
    if r.mark() && (72..=76).contains(&r.payload_type()) {
        return Err(RtpError::LooksLikeRtcp(r.payload_type()));
    }
    Ok(RtpPacket {
        marker: r.mark(),
        payload_type: r.payload_type(),
        sequence: u16::from(r.sequence_number()),
        timestamp: r.timestamp(),
        ssrc: r.ssrc(),
        csrc_count: r.csrc_count(),
        has_extension: r.extension().is_some(),
        extension: r
            .extension()
            .map(|(profile, data)| HeaderExtension { profile, data }),
        payload: r.payload(),
    })
}

/// A packet that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    #[error("buffer too small for the packet")]
    BufferTooSmall,
    #[error("payload type {0} is not 0..=127")]
    PayloadType(u8),
    #[error("the stream description has no {0} format")]
    NoFormat(&'static str),
    #[error("payload: {0}")]
    Payload(#[from] EncodeError),
    #[error("header extension: {0}")]
    Extension(#[from] ExtensionError),
}

/// The sending side of one RTP stream (one SSRC).
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    next_seq: u16,
    timestamp_base: u32,
    packets: u32,
    octets: u32,
}

impl RtpSender {
    /// Random SSRC, initial sequence number and timestamp offset (RFC
    /// 3550 5.1, 8.1).
    pub fn new(ids: &mut IdGenerator) -> Self {
        let ssrc = ids.u32();
        let seq = ids.u32() as u16;
        let ts = ids.u32();
        Self::with_start(ssrc, seq, ts)
    }

    /// Given starting values, for tests and for continuing a stream.
    pub fn with_start(ssrc: u32, first_seq: u16, timestamp_base: u32) -> Self {
        Self {
            ssrc,
            next_seq: first_seq,
            timestamp_base,
            packets: 0,
            octets: 0,
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet gets.
    pub fn next_sequence(&self) -> u16 {
        self.next_seq
    }

    /// Packets and payload octets sent so far (the SR's counts, 6.4.1).
    pub fn packet_count(&self) -> u32 {
        self.packets
    }

    pub fn octet_count(&self) -> u32 {
        self.octets
    }

    /// The RTP timestamp of clock tick `tick` (ticks since the stream's
    /// epoch): the random base plus the tick, modulo 2^32.
    pub fn timestamp(&self, tick: u64) -> u32 {
        self.timestamp_base.wrapping_add(tick as u32)
    }

    /// Writes one packet: header by `rtp-rs`, payload by `payload`, which
    /// gets the buffer after the header and returns the bytes it wrote.
    /// The sequence number advances only when the packet is complete.
    pub fn write_with(
        &mut self,
        buf: &mut [u8],
        payload_type: u8,
        marker: bool,
        tick: u64,
        payload: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<usize, SendError> {
        self.write_extended(
            buf,
            payload_type,
            marker,
            self.timestamp(tick),
            &[],
            payload,
        )
    }

    /// [`Self::write_with`] with RFC 8285 one-byte elements in the header
    /// (none: no extension) and the RTP timestamp given as it goes on the
    /// wire: an RTX packet repeats its original's (RFC 4588 4).
    pub fn write_extended(
        &mut self,
        buf: &mut [u8],
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        elements: &[(u8, &[u8])],
        payload: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<usize, SendError> {
        if payload_type > 127 {
            return Err(SendError::PayloadType(payload_type));
        }
        // One-byte elements hold at most 17 bytes each, with padding.
        let mut block = [0u8; 4 * 20];
        let block_len = if elements.is_empty() {
            0
        } else {
            write_one_byte(&mut block, elements)?
        };
        let header_len = HEADER_LEN + if block_len > 0 { 4 + block_len } else { 0 };
        let (head, body) = buf
            .split_at_mut_checked(header_len)
            .ok_or(SendError::BufferTooSmall)?;
        let n = payload(body)?;
        let mut header = RtpPacketBuilder::new()
            .payload_type(payload_type)
            .marked(marker)
            .sequence(Seq::from(self.next_seq))
            .timestamp(timestamp)
            .ssrc(self.ssrc);
        if block_len > 0 {
            header = header.extension(ONE_BYTE_PROFILE, &block[..block_len]);
        }
        header
            .build_into(head)
            .map_err(|_| SendError::BufferTooSmall)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(n as u32);
        Ok(header_len + n)
    }

    /// A samples packet whose first instant is at `first_tick`. Set
    /// `marker` on the first packet after a start, a config change or a gap
    /// in the sampling (docs/protocol.md).
    pub fn write_samples(
        &mut self,
        buf: &mut [u8],
        desc: &StreamDescription,
        first_tick: u64,
        values: &[i32],
        marker: bool,
    ) -> Result<usize, SendError> {
        self.samples_packet(buf, desc, first_tick, values, marker, None)
    }

    /// [`Self::write_samples`] stamped with the sample instant of its
    /// first instant in element `id` (docs/protocol.md 11.2), for a session
    /// that agreed the extension. The same `tick` as the payload's first
    /// instant: the pair must describe the same sample.
    pub fn write_samples_stamped(
        &mut self,
        buf: &mut [u8],
        desc: &StreamDescription,
        first_tick: u64,
        values: &[i32],
        marker: bool,
        (id, instant): (u8, SampleInstant),
    ) -> Result<usize, SendError> {
        self.samples_packet(buf, desc, first_tick, values, marker, Some((id, instant)))
    }

    fn samples_packet(
        &mut self,
        buf: &mut [u8],
        desc: &StreamDescription,
        first_tick: u64,
        values: &[i32],
        marker: bool,
        stamp: Option<(u8, SampleInstant)>,
    ) -> Result<usize, SendError> {
        let s = desc
            .samples
            .as_ref()
            .ok_or(SendError::NoFormat("samples"))?;
        let channels = s.channels.len();
        let config = desc.config;
        let element = stamp.map(|(id, instant)| (id, instant.encode()));
        let elements: &[(u8, &[u8])] = match &element {
            Some((id, bytes)) => &[(*id, bytes)],
            None => &[],
        };
        let timestamp = self.timestamp(first_tick);
        self.write_extended(buf, s.payload_type, marker, timestamp, elements, |b| {
            payload::encode_samples(b, config, channels, values)
        })
    }

    /// An events packet from the outbox; its timestamp is the batch's tick.
    pub fn write_events(
        &mut self,
        buf: &mut [u8],
        desc: &StreamDescription,
        batch: &EventBatch,
    ) -> Result<usize, SendError> {
        let e = desc.events.as_ref().ok_or(SendError::NoFormat("events"))?;
        let config = desc.config;
        self.write_with(buf, e.payload_type, batch.marker, batch.tick, |b| {
            batch.encode(b, config)
        })
    }

    /// A sender report pairing clock tick `tick` with the wall-clock time
    /// `ntp` of that same instant (RFC 3550 6.4.1; docs/protocol.md asks
    /// for the pairing to be exact, not the send time rounded).
    pub fn sender_report(&self, tick: u64, ntp: NtpTime) -> SenderReport {
        SenderReport {
            ssrc: self.ssrc,
            ntp,
            rtp_timestamp: self.timestamp(tick),
            packet_count: self.packets,
            octet_count: self.octets,
            reports: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
