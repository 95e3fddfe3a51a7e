//! The collector calls a sensor by its address of record (located through
//! its embedded registrar), then halves its rate with a re-INVITE: the
//! stored data shows the change at the switch and nothing lost around it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use sip_support::*;
use sipsensor_collector::sip::control::{CallRequest, Request, WantedStream};
use sipsensor_collector::storage::*;
use sipsensor_loadgen::pump::MediaPump;
use std::time::Duration;

fn wanted() -> WantedStream {
    WantedStream {
        clock_hz: 10,
        rate_hz: Some(10.0),
        samples_per_packet: Some(1),
        channels: (0..3)
            .map(|i| format!("ch{i}:Cel:-2").parse().unwrap())
            .collect(),
        inputs: vec![],
    }
}

#[test]
fn call_by_address_of_record_then_set_rate_loses_nothing() {
    runtime().block_on(async {
        let mut c = start(&[("s1", "pw-1")], &sip_section("")).await;
        let pump = MediaPump::start().unwrap();
        let aor = "sip:s1@example.net";

        // Not registered yet: nowhere to call.
        let r = c
            .control(Request::Call(CallRequest {
                aor: aor.into(),
                stream: Some(wanted()),
            }))
            .await;
        assert!(!r.ok && r.message.contains("not registered here"), "{r:?}");

        let s1 = sensor(&c, &pump, "s1", "pw-1", 5).await;
        s1.register().await.unwrap();
        // Registered, but it never offered its stream: say what to ask for.
        let r = c
            .control(Request::Call(CallRequest {
                aor: aor.into(),
                stream: None,
            }))
            .await;
        assert!(!r.ok && r.message.contains("describe"), "{r:?}");
        let stored = c.sensor(aor).await;
        c.wait_state(aor, SensorState::Registered).await;

        let r = c
            .control(Request::Call(CallRequest {
                aor: aor.into(),
                stream: Some(wanted()),
            }))
            .await;
        assert!(r.ok, "{r:?}");
        assert!(r.message.contains("ch0, ch1, ch2 at 10 Hz"), "{r:?}");
        s1.wait_streaming(Duration::from_secs(5), |s| s.is_some())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2000)).await;

        let r = c
            .control(Request::SetRate {
                sensor: "s1".into(),
                hz: 5.0,
            })
            .await;
        assert!(r.ok, "{r:?}");
        assert!(r.message.contains("at 5 Hz (cfg 2)"), "{r:?}");
        let now = s1
            .wait_streaming(Duration::from_secs(5), |s| {
                s.as_ref()
                    .is_some_and(|a| a.description.sample_rate_hz() == Some(5.0))
            })
            .await
            .unwrap();
        assert_eq!(now.unwrap().description.config, 2);
        tokio::time::sleep(Duration::from_millis(2000)).await;
        s1.hangup().await;

        let sent = s1.counters.packets();
        let samples = c.wait_samples(stored.id, sent as usize * 3).await;
        assert_eq!(samples.len() as u64, sent * 3, "every sample, once");
        let ticks = check_exact(&samples, &s1);
        // 10 Hz until the switch, 5 Hz after, no hole in between.
        let steps: Vec<u64> = ticks[0].windows(2).map(|w| w[1] - w[0]).collect();
        let first_slow = steps.iter().position(|d| *d == 2).expect("a 5 Hz part");
        assert!(first_slow >= 15, "{steps:?}");
        assert!(steps[..first_slow].iter().all(|d| *d == 1), "{steps:?}");
        assert!(steps[first_slow..].iter().all(|d| *d == 2), "{steps:?}");
        assert!(
            c.storage
                .gaps(stored.id, i64::MIN, TS_MAX)
                .await
                .unwrap()
                .is_empty()
        );
        // One record per description, the second from the switch on.
        let sessions = c
            .storage
            .sessions(stored.id, i64::MIN, TS_MAX)
            .await
            .unwrap();
        assert_eq!(sessions.len(), 2, "{sessions:?}");
        assert_eq!(sessions[0].stream.rate_hz, 10.0);
        assert_eq!(sessions[1].stream.rate_hz, 5.0);
        let by_session = |id: SessionId| samples.iter().filter(|s| s.session == id).count();
        assert_eq!(
            by_session(sessions[0].id) + by_session(sessions[1].id),
            samples.len()
        );
        assert!(by_session(sessions[1].id) >= 3 * 8);
        let r = c
            .control(Request::SetRate {
                sensor: "s1".into(),
                hz: 1.0,
            })
            .await;
        assert!(!r.ok && r.message.contains("no active stream"), "{r:?}");
        c.stop().await;
    });
}
