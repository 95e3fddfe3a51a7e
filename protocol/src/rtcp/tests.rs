use super::packets::{PT_SDES, PT_SR};
use super::*;
use std::time::Duration;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A compound writer holding an empty RR from `ssrc`, for the packets
/// that follow it.
pub(super) fn writer_with_rr(buf: &mut [u8], ssrc: u32) -> CompoundWriter<'_> {
    let mut w = CompoundWriter::new(buf);
    w.receiver_report(&ReceiverReport {
        ssrc,
        reports: vec![],
    })
    .unwrap();
    w
}

fn sr() -> SenderReport {
    SenderReport {
        ssrc: 0x1a2b3c4d,
        ntp: NtpTime::from_unix(Duration::from_millis(1_767_225_600_500)),
        rtp_timestamp: 0x0000_1000,
        packet_count: 20,
        octet_count: 1280,
        reports: vec![],
    }
}

#[test]
fn sender_report_compound_matches_the_documented_bytes() {
    let mut buf = [0u8; 128];
    let n = sender_report_compound(&mut buf, &sr(), "s1@198.51.100.10").unwrap();
    assert_eq!(
        hex(&buf[..n]),
        concat!(
            "80c80006",
            "1a2b3c4d",
            "ed003780",
            "80000000",
            "00001000",
            "00000014",
            "00000500",
            "81ca0006",
            "1a2b3c4d",
            "0110",
            "7331403139382e35312e3130302e3130",
            "0000"
        )
    );
    let parsed = parse_compound(&buf[..n]).unwrap();
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[0], RtcpPacket::SenderReport(sr()));
    let RtcpPacket::SourceDescription(chunks) = &parsed[1] else {
        panic!()
    };
    assert_eq!(chunks[0].ssrc, 0x1a2b3c4d);
    assert_eq!(chunks[0].cname(), Some("s1@198.51.100.10"));
}

#[test]
fn receiver_report_with_blocks_round_trips_and_clamps_loss() {
    let block = ReportBlock {
        ssrc: 0x1a2b3c4d,
        fraction_lost: 25,
        cumulative_lost: -3,
        extended_highest_seq: 0x0001_0005,
        jitter: 17,
        last_sr: 0x8b00_8000,
        delay_since_last_sr: 0x0001_8000,
    };
    let rr = ReceiverReport {
        ssrc: 0x0bad_cafe,
        reports: vec![block],
    };
    let mut buf = [0u8; 128];
    let n = receiver_report_compound(&mut buf, &rr, "collector").unwrap();
    assert_eq!(&hex(&buf[..8]), "81c900070badcafe");
    assert_eq!(&hex(&buf[12..16]), "19fffffd"); // fraction 25, lost -3 in 24 bits
    let p = parse_compound(&buf[..n]).unwrap();
    assert_eq!(p[0], RtcpPacket::ReceiverReport(rr.clone()));
    let mut big = rr;
    big.reports[0].cumulative_lost = 10_000_000;
    let n = receiver_report_compound(&mut buf, &big, "c").unwrap();
    let RtcpPacket::ReceiverReport(back) = &parse_compound(&buf[..n]).unwrap()[0] else {
        panic!()
    };
    assert_eq!(back.reports[0].cumulative_lost, 0x7f_ffff);
    big.reports[0].cumulative_lost = i32::MIN;
    let n = receiver_report_compound(&mut buf, &big, "c").unwrap();
    let RtcpPacket::ReceiverReport(back) = &parse_compound(&buf[..n]).unwrap()[0] else {
        panic!()
    };
    assert_eq!(back.reports[0].cumulative_lost, -0x80_0000);
}

#[test]
fn bye_compound_with_reason() {
    let mut buf = [0u8; 128];
    let mut w = CompoundWriter::new(&mut buf);
    w.sender_report(&sr()).unwrap();
    w.sdes(0x1a2b3c4d, "s1", &[(6, b"sipsensor")]).unwrap();
    w.bye(&[0x1a2b3c4d], Some("shutdown")).unwrap();
    let n = w.finish().unwrap();
    let p = parse_compound(&buf[..n]).unwrap();
    assert_eq!(
        p[2],
        RtcpPacket::Bye(Bye {
            sources: vec![0x1a2b3c4d],
            reason: Some(b"shutdown".to_vec())
        })
    );
    let RtcpPacket::SourceDescription(c) = &p[1] else {
        panic!()
    };
    assert_eq!(c[0].items[1].value, b"sipsensor");
    // Reason-less BYE is 8 bytes.
    let mut w = CompoundWriter::new(&mut buf);
    w.receiver_report(&ReceiverReport {
        ssrc: 1,
        reports: vec![],
    })
    .unwrap();
    w.sdes(1, "c", &[]).unwrap();
    let before = w.len();
    w.bye(&[1], None).unwrap();
    assert_eq!(w.len() - before, 8);
    w.finish().unwrap();
}

#[test]
fn compound_rules_are_enforced_when_building() {
    let mut buf = [0u8; 2048];
    let mut w = CompoundWriter::new(&mut buf);
    w.sdes(1, "c", &[]).unwrap();
    assert_eq!(w.finish(), Err(RtcpBuildError::FirstNotReport));
    let mut w = CompoundWriter::new(&mut buf);
    w.sender_report(&sr()).unwrap();
    assert_eq!(w.finish(), Err(RtcpBuildError::NoCname));
    let w = CompoundWriter::new(&mut buf);
    assert!(w.is_empty());
    assert_eq!(w.finish(), Err(RtcpBuildError::FirstNotReport));
    let mut w = CompoundWriter::new(&mut buf);
    let many = SenderReport {
        reports: vec![ReportBlock::default(); 32],
        ..sr()
    };
    assert_eq!(w.sender_report(&many), Err(RtcpBuildError::TooMany(32)));
    assert_eq!(w.bye(&[0; 32], None), Err(RtcpBuildError::TooMany(32)));
    let long = "x".repeat(256);
    assert_eq!(w.sdes(1, &long, &[]), Err(RtcpBuildError::TooLong));
    assert_eq!(w.bye(&[1], Some(&long)), Err(RtcpBuildError::TooLong));
    let mut small = [0u8; 27];
    let mut w = CompoundWriter::new(&mut small);
    assert_eq!(w.sender_report(&sr()), Err(RtcpBuildError::BufferTooSmall));
}

fn valid() -> Vec<u8> {
    let mut buf = [0u8; 128];
    let n = sender_report_compound(&mut buf, &sr(), "s1").unwrap();
    buf[..n].to_vec()
}

#[test]
fn compound_validity_checks_of_a2() {
    let v = valid();
    assert_eq!(parse_compound(&[]), Err(RtcpError::Size(0)));
    assert_eq!(
        parse_compound(&vec![0x80; 70_000]),
        Err(RtcpError::Size(70_000))
    );
    let mut b = v.clone();
    b[0] = 0x40;
    assert_eq!(
        parse_compound(&b),
        Err(RtcpError::Version { at: 0, version: 1 })
    );
    let mut b = v.clone();
    b[1] = PT_SDES;
    assert_eq!(parse_compound(&b), Err(RtcpError::FirstNotReport(PT_SDES)));
    // Padding flag on the first of two packets.
    let mut b = v.clone();
    b[0] |= 0x20;
    assert_eq!(parse_compound(&b), Err(RtcpError::PaddingNotLast(0)));
    // Lengths that do not add up.
    assert!(matches!(
        parse_compound(&v[..v.len() - 4]),
        Err(RtcpError::Length { .. })
    ));
    assert!(matches!(
        parse_compound(&v[..v.len() - 1]),
        Err(RtcpError::Length { .. })
    ));
    let mut b = v.clone();
    b.extend_from_slice(&[0x80, 0xcb]);
    assert!(matches!(parse_compound(&b), Err(RtcpError::Length { .. })));
    // SR whose length is too short for its report count.
    let mut b = v.clone();
    b[0] |= 1;
    assert!(matches!(
        parse_compound(&b),
        Err(RtcpError::Body {
            at: 0,
            packet_type: PT_SR
        })
    ));
}

#[test]
fn padding_on_the_last_packet_is_removed() {
    let mut b = valid();
    let sdes_at = 28;
    b[sdes_at] |= 0x20;
    let words = u16::from_be_bytes([b[sdes_at + 2], b[sdes_at + 3]]) + 1;
    b[sdes_at + 2..sdes_at + 4].copy_from_slice(&words.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0, 4]);
    let p = parse_compound(&b).unwrap();
    let RtcpPacket::SourceDescription(c) = &p[1] else {
        panic!()
    };
    assert_eq!(c[0].cname(), Some("s1"));
    let last = b.len() - 1;
    b[last] = 0;
    assert_eq!(parse_compound(&b), Err(RtcpError::Padding(sdes_at)));
    b[last] = 200;
    assert_eq!(parse_compound(&b), Err(RtcpError::Padding(sdes_at)));
}

#[test]
fn unknown_and_app_packets_are_kept() {
    let mut b = valid();
    // APP "SNSR" subtype 3 with 4 bytes of data, then an RTPFB (205) of a
    // format other than generic NACK.
    b.extend_from_slice(&[
        0x83, 204, 0, 3, 0, 0, 0, 9, b'S', b'N', b'S', b'R', 1, 2, 3, 4,
    ]);
    b.extend_from_slice(&[0x83, 205, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd]);
    let p = parse_compound(&b).unwrap();
    assert_eq!(
        p[2],
        RtcpPacket::App(App {
            subtype: 3,
            ssrc: 9,
            name: *b"SNSR",
            data: vec![1, 2, 3, 4]
        })
    );
    assert_eq!(
        p[3],
        RtcpPacket::Unknown {
            packet_type: 205,
            count: 3,
            body: vec![0xaa, 0xbb, 0xcc, 0xdd]
        }
    );
}

#[test]
fn malformed_sdes_and_bye_bodies_are_errors() {
    let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 1];
    for bad in [
        &[0x81u8, 202, 0, 1, 0, 0, 0, 1][..], // chunk without items or null
        &[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', 0], // item longer than the packet
        &[0x82, 203, 0, 1, 0, 0, 0, 1],       // BYE with 2 sources, room for 1
        &[0x81, 203, 0, 2, 0, 0, 0, 1, 9, b'a', 0, 0], // reason longer than the packet
        &[0x80, 204, 0, 1, 0, 0, 0, 1],       // APP without a name
    ] {
        let mut b = rr.to_vec();
        b.extend_from_slice(bad);
        assert!(
            matches!(parse_compound(&b), Err(RtcpError::Body { at: 8, .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn round_trip_time_from_lsr_and_dlsr() {
    let t = NtpTime(0x0001_0000_8000_0000); // middle32 = 0x0000_8000 (0.5 s)
    let arrival = NtpTime(t.0 + (3 << 32)); // 3 s later
    let block = ReportBlock {
        last_sr: t.middle32(),
        delay_since_last_sr: 2 << 16, // the receiver held it 2 s
        ..ReportBlock::default()
    };
    assert_eq!(
        round_trip_time(arrival, &block),
        Some(Duration::from_secs(1))
    );
    assert_eq!(round_trip_time(arrival, &ReportBlock::default()), None);
    let late = ReportBlock {
        delay_since_last_sr: 4 << 16,
        ..block
    };
    assert_eq!(round_trip_time(arrival, &late), None);
}

#[test]
fn parse_never_panics_on_corrupted_compounds() {
    let mut b = valid();
    b.extend_from_slice(&[0x81, 203, 0, 2, 0, 0, 0, 1, 3, b'b', b'y', b'e']);
    for end in 0..=b.len() {
        let _ = parse_compound(&b[..end]);
    }
    for i in 0..b.len() {
        for v in [0x00u8, 0x01, 0x1f, 0x20, 0x7f, 0x80, 0xbf, 0xff] {
            let old = b[i];
            b[i] = v;
            let _ = parse_compound(&b);
            b[i] = old;
        }
    }
}

#[test]
fn several_sdes_chunks_and_bye_sources_parse() {
    let mut b = valid();
    // SDES with two chunks: CNAME "a" (+ NAME "bc"), and CNAME "xyz".
    b.extend_from_slice(&[0x82, 202, 0, 6]);
    b.extend_from_slice(&[0, 0, 0, 1, 1, 1, b'a', 2, 2, b'b', b'c', 0]);
    b.extend_from_slice(&[0, 0, 0, 2, 1, 3, b'x', b'y', b'z', 0, 0, 0]);
    // BYE from two sources without a reason.
    b.extend_from_slice(&[0x82, 203, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
    let p = parse_compound(&b).unwrap();
    let RtcpPacket::SourceDescription(chunks) = &p[2] else {
        panic!("{:?}", p[2])
    };
    assert_eq!(chunks.len(), 2);
    assert_eq!((chunks[0].ssrc, chunks[0].cname()), (1, Some("a")));
    assert_eq!(
        chunks[0].items[1],
        SdesItem {
            kind: 2,
            value: b"bc".to_vec()
        }
    );
    assert_eq!((chunks[1].ssrc, chunks[1].cname()), (2, Some("xyz")));
    assert_eq!(
        p[3],
        RtcpPacket::Bye(Bye {
            sources: vec![1, 2],
            reason: None
        })
    );
}
