//! The malformed-packet check must be able to fail: feed it a broken RTP
//! packet and a clean SIP one, and see which verdict each gets.

// Test code: helpers may unwrap like the tests they serve.
#![allow(clippy::unwrap_used)]

use sipsensor_testkit::ports::{LOCALHOST, free_rtp_ports, free_udp_port};
use sipsensor_testkit::{HarnessError, Tshark, TsharkOptions, require_capture};
use std::net::{SocketAddr, UdpSocket};

const OPTIONS: &[u8] = b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
    Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcheck\r\nMax-Forwards: 70\r\n\
    From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: check@h\r\n\
    CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

fn send(to: u16, bytes: &[u8]) {
    let socket = UdpSocket::bind(SocketAddr::new(LOCALHOST, 0)).unwrap();
    socket
        .send_to(bytes, SocketAddr::new(LOCALHOST, to))
        .unwrap();
}

fn remove_kept(capture: &std::path::Path) {
    assert!(capture.exists());
    std::fs::remove_dir_all(capture.parent().unwrap()).unwrap();
}

#[test]
fn truncated_rtp_is_reported_and_clean_sip_passes() {
    if !require_capture() {
        return;
    }
    let sip = free_udp_port(LOCALHOST).unwrap();
    let (rtp, rtcp) = free_rtp_ports(LOCALHOST).unwrap();
    let options = TsharkOptions {
        sip_ports: vec![sip],
        rtp_ports: vec![rtp],
        rtcp_ports: vec![rtcp],
        ..TsharkOptions::default()
    };

    let capture = Tshark::start(options.clone()).unwrap();
    send(sip, OPTIONS);
    // RTP version 2, then the header stops after 5 of its 12 bytes.
    send(rtp, &[0x80, 0x60, 0x00, 0x01, 0x00]);
    // RTCP sender report whose length field promises 28 bytes; 8 arrive.
    send(rtcp, &[0x80, 0xc8, 0x00, 0x06, 0, 0, 0, 1]);
    match capture.finish() {
        Err(HarnessError::Malformed { packets, capture }) => {
            assert_eq!(packets.len(), 2, "{packets:?}");
            assert!(packets[0].contains("rtp"), "{packets:?}");
            assert!(packets[1].contains("rtcp"), "{packets:?}");
            // Kept for a real failure; this one was expected.
            remove_kept(&capture);
        }
        other => panic!("expected a malformed verdict, got {other:?}"),
    }

    let capture = Tshark::start(options.clone()).unwrap();
    send(sip, OPTIONS);
    send(rtp, &[0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xaa, 0xbb]);
    let capture = capture.finish().unwrap();
    assert_eq!(capture.count("sip.Method == \"OPTIONS\"").unwrap(), 1);
    assert_eq!(capture.count("rtp.seq == 1").unwrap(), 1);

    // A capture without any SIP proves nothing and is refused.
    let capture = Tshark::start(options).unwrap();
    send(rtp, &[0x80, 0x60, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1]);
    match capture.finish() {
        Err(HarnessError::EmptyCapture { capture }) => remove_kept(&capture),
        other => panic!("expected an empty-capture verdict, got {other:?}"),
    }
}
