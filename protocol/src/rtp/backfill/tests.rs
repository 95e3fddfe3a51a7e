use super::*;
use crate::test_clock::base;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_pacer_never_exceeds_its_rate_and_yields_to_live() {
    let t0 = base();
    let mut p = BackfillPacer::new(10_000, t0);
    let mut sent = 0u64;
    let mut now = t0;
    let end = t0 + Duration::from_secs(10);
    // A spool with endless 500-byte packets; a live packet every 100 ms.
    while now < end {
        let live = (now - t0).as_millis().is_multiple_of(100);
        match p.poll(500, live, now) {
            Pace::Now => {
                sent += 500;
                continue;
            }
            Pace::At(at) => {
                assert!(at > now);
                now = at.min(now + ms(1));
            }
            Pace::AfterLive => now += ms(1),
            Pace::Never => panic!("the rate is not 0"),
        }
    }
    assert!(sent <= 10_000 * 10 + MAX_KEPT_PACKET as u64, "{sent}");
    assert!(sent >= 10_000 * 9, "and it does use its rate: {sent}");
}

#[test]
fn the_pacer_says_when_and_never_sends_at_rate_zero() {
    let t0 = base();
    let mut p = BackfillPacer::new(1_000, t0);
    // The burst is one packet of MAX_KEPT_PACKET bytes.
    assert_eq!(p.poll(MAX_KEPT_PACKET, false, t0), Pace::Now);
    assert_eq!(p.poll(1_000, true, t0), Pace::AfterLive);
    assert_eq!(p.poll(500, false, t0), Pace::At(t0 + ms(500)));
    assert_eq!(p.poll(500, false, t0 + ms(500)), Pace::Now);
    assert_eq!(p.poll(MAX_KEPT_PACKET + 1, false, t0), Pace::Never);
    let mut off = BackfillPacer::new(0, t0);
    assert_eq!(off.poll(10, false, t0 + ms(10_000)), Pace::Never);
}

#[test]
fn the_cursor_walks_from_the_mark_to_the_live_start_as_acks_come() {
    let t0 = base();
    let mut c = BackfillCursor::new(1_000, 2_000, ms(2_000), t0);
    assert_eq!(c.next_after(), Some(1_000));
    c.on_sent(1_400);
    assert_eq!(c.next_after(), Some(1_400));
    c.on_committed(1_200, t0 + ms(100));
    assert_eq!(c.next_after(), Some(1_400), "acks behind what was sent");
    assert_eq!(c.unsampled(), None);
    c.on_sent(1_900);
    c.on_spool_exhausted();
    assert_eq!(c.unsampled(), Some((1_900, 2_000)), "closes the hole");
    c.on_sent(5_000);
    assert_eq!(c.next_after(), None, "sent up to the live start");
    assert!(!c.is_done());
    c.on_committed(2_100, t0 + ms(200));
    assert!(c.is_done());
    assert_eq!(c.unsampled(), None);
    assert_eq!(c.poll(t0 + ms(10_000)), None);
    c.on_committed(100, t0 + ms(300));
    assert_eq!(c.mark(), 2_100, "a mark never goes back within a session");
}

#[test]
fn a_stalled_mark_sends_the_cursor_back_to_it() {
    let t0 = base();
    let mut c = BackfillCursor::new(1_000, 2_000, ms(2_000), t0);
    c.on_sent(1_500);
    c.on_committed(1_100, t0 + ms(100));
    assert_eq!(c.poll(t0 + ms(1_000)), Some(t0 + ms(2_100)));
    assert_eq!(c.next_after(), Some(1_500));
    // The packet after 1 100 was lost: no ack moves for 2 s.
    assert_eq!(c.poll(t0 + ms(2_100)), None);
    assert_eq!(c.next_after(), Some(1_100));
}

#[test]
fn dropped_spool_data_is_reported_until_the_mark_passes_it() {
    let t0 = base();
    let mut c = BackfillCursor::new(1_000, 9_000, ms(2_000), t0);
    c.on_spool_dropped(900, 950);
    assert_eq!(c.expired(), None, "only what the collector lacked counts");
    c.on_spool_dropped(3_000, 3_100);
    assert_eq!(c.expired(), Some((1_000, 3_100)));
    assert_eq!(c.next_after(), Some(3_099), "no point asking for less");
    c.on_spool_dropped(4_000, 4_100);
    assert_eq!(c.expired(), Some((1_000, 4_100)), "one growing range");
    c.on_committed(1_000, t0 + ms(1));
    assert!(c.expired().is_some());
    c.on_committed(4_100, t0 + ms(2));
    assert_eq!(c.expired(), None);
}

#[test]
fn a_mark_stalled_past_the_live_start_reopens_the_backfill_up_to_settled_instants() {
    let t0 = base();
    let mut c = BackfillCursor::new(1_000, 2_000, ms(2_000), t0);
    // Everything before the live start is held; the mark follows live.
    c.on_committed(5_000, t0 + ms(100));
    assert!(c.is_done());
    assert_eq!(c.reopen_due(), Some(t0 + ms(2_100)));
    // Before the ack timeout nothing is reopened, nor with nothing
    // settled beyond the mark.
    assert!(!c.reopen(9_000, t0 + ms(2_000)));
    assert!(!c.reopen(5_001, t0 + ms(3_000)));
    assert!(c.is_done());
    // A live packet after 5 000 was given up on: the mark stays.
    assert!(c.reopen(9_000, t0 + ms(3_000)));
    assert!(!c.is_done());
    assert_eq!((c.next_after(), c.end()), (Some(5_000), 9_000));
    // Acks come again and pass the reopened end: done once more.
    c.on_committed(9_500, t0 + ms(3_500));
    assert!(c.is_done());
    assert_eq!(c.reopen_due(), Some(t0 + ms(5_500)));
}

#[test]
fn a_downtime_is_reported_from_the_mark_once_the_earlier_run_is_held() {
    let t0 = base();
    let mut c = BackfillCursor::new(1_000, 9_000, ms(2_000), t0);
    c.on_run_end(3_000);
    // At or past the live start: the range before L covers it.
    c.on_run_end(8_999);
    c.on_spooled(2_000);
    assert_eq!(c.downtimes().count(), 0, "the next run's start is unknown");
    c.on_spooled(5_000);
    c.on_spooled(6_000);
    assert_eq!(c.downtimes().count(), 0, "the mark is inside the run");
    assert_eq!(c.known_empty_through(), None, "not sent through its end");
    c.on_sent(3_000);
    assert_eq!(c.known_empty_through(), Some(4_999));
    c.on_committed(3_000, t0);
    assert_eq!(c.downtimes().collect::<Vec<_>>(), [(3_000, 5_000)]);
    // The collector held live samples past the run's last durable one.
    c.on_committed(3_200, t0);
    assert_eq!(c.downtimes().collect::<Vec<_>>(), [(3_200, 5_000)]);
    c.on_committed(5_000, t0);
    assert_eq!(c.downtimes().count(), 0, "passed");
}

#[test]
fn downtimes_are_bounded_the_oldest_going_first() {
    let t0 = base();
    let n = MAX_DOWNTIMES as u64 + 5;
    let mut c = BackfillCursor::new(0, u64::MAX, ms(2_000), t0);
    for end in 1..=n {
        // Twice: a restart that spooled nothing ends where it began.
        c.on_run_end(end * 100);
        c.on_run_end(end * 100);
    }
    for k in 1..=n {
        c.on_spooled(k * 100 + 50);
    }
    c.on_sent(n * 100);
    assert_eq!(c.known_empty_through(), Some(n * 100 + 49));
    // The five oldest went.
    c.on_committed(500, t0);
    assert_eq!(c.downtimes().count(), 0);
    c.on_committed(600, t0);
    assert_eq!(c.downtimes().collect::<Vec<_>>(), [(600, 650)]);
}
