//! RTP retransmission (RFC 4588) for the agent: the RTX payload format
//! (section 4), and [`RetransmitHistory`], which keeps the last packets
//! for `rtx-time` and answers generic NACKs (RFC 4585 6.2.1) with RTX
//! packets in their own SSRC-multiplexed stream (RFC 4588 8.3), at a
//! bounded rate whatever the NACKs ask for (docs/protocol.md 11.5).

use super::rate::ByteRate;
use super::{RtpSender, SendError, parse};
use crate::payload::EncodeError;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The largest packet the history keeps: an Ethernet MTU. Sensor packets
/// stay far below it (a 1200-byte payload, docs/protocol.md 2.2).
pub const MAX_KEPT_PACKET: usize = 1500;
/// The OSN field in front of the original payload (RFC 4588 4).
pub const OSN_LEN: usize = 2;
/// Most header extension elements copied into an RTX packet.
const MAX_ELEMENTS: usize = 8;

/// Why bytes are not an RTX payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtxError {
    #[error("RTX payload of {0} bytes has no original sequence number")]
    TooShort(usize),
}

/// The original sequence number and payload of an RTX payload (RFC 4588
/// 4: OSN, 16 bits, then the original payload unchanged).
pub fn parse_rtx(payload: &[u8]) -> Result<(u16, &[u8]), RtxError> {
    match payload {
        [hi, lo, rest @ ..] => Ok((u16::from_be_bytes([*hi, *lo]), rest)),
        _ => Err(RtxError::TooShort(payload.len())),
    }
}

/// Writes an RTX payload: OSN, then `original`.
pub fn write_rtx_payload(
    out: &mut [u8],
    original_seq: u16,
    original: &[u8],
) -> Result<usize, EncodeError> {
    let need = OSN_LEN + original.len();
    let have = out.len();
    let slot = out
        .get_mut(..need)
        .ok_or(EncodeError::BufferTooSmall { need, have })?;
    slot[..OSN_LEN].copy_from_slice(&original_seq.to_be_bytes());
    slot[OSN_LEN..].copy_from_slice(original);
    Ok(need)
}

/// What the agent's RTX responder is allowed (docs/protocol.md 11.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtxConfig {
    /// `(apt, rtx payload type)` per original payload type (RFC 4588 8.1).
    pub payload_types: Vec<(u8, u8)>,
    /// How long a packet stays retransmittable: the SDP's `rtx-time`.
    pub rtx_time: Duration,
    /// Packets kept; memory is this many times [`MAX_KEPT_PACKET`],
    /// allocated once. Size it to rtx-time × the packet rate.
    pub capacity: usize,
    /// The RTX stream's byte rate cap and burst, RTP headers included.
    pub max_rate: u64,
    pub burst: u64,
    /// A packet is resent at most once per this interval, however often
    /// it is NACKed: a repeated or forged NACK cannot multiply it.
    pub resend_holdoff: Duration,
}

#[derive(Debug, Clone)]
struct Slot {
    seq: u16,
    stored_at: Option<Instant>,
    resent_at: Option<Instant>,
    queued: bool,
    len: usize,
    bytes: Box<[u8]>,
}

/// The agent's last packets and the RTX stream that resends them.
#[derive(Debug, Clone)]
pub struct RetransmitHistory {
    config: RtxConfig,
    slots: Vec<Slot>,
    queue: VecDeque<u16>,
    sender: RtpSender,
    rate: ByteRate,
    /// NACKed sequence numbers the history no longer (or never) had.
    unavailable: u64,
}

impl RetransmitHistory {
    /// A history whose RTX packets go out as `sender` (the RTX SSRC and
    /// its own sequence numbers, RFC 4588 8.3).
    pub fn new(config: RtxConfig, sender: RtpSender, now: Instant) -> Self {
        let capacity = config.capacity.clamp(1, 1 << 16);
        let slots = (0..capacity)
            .map(|_| Slot {
                seq: 0,
                stored_at: None,
                resent_at: None,
                queued: false,
                len: 0,
                bytes: vec![0; MAX_KEPT_PACKET].into_boxed_slice(),
            })
            .collect();
        Self {
            rate: ByteRate::new(config.max_rate, config.burst, now),
            config,
            slots,
            queue: VecDeque::with_capacity(capacity),
            sender,
            unavailable: 0,
        }
    }

    pub fn rtx_ssrc(&self) -> u32 {
        self.sender.ssrc()
    }

    /// NACKed packets that were not (or no longer) in the history.
    pub fn unavailable(&self) -> u64 {
        self.unavailable
    }

    fn slot_of(&self, seq: u16) -> usize {
        usize::from(seq) % self.slots.len()
    }

    /// Keeps a copy of a live packet just sent (unprotected RTP). Packets
    /// larger than [`MAX_KEPT_PACKET`], not RTP, or of a payload type
    /// without an RTX payload type are not kept.
    pub fn record(&mut self, packet: &[u8], now: Instant) {
        let Ok(p) = parse(packet) else { return };
        let retransmittable = self
            .config
            .payload_types
            .iter()
            .any(|(apt, _)| *apt == p.payload_type);
        if packet.len() > MAX_KEPT_PACKET || !retransmittable {
            return;
        }
        let i = self.slot_of(p.sequence);
        let slot = &mut self.slots[i];
        slot.seq = p.sequence;
        slot.stored_at = Some(now);
        slot.resent_at = None;
        slot.queued = false;
        slot.len = packet.len();
        slot.bytes[..packet.len()].copy_from_slice(packet);
    }

    /// The slot holding `seq` while it may still be resent.
    fn live_slot(&self, seq: u16, now: Instant) -> Option<usize> {
        let i = self.slot_of(seq);
        let s = &self.slots[i];
        let stored = s.stored_at?;
        (s.seq == seq && now.saturating_duration_since(stored) <= self.config.rtx_time).then_some(i)
    }

    /// A generic NACK asked for these packets (RFC 4585 6.2.1). Each one
    /// the history holds is queued once; the queue never outgrows the
    /// history, so a NACK for every sequence number costs no memory.
    pub fn on_nack(&mut self, lost: impl IntoIterator<Item = u16>, now: Instant) {
        for seq in lost {
            let Some(i) = self.live_slot(seq, now) else {
                self.unavailable += 1;
                continue;
            };
            let holdoff = self.config.resend_holdoff;
            let s = &mut self.slots[i];
            let recently = s
                .resent_at
                .is_some_and(|t| now.saturating_duration_since(t) < holdoff);
            if s.queued || recently {
                continue;
            }
            s.queued = true;
            self.queue.push_back(seq);
        }
    }

    /// Writes the next RTX packet into `buf` if one is due and the rate
    /// allows it now; `Ok(None)` otherwise (see [`Self::poll_timeout`]).
    pub fn poll_transmit(
        &mut self,
        buf: &mut [u8],
        now: Instant,
    ) -> Result<Option<usize>, SendError> {
        while let Some(&seq) = self.queue.front() {
            let Some(i) = self.live_slot(seq, now).filter(|&i| self.slots[i].queued) else {
                // Overwritten or older than rtx-time: the receiver gave up.
                self.queue.pop_front();
                continue;
            };
            let rtx_len = self.slots[i].len + OSN_LEN;
            if !self.rate.try_spend(rtx_len, now) {
                return Ok(None);
            }
            self.queue.pop_front();
            let slot = &mut self.slots[i];
            slot.queued = false;
            slot.resent_at = Some(now);
            let original = &slot.bytes[..slot.len];
            return write_rtx(&mut self.sender, &self.config.payload_types, original, buf)
                .map(Some);
        }
        Ok(None)
    }

    /// When [`Self::poll_transmit`] next has something to send: `None`
    /// when nothing is queued (or the rate is 0).
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        let &seq = self.queue.front()?;
        let len = self
            .live_slot(seq, now)
            .map_or(0, |i| self.slots[i].len + OSN_LEN);
        self.rate.ready_at(len, now)
    }
}

/// One RTX packet for `original` (RFC 4588 4): the RTX payload type of
/// its payload type, its timestamp and marker, its header extension
/// elements (the sample instant, docs/protocol.md 11.2), OSN + payload.
fn write_rtx(
    sender: &mut RtpSender,
    payload_types: &[(u8, u8)],
    original: &[u8],
    buf: &mut [u8],
) -> Result<usize, SendError> {
    let p = parse(original).map_err(|_| SendError::BufferTooSmall)?;
    let rtx_pt = payload_types
        .iter()
        .find(|(apt, _)| *apt == p.payload_type)
        .map(|(_, rtx)| *rtx)
        .ok_or(SendError::NoFormat("rtx"))?;
    let mut elements: [(u8, &[u8]); MAX_ELEMENTS] = [(0, &[]); MAX_ELEMENTS];
    let mut n = 0;
    if let Some(ext) = p.extension {
        for e in ext.elements().take(MAX_ELEMENTS).flatten() {
            elements[n] = e;
            n += 1;
        }
    }
    sender.write_extended(buf, rtx_pt, p.marker, p.timestamp, &elements[..n], |b| {
        write_rtx_payload(b, p.sequence, p.payload)
    })
}

#[cfg(test)]
mod tests;
