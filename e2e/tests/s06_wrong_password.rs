//! Scenario 6: the agent has a wrong password. Kamailio keeps answering
//! 401; the agent says so clearly (log and status), backs off between
//! attempts, keeps running, and recovers once the secrets file is fixed
//! and it gets SIGHUP: it registers, calls and streams. What it sampled
//! while it could not register was spooled and is backfilled (docs/
//! protocol.md 11): two runs of the waveform, the second from the reload.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::*;
use std::time::{Duration, Instant};

#[test]
fn wrong_password_is_reported_backed_off_and_fixed_by_sighup() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let mut site = Site::start_with("sensor6", |_| {}, |a| a.password = Some("wrong-pw".into()));
    site.agent.launch().unwrap();
    let failed = site
        .agent
        .wait_status("in error", Duration::from_secs(30), |s| {
            s.state == AgentState::Error
        });
    let error = format!("{:?}", failed.last_error);
    assert!(
        error.contains("registration") && error.contains("wrong username or password"),
        "the status names the problem: {error}"
    );
    // Wait a while: it must keep running and not hammer the registrar.
    std::thread::sleep(Duration::from_secs(10));
    assert!(site.agent.running(), "still running");
    let log = site.agent.log();
    assert!(
        log.contains("fix the credentials (sip.username / secrets file) and send SIGHUP"),
        "a clear error line:\n{log}"
    );
    let fixed_at = Instant::now();
    let fixed_epoch = unix_ns() as f64 / 1e9;
    site.agent.set_password(site::SENSOR_PASSWORD).unwrap();
    site.agent.signal(libc::SIGHUP);
    site.agent
        .wait_status("streaming", Duration::from_secs(30), |s| {
            s.state == AgentState::Streaming
        });
    let recovered = fixed_at.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (stored, capture) = site.finish(20);
    let wave = wave::Waveform::new(&site.agent.sim(), site.agent.interval());
    // The reload starts the simulated sensor again at its first reading.
    let mut sorted = stored.clone();
    sorted.sort_by_key(|s| s.ts_ns);
    let fixed_ns = (fixed_epoch * 1e9) as i64;
    let restart = sorted
        .iter()
        .position(|s| {
            s.ts_ns >= fixed_ns - 1_000_000_000 && Some(s.raw) == wave.raw(0).map(i64::from)
        })
        .expect("the second run's first reading is stored");
    let (before, after) = sorted.split_at(restart);
    wave.match_samples(before).unwrap();
    wave.match_samples(after).unwrap();
    let spooled_s = before
        .last()
        .zip(before.first())
        .map_or(0.0, |(l, f)| (l.ts_ns - f.ts_ns) as f64 / 1e9);
    assert!(
        spooled_s >= 5.0,
        "what it sampled while unregistered is stored: {spooled_s:.1} s"
    );

    // Back-off: the REGISTERs with (wrong) credentials before the fix
    // come further and further apart, and few of them.
    let port = site.agent.sip_port;
    let times: Vec<f64> = capture
        .fields(
            &format!("sip.Method == \"REGISTER\" && udp.srcport == {port} && sip.Authorization"),
            &["frame.time_epoch"],
        )
        .unwrap()
        .iter()
        .filter_map(|r| r[0].parse().ok())
        .collect();
    let before_fix: Vec<f64> = times.iter().copied().filter(|t| *t < fixed_epoch).collect();
    assert!(
        !before_fix.is_empty(),
        "REGISTERs with the wrong password: {times:?}"
    );
    assert!(
        before_fix.len() <= 6,
        "backs off: {} attempts in about 12 s: {before_fix:?}",
        before_fix.len()
    );
    let spacing: Vec<f64> = before_fix.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        spacing.iter().all(|d| *d >= 0.9),
        "about 1 s apart at least (back-off starts at 1-2 s): {spacing:?}"
    );
    assert!(
        spacing.windows(2).all(|w| w[1] >= w[0] * 0.9),
        "growing intervals: {spacing:?}"
    );
    assert!(
        times.iter().any(|t| *t >= fixed_epoch),
        "registered after the fix"
    );
    eprintln!(
        "s06: error {error}; attempts {spacing:?} s apart; streaming {:.1} s after SIGHUP, {:.1} s",
        recovered.as_secs_f64(),
        site.elapsed()
    );
}
