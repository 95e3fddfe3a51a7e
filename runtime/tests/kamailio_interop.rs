//! Interop against a real Kamailio running `deploy/kamailio/kamailio.cfg`
//! on loopback, with SIPp as the reference UA and our transport layer.
//! Every test captures its traffic with tshark and fails if Wireshark
//! flags any packet as malformed.
//!
//! Needs `kamailio`, `sipp` (Debian `sip-tester`) and `tshark`; without
//! them each test says so and skips, unless SIPSENSOR_CI=1.

// Test code: helpers may unwrap like the tests they serve.
#![allow(clippy::unwrap_used)]

use sipsensor_protocol::{
    Destination, LocalEndpoint, ResponseRoute, Transport, reflexive_address, response_route,
};
use sipsensor_runtime::sip_transport::{Incoming, NetConfig, Network};
use sipsensor_testkit::{
    Kamailio, KamailioOptions, Sipp, SippOptions, SippOutcome, SippTransport, Tshark,
    TsharkOptions, require_capture, require_tool, scenario,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

fn tools_present() -> bool {
    // Evaluate all three so the skip message names every missing tool.
    let found = [
        require_tool("kamailio"),
        require_tool("sipp"),
        require_capture(),
    ];
    found.iter().all(|&f| f)
}

fn register(
    kamailio: &Kamailio,
    user: &str,
    auth: (&str, &str),
    transport: SippTransport,
    expires: u32,
) -> SippOutcome {
    let mut options = SippOptions::new(scenario("register_auth.xml"))
        .key("contact_port", 5999)
        .key("expires", expires);
    options.remote = Some(kamailio.addr());
    options.service = Some(user.into());
    options.auth = Some((auth.0.into(), auth.1.into()));
    options.transport = transport;
    Sipp::run(&options).unwrap()
}

fn final_response(outcome: &SippOutcome) -> Option<u16> {
    outcome
        .log
        .lines()
        .find_map(|l| l.trim().strip_prefix("final response "))
        .and_then(|code| code.trim().parse().ok())
}

#[test]
fn register_with_digest_auth() {
    if !tools_present() {
        return;
    }
    let kamailio = Kamailio::start(
        KamailioOptions::default()
            .with_subscriber("alice", "alice-pw:1")
            .with_subscriber("bob", "bob-pw"),
    )
    .unwrap();
    let capture = Tshark::start(TsharkOptions::sip(&[kamailio.addr().port()])).unwrap();

    // (case, user, credentials, transport, Expires, final response)
    let udp = SippTransport::Udp;
    let cases = [
        (
            "right password, UDP",
            "alice",
            ("alice", "alice-pw:1"),
            udp,
            300,
            200,
        ),
        (
            "right password, TCP",
            "alice",
            ("alice", "alice-pw:1"),
            SippTransport::Tcp,
            300,
            200,
        ),
        // Re-challenged: RFC 3261 22.2 lets the UA retry with other credentials.
        ("wrong password", "alice", ("alice", "nope"), udp, 300, 401),
        ("unknown user", "mallory", ("mallory", "x"), udp, 300, 401),
        // Bob's valid credentials may not register Alice's address of record.
        (
            "identity mismatch",
            "alice",
            ("bob", "bob-pw"),
            udp,
            300,
            403,
        ),
        // RFC 3261 10.3 step 7: below the registrar's minimum of 60 s.
        (
            "interval too brief",
            "alice",
            ("alice", "alice-pw:1"),
            udp,
            30,
            423,
        ),
    ];
    for (name, user, auth, transport, expires, expected) in cases {
        let outcome = register(&kamailio, user, auth, transport, expires);
        assert!(outcome.success(), "{name}: {}", outcome.report());
        assert_eq!(
            final_response(&outcome),
            Some(expected),
            "{name}: {}",
            outcome.report()
        );
    }
    // The failed attempt left one log line, without the password.
    let log = kamailio.log();
    assert!(log.contains("auth failed for 'alice'"), "{log}");
    assert!(!log.contains("nope"));

    let capture = capture.finish().unwrap();
    // 6 registrations, each a REGISTER without and one with credentials.
    assert_eq!(capture.count("sip.Method == \"REGISTER\"").unwrap(), 12);
}

#[test]
fn invite_is_authenticated_and_routed_by_location() {
    if !tools_present() {
        return;
    }
    let kamailio = Kamailio::start(
        KamailioOptions::default()
            .with_subscriber("alice", "alice-pw")
            .with_subscriber("bob", "bob-pw"),
    )
    .unwrap();
    // Alice's phone: a SIPp UAS; a second SIPp registers it for her.
    let mut uas_options = SippOptions::new(scenario("uas_answer.xml"));
    uas_options.timeout = Duration::from_secs(15);
    let uas = Sipp::spawn(&uas_options).unwrap();
    let uas_port = uas.local_addr().port();
    let mut register = SippOptions::new(scenario("register_auth.xml"))
        .key("contact_port", uas_port)
        .key("expires", 300);
    register.remote = Some(kamailio.addr());
    register.service = Some("alice".into());
    register.auth = Some(("alice".into(), "alice-pw".into()));
    let register_port = sipsensor_testkit::ports::free_udp_port(register.local_ip).unwrap();
    register.local_port = Some(register_port);

    let mut caller = SippOptions::new(scenario("uac_invite_auth.xml")).key("caller", "bob");
    caller.remote = Some(kamailio.addr());
    caller.service = Some("alice".into());
    caller.auth = Some(("bob".into(), "bob-pw".into()));
    let caller_port = sipsensor_testkit::ports::free_udp_port(caller.local_ip).unwrap();
    caller.local_port = Some(caller_port);

    let capture = Tshark::start(TsharkOptions::sip(&[
        kamailio.addr().port(),
        uas_port,
        register_port,
        caller_port,
    ]))
    .unwrap();

    let registered = Sipp::run(&register).unwrap();
    assert_eq!(
        final_response(&registered),
        Some(200),
        "{}",
        registered.report()
    );
    let call = Sipp::run(&caller).unwrap();
    assert!(call.success(), "caller: {}", call.report());
    let answered = uas.wait().unwrap();
    assert!(answered.success(), "callee: {}", answered.report());
    // The 407 and the credentials stayed between caller and proxy.
    assert!(call.messages.contains("407 Proxy Authentication Required"));
    assert!(answered.log.contains("Record-Route"), "{}", answered.log);

    let capture = capture.finish().unwrap();
    assert_eq!(
        capture.count("sip.Method == \"BYE\"").unwrap(),
        2,
        "BYE in and out of the proxy"
    );
}

#[test]
fn dispatcher_spreads_calls_and_skips_a_dead_collector() {
    if !tools_present() {
        return;
    }
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let dead = sipsensor_testkit::ports::free_udp_port(ip).unwrap();
    let mut uas_options = SippOptions::new(scenario("uas_answer.xml"));
    uas_options.calls = 2;
    uas_options.timeout = Duration::from_secs(20);
    let collector = Sipp::spawn(&uas_options).unwrap();
    let kamailio = Kamailio::start(KamailioOptions {
        dispatcher: vec![
            format!("sip:127.0.0.1:{dead}"),
            format!("sip:{}", collector.local_addr()),
        ],
        // No OPTIONS probes during the test: SIPp's UAS cannot answer them.
        defines: vec!["DISPATCHER_PING_INTERVAL=0".into()],
        ..KamailioOptions::default().with_subscriber("sensor1", "pw1")
    })
    .unwrap();
    let capture = Tshark::start(TsharkOptions::sip(&[
        kamailio.addr().port(),
        collector.local_addr().port(),
        dead,
    ]))
    .unwrap();

    // Two calls in turn: round robin sends one of them to the dead
    // collector first; after the 3 s no-answer timer it moves on.
    let mut caller = SippOptions::new(scenario("uac_invite_auth.xml")).key("caller", "sensor1");
    caller.remote = Some(kamailio.addr());
    caller.service = Some("collector".into());
    caller.auth = Some(("sensor1".into(), "pw1".into()));
    caller.calls = 2;
    caller.timeout = Duration::from_secs(20);
    let calls = Sipp::run(&caller).unwrap();
    assert!(calls.success(), "caller: {}", calls.report());
    let answered = collector.wait().unwrap();
    assert!(answered.success(), "collector: {}", answered.report());

    let capture = capture.finish().unwrap();
    let to_dead = capture
        .count(&format!(
            "sip.Method == \"INVITE\" && udp.dstport == {dead}"
        ))
        .unwrap();
    assert!(to_dead >= 1, "the dead collector was tried");
}

/// Our sockets and Via rules against Kamailio: a keep-alive OPTIONS over
/// UDP and TCP, IPv4 and IPv6. Kamailio applies RFC 3581 (force_rport), so
/// the 200's top Via tells us our address as it saw it, and the RFC 3261
/// 18.2.2 route for that Via is where the answer really arrived.
#[tokio::test(flavor = "current_thread")]
async fn our_transport_learns_its_address_from_kamailio() {
    if !tools_present() {
        return;
    }
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let kamailio = Kamailio::start(KamailioOptions {
            ip,
            ..KamailioOptions::default()
        })
        .unwrap();
        let capture = Tshark::start(TsharkOptions::sip(&[kamailio.addr().port()])).unwrap();
        let (net, mut rx) = Network::bind(NetConfig::udp_and_tcp(SocketAddr::new(ip, 0)))
            .await
            .unwrap();
        for (n, transport) in [Transport::Udp, Transport::Tcp].into_iter().enumerate() {
            let local = LocalEndpoint::new(transport, net.local_addr(transport).unwrap());
            let sipsensor_protocol::Header::Via(via) = local.via(&format!("z9hG4bKinterop{n}"))
            else {
                unreachable!()
            };
            let target = LocalEndpoint::new(transport, kamailio.addr()).host_port();
            // Built by hand from our internal forms: put IPv6 hosts back in
            // their wire form (sip::ipv6).
            let options = sipsensor_protocol::ipv6_to_wire(&format!(
                "OPTIONS sip:{target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
                 From: <sip:probe@{me}>;tag=t{n}\r\nTo: <sip:{target}>\r\n\
                 Call-ID: interop-{n}@{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                via = sipsensor_protocol::headers::UntypedHeader::value(&via),
                me = local.host_port(),
            ))
            .into_owned();
            net.send(options.as_bytes(), kamailio.addr(), transport)
                .await
                .unwrap();
            let incoming = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("Kamailio answers")
                .unwrap();
            let Incoming::Message { data, source, .. } = incoming else {
                panic!("{incoming:?}")
            };
            assert_eq!(source, kamailio.addr());
            let response = sipsensor_protocol::Response::try_from(data.as_slice()).unwrap();
            assert_eq!(
                response.status_code,
                sipsensor_protocol::StatusCode::OK,
                "{response}"
            );
            let seen = reflexive_address(&response)
                .unwrap()
                .expect("received/rport");
            assert_eq!(seen.ip, ip);
            let route = response_route(&response).unwrap();
            match transport {
                Transport::Udp => {
                    // Same socket both ways: what Kamailio saw is our address.
                    assert_eq!(seen.port, Some(local.addr.port()));
                    assert_eq!(
                        route,
                        ResponseRoute::Datagram {
                            transport,
                            to: Destination::Addr(local.addr),
                            multicast_ttl: None
                        }
                    );
                }
                Transport::Tcp => {
                    // The connection's own port, not our listener's.
                    assert!(seen.port.is_some_and(|p| p != 0));
                    assert!(
                        matches!(route, ResponseRoute::SameConnection { fallback: Some(a), .. } if a == local.addr)
                    );
                    // RFC 5626 3.5.1 keep-alive on that connection.
                    net.ping(kamailio.addr(), Transport::Tcp).await.unwrap();
                    let mut ponged = false;
                    for _ in 0..100 {
                        if net.stats().tcp.pongs == 1 {
                            ponged = true;
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    assert!(ponged, "Kamailio answers a CRLF ping");
                }
                Transport::Tls => unreachable!("TLS is kamailio_tls.rs's"),
            }
        }
        capture.finish().unwrap();
    }
}
