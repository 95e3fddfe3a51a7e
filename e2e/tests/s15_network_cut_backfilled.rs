//! Issue #15, test 3: the sensor's network is cut (its link down in the
//! network namespace the test makes, 198.51.100.0/24, RFC 5737) for five
//! minutes and restored. The agent samples into its spool meanwhile,
//! notices the path back, sets the session up again and backfills the
//! cut: the stored history is exactly what it sampled (missing 0,
//! duplicated 0).
//!
//! The cut lasts `SIPSENSOR_CUT_SECONDS` (default 300, the issue's
//! figure); a shorter one is for trying the test by hand.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::AgentState;
use sipsensor_e2e::complete::brief;
use sipsensor_e2e::netns::{self, NetNs};
use sipsensor_e2e::recovery::{self, NEVER_SAMPLED, secs};
use sipsensor_e2e::site::{COLLECTOR_PASSWORD, SENSOR_PASSWORD};
use sipsensor_e2e::*;
use sipsensor_testkit::{Kamailio, KamailioOptions, Tshark, TsharkOptions};
use std::time::{Duration, Instant};

fn cut_length() -> Duration {
    let seconds = std::env::var("SIPSENSOR_CUT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(seconds)
}

#[test]
fn a_five_minute_network_cut_is_backfilled() {
    if !require(&["kamailio", "tshark"]) || !netns::available() {
        return;
    }
    let started = Instant::now();
    let ns = NetNs::create([198, 51, 100]).unwrap();
    let kam = Kamailio::start(
        KamailioOptions {
            ip: ns.host_ip,
            ..KamailioOptions::default()
        }
        .with_subscriber("sensor15", SENSOR_PASSWORD)
        .with_subscriber("collector", COLLECTOR_PASSWORD),
    )
    .unwrap();
    let mut cspec = collector_behind(&kam, "collector", COLLECTOR_PASSWORD);
    cspec.sip_ip = ns.host_ip;
    cspec.rtp_ip = ns.host_ip;
    cspec.advertise = Some(ns.host_ip);
    let mut collector = Collector::new(cspec).unwrap();
    let mut aspec = agent_behind(&kam, "sensor15", SENSOR_PASSWORD, "collector");
    recovery::at_10_hz(&mut aspec);
    aspec.ip = ns.ns_ip;
    aspec.netns = Some(ns.name.clone());
    let mut agent = Agent::new(aspec).unwrap();
    // On the host's end of the pair: everything the sensor sends.
    let tshark = Tshark::start(TsharkOptions {
        interface: ns.host_if.clone(),
        sip_ports: vec![kam.addr().port(), collector.sip_port, agent.sip_port],
        rtp_ports: vec![collector.rtp_port],
        rtcp_ports: vec![collector.rtp_port + 1],
    })
    .unwrap();
    collector.launch().unwrap();
    wait_log(
        "registration",
        Duration::from_secs(20),
        || collector.log(),
        "registered as",
    );
    agent.launch().unwrap();
    agent.wait_status("streaming", Duration::from_secs(30), |s| {
        s.state == AgentState::Streaming
    });
    std::thread::sleep(Duration::from_secs(3));

    let cut = cut_length();
    let cut_at = unix_ns();
    ns.link_down().unwrap();
    std::thread::sleep(cut);
    ns.link_up().unwrap();
    let restored_at = Instant::now();
    let restored = unix_ns();

    let aor = agent.spec.aor();
    let url = collector.storage_url().to_string();
    let live = wait_for(Duration::from_secs(60), || {
        recovery::first_live_after(&collector::samples(&url, &aor), restored)
    })
    .unwrap_or_else(|| panic!("no live data after the cut\n{}", agent.log_tail()));
    let step = recovery::step_ns(&agent.spec);
    let c = recovery::wait_complete(
        &url,
        &aor,
        step,
        live + 2_000_000_000,
        NEVER_SAMPLED,
        Duration::from_secs(120),
    )
    .unwrap_or_else(|c| panic!("not complete: {}\nholes {}", c.summary(), brief(&c.holes)));
    let complete_after = restored_at.elapsed();
    agent.stop();
    let stored = sipsensor_e2e::settled_samples(&collector, &aor, c.stored);
    collector.stop();
    check_capture(tshark);
    let c = recovery::assert_exact(
        "s15",
        &recovery::waveform(&agent, cut.as_secs() + 120),
        &stored,
        &collector::gaps(&url, &aor),
        step,
        NEVER_SAMPLED,
    );
    assert!(c.first_ns < cut_at, "stored from before the cut");
    eprintln!(
        "s15: link down {:.0} s; live again {:.1} s after it came up; backfill done {:.1} s \
         after; {:.1} s",
        cut.as_secs_f64(),
        secs(live - restored),
        complete_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
