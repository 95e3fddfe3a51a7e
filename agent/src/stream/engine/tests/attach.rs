//! The core from the agent's start: sampled and spooled without a
//! session, live from the next instant once attached, spooling on after
//! the session ends, all on one grid of instants.

use super::*;
use crate::spool;
use crate::stream::test_spool;

/// Every sample instant the spool holds, in order.
fn spooled_instants(rx: &mut spool::FeedReceiver, wall: SystemTime) -> Vec<i64> {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut store = test_spool::open_in(dir.path(), wall);
    rx.drain(&mut store, &mut Vec::new(), wall);
    test_spool::sample_instants(&store)
}

#[test]
fn detached_it_spools_attached_it_sends_from_the_next_instant_on_one_grid() {
    // 100 Hz, 2 instants a packet, channel a.
    let mut r = rig(desc(1, 1, 2, &["a"], &[]));
    let (feed, mut rx) = spool::feed(spool::FEED_BYTES);
    r.core.spool = Some(feed);
    r.core.attached = false;
    // Instants 0-4 with no session: sampled and spooled, nothing sent.
    r.run_until(r.at(ms(45)));
    assert!(r.sink.rtp.is_empty() && r.sink.rtcp.is_empty());
    assert!(r.core.poll_timeout() <= r.at(ms(50)), "wakes for instant 5");
    // A session comes up between instants 4 and 5.
    assert!(r.core.attach(Some(1), None, r.at(ms(45))).is_none());
    r.run_until(r.at(ms(95)));
    let wall0 = spool::unix_ns(r.wall0);
    // The session ends: the partial packet, BYE; spooling goes on.
    let rtcp_before = r.sink.rtcp.len();
    assert!(r.core.detach(r.at(ms(95)), r.wall0, &mut r.sink).is_none());
    assert_eq!(r.sink.rtcp.len(), rtcp_before + 1, "SR + SDES + BYE");
    let live: Vec<_> = r
        .packets()
        .iter()
        .filter(|p| p.payload_type == 96)
        .map(|p| (p.marker, p.sample_instant(1).unwrap().unwrap().first_ns))
        .collect();
    let l = (wall0 + 50_000_000) as u64;
    assert_eq!(
        live,
        [(true, l), (false, l + 20_000_000), (false, l + 40_000_000)],
        "instants 5-9 live, the marker on the first"
    );
    assert_eq!(r.stats.snapshot().first_live_ns, Some(l));
    let s = r.stats.snapshot();
    assert_eq!(s.samples + s.samples_missing, 5, "only live ones counted");
    let sent = r.sink.rtp.len();
    r.run_until(r.at(ms(135)));
    assert_eq!(r.sink.rtp.len(), sent);
    // Instants 0-13, each spooled exactly once: no hole at either edge.
    let instants = spooled_instants(&mut rx, r.wall0);
    let grid: Vec<i64> = (0..14).map(|k| wall0 + k * 10_000_000).collect();
    assert_eq!(instants, grid);
}
