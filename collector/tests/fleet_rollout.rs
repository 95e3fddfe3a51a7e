//! Fleet updates end to end on the collector's side (docs/protocol.md
//! 12.1, 12.7): the real collector (a child process, its own registrar)
//! and sensors played by the protocol crate's user agent over loopback.
//! A stream session makes the collector subscribe; the NOTIFYed state is
//! in `/api/fleet`; `update publish` and `update rollout` put the want in
//! a re-SUBSCRIBE; `good` finishes a rollout, `failed` halts one with the
//! reason; a collector restarted mid-rollout resumes it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fleet_support;
mod sip_support;

use fleet_support::*;
use sipsensor_protocol::fleet::sha256_hex;
use std::time::Duration;

const OLD: &str = "2026.12.1";
const V2: &str = "2026.12.2";
const V3: &str = "2026.12.3";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `GET path` until its body contains every one of `parts`.
async fn wait_for_api(http: std::net::SocketAddr, path: &str, parts: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let body = get(http, path).await;
        if parts.iter().all(|p| body.contains(p)) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never showed {parts:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `update rollout VERSION --sensors SENSORS --canary 1 --max-failures 0`.
fn rollout(config: &str, version: &str, sensors: &str) {
    let (ok, out) = cli(&[
        "update",
        "rollout",
        version,
        "--sensors",
        sensors,
        "--canary",
        "1",
        "--max-failures",
        "0",
        "--config",
        config,
    ]);
    assert!(ok, "{out}");
}

/// `update status ROLLOUT` until it contains `text`.
async fn wait_for_status(config: &str, rollout: &str, text: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (ok, out) = cli(&["update", "status", rollout, "--config", config]);
        if ok && out.contains(text) {
            return out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollout {rollout} never showed {text:?}: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_rollout_reaches_sensors_over_their_subscriptions_and_survives_a_restart() {
    if !have_rauc() {
        // CI installs them (.ci/apt/collector.txt): a skip there is a failure.
        assert!(
            std::env::var("SIPSENSOR_CI").map_or(true, |v| v != "1"),
            "rauc, mksquashfs and openssl are needed"
        );
        eprintln!("skipped: rauc, mksquashfs or openssl missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path(), "fleet");
    let config = config(dir.path(), &keys);
    let config_arg = config.to_str().unwrap();
    let v2 = bundle(dir.path(), &keys, V2, "verity");
    publish(&config, &v2);
    let v2_sha256 = {
        use sha2::Digest;
        sha256_hex(&sha2::Sha256::digest(std::fs::read(&v2).unwrap()).into())
    };
    let v2_size = std::fs::metadata(&v2).unwrap().len();

    rt().block_on(async {
        let collector = run(&config);
        let mut s1 = FleetSensor::start("s1", "pw-s1", OLD).await;
        let mut s2 = FleetSensor::start("s2", "pw-s2", OLD).await;
        for s in [&mut s1, &mut s2] {
            s.register(collector.sip).await;
            // The stream session makes the collector subscribe, report
            // only: no rollout yet.
            assert_eq!(s.call(collector.sip).await, None);
        }
        // The first NOTIFYs' states are in the fleet view.
        wait_for_api(
            collector.http,
            "/api/fleet",
            &["sip:s1@example.net", "sip:s2@example.net", OLD, "\"idle\""],
        )
        .await;

        // The canary is told the want in a re-SUBSCRIBE.
        rollout(config_arg, V2, "s1,s2");
        let want = s1.next_want().await.expect("a want for the canary");
        assert_eq!(want.version, V2);
        assert_eq!(sha256_hex(&want.sha256), v2_sha256);
        assert_eq!(want.size, v2_size);
        assert_eq!(
            want.url,
            format!("https://127.0.0.1:8443/bundles/{v2_sha256}.raucb")
        );
        s1.report(state(OLD, "downloading", Some(V2), None)).await;
        s1.report(state(V2, "good", Some(V2), None)).await;
        // The canary is done: the next wave is s2.
        let want = s2.next_want().await.expect("a want for the second wave");
        assert_eq!(want.version, V2);
        wait_for_status(config_arg, "1", "wave 2").await;

        // A restart mid-rollout: the running rollout resumes, and s2's
        // next stream session carries its want from the first SUBSCRIBE.
        stop(collector.guard);
        let collector = run(&config);
        s2.register(collector.sip).await;
        let want = s2
            .call(collector.sip)
            .await
            .expect("the want after a restart");
        assert_eq!(want.version, V2);
        s2.report(state(V2, "good", Some(V2), None)).await;
        wait_for_status(config_arg, "1", "finished").await;
        wait_for_api(collector.http, "/api/fleet", &[V2, "\"good\""]).await;

        // A failure halts a rollout, with the reason.
        let v3 = bundle(dir.path(), &keys, V3, "verity");
        publish(&config, &v3);
        s1.register(collector.sip).await;
        let want = s1.call(collector.sip).await;
        assert_eq!(want, None, "the finished rollout wants nothing more");
        rollout(config_arg, V3, "s1");
        assert_eq!(s1.next_want().await.map(|w| w.version), Some(V3.into()));
        s1.report(state(V2, "failed", Some(V3), Some("download: 404")))
            .await;
        let status = wait_for_status(config_arg, "2", "halted").await;
        assert!(status.contains("download: 404"), "{status}");
        stop(collector.guard);
    });
}

/// `sipsensor_collector_packets_rejected_total{reason=...}` in /metrics.
async fn rejected(http: std::net::SocketAddr, reason: &str) -> f64 {
    let text = get(http, "/metrics").await;
    let prefix = format!("sipsensor_collector_packets_rejected_total{{reason=\"{reason}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn forged_malformed_and_flooding_notifies_change_nothing_in_the_fleet_view() {
    let dir = tempfile::tempdir().unwrap();
    // No bundle here: the keyring is never read.
    let config = config(dir.path(), dir.path());
    rt().block_on(async {
        let collector = run(&config);
        let mut s1 = FleetSensor::start("s1", "pw-s1", OLD).await;
        s1.register(collector.sip).await;
        assert_eq!(s1.call(collector.sip).await, None);
        wait_for_api(
            collector.http,
            "/api/fleet",
            &["sip:s1@example.net", "\"idle\""],
        )
        .await;

        // A NOTIFY for a dialog the collector never made: 481, from a
        // socket that is not the sensor's.
        let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let body = state(V2, "good", Some(V2), None);
        let forged = format!(
            "NOTIFY sip:collector@{sip} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bKforged1\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:s1@example.net>;tag=forged\r\n\
             To: <sip:collector@example.net>;tag=guess\r\n\
             Call-ID: forged-dialog\r\n\
             CSeq: 7 NOTIFY\r\n\
             Event: sipsensor-fleet\r\n\
             Subscription-State: active;expires=600\r\n\
             Content-Type: application/vnd.sipsensor.fleet\r\n\
             Content-Length: {}\r\n\r\n{}",
            body.len(),
            String::from_utf8(body).unwrap(),
            sip = collector.sip,
            me = stranger.local_addr().unwrap(),
        );
        stranger
            .send_to(forged.as_bytes(), collector.sip)
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let (n, _) = tokio::time::timeout(WAIT, stranger.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(answer.starts_with("SIP/2.0 481"), "{answer}");

        // A body that breaks 12.2 from the sensor itself: 400, counted.
        s1.report(b"version=x\nupdate=sideways\n".to_vec()).await;
        s1.report(vec![b'a'; sipsensor_protocol::fleet::MAX_BODY + 1])
            .await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while rejected(collector.http, "fleet_body_malformed").await < 2.0 {
            assert!(tokio::time::Instant::now() < deadline, "no 400 counted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // A flood: the budget lets ten through, the rest get 503.
        for _ in 0..40 {
            s1.report(state(OLD, "downloading", Some(V2), None)).await;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        while rejected(collector.http, "fleet_notify_flood").await < 20.0 {
            assert!(tokio::time::Instant::now() < deadline, "no flood counted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Neither the forged `good` nor the refused bodies are in the view:
        // only what the budget let through.
        let fleet = wait_for_api(collector.http, "/api/fleet", &["\"downloading\""]).await;
        assert!(!fleet.contains("\"good\""), "{fleet}");
        assert!(!fleet.contains("sideways"), "{fleet}");
        stop(collector.guard);
    });
}
