//! Scenario 11 (issue #14): the sensor opens no SIP port. It registers an
//! RFC 5626 flow at Kamailio over TCP and the collector's call reaches it
//! over that same connection (Kamailio's lookup sends it where the
//! REGISTER came from); the sensor takes it without a challenge because it
//! came on the flow to its registrar, and streams.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::{AgentState, Direction};
use sipsensor_e2e::*;
use std::time::Duration;

#[test]
fn collector_reaches_a_sensor_without_a_port_over_its_flow() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let mut site = Site::start_with(
        "sensor10",
        |_| {},
        |a| {
            a.collector = None;
            a.flow_only = true;
            // Only the flow lets calls in.
            a.callers.clear();
        },
    );
    site.agent.launch().unwrap();
    site.agent
        .wait_status("registered", Duration::from_secs(30), |s| {
            s.state == AgentState::Registered
        });
    // Nothing listens on the agent's configured port.
    assert!(std::net::TcpStream::connect(("127.0.0.1", site.agent.sip_port)).is_err());

    let (ok, said) = site.call_sensor();
    assert!(
        ok,
        "call: {said}\ncollector log:\n{}\nagent log:\n{}",
        site.collector.log(),
        site.agent.log()
    );
    let status = site
        .agent
        .wait_status("streaming", Duration::from_secs(20), |s| {
            s.state == AgentState::Streaming
        });
    assert_eq!(status.sessions[0].direction, Direction::Incoming);
    std::thread::sleep(Duration::from_secs(3));
    let (stored, capture) = site.finish(40);

    // Kamailio -> sensor over TCP, and no SIP over UDP to or from it.
    let k = site.kamailio.addr().port();
    let count = |f: String| capture.count(&f).unwrap();
    assert!(
        count(format!(
            "sip.Method == \"INVITE\" && tcp.srcport == {k} && !sip.Authorization"
        )) >= 1
    );
    assert_eq!(
        count(format!("sip && udp.port == {}", site.agent.sip_port)),
        0
    );
    assert!(!stored.is_empty());
}
