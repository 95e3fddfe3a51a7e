//! The core hands every sample run and edge to the spool feed, stamped
//! with the wall clock, without ever waiting for it.

use super::*;
use crate::spool::{self, GpioEdge, Record, Spool, SpoolOptions};

fn unix_ns(t: SystemTime) -> i64 {
    spool::unix_ns(t)
}

/// Drain the feed into a spool in a fresh directory and read it back.
fn spooled(rx: &mut spool::FeedReceiver, now: SystemTime) -> Vec<Record> {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let options = SpoolOptions {
        dir: dir.path().to_owned(),
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(86_400),
    };
    let mut s = Spool::open(&options, now).expect("open");
    let mut buf = Vec::new();
    rx.drain(&mut s, &mut buf, now);
    s.read_from(i64::MIN).collect()
}

#[test]
fn runs_and_edges_are_spooled_with_their_instants_and_exact_values() {
    // 100 Hz, 2 instants a packet, channels c (never published) and a.
    let mut r = rig(desc(1, 1, 2, &["c", "a"], &["door"]));
    let (feed, mut rx) = spool::feed(spool::FEED_BYTES);
    r.core.spool = Some(feed);
    for k in 0..6u64 {
        let now = r.at(ms(10 * k));
        r.publish(now, 20.0 + k as f64 / 100.0, 0.0);
        if k == 3 {
            let at = r.at(Duration::from_micros(25_500));
            r.inputs[0].push(Event {
                input: 0,
                level: true,
                at,
            });
        }
        r.run(now);
    }
    let wall0 = unix_ns(r.wall0);
    let records = spooled(&mut rx, r.wall0);
    assert_eq!(records.len(), 4, "{records:?}");
    let runs: Vec<_> = records
        .iter()
        .filter_map(|rec| match rec {
            Record::Samples(s) => Some(s),
            Record::Edge(_) => None,
        })
        .collect();
    let packets: Vec<_> = r
        .packets()
        .into_iter()
        .filter(|p| p.payload_type == 96)
        .collect();
    assert_eq!(runs.len(), packets.len());
    for (n, (run, p)) in runs.iter().zip(&packets).enumerate() {
        // Tick 2n of a 100 Hz clock whose tick 0 is wall0.
        assert_eq!(run.first_ns, wall0 + 20_000_000 * n as i64);
        assert_eq!(run.spacing_ns, 10_000_000);
        assert_eq!(run.channels, 2);
        let s = samples_of(p);
        let sent: Vec<i32> = (0..2)
            .flat_map(|i| (0..2).map(move |c| (i, c)))
            .map(|(i, c)| s.raw(i, c).expect("value"))
            .collect();
        assert_eq!(
            run.values, sent,
            "the values the packet carried, bit for bit"
        );
    }
    assert_eq!(
        records[2],
        // 25.5 ms as 32.32 ticks is truncated a hair short of it: the
        // instant a receiver derives from the packet (docs/protocol.md 11.2).
        Record::Edge(GpioEdge {
            at_ns: wall0 + 25_499_999,
            input: 0,
            level: true,
        }),
        "the edge sorts by its instant"
    );
    assert!(
        runs.iter()
            .all(|run| run.stream == runs[0].stream && run.stream != 0)
    );
    assert_eq!(r.stats.snapshot().spool_dropped, 0);
}

#[test]
fn a_full_spool_ring_is_counted_and_live_streaming_goes_on() {
    let mut r = rig(desc(1, 1, 1, &["a", "b"], &[]));
    // Room for about two records.
    let (feed, _rx) = spool::feed(96);
    r.core.spool = Some(feed);
    for k in 0..20u64 {
        let now = r.at(ms(10 * k));
        r.publish(now, 1.0, 2.0);
        r.run(now);
    }
    assert_eq!(r.packets().len(), 20, "every packet sent live");
    let dropped = r.stats.snapshot().spool_dropped;
    assert!((15..20).contains(&dropped), "{dropped}");
}

#[test]
fn a_wall_clock_step_moves_the_stamps_and_slews_and_late_readings_do_not() {
    let mut r = rig(desc(1, 1, 1, &["a"], &[]));
    let (feed, mut rx) = spool::feed(spool::FEED_BYTES);
    r.core.spool = Some(feed);
    let wall0 = unix_ns(r.wall0);
    r.run(r.at(ms(0)));
    // 0.5 ms of slew: below the step threshold, the stamps keep their grid.
    r.wall0 += Duration::from_micros(500);
    r.run(r.at(ms(10)));
    // The thread preempted for 3 ms between reading the two clocks: one
    // late wall reading, then the clocks agree again. Not a step.
    let late = r.wall0 + ms(20) + ms(3);
    r.core
        .handle(r.at(ms(20)), late, &mut r.board, &mut r.events, &mut r.sink);
    r.run(r.at(ms(30)));
    // A 2 s step (NTP setting the clock): seen at 40 ms, confirmed at 50,
    // stamped from the new offset from then on.
    r.wall0 += Duration::from_secs(2);
    r.run(r.at(ms(40)));
    r.run(r.at(ms(50)));
    let firsts: Vec<i64> = spooled(&mut rx, r.wall0)
        .iter()
        .map(|rec| rec.span().0)
        .collect();
    // The first instant handed to the spool: held before any of it is
    // on disk (docs/protocol.md 11.1 `oldest`).
    assert_eq!(
        r.stats
            .first_spooled_ns
            .load(std::sync::atomic::Ordering::Relaxed),
        wall0 as u64
    );
    let step = 2_000_500_000;
    assert_eq!(
        firsts,
        [
            wall0,
            wall0 + 10_000_000,
            wall0 + 20_000_000,
            wall0 + 30_000_000,
            wall0 + 40_000_000,
            wall0 + step + 50_000_000
        ]
    );
}
