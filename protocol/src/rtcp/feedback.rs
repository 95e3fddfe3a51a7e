//! Generic NACK (RFC 4585 6.2.1): a transport-layer feedback message
//! (RTPFB, packet type 205, FMT 1) listing lost RTP sequence numbers as
//! PID/BLP pairs.

/// Transport-layer feedback (RFC 4585 6.1).
pub const PT_RTPFB: u8 = 205;
/// The FMT of generic NACK (RFC 4585 6.2.1).
pub const FMT_NACK: u8 = 1;
/// One PID/BLP pair covers PID and the 16 sequence numbers after it.
const SPAN: u16 = 16;

/// A generic NACK: `media_ssrc` lost these packets, says `sender_ssrc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    pub sender_ssrc: u32,
    pub media_ssrc: u32,
    /// The FCI entries as sent: `(PID, BLP)`. Bit i of BLP set means
    /// PID + i + 1 is lost too.
    pub items: Vec<(u16, u16)>,
}

impl Nack {
    /// A NACK for `lost`, in the order given (the receiver's oldest
    /// first), packed greedily into PID/BLP pairs.
    pub fn for_lost(sender_ssrc: u32, media_ssrc: u32, lost: &[u16]) -> Self {
        let mut items: Vec<(u16, u16)> = Vec::new();
        for &seq in lost {
            if let Some((pid, blp)) = items.last_mut() {
                let d = seq.wrapping_sub(*pid);
                if (1..=SPAN).contains(&d) {
                    *blp |= 1 << (d - 1);
                    continue;
                }
                if d == 0 {
                    continue;
                }
            }
            items.push((seq, 0));
        }
        Self {
            sender_ssrc,
            media_ssrc,
            items,
        }
    }

    /// Every sequence number the NACK reports lost.
    pub fn lost(&self) -> impl Iterator<Item = u16> + '_ {
        self.items.iter().flat_map(|&(pid, blp)| {
            std::iter::once(pid).chain(
                (0..SPAN)
                    .filter(move |i| blp & (1 << i) != 0)
                    .map(move |i| pid.wrapping_add(i + 1)),
            )
        })
    }

    /// The body after the common header: SSRCs then FCI (RFC 4585 6.1).
    pub(super) fn parse_body(b: &[u8]) -> Option<Self> {
        let word = |i: usize| -> Option<[u8; 4]> { b.get(i..i + 4)?.try_into().ok() };
        let sender_ssrc = u32::from_be_bytes(word(0)?);
        let media_ssrc = u32::from_be_bytes(word(4)?);
        let fci = &b[8..];
        // RFC 4585 6.2.1: at least one FCI entry.
        if fci.is_empty() || !fci.len().is_multiple_of(4) {
            return None;
        }
        let items = fci
            .chunks_exact(4)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u16::from_be_bytes([c[2], c[3]]),
                )
            })
            .collect();
        Some(Self {
            sender_ssrc,
            media_ssrc,
            items,
        })
    }

    pub(super) fn body_len(&self) -> usize {
        8 + 4 * self.items.len()
    }

    pub(super) fn write_body(&self, b: &mut [u8]) {
        b[0..4].copy_from_slice(&self.sender_ssrc.to_be_bytes());
        b[4..8].copy_from_slice(&self.media_ssrc.to_be_bytes());
        for (c, (pid, blp)) in b[8..].chunks_exact_mut(4).zip(&self.items) {
            c[0..2].copy_from_slice(&pid.to_be_bytes());
            c[2..4].copy_from_slice(&blp.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::tests::writer_with_rr;
    use crate::rtcp::{CompoundWriter, RtcpPacket, parse_compound};

    #[test]
    fn lost_packets_pack_into_pid_blp_pairs_and_back() {
        // 0xfffe, 0xffff, 1 (wrapping), 14 (16 after 0xfffe), 15 (17
        // after: a new pair), 16, then 40.
        let lost = [0xfffe, 0xffff, 1, 14, 15, 16, 40];
        let n = Nack::for_lost(1, 2, &lost);
        assert_eq!(
            n.items,
            vec![(0xfffe, 0b1000_0000_0000_0101), (15, 1), (40, 0)],
            "0xffff is bit 0, 1 bit 2, 14 bit 15 after 0xfffe"
        );
        assert_eq!(n.lost().collect::<Vec<_>>(), lost);
        let dup = Nack::for_lost(1, 2, &[5, 5, 6]);
        assert_eq!(dup.items, vec![(5, 1)]);
    }

    #[test]
    fn a_nack_in_a_compound_has_the_bytes_of_rfc_4585() {
        let mut buf = [0u8; 128];
        let mut w = writer_with_rr(&mut buf, 0x0badcafe);
        let nack = Nack::for_lost(0x0badcafe, 0x1a2b3c4d, &[0x1236, 0x1238]);
        w.nack(&nack).unwrap();
        let len = w.len();
        assert_eq!(
            &buf[8..len],
            &[
                0x81, 205, 0x00, 0x03, // FMT 1, RTPFB, 3 words follow
                0x0b, 0xad, 0xca, 0xfe, // sender
                0x1a, 0x2b, 0x3c, 0x4d, // media source
                0x12, 0x36, 0x00, 0x02, // PID 0x1236, BLP: 0x1238
            ]
        );
        let parsed = parse_compound(&buf[..len]).unwrap();
        assert_eq!(parsed[1], RtcpPacket::Nack(nack));
        let mut w = CompoundWriter::new(&mut buf);
        assert!(w.nack(&Nack::for_lost(1, 2, &[])).is_err());
    }

    #[test]
    fn a_nack_without_fci_or_with_a_ragged_one_is_malformed() {
        assert_eq!(Nack::parse_body(&[0; 8]), None);
        assert_eq!(Nack::parse_body(&[0; 10]), None);
        assert_eq!(Nack::parse_body(&[0; 7]), None);
        // Other RTPFB formats stay unknown, not errors.
        let other = [
            0x80, 201, 0, 1, 0, 0, 0, 1, 0x83, 205, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2,
        ];
        let parsed = parse_compound(&other).unwrap();
        assert!(matches!(
            parsed[1],
            RtcpPacket::Unknown {
                packet_type: 205,
                count: 3,
                ..
            }
        ));
    }
}
