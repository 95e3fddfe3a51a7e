//! Scenario 1: the agent registers with digest authentication through
//! Kamailio, reaches the collector by Kamailio's location lookup, and
//! streams 10 s of its simulated waveform. The stored samples are exactly
//! those the agent sent (read from the capture) and those it generated
//! (recomputed), with wall-clock times within 1 ms of the agent's own.

#![allow(clippy::unwrap_used)]

use sipsensor_e2e::*;
use std::time::Duration;

#[test]
fn registers_with_digest_through_kamailio_and_streams_exactly_what_it_generated() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let mut site = Site::start("sensor1");
    site.stream();
    std::thread::sleep(Duration::from_secs(10));
    let (stored, capture) = site.finish(190);
    let aor = site.aor();

    // Digest: a challenge, then a REGISTER with credentials, accepted.
    let port = site.agent.sip_port;
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
            site.kamailio.addr().port(),
            site.collector.sip_port
        )) >= 1
    );

    // Exactly what was sent: same values, times within 1 ms of the agent's.
    let sent =
        capture::sent_samples(&capture, "127.0.0.1", site.collector.rtp_port, 20, |_| 1).unwrap();
    let compared = capture::assert_stored_as_sent(&stored, &sent);
    // And what was generated: every value is the waveform's, in order.
    let wave = wave::Waveform::new(&site.agent.sim(), site.agent.interval());
    let matched = wave.match_samples(&stored).unwrap();
    let (first, last) = (matched[0], *matched.last().unwrap());
    let span = last.ts_ns - first.ts_ns;
    assert!(span >= 9_500_000_000, "10 s of data: {span} ns");
    let skipped = assert_gaps_only(&site.collector, &aor, &[]);
    eprintln!(
        "s01: {} samples over {:.1} s, readings {}..{}, worst time error {} us, \
         {} instants sent as missing, {skipped} skips, {:.1} s",
        stored.len(),
        span as f64 / 1e9,
        first.reading,
        last.reading,
        compared.worst_ns / 1000,
        compared.missing,
        site.elapsed()
    );
}
