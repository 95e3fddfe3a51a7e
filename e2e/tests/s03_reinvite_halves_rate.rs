//! Scenario 3: a re-INVITE from the collector (`set-rate`) halves the
//! sample rate mid-stream. The stored data changes from 20 Hz to 10 Hz at
//! the moment of the command, in the same dialog, and nothing is lost
//! around the switch: what the agent sent (read from the capture) is what
//! is stored, and every value is the agent's waveform.

#![allow(clippy::unwrap_used)]

use sipsensor_e2e::*;
use std::time::Duration;

#[test]
fn a_reinvite_halves_the_rate_and_nothing_is_lost_around_it() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let mut site = Site::start("sensor3");
    let call_id = site.stream().sessions[0].call_id.clone();
    std::thread::sleep(Duration::from_secs(4));

    let asked = unix_ns();
    let (ok, said) = site.collector.control(&["set-rate", "sensor3", "10"]);
    let answered = unix_ns();
    assert!(
        ok,
        "set-rate: {said}\ncollector log:\n{}",
        site.collector.log()
    );
    assert!(said.contains("at 10 Hz (cfg 2)"), "{said}");
    let after = site
        .agent
        .wait_status("at 10 Hz", Duration::from_secs(10), |s| {
            s.sessions.first().is_some_and(|x| x.rate_hz == 10)
        });
    assert_eq!(after.sessions[0].call_id, call_id, "the same dialog");
    std::thread::sleep(Duration::from_secs(4));
    let (stored, capture) = site.finish(100);
    let aor = site.aor();
    // The re-INVITE went through Kamailio to the agent, in the dialog.
    let reinvites = capture
        .count(&format!(
            "sip.Method == \"INVITE\" && udp.srcport == {} && udp.dstport == {} && sip.Call-ID == \"{call_id}\" && sip.CSeq.seq > 1",
            site.kamailio.addr().port(),
            site.agent.sip_port
        ))
        .unwrap();
    assert!(reinvites >= 1, "re-INVITE via Kamailio");

    // Stored = sent: cfg 1 instants one tick apart, cfg 2 two ticks.
    let sent = capture::sent_samples(&capture, "127.0.0.1", site.collector.rtp_port, 20, |cfg| {
        u32::from(cfg.max(1))
    })
    .unwrap();
    capture::assert_stored_as_sent(&stored, &sent);
    let wave = wave::Waveform::new(&site.agent.sim(), site.agent.interval());
    wave.match_samples(&stored).unwrap();

    // The agent's instants (the capture, missing ones included, so a
    // starved sensor thread cannot fake a rate change): 50 ms steps, then
    // 100 ms steps, switching once, at the command (plus a packet in
    // flight), with no hole.
    let mut instants: Vec<i64> = sent.iter().map(|s| s.ts_ns).collect();
    instants.sort_unstable();
    let steps: Vec<i64> = instants
        .windows(2)
        .map(|w| (w[1] - w[0] + 500_000) / 1_000_000)
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
    let at = instants[switch];
    assert!(
        at >= asked - 100_000_000 && at <= answered + 100_000_000,
        "switch at {at}, command {asked}..{answered}"
    );
    // Two session records (one per description), split at the switch:
    // the first instant of the new description is one tick after the
    // last of the old (a 50 ms step) or two (the first 100 ms step).
    let first = stored[0].session;
    let second = stored.last().unwrap().session;
    assert_ne!(first, second, "a new record for the new description");
    for s in &stored {
        if s.ts_ns < at {
            assert_eq!(s.session, first, "{s:?}");
        } else if s.ts_ns > at {
            assert_eq!(s.session, second, "{s:?}");
        }
    }
    assert_gaps_only(&site.collector, &aor, &[]);
    eprintln!(
        "s03: {} samples at 20 Hz, {} at 10 Hz, switch {:.1} ms after the command, {:.1} s",
        switch + 1,
        instants.len() - switch - 1,
        (at - asked) as f64 / 1e6,
        site.elapsed()
    );
}
