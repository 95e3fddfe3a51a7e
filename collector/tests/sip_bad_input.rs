//! Bad input while a sensor streams: junk on the RTP, RTCP and SIP ports, an
//! oversized datagram and a flood from an unknown source are dropped and
//! counted by reason, and the sensor's samples are all stored.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use sip_support::*;
use sipsensor_loadgen::pump::MediaPump;
use sipsensor_loadgen::sensor::standard_stream;
use sipsensor_protocol::{RtpSender, StreamDescription};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

#[test]
fn junk_oversize_and_floods_are_counted_and_harm_no_one() {
    runtime().block_on(async {
        let mut c = start(&[("s1", "pw-1")], &sip_section("")).await;
        let pump = MediaPump::start().unwrap();
        let s1 = sensor(&c, &pump, "s1", "pw-1", 3).await;
        s1.call().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;

        let rtp = c.rtp;
        let rtcp = SocketAddr::new(rtp.ip(), rtp.port() + 1);
        let sip = c.sip;
        tokio::task::spawn_blocking(move || {
            let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
            for _ in 0..200 {
                junk.send_to(&[0u8; 40], rtp).unwrap(); // RTP version 0
            }
            for _ in 0..50 {
                junk.send_to(&[0u8; 40], rtcp).unwrap();
            }
            junk.send_to(&[0x80u8; 3000], rtp).unwrap();
            for _ in 0..5 {
                junk.send_to(b"hello, SIP\r\n\r\n", sip).unwrap();
            }
            // A flood of well-formed RTP from an SSRC nobody negotiated.
            let desc: StreamDescription = standard_stream(3, 10, 1);
            let mut tx = RtpSender::with_start(0x5eed_f00d, 1, 1);
            let mut buf = [0u8; 64];
            for tick in 0..2000u64 {
                let n = tx
                    .write_samples(&mut buf, &desc, tick, &[1, 2, 3], false)
                    .unwrap();
                junk.send_to(&buf[..n], rtp).unwrap();
                if tick % 200 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s1.hangup().await;

        let sent = s1.counters.packets();
        let stored = c.sensor("sip:s1@example.net").await;
        let samples = c.wait_samples(stored.id, sent as usize * 3).await;
        assert_eq!(samples.len() as u64, sent * 3, "nothing of s1's lost");
        check_exact(&samples, &s1);
        // Counted once a second by the media thread.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(c.rejected("malformed_rtp"), 200.0);
        assert_eq!(c.rejected("malformed_rtcp"), 50.0);
        assert_eq!(c.rejected("oversized"), 1.0);
        assert_eq!(c.rejected("unknown_source"), 2000.0);
        assert!(c.rejected("sip_malformed") >= 1.0);
        c.stop().await;
    });
}
