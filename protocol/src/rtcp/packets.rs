//! RTCP packet types (RFC 3550 6.4-6.7) and the compound parser (6.1, A.2).

use super::feedback::{FMT_NACK, Nack, PT_RTPFB};
use super::ntp::NtpTime;
use thiserror::Error;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;
pub const PT_APP: u8 = 204;
/// SDES item type of the canonical name (RFC 3550 6.5.1).
pub const SDES_CNAME: u8 = 1;
/// Largest compound packet accepted: a UDP datagram.
pub const MAX_COMPOUND_LEN: usize = 65_535;
/// Report blocks, SDES chunks and BYE sources per packet: a 5-bit count.
pub const MAX_COUNT: usize = 31;

/// One reception report block (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed on the wire.
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP time; 0 when none was received.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderReport {
    pub ssrc: u32,
    pub ntp: NtpTime,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    pub reports: Vec<ReportBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverReport {
    pub ssrc: u32,
    pub reports: Vec<ReportBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesItem {
    pub kind: u8,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    pub ssrc: u32,
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    /// The CNAME item as text, if present and UTF-8.
    pub fn cname(&self) -> Option<&str> {
        self.items
            .iter()
            .find(|i| i.kind == SDES_CNAME)
            .and_then(|i| std::str::from_utf8(&i.value).ok())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bye {
    pub sources: Vec<u32>,
    pub reason: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub subtype: u8,
    pub ssrc: u32,
    pub name: [u8; 4],
    pub data: Vec<u8>,
}

/// One packet of a compound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport(SenderReport),
    ReceiverReport(ReceiverReport),
    SourceDescription(Vec<SdesChunk>),
    Bye(Bye),
    App(App),
    /// Generic NACK (RFC 4585 6.2.1).
    Nack(Nack),
    /// A type this code does not interpret (e.g. other RFC 4585 feedback).
    Unknown {
        packet_type: u8,
        count: u8,
        body: Vec<u8>,
    },
}

/// Why bytes are not a valid compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtcpError {
    #[error("compound packet of {0} bytes is empty or too large")]
    Size(usize),
    #[error("packet at byte {at}: version {version}, must be 2")]
    Version { at: usize, version: u8 },
    #[error("first packet has type {0}, must be SR or RR (RFC 3550 6.1)")]
    FirstNotReport(u8),
    #[error("packet at byte {0}: padding is only allowed on the last packet")]
    PaddingNotLast(usize),
    #[error("packet at byte {at}: length runs past the end ({len} bytes left)")]
    Length { at: usize, len: usize },
    #[error("packet at byte {0}: bad padding count")]
    Padding(usize),
    #[error("packet at byte {at}: type {packet_type} body too short for its count")]
    Body { at: usize, packet_type: u8 },
}

/// Parses a compound RTCP packet with the validity checks of RFC 3550
/// A.2: version 2 throughout, an SR or RR first, padding only in the last
/// packet, and lengths that add up to the datagram exactly.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if buf.len() < 4 || buf.len() > MAX_COMPOUND_LEN {
        return Err(RtcpError::Size(buf.len()));
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let Some(&[b0, pt, l0, l1]) = rest.first_chunk::<4>() else {
            return Err(RtcpError::Length {
                at,
                len: rest.len(),
            });
        };
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtcpError::Version { at, version });
        }
        if at == 0 && pt != PT_SR && pt != PT_RR {
            return Err(RtcpError::FirstNotReport(pt));
        }
        let len = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
        let Some(packet) = rest.get(..len) else {
            return Err(RtcpError::Length {
                at,
                len: rest.len(),
            });
        };
        let last = at + len == buf.len();
        let mut body = &packet[4..];
        if b0 & 0x20 != 0 {
            if !last {
                return Err(RtcpError::PaddingNotLast(at));
            }
            let pad = usize::from(packet[len - 1]);
            if pad == 0 || pad > body.len() {
                return Err(RtcpError::Padding(at));
            }
            body = &body[..body.len() - pad];
        }
        let count = b0 & 0x1f;
        out.push(parse_one(pt, count, body).ok_or(RtcpError::Body {
            at,
            packet_type: pt,
        })?);
        at += len;
    }
    Ok(out)
}

fn be32(b: &[u8], i: usize) -> Option<u32> {
    let s = b.get(i..i + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn report_blocks(b: &[u8], count: u8) -> Option<Vec<ReportBlock>> {
    let mut v = Vec::with_capacity(usize::from(count));
    for i in 0..usize::from(count) {
        let o = i * 24;
        let lost = be32(b, o + 4)?;
        // 24-bit two's complement (RFC 3550 6.4.1).
        let cumulative = ((lost << 8) as i32) >> 8;
        v.push(ReportBlock {
            ssrc: be32(b, o)?,
            fraction_lost: (lost >> 24) as u8,
            cumulative_lost: cumulative,
            extended_highest_seq: be32(b, o + 8)?,
            jitter: be32(b, o + 12)?,
            last_sr: be32(b, o + 16)?,
            delay_since_last_sr: be32(b, o + 20)?,
        });
    }
    Some(v)
}

/// One packet's body (after the 4-byte header, padding removed); `None`
/// when it is too short for what its header announces. Trailing bytes
/// after the announced content (profile extensions, 6.4.1) are ignored.
fn parse_one(pt: u8, count: u8, b: &[u8]) -> Option<RtcpPacket> {
    Some(match pt {
        PT_SR => {
            let ntp = (u64::from(be32(b, 4)?) << 32) | u64::from(be32(b, 8)?);
            RtcpPacket::SenderReport(SenderReport {
                ssrc: be32(b, 0)?,
                ntp: NtpTime(ntp),
                rtp_timestamp: be32(b, 12)?,
                packet_count: be32(b, 16)?,
                octet_count: be32(b, 20)?,
                reports: report_blocks(b.get(24..)?, count)?,
            })
        }
        PT_RR => RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: be32(b, 0)?,
            reports: report_blocks(b.get(4..)?, count)?,
        }),
        PT_SDES => RtcpPacket::SourceDescription(parse_sdes(b, count)?),
        PT_BYE => {
            let mut sources = Vec::with_capacity(usize::from(count));
            for i in 0..usize::from(count) {
                sources.push(be32(b, i * 4)?);
            }
            let rest = &b[usize::from(count) * 4..];
            let reason = match rest.first() {
                Some(&n) => Some(rest.get(1..1 + usize::from(n))?.to_vec()),
                None => None,
            };
            RtcpPacket::Bye(Bye { sources, reason })
        }
        PT_APP => {
            let name = b.get(4..8)?;
            RtcpPacket::App(App {
                subtype: count,
                ssrc: be32(b, 0)?,
                name: [name[0], name[1], name[2], name[3]],
                data: b[8..].to_vec(),
            })
        }
        PT_RTPFB if count == FMT_NACK => RtcpPacket::Nack(Nack::parse_body(b)?),
        _ => RtcpPacket::Unknown {
            packet_type: pt,
            count,
            body: b.to_vec(),
        },
    })
}

/// SDES chunks (RFC 3550 6.5): SSRC, items, a null item, padding to 32 bits.
fn parse_sdes(b: &[u8], count: u8) -> Option<Vec<SdesChunk>> {
    let mut chunks = Vec::with_capacity(usize::from(count));
    let mut at = 0;
    for _ in 0..count {
        let ssrc = be32(b, at)?;
        at += 4;
        let mut items = Vec::new();
        loop {
            let kind = *b.get(at)?;
            if kind == 0 {
                // Null item ends the list; skip to the next 32-bit boundary.
                at = (at + 4) & !3;
                break;
            }
            let len = usize::from(*b.get(at + 1)?);
            let value = b.get(at + 2..at + 2 + len)?.to_vec();
            items.push(SdesItem { kind, value });
            at += 2 + len;
        }
        chunks.push(SdesChunk { ssrc, items });
    }
    Some(chunks)
}
