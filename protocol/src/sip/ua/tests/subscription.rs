//! RFC 6665 subscriptions between the two user agents: the collector
//! subscribes to the sensor's fleet state (docs/protocol.md 12.1), the
//! sensor notifies; refresh, unsubscribe, expiry, a NOTIFY ahead of the
//! 2xx, digest challenges.

use super::*;
use crate::fleet;

const STATE: &[u8] = b"version=1\nagent=0.1.0\ncompatible=c\nslot=A\nupdate=idle\n";
const STATE_2: &[u8] = b"version=2\nagent=0.1.0\ncompatible=c\nslot=B\nupdate=good\ntarget=2\n";
const SENSOR_URI: &str = "sip:sensor-1@192.0.2.1";

/// The sensor serves `sipsensor-fleet`, the collector subscribes to it.
pub(super) fn fleet_net(seed: u64) -> Net {
    fleet_net_with(seed, |_| {}, |_| {})
}

pub(super) fn fleet_net_with(
    seed: u64,
    sensor: impl FnOnce(&mut UaConfig),
    collector: impl FnOnce(&mut UaConfig),
) -> Net {
    let mut net = Net::new(seed);
    let config = |addr: &str, aor: &str, notifier: bool| {
        let local = LocalEndpoint::new(Transport::Udp, addr.parse().unwrap());
        let mut config = UaConfig::new(local, aor);
        config.event_packages = vec![fleet::event_package(notifier)];
        config
    };
    let mut sensor_config = config(SENSOR, "sip:sensor-1@example.net", true);
    sensor(&mut sensor_config);
    let mut collector_config = config(COLLECTOR, "sip:collector@example.net", false);
    collector(&mut collector_config);
    for (i, config) in [sensor_config, collector_config].into_iter().enumerate() {
        net.nodes[i].ua = UserAgent::new(
            config,
            IdGenerator::seeded(seed + i as u64),
            Box::new(LiteralsOnly),
        )
        .unwrap();
    }
    net
}

pub(super) fn sub_events(events: Vec<UaEvent>) -> Vec<SubscriptionEvent> {
    events
        .into_iter()
        .filter_map(|e| match e {
            UaEvent::Subscription(s) => Some(s),
            _ => None,
        })
        .collect()
}

pub(super) fn incoming_subscription(events: &[SubscriptionEvent]) -> SubscriptionId {
    events
        .iter()
        .find_map(|e| match e {
            SubscriptionEvent::Incoming { subscription, .. } => Some(*subscription),
            _ => None,
        })
        .expect("an incoming SUBSCRIBE")
}

pub(super) fn terminated(events: &[SubscriptionEvent]) -> Vec<SubscriptionEnd> {
    events
        .iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Terminated { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn notified(events: &[SubscriptionEvent]) -> Vec<(SubscriptionState, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Notified { state, body, .. } => Some((state.clone(), body.clone())),
            _ => None,
        })
        .collect()
}

/// The collector subscribes with `body`, the sensor accepts granting at
/// most `max`; returns (the collector's id, the sensor's id).
pub(super) fn subscribed(net: &mut Net, body: &[u8], max: u32) -> (SubscriptionId, SubscriptionId) {
    let now = net.now;
    let sub = net
        .collector()
        .subscribe(SENSOR_URI, fleet::EVENT, body.to_vec(), 3600, now)
        .unwrap();
    net.settle();
    let events = sub_events(net.take_events(0));
    let served = incoming_subscription(&events);
    let [
        SubscriptionEvent::Incoming {
            body: got, expires, ..
        },
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!((got.as_slice(), *expires), (body, 3600));
    net.sensor()
        .accept_subscription(served, max, STATE.to_vec(), now)
        .unwrap();
    net.settle();
    let events = sub_events(net.take_events(1));
    assert_eq!(
        events[0],
        SubscriptionEvent::Active {
            subscription: sub,
            expires: max
        }
    );
    let notes = notified(&events);
    assert_eq!(notes.len(), 1, "{events:?}");
    assert_eq!(notes[0].0.status, SubscriptionStatus::Active);
    assert_eq!(notes[0].0.expires, Some(max));
    assert_eq!(notes[0].1, STATE);
    (sub, served)
}

#[test]
fn a_subscription_is_accepted_notified_refreshed_and_ended() {
    let mut net = fleet_net(300);
    let (sub, served) = subscribed(&mut net, b"", 600);
    let sent = net.nodes[1].sent.join("");
    assert!(sent.contains("Event: sipsensor-fleet"), "{sent}");
    assert!(sent.contains("Accept: application/vnd.sipsensor.fleet"));
    assert!(
        net.nodes[0]
            .sent
            .join("")
            .contains("Allow-Events: sipsensor-fleet")
    );
    // A change of state reaches the collector.
    let now = net.now;
    net.sensor()
        .notify(served, STATE_2.to_vec(), NotifyState::Active, now)
        .unwrap();
    net.settle();
    let notes = notified(&sub_events(net.take_events(1)));
    assert_eq!(notes[0].1, STATE_2);
    // RFC 6665 4.1.3: the seconds left, not the seconds granted.
    net.run_for(Duration::from_secs(100));
    let now = net.now;
    net.sensor()
        .notify(served, STATE_2.to_vec(), NotifyState::Active, now)
        .unwrap();
    net.settle();
    let notes = notified(&sub_events(net.take_events(1)));
    assert_eq!(notes[0].0.expires, Some(500));
    // At half the granted time the UA refreshes by itself; the sensor
    // answers with the last state (RFC 6665 4.2.1.2).
    net.run_for(Duration::from_secs(210));
    let events = sub_events(net.take_events(0));
    assert_eq!(
        events,
        [SubscriptionEvent::Refreshed {
            subscription: served,
            body: Vec::new(),
            expires: 600
        }]
    );
    let events = sub_events(net.take_events(1));
    assert!(events.contains(&SubscriptionEvent::Active {
        subscription: sub,
        expires: 600
    }));
    assert_eq!(notified(&events)[0].1, STATE_2);
    // A new want rides on a refresh the TU asks for.
    let want = fleet::FleetWant {
        version: "2".into(),
        url: "https://collector.example.net/bundles/x.raucb".into(),
        sha256: [7; 32],
        size: 10,
        reboot: fleet::RebootPolicy::Now,
    }
    .to_body()
    .unwrap();
    let now = net.now;
    net.collector()
        .refresh_subscription(sub, Some(want.clone()), now)
        .unwrap();
    net.settle();
    let events = sub_events(net.take_events(0));
    assert!(matches!(&events[..], [SubscriptionEvent::Refreshed { body, .. }] if *body == want));
    assert_eq!(notified(&sub_events(net.take_events(1))).len(), 1);
    // Unsubscribe: the sensor ends it and says so in a last NOTIFY.
    net.collector().unsubscribe(sub, now).unwrap();
    net.settle();
    assert_eq!(
        terminated(&sub_events(net.take_events(0))),
        [SubscriptionEnd::Unsubscribed]
    );
    let events = sub_events(net.take_events(1));
    assert_eq!(
        notified(&events)[0].0.status,
        SubscriptionStatus::Terminated
    );
    assert_eq!(terminated(&events), [SubscriptionEnd::Local]);
    assert_eq!(net.sensor().subscription_count(), 0);
    assert_eq!(net.collector().subscription_count(), 0);
}

#[test]
fn the_sensor_going_down_ends_it_with_deactivated() {
    let mut net = fleet_net(301);
    let (_, served) = subscribed(&mut net, b"", 3600);
    let now = net.now;
    let last = NotifyState::Terminated(TerminatedReason::Deactivated);
    net.sensor()
        .notify(served, STATE.to_vec(), last, now)
        .unwrap();
    net.settle();
    assert_eq!(
        terminated(&sub_events(net.take_events(0))),
        [SubscriptionEnd::Local]
    );
    let events = sub_events(net.take_events(1));
    assert_eq!(
        terminated(&events),
        [SubscriptionEnd::ByNotifier {
            reason: Some("deactivated".into()),
            retry_after: None
        }]
    );
    assert_eq!(
        net.sensor()
            .notify(served, STATE.to_vec(), NotifyState::Active, now),
        Err(UaError::UnknownSubscription(served))
    );
}

#[test]
fn an_unknown_event_gets_489_with_allow_events() {
    let mut net = fleet_net_with(
        302,
        |_| {},
        |c| {
            let mut other = fleet::event_package(false);
            other.name = "presence".into();
            c.event_packages.push(other);
        },
    );
    let now = net.now;
    net.collector()
        .subscribe(SENSOR_URI, "presence", Vec::new(), 3600, now)
        .unwrap();
    net.settle();
    assert!(sub_events(net.take_events(0)).is_empty());
    let answer = net.nodes[0].sent.join("");
    assert!(answer.starts_with("SIP/2.0 489"), "{answer}");
    assert!(answer.contains("Allow-Events: sipsensor-fleet"), "{answer}");
    let events = sub_events(net.take_events(1));
    assert!(
        matches!(
            &terminated(&events)[..],
            [SubscriptionEnd::Refused { status: 489, .. }]
        ),
        "{events:?}"
    );
    assert_eq!(net.collector().subscription_count(), 0);
    // A package the collector itself does not speak is refused at once.
    assert_eq!(
        net.collector()
            .subscribe(SENSOR_URI, "dialog", Vec::new(), 3600, now),
        Err(UaError::UnknownEvent("dialog".into()))
    );
}

#[test]
fn a_notify_ahead_of_the_2xx_makes_the_dialog() {
    let mut net = fleet_net(303);
    // The sensor's first 200 to the SUBSCRIBE is lost: its NOTIFY comes
    // first, then the 200 again when the SUBSCRIBE is retransmitted.
    let mut dropped = false;
    net.drop = Box::new(move |text| {
        let first_ok = text.starts_with("SIP/2.0 200") && text.contains("SUBSCRIBE") && !dropped;
        dropped |= first_ok;
        first_ok
    });
    let now = net.now;
    let sub = net
        .collector()
        .subscribe(SENSOR_URI, fleet::EVENT, Vec::new(), 3600, now)
        .unwrap();
    net.settle();
    let served = incoming_subscription(&sub_events(net.take_events(0)));
    net.sensor()
        .accept_subscription(served, 3600, STATE.to_vec(), now)
        .unwrap();
    net.settle();
    let events = sub_events(net.take_events(1));
    assert_eq!(notified(&events).len(), 1, "{events:?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, SubscriptionEvent::Active { .. }))
    );
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        sub_events(net.take_events(1)),
        [SubscriptionEvent::Active {
            subscription: sub,
            expires: 3600
        }]
    );
    // One dialog: the next NOTIFY finds it.
    let now = net.now;
    net.sensor()
        .notify(served, STATE_2.to_vec(), NotifyState::Active, now)
        .unwrap();
    net.settle();
    assert_eq!(notified(&sub_events(net.take_events(1)))[0].1, STATE_2);
}

#[test]
fn an_unrefreshed_subscription_ends_on_both_sides() {
    let mut net = fleet_net(304);
    let (_, served) = subscribed(&mut net, b"", 600);
    // Every refresh is lost: the collector gives it up when its refresh
    // times out (docs/protocol.md 12.1), the sensor when it expires, with
    // a last NOTIFY (RFC 6665 4.2.2) nobody takes any more.
    net.drop = Box::new(|text| text.starts_with("SUBSCRIBE"));
    net.run_for(Duration::from_secs(340));
    assert_eq!(
        terminated(&sub_events(net.take_events(1))),
        [SubscriptionEnd::DialogGone(408)]
    );
    assert_eq!(net.sensor().subscription_count(), 1);
    net.run_for(Duration::from_secs(300));
    assert_eq!(
        terminated(&sub_events(net.take_events(0))),
        [SubscriptionEnd::Expired]
    );
    let last = net.nodes[0].sent.last().unwrap().clone();
    let notify = net.nodes[0]
        .sent
        .iter()
        .rev()
        .find(|m| m.starts_with("NOTIFY"))
        .unwrap();
    assert!(
        notify.contains("Subscription-State: terminated;reason=timeout"),
        "{notify}"
    );
    assert!(last.starts_with("NOTIFY") || last.starts_with("SIP/2.0"));
    let _ = served;
    assert_eq!(net.sensor().subscription_count(), 0);
}

#[test]
fn a_notify_answered_481_ends_the_subscription() {
    let mut net = fleet_net(305);
    let (_, served) = subscribed(&mut net, b"", 3600);
    // The collector restarts and knows nothing of it.
    let local = LocalEndpoint::new(Transport::Udp, COLLECTOR.parse().unwrap());
    let mut config = UaConfig::new(local, "sip:collector@example.net");
    config.event_packages = vec![fleet::event_package(false)];
    net.nodes[1].ua =
        UserAgent::new(config, IdGenerator::seeded(9), Box::new(LiteralsOnly)).unwrap();
    let now = net.now;
    net.sensor()
        .notify(served, STATE_2.to_vec(), NotifyState::Active, now)
        .unwrap();
    net.settle();
    assert_eq!(
        terminated(&sub_events(net.take_events(0))),
        [SubscriptionEnd::DialogGone(481)]
    );
    assert_eq!(net.sensor().subscription_count(), 0);
}

#[test]
fn a_fetch_with_expires_0_gets_one_terminated_notify() {
    let mut net = fleet_net(306);
    let now = net.now;
    net.collector()
        .subscribe(SENSOR_URI, fleet::EVENT, Vec::new(), 0, now)
        .unwrap();
    net.settle();
    let events = sub_events(net.take_events(0));
    let served = incoming_subscription(&events);
    assert!(matches!(
        events[0],
        SubscriptionEvent::Incoming { expires: 0, .. }
    ));
    net.sensor()
        .accept_subscription(served, 3600, STATE.to_vec(), now)
        .unwrap();
    net.settle();
    assert_eq!(
        terminated(&sub_events(net.take_events(0))),
        [SubscriptionEnd::Local]
    );
    let events = sub_events(net.take_events(1));
    assert_eq!(notified(&events)[0].1, STATE);
    assert_eq!(
        terminated(&events),
        [SubscriptionEnd::ByNotifier {
            reason: Some("timeout".into()),
            retry_after: None
        }]
    );
}

use crate::sip::digest::{
    ChallengeKind, DigestServer, InMemoryCredentials, Password, ServerConfig, ServerSecret,
    WallClock,
};

/// A digest verifier that knows `user` with the password "right".
fn digest_gate(user: &str, now: Instant) -> (DigestServer, InMemoryCredentials) {
    let mut store = InMemoryCredentials::new();
    store.insert_password(user, Password::new("right"));
    let server = DigestServer::new(
        ServerConfig::new("example.net", ServerSecret::new(vec![3u8; 32])),
        WallClock::new(now, 1_800_000_000),
    )
    .unwrap();
    (server, store)
}

#[test]
fn a_challenged_subscribe_goes_again_with_credentials() {
    let mut net = fleet_net(307);
    net.collector()
        .set_credentials(Some(("collector".into(), Password::new("right"))));
    let now = net.now;
    let (mut server, store) = digest_gate("collector", now);
    let sub = net
        .collector()
        .subscribe(SENSOR_URI, fleet::EVENT, Vec::new(), 3600, now)
        .unwrap();
    net.settle();
    let mut ids = IdGenerator::seeded(5);
    let mut accepted = None;
    for round in 0..2 {
        let mut events = sub_events(net.take_events(0));
        if round == 1 {
            // The challenged one ended, as every subscription does.
            assert_eq!(terminated(&events), [SubscriptionEnd::Rejected(401)]);
            events.retain(|e| matches!(e, SubscriptionEvent::Incoming { .. }));
        }
        let [
            SubscriptionEvent::Incoming {
                subscription,
                request,
                ..
            },
        ] = &events[..]
        else {
            panic!("{events:?}")
        };
        match server.verify(request, ChallengeKind::Www, &store, now) {
            Ok(user) => {
                assert_eq!(user.username, "collector");
                net.sensor()
                    .accept_subscription(*subscription, 3600, STATE.to_vec(), now)
                    .unwrap();
                accepted = Some(*subscription);
            }
            Err(why) => {
                let mut r = crate::sip::response::response_to(
                    request,
                    rsip::StatusCode::Unauthorized,
                    Some("x"),
                );
                r.headers
                    .extend(server.challenges(ChallengeKind::Www, why.stale(), now, &mut ids));
                net.sensor()
                    .reject_subscription_statelessly(*subscription, r, now)
                    .unwrap();
            }
        }
        net.settle();
    }
    assert!(accepted.is_some());
    let events = sub_events(net.take_events(1));
    assert_eq!(
        events[0],
        SubscriptionEvent::Active {
            subscription: sub,
            expires: 3600
        }
    );
    assert_eq!(net.sensor().subscription_count(), 1);
}

#[test]
fn a_challenged_notify_goes_again_with_credentials() {
    // The collector screens its dialogs and asks the sensor for a password.
    let mut net = fleet_net_with(308, |_| {}, |c| c.screen_in_dialog = true);
    net.sensor()
        .set_credentials(Some(("sensor-1".into(), Password::new("right"))));
    let now = net.now;
    let (mut server, store) = digest_gate("sensor-1", now);
    let mut ids = IdGenerator::seeded(6);
    net.collector()
        .subscribe(SENSOR_URI, fleet::EVENT, Vec::new(), 3600, now)
        .unwrap();
    net.settle();
    let served = incoming_subscription(&sub_events(net.take_events(0)));
    net.sensor()
        .accept_subscription(served, 3600, STATE.to_vec(), now)
        .unwrap();
    net.settle();
    let mut admitted = 0;
    for _ in 0..2 {
        let events = sub_events(net.take_events(1));
        for e in &events {
            let SubscriptionEvent::InDialogRequest { id, request, .. } = e else {
                continue;
            };
            match server.verify(request, ChallengeKind::Www, &store, now) {
                Ok(_) => {
                    net.collector().admit_in_dialog(*id, now).unwrap();
                    admitted += 1;
                }
                Err(why) => {
                    let mut r = crate::sip::response::response_to(
                        request,
                        rsip::StatusCode::Unauthorized,
                        None,
                    );
                    r.headers.extend(server.challenges(
                        ChallengeKind::Www,
                        why.stale(),
                        now,
                        &mut ids,
                    ));
                    net.collector().refuse_in_dialog(*id, r, now).unwrap();
                }
            }
        }
        net.settle();
    }
    assert_eq!(admitted, 1);
    let events = sub_events(net.take_events(1));
    assert_eq!(notified(&events)[0].1, STATE);
    assert_eq!(net.sensor().subscription_count(), 1);
}
