use super::*;

const SSRC: u32 = 0x1a2b_3c4d;
const NOW_NS: i64 = 1_767_225_600_000_000_000;
const AHEAD: i64 = 60_000_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn expired(after_ns: u64, before_ns: u64) -> BackfillMessage {
    BackfillMessage::Expired {
        media_ssrc: SSRC,
        after_ns,
        before_ns,
    }
}

const T: u64 = NOW_NS as u64;

#[test]
fn the_mark_goes_out_when_it_moves_paced_and_at_least_every_second() {
    let t0 = Instant::now();
    let mut a = StreamAcks::new(SensorId(1));
    // Nothing stored yet: the first compound carries 0 at once (liveness).
    assert_eq!(a.poll_send(t0), Some(0));
    assert_eq!(a.poll_send(t0 + ms(500)), None);
    a.on_mark(Some(100), None);
    assert_eq!(a.poll_send(t0 + ms(500)), Some(100));
    // Moved again soon after: it waits for the 250 ms pacing.
    a.on_mark(Some(200), None);
    assert_eq!(a.poll_send(t0 + ms(600)), None);
    assert_eq!(a.poll_send(t0 + ms(750)), Some(200));
    // Still: repeated once a second, never more often.
    assert_eq!(a.poll_send(t0 + ms(1700)), None);
    assert_eq!(a.poll_send(t0 + ms(1750)), Some(200));
    assert_eq!(a.poll_send(t0 + ms(2750)), Some(200));
}

#[test]
fn a_hole_storage_does_not_know_of_holds_the_mark_and_it_never_goes_back() {
    let t0 = Instant::now();
    let mut a = StreamAcks::new(SensorId(1));
    // Stored through 500, but a loss after 300 is still in its grace time.
    a.on_mark(Some(500), Some(300));
    assert_eq!(a.poll_send(t0), Some(300));
    // Storage's own mark holds below the hole (an older gap).
    a.on_mark(Some(200), Some(300));
    assert_eq!(a.poll_send(t0 + ms(1000)), Some(300), "never back");
    a.on_mark(Some(900), None);
    assert_eq!(a.poll_send(t0 + ms(1250)), Some(900));
}

#[test]
fn a_declared_range_reaches_storage_once_while_the_agent_repeats_it() {
    let t0 = Instant::now();
    let mut a = StreamAcks::new(SensorId(4));
    let want = Verdict::Record(Declared {
        sensor: SensorId(4),
        kind: RangeKind::Expired,
        after_ns: NOW_NS - 100,
        before_ns: NOW_NS - 10,
    });
    let msg = expired(T - 100, T - 10);
    assert_eq!(a.on_message(msg, Some(SSRC), t0, NOW_NS, AHEAD), want);
    assert_eq!(
        a.on_message(msg, Some(SSRC), t0 + ms(1000), NOW_NS, AHEAD),
        Verdict::Nothing
    );
    // The store may have failed: after a while it goes again.
    assert_eq!(
        a.on_message(msg, Some(SSRC), t0 + FORWARD_AGAIN, NOW_NS, AHEAD),
        want
    );
    // Once the mark has passed it, repetitions in flight are nothing.
    a.on_mark(Some(NOW_NS - 10), None);
    assert_eq!(
        a.on_message(msg, Some(SSRC), t0 + 3 * FORWARD_AGAIN, NOW_NS, AHEAD),
        Verdict::Nothing
    );
    // The other kind over another range is its own.
    let unsampled = BackfillMessage::Unsampled {
        media_ssrc: SSRC,
        after_ns: T - 10,
        before_ns: T,
    };
    assert!(matches!(
        a.on_message(unsampled, None, t0, NOW_NS, AHEAD),
        Verdict::Record(Declared {
            kind: RangeKind::Unsampled,
            ..
        })
    ));
}

#[test]
fn forged_and_out_of_range_declarations_are_refused() {
    let t0 = Instant::now();
    let mut a = StreamAcks::new(SensorId(4));
    let other = BackfillMessage::Unsampled {
        media_ssrc: 0xdead_beef,
        after_ns: T - 100,
        before_ns: T - 10,
    };
    assert_eq!(
        a.on_message(other, Some(SSRC), t0, NOW_NS, AHEAD),
        Verdict::Refuse(Refusal::OtherStream(0xdead_beef))
    );
    assert!(matches!(
        a.on_message(expired(T, T), Some(SSRC), t0, NOW_NS, AHEAD),
        Verdict::Refuse(Refusal::Empty { .. })
    ));
    assert!(matches!(
        a.on_message(expired(T, T - 1), Some(SSRC), t0, NOW_NS, AHEAD),
        Verdict::Refuse(Refusal::Empty { .. })
    ));
    assert_eq!(
        a.on_message(expired(0, u64::MAX), Some(SSRC), t0, NOW_NS, AHEAD),
        Verdict::Refuse(Refusal::OutOfRange(u64::MAX))
    );
    // An hour ahead of the collector's clock: nothing of it can be stored.
    assert_eq!(
        a.on_message(
            expired(T - 100, T + 3_600_000_000_000),
            Some(SSRC),
            t0,
            NOW_NS,
            AHEAD
        ),
        Verdict::Refuse(Refusal::Future { ahead_s: 3600 })
    );
    // Within the clock allowance it is taken.
    assert!(matches!(
        a.on_message(
            expired(T - 100, T + 1_000_000_000),
            Some(SSRC),
            t0,
            NOW_NS,
            AHEAD
        ),
        Verdict::Record(_)
    ));
    // The collector's own message type from an agent means nothing.
    let committed = BackfillMessage::Committed {
        media_ssrc: SSRC,
        through_ns: T,
    };
    assert_eq!(
        a.on_message(committed, Some(SSRC), t0, NOW_NS, AHEAD),
        Verdict::Nothing
    );
}
