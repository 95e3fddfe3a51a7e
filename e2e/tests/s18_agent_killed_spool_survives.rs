//! Issue #15, test 6 (the process half; the power cut of the image is a
//! boot test): the spool is the only copy of what the agent sampled while
//! the collector was away, and then the agent is killed (SIGKILL: no last
//! sync). Started again, it reads its spool back and backfills: of what it
//! sampled before the kill at most the fsync interval is lost, the time it
//! was not running is one hole that it declared unsampled (a `source` gap,
//! docs/protocol.md 11.7 step 4) so the collector's mark passes it and no
//! fillable gap is left, and the rest is stored exactly once.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::complete::{self, between, brief};
use sipsensor_e2e::recovery::{self, NEVER_SAMPLED, secs};
use sipsensor_e2e::*;
use std::time::{Duration, Instant};

/// The agent's default: a power cut or SIGKILL loses at most this much.
const FSYNC_INTERVAL_MS: u32 = 1000;
/// Sampled only into the spool (no collector) before the kill.
const SPOOLED_ONLY: Duration = Duration::from_secs(10);
const AGENT_DOWN: Duration = Duration::from_secs(3);
/// Gap causes that hold the collector's mark back (GapCause::is_fillable).
const FILLABLE: &[&str] = &["loss", "session_break", "overload"];

#[test]
fn after_kill_9_the_agent_backfills_its_spool_and_loses_at_most_the_fsync_interval() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let mut site = Site::start_with(
        "sensor18",
        |_| {},
        |a| {
            recovery::at_10_hz(a);
            a.spool.fsync_interval_ms = Some(FSYNC_INTERVAL_MS);
        },
    );
    site.stream();
    std::thread::sleep(Duration::from_secs(3));

    let collector_killed = unix_ns();
    site.collector.kill9();
    std::thread::sleep(SPOOLED_ONLY);
    let agent_killed = unix_ns();
    site.agent.kill9();
    std::thread::sleep(AGENT_DOWN);
    site.collector.launch().unwrap();
    let restarted_at = Instant::now();
    let restarted = unix_ns();
    site.agent.launch().unwrap();
    site.agent
        .wait_status("streaming again", Duration::from_secs(30), |s| {
            s.state == AgentState::Streaming
        });

    let aor = site.aor();
    let step = recovery::step_ns(&site.agent.spec);
    // Complete but for the time the agent was down, which it declared
    // unsampled; the backfill completed: no gap left that holds the mark.
    let done = wait_for(Duration::from_secs(40), || {
        let c = complete::coverage(&site.collector.samples(&aor), step);
        let gaps = site.collector.gaps(&aor);
        let hole = c
            .holes
            .iter()
            .find(|h| h.after_ns < agent_killed && h.before_ns > agent_killed)?;
        (c.last_ns > restarted + 3_000_000_000
            && c.unexplained(&gaps, NEVER_SAMPLED, step).is_empty()
            && !gaps.iter().any(|g| FILLABLE.contains(&g.cause.as_str())))
        .then_some(*hole)
    });
    let complete_after = restarted_at.elapsed();
    let (stored, _) = site.finish(1);
    let hole = done.unwrap_or_else(|| {
        let c = complete::coverage(&stored, step);
        panic!(
            "the downtime around the agent's kill is not one source gap, or the mark cannot pass it: {}\nholes {}\ngaps {}\nagent log:\n{}",
            c.summary(),
            brief(&c.holes),
            brief(&site.collector.gaps(&aor)),
            site.agent.log_tail()
        )
    });
    // What the first run sampled is stored up to the last sync before the
    // kill (a step more: the instant being written).
    let lost = agent_killed - hole.after_ns;
    assert!(
        lost <= i64::from(FSYNC_INTERVAL_MS) * 1_000_000 + step,
        "{:.2} s before the kill lost (fsync interval {FSYNC_INTERVAL_MS} ms)",
        secs(lost)
    );
    assert!(
        hole.before_ns >= restarted,
        "the new run starts after the restart"
    );
    // Each run exactly as sampled (the waveform starts again at reading 0
    // in the second).
    let gaps = site.collector.gaps(&aor);
    let wave = recovery::waveform(&site.agent, 120);
    let first = recovery::assert_exact(
        "s18 first run",
        &wave,
        &between(&stored, 0, hole.after_ns + 1),
        &gaps,
        step,
        NEVER_SAMPLED,
    );
    let second = recovery::assert_exact(
        "s18 second run",
        &wave,
        &between(&stored, hole.before_ns, i64::MAX),
        &gaps,
        step,
        NEVER_SAMPLED,
    );
    assert!(
        first.last_ns > collector_killed + 5_000_000_000,
        "the spooled part came"
    );
    eprintln!(
        "s18: collector down from {:.1} s before the agent's kill; lost {:.2} s before the kill \
         (fsync {FSYNC_INTERVAL_MS} ms); agent down {:.1} s; complete {:.1} s after the restart; \
         {} + {} stored; gaps {}; {:.1} s",
        secs(agent_killed - collector_killed),
        secs(lost),
        secs(hole.before_ns - hole.after_ns),
        complete_after.as_secs_f64(),
        first.stored,
        second.stored,
        brief(&gaps),
        site.elapsed()
    );
}
