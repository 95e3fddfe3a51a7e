//! Issue #15, test 4: scenario 9 with the spool. Two collectors behind
//! Kamailio's dispatcher share one PostgreSQL database; one is killed
//! (SIGKILL). Its sensors notice within 5 s (docs/protocol.md 11 and the
//! agent's liveness check), call again, and the dispatcher sends them to
//! the other collector: live data there within 5 s of the kill (noticing
//! included), the seconds in between backfilled from the marks the shared
//! store gives the new collector. Every sensor's history is then exactly
//! what it sampled: missing 0, duplicated 0.

#![allow(clippy::unwrap_used)]

use sipsensor_e2e::paths::{self, CollectorPair};
use sipsensor_e2e::recovery::{self, NEVER_SAMPLED, secs};
use sipsensor_e2e::*;
use std::time::{Duration, Instant};

const SENSORS: usize = 10;
/// The figure: live data on the other collector after the kill.
const LIVE_WITHIN_NS: i64 = 5_000_000_000;

#[test]
fn a_failover_moves_live_data_within_5_s_and_backfills_the_rest() {
    if !require(&["kamailio", "postgres", "tshark"]) {
        return;
    }
    let started = Instant::now();
    let pair = CollectorPair::new();
    let names: Vec<String> = (1..=SENSORS).map(|i| format!("sensor{i:02}")).collect();
    let users: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "s3nsor-pw")).collect();
    let kam = kamailio_with(&users, pair.uris());
    let CollectorPair {
        url,
        mut c1,
        mut c2,
        ..
    } = pair;
    let mut agents: Vec<Agent> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut spec = agent_behind(&kam, n, "s3nsor-pw", "collector");
            recovery::at_10_hz(&mut spec);
            spec.seed = 1600 + i as u64;
            Agent::new(spec).unwrap()
        })
        .collect();
    let (tshark, on_c1) = paths::launch_split(kam.addr().port(), &mut c1, &mut c2, &mut agents);
    assert!(
        !on_c1.is_empty() && on_c1.len() < SENSORS,
        "both collectors take sensors: {on_c1:?}"
    );
    std::thread::sleep(Duration::from_secs(3));

    let killed_at = Instant::now();
    let killed = unix_ns();
    c1.kill9();
    // Live again: the moved sensors' first live sample after the kill
    // that is not the dead collector's (it stored nothing after it).
    let moved = agents
        .iter()
        .filter(|a| on_c1.contains(&a.spec.aor()))
        .count();
    let mut live_after = Vec::new();
    for a in agents.iter().filter(|a| on_c1.contains(&a.spec.aor())) {
        let aor = a.spec.aor();
        let first = wait_for(Duration::from_secs(60), || {
            recovery::first_live_after(&collector::samples(&url, &aor), killed)
        })
        .unwrap_or_else(|| panic!("{aor}: no live data after the kill\n{}", a.log_tail()));
        live_after.push(first - killed);
    }
    let done = recovery::wait_all_complete(
        &url,
        &agents.iter().collect::<Vec<_>>(),
        killed + LIVE_WITHIN_NS + 2_000_000_000,
        NEVER_SAMPLED,
        killed_at,
        Duration::from_secs(60),
    );
    for a in &mut agents {
        a.stop();
    }
    c2.stop();
    check_capture(tshark);
    for a in &agents {
        let aor = a.spec.aor();
        recovery::assert_exact(
            &aor,
            &recovery::waveform(a, 120),
            &collector::samples(&url, &aor),
            &collector::gaps(&url, &aor),
            recovery::step_ns(&a.spec),
            NEVER_SAMPLED,
        );
    }
    let max_live = live_after.iter().copied().max().unwrap_or(0);
    eprintln!(
        "s16: {} of {SENSORS} sensors moved; live on the other collector {:.2}..{:.2} s after \
         the kill; every history complete {:.1} s after it; {:.1} s",
        moved,
        secs(live_after.iter().copied().min().unwrap_or(0)),
        secs(max_live),
        done.iter().max().copied().unwrap_or_default().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        max_live <= LIVE_WITHIN_NS,
        "live data {:.2} s after the kill (at most 5 s): {live_after:?}",
        secs(max_live)
    );
}
