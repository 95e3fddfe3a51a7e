//! The fleet subscription end to end on the agent binary (docs/protocol.md
//! 12.1-12.5): the protocol crate's user agent plays the collector on
//! 127.0.0.1 and subscribes (answering the sensor's digest challenge with
//! its `sip.calling` credential); the first NOTIFY carries the board's
//! state; a want with a wrong SHA-256 is downloaded from a local HTTPS
//! server (a throw-away CA), reported `failed` and its file deleted; a
//! right one is downloaded (progress NOTIFYs at most one per 5 s),
//! verified and handed to the host's real `rauc install`, which refuses
//! (no RAUC system here): `failed` with RAUC's words. Another event
//! package gets 489, a body against 12.2 gets 400, a stranger's forged
//! SUBSCRIBE and NOTIFY change nothing, a 17th subscription gets 503, and
//! SIGTERM ends every subscription with `terminated;reason=deactivated`.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};
use sipsensor_agent::session::fleet::MAX_SUBSCRIPTIONS;
use sipsensor_protocol::fleet::{self, FleetState, FleetWant, RebootPolicy, UpdateState};
use sipsensor_protocol::{
    EventPackage, IdGenerator, LiteralsOnly, LocalEndpoint, Password, SubscriptionEnd,
    SubscriptionEvent, SubscriptionId, SubscriptionStatus, Transport, UaConfig, UaEvent, UserAgent,
};
use sipsensor_runtime::sip_transport::{NetConfig, Network};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use sipsensor_testkit::pki::TestCa;
use tokio::sync::mpsc;
use tokio::time::timeout;

#[path = "support/agent_process.rs"]
mod agent_process;
#[path = "support/bundle_server.rs"]
mod bundle_server;
use agent_process::Agent;
use bundle_server::{Answer, serve};

/// The host's `rauc`, or why the test cannot run: a skip outside CI.
fn rauc_present() -> bool {
    let found = Command::new("rauc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("SIPSENSOR_CI").is_some() {
        panic!("SIPSENSOR_CI is set but `rauc` is not installed");
    }
    found
}

/// A port nobody uses now, for the agent's SIP socket.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The collector: the protocol crate's user agent with the fleet package
/// (and another one, to be refused) and the `sip.calling` credential.
async fn collector() -> (UaHandle, mpsc::Receiver<UaEvent>) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (network, incoming) = Network::bind(NetConfig::udp_and_tcp(any)).await.unwrap();
    let addr = network.local_addr(Transport::Udp).unwrap();
    let mut config = UaConfig::new(
        LocalEndpoint::new(Transport::Udp, addr),
        "sip:collector@127.0.0.1",
    );
    config.event_packages = vec![
        fleet::event_package(false),
        EventPackage {
            name: "presence".into(),
            content_type: "application/pidf+xml".into(),
            notifier: false,
            default_expires: 3600,
            check_subscribe_body: None,
            check_notify_body: None,
        },
    ];
    let mut ua = UserAgent::new(config, IdGenerator::seeded(1), Box::new(LiteralsOnly)).unwrap();
    ua.set_credentials(Some(("collector".into(), Password::new("calling-secret"))));
    let (handle, events, task) = ua_driver::spawn(ua, network, incoming);
    // The driver runs as long as the test.
    std::mem::forget(task);
    (handle, events)
}

/// The collector's SUBSCRIBE to `sensor` for an hour.
async fn subscribe(
    collector: &UaHandle,
    sensor: &str,
    event: &str,
    body: Vec<u8>,
) -> SubscriptionId {
    let (to, event) = (sensor.to_owned(), event.to_owned());
    collector
        .with(move |ua, now| ua.subscribe(&to, &event, body, 3600, now))
        .await
        .unwrap()
        .unwrap()
}

/// The next subscription event, within `within`.
async fn next_subscription(
    events: &mut mpsc::Receiver<UaEvent>,
    within: Duration,
) -> SubscriptionEvent {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let e = timeout(deadline - tokio::time::Instant::now(), events.recv())
            .await
            .expect("a subscription event in time")
            .unwrap();
        if let UaEvent::Subscription(e) = e {
            return e;
        }
    }
}

/// The state of the next NOTIFY of `sub` (skipping the 2xx's event), and
/// when it came.
async fn next_state(
    events: &mut mpsc::Receiver<UaEvent>,
    sub: SubscriptionId,
) -> (FleetState, Instant) {
    loop {
        match next_subscription(events, Duration::from_secs(30)).await {
            SubscriptionEvent::Notified {
                subscription,
                state,
                body,
            } if subscription == sub => {
                assert_eq!(state.status, SubscriptionStatus::Active, "{state:?}");
                assert!(state.expires.is_some_and(|e| e <= 3600), "{state:?}");
                let fleet = FleetState::parse(&body).unwrap();
                // The stranger's want never reaches the updater.
                assert_ne!(fleet.target.as_deref(), Some("6.6.6"), "{fleet:?}");
                return (fleet, Instant::now());
            }
            SubscriptionEvent::Active { .. } => {}
            other => panic!("expected a NOTIFY of {sub}, got {other:?}"),
        }
    }
}

/// The states about `target` NOTIFYed until one with `update` in
/// `until`. (A refresh is answered at once with the last state, RFC 6665
/// 4.2.1.2: the one about the previous target.)
async fn states_until(
    events: &mut mpsc::Receiver<UaEvent>,
    sub: SubscriptionId,
    target: &str,
    until: &[UpdateState],
) -> Vec<(FleetState, Instant)> {
    let mut seen = Vec::new();
    loop {
        let (state, at) = next_state(events, sub).await;
        if state.target.as_deref() != Some(target) {
            assert!(seen.is_empty(), "{state:?} after {seen:?}");
            continue;
        }
        let done = until.contains(&state.update);
        seen.push((state, at));
        if done {
            return seen;
        }
    }
}

/// A subscription the collector's user agent refused, with the status.
async fn refused_status(events: &mut mpsc::Receiver<UaEvent>, sub: SubscriptionId) -> u16 {
    loop {
        match next_subscription(events, Duration::from_secs(10)).await {
            SubscriptionEvent::Terminated {
                subscription,
                reason: SubscriptionEnd::Refused { status, .. },
            } if subscription == sub => return status,
            SubscriptionEvent::Notified { .. } => {}
            other => panic!("expected {sub} refused, got {other:?}"),
        }
    }
}

/// The status line answering a raw `request` sent from a stranger's socket.
fn stranger_sends(agent: SocketAddr, request: &str) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let from = socket.local_addr().unwrap();
    let request = request.replace("FROM", &from.to_string());
    socket.send_to(request.as_bytes(), agent).unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..25 {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0") {
                return text.lines().next().unwrap_or_default().to_owned();
            }
        }
    }
    "no answer".into()
}

fn want(version: &str, url: &str, data: &[u8], sha256: [u8; 32]) -> Vec<u8> {
    FleetWant {
        version: version.into(),
        url: url.into(),
        sha256,
        size: data.len() as u64,
        reboot: RebootPolicy::Now,
    }
    .to_body()
    .unwrap()
}

fn bundle_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.contains(".raucb"))
                .collect()
        })
        .unwrap_or_default()
}

fn config(dir: &Path, port: u16) -> String {
    format!(
        "identity:\n  aor: sip:sensor-0001@127.0.0.1\nsip:\n  transport: udp\n  \
         bind: 127.0.0.1:{port}\n  callers: [collector]\n  ca_file: {dir}/ca.pem\n\
         secrets_file: {dir}/secrets.yaml\nstream:\n  rate: 10\nsensors:\n  - type: simulated\n    \
         name: sim\n    interval_ms: 100\n    channels: [{{name: wave, unit: V}}]\n\
         spool:\n  dir: {dir}/spool\nupdate:\n  enabled: true\n  dir: {dir}/update\n  \
         ota_dir: {dir}/ota\n",
        dir = dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_want_is_downloaded_checked_and_refused_by_the_host_s_rauc() {
    if !rauc_present() {
        eprintln!("skipped: `rauc` is not installed (SIPSENSOR_CI unset)");
        return;
    }
    let ca = TestCa::new("site CA");
    // 200 kB that are not all alike; the first download is quick (and
    // its SHA-256 wrong), the second lasts about 6.5 s.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let pace = Answer::Paced {
        chunks: 8,
        pause: Duration::from_millis(800),
    };
    let server = serve(&ca, data.clone().into(), vec![Answer::Honour, pace]).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("ca.pem"), ca.certificate_pem()).unwrap();
    let secrets = root.join("secrets.yaml");
    std::fs::write(&secrets, "callers:\n  collector: calling-secret\n").unwrap();
    std::fs::set_permissions(
        &secrets,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let port = free_udp_port();
    let agent_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (collector, mut events) = collector().await;
    let agent = Agent::start(&root.join("agent.yaml"), &config(root, port));
    let sensor = format!("sip:sensor-0001@127.0.0.1:{port}");

    // Subscribe (report only) until the agent listens; the challenge is
    // answered by the collector's user agent.
    let (sub, first) = 'subscribed: {
        for _ in 0..40 {
            let sub = subscribe(&collector, &sensor, fleet::EVENT, Vec::new()).await;
            loop {
                match next_subscription(&mut events, Duration::from_secs(40)).await {
                    SubscriptionEvent::Active { subscription, .. } if subscription == sub => {}
                    SubscriptionEvent::Notified {
                        subscription, body, ..
                    } if subscription == sub => {
                        break 'subscribed (sub, FleetState::parse(&body).unwrap());
                    }
                    SubscriptionEvent::Terminated { subscription, .. } if subscription == sub => {
                        break;
                    }
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the agent never accepted the subscription");
    };
    assert_eq!(first.update, UpdateState::Idle);
    assert_eq!(first.agent, env!("CARGO_PKG_VERSION"));
    assert_eq!(first.slot, "-", "the host boots no A/B slot");

    // Another event package: 489 (RFC 6665 7.2.2).
    let presence = subscribe(&collector, &sensor, "presence", Vec::new()).await;
    assert_eq!(refused_status(&mut events, presence).await, 489);
    // A body against 12.2 (an upper-case name): 400, nothing changes.
    let broken = subscribe(&collector, &sensor, fleet::EVENT, b"Want=9\n".to_vec()).await;
    assert_eq!(refused_status(&mut events, broken).await, 400);

    // A stranger, with the collector's From and a want of its own: the
    // SUBSCRIBE is challenged, the NOTIFY matches no subscription.
    let url = format!("https://{}/bundles/b.raucb", server.addr);
    let forged_want = String::from_utf8(want("6.6.6", &url, &data, [6; 32])).unwrap();
    let forged_subscribe = format!(
        "SUBSCRIBE {sensor} SIP/2.0\r\nVia: SIP/2.0/UDP FROM;branch=z9hG4bKforged1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:collector@127.0.0.1>;tag=f1\r\nTo: <{sensor}>\r\n\
         Call-ID: forged-1\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:FROM>\r\n\
         Event: sipsensor-fleet\r\nExpires: 3600\r\n\
         Content-Type: application/vnd.sipsensor.fleet\r\nContent-Length: {}\r\n\r\n{forged_want}",
        forged_want.len()
    );
    let answer = stranger_sends(agent_addr, &forged_subscribe);
    assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
    let forged_notify = format!(
        "NOTIFY {sensor} SIP/2.0\r\nVia: SIP/2.0/UDP FROM;branch=z9hG4bKforged2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:collector@127.0.0.1>;tag=f2\r\nTo: <{sensor}>;tag=t2\r\n\
         Call-ID: forged-2\r\nCSeq: 1 NOTIFY\r\nEvent: sipsensor-fleet\r\n\
         Subscription-State: active;expires=600\r\n\
         Content-Type: application/vnd.sipsensor.fleet\r\nContent-Length: {}\r\n\r\n{forged_want}",
        forged_want.len()
    );
    let answer = stranger_sends(agent_addr, &forged_notify);
    assert!(
        answer.starts_with("SIP/2.0 4") || answer.starts_with("SIP/2.0 5"),
        "{answer}"
    );

    // A want whose SHA-256 is not the file's: downloaded, checked,
    // failed, deleted.
    let right: [u8; 32] = Sha256::digest(&data).into();
    let mut wrong = right;
    wrong[0] ^= 1;
    let body = want("2099.2", &url, &data, wrong);
    collector
        .with(move |ua, now| ua.refresh_subscription(sub, Some(body), now))
        .await
        .unwrap()
        .unwrap();
    let seen = states_until(&mut events, sub, "2099.2", &[UpdateState::Failed]).await;
    let (failed, _) = seen.last().unwrap();
    assert_eq!(failed.target.as_deref(), Some("2099.2"), "{seen:?}");
    let reason = failed.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("SHA-256") && reason.contains("deleted"),
        "{reason}"
    );
    assert_eq!(bundle_files(&root.join("update")), Vec::<String>::new());

    // The right one, slowly: progress at most once per 5 s, then the
    // host's rauc refuses it in its own words.
    let body = want("2099.1", &url, &data, right);
    collector
        .with(move |ua, now| ua.refresh_subscription(sub, Some(body), now))
        .await
        .unwrap()
        .unwrap();
    let seen = states_until(
        &mut events,
        sub,
        "2099.1",
        &[UpdateState::Failed, UpdateState::Installed],
    )
    .await;
    let updates: Vec<UpdateState> = seen.iter().map(|(s, _)| s.update).collect();
    let downloading: Vec<Instant> = seen
        .iter()
        .filter(|(s, _)| s.update == UpdateState::Downloading && s.progress.is_some())
        .map(|(_, at)| *at)
        .collect();
    assert!(
        downloading.len() >= 2,
        "a 6.5 s download reports progress at its start and 5 s later: {seen:?}"
    );
    for pair in downloading.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(4500),
            "progress NOTIFYs {:?} apart: {seen:?}",
            pair[1] - pair[0]
        );
    }
    let after_download: Vec<UpdateState> = updates
        .iter()
        .copied()
        .filter(|u| *u != UpdateState::Downloading)
        .collect();
    assert_eq!(
        after_download,
        [
            UpdateState::Downloaded,
            UpdateState::Installing,
            UpdateState::Failed
        ],
        "{seen:?}"
    );
    let (failed, _) = seen.last().unwrap();
    assert_eq!(failed.target.as_deref(), Some("2099.1"));
    let reason = failed.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("rauc install: exit status") && reason.len() > 35,
        "RAUC's own words: {reason}"
    );
    // The bundle went after the install, failed or not.
    assert_eq!(bundle_files(&root.join("update")), Vec::<String>::new());

    // A sensor keeps 16 subscriptions; the 17th is refused (503) rather
    // than let a collector's restarts fill its memory.
    let mut subs = vec![sub];
    for _ in 1..MAX_SUBSCRIPTIONS {
        let more = subscribe(&collector, &sensor, fleet::EVENT, Vec::new()).await;
        next_state(&mut events, more).await;
        subs.push(more);
    }
    let one_too_many = subscribe(&collector, &sensor, fleet::EVENT, Vec::new()).await;
    assert_eq!(refused_status(&mut events, one_too_many).await, 503);

    // SIGTERM: the last NOTIFY ends every subscription, deactivated.
    kill(
        Pid::from_raw(i32::try_from(agent.0.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    while !subs.is_empty() {
        match next_subscription(&mut events, Duration::from_secs(5)).await {
            SubscriptionEvent::Terminated {
                subscription,
                reason: SubscriptionEnd::ByNotifier { reason, .. },
            } if subs.contains(&subscription) => {
                assert_eq!(reason.as_deref(), Some("deactivated"));
                subs.retain(|s| *s != subscription);
            }
            SubscriptionEvent::Notified { .. } => {}
            other => panic!("expected the last NOTIFYs, got {other:?}"),
        }
    }
    drop(agent);
}
