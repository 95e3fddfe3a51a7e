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
    let started = Instant::now();
    let kam_users = [("sensor5", "s3nsor-pw"), ("collector", "c0llector-pw")];
    let mut kam = kamailio(&kam_users);
    let mut collector =
        Collector::new(collector_behind(&kam, "collector", "c0llector-pw")).unwrap();
    let mut spec = agent_behind(&kam, "sensor5", "s3nsor-pw", "collector");
    spec.expires_s = 60;
    let mut agent = Agent::new(spec).unwrap();
    let tshark = capture(
        &[kam.addr().port(), collector.sip_port, agent.sip_port],
        &[collector.rtp_port],
    );
    collector.launch().unwrap();
    wait_log(
        "collector registration",
        Duration::from_secs(20),
        || collector.log(),
        "registered as",
    );
    agent.launch().unwrap();
    let before = agent.wait_status("streaming", Duration::from_secs(30), |s| {
        s.state == AgentState::Streaming
    });
    let call_id = before.sessions[0].call_id.clone();
    assert!(
        bindings(&kam).contains("sensor5"),
        "registered: {}",
        bindings(&kam)
    );

    kam.restart().unwrap();
    let restarted = Instant::now();
    assert!(
        !bindings(&kam).contains("sensor5"),
        "bindings lost on restart"
    );
    // The agent's refresh comes within 30 s of its last registration.
    let back = wait_for(Duration::from_secs(45), || {
        bindings(&kam).contains("sensor5").then_some(())
    });
    assert!(
        back.is_some(),
        "no new registration; agent log:\n{}",
        agent.log_tail()
    );
    let reregistered = restarted.elapsed();
    let status = agent.status().unwrap();
    assert_eq!(status.state, AgentState::Streaming);
    assert_eq!(
        status.sessions[0].call_id, call_id,
        "the session carried on"
    );

    // The dialog works through the restarted proxy.
    let (ok, said) = collector.control(&["set-rate", "sensor5", "10"]);
    assert!(ok, "set-rate through the restarted Kamailio: {said}");
    agent.wait_status("at 10 Hz", Duration::from_secs(10), |s| {
        s.sessions.first().is_some_and(|x| x.rate_hz == 10)
    });
    std::thread::sleep(Duration::from_secs(2));
    agent.stop();
    let aor = agent.spec.aor();
    let stored = settled_samples(&collector, &aor, 100);
    check_capture(tshark);
    let wave = wave::Waveform::new(&agent.sim(), agent.interval());
    let matched = wave.match_samples(&stored).unwrap();
    let hole = wave::largest_hole(&matched).unwrap();
    assert!(hole.1 - hole.0 <= 100_000_000, "no hole: {hole:?}");
    assert!(
        collector.gaps(&aor).is_empty(),
        "{:?}",
        collector.gaps(&aor)
    );
    eprintln!(
        "s05: registered again {:.1} s after the restart, {} samples without a hole, {:.1} s",
        reregistered.as_secs_f64(),
        stored.len(),
        started.elapsed().as_secs_f64()
    );
}
