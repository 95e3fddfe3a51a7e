//! Scenario 2: the collector calls the sensor by its address of record
//! through Kamailio (location lookup); the sensor answers and streams, and
//! what it sends is stored.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::*;
use std::time::{Duration, Instant};

#[test]
fn collector_calls_the_sensor_by_its_address_of_record() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let started = Instant::now();
    let kam = kamailio(&[("sensor2", "s3nsor-pw"), ("collector", "c0llector-pw")]);
    let mut collector =
        Collector::new(collector_behind(&kam, "collector", "c0llector-pw")).unwrap();
    // It only registers; it calls nobody and trusts calls via Kamailio.
    let mut spec = agent_behind(&kam, "sensor2", "s3nsor-pw", "collector");
    spec.collector = None;
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
    agent.wait_status("registered", Duration::from_secs(30), |s| {
        s.state == AgentState::Registered
    });

    let aor = agent.spec.aor();
    let (ok, said) = collector.control(&[
        "call",
        &aor,
        "--clock",
        "20",
        "--rate",
        "20",
        "--spp",
        "2",
        "--channel",
        "sim.wave:V:-3",
    ]);
    assert!(ok, "call: {said}\ncollector log:\n{}", collector.log());
    let status = agent.wait_status("streaming", Duration::from_secs(20), |s| {
        s.state == AgentState::Streaming
    });
    let session = &status.sessions[0];
    assert_eq!(
        session.direction,
        sipsensor_agent::status::Direction::Incoming,
        "{session:?}"
    );
    std::thread::sleep(Duration::from_secs(4));
    agent.stop();
    let stored = settled_samples(&collector, &aor, 70);
    let capture = check_capture(tshark);

    // The INVITE went collector -> Kamailio -> sensor, challenged on the way.
    let count = |f: String| capture.count(&f).unwrap();
    let (k, c, a) = (kam.addr().port(), collector.sip_port, agent.sip_port);
    assert!(
        count(format!(
            "sip.Method == \"INVITE\" && udp.srcport == {c} && udp.dstport == {k} && sip.Proxy-Authorization"
        )) >= 1
    );
    assert!(
        count(format!(
            "sip.Method == \"INVITE\" && udp.srcport == {k} && udp.dstport == {a}"
        )) >= 1
    );
    assert!(
        count(format!(
            "sip.Status-Code == 200 && sip.CSeq.method == \"INVITE\" && udp.srcport == {a}"
        )) >= 1
    );

    let mut sent =
        capture::sent_samples(&capture, "127.0.0.1", collector.rtp_port, 20, |_| 1).unwrap();
    sent.sort_by_key(|s| s.ts_ns);
    assert_eq!(
        stored.len(),
        sent.len(),
        "every sample sent is stored, once"
    );
    for (s, x) in stored.iter().zip(&sent) {
        assert_eq!(s.raw, i64::from(x.raw));
        assert!((s.ts_ns - x.ts_ns).abs() <= 1_000_000);
    }
    let wave = wave::Waveform::new(&agent.sim(), agent.interval());
    wave.match_samples(&stored).unwrap();
    assert!(
        collector.gaps(&aor).is_empty(),
        "{:?}",
        collector.gaps(&aor)
    );
    eprintln!(
        "s02: {} samples stored, {:.1} s",
        stored.len(),
        started.elapsed().as_secs_f64()
    );
}
