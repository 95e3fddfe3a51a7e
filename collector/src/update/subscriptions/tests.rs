//! The manager on a virtual clock: `t(s)` is `s` seconds after a fixed
//! start, and nothing sleeps.

use super::*;
use crate::update::fleet::RebootPolicy;

const S1: &str = "sip:s1@example.net";

struct Clock(Instant);

impl Clock {
    fn t(&self, s: u64) -> Instant {
        self.0 + Duration::from_secs(s)
    }
}

fn clock() -> Clock {
    Clock(Instant::now())
}

fn want(version: &str) -> FleetWant {
    FleetWant {
        version: version.to_string(),
        url: format!(
            "https://collector.example.net:8443/bundles/{}.raucb",
            "ab".repeat(32)
        ),
        sha256: [0xab; 32],
        size: 41_234_432,
        reboot: RebootPolicy::Now,
    }
}

fn accepted(secs: u64) -> Answer {
    Answer::Accepted {
        expires: Duration::from_secs(secs),
    }
}

fn one(m: &mut SubscriptionManager) -> Command {
    let c = m.poll_command().expect("a command");
    assert_eq!(m.poll_command(), None, "only one command");
    c
}

/// A manager with an active subscription to S1 granted at t(0) for 3600 s.
fn active(c: &Clock) -> SubscriptionManager {
    let mut m = SubscriptionManager::new();
    m.session_started(S1, c.t(0));
    let sub = one(&mut m);
    m.answered(S1, sub.request, accepted(3600), c.t(0));
    assert!(m.is_active(S1));
    m
}

#[test]
fn a_session_start_subscribes_and_the_grant_is_refreshed_at_half() {
    let c = clock();
    let mut m = SubscriptionManager::new();
    assert_eq!(m.poll_timeout(), None);
    m.session_started(S1, c.t(0));
    let sub = one(&mut m);
    assert_eq!(sub.kind, CommandKind::Subscribe);
    assert_eq!(sub.sensor, S1);
    assert_eq!(sub.want, None);
    assert_eq!(sub.expires, Duration::from_secs(3600));
    m.answered(S1, sub.request, accepted(1200), c.t(2));
    assert_eq!(m.poll_timeout(), Some(c.t(602)));
    m.handle_timeout(c.t(601));
    assert_eq!(m.poll_command(), None);
    m.handle_timeout(c.t(602));
    let refresh = one(&mut m);
    assert_eq!(refresh.kind, CommandKind::Renew);
    assert_ne!(refresh.request, sub.request);
    m.answered(S1, refresh.request, accepted(1200), c.t(603));
    assert_eq!(m.poll_timeout(), Some(c.t(1203)));
}

#[test]
fn a_want_rides_the_next_request_whatever_the_state() {
    let c = clock();
    let mut m = SubscriptionManager::new();
    // No subscription yet: the want waits for the first SUBSCRIBE.
    m.set_want(S1, Some(want("2026.12.2")), c.t(0));
    assert_eq!(m.poll_command(), None);
    m.session_started(S1, c.t(0));
    let sub = one(&mut m);
    assert_eq!(sub.want, Some(want("2026.12.2")));
    // Changed while the SUBSCRIBE is out: sent once it is answered.
    m.set_want(S1, Some(want("2026.12.3")), c.t(0));
    assert_eq!(m.poll_command(), None);
    m.answered(S1, sub.request, accepted(3600), c.t(1));
    let refresh = one(&mut m);
    assert_eq!(refresh.kind, CommandKind::Refresh);
    assert_eq!(refresh.want, Some(want("2026.12.3")));
    m.answered(S1, refresh.request, accepted(3600), c.t(2));
    // Active: a cleared want goes out at once; setting the same want
    // again sends nothing.
    m.set_want(S1, None, c.t(0));
    let clear = one(&mut m);
    assert_eq!((clear.kind, clear.want), (CommandKind::Refresh, None));
    m.answered(S1, clear.request, accepted(3600), c.t(3));
    m.set_want(S1, None, c.t(0));
    assert_eq!(m.poll_command(), None);
    assert_eq!(m.want(S1), None);
}

#[test]
fn an_answer_to_another_request_changes_nothing() {
    let c = clock();
    let mut m = SubscriptionManager::new();
    m.session_started(S1, c.t(0));
    let sub = one(&mut m);
    // A forged or late 481 with the wrong request, and one for a sensor
    // never subscribed to.
    m.answered(S1, RequestId(sub.request.0 + 7), Answer::Gone, c.t(1));
    m.answered("sip:other@example.net", sub.request, Answer::Gone, c.t(1));
    m.answered(S1, sub.request, accepted(3600), c.t(1));
    assert!(m.is_active(S1));
    // Answered twice: the second answer finds no request out.
    m.answered(S1, sub.request, Answer::Gone, c.t(2));
    assert!(m.is_active(S1));
}

#[test]
fn an_ended_subscription_is_retried_after_a_minute_only_while_streaming() {
    let c = clock();
    let mut m = active(&c);
    m.handle_timeout(c.t(1800));
    let refresh = one(&mut m);
    m.answered(S1, refresh.request, Answer::Gone, c.t(1801));
    assert!(!m.is_active(S1));
    assert_eq!(m.poll_timeout(), Some(c.t(1861)));
    m.handle_timeout(c.t(1861));
    let again = one(&mut m);
    assert_eq!(again.kind, CommandKind::Subscribe);
    m.answered(
        S1,
        again.request,
        Answer::Refused { status: 489 },
        c.t(1862),
    );
    // The session ends: no retries until the next one, which subscribes
    // at once.
    m.session_ended(S1);
    assert_eq!(m.poll_timeout(), None);
    m.handle_timeout(c.t(5000));
    assert_eq!(m.poll_command(), None);
    m.session_started(S1, c.t(5001));
    assert_eq!(one(&mut m).kind, CommandKind::Subscribe);
}

#[test]
fn a_new_session_checks_the_subscription_and_a_restarted_sensor_is_subscribed_at_once() {
    let c = clock();
    let mut m = active(&c);
    m.session_ended(S1);
    m.session_started(S1, c.t(100));
    let check = one(&mut m);
    assert_eq!(check.kind, CommandKind::Refresh);
    // The sensor rebooted and lost it: 481, and a new one goes out now,
    // not a minute later.
    m.answered(S1, check.request, Answer::Gone, c.t(101));
    let sub = one(&mut m);
    assert_eq!(sub.kind, CommandKind::Subscribe);
    m.answered(S1, sub.request, accepted(3600), c.t(102));
    assert!(m.is_active(S1));
}

#[test]
fn a_terminated_notify_ends_the_subscription() {
    let c = clock();
    let mut m = active(&c);
    assert!(m.notified(S1, NotifyStatus::Terminated, c.t(10)));
    assert!(!m.is_active(S1));
    assert_eq!(m.poll_timeout(), Some(c.t(70)));
    // A NOTIFY for a subscription the manager does not hold is not known.
    assert!(!m.notified(
        S1,
        NotifyStatus::Active {
            expires: Duration::from_secs(60)
        },
        c.t(11)
    ));
    assert!(!m.notified("sip:nobody@example.net", NotifyStatus::Terminated, c.t(11)));
}

#[test]
fn a_sensor_granting_seconds_cannot_make_the_collector_refresh_in_a_loop() {
    let c = clock();
    let mut m = SubscriptionManager::new();
    m.session_started(S1, c.t(0));
    let sub = one(&mut m);
    m.answered(S1, sub.request, accepted(1), c.t(0));
    // Scheduled as the 60 s minimum: the refresh at 30 s.
    assert_eq!(m.poll_timeout(), Some(c.t(30)));
    m.handle_timeout(c.t(1));
    assert_eq!(m.poll_command(), None);
    // A NOTIFY claiming 2 s neither.
    m.notified(
        S1,
        NotifyStatus::Active {
            expires: Duration::from_secs(2),
        },
        c.t(5),
    );
    assert_eq!(m.poll_timeout(), Some(c.t(30)));
}

#[test]
fn a_notify_shortening_the_subscription_brings_the_refresh_forward() {
    let c = clock();
    let mut m = active(&c);
    assert_eq!(m.poll_timeout(), Some(c.t(1800)));
    m.notified(
        S1,
        NotifyStatus::Active {
            expires: Duration::from_secs(600),
        },
        c.t(100),
    );
    assert_eq!(m.poll_timeout(), Some(c.t(400)));
}

#[test]
fn an_answer_lost_on_the_way_ends_the_subscription_like_a_timeout() {
    let c = clock();
    let mut m = active(&c);
    m.handle_timeout(c.t(1800));
    let _refresh = one(&mut m);
    assert!(!m.is_active(S1));
    assert_eq!(m.poll_timeout(), Some(c.t(1840)));
    m.handle_timeout(c.t(1840));
    // Ended; still streaming, so retried a minute later.
    assert_eq!(m.poll_command(), None);
    assert_eq!(m.poll_timeout(), Some(c.t(1900)));
    // A new subscription whose answer never comes is not stuck either.
    m.handle_timeout(c.t(1900));
    let sub = one(&mut m);
    assert_eq!(sub.kind, CommandKind::Subscribe);
    m.handle_timeout(c.t(1940));
    assert_eq!(m.poll_timeout(), Some(c.t(2000)));
}

#[test]
fn a_grant_of_zero_ends_the_subscription() {
    let c = clock();
    let mut m = SubscriptionManager::new();
    m.session_started(S1, c.t(0));
    let sub = one(&mut m);
    m.answered(S1, sub.request, accepted(0), c.t(1));
    assert!(!m.is_active(S1));
    assert_eq!(m.poll_timeout(), Some(c.t(61)));
}

#[test]
fn sensors_are_subscribed_independently() {
    let c = clock();
    let mut m = SubscriptionManager::new();
    let s2 = "sip:s2@example.net";
    m.session_started(S1, c.t(0));
    m.session_started(s2, c.t(0));
    let a = m.poll_command().expect("S1's");
    let b = m.poll_command().expect("s2's");
    assert_ne!(a.request, b.request);
    m.answered(S1, a.request, accepted(3600), c.t(1));
    m.answered(s2, b.request, Answer::TimedOut, c.t(32));
    assert!(m.is_active(S1));
    assert!(!m.is_active(s2));
    m.set_want(s2, Some(want("v2")), c.t(0));
    assert_eq!(m.poll_command(), None);
    assert_eq!(m.want(s2), Some(&want("v2")));
    assert_eq!(m.want(S1), None);
}
