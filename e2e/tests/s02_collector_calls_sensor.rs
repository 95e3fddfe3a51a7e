//! Scenario 2: the collector calls the sensor by its address of record
//! through Kamailio (location lookup); the sensor answers and streams, and
//! what it sends is stored.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::{AgentState, Direction};
use sipsensor_e2e::*;
use std::time::Duration;

#[test]
fn collector_calls_the_sensor_by_its_address_of_record() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    // It only registers; it calls nobody and trusts calls via Kamailio.
    let mut site = Site::start_with("sensor2", |_| {}, |a| a.collector = None);
    site.agent.launch().unwrap();
    site.agent
        .wait_status("registered", Duration::from_secs(30), |s| {
            s.state == AgentState::Registered
        });

    let aor = site.aor();
    let (ok, said) = site.call_sensor();
    assert!(ok, "call: {said}\ncollector log:\n{}", site.collector.log());
    let status = site
        .agent
        .wait_status("streaming", Duration::from_secs(20), |s| {
            s.state == AgentState::Streaming
        });
    assert_eq!(
        status.sessions[0].direction,
        Direction::Incoming,
        "{status:?}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let (stored, capture) = site.finish(70);

    // The INVITE went collector -> Kamailio -> sensor, challenged on the way.
    let count = |f: String| capture.count(&f).unwrap();
    let (k, c, a) = (
        site.kamailio.addr().port(),
        site.collector.sip_port,
        site.agent.sip_port,
    );
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
    // Issue #14: the sensor challenged the call itself (it came over UDP,
    // not on its own connection to Kamailio) and took the collector's
    // answer to that challenge, never its From header.
    assert!(
        count(format!(
            "sip.Status-Code == 401 && sip.CSeq.method == \"INVITE\" && udp.srcport == {a}"
        )) >= 1
    );
    assert!(
        count(format!(
            "sip.Method == \"INVITE\" && udp.dstport == {a} && sip.Authorization"
        )) >= 1
    );

    let sent =
        capture::sent_samples(&capture, "127.0.0.1", site.collector.rtp_port, 20, |_| 1).unwrap();
    capture::assert_stored_as_sent(&stored, &sent);
    let wave = wave::Waveform::new(&site.agent.sim(), site.agent.interval());
    wave.match_samples(&stored).unwrap();
    assert_gaps_only(&site.collector, &aor, &[]);
    eprintln!(
        "s02: {} samples stored, {:.1} s",
        stored.len(),
        site.elapsed()
    );
}
