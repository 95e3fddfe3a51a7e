use super::*;
use crate::fake_install::FakeInstallConfig;

const OLD: &str = "2026.12.1";
const NEW: &str = "2026.12.2";

fn want_body(version: &str) -> Vec<u8> {
    format!(
        "want={version}\nurl=https://collector.example.net:8443/bundles/{h}.raucb\n\
         sha256={h}\nsize=1000\nreboot=now\n",
        h = "ab".repeat(32)
    )
    .into_bytes()
}

/// Steps of 20, 10, 5 and 5 s, no jitter, `failure_rate` of installs failing.
fn notifier(failure_rate: f64, seed: u64) -> FleetNotifier {
    let config = FakeInstallConfig {
        download: Duration::from_secs(20),
        install: Duration::from_secs(10),
        reboot: Duration::from_secs(5),
        trial: Duration::from_secs(5),
        jitter: 0.0,
        failure_rate,
    };
    FleetNotifier::new(
        FakeInstall::new(OLD, config, seed),
        FleetIdentity {
            agent: "0.1.0".into(),
            compatible: "sipsensor-sim".into(),
        },
    )
}

fn sub(n: u64) -> SubscriptionId {
    SubscriptionId::from_raw(n)
}

fn actions(f: &mut FleetNotifier) -> Vec<FleetAction> {
    std::iter::from_fn(|| f.poll_action()).collect()
}

/// The state a body carries; panics on a body the collector would refuse.
fn read(body: &[u8]) -> FleetState {
    FleetState::parse(body).expect("a body of 12.3")
}

/// Runs the notifier's timers until `until`; every action, with its time.
fn run_until(f: &mut FleetNotifier, until: Instant) -> Vec<(Instant, FleetAction)> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let Some(at) = f.poll_timeout().filter(|t| *t <= until) else {
            return out;
        };
        f.handle_timeout(at);
        out.extend(actions(f).into_iter().map(|a| (at, a)));
    }
    panic!("the notifier kept waking: {out:?}");
}

#[test]
fn a_report_only_subscribe_is_accepted_with_the_full_state() {
    let t0 = Instant::now();
    let mut f = notifier(0.0, 1);
    f.subscribed(sub(1), b"", t0);
    let a = actions(&mut f);
    let [FleetAction::Accept { subscription, body }] = a.as_slice() else {
        panic!("not accepted");
    };
    assert_eq!(*subscription, sub(1));
    let s = read(body);
    assert_eq!(
        (s.version.as_str(), s.agent.as_str(), s.compatible.as_str()),
        (OLD, "0.1.0", "sipsensor-sim")
    );
    assert_eq!(
        (s.slot.as_str(), s.update, s.target),
        ("A", UpdateState::Idle, None)
    );
    assert_eq!(f.poll_timeout(), None, "nothing to wake for");
}

#[test]
fn a_body_that_breaks_the_rules_is_refused_with_400() {
    let t0 = Instant::now();
    let mut f = notifier(0.0, 1);
    // A want without its url (12.4), and a name in capitals (12.2).
    for body in [&b"want=2026.12.2\n"[..], b"Want=x\n"] {
        f.subscribed(sub(1), body, t0);
        assert!(
            matches!(
                actions(&mut f).as_slice(),
                [FleetAction::Reject { status: 400, .. }]
            ),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(f.install.update(), UpdateState::Idle, "no want taken");
}

#[test]
fn a_want_is_reported_through_every_step_and_the_reboot_ends_every_subscription() {
    let t0 = Instant::now();
    let mut f = notifier(0.0, 1);
    f.subscribed(sub(1), b"", t0);
    actions(&mut f);
    f.subscribed(sub(2), &want_body(NEW), t0);
    let first = actions(&mut f);
    // The first hears of the download, the second gets it in its accept.
    let [
        FleetAction::Notify {
            subscription: n, ..
        },
        FleetAction::Accept { body, .. },
    ] = first.as_slice()
    else {
        panic!("{first:?}");
    };
    assert_eq!(*n, sub(1));
    let s = read(body);
    assert_eq!(
        (s.update, s.target.as_deref(), s.progress),
        (UpdateState::Downloading, Some(NEW), Some(0))
    );

    let steps = run_until(&mut f, t0 + Duration::from_secs(36));
    let to_first: Vec<(u64, UpdateState, bool)> = steps
        .iter()
        .filter_map(|(at, a)| match a {
            FleetAction::Notify {
                subscription,
                body,
                last,
            } if *subscription == sub(1) => Some(((*at - t0).as_secs(), read(body).update, *last)),
            _ => None,
        })
        .collect();
    use UpdateState::*;
    assert_eq!(
        to_first,
        [
            (5, Downloading, false),
            (10, Downloading, false),
            (15, Downloading, false),
            (20, Installing, false),
            (25, Installing, false),
            (30, Installed, false),
            (30, Rebooting, false),
            (30, Rebooting, true),
        ]
    );
    let shell: Vec<&FleetAction> = steps
        .iter()
        .map(|(_, a)| a)
        .filter(|a| !matches!(a, FleetAction::Notify { .. }))
        .collect();
    assert_eq!(shell, [&FleetAction::GoDown, &FleetAction::ComeBack]);
    let come_back = steps
        .iter()
        .find(|(_, a)| *a == FleetAction::ComeBack)
        .map(|(at, _)| (*at - t0).as_secs());
    assert_eq!(come_back, Some(35), "after the reboot's 5 s");
    assert!(!f.is_down());

    // The collector subscribes again on the new session: the new slot in
    // trial, then good.
    let t = t0 + Duration::from_secs(36);
    f.subscribed(sub(3), &want_body(NEW), t);
    let a = actions(&mut f);
    let [FleetAction::Accept { body, .. }] = a.as_slice() else {
        panic!("not accepted: {a:?}");
    };
    let s = read(body);
    assert_eq!(
        (s.version.as_str(), s.slot.as_str(), s.update),
        (NEW, "B", Trial)
    );
    let last = run_until(&mut f, t0 + Duration::from_secs(60));
    let [(_, FleetAction::Notify { body, last, .. })] = last.as_slice() else {
        panic!("{last:?}");
    };
    assert!(!last);
    assert_eq!(read(body).update, Good);
    assert_eq!(f.poll_timeout(), None);
}

#[test]
fn progress_goes_out_at_most_every_five_seconds_and_only_when_it_moved() {
    let t0 = Instant::now();
    let mut f = notifier(0.0, 1);
    f.subscribed(sub(1), &want_body(NEW), t0);
    actions(&mut f);
    // Woken early (another timer of the shell): nothing yet.
    f.handle_timeout(t0 + Duration::from_secs(3));
    assert_eq!(actions(&mut f), []);
    assert_eq!(f.poll_timeout(), Some(t0 + PROGRESS_INTERVAL));
    let sent = run_until(&mut f, t0 + Duration::from_secs(19));
    let progress: Vec<Option<u8>> = sent
        .iter()
        .map(|(_, a)| match a {
            FleetAction::Notify { body, .. } => read(body).progress,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(progress, [Some(25), Some(50), Some(75)]);
    // Unsubscribed: no progress to send, nothing to wake for but the step.
    f.ended(sub(1));
    assert_eq!(f.poll_timeout(), Some(t0 + Duration::from_secs(20)));
}

#[test]
fn a_refresh_carries_the_want_and_one_without_it_cancels_the_download() {
    let t0 = Instant::now();
    let mut f = notifier(0.0, 1);
    f.subscribed(sub(1), b"", t0);
    actions(&mut f);
    f.refreshed(sub(1), &want_body(NEW), t0);
    let a = actions(&mut f);
    let [FleetAction::Notify { body, .. }] = a.as_slice() else {
        panic!("{a:?}");
    };
    assert_eq!(read(body).update, UpdateState::Downloading);
    f.refreshed(sub(1), b"", t0 + Duration::from_secs(2));
    let a = actions(&mut f);
    let [FleetAction::Notify { body, .. }] = a.as_slice() else {
        panic!("{a:?}");
    };
    let s = read(body);
    assert_eq!((s.update, s.target), (UpdateState::Idle, None));
    // A refresh of a subscription it does not hold (ended) changes nothing.
    f.ended(sub(1));
    f.refreshed(sub(1), &want_body(NEW), t0 + Duration::from_secs(3));
    assert_eq!(f.install.update(), UpdateState::Idle);
}

#[test]
fn a_failed_install_is_reported_with_its_reason_and_no_reboot() {
    let t0 = Instant::now();
    let failed = (0..100)
        .find_map(|seed| {
            let mut f = notifier(1.0, seed);
            f.subscribed(sub(1), &want_body(NEW), t0);
            actions(&mut f);
            let all = run_until(&mut f, t0 + Duration::from_secs(120));
            let last = match all.last() {
                Some((_, FleetAction::Notify { body, .. })) => read(body),
                _ => return None,
            };
            (last.update == UpdateState::Failed).then_some((all, last))
        })
        .expect("some seed fails before the reboot");
    let (all, last) = failed;
    assert!(
        all.iter()
            .all(|(_, a)| matches!(a, FleetAction::Notify { last: false, .. }))
    );
    assert_eq!(last.target.as_deref(), Some(NEW));
    assert!(last.reason.is_some_and(|r| !r.is_empty()));
    assert_eq!(last.version, OLD);
}
