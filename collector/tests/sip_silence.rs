//! A sensor that stops sending without a BYE (its agent killed, its path
//! cut) does not stay "streaming" for ever: after `media.silence_timeout_s`
//! the collector hangs up, the stream is gone from /api/streams, its
//! session record has ended at the last packet heard, and the end is
//! counted (issue 15).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use sip_support::*;
use sipsensor_collector::storage::*;
use sipsensor_loadgen::pump::MediaPump;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The body of `GET /api/streams`.
async fn api_streams(c: &Collector) -> String {
    let mut s = tokio::net::TcpStream::connect(c.http).await.unwrap();
    s.write_all(b"GET /api/streams HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

#[test]
fn a_stream_silent_past_the_timeout_is_ended_and_its_session_closed() {
    runtime().block_on(async {
        let users = [("s1", "pw-1"), ("s2", "pw-2")];
        let mut c = start_with_media(&users, &sip_section(""), "  silence_timeout_s: 2\n").await;
        // s1's agent is killed: its own media pump stops mid-stream.
        let doomed = MediaPump::start().unwrap();
        let alive = MediaPump::start().unwrap();
        let s1 = sensor(&c, &doomed, "s1", "pw-1", 1).await;
        let s2 = sensor(&c, &alive, "s2", "pw-2", 2).await;
        s1.register().await.unwrap();
        s2.register().await.unwrap();
        s1.call().await.unwrap();
        s2.call().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let streams = api_streams(&c).await;
        assert!(streams.contains("sip:s1@example.net"), "{streams}");
        doomed.quit();
        let killed = Instant::now();
        let sensor1 = c.sensor("sip:s1@example.net").await;
        // Gone within the timeout plus the housekeeping period, not later.
        let mut ended = None;
        while killed.elapsed() < Duration::from_secs(6) {
            let sessions = c
                .storage
                .sessions(sensor1.id, i64::MIN, TS_MAX)
                .await
                .unwrap();
            if let Some(e) = sessions.first().and_then(|s| s.ended_ns) {
                ended = Some((e, killed.elapsed()));
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (ended_ns, after) = ended.expect("the silent stream's session was closed");
        assert!(
            after >= Duration::from_millis(1500),
            "ended {after:?} after the kill"
        );
        let streams = api_streams(&c).await;
        assert!(!streams.contains("sip:s1@example.net"), "{streams}");
        // The live sensor is untouched.
        assert!(streams.contains("sip:s2@example.net"), "{streams}");
        // Closed at the last packet heard, not at the time of the timeout:
        // no later than its newest stored sample's arrival allows.
        let samples = c.wait_samples(sensor1.id, 1).await;
        let newest = samples.iter().map(|s| s.ts_ns).max().unwrap();
        assert!(
            (ended_ns - newest).abs() < 1_000_000_000,
            "ended {ended_ns}, newest sample {newest}"
        );
        assert_eq!(c.metric("sipsensor_collector_streams_silent_total"), 1.0);
        c.wait_state("sip:s1@example.net", SensorState::Registered)
            .await;
        s2.hangup().await;
        c.stop().await;
    });
}
