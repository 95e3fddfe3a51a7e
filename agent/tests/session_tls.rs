//! The agent binary over SIP over TLS (RFC 3261 26, RFC 5630) with
//! `sip.listen: false`: it registers over TLS at a registrar whose
//! certificate its CA file verifies, is called on that TLS flow (RFC 5626,
//! RFC 5923), answers with SDES keys (RFC 4568) and streams SRTP
//! (RFC 3711) that only the agreed key opens. And an agent whose CA did
//! not sign the registrar's certificate never gets a REGISTER through.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use sipsensor_agent::config::{self, ConfigFiles};
use sipsensor_agent::session::media::capabilities;
use sipsensor_protocol::{
    IdGenerator, LiteralsOnly, LocalEndpoint, LocalMedia, LocalSdp, MediaSecurity, SrtpContext,
    SrtpPolicy, StreamRole, Transport, UaConfig, UaEvent, UserAgent, apply_answer, make_offer,
    parse_sdp,
};
use sipsensor_runtime::sip_transport::tls::Identity;
use sipsensor_runtime::sip_transport::{NetConfig, Network, TlsConfig};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use sipsensor_testkit::pki::TestCa;
use tokio::sync::mpsc;
use tokio::time::timeout;

#[path = "support/agent_process.rs"]
mod agent_process;
use agent_process::Agent;

async fn next(
    events: &mut mpsc::Receiver<UaEvent>,
    within: Duration,
    want: impl Fn(&UaEvent) -> bool,
) -> Option<UaEvent> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let e = timeout(deadline - tokio::time::Instant::now(), events.recv())
            .await
            .ok()??;
        if want(&e) {
            return Some(e);
        }
    }
}

/// A registrar/proxy played by the protocol crate's user agent, listening
/// for TLS on 127.0.0.1 with a certificate for that address from `ca`.
async fn tls_proxy(ca: &TestCa) -> (UaHandle, mpsc::Receiver<UaEvent>, SocketAddr) {
    let leaf = ca.issue(&["127.0.0.1"]);
    let tls = TlsConfig::from_pem(
        Some("127.0.0.1:0".parse().unwrap()),
        Identity {
            certificate: leaf.certificate.as_bytes(),
            private_key: leaf.private_key.as_bytes(),
        },
        ca.certificate_pem().as_bytes(),
    )
    .unwrap();
    let (network, incoming) = Network::bind(NetConfig {
        tls: Some(tls),
        ..NetConfig::default()
    })
    .await
    .unwrap();
    let addr = network.local_addr(Transport::Tls).unwrap();
    let mut ua_config = UaConfig::new(
        LocalEndpoint::new(Transport::Tls, addr),
        "sip:collector@127.0.0.1",
    );
    ua_config.accept_register = true;
    let ua = UserAgent::new(ua_config, IdGenerator::seeded(1), Box::new(LiteralsOnly)).unwrap();
    let (handle, events, _task) = ua_driver::spawn(ua, network, incoming);
    (handle, events, addr)
}

/// An agent config: TLS to `proxy`, trusting the CA in `ca_file`.
fn agent_yaml(dir: &Path, proxy: SocketAddr, ca_file: &Path) -> String {
    format!(
        "identity:\n  aor: sip:sensor-0001@127.0.0.1\nsip:\n  registrar: sip:{proxy}\n  \
         transport: tls\n  ca_file: {}\n  listen: false\n  bind: 127.0.0.1:0\nstream:\n  \
         rate: 100\n  samples_per_packet: 2\nsensors:\n  - type: simulated\n    name: sim\n    \
         seed: 7\n    interval_ms: 10\n    channels:\n      - name: temperature\n        \
         unit: Cel\n        scale: 0.01\nstatus:\n  socket: {}\nsecrets_file: {}\nspool:\n  \
         dir: {}\n",
        ca_file.display(),
        dir.join("agent.sock").display(),
        dir.join("secrets.yaml").display(),
        dir.join("spool").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_agent_is_called_on_its_flow_and_streams_srtp() {
    let ca = TestCa::new("site CA");
    let (proxy, mut events, proxy_addr) = tls_proxy(&ca).await;
    let (mut registrar, rtp) = agent_process::open_registrar(proxy_addr);

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.certificate_pem()).unwrap();
    let config_path = dir.path().join("agent.yaml");
    let _agent = Agent::start(&config_path, &agent_yaml(dir.path(), proxy_addr, &ca_file));

    // The REGISTER comes over TLS and names its flow.
    let Some(UaEvent::Request {
        id,
        request,
        source,
    }) = next(&mut events, Duration::from_secs(10), |e| {
        matches!(e, UaEvent::Request { .. })
    })
    .await
    else {
        panic!("no REGISTER over TLS")
    };
    assert_eq!(source.transport, Transport::Tls);
    let ok = registrar.handle_register(&request, source.addr, Transport::Tls, Instant::now());
    assert_eq!(ok.status_code.code(), 200, "{ok}");
    proxy
        .with(move |ua, now| ua.respond(id, ok, now))
        .await
        .unwrap()
        .unwrap();

    // Called on its own TLS connection, with SDES keys in the offer.
    let target = format!("sips:sensor-0001@127.0.0.1:{}", source.addr.port());
    let secure = MediaSecurity {
        srtp: SrtpPolicy::Required,
        signalling_secure: true,
    };
    let mut local = LocalMedia::new(rtp.local_addr().unwrap());
    local.security = secure;
    let mut origin = LocalSdp::with_session_id("collector", "127.0.0.1".parse().unwrap(), 1);
    let files = ConfigFiles {
        required: vec![config_path.clone()],
        optional: vec![],
    };
    let wanted = capabilities(&config::load_with_notes(&files).unwrap().0).unwrap();
    let offer = make_offer(&wanted, StreamRole::Receiver, &local, &mut origin).unwrap();
    let offer_bytes = offer.to_bytes();
    proxy
        .with(move |ua, now| ua.call(&target, offer_bytes, now))
        .await
        .unwrap()
        .unwrap();
    let answered = next(&mut events, Duration::from_secs(10), |e| {
        matches!(e, UaEvent::Answered { .. } | UaEvent::Ended { .. })
    })
    .await;
    let Some(UaEvent::Answered { answer, .. }) = answered else {
        panic!("{answered:?}")
    };
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        text.contains("RTP/SAVP") && text.contains("a=crypto:"),
        "{text}"
    );
    let agreed = apply_answer(&offer, &parse_sdp(&answer).unwrap(), StreamRole::Receiver).unwrap();
    let keys = agreed.srtp.unwrap();
    let mut srtp = SrtpContext::inbound(&keys.receive).unwrap();

    // Every packet opens with the agreed key, and none is plain RTP.
    let mut buf = [0u8; 2048];
    let mut clear = Vec::new();
    let end = Instant::now() + Duration::from_secs(3);
    let (mut opened, mut plain) = (0, 0);
    while Instant::now() < end && opened < 20 {
        let Ok(n) = rtp.recv(&mut buf) else { continue };
        let packet = sipsensor_protocol::parse_rtp(&buf[..n]).unwrap();
        if sipsensor_protocol::decode_payload(packet.payload).is_ok() {
            plain += 1;
        }
        srtp.unprotect_rtp(&buf[..n], &mut clear).unwrap();
        let packet = sipsensor_protocol::parse_rtp(&clear).unwrap();
        assert!(sipsensor_protocol::decode_payload(packet.payload).is_ok());
        opened += 1;
    }
    assert!(opened >= 20, "SRTP over the call: {opened} packets");
    assert_eq!(plain, 0, "an encrypted payload never parses as samples");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_ca_did_not_sign_the_registrar_does_not_register() {
    let site = TestCa::new("site CA");
    let stranger = TestCa::new("someone else's CA");
    let (_proxy, mut events, proxy_addr) = tls_proxy(&stranger).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, site.certificate_pem()).unwrap();
    let _agent = Agent::start(
        &dir.path().join("agent.yaml"),
        &agent_yaml(dir.path(), proxy_addr, &ca_file),
    );
    let got = next(&mut events, Duration::from_secs(3), |e| {
        matches!(e, UaEvent::Request { .. })
    })
    .await;
    assert!(got.is_none(), "a REGISTER got through: {got:?}");
    // `status` says why.
    let socket = dir.path().join("agent.sock");
    let status = sipsensor_agent::status::client::fetch(&socket, Duration::from_secs(2)).unwrap();
    let registration = &status.registrations[0];
    assert_ne!(
        registration.state,
        sipsensor_agent::status::RegistrationState::Registered
    );
    let error = status.last_error.map(|e| e.message).unwrap_or_default();
    let shown = format!("{error} {:?}", registration.last_response);
    assert!(shown.contains("sip.ca_file"), "{shown}");
}
