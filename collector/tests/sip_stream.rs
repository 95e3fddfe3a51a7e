//! A sensor registers with the embedded registrar, calls the collector and
//! streams over real loopback sockets: every sample is stored exactly once
//! with its absolute time, duplicates are recognised, a loss is stored as a
//! gap of its length, and packets from a foreign SSRC or address are
//! dropped and counted without touching anyone's data.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use sip_support::*;
use sipsensor_collector::storage::*;
use sipsensor_loadgen::pump::{Fault, MediaPump};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[test]
fn every_sample_is_stored_once_with_its_time_and_a_loss_is_a_gap() {
    runtime().block_on(async {
        let mut c = start(&[("s1", "pw-1"), ("s2", "pw-2")], &sip_section("")).await;
        let pump = MediaPump::start().unwrap();
        let s1 = sensor(&c, &pump, "s1", "pw-1", 11).await;
        let s2 = sensor(&c, &pump, "s2", "pw-2", 22).await;
        s1.register().await.unwrap();
        s2.register().await.unwrap();
        let agreed = s1.call().await.unwrap();
        assert_eq!(agreed.description.sample_rate_hz(), Some(10.0));
        s2.call().await.unwrap();

        tokio::time::sleep(Duration::from_millis(800)).await;
        s1.fault(Fault::Duplicate(3)).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        s1.fault(Fault::Drop(2)).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        // Another SSRC from s1's address, and s1's SSRC from elsewhere.
        s1.fault(Fault::ForeignSsrc(4)).await;
        let elsewhere = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        s1.fault(Fault::FromOtherSocket(elsewhere, 4)).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        s1.hangup().await;
        s2.hangup().await;

        let sent1 = s1.counters.packets();
        let sent2 = s2.counters.packets();
        assert!(sent1 > 30 && sent2 > 30, "{sent1} {sent2}");
        let sensor1 = c.sensor("sip:s1@example.net").await;
        let sensor2 = c.sensor("sip:s2@example.net").await;
        let stored1 = c.wait_samples(sensor1.id, sent1 as usize * 3).await;
        let stored2 = c.wait_samples(sensor2.id, sent2 as usize * 3).await;
        // Exactly what was sent, each once, with its value and time.
        assert_eq!(stored1.len() as u64, sent1 * 3);
        assert_eq!(stored2.len() as u64, sent2 * 3);
        let ticks1 = check_exact(&stored1, &s1);
        check_exact(&stored2, &s2);
        for ch in &ticks1 {
            let mut sorted = ch.clone();
            sorted.dedup();
            assert_eq!(sorted.len(), ch.len(), "a tick stored twice");
        }
        // The two dropped packets: one gap of two instants, nothing made up.
        let gaps = c.storage.gaps(sensor1.id, i64::MIN, TS_MAX).await.unwrap();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].cause, GapCause::Loss);
        assert_eq!(gaps[0].samples, 2);
        assert_eq!(gaps[0].to_ns - gaps[0].from_ns, 300_000_000);
        let missing = ticks1[0].windows(2).filter(|w| w[1] != w[0] + 1).count();
        assert_eq!(missing, 1);
        assert!(
            c.storage
                .gaps(sensor2.id, i64::MIN, TS_MAX)
                .await
                .unwrap()
                .is_empty()
        );

        assert_eq!(c.rejected("duplicate"), 3.0);
        assert_eq!(c.rejected("unknown_source"), 4.0);
        assert_eq!(c.rejected("wrong_address"), 4.0);
        // The collector's last receiver report (with its RTCP BYE) told the
        // sensor about the two lost packets.
        for _ in 0..50 {
            if s1.counters.rr_count.load(Ordering::Relaxed) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(s1.counters.rr_lost.load(Ordering::Relaxed), 2);
        let sessions = c
            .storage
            .sessions(sensor1.id, i64::MIN, TS_MAX)
            .await
            .unwrap();
        assert_eq!(sessions.len(), 1);
        assert!(sessions[0].ended_ns.is_some(), "closed at BYE");
        assert_eq!(sessions[0].stream.channels.len(), 3);
        c.wait_state("sip:s1@example.net", SensorState::Registered)
            .await;
        c.stop().await;
    });
}
