//! Scenario 1: the agent registers with digest authentication through
//! Kamailio, reaches the collector by Kamailio's location lookup, and
//! streams 10 s of its simulated waveform. The stored samples are exactly
//! those the agent sent (read from the capture) and those it generated
//! (recomputed), with wall-clock times within 1 ms of the agent's own.

#![allow(clippy::unwrap_used)]

use sipsensor_e2e::*;
use std::time::{Duration, Instant};

#[test]
fn registers_with_digest_through_kamailio_and_streams_exactly_what_it_generated() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let started = Instant::now();
    let kam = kamailio(&[("sensor1", "s3nsor-pw"), ("collector", "c0llector-pw")]);
    let mut collector =
        Collector::new(collector_behind(&kam, "collector", "c0llector-pw")).unwrap();
    let mut agent = Agent::new(agent_behind(&kam, "sensor1", "s3nsor-pw", "collector")).unwrap();
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
    agent.wait_status("streaming", Duration::from_secs(30), |s| {
        s.state == sipsensor_agent::status::AgentState::Streaming
    });
    std::thread::sleep(Duration::from_secs(10));
    // SIGTERM: BYE; the collector closes the session and commits.
    agent.stop();
    let aor = agent.spec.aor();
    let stored = settled_samples(&collector, &aor, 190);
    let capture = check_capture(tshark);

    // Digest: a challenge, then a REGISTER with credentials, accepted.
    let port = agent.sip_port;
    let count = |filter: String| capture.count(&filter).unwrap();
    assert!(
        count(format!(
            "sip.Method == \"REGISTER\" && udp.srcport == {port} && sip.Authorization"
        )) >= 1
    );
    assert!(count(format!("sip.Status-Code == 401 && udp.dstport == {port}")) >= 1);
    assert!(
        count(format!(
            "sip.Status-Code == 200 && sip.CSeq.method == \"REGISTER\" && udp.dstport == {port}"
        )) >= 1
    );
    // The INVITE reached the collector from Kamailio (location lookup).
    assert!(
        count(format!(
            "sip.Method == \"INVITE\" && udp.srcport == {} && udp.dstport == {}",
            kam.addr().port(),
            collector.sip_port
        )) >= 1
    );

    // Exactly what was sent: same values, times within 1 ms of the agent's.
    let mut sent = capture::sent_samples(
        &capture,
        "127.0.0.1",
        collector.rtp_port,
        agent.spec.rate,
        |_| 1,
    )
    .unwrap();
    sent.sort_by_key(|s| s.ts_ns);
    let mut mine: Vec<_> = stored.iter().filter(|s| s.channel == 0).cloned().collect();
    mine.sort_by_key(|s| s.ts_ns);
    assert_eq!(mine.len(), sent.len(), "every sample sent is stored, once");
    let mut worst = 0i64;
    for (s, x) in mine.iter().zip(&sent) {
        assert_eq!(s.raw, i64::from(x.raw), "value at {}", x.ts_ns);
        let dt = (s.ts_ns - x.ts_ns).abs();
        worst = worst.max(dt);
        assert!(
            dt <= 1_000_000,
            "stored at {} but the agent says {}",
            s.ts_ns,
            x.ts_ns
        );
    }
    // And what was generated: every value is the waveform's, in order.
    let wave = wave::Waveform::new(&agent.sim(), agent.interval());
    let matched = wave.match_samples(&mine).unwrap();
    let span = matched.last().unwrap().ts_ns - matched[0].ts_ns;
    assert!(span >= 9_500_000_000, "10 s of data: {span} ns");
    let readings = matched.last().unwrap().reading - matched[0].reading;
    assert!(
        gaps_none(&collector, &aor),
        "no gap: {:?}",
        collector.gaps(&aor)
    );
    eprintln!(
        "s01: {} samples over {:.1} s, readings {}..{} ({readings} steps), worst time error {} us, {:.1} s",
        mine.len(),
        span as f64 / 1e9,
        matched[0].reading,
        matched.last().unwrap().reading,
        worst / 1000,
        started.elapsed().as_secs_f64()
    );
}

fn gaps_none(c: &Collector, aor: &str) -> bool {
    c.gaps(aor).is_empty()
}
