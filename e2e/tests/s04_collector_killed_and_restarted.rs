//! Scenario 4: the collector is killed (SIGKILL: no BYE, no last commit)
//! and started again. The agent notices by itself (the new process sends
//! no RTCP for the old session, docs/protocol.md 6.1, or the in-dialog
//! OPTIONS keep-alive gets 481 from it) and calls again; the stored
//! data shows exactly one hole, from the kill to the new session, and the
//! waveform's readings across it account for exactly that time. The
//! collector agrees none of docs/protocol.md 11 (`media.recovery: false`):
//! with it the hole is backfilled, which s13 tests.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::session::liveness::CHECK_INTERVAL;
use sipsensor_agent::status::AgentState;
use sipsensor_e2e::*;
use std::time::Duration;

#[test]
fn after_kill_9_and_restart_the_agent_recovers_and_one_gap_is_stored() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let mut site = Site::start_with(
        "sensor4",
        |c| c.media_yaml = "  recovery: false\n".into(),
        |_| {},
    );
    let first_call = site.stream().sessions[0].call_id.clone();
    std::thread::sleep(Duration::from_secs(3));

    let killed = unix_ns();
    site.collector.kill9();
    site.collector.launch().unwrap();
    // The RTCP silent for the peer timeout (this collector agrees no
    // backfill: 20 s or more; 4 s with it), or the OPTIONS keep-alive's
    // 481 within 20 s, then the agent calls again at once.
    let second = site
        .agent
        .wait_status("streaming again", Duration::from_secs(60), |s| {
            s.state == AgentState::Streaming
                && s.sessions.first().is_some_and(|x| x.call_id != first_call)
        });
    let resumed = i64::try_from(second.sessions[0].started_unix_ms).unwrap() * 1_000_000;
    let bound = site.agent.legacy_peer_timeout() + CHECK_INTERVAL + Duration::from_secs(2);
    assert!(
        resumed - killed <= bound.as_nanos() as i64,
        "kill to new session {} ms, not within {bound:?}",
        (resumed - killed) / 1_000_000
    );
    std::thread::sleep(Duration::from_secs(3));
    let (stored, capture) = site.finish(100);
    let aor = site.aor();

    let wave = wave::Waveform::new(&site.agent.sim(), site.agent.interval());
    let matched = wave.match_samples(&stored).unwrap();
    // One hole longer than two sample periods; every other step is 50 ms.
    // A second is far more than a starved sensor's missing instant.
    let holes = wave::holes(&matched, 1_000_000_000);
    assert_eq!(holes.len(), 1, "one hole: {holes:?}");
    let (i, length) = holes[0];
    let (before, after) = (matched[i], matched[i + 1]);
    // It starts at the kill (SIGKILL loses the rows not yet committed:
    // at most the 200 ms flush interval, plus packets in flight) and ends
    // when the new session starts.
    assert!(
        before.ts_ns <= killed && before.ts_ns >= killed - 1_000_000_000,
        "last sample {} ms before the kill",
        (killed - before.ts_ns) / 1_000_000
    );
    assert!(
        (after.ts_ns - resumed).abs() <= 1_000_000_000,
        "first sample {} ms after the new session started",
        (after.ts_ns - resumed) / 1_000_000
    );
    // The sensor went on reading: the readings skipped are the hole's time.
    let skipped = (after.reading - before.reading) as i64 * 50_000_000;
    assert!(
        (skipped - length).abs() <= 500_000_000,
        "hole {length} ns, readings skipped worth {skipped} ns"
    );
    // Nothing else missing: everything the agent sent outside the hole
    // is stored, as sent (the capture covers both collector processes).
    eprintln!(
        "s04: killed {killed}, last stored before {}, first after {}, new session {resumed}",
        before.ts_ns, after.ts_ns
    );
    let sent =
        capture::sent_samples(&capture, "127.0.0.1", site.collector.rtp_port, 20, |_| 1).unwrap();
    let outside: Vec<capture::SentSample> = sent
        .into_iter()
        // (within the 1 ms the stored times may differ from the agent's)
        .filter(|x| x.ts_ns <= before.ts_ns + 1_000_000 || x.ts_ns >= after.ts_ns - 1_000_000)
        .collect();
    capture::assert_stored_as_sent(&stored, &outside);
    // The stored gaps: only this one (a session break), nothing else
    // (but the agent's own skips).
    assert_gaps_only(&site.collector, &aor, &["session_break"]);
    let gaps: Vec<Gap> = site
        .collector
        .gaps(&aor)
        .into_iter()
        .filter(|g| g.cause == "session_break")
        .collect();
    assert!(gaps.len() <= 1, "{gaps:?}");
    for g in &gaps {
        assert!(
            (g.from_ns - before.ts_ns).abs() <= 100_000_000
                && (g.to_ns - after.ts_ns).abs() <= 100_000_000,
            "{g:?} vs hole {}..{}",
            before.ts_ns,
            after.ts_ns
        );
    }
    eprintln!(
        "s04: hole of {:.2} s (kill to new session {:.2} s), {} gap rows, {:.1} s",
        length as f64 / 1e9,
        (resumed - killed) as f64 / 1e9,
        gaps.len(),
        site.elapsed()
    );
}
