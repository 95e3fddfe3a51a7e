//! Scenario 5: Kamailio is restarted and loses every binding. The agent
//! registers again by itself (its refresh, at about half of the 60 s
//! granted), the stream carries on without a hole (media never passes
//! Kamailio), and the session is still reachable through the restarted
//! proxy: a re-INVITE from the collector follows its Record-Route.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// The address-of-record lines of Kamailio's location table.
fn bindings(kam: &sipsensor_testkit::Kamailio) -> String {
    let out = Command::new(sipsensor_testkit::tool_path("kamcmd").unwrap())
        .arg("-s")
        .arg(format!("unix:{}", kam.dir().join("ctl").display()))
        .arg("ul.dump")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn after_a_kamailio_restart_the_agent_registers_again_and_streams_on() {
    if !require(&["kamailio", "kamcmd", "tshark"]) {
        return;
    }
    let mut site = Site::start_with("sensor5", |_| {}, |a| a.expires_s = 60);
    let call_id = site.stream().sessions[0].call_id.clone();
    assert!(bindings(&site.kamailio).contains("sensor5"), "registered");

    site.kamailio.restart().unwrap();
    let kam = &site.kamailio;
    let restarted = Instant::now();
    assert!(
        !bindings(kam).contains("sensor5"),
        "bindings lost on restart"
    );
    // The agent's refresh comes within 30 s of its last registration.
    let back = wait_for(Duration::from_secs(45), || {
        bindings(kam).contains("sensor5").then_some(())
    });
    assert!(
        back.is_some(),
        "no new registration; agent log:\n{}",
        site.agent.log_tail()
    );
    let reregistered = restarted.elapsed();
    let status = site.agent.status().unwrap();
    assert_eq!(status.state, AgentState::Streaming);
    assert_eq!(
        status.sessions[0].call_id, call_id,
        "the session carried on"
    );

    // The dialog works through the restarted proxy.
    let (ok, said) = site.collector.control(&["set-rate", "sensor5", "10"]);
    assert!(ok, "set-rate through the restarted Kamailio: {said}");
    site.agent
        .wait_status("at 10 Hz", Duration::from_secs(10), |s| {
            s.sessions.first().is_some_and(|x| x.rate_hz == 10)
        });
    std::thread::sleep(Duration::from_secs(2));
    let (stored, _) = site.finish(100);
    let aor = site.aor();
    let wave = wave::Waveform::new(&site.agent.sim(), site.agent.interval());
    let matched = wave.match_samples(&stored).unwrap();
    // No hole (a second is far more than a starved sensor thread's
    // missing instant or two), no gap but the agent's own skips.
    let holes = wave::holes(&matched, 1_000_000_000);
    assert!(holes.is_empty(), "no hole: {holes:?}");
    assert_gaps_only(&site.collector, &aor, &[]);
    eprintln!(
        "s05: registered again {:.1} s after the restart, {} samples without a hole, {:.1} s",
        reregistered.as_secs_f64(),
        stored.len(),
        site.elapsed()
    );
}
