//! Scenario 8: the agent calls a standard SIP phone (baresip, registered
//! at Kamailio, answering every call by itself) instead of a collector.
//! The phone cannot take a sensor stream: it refuses the offer (488 or
//! another media refusal), the agent reports it clearly (log and status),
//! backs off between attempts and keeps running.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::*;
use sipsensor_testkit::Baresip;
use std::time::{Duration, Instant};

#[test]
fn a_phone_refuses_the_sensor_stream_and_the_agent_reports_and_backs_off() {
    if !require(&["kamailio", "baresip", "tshark"]) {
        return;
    }
    let started = Instant::now();
    let kam = kamailio(&[("sensor8", "s3nsor-pw"), ("phone", "ph0ne-pw")]);
    let mut agent = Agent::new(agent_behind(&kam, "sensor8", "s3nsor-pw", "phone")).unwrap();
    let tshark = capture(&[kam.addr().port(), agent.sip_port], &[]);
    let phone = Baresip::start(&format!("sip:phone@{}", kam.addr()), "ph0ne-pw").unwrap();
    agent.launch().unwrap();
    let failed = agent.wait_status("in error", Duration::from_secs(30), |s| {
        s.state == AgentState::Error
    });
    let error = failed
        .last_error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default();
    assert!(
        error.contains("the peer cannot take sensor streams"),
        "a clear error in the status: {error}"
    );
    assert!(!error.contains("488 488"), "the code said once: {error}");
    // Let it retry a while: it must back off and stay up.
    std::thread::sleep(Duration::from_secs(12));
    assert!(agent.running(), "still running");
    assert!(
        agent.log().contains("the peer cannot take sensor streams"),
        "{}",
        agent.log()
    );
    agent.stop();
    let capture = check_capture(tshark);
    let refusals = capture
        .fields(
            &format!(
                "sip.CSeq.method == \"INVITE\" && (sip.Status-Code == 488 || sip.Status-Code == 415 || sip.Status-Code == 606) && udp.dstport == {}",
                agent.sip_port
            ),
            &["frame.time_epoch", "sip.Status-Code"],
        )
        .unwrap();
    assert!(
        !refusals.is_empty(),
        "the phone refused the offer; phone log:\n{}",
        phone.log()
    );
    let invites: Vec<f64> = capture
        .fields(
            &format!(
                "sip.Method == \"INVITE\" && udp.srcport == {} && sip.Proxy-Authorization",
                agent.sip_port
            ),
            &["frame.time_epoch"],
        )
        .unwrap()
        .iter()
        .filter_map(|r| r[0].parse().ok())
        .collect();
    let spacing: Vec<f64> = invites.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        invites.len() <= 6,
        "backs off: {} calls in about 15 s",
        invites.len()
    );
    assert!(
        spacing.iter().all(|d| *d >= 0.9),
        "calls about 1 s apart at least (back-off starts at 1-2 s): {spacing:?}"
    );
    assert!(
        spacing.windows(2).all(|w| w[1] >= w[0] * 0.9),
        "growing intervals: {spacing:?}"
    );
    eprintln!(
        "s08: {} refusals ({}), calls {spacing:?} s apart, error {error:?}, {:.1} s",
        refusals.len(),
        refusals[0][1],
        started.elapsed().as_secs_f64()
    );
}
