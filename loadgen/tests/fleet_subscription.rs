//! A simulated sensor with a fake install answers the fleet subscription
//! over loopback UDP as docs/protocol.md 12.1-12.4 ask, against the
//! protocol crate's subscriber: 489 for another package, 400 for a body
//! that breaks 12.2, every state of an update NOTIFYed, `terminated;
//! reason=deactivated` at the reboot, and back on the same port with the
//! new version on the other slot, its old dialogs forgotten.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sipsensor_loadgen::fake_install::FakeInstallConfig;
use sipsensor_loadgen::fleet::{FleetIdentity, SimFleet};
use sipsensor_loadgen::pump::MediaPump;
use sipsensor_loadgen::sensor::{SensorConfig, SimSensor, standard_stream};
use sipsensor_loadgen::sockets::SharedSocket;
use sipsensor_protocol::fleet::{self, FleetState, UpdateState};
use sipsensor_protocol::{
    EventPackage, IdGenerator, LiteralsOnly, LocalEndpoint, SubscriptionEnd, SubscriptionEvent,
    SubscriptionId, Transport, UaConfig, UaEvent, UserAgent,
};
use sipsensor_runtime::sip_transport::{NetConfig, Network};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use std::time::Duration;
use tokio::sync::mpsc;

const OLD: &str = "2026.12.1";
const NEW: &str = "2026.12.2";

fn want_body(version: &str) -> Vec<u8> {
    let h = "cd".repeat(32);
    format!("want={version}\nurl=https://127.0.0.1:8443/bundles/{h}.raucb\nsha256={h}\nsize=4096\n")
        .into_bytes()
}

/// The collector's side: the fleet package as a subscriber, without a
/// check of what it sends, and one the sensor does not serve.
async fn subscriber() -> (UaHandle, mpsc::Receiver<UaEvent>) {
    let (network, incoming) = Network::bind(NetConfig {
        udp: Some("127.0.0.1:0".parse().unwrap()),
        ..NetConfig::default()
    })
    .await
    .unwrap();
    let addr = network.local_addr(Transport::Udp).unwrap();
    let mut config = UaConfig::new(
        LocalEndpoint::new(Transport::Udp, addr),
        "sip:collector@127.0.0.1",
    );
    let presence = EventPackage {
        name: "presence".into(),
        content_type: "application/pidf+xml".into(),
        notifier: false,
        default_expires: 3600,
        check_subscribe_body: None,
        check_notify_body: None,
    };
    config.event_packages = vec![fleet::event_package(false), presence];
    let ua = UserAgent::new(config, IdGenerator::from_entropy(), Box::new(LiteralsOnly)).unwrap();
    let (handle, events, _task) = ua_driver::spawn(ua, network, incoming);
    (handle, events)
}

async fn subscribe(ua: &UaHandle, to: &str, event: &'static str, body: Vec<u8>) -> SubscriptionId {
    let to = to.to_owned();
    ua.with(move |ua, now| ua.subscribe(&to, event, body, 3600, now))
        .await
        .unwrap()
        .unwrap()
}

/// The next event about `sub`, within 5 s.
async fn next(events: &mut mpsc::Receiver<UaEvent>, sub: SubscriptionId) -> SubscriptionEvent {
    let wait = async {
        loop {
            if let Some(UaEvent::Subscription(e)) = events.recv().await {
                let of = match &e {
                    SubscriptionEvent::Active { subscription, .. }
                    | SubscriptionEvent::Notified { subscription, .. }
                    | SubscriptionEvent::Terminated { subscription, .. } => *subscription,
                    _ => continue,
                };
                if of == sub {
                    return e;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("an event of the subscription within 5 s")
}

/// The states NOTIFYed on `sub` until it ends, and how it ended.
async fn states_until_end(
    events: &mut mpsc::Receiver<UaEvent>,
    sub: SubscriptionId,
    stop_at: Option<UpdateState>,
) -> (Vec<FleetState>, Option<SubscriptionEnd>) {
    let mut states = Vec::new();
    for _ in 0..50 {
        match next(events, sub).await {
            SubscriptionEvent::Notified { body, .. } => {
                let s = FleetState::parse(&body).unwrap();
                let update = s.update;
                states.push(s);
                if Some(update) == stop_at {
                    return (states, None);
                }
            }
            SubscriptionEvent::Terminated { reason, .. } => return (states, Some(reason)),
            _ => {}
        }
    }
    panic!("no end after 50 events: {states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_subscription_through_an_update_and_its_reboot() {
    let step = Duration::from_millis(300);
    let fleet = SimFleet {
        version: OLD.into(),
        identity: FleetIdentity {
            agent: "0.1.0".into(),
            compatible: "sipsensor-sim".into(),
        },
        install: FakeInstallConfig {
            download: step,
            install: step,
            reboot: step,
            trial: step,
            jitter: 0.0,
            failure_rate: 0.0,
        },
        seed: 7,
    };
    let config = SensorConfig {
        aor: "sip:sensor-00000@127.0.0.1".into(),
        username: "sensor-00000".into(),
        password: "pw".into(),
        sip_ip: "127.0.0.1".parse().unwrap(),
        registrar: None,
        collector: None,
        expires: 3600,
        capabilities: standard_stream(1, 10, 1),
        seed: 0,
    };
    let rtp = SharedSocket::bind("127.0.0.1".parse().unwrap()).unwrap();
    let sensor = SimSensor::start_with_fleet(config, None, fleet, rtp, MediaPump::start().unwrap())
        .await
        .unwrap();
    let to = format!("sip:sensor-00000@{}", sensor.sip_addr);
    let (ua, mut events) = subscriber().await;

    // Another package: 489 Bad Event (RFC 6665 7.2.2).
    let other = subscribe(&ua, &to, "presence", Vec::new()).await;
    assert!(matches!(
        next(&mut events, other).await,
        SubscriptionEvent::Terminated {
            reason: SubscriptionEnd::Refused { status: 489, .. },
            ..
        }
    ));
    // A want without its url and sha256 (12.4): 400.
    let bad = subscribe(&ua, &to, fleet::EVENT, b"want=2026.12.2\n".to_vec()).await;
    assert!(matches!(
        next(&mut events, bad).await,
        SubscriptionEvent::Terminated {
            reason: SubscriptionEnd::Refused { status: 400, .. },
            ..
        }
    ));

    // Report only, from another subscriber (its events apart): the state
    // at once.
    let (watching_ua, mut watching) = subscriber().await;
    let watcher = subscribe(&watching_ua, &to, fleet::EVENT, Vec::new()).await;
    let (first, _) = states_until_end(&mut watching, watcher, Some(UpdateState::Idle)).await;
    let s = &first[0];
    assert_eq!(
        (s.version.as_str(), s.slot.as_str(), s.compatible.as_str()),
        (OLD, "A", "sipsensor-sim")
    );

    // The want: every step on both subscriptions, then the reboot ends them.
    let updater = subscribe(&ua, &to, fleet::EVENT, want_body(NEW)).await;
    let (states, end) = states_until_end(&mut events, updater, None).await;
    let updates: Vec<UpdateState> = states.iter().map(|s| s.update).collect();
    use UpdateState::*;
    assert_eq!(
        updates,
        [Downloading, Installing, Installed, Rebooting, Rebooting]
    );
    assert!(states.iter().all(|s| s.target.as_deref() == Some(NEW)));
    assert_eq!(
        end,
        Some(SubscriptionEnd::ByNotifier {
            reason: Some("deactivated".into()),
            retry_after: None
        })
    );
    let (watched, end) = states_until_end(&mut watching, watcher, None).await;
    assert_eq!(watched.last().map(|s| s.update), Some(Rebooting));
    assert!(matches!(end, Some(SubscriptionEnd::ByNotifier { .. })));

    // Back on the same port after the reboot, a new user agent: the new
    // version on the other slot, in trial then good.
    tokio::time::sleep(step * 2).await;
    let again = subscribe(&ua, &to, fleet::EVENT, want_body(NEW)).await;
    let (states, _) = states_until_end(&mut events, again, Some(Good)).await;
    let s = states.last().unwrap();
    assert_eq!((s.version.as_str(), s.slot.as_str()), (NEW, "B"));
    assert!(states.iter().all(|s| matches!(s.update, Trial | Good)));
}
