//! Issue 14, finding 2, tried as an attacker on the sensor's own host: RTCP
//! sender reports with the sensor's SSRC, one a day ahead, sent from
//! another port and from the sensor's very socket (a spoofed source), and
//! two whose pairing jumps. Every sample keeps its genuine time, and each
//! forgery is counted under its reason.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use sip_support::*;
use sipsensor_collector::storage::SensorState;
use sipsensor_loadgen::pump::MediaPump;
use sipsensor_loadgen::sensor::{SensorConfig, SimSensor, standard_stream};
use sipsensor_loadgen::sockets::SharedSocket;
use sipsensor_protocol::{NtpTime, SenderReport, sender_report_compound};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY: Duration = Duration::from_secs(86_400);

/// An SR + SDES for `ssrc` saying its RTP timestamp 0 is `at`.
fn forged(ssrc: u32, at: SystemTime) -> Vec<u8> {
    let sr = SenderReport {
        ssrc,
        ntp: NtpTime::from_system_time(at),
        rtp_timestamp: 0,
        packet_count: 0,
        octet_count: 0,
        reports: vec![],
    };
    let mut buf = [0u8; 128];
    let n = sender_report_compound(&mut buf, &sr, "s1@example.net").unwrap();
    buf[..n].to_vec()
}

/// Waits for the receive thread to hand its counts to the metrics (once
/// a second).
async fn wait_rejected(c: &Collector, reason: &str, want: f64) -> f64 {
    for _ in 0..40 {
        if c.rejected(reason) >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.rejected(reason)
}

#[test]
fn forged_sender_reports_re_time_no_sample() {
    runtime().block_on(async {
        let mut c = start(&[("s1", "pw-1")], &sip_section("")).await;
        let pump = MediaPump::start().unwrap();
        let rtp = SharedSocket::bind("127.0.0.1".parse().unwrap()).unwrap();
        // The sensor's own socket: RTP and RTCP (a=rtcp) come from it.
        let spoofed = rtp.socket.clone();
        let s1 = SimSensor::start(
            SensorConfig {
                aor: format!("sip:s1@{DOMAIN}"),
                username: "s1".into(),
                password: "pw-1".into(),
                sip_ip: "127.0.0.1".parse().unwrap(),
                registrar: Some(c.registrar()),
                collector: Some(c.uri()),
                expires: 600,
                capabilities: standard_stream(3, 10, 1),
                seed: 14,
            },
            rtp,
            pump.clone(),
        )
        .await
        .unwrap();
        s1.register().await.unwrap();
        s1.call().await.unwrap();
        let collector_rtcp = SocketAddr::new(c.rtp.ip(), c.rtp.port() + 1);
        tokio::time::sleep(Duration::from_millis(700)).await;

        let now = SystemTime::now();
        let other_port = UdpSocket::bind("127.0.0.1:0").unwrap();
        other_port
            .send_to(&forged(s1.ssrc, now + DAY), collector_rtcp)
            .unwrap();
        spoofed
            .send_to(&forged(s1.ssrc, now + DAY), collector_rtcp)
            .unwrap();
        // Within a minute of the collector's clock, but its RTP timestamp
        // is nowhere near where the sensor's pairing puts that time.
        spoofed
            .send_to(
                &forged(s1.ssrc, now + Duration::from_secs(30)),
                collector_rtcp,
            )
            .unwrap();
        // Our clock to the millisecond, for an RTP timestamp (0) that the
        // stream's clock has not reached since its previous report.
        spoofed
            .send_to(&forged(s1.ssrc, SystemTime::now()), collector_rtcp)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s1.hangup().await;
        let hung_up = SystemTime::now();

        let sent = s1.counters.packets();
        assert!(sent > 15, "{sent}");
        let sensor = c.sensor("sip:s1@example.net").await;
        let stored = c.wait_samples(sensor.id, sent as usize * 3).await;
        assert_eq!(stored.len() as u64, sent * 3);
        // Each sample at the exact time of its tick on the sensor's clock,
        // none after the hang-up.
        check_exact(&stored, &s1);
        let last = stored.iter().map(|s| s.ts_ns).max().unwrap();
        let limit = hung_up.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
        assert!(
            last <= limit,
            "a sample {} s ahead",
            (last - limit) / 1_000_000_000
        );

        assert_eq!(wait_rejected(&c, "wrong_address", 1.0).await, 1.0);
        assert_eq!(wait_rejected(&c, "clock_offset", 1.0).await, 1.0);
        assert_eq!(wait_rejected(&c, "clock_jump", 2.0).await, 2.0);
        c.wait_state("sip:s1@example.net", SensorState::Registered)
            .await;
        c.stop().await;
    });
}
