//! Issue #15, test 7: an outage longer than the spool holds. The oldest
//! spooled data goes first; after the outage the agent says so (SSBF
//! expired, docs/protocol.md 11.4) and backfills the rest, and the
//! collector records an expired gap of exactly the range that is gone:
//! from its last committed sample to the spool's oldest one.
//!
//! The spool is bounded by size and by age, and the ring drops its oldest
//! segment for either (agent/src/spool.rs). `max_bytes` is at least 1 MiB,
//! which one sensor at test rates fills in about an hour; `max_age` at its
//! least (1 minute) fills in a minute and makes the same cut, so this test
//! bounds the age.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::complete;
use sipsensor_e2e::complete::brief;
use sipsensor_e2e::recovery::{self, NEVER_SAMPLED, secs};
use sipsensor_e2e::*;
use std::time::{Duration, Instant};

const MAX_AGE: &str = "1m";
/// Longer than the minute the spool keeps.
const DOWN: Duration = Duration::from_secs(85);

#[test]
fn a_full_spool_drops_the_oldest_and_the_collector_stores_that_range_as_expired() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let mut site = Site::start_with(
        "sensor19",
        |_| {},
        |a| {
            recovery::at_10_hz(a);
            a.spool.max_age = Some(MAX_AGE.into());
        },
    );
    site.stream();
    std::thread::sleep(Duration::from_secs(3));
    let killed = unix_ns();
    site.collector.kill9();
    std::thread::sleep(DOWN);
    let restarted_at = Instant::now();
    let restarted = unix_ns();
    site.collector.launch().unwrap();
    site.agent
        .wait_status("streaming again", Duration::from_secs(30), |s| {
            s.state == AgentState::Streaming
        });

    let aor = site.aor();
    let url = site.collector.storage_url().to_string();
    let step = recovery::step_ns(&site.agent.spec);
    let c = recovery::wait_complete(
        &url,
        &aor,
        step,
        restarted + 5_000_000_000,
        &["source", "expired"],
        Duration::from_secs(40),
    )
    .unwrap_or_else(|c| {
        panic!(
            "not complete but for expired gaps: {}\nholes {}\ngaps {}",
            c.summary(),
            brief(&c.holes),
            brief(&site.collector.gaps(&aor))
        )
    });
    let complete_after = restarted_at.elapsed();
    let (stored, _) = site.finish(c.stored);
    let gaps = site.collector.gaps(&aor);
    let c = recovery::assert_exact(
        "s19",
        &recovery::waveform(&site.agent, 150),
        &stored,
        &gaps,
        step,
        &["source", "expired"],
    );
    // One hole, the oldest part of the outage: from the last sample the
    // collector committed before the kill to the oldest one the spool kept.
    let expired: Vec<&Gap> = gaps.iter().filter(|g| g.cause == "expired").collect();
    let holes: Vec<&complete::Hole> = c.unexplained(&gaps, NEVER_SAMPLED, step);
    assert_eq!(
        (holes.len(), expired.len()),
        (1, 1),
        "{} {}",
        brief(&holes),
        brief(&expired)
    );
    let (hole, gap) = (holes[0], expired[0]);
    assert_eq!(
        (gap.from_ns, gap.to_ns),
        (hole.after_ns, hole.before_ns),
        "the expired gap is exactly the range missing"
    );
    assert!(
        hole.after_ns <= killed && hole.after_ns > killed - 1_000_000_000,
        "the hole starts at the kill ({:.2} s before)",
        secs(killed - hole.after_ns)
    );
    // The spool kept about its last minute: what is gone is the oldest part.
    let kept = restarted - hole.before_ns;
    assert!(
        (50_000_000_000..=70_000_000_000).contains(&kept),
        "the spool kept {:.1} s of the outage",
        secs(kept)
    );
    eprintln!(
        "s19: collector down {:.1} s, spool max_age {MAX_AGE}: {:.1} s expired ({} instants, \
         gap of {} samples), {:.1} s backfilled, complete {:.1} s after the restart; {:.1} s",
        secs(restarted - killed),
        hole.seconds(),
        hole.instants,
        gap.samples,
        secs(kept),
        complete_after.as_secs_f64(),
        site.elapsed()
    );
}
