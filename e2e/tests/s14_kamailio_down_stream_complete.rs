//! Issue #15, test 2: Kamailio is stopped while a sensor streams and
//! started again 10 s later with every binding lost. The media never
//! passes Kamailio, but the in-dialog keep-alive does (Record-Route): if
//! the agent takes the silent proxy for a dead path and sets the session
//! up again, the spool covers the change. Either way the stored history
//! is exactly what the sensor sampled: missing 0, duplicated 0.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::complete::brief;
use sipsensor_e2e::recovery::{self, NEVER_SAMPLED};
use sipsensor_e2e::*;
use std::time::{Duration, Instant};

const DOWN: Duration = Duration::from_secs(10);

#[test]
fn kamailio_stopped_and_started_again_costs_no_sample() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let mut site = Site::start_with(
        "sensor14",
        |_| {},
        |a| {
            recovery::at_10_hz(a);
            a.expires_s = 60;
        },
    );
    let first_call = site.stream().sessions[0].call_id.clone();
    std::thread::sleep(Duration::from_secs(3));

    site.kamailio.stop();
    std::thread::sleep(DOWN);
    let restarted_at = Instant::now();
    let restarted = unix_ns();
    site.kamailio.restart().unwrap();
    // Registered again (its refresh at half the 60 s granted) and streaming.
    site.agent.wait_status(
        "streaming after the restart",
        Duration::from_secs(45),
        |s| s.state == AgentState::Streaming,
    );
    let aor = site.aor();
    let url = site.collector.storage_url().to_string();
    let step = recovery::step_ns(&site.agent.spec);
    let done = recovery::wait_complete(
        &url,
        &aor,
        step,
        restarted + 5_000_000_000,
        NEVER_SAMPLED,
        Duration::from_secs(60),
    )
    .unwrap_or_else(|c| panic!("not complete: {}\n{}", c.summary(), brief(&c.holes)));
    let complete_after = restarted_at.elapsed();
    let same_session = site
        .agent
        .status()
        .is_some_and(|s| s.sessions.first().is_some_and(|x| x.call_id == first_call));
    let (stored, _) = site.finish(done.stored);
    let wave = recovery::waveform(&site.agent, 120);
    let c = recovery::assert_exact(
        "s14",
        &wave,
        &stored,
        &site.collector.gaps(&aor),
        step,
        NEVER_SAMPLED,
    );
    eprintln!(
        "s14: Kamailio down {:.0} s; {} session; history complete {:.1} s after its restart \
         ({} stored); {:.1} s",
        DOWN.as_secs_f64(),
        if same_session { "the same" } else { "a new" },
        complete_after.as_secs_f64(),
        c.stored,
        site.elapsed()
    );
}
