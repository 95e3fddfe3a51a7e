//! Scenario 7: loss and delay. The kernels here have no `netem`, so the
//! harness's seeded UDP impairment relay sits in the media path: 10 %
//! loss and 0-50 ms of uniform delay (which reorders packets 20 ms apart).
//! The collector binds its RTP on 127.0.0.2 and advertises 127.0.0.1,
//! where the relay listens on the same ports.
//!
//! The collector's loss count (its receiver report and its stored loss
//! gaps) equals the relay's drop count exactly; its jitter figure matches
//! the RFC 3550 A.8 estimate over the delays the relay applied within
//! 30 % (the estimator averages over about 16 packets and the agent's own
//! send timing adds a little); the session survives. The collector agrees
//! none of docs/protocol.md 11 (`media.recovery: false`), so nothing is
//! repaired: s17 is the same path with repair and backfill.

#![allow(clippy::unwrap_used)]

use sipsensor_e2e::*;
use std::time::Duration;

const LOSS: f64 = 0.10;
const JITTER: Duration = Duration::from_millis(50);
/// The RTP clock is the sample rate, and the A.8 jitter is counted in
/// its ticks: 1 kHz gives the figure 1 ms resolution (at 50 Hz it could
/// only say 0, 20 or 40 ms). 20 samples a packet: a packet every 20 ms.
const RATE: u32 = 1000;
const SPP: u32 = 20;
/// Relative tolerance of the jitter figure.
const JITTER_TOLERANCE: f64 = 0.30;

/// RFC 3550 A.8 over packets sent every SPP/RATE s with these delays, in
/// the order they reach the receiver: the jitter in seconds, and how many
/// packets arrive after one sent later (reordered).
fn expected_jitter(packets: &[(u16, bool)], delays: &[Duration]) -> (f64, usize) {
    let period = f64::from(SPP) / f64::from(RATE);
    let first = packets.first().map(|p| p.0).unwrap_or(0);
    let mut arrivals: Vec<(f64, f64)> = packets
        .iter()
        .filter(|p| p.1)
        .zip(delays)
        .map(|(p, d)| {
            let sent = f64::from(p.0.wrapping_sub(first)) * period;
            (sent + d.as_secs_f64(), sent)
        })
        .collect();
    arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut jitter = 0.0;
    for w in arrivals.windows(2) {
        let d = (w[1].0 - w[1].1) - (w[0].0 - w[0].1);
        jitter += (d.abs() - jitter) / 16.0;
    }
    let reordered = arrivals.windows(2).filter(|w| w[1].1 < w[0].1).count();
    (jitter, reordered)
}

fn stream_of<'a>(streams: &'a [serde_json::Value], aor: &str) -> Option<&'a serde_json::Value> {
    streams.iter().find(|s| s["aor"] == aor)
}

#[test]
fn loss_count_equals_the_relays_drops_and_jitter_matches() {
    if !require(&["kamailio", "tshark"]) {
        return;
    }
    let path = paths::ImpairedMedia::start(7, LOSS, JITTER);
    let media = &path.media;
    let mut site = Site::start_with(
        "sensor7",
        |c| {
            path.place(c);
            c.media_yaml = "  recovery: false\n".into();
        },
        |a| {
            a.rate = RATE;
            a.spp = SPP;
            // The stream samples and holds a reading every 5 ms.
            a.interval_ms = 5;
        },
    );
    let call_id = site.stream().sessions[0].call_id.clone();
    std::thread::sleep(Duration::from_secs(15));

    // Freeze the relay's log: nothing more is forwarded; what is queued
    // still arrives. Then wait for a receiver report computed after the
    // last packet (every 5 s or so) and for loss gaps to be stored
    // (they wait 2 s for late packets).
    media.pause();
    let log = media.log();
    let drops = log.visible_drops();
    let aor = site.aor();
    let collector = &site.collector;
    let mut last = None;
    let reported = wait_for(Duration::from_secs(20), || {
        let streams = collector.streams();
        let s = stream_of(&streams, &aor)?.clone();
        let lost = s["lost"].as_i64()?;
        last = Some(s.clone());
        (lost == drops as i64).then_some(s)
    });
    let reported = reported.unwrap_or_else(|| {
        panic!("collector's loss count never reached the relay's {drops} drops: {last:?}")
    });
    let lost_gaps = wait_for(Duration::from_secs(10), || {
        let n: i64 = collector
            .gaps(&aor)
            .iter()
            .filter(|g| g.cause == "loss")
            .map(|g| g.samples)
            .sum();
        (n == drops as i64 * i64::from(SPP)).then_some(n)
    });
    assert!(
        lost_gaps.is_some(),
        "stored loss gaps {:?} vs {drops} drops of {SPP} samples",
        collector.gaps(&aor)
    );
    let jitter = reported["jitter_seconds"].as_f64().unwrap();
    let (expected, reordered) = expected_jitter(&log.packets, &log.delays);
    assert!(reordered > 10, "the jitter reorders packets: {reordered}");
    assert!(
        (jitter - expected).abs() <= expected * JITTER_TOLERANCE,
        "jitter {:.2} ms, the relay's delays give {:.2} ms",
        jitter * 1e3,
        expected * 1e3
    );

    // The session survives: the same dialog streams on through the relay.
    media.resume();
    let packets = reported["packets"].as_u64().unwrap();
    let more = wait_for(Duration::from_secs(10), || {
        let streams = collector.streams();
        let s = stream_of(&streams, &aor)?;
        (s["packets"].as_u64()? > packets + 25).then_some(())
    });
    assert!(more.is_some(), "the stream carries on after the impairment");
    let status = site.agent.status().unwrap();
    assert_eq!(
        status.sessions[0].call_id, call_id,
        "one session throughout"
    );
    site.finish(1);
    eprintln!(
        "s07: {} RTP packets, {drops} dropped (all counted), jitter {:.2} ms vs {:.2} ms expected \
         (uniform 0-{} ms), {reordered} reordered, {:.1} s",
        log.packets.len(),
        jitter * 1e3,
        expected * 1e3,
        JITTER.as_millis(),
        site.elapsed()
    );
}
