//! Issue #15, test 5: scenario 7's seeded relay in the media path, 10 %
//! loss and 0-50 ms of uniform delay (which reorders packets 20 ms
//! apart), both ways of the RTP port (RTX goes there too) and none on
//! RTCP. The collector NACKs what is missing and the agent resends it
//! (docs/protocol.md 11.5); what a repair could not bring within
//! `rtx-time` comes by backfill (11.7 step 7). Every sample is stored,
//! once: missing 0, duplicated 0, in one session.

#![allow(clippy::unwrap_used)]

use sipsensor_e2e::complete::brief;
use sipsensor_e2e::recovery::{self, NEVER_SAMPLED};
use sipsensor_e2e::*;
use std::time::{Duration, Instant};

const LOSS: f64 = 0.10;
const JITTER: Duration = Duration::from_millis(50);
const STREAM: Duration = Duration::from_secs(20);
/// 50 Hz, one packet every 20 ms: the jitter reorders packets.
const RATE: u32 = 50;

#[test]
fn every_sample_is_stored_through_loss_and_reordering() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let path = paths::ImpairedMedia::start(17, LOSS, JITTER);
    let media = &path.media;
    let mut site = Site::start_with(
        "sensor17",
        |c| path.place(c),
        |a| {
            a.rate = RATE;
            a.spp = 1;
            a.interval_ms = 20;
        },
    );
    let call_id = site.stream().sessions[0].call_id.clone();
    std::thread::sleep(STREAM);
    // The impairment stays on: everything up to now must be repaired
    // while later packets are still being lost.
    let drops = media.log().visible_drops();
    let stopped_at = Instant::now();
    let until = unix_ns();
    let aor = site.aor();
    let url = site.collector.storage_url().to_string();
    let step = recovery::step_ns(&site.agent.spec);
    recovery::wait_complete(
        &url,
        &aor,
        step,
        until,
        NEVER_SAMPLED,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|c| {
        // Where the readings went: the agent's count of instants it had
        // no reading for, and the collector's writer and refusals.
        let missing = site.agent.status().map(|s| s.samples_missing);
        panic!(
            "not repaired: {}\nholes {}\ngaps {}\nagent: samples missing at the source \
             {missing:?}\ncollector:\n{}",
            c.summary(),
            brief(&c.holes),
            brief(&site.collector.gaps(&aor)),
            site.collector.storage_metrics()
        )
    });
    let repaired_after = stopped_at.elapsed();
    let status = site.agent.status().unwrap();
    assert_eq!(
        status.sessions[0].call_id, call_id,
        "one session throughout"
    );
    let (stored, _) = site.finish(1);
    // Up to `until`: the agent's BYE may leave the last packets unrepaired.
    let stored = sipsensor_e2e::complete::between(&stored, 0, until + 1);
    let c = recovery::assert_exact(
        "s17",
        &recovery::waveform(&site.agent, 120),
        &stored,
        &site.collector.gaps(&aor),
        step,
        NEVER_SAMPLED,
    );
    let resent = c.by_source.get("resent").copied().unwrap_or(0)
        + c.by_source.get("backfilled").copied().unwrap_or(0);
    assert!(
        drops > 10 && resent > 0,
        "the relay dropped {drops} packets and {resent} samples came again"
    );
    eprintln!(
        "s17: {drops} of {} packets dropped by the relay, {resent} samples resent or \
         backfilled, all stored {:.1} s later; {:.1} s",
        media.log().packets.len(),
        repaired_after.as_secs_f64(),
        site.elapsed()
    );
}
