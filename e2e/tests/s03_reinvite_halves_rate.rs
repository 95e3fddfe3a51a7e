//! Scenario 3: a re-INVITE from the collector (`set-rate`) halves the
//! sample rate mid-stream. The stored data changes from 20 Hz to 10 Hz at
//! the moment of the command, in the same dialog, and nothing is lost
//! around the switch: what the agent sent (read from the capture) is what
//! is stored, and every value is the agent's waveform.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::*;
use std::time::{Duration, Instant};

#[test]
fn a_reinvite_halves_the_rate_and_nothing_is_lost_around_it() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let started = Instant::now();
    let kam = kamailio(&[("sensor3", "s3nsor-pw"), ("collector", "c0llector-pw")]);
    let mut collector =
        Collector::new(collector_behind(&kam, "collector", "c0llector-pw")).unwrap();
    let mut agent = Agent::new(agent_behind(&kam, "sensor3", "s3nsor-pw", "collector")).unwrap();
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
    std::thread::sleep(Duration::from_secs(4));

    let asked = unix_ns();
    let (ok, said) = collector.control(&["set-rate", "sensor3", "10"]);
    let answered = unix_ns();
    assert!(ok, "set-rate: {said}\ncollector log:\n{}", collector.log());
    assert!(said.contains("at 10 Hz (cfg 2)"), "{said}");
    let after = agent.wait_status("at 10 Hz", Duration::from_secs(10), |s| {
        s.sessions.first().is_some_and(|x| x.rate_hz == 10)
    });
    assert_eq!(after.sessions[0].call_id, call_id, "the same dialog");
    std::thread::sleep(Duration::from_secs(4));
    agent.stop();
    let aor = agent.spec.aor();
    let stored = settled_samples(&collector, &aor, 100);
    let capture = check_capture(tshark);
    // The re-INVITE went through Kamailio to the agent, in the dialog.
    let reinvites = capture
        .count(&format!(
            "sip.Method == \"INVITE\" && udp.srcport == {} && udp.dstport == {} && sip.Call-ID == \"{call_id}\" && sip.CSeq.seq > 1",
            kam.addr().port(),
            agent.sip_port
        ))
        .unwrap();
    assert!(reinvites >= 1, "re-INVITE via Kamailio");

    // Stored = sent: cfg 1 instants one tick apart, cfg 2 two ticks.
    let mut sent = capture::sent_samples(&capture, "127.0.0.1", collector.rtp_port, 20, |cfg| {
        u32::from(cfg.max(1))
    })
    .unwrap();
    sent.sort_by_key(|s| s.ts_ns);
    assert_eq!(
        stored.len(),
        sent.len(),
        "every sample sent is stored, once"
    );
    for (s, x) in stored.iter().zip(&sent) {
        assert_eq!(s.raw, i64::from(x.raw), "value at {}", x.ts_ns);
        assert!(
            (s.ts_ns - x.ts_ns).abs() <= 1_000_000,
            "{} vs {}",
            s.ts_ns,
            x.ts_ns
        );
    }
    let wave = wave::Waveform::new(&agent.sim(), agent.interval());
    wave.match_samples(&stored).unwrap();

    // 50 ms steps, then 100 ms steps, switching once, between the command
    // and its answer (plus one old packet in flight), with no hole.
    let steps: Vec<i64> = stored
        .windows(2)
        .map(|w| (w[1].ts_ns - w[0].ts_ns + 500_000) / 1_000_000)
        .collect();
    let switch = steps
        .iter()
        .position(|d| *d == 100)
        .unwrap_or_else(|| panic!("no 10 Hz part: {steps:?}"));
    assert!(
        steps[..switch].iter().all(|d| *d == 50),
        "20 Hz before: {steps:?}"
    );
    assert!(
        steps[switch..].iter().all(|d| *d == 100),
        "10 Hz after: {steps:?}"
    );
    let at = stored[switch].ts_ns;
    assert!(
        at >= asked - 100_000_000 && at <= answered + 100_000_000,
        "switch at {at}, command {asked}..{answered}"
    );
    // Two session records (one per description), split at the switch.
    let first = stored[0].session;
    let second = stored.last().unwrap().session;
    assert_ne!(first, second, "a new record for the new description");
    // The first instant of the new description may be one tick after the
    // last of the old (a 50 ms step) or two (the first 100 ms step).
    let boundary = stored.iter().position(|s| s.session != first).unwrap();
    assert!(
        (switch..=switch + 1).contains(&boundary),
        "records split at {boundary}, rate at {switch}"
    );
    assert!(stored[boundary..].iter().all(|s| s.session == second));
    assert!(
        collector.gaps(&aor).is_empty(),
        "{:?}",
        collector.gaps(&aor)
    );
    eprintln!(
        "s03: {} samples at 20 Hz, {} at 10 Hz, switch {:.1} ms after the command, {:.1} s",
        switch + 1,
        stored.len() - switch - 1,
        (at - asked) as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
}
