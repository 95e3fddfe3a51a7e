//! The peer's RTCP as the session's heartbeat (docs/protocol.md 6.1), on
//! a virtual clock: a dead collector is noticed at the timeout and not
//! before, a slow one is not, and the next session is set up without a
//! call storm.

use sipsensor_protocol::{
    AnswerPolicy, BackfillSupport, RecoverySupport, RtcpConfig, answer_with_recovery,
    offer_with_recovery,
};

use super::super::liveness::{
    CHECK_INTERVAL, FIRST_REPORT_GRACE, LEGACY_PEER_TIMEOUT, PEER_TIMEOUT, PeerWatch,
    RECALL_ANSWER, RECALL_MAX, RECALLS, Verdict, peer_timeout,
};
use super::*;

/// What the shell does for the controller between `from` and `until`: the
/// peer's count grows at each check while `reporting(at)` says so. Returns
/// every other action with its time.
fn run_for(
    c: &mut Controller,
    count: &mut u64,
    from: Instant,
    until: Instant,
    reporting: impl Fn(Instant) -> bool,
) -> Vec<(Instant, Action)> {
    let mut seen = Vec::new();
    let mut now = from;
    // Bounded: one step per check at least.
    for _ in 0..100_000 {
        let Some(at) = c.poll_timeout().filter(|t| *t <= until) else {
            break;
        };
        now = now.max(at);
        c.handle_timeout(now);
        // What `peer_checked` decides is taken in the same step.
        while let Some(a) = c.poll_action() {
            match a {
                Action::CheckPeer => {
                    if reporting(now) {
                        *count += 1;
                    }
                    c.peer_checked(*count, now);
                }
                // The session's OPTIONS pings are answered; not of interest.
                Action::Ping(_) => {}
                other => seen.push((now, other)),
            }
        }
    }
    seen
}

/// Streaming, the peer reporting for 5 s, then silent until it is
/// declared dead: the controller, the peer's count and what it did.
fn alive_then_silent() -> (Controller, StatusHub, u64, Vec<(Instant, Action)>) {
    let (mut c, hub, t0) = streaming();
    let mut count = 0;
    let dead = t0 + Duration::from_secs(5);
    run_for(&mut c, &mut count, t0, dead, |_| true);
    let until = dead + LEGACY_PEER_TIMEOUT + CHECK_INTERVAL;
    let seen = run_for(&mut c, &mut count, dead, until, |_| false);
    (c, hub, count, seen)
}

fn ended_and_called_again(seen: &[(Instant, Action)]) -> Option<Instant> {
    match seen {
        [
            (at, Action::StopStream),
            (_, Action::Hangup(s)),
            (_, Action::Call { .. }),
        ] if *s == session(1) => Some(*at),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_dead_collector_is_noticed_at_the_timeout_and_not_before() {
    let (mut c, hub, t0) = streaming();
    let mut count = 0;
    // Reports for 10 s, then the collector is killed.
    let last = t0 + Duration::from_secs(10);
    let seen = run_for(&mut c, &mut count, t0, last, |_| true);
    assert!(seen.is_empty(), "{seen:?}");
    // The last report was counted at the last check before `last`.
    let heard_at = last - (last - t0).min(CHECK_INTERVAL);
    let quiet = run_for(
        &mut c,
        &mut count,
        last,
        heard_at + LEGACY_PEER_TIMEOUT - Duration::from_millis(1),
        |_| false,
    );
    assert!(quiet.is_empty(), "declared dead early: {quiet:?}");
    let seen = run_for(
        &mut c,
        &mut count,
        heard_at + LEGACY_PEER_TIMEOUT - Duration::from_millis(1),
        heard_at + LEGACY_PEER_TIMEOUT + CHECK_INTERVAL,
        |_| false,
    );
    let noticed = ended_and_called_again(&seen).unwrap();
    assert!(noticed - heard_at <= LEGACY_PEER_TIMEOUT + CHECK_INTERVAL);
    show_status(&mut c, &hub);
    assert_eq!(hub.state(), AgentState::Registered);
}

#[test]
fn a_slow_but_alive_collector_is_not_declared_dead() {
    let (mut c, _, t0) = streaming();
    let mut count = 0;
    // RFC 3550 6.3's slowest: a report every 6.2 s, and one of them lost.
    let seen = run_for(
        &mut c,
        &mut count,
        t0,
        t0 + Duration::from_secs(600),
        |at| {
            let period = ((at - t0).as_millis() / 6200) as u64;
            (at - t0).as_millis() % 6200 < CHECK_INTERVAL.as_millis() && period % 7 != 3
        },
    );
    assert!(seen.is_empty(), "{seen:?}");
}

#[test]
fn a_count_that_stands_still_is_silence_whatever_it_stands_at() {
    // Reports counted before the watch began (a re-INVITE renewed it) do
    // not keep the session alive: only a count that moves does.
    let (mut c, _, t0) = streaming();
    let mut count = 40;
    let seen = run_for(
        &mut c,
        &mut count,
        t0,
        t0 + LEGACY_PEER_TIMEOUT + 2 * CHECK_INTERVAL,
        |_| false,
    );
    let noticed = ended_and_called_again(&seen).unwrap();
    assert!(noticed - t0 >= LEGACY_PEER_TIMEOUT, "{:?}", noticed - t0);
}

#[test]
fn a_collector_that_answers_and_stays_silent_is_called_again_with_back_off() {
    let (mut c, _, t0) = streaming();
    let mut count = 0;
    let end = t0 + Duration::from_secs(1800);
    let mut calls = Vec::new();
    let mut now = t0;
    let mut n = 1;
    // Bounded: a call at most per timeout in half an hour.
    for _ in 0..200 {
        let seen = run_for(&mut c, &mut count, now, end, |_| false);
        let Some((at, offer)) = seen.iter().find_map(|(at, a)| match a {
            Action::Call { offer, .. } => Some((*at, offer.clone())),
            _ => None,
        }) else {
            break;
        };
        now = at;
        calls.push(now);
        // Answered again, by a collector that never reports.
        n += 1;
        c.call_placed(Ok(session(n)), now);
        let answer = collector_answer(&offer, ReceivePolicy::default());
        c.handle_event(
            UaEvent::Answered {
                session: session(n),
                answer,
            },
            now,
        );
        assert!(matches!(&actions(&mut c)[..], [Action::StartStream { .. }]));
    }
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
    // The first session had never proved alive either: every new call
    // waits the timeout and a growing back-off on top.
    assert!(gaps.len() >= 3, "{gaps:?}");
    for g in &gaps {
        assert!(
            *g >= LEGACY_PEER_TIMEOUT + Duration::from_secs(1),
            "{gaps:?}"
        );
    }
    assert!(gaps.last() > gaps.first(), "back-off grows: {gaps:?}");
    assert!(calls.len() <= 20, "no call storm: {} calls", calls.len());
}

#[test]
fn after_a_live_session_calls_go_at_once_then_every_few_seconds_for_a_while_then_back_off() {
    let (mut c, hub, _, seen) = alive_then_silent();
    let mut called = ended_and_called_again(&seen).unwrap();
    let mut gaps = Vec::new();
    // The collector stays away: calls fail (an error) or get no answer
    // at all (given up after RECALL_ANSWER, the user agent cancels).
    for n in 0..(RECALLS + 3) as u64 {
        let id = session(10 + n);
        // (Past the recalls no call is given up: the usual back-off.)
        if n % 2 == 0 || n >= u64::from(RECALLS) {
            call_times_out(&mut c, id, called);
        } else {
            c.call_placed(Ok(id), called);
            let give_up = c.poll_timeout().unwrap();
            assert_eq!(give_up - called, RECALL_ANSWER);
            c.handle_timeout(give_up - Duration::from_millis(1));
            assert!(actions(&mut c).is_empty(), "not before");
            c.handle_timeout(give_up);
            assert_eq!(actions(&mut c), [Action::Hangup(id)]);
        }
        let at = c.poll_timeout().unwrap();
        c.handle_timeout(at);
        assert!(matches!(&actions(&mut c)[..], [Action::Call { .. }]));
        gaps.push(at - called);
        called = at;
    }
    show_status(&mut c, &hub);
    assert_eq!(hub.state(), AgentState::Registered);
    let (recalls, after) = gaps.split_at(RECALLS as usize);
    for (n, g) in recalls.iter().enumerate() {
        let wait = if n % 2 == 0 { *g } else { *g - RECALL_ANSWER };
        assert!(
            wait >= RECALL_MAX / 2 && wait <= RECALL_MAX,
            "recall {n}: {g:?}"
        );
    }
    // Then the usual back-off, at its ceiling (5 min, jittered): no
    // endless storm.
    assert!(
        after.iter().all(|g| *g >= Duration::from_secs(150)),
        "{after:?}"
    );
}

#[test]
fn a_live_session_again_ends_the_recalls() {
    let (mut c, _, mut count, seen) = alive_then_silent();
    let called = ended_and_called_again(&seen).unwrap();
    let Some((_, Action::Call { offer, .. })) = seen.last() else {
        panic!("{seen:?}")
    };
    c.call_placed(Ok(session(2)), called);
    let answer = collector_answer(offer, ReceivePolicy::default());
    c.handle_event(
        UaEvent::Answered {
            session: session(2),
            answer,
        },
        called,
    );
    actions(&mut c);
    // Answered in time: no give-up pending.
    assert!(c.poll_timeout().unwrap() - called <= CHECK_INTERVAL);
    let up = called + Duration::from_secs(5);
    run_for(&mut c, &mut count, called, up, |_| true);
    // That one dies too: called again at once (it was alive) ...
    let seen = run_for(
        &mut c,
        &mut count,
        up,
        up + LEGACY_PEER_TIMEOUT + CHECK_INTERVAL,
        |_| false,
    );
    assert!(
        matches!(seen.last(), Some((_, Action::Call { .. }))),
        "{seen:?}"
    );
    // ... and a failed call now waits the recall delay, counted anew.
    let again = seen.last().map(|(at, _)| *at).unwrap();
    call_times_out(&mut c, session(3), again);
    let wait = c.poll_timeout().unwrap() - again;
    assert!(wait >= RECALL_MAX / 2 && wait <= RECALL_MAX, "{wait:?}");
}

#[test]
fn called_by_the_collector_a_dead_session_leaves_the_sensor_free_for_its_next_call() {
    let mut s = settings(true);
    s.flow_keepalive = Some(flow::KEEPALIVE_INTERVAL);
    let (mut c, t0) = super::trust::waiting(s);
    let collector_offer = |origin: u64| {
        let mut o = LocalSdp::with_session_id("collector", "203.0.113.5".parse().unwrap(), origin);
        let local = LocalMedia::new("203.0.113.5:50000".parse().unwrap());
        make_offer(&capabilities(), StreamRole::Receiver, &local, &mut o)
            .unwrap()
            .to_bytes()
    };
    c.incoming(session(7), &collector_offer(7), Opener::Flow, t0);
    assert!(matches!(
        &actions(&mut c)[..],
        [Action::Accept { .. }, Action::StartStream { .. }]
    ));
    let mut count = 0;
    let seen = run_for(
        &mut c,
        &mut count,
        t0,
        t0 + LEGACY_PEER_TIMEOUT + FIRST_REPORT_GRACE + Duration::from_secs(1),
        |_| false,
    );
    let kinds: Vec<_> = seen.iter().map(|(_, a)| a).collect();
    // No call of its own; the flow is checked at once.
    assert!(
        matches!(
            &kinds[..],
            [Action::StopStream, Action::Hangup(s), Action::PingFlow] if *s == session(7)
        ),
        "{kinds:?}"
    );
    // The restarted collector's call is taken, not refused as busy.
    let now = t0 + LEGACY_PEER_TIMEOUT + FIRST_REPORT_GRACE + Duration::from_secs(2);
    c.incoming(session(8), &collector_offer(8), Opener::Flow, now);
    assert!(matches!(
        &actions(&mut c)[..],
        [Action::Accept { .. }, Action::StartStream { .. }]
    ));
}

#[test]
fn the_short_timeout_holds_only_where_backfill_was_agreed() {
    let configured = Duration::from_secs(4);
    let local = LocalMedia::new("198.51.100.10:40000".parse().unwrap());
    let agent = RecoverySupport {
        instant: true,
        rtx: None,
        backfill: Some(BackfillSupport {
            ssrc: Some(0x0bf0_bf00),
            ..BackfillSupport::default()
        }),
    };
    let collector = RecoverySupport {
        instant: true,
        rtx: None,
        backfill: Some(BackfillSupport {
            mark: Some(0),
            max_rate: Some(2000),
            ..BackfillSupport::default()
        }),
    };
    let mut origin = LocalSdp::with_session_id("s1", "198.51.100.10".parse().unwrap(), 1);
    let offer = offer_with_recovery(
        &capabilities(),
        StreamRole::Sender,
        &local,
        &agent,
        &mut origin,
    )
    .unwrap();
    let policy = AnswerPolicy::Receive(ReceivePolicy::default());
    let collector_local = LocalMedia::new("203.0.113.5:50000".parse().unwrap());
    let mut theirs = LocalSdp::with_session_id("collector", "203.0.113.5".parse().unwrap(), 2);
    let answer_to = |support: &RecoverySupport, theirs: &mut LocalSdp| {
        answer_with_recovery(&offer, &policy, &collector_local, support, theirs)
            .unwrap()
            .0
    };
    let fast = capabilities();
    let with = answer_to(&collector, &mut theirs);
    assert_eq!(peer_timeout(configured, &offer, &with, &fast), configured);
    // A collector that knows nothing of section 11 reports every 2-6 s.
    let without = answer_to(&RecoverySupport::default(), &mut theirs);
    assert_eq!(
        peer_timeout(configured, &offer, &without, &fast),
        LEGACY_PEER_TIMEOUT
    );
    // A longer configured timeout is kept either way.
    let long = Duration::from_secs(30);
    assert_eq!(peer_timeout(long, &offer, &without, &fast), long);
    assert_eq!(peer_timeout(long, &offer, &with, &fast), long);
    // One channel at 1 Hz: its collector may wait ~59 s between reports
    // (RFC 3550 A.7 at 5 % of 544 bit/s), so three of those.
    let mut slow = capabilities();
    slow.clock_rate = 1;
    if let Some(s) = slow.samples.as_mut() {
        s.samples_per_packet = 1;
        s.channels.truncate(1);
    }
    let legacy = peer_timeout(configured, &offer, &without, &slow);
    let longest = RtcpConfig::new(slow.session_bandwidth_bps()).longest_receiver_interval(100);
    assert!(longest > Duration::from_secs(40), "{longest:?}");
    assert_eq!(legacy, longest * 3);
    // Backfill agreed: the peer reports every second whatever the rate.
    assert_eq!(peer_timeout(configured, &offer, &with, &slow), configured);
}

/// The peer's first report may come only after ours reached it (a NAT or
/// relay: it learns our RTCP address from it), and ours may have come
/// before its stream existed: the first report has the timeout and a
/// grace; later ones only the timeout.
#[test]
fn the_first_report_has_a_grace_later_ones_do_not() {
    let t0 = Instant::now();
    let mut w = PeerWatch::new(PEER_TIMEOUT, t0);
    assert_eq!(w.checked(0, t0 + PEER_TIMEOUT), Verdict::Alive);
    let first = t0 + PEER_TIMEOUT + FIRST_REPORT_GRACE - Duration::from_millis(1);
    assert_eq!(w.checked(0, first), Verdict::Alive);
    assert_eq!(w.checked(1, first), Verdict::Alive);
    assert_eq!(
        w.checked(1, first + PEER_TIMEOUT),
        Verdict::Dead(PEER_TIMEOUT)
    );
    let mut never = PeerWatch::new(PEER_TIMEOUT, t0);
    assert!(matches!(
        never.checked(0, t0 + PEER_TIMEOUT + FIRST_REPORT_GRACE),
        Verdict::Dead(_)
    ));
}

/// A network cut longer than the recalls (s15: 5 minutes) leaves the
/// agent in a back-off of minutes; when the registrar answers again the
/// path is back, and the call goes at once instead of minutes later.
#[test]
fn when_the_registrar_answers_again_a_call_waiting_out_its_back_off_goes_at_once() {
    let (mut c, _, _, seen) = alive_then_silent();
    let mut called = ended_and_called_again(&seen).unwrap();
    for n in 0..=u64::from(RECALLS) {
        call_times_out(&mut c, session(10 + n), called);
        let at = c.poll_timeout().unwrap();
        if n == u64::from(RECALLS) {
            assert!(at - called >= Duration::from_secs(150), "backing off");
            break;
        }
        c.handle_timeout(at);
        assert!(matches!(&actions(&mut c)[..], [Action::Call { .. }]));
        called = at;
    }
    // The registrar does not answer either (the link is down)...
    let down = called + Duration::from_secs(10);
    c.handle_event(
        UaEvent::Registration(RegistrationEvent::Failed {
            reason: FailureReason::Unreachable,
        }),
        down,
    );
    actions(&mut c);
    // ...until it does again.
    c.handle_event(registered(), down + Duration::from_secs(30));
    assert!(
        matches!(&actions(&mut c)[..], [Action::Call { .. }]),
        "called when the path is back"
    );
}
