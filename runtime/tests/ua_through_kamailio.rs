//! Our user agent against a real Kamailio (`deploy/kamailio/kamailio.cfg`)
//! on loopback: REGISTER with digest auth, an INVITE routed by Kamailio's
//! location lookup to another registered UA of ours, a re-INVITE along the
//! Record-Route, BYE; over UDP, TCP and TLS (Kamailio's tls module with a
//! throw-away CA: our UAs verify Kamailio's certificate, Kamailio ours
//! when it relays the INVITE to the callee's TLS listener). Clear-text
//! traffic is captured by tshark and fails on any malformed packet. And
//! the fleet subscription (docs/protocol.md 12.1): SUBSCRIBE routed to the
//! sensor's registered contact, NOTIFY back along the Record-Route,
//! refresh, unsubscribe.
//!
//! Needs `kamailio`, `tshark` and Kamailio's tls module (Debian
//! `kamailio-tls-modules`); without them the test says so and skips,
//! unless SIPSENSOR_CI=1.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sipsensor_protocol::{
    EndReason, EventPackage, IdGenerator, LiteralsOnly, LocalEndpoint, NotifyState, Password,
    RegistrationConfig, RegistrationEvent, SubscriptionEnd, SubscriptionEvent, Transport, UaConfig,
    UaEvent, UserAgent, fleet,
};
use sipsensor_runtime::sip_transport::{NetConfig, Network, TlsConfig, tls};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use sipsensor_testkit::pki::TestCa;
use sipsensor_testkit::{
    Kamailio, KamailioOptions, KamailioTls, Tshark, TsharkOptions, in_ci, require_capture,
    require_tool,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

struct Peer {
    handle: UaHandle,
    events: mpsc::Receiver<UaEvent>,
}

/// UDP, TCP and a TLS listener on loopback, with a certificate from `ca`
/// for 127.0.0.1, trusting only `ca`.
fn net_config(ca: &TestCa) -> NetConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let issued = ca.issue(&["127.0.0.1"]);
    let identity = tls::Identity {
        certificate: issued.certificate.as_bytes(),
        private_key: issued.private_key.as_bytes(),
    };
    let ca = ca.certificate_pem();
    let tls = TlsConfig::from_pem(Some(any), identity, ca.as_bytes()).unwrap();
    NetConfig {
        tls: Some(tls),
        ..NetConfig::udp_and_tcp(any)
    }
}

/// Kamailio's TLS files, signed by `ca`, in `dir`.
fn kamailio_tls(ca: &TestCa, dir: &std::path::Path) -> KamailioTls {
    let issued = ca.issue(&["127.0.0.1"]);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    KamailioTls {
        certificate: write("kamailio.crt", &issued.certificate),
        private_key: write("kamailio.key", &issued.private_key),
        ca_file: write("ca.crt", &ca.certificate_pem()),
    }
}

/// Kamailio's tls module is a separate Debian package.
fn tls_module_present() -> bool {
    let present = std::path::Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so")
        .exists()
        || std::path::Path::new("/usr/lib/kamailio/modules/tls.so").exists();
    if !present {
        assert!(!in_ci(), "kamailio-tls-modules is not installed");
        eprintln!("skipping TLS: kamailio-tls-modules is not installed");
    }
    present
}

impl Peer {
    async fn start(
        kamailio: &Kamailio,
        user: &str,
        password: &str,
        transport: Transport,
        ca: &TestCa,
        packages: Vec<EventPackage>,
    ) -> Peer {
        let (network, incoming) = Network::bind(net_config(ca)).await.unwrap();
        let local = LocalEndpoint::new(transport, network.local_addr(transport).unwrap());
        let proxy = match transport {
            Transport::Udp => format!("sip:{}", kamailio.addr()),
            Transport::Tcp => format!("sip:{};transport=tcp", kamailio.addr()),
            Transport::Tls => format!("sip:{};transport=tls", kamailio.tls_addr().unwrap()),
        };
        let mut config = UaConfig::new(local.clone(), kamailio.aor(user));
        config.outbound_proxy = Some(proxy.clone());
        config.credentials = Some((user.into(), Password::new(password)));
        config.event_packages = packages;
        let ua =
            UserAgent::new(config, IdGenerator::from_entropy(), Box::new(LiteralsOnly)).unwrap();
        let (handle, events, _task) = ua_driver::spawn(ua, network, incoming);
        let mut registration = RegistrationConfig::new(
            format!("sip:{}", kamailio.domain()),
            kamailio.aor(user),
            user,
            Password::new(password),
            local,
        );
        registration.outbound_proxy = Some(proxy);
        registration.expires = 300;
        handle
            .with(move |ua, now| ua.register(registration, now))
            .await
            .unwrap()
            .unwrap();
        let mut peer = Peer { handle, events };
        let registered = peer
            .until(|e| {
                matches!(
                    e,
                    UaEvent::Registration(RegistrationEvent::Registered { .. })
                )
            })
            .await;
        assert!(registered.is_some(), "{user} registers through Kamailio");
        peer
    }

    /// The first event matching `want`, within 10 s; others are skipped.
    async fn until(&mut self, want: impl Fn(&UaEvent) -> bool) -> Option<UaEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let event = timeout(deadline - tokio::time::Instant::now(), self.events.recv())
                .await
                .ok()??;
            if let UaEvent::Registration(RegistrationEvent::Failed { reason }) = &event {
                panic!("registration failed: {reason}");
            }
            if want(&event) {
                return Some(event);
            }
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn register_call_reinvite_and_bye_through_kamailio() {
    let tools = [require_tool("kamailio"), require_capture()];
    if !tools.iter().all(|&t| t) {
        return;
    }
    let ca = TestCa::new("interop CA");
    let files = tempfile::tempdir().unwrap();
    let mut transports = vec![Transport::Udp, Transport::Tcp];
    if tls_module_present() {
        transports.push(Transport::Tls);
    }
    for transport in transports {
        let mut options = KamailioOptions::default()
            .with_subscriber("sensor-1", "s3cret")
            .with_subscriber("collector", "c0llect");
        if transport == Transport::Tls {
            options.tls = Some(kamailio_tls(&ca, files.path()));
        }
        let kamailio = Kamailio::start(options).unwrap();
        // Over TLS there is no clear text for tshark to check.
        let capture = (transport != Transport::Tls)
            .then(|| Tshark::start(TsharkOptions::sip(&[kamailio.addr().port()])).unwrap());
        let mut sensor = Peer::start(&kamailio, "sensor-1", "s3cret", transport, &ca, vec![]).await;
        let mut collector =
            Peer::start(&kamailio, "collector", "c0llect", transport, &ca, vec![]).await;

        // The sensor calls the collector's AOR: Kamailio challenges (407),
        // then finds the collector by location lookup.
        let to = kamailio.aor("collector");
        let call = sensor
            .handle
            .with(move |ua, now| ua.call(&to, b"v=0 offer".to_vec(), now))
            .await
            .unwrap()
            .unwrap();
        let Some(UaEvent::IncomingCall { session, offer, .. }) = collector
            .until(|e| matches!(e, UaEvent::IncomingCall { .. }))
            .await
        else {
            panic!(
                "{transport}: the collector is not reached: {}",
                kamailio.log()
            );
        };
        assert_eq!(offer, b"v=0 offer");
        collector
            .handle
            .with(move |ua, now| ua.accept(session, b"v=0 answer".to_vec(), now))
            .await
            .unwrap()
            .unwrap();
        let answered = sensor
            .until(|e| matches!(e, UaEvent::Answered { .. }))
            .await;
        assert_eq!(
            answered,
            Some(UaEvent::Answered {
                session: call,
                answer: b"v=0 answer".to_vec()
            })
        );
        assert!(
            collector
                .until(|e| matches!(e, UaEvent::Confirmed { .. }))
                .await
                .is_some()
        );

        // The collector halves the rate: a re-INVITE along the route set.
        collector
            .handle
            .with(move |ua, now| ua.reinvite(session, b"v=0 half".to_vec(), now))
            .await
            .unwrap()
            .unwrap();
        let Some(UaEvent::ReofferReceived { offer, .. }) = sensor
            .until(|e| matches!(e, UaEvent::ReofferReceived { .. }))
            .await
        else {
            panic!("{transport}: no re-INVITE reached the sensor");
        };
        assert_eq!(offer, b"v=0 half");
        sensor
            .handle
            .with(move |ua, now| ua.answer_reoffer(call, Ok(b"v=0 half ok".to_vec()), now))
            .await
            .unwrap()
            .unwrap();
        assert!(
            collector
                .until(|e| matches!(e, UaEvent::ReofferAnswered { .. }))
                .await
                .is_some()
        );

        sensor
            .handle
            .with(move |ua, now| ua.hangup(call, now))
            .await
            .unwrap()
            .unwrap();
        assert!(
            collector
                .until(|e| matches!(
                    e,
                    UaEvent::Ended {
                        reason: EndReason::RemoteBye,
                        ..
                    }
                ))
                .await
                .is_some()
        );
        unregister(&mut sensor, &mut collector).await;
        if let Some(capture) = capture {
            let capture = capture.finish().unwrap();
            assert!(
                capture.count("sip.Method == \"INVITE\"").unwrap() >= 3,
                "{transport}"
            );
        }
    }
}

/// Unregisters both; Kamailio answers 200 with no bindings left.
async fn unregister(sensor: &mut Peer, collector: &mut Peer) {
    for peer in [sensor, collector] {
        peer.handle
            .with(|ua, now| ua.unregister(now))
            .await
            .unwrap();
        assert!(
            peer.until(|e| *e == UaEvent::Registration(RegistrationEvent::Unregistered))
                .await
                .is_some()
        );
    }
}

/// The first subscription event matching `want`.
async fn until_sub(
    peer: &mut Peer,
    want: impl Fn(&SubscriptionEvent) -> bool,
) -> Option<SubscriptionEvent> {
    match peer
        .until(|e| matches!(e, UaEvent::Subscription(s) if want(s)))
        .await?
    {
        UaEvent::Subscription(s) => Some(s),
        _ => None,
    }
}

/// docs/protocol.md 12.1 through Kamailio's default route: the collector
/// subscribes to the sensor's AOR (Kamailio challenges it, then finds the
/// sensor by location lookup and record-routes), the sensor accepts and
/// notifies back along the route set; a state change, a refresh with a
/// want, and the unsubscribe, over UDP, TCP and TLS.
#[tokio::test(flavor = "current_thread")]
async fn fleet_subscription_through_kamailio() {
    if !require_tool("kamailio") {
        return;
    }
    let ca = TestCa::new("interop CA");
    let files = tempfile::tempdir().unwrap();
    let mut transports = vec![Transport::Udp, Transport::Tcp];
    if tls_module_present() {
        transports.push(Transport::Tls);
    }
    let idle = b"version=1\nagent=0.1.0\ncompatible=c\nslot=A\nupdate=idle\n".to_vec();
    let busy = b"version=1\nagent=0.1.0\ncompatible=c\nslot=A\nupdate=downloading\n\
                 target=2\nprogress=5\n"
        .to_vec();
    for transport in transports {
        let mut options = KamailioOptions::default()
            .with_subscriber("sensor-1", "s3cret")
            .with_subscriber("collector", "c0llect");
        if transport == Transport::Tls {
            options.tls = Some(kamailio_tls(&ca, files.path()));
        }
        let kamailio = Kamailio::start(options).unwrap();
        let packages = |notifier| vec![fleet::event_package(notifier)];
        let mut sensor = Peer::start(
            &kamailio,
            "sensor-1",
            "s3cret",
            transport,
            &ca,
            packages(true),
        )
        .await;
        let mut collector = Peer::start(
            &kamailio,
            "collector",
            "c0llect",
            transport,
            &ca,
            packages(false),
        )
        .await;

        let to = kamailio.aor("sensor-1");
        let sub = collector
            .handle
            .with(move |ua, now| ua.subscribe(&to, fleet::EVENT, Vec::new(), 3600, now))
            .await
            .unwrap()
            .unwrap();
        let Some(SubscriptionEvent::Incoming {
            subscription: served,
            expires,
            ..
        }) = until_sub(&mut sensor, |e| {
            matches!(e, SubscriptionEvent::Incoming { .. })
        })
        .await
        else {
            panic!(
                "{transport}: no SUBSCRIBE reached the sensor: {}",
                kamailio.log()
            );
        };
        assert_eq!(expires, 3600);
        let body = idle.clone();
        sensor
            .handle
            .with(move |ua, now| ua.accept_subscription(served, 600, body, now))
            .await
            .unwrap()
            .unwrap();
        let active = until_sub(&mut collector, |e| {
            matches!(e, SubscriptionEvent::Active { .. })
        });
        assert_eq!(
            active.await,
            Some(SubscriptionEvent::Active {
                subscription: sub,
                expires: 600
            }),
            "{transport}"
        );
        let notified = |want: Vec<u8>| move |e: &SubscriptionEvent| matches!(e, SubscriptionEvent::Notified { body, .. } if *body == want);
        assert!(
            until_sub(&mut collector, notified(idle.clone()))
                .await
                .is_some()
        );

        // A change of state, along the route set.
        let body = busy.clone();
        sensor
            .handle
            .with(move |ua, now| ua.notify(served, body, NotifyState::Active, now))
            .await
            .unwrap()
            .unwrap();
        let got = until_sub(&mut collector, notified(busy.clone())).await;
        assert!(got.is_some(), "{transport}: {}", kamailio.log());

        // A refresh with a want; the sensor hears it and notifies again.
        let want = fleet::FleetWant {
            version: "2".into(),
            url: "https://collector.example.net:8443/bundles/b.raucb".into(),
            sha256: [0x5a; 32],
            size: 1234,
            reboot: fleet::RebootPolicy::Window,
        }
        .to_body()
        .unwrap();
        let body = want.clone();
        collector
            .handle
            .with(move |ua, now| ua.refresh_subscription(sub, Some(body), now))
            .await
            .unwrap()
            .unwrap();
        let refreshed = until_sub(&mut sensor, |e| {
            matches!(e, SubscriptionEvent::Refreshed { .. })
        });
        let Some(SubscriptionEvent::Refreshed { body, .. }) = refreshed.await else {
            panic!("{transport}: the refresh did not reach the sensor");
        };
        assert_eq!(body, want);
        assert!(
            until_sub(&mut collector, notified(busy.clone()))
                .await
                .is_some()
        );

        // Unsubscribe: both ends let go.
        collector
            .handle
            .with(move |ua, now| ua.unsubscribe(sub, now))
            .await
            .unwrap()
            .unwrap();
        let ended = |e: &SubscriptionEvent| matches!(e, SubscriptionEvent::Terminated { .. });
        let Some(SubscriptionEvent::Terminated { reason, .. }) =
            until_sub(&mut sensor, ended).await
        else {
            panic!("{transport}: the sensor kept the subscription");
        };
        assert_eq!(reason, SubscriptionEnd::Unsubscribed);
        let Some(SubscriptionEvent::Terminated { reason, .. }) =
            until_sub(&mut collector, ended).await
        else {
            panic!("{transport}: the collector kept the subscription");
        };
        assert_eq!(reason, SubscriptionEnd::Local);
        unregister(&mut sensor, &mut collector).await;
    }
}

/// Kamailio with a certificate from another CA: our client refuses it
/// before sending a byte of SIP; with the right CA the same request gets
/// through, answered on the connection it opened.
#[tokio::test(flavor = "current_thread")]
async fn a_kamailio_certificate_from_another_ca_is_refused() {
    if !(require_tool("kamailio") && tls_module_present()) {
        return;
    }
    let ours = TestCa::new("interop CA");
    let stranger = TestCa::new("stranger CA");
    let files = tempfile::tempdir().unwrap();
    let kamailio = Kamailio::start(KamailioOptions {
        tls: Some(kamailio_tls(&stranger, files.path())),
        ..KamailioOptions::default()
    })
    .unwrap();
    let tls_addr = kamailio.tls_addr().unwrap();
    let (net, mut incoming) = Network::bind(net_config(&ours)).await.unwrap();
    let local = net.local_addr(Transport::Tls).unwrap();
    let options_request = |to: SocketAddr, branch: &str| {
        format!(
            "OPTIONS sip:{to};transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=t{branch}\r\n\
             To: <sip:{to}>\r\nCall-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let refused = net
        .send(
            options_request(tls_addr, "a").as_bytes(),
            tls_addr,
            Transport::Tls,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(sipsensor_runtime::sip_transport::NetError::Handshake { .. })
        ),
        "{refused:?}"
    );
    assert_eq!(net.stats().tls.handshakes_failed, 1);
    drop(kamailio);

    // The same Kamailio set-up with our CA's certificate answers.
    let kamailio = Kamailio::start(KamailioOptions {
        tls: Some(kamailio_tls(&ours, files.path())),
        ..KamailioOptions::default()
    })
    .unwrap();
    let tls_addr = kamailio.tls_addr().unwrap();
    net.send(
        options_request(tls_addr, "b").as_bytes(),
        tls_addr,
        Transport::Tls,
    )
    .await
    .unwrap();
    let answer = timeout(Duration::from_secs(5), incoming.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (answer.source(), answer.transport()),
        (tls_addr, Transport::Tls)
    );
}
