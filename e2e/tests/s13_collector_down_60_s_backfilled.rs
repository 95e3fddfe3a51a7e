//! Issue #15, test 1: 20 sensors stream at 10 Hz through Kamailio to one
//! collector, which is killed (SIGKILL: no BYE, no last commit) and
//! started again 60 s later. Each agent's spool kept what the collector
//! did not commit (docs/protocol.md 11.7): live data resumes within 5 s of
//! the restart, the backfill of the minute is done within
//! `BACKFILL_WITHIN`, and every sensor's stored history is then exactly
//! what it sampled: missing 0, duplicated 0.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::recovery::{self, NEVER_SAMPLED, secs};
use sipsensor_e2e::site::{COLLECTOR_PASSWORD, SENSOR_PASSWORD};
use sipsensor_e2e::*;
use std::time::{Duration, Instant};

const SENSORS: usize = 20;
const DOWN: Duration = Duration::from_secs(60);
/// The figure for live data after the restart.
const LIVE_WITHIN_NS: i64 = 5_000_000_000;
/// What this test states for the backfill: 600 samples a sensor at the
/// agents' default backfill rate, 20 sensors at once, counted from the
/// restart.
const BACKFILL_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn a_minute_without_the_collector_is_backfilled_for_every_sensor() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let started = Instant::now();
    let names: Vec<String> = (1..=SENSORS).map(|i| format!("sensor{i:02}")).collect();
    let mut users: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (n.as_str(), SENSOR_PASSWORD))
        .collect();
    users.push(("collector", COLLECTOR_PASSWORD));
    let kam = kamailio(&users);
    let mut collector =
        Collector::new(collector_behind(&kam, "collector", COLLECTOR_PASSWORD)).unwrap();
    let mut agents: Vec<Agent> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut spec = agent_behind(&kam, n, SENSOR_PASSWORD, "collector");
            recovery::at_10_hz(&mut spec);
            spec.seed = 1300 + i as u64;
            Agent::new(spec).unwrap()
        })
        .collect();
    let mut sip_ports = vec![kam.addr().port(), collector.sip_port];
    sip_ports.extend(agents.iter().map(|a| a.sip_port));
    let tshark = capture(&sip_ports, &[collector.rtp_port]);
    collector.launch().unwrap();
    wait_log(
        "registration",
        Duration::from_secs(20),
        || collector.log(),
        "registered as",
    );
    for a in &mut agents {
        a.launch().unwrap();
    }
    for a in &agents {
        a.wait_status("streaming", Duration::from_secs(60), |s| {
            s.state == AgentState::Streaming
        });
    }
    std::thread::sleep(Duration::from_secs(5));

    let killed = unix_ns();
    collector.kill9();
    std::thread::sleep(DOWN);
    let restarted_at = Instant::now();
    let restarted = unix_ns();
    collector.launch().unwrap();
    let url = collector.storage_url().to_string();

    // Live first: each sensor's first live sample after the restart.
    let mut live_after = Vec::new();
    for a in &agents {
        let aor = a.spec.aor();
        let first = wait_for(Duration::from_secs(30), || {
            recovery::first_live_after(&collector::samples(&url, &aor), restarted)
        })
        .unwrap_or_else(|| panic!("{aor}: no live data after the restart\n{}", a.log_tail()));
        live_after.push(first - restarted);
    }
    let done = recovery::wait_all_complete(
        &url,
        &agents.iter().collect::<Vec<_>>(),
        restarted + LIVE_WITHIN_NS,
        NEVER_SAMPLED,
        restarted_at,
        BACKFILL_WITHIN,
    );
    for a in &mut agents {
        a.stop();
    }
    collector.stop();
    check_capture(tshark);

    let mut backfilled = 0;
    for a in &agents {
        let aor = a.spec.aor();
        let stored = collector::samples(&url, &aor);
        let c = recovery::assert_exact(
            &aor,
            &recovery::waveform(a, 200),
            &stored,
            &collector::gaps(&url, &aor),
            recovery::step_ns(&a.spec),
            NEVER_SAMPLED,
        );
        assert!(
            c.first_ns < killed && c.last_ns > restarted,
            "{aor}: {}",
            c.summary()
        );
        backfilled += c.by_source.get("backfilled").copied().unwrap_or(0);
    }
    let max_live = live_after.iter().copied().max().unwrap_or(0);
    let max_done = done.iter().max().copied().unwrap_or_default();
    eprintln!(
        "s13: {SENSORS} sensors, collector down {:.1} s; live again {:.2}..{:.2} s after the \
         restart; backfill ({backfilled} samples) done {:.1} s after it; {:.1} s",
        secs(restarted - killed),
        secs(live_after.iter().copied().min().unwrap_or(0)),
        secs(max_live),
        max_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        max_live <= LIVE_WITHIN_NS,
        "live data {:.2} s after the restart (at most 5 s): {live_after:?}",
        secs(max_live)
    );
}
