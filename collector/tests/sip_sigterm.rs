//! SIGTERM to a running `sipsensor-collector run` with a sensor streaming:
//! the collector sends BYE, stores every sample it received and exits 0.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sip_support::process::spawn_collector;
use sip_support::*;
use sipsensor_collector::storage::sqlite::{IntegrityCheck, SqliteOptions, SqliteStore};
use sipsensor_collector::storage::*;
use sipsensor_loadgen::pump::MediaPump;
use sipsensor_loadgen::sensor::{SensorConfig, SimSensor, standard_stream};
use sipsensor_loadgen::sockets::SharedSocket;
use std::time::{Duration, Instant};

fn sim(sip: std::net::SocketAddr, user: &str, password: &str) -> SensorConfig {
    SensorConfig {
        aor: format!("sip:{user}@{DOMAIN}"),
        username: user.into(),
        password: password.into(),
        sip_ip: "127.0.0.1".parse().unwrap(),
        registrar: Some(format!("sip:{sip}")),
        collector: Some(format!("sip:collector@{sip}")),
        expires: 600,
        capabilities: standard_stream(3, 10, 1),
        seed: 7,
    }
}

#[test]
fn sighup_reloads_the_credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    let (guard, sip, _) = spawn_collector(dir.path());
    runtime().block_on(async {
        let pump = MediaPump::start().unwrap();
        let rtp = || SharedSocket::bind("127.0.0.1".parse().unwrap()).unwrap();
        let s2 = SimSensor::start(sim(sip, "s2", "pw-2"), rtp(), pump.clone())
            .await
            .unwrap();
        let e = s2.register().await.unwrap_err().to_string();
        assert!(e.contains("wrong username or password"), "{e}");
        std::fs::write(
            dir.path().join("credentials.yaml"),
            "users: {s1: pw-1, s2: pw-2}\n",
        )
        .unwrap();
        kill(Pid::from_raw(guard.0.id() as i32), Signal::SIGHUP).unwrap();
        // The reload is asynchronous: retry for a moment.
        let mut last = Err(sipsensor_loadgen::sensor::SensorError::Stopped);
        for _ in 0..20 {
            last = s2.register().await;
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last.unwrap();
        s2.call().await.unwrap();
        s2.hangup().await;
    });
    drop(guard);
}

#[test]
fn sigterm_sends_bye_and_stores_everything_received() {
    let dir = tempfile::tempdir().unwrap();
    let (mut guard, sip, _) = spawn_collector(dir.path());
    let rt = runtime();
    let (sensor, received) = rt.block_on(async {
        let pump = MediaPump::start().unwrap();
        let s = SimSensor::start(
            sim(sip, "s1", "pw-1"),
            SharedSocket::bind("127.0.0.1".parse().unwrap()).unwrap(),
            pump.clone(),
        )
        .await
        .unwrap();
        s.register().await.unwrap();
        s.call().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        kill(Pid::from_raw(guard.0.id() as i32), Signal::SIGTERM).unwrap();
        // The collector hangs up on the sensor.
        s.wait_streaming(Duration::from_secs(5), |st| st.is_none())
            .await
            .unwrap();
        // Its last receiver report (RR + BYE) says what it received.
        let mut received = None;
        for _ in 0..50 {
            received = s.counters.received_per_report();
            if received.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (s, received.expect("a receiver report"))
    });
    let status = {
        let limit = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = guard.0.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < limit, "the collector did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(status.success(), "{status}");
    let sent = sensor.counters.packets();
    assert!(
        received >= sent - 1 && received <= sent,
        "{received} of {sent}"
    );

    rt.block_on(async {
        let store = SqliteStore::open(
            dir.path().join("c.db"),
            SqliteOptions {
                integrity_check: IntegrityCheck::Quick,
                ..SqliteOptions::default()
            },
        )
        .await
        .unwrap();
        let s = store
            .sensor_by_aor("sip:s1@example.net")
            .await
            .unwrap()
            .unwrap();
        let samples = all_samples(&store, s.id).await;
        assert_eq!(
            samples.len() as u64,
            received * 3,
            "every received sample stored"
        );
        check_exact(&samples, &sensor);
        let sessions = store.sessions(s.id, i64::MIN, TS_MAX).await.unwrap();
        assert_eq!(sessions.len(), 1);
        assert!(sessions[0].ended_ns.is_some());
        assert_eq!(s.state, SensorState::Offline);
        store.close().await.unwrap();
    });
    assert!(!dir.path().join("control.sock").exists(), "socket removed");
}
