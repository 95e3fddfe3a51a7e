use super::*;
use crate::rtp::srtp::SrtpContext;
use rtc_srtp::context::Context;
use rtc_srtp::protection_profile::ProtectionProfile;

const SSRC: u32 = 0xCAFE_F00D;

/// An RTP packet; with `csrcs_and_extension`, two CSRCs and a one-word
/// header extension (a profile of its own, read as opaque words), which
/// must stay clear (RFC 3711 3.1).
fn rtp(seq: u16, csrcs_and_extension: bool) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    if csrcs_and_extension {
        p[0] = 0x80 | 0x10 | 2;
    }
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 20).to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    if csrcs_and_extension {
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
        p.extend_from_slice(&[0x12, 0x34, 0, 1, 1, 2, 3, 4]);
    }
    p.extend_from_slice(b"twenty bytes of data");
    p
}

/// A sender report without report blocks (RFC 3550 6.4.1).
fn rtcp_sr() -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(&[7; 20]);
    p
}

fn crate_context(key: &SrtpKey, inbound: bool) -> Context {
    let profile = match key.suite() {
        SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
    };
    let provider = rtc_srtp::crypto::default_provider().unwrap();
    let replay = |w| inbound.then(|| rtc_srtp::option::srtp_replay_protection(w));
    let replay_rtcp = |w| inbound.then(|| rtc_srtp::option::srtcp_replay_protection(w));
    Context::new(
        key.master_key(),
        key.master_salt(),
        profile,
        replay(64),
        replay_rtcp(64),
        provider.crypto(),
    )
    .unwrap()
}

#[test]
fn rtp_is_byte_for_byte_what_rtc_srtp_makes_across_a_rollover() {
    for suite in SrtpSuite::ALL {
        let key = SrtpKey::generate(suite);
        let mut ours = SrtpContext::outbound(&key).unwrap();
        let mut theirs = crate_context(&key, false);
        let mut wire = Vec::new();
        for (n, seq) in (65533..=u16::MAX).chain(0..3).enumerate() {
            let packet = rtp(seq, n % 2 == 1);
            ours.protect_rtp(&packet, &mut wire).unwrap();
            let expected = theirs.encrypt_rtp(&packet).unwrap();
            assert_eq!(wire, expected.to_vec(), "{suite} seq {seq}");
        }
    }
}

#[test]
fn srtcp_opens_with_rtc_srtp_and_counts_its_index_from_zero() {
    for suite in SrtpSuite::ALL {
        let key = SrtpKey::generate(suite);
        let mut ours = SrtpContext::outbound(&key).unwrap();
        let mut theirs = crate_context(&key, true);
        let report = rtcp_sr();
        let mut wire = Vec::new();
        for index in 0..3u32 {
            ours.protect_rtcp(&report, &mut wire).unwrap();
            // RFC 3711 3.4 / RFC 7714 9.1: E flag and index, before the
            // tag for AES-CM, last for AEAD.
            let at = match suite {
                SrtpSuite::AesCm128HmacSha1_80 => wire.len() - 14,
                SrtpSuite::AeadAes128Gcm => wire.len() - 4,
            };
            assert_eq!(
                wire[at..at + 4],
                (ENCRYPTED | index).to_be_bytes(),
                "{suite}"
            );
            assert_ne!(wire[8..report.len()], report[8..], "encrypted");
            let opened = theirs.decrypt_rtcp(&wire).unwrap();
            assert_eq!(opened.to_vec(), report, "{suite} index {index}");
        }
    }
}

#[test]
fn the_key_is_refused_past_its_packet_limits() {
    // RFC 3711 9.2: 2^48 SRTP or 2^31 SRTCP packets per master key.
    let key = SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80);
    let provider = rtc_srtp::crypto::default_provider().unwrap();
    let mut sealer = Sealer::new(&key, provider.crypto()).unwrap();
    let mut out = Vec::new();
    sealer.rtcp_index = MAX_RTCP_INDEX;
    sealer.rtcp(&rtcp_sr(), &mut out).unwrap();
    assert_eq!(
        sealer.rtcp(&rtcp_sr(), &mut out),
        Err(SrtpError::KeyExhausted)
    );
    sealer.rtp_index = Some((1 << 48) - 1);
    assert_eq!(
        sealer.rtp(&rtp(0, false), &mut out),
        Err(SrtpError::KeyExhausted)
    );
}

#[test]
fn malformed_packets_are_refused_not_panics() {
    let key = SrtpKey::generate(SrtpSuite::AeadAes128Gcm);
    let mut ours = SrtpContext::outbound(&key).unwrap();
    let mut out = Vec::new();
    // Version 0, then a header whose CSRCs or extension overrun it.
    for bad in [vec![0u8; 20], vec![0x8F; 20], {
        let mut p = rtp(1, false);
        p[0] |= 0x10;
        p.truncate(14);
        p
    }] {
        assert!(matches!(
            ours.protect_rtp(&bad, &mut out),
            Err(SrtpError::Malformed(_))
        ));
    }
    assert!(matches!(
        ours.protect_rtcp(&[0x80, 200, 0], &mut out),
        Err(SrtpError::Malformed(_))
    ));
    let mut inbound = SrtpContext::inbound(&key).unwrap();
    assert_eq!(
        inbound.protect_rtp(&rtp(1, false), &mut out),
        Err(SrtpError::WrongWay)
    );
}
