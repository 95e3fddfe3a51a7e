//! Our user agent against a real Kamailio (`deploy/kamailio/kamailio.cfg`)
//! on loopback: REGISTER with digest auth, an INVITE routed by Kamailio's
//! location lookup to another registered UA of ours, a re-INVITE along the
//! Record-Route, BYE; over UDP and TCP. Traffic is captured by tshark and
//! fails on any malformed packet.
//!
//! Needs `kamailio` and `tshark`; without them the test says so and skips,
//! unless SIPSENSOR_CI=1.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sipsensor_protocol::{
    EndReason, IdGenerator, LiteralsOnly, LocalEndpoint, Password, RegistrationConfig,
    RegistrationEvent, Transport, UaConfig, UaEvent, UserAgent,
};
use sipsensor_runtime::sip_transport::{NetConfig, Network};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use sipsensor_testkit::{
    Kamailio, KamailioOptions, Tshark, TsharkOptions, require_capture, require_tool,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

struct Peer {
    handle: UaHandle,
    events: mpsc::Receiver<UaEvent>,
}

impl Peer {
    async fn start(kamailio: &Kamailio, user: &str, password: &str, transport: Transport) -> Peer {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (network, incoming) = Network::bind(NetConfig::udp_and_tcp(any)).await.unwrap();
        let local = LocalEndpoint::new(transport, network.local_addr(transport).unwrap());
        let proxy = match transport {
            Transport::Udp => format!("sip:{}", kamailio.addr()),
            Transport::Tcp => format!("sip:{};transport=tcp", kamailio.addr()),
            Transport::Tls => unreachable!("this test runs Kamailio without TLS"),
        };
        let mut config = UaConfig::new(local.clone(), kamailio.aor(user));
        config.outbound_proxy = Some(proxy.clone());
        config.credentials = Some((user.into(), Password::new(password)));
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
    for transport in [Transport::Udp, Transport::Tcp] {
        let kamailio = Kamailio::start(
            KamailioOptions::default()
                .with_subscriber("sensor-1", "s3cret")
                .with_subscriber("collector", "c0llect"),
        )
        .unwrap();
        let capture = Tshark::start(TsharkOptions::sip(&[kamailio.addr().port()])).unwrap();
        let mut sensor = Peer::start(&kamailio, "sensor-1", "s3cret", transport).await;
        let mut collector = Peer::start(&kamailio, "collector", "c0llect", transport).await;

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
        // Unregister both; Kamailio answers 200 with no bindings left.
        for peer in [&mut sensor, &mut collector] {
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
        let capture = capture.finish().unwrap();
        assert!(
            capture.count("sip.Method == \"INVITE\"").unwrap() >= 3,
            "{transport}"
        );
    }
}
