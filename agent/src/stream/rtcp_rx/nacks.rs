//! Generic NACKs (RFC 4585 6.2.1) from the collector, handed to the
//! sender thread for RTX (docs/protocol.md 11.5).
//!
//! Only the session's peer may ask for repair: under SRTP the compound
//! passed SRTCP authentication before it got here (11.8); in plain RTP it
//! must come from the peer's RTCP address (symmetric RTCP, docs/protocol.md
//! 1). A NACK about another SSRC is ignored. Everything is counted.

use super::super::stats::{Shared, bump};
use sipsensor_protocol::{RtcpPacket, parse_rtcp_compound};

/// Sequence numbers one compound may hand over: 128 per NACK at the
/// collector's own limit (11.5), a few NACKs at most. A forged compound
/// listing all 65 536 costs the ring no more than this; the history's
/// hold-off and rate bound what is resent anyway.
pub(crate) const MAX_PER_COMPOUND: usize = 1024;

/// Hand the lost sequence numbers of every NACK about `ssrc` in `data` (a
/// compound already authenticated where SRTP is on) to `out`;
/// `from_peer`: it came from the session's peer (always true under SRTP).
pub(crate) fn take_nacks(
    data: &[u8],
    ssrc: u32,
    from_peer: bool,
    stats: &Shared,
    out: &mut rtrb::Producer<u16>,
) {
    let Ok(packets) = parse_rtcp_compound(data) else {
        // `handle` counted it as malformed.
        return;
    };
    let mut budget = MAX_PER_COMPOUND;
    for p in &packets {
        let RtcpPacket::Nack(nack) = p else { continue };
        if !from_peer || nack.media_ssrc != ssrc {
            bump(&stats.nacks_refused, 1);
            continue;
        }
        bump(&stats.nacks_received, 1);
        for seq in nack.lost() {
            if budget == 0 || out.push(seq).is_err() {
                return;
            }
            budget -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipsensor_protocol::{CompoundWriter, Nack, ReceiverReport};

    fn compound(nack: &Nack) -> Vec<u8> {
        let mut buf = vec![0u8; 70_000];
        let mut w = CompoundWriter::new(&mut buf);
        w.receiver_report(&ReceiverReport {
            ssrc: nack.sender_ssrc,
            reports: vec![],
        })
        .unwrap();
        w.sdes(nack.sender_ssrc, "collector@203.0.113.5", &[])
            .unwrap();
        w.nack(nack).unwrap();
        let n = w.finish().unwrap();
        buf.truncate(n);
        buf
    }

    fn drain(rx: &mut rtrb::Consumer<u16>) -> Vec<u16> {
        std::iter::from_fn(|| rx.pop().ok()).collect()
    }

    #[test]
    fn a_nack_from_the_peer_about_our_stream_is_handed_over() {
        let stats = Shared::default();
        let (mut tx, mut rx) = rtrb::RingBuffer::new(MAX_PER_COMPOUND);
        let nack = Nack::for_lost(0x0bad_cafe, 0x1a2b_3c4d, &[0x1235, 0x1237]);
        take_nacks(&compound(&nack), 0x1a2b_3c4d, true, &stats, &mut tx);
        assert_eq!(drain(&mut rx), [0x1235, 0x1237]);
        let s = stats.snapshot();
        assert_eq!((s.nacks_received, s.nacks_refused), (1, 0));
    }

    #[test]
    fn a_stranger_s_ssrc_or_another_address_does_nothing() {
        let stats = Shared::default();
        let (mut tx, mut rx) = rtrb::RingBuffer::new(MAX_PER_COMPOUND);
        let other = Nack::for_lost(0x0bad_cafe, 0x5555_5555, &[1, 2, 3]);
        take_nacks(&compound(&other), 0x1a2b_3c4d, true, &stats, &mut tx);
        let ours = Nack::for_lost(0x0bad_cafe, 0x1a2b_3c4d, &[1, 2, 3]);
        take_nacks(&compound(&ours), 0x1a2b_3c4d, false, &stats, &mut tx);
        assert!(drain(&mut rx).is_empty());
        let s = stats.snapshot();
        assert_eq!((s.nacks_received, s.nacks_refused), (0, 2));
    }

    #[test]
    fn a_nack_for_every_sequence_number_hands_over_a_bounded_number() {
        let stats = Shared::default();
        let (mut tx, mut rx) = rtrb::RingBuffer::new(4 * MAX_PER_COMPOUND);
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let nack = Nack::for_lost(0x0bad_cafe, 7, &all);
        take_nacks(&compound(&nack), 7, true, &stats, &mut tx);
        assert_eq!(drain(&mut rx).len(), MAX_PER_COMPOUND);
    }
}
