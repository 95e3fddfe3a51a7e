//! Issue #15, test 8: backfill is negotiated in SDP (docs/protocol.md
//! 11.1), so an end without it still streams as sections 1-9 describe.
//! An agent without a spool offers no backfill to a collector that takes
//! it; an agent with one offers it to a collector that leaves it out of
//! its answer (`media.recovery: false`). Both stream, every sample of the
//! session stored once, and the capture shows who said what.

#![allow(clippy::unwrap_used)]

use sipsensor_e2e::recovery::{self, NEVER_SAMPLED};
use sipsensor_e2e::*;
use std::time::Duration;

const STREAM: Duration = Duration::from_secs(10);
/// The SDP lines of backfill carry this format name (11.1).
const BACKFILL_FORMAT: &str = "sensor-backfill";

/// SIP packets of the capture matching `filter` whose text names the
/// backfill format.
fn naming_backfill(capture: &sipsensor_testkit::Capture, filter: &str) -> usize {
    capture
        .count(&format!(
            "({filter}) && frame contains \"{BACKFILL_FORMAT}\""
        ))
        .unwrap()
}

/// Stream for `STREAM`, then check the stored samples exactly; the capture.
fn stream_and_check(site: &mut Site, what: &str) -> sipsensor_testkit::Capture {
    site.stream();
    std::thread::sleep(STREAM);
    let (stored, capture) = site.finish(50);
    let aor = site.aor();
    let c = recovery::assert_exact(
        what,
        &recovery::waveform(&site.agent, 60),
        &stored,
        &site.collector.gaps(&aor),
        recovery::step_ns(&site.agent.spec),
        NEVER_SAMPLED,
    );
    assert_eq!(
        c.by_source.get("backfilled"),
        None,
        "{what}: nothing backfilled"
    );
    capture
}

#[test]
fn an_agent_without_a_spool_streams_to_a_collector_with_backfill() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let mut site = Site::start_with(
        "sensor20a",
        |_| {},
        |a| {
            recovery::at_10_hz(a);
            a.spool.enabled = false;
        },
    );
    let capture = stream_and_check(&mut site, "s20 agent without spool");
    assert_eq!(
        naming_backfill(&capture, "sip"),
        0,
        "no end mentions backfill"
    );
    eprintln!(
        "s20: an agent without a spool streamed {} s to a collector with backfill; {:.1} s",
        STREAM.as_secs(),
        site.elapsed()
    );
}

#[test]
fn an_agent_with_a_spool_streams_to_a_collector_without_backfill() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let mut site = Site::start_with(
        "sensor20b",
        |c| c.media_yaml = "  recovery: false\n".into(),
        recovery::at_10_hz,
    );
    let capture = stream_and_check(&mut site, "s20 collector without backfill");
    assert!(
        naming_backfill(&capture, "sip.Method == \"INVITE\"") >= 1,
        "the agent offers backfill"
    );
    assert_eq!(
        naming_backfill(
            &capture,
            "sip.Status-Code == 200 && sip.CSeq.method == \"INVITE\""
        ),
        0,
        "the collector's answer leaves it out"
    );
    eprintln!(
        "s20: an agent with a spool streamed {} s to a collector without backfill; {:.1} s",
        STREAM.as_secs(),
        site.elapsed()
    );
}
