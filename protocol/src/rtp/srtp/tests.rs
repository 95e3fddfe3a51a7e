use super::*;

const SSRC: u32 = 0x1234_5678;

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 10).to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An RTCP receiver report without report blocks (RFC 3550 6.4.2).
fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 201, 0, 1];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p
}

fn pair(suite: SrtpSuite) -> (SrtpContext, SrtpContext) {
    let key = SrtpKey::generate(suite);
    (
        SrtpContext::outbound(&key).unwrap(),
        SrtpContext::inbound(&key).unwrap(),
    )
}

#[test]
fn rtp_and_rtcp_round_trip_in_both_suites() {
    for suite in SrtpSuite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let (mut wire, mut plain) = (Vec::new(), Vec::new());
        let packet = rtp(1, b"samples!");
        tx.protect_rtp(&packet, &mut wire).unwrap();
        assert_eq!(wire.len(), packet.len() + tx.rtp_overhead(), "{suite}");
        assert_eq!(wire[..12], packet[..12], "the header stays clear");
        assert_ne!(wire[12..20], packet[12..], "the payload is encrypted");
        rx.unprotect_rtp(&wire, &mut plain).unwrap();
        assert_eq!(plain, packet);

        let report = rtcp_rr(SSRC);
        tx.protect_rtcp(&report, &mut wire).unwrap();
        assert_eq!(wire.len(), report.len() + tx.rtcp_overhead(), "{suite}");
        rx.unprotect_rtcp(&wire, &mut plain).unwrap();
        assert_eq!(plain, report);
    }
}

#[test]
fn a_wrong_key_or_a_flipped_bit_fails_authentication() {
    for suite in SrtpSuite::ALL {
        let (mut tx, _) = pair(suite);
        let (_, mut stranger) = pair(suite);
        let mut wire = Vec::new();
        let mut out = vec![0xAA];
        tx.protect_rtp(&rtp(7, b"data"), &mut wire).unwrap();
        assert_eq!(
            stranger.unprotect_rtp(&wire, &mut out),
            Err(SrtpError::Authentication)
        );
        assert_eq!(out, [0xAA], "nothing written on failure");

        let key = tx.key.clone();
        let mut rx = SrtpContext::inbound(&key).unwrap();
        let mut tampered = wire.clone();
        tampered[13] ^= 1;
        assert_eq!(
            rx.unprotect_rtp(&tampered, &mut out),
            Err(SrtpError::Authentication)
        );
        rx.unprotect_rtp(&wire, &mut out).unwrap();

        tx.protect_rtcp(&rtcp_rr(SSRC), &mut wire).unwrap();
        let last = wire.len() - 1;
        wire[last] ^= 0x80;
        assert_eq!(
            rx.unprotect_rtcp(&wire, &mut out),
            Err(SrtpError::Authentication)
        );
    }
}

#[test]
fn replays_are_refused_late_packets_inside_the_window_taken() {
    let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let mut sent = Vec::new();
    for seq in 100..110 {
        let mut wire = Vec::new();
        tx.protect_rtp(&rtp(seq, b"x"), &mut wire).unwrap();
        sent.push(wire);
    }
    let mut out = Vec::new();
    // 100 held back: arrives late but inside the window.
    for wire in &sent[1..] {
        rx.unprotect_rtp(wire, &mut out).unwrap();
    }
    rx.unprotect_rtp(&sent[0], &mut out).unwrap();
    for wire in &sent {
        assert_eq!(rx.unprotect_rtp(wire, &mut out), Err(SrtpError::Replay));
    }
    let mut report = Vec::new();
    tx.protect_rtcp(&rtcp_rr(SSRC), &mut report).unwrap();
    rx.unprotect_rtcp(&report, &mut out).unwrap();
    assert_eq!(rx.unprotect_rtcp(&report, &mut out), Err(SrtpError::Replay));
}

#[test]
fn the_sequence_number_wraps_into_the_next_rollover_count() {
    // RFC 3711 3.3.1: past 65535 the index goes on in the ROC.
    let (mut tx, mut rx) = pair(SrtpSuite::AeadAes128Gcm);
    let (mut wire, mut out) = (Vec::new(), Vec::new());
    for seq in (65530..=u16::MAX).chain(0..5) {
        let packet = rtp(seq, b"wrap");
        tx.protect_rtp(&packet, &mut wire).unwrap();
        rx.unprotect_rtp(&wire, &mut out).unwrap();
        assert_eq!(out, packet, "seq {seq}");
    }
}

#[test]
fn forged_ssrcs_are_refused_once_the_stream_is_proven_and_bounded_before() {
    let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let (mut wire, mut out) = (Vec::new(), Vec::new());
    // Before the first genuine packet: a flood of forged SSRCs, each
    // refused; the context starts afresh rather than keeping them all.
    for forged in 0..100u32 {
        let mut p = rtp(1, &[0; 20]);
        p[8..12].copy_from_slice(&forged.to_be_bytes());
        assert_eq!(
            rx.unprotect_rtp(&p, &mut out),
            Err(SrtpError::Authentication)
        );
        assert!(rx.unproven_ssrcs.len() <= MAX_UNPROVEN_SSRCS);
    }
    tx.protect_rtp(&rtp(1, b"real"), &mut wire).unwrap();
    rx.unprotect_rtp(&wire, &mut out).unwrap();
    let mut other = wire.clone();
    other[8..12].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(
        rx.unprotect_rtp(&other, &mut out),
        Err(SrtpError::ForeignSsrc(7))
    );
    assert!(SrtpError::ForeignSsrc(7).is_rejection());
}

#[test]
fn short_packets_are_malformed_not_panics() {
    let (_, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let mut out = Vec::new();
    for len in 0..40 {
        let junk = vec![0x80; len];
        let _ = rx.unprotect_rtp(&junk, &mut out);
        let _ = rx.unprotect_rtcp(&junk, &mut out);
    }
    assert!(matches!(
        rx.unprotect_rtp(&[0x80, 96], &mut out),
        Err(SrtpError::Malformed(_))
    ));
}

#[test]
fn srtcp_with_the_encryption_flag_clear_is_refused_whatever_its_tag() {
    // rtc-srtp 0.21 takes an AES-CM SRTCP packet with E = 0 without
    // checking its tag: a forged sender report would pass.
    for suite in SrtpSuite::ALL {
        let (mut tx, mut rx) = pair(suite);
        let mut report = rtcp_rr(SSRC);
        report[0] = 0x81;
        report[3] = 7;
        report.extend_from_slice(&[0; 24]);
        let mut forged = report.clone();
        forged.extend_from_slice(&1u32.to_be_bytes());
        forged.extend_from_slice(&vec![0; tx.rtp_overhead()]);
        if suite == SrtpSuite::AeadAes128Gcm {
            // AEAD puts the index word last.
            forged.truncate(report.len());
            forged.extend_from_slice(&[0; 16]);
            forged.extend_from_slice(&1u32.to_be_bytes());
        }
        let mut out = Vec::new();
        assert_eq!(
            rx.unprotect_rtcp(&forged, &mut out),
            Err(SrtpError::Authentication),
            "{suite}"
        );
        // The genuine packet carries E = 1 and still opens.
        let mut wire = Vec::new();
        tx.protect_rtcp(&report, &mut wire).unwrap();
        rx.unprotect_rtcp(&wire, &mut out).unwrap();
        assert_eq!(out, report);
    }
}
