//! The agent binary's SIP life cycle against a collector played by the
//! protocol crate's user agent on 127.0.0.1: INVITE with the configured
//! stream, RTP carrying the simulated waveform, a re-INVITE that halves the
//! rate applied without dropping the session (the collector answering the
//! sensor's challenge with its `sip.calling` credential), a BYE and a
//! re-INVITE forged from a stranger's socket with the dialog's identifiers
//! that change nothing, and SIGTERM ending with a BYE within 2 s. And with `sip.listen: false` over TCP (RFC 5626
//! outbound, RFC 5923): no port open, a flow registered at the protocol
//! crate's registrar, and a call over that same connection, accepted
//! without a challenge (the flow to its registrar is trusted).

#![allow(clippy::unwrap_used)]

use sipsensor_agent::spool::{Record, Spool, SpoolOptions};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use sipsensor_agent::config::{self, ConfigFiles};
use sipsensor_agent::sensor::SensorConfig;
use sipsensor_agent::session::media::capabilities;
use sipsensor_protocol::prelude::*;
use sipsensor_protocol::{
    AnswerPolicy, EndReason, IdGenerator, LiteralsOnly, LocalEndpoint, LocalMedia, LocalSdp,
    ReceivePolicy, StreamRole, Transport, UaConfig, UaEvent, UserAgent, answer_offer, make_offer,
    parse_sdp,
};
use sipsensor_runtime::sip_transport::{NetConfig, Network};
use sipsensor_runtime::ua_driver::{self, UaHandle};
use tokio::sync::mpsc;
use tokio::time::timeout;

#[path = "support/agent_process.rs"]
mod agent_process;
use agent_process::Agent;

async fn next(events: &mut mpsc::Receiver<UaEvent>, want: impl Fn(&UaEvent) -> bool) -> UaEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = timeout(deadline - tokio::time::Instant::now(), events.recv())
            .await
            .expect("event in time")
            .unwrap();
        if want(&e) {
            return e;
        }
    }
}

/// Samples of channel 0 in packets received for `span`, as (packet RTP
/// timestamp, raw), plus the cfg numbers seen.
fn receive(rtp: &UdpSocket, span: Duration) -> (Vec<(u32, i32)>, Vec<u8>) {
    let end = Instant::now() + span;
    let mut out = Vec::new();
    let mut cfgs = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        let Ok(n) = rtp.recv(&mut buf) else { continue };
        let packet = sipsensor_protocol::parse_rtp(&buf[..n]).unwrap();
        if let Ok(sipsensor_protocol::Payload::Samples(s)) =
            sipsensor_protocol::decode_payload(packet.payload)
        {
            if !cfgs.contains(&s.config) {
                cfgs.push(s.config);
            }
            for k in 0..usize::from(s.count) {
                out.push((packet.timestamp, s.raw(k, 0).unwrap()));
            }
        }
    }
    (out, cfgs)
}

/// What an eavesdropper learns of a dialog; here read off the collector.
struct Dialog {
    call_id: String,
    collector_tag: String,
    sensor_tag: String,
}

impl Dialog {
    /// A request of this dialog, as the collector would send it, from
    /// `socket`.
    fn forge(&self, method: &str, cseq: u32, socket: &UdpSocket, body: &[u8]) -> Vec<u8> {
        let from = socket.local_addr().unwrap();
        let content_type = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        let mut text = format!(
            "{method} sip:sensor-0001@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {from};branch=z9hG4bKforged{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:collector@127.0.0.1>;tag={}\r\n\
             To: <sip:sensor-0001@127.0.0.1>;tag={}\r\n\
             Call-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{from}>\r\n\
             {content_type}Content-Length: {}\r\n\r\n",
            self.collector_tag,
            self.sensor_tag,
            self.call_id,
            body.len()
        )
        .into_bytes();
        text.extend_from_slice(body);
        text
    }
}

async fn observed_dialog(collector: &UaHandle, session: sipsensor_protocol::SessionId) -> Dialog {
    collector
        .with(move |ua, _| {
            let (collector_tag, sensor_tag) = ua.dialog_tags(session).unwrap();
            Dialog {
                call_id: ua.call_id(session).unwrap(),
                collector_tag,
                sensor_tag,
            }
        })
        .await
        .unwrap()
}

/// The status line of the next SIP response on `socket`.
fn status_line(socket: &UdpSocket) -> String {
    let mut buf = [0u8; 4096];
    for _ in 0..30 {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            if text.starts_with("SIP/2.0") {
                return text.lines().next().unwrap_or_default().to_owned();
            }
        }
    }
    "no answer".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_streams_follows_a_reinvite_and_says_bye_on_sigterm() {
    // The collector: our UA on a free port.
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (network, incoming) = Network::bind(NetConfig::udp_and_tcp(any)).await.unwrap();
    let collector_addr = network.local_addr(Transport::Udp).unwrap();
    let ua = UserAgent::new(
        UaConfig::new(
            LocalEndpoint::new(Transport::Udp, collector_addr),
            "sip:collector@127.0.0.1",
        ),
        IdGenerator::seeded(1),
        Box::new(LiteralsOnly),
    )
    .unwrap();
    // The collector's `sip.calling` credential: the sensor challenges its
    // re-INVITE (it arrives over UDP, where a source proves nothing).
    let mut ua = ua;
    ua.set_credentials(Some((
        "collector".into(),
        sipsensor_protocol::Password::new("calling-secret"),
    )));
    let (collector, mut events, _task): (UaHandle, _, _) = ua_driver::spawn(ua, network, incoming);
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("agent.yaml");
    let yaml = r#"identity:
  aor: sip:sensor-0001@127.0.0.1
sip:
  collector: sip:collector@COLLECTOR
  transport: udp
  bind: 127.0.0.1:0
  callers: [collector]
secrets_file: SECRETS
stream:
  rate: 100
  samples_per_packet: 2
sensors:
  - type: simulated
    name: sim
    seed: 7
    interval_ms: 10
    channels:
      - name: temperature
        unit: Cel
        scale: 0.01
        offset: 21.5
        amplitude: 2.0
        period_ms: 5000
status:
  socket: SOCKET
spool:
  dir: SPOOL
"#
    .replace("COLLECTOR", &collector_addr.to_string())
    .replace("SPOOL", &dir.path().join("spool").display().to_string())
    .replace(
        "SOCKET",
        &dir.path().join("agent.sock").display().to_string(),
    )
    .replace(
        "SECRETS",
        &dir.path().join("secrets.yaml").display().to_string(),
    );
    let secrets = dir.path().join("secrets.yaml");
    std::fs::write(&secrets, "callers:\n  collector: calling-secret\n").unwrap();
    std::fs::set_permissions(
        &secrets,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let agent = Agent::start(&config_path, &yaml);

    // The INVITE offers the configured stream; we take it as offered.
    let UaEvent::IncomingCall {
        session,
        offer,
        source: agent_sip,
        ..
    } = next(&mut events, |e| matches!(e, UaEvent::IncomingCall { .. })).await
    else {
        unreachable!()
    };
    let offer = parse_sdp(&offer).unwrap();
    let mut origin = LocalSdp::with_session_id("collector", "127.0.0.1".parse().unwrap(), 1);
    let local = LocalMedia::new(rtp.local_addr().unwrap());
    let (answer, agreed) = answer_offer(
        &offer,
        &AnswerPolicy::Receive(ReceivePolicy::default()),
        &local,
        &mut origin,
    )
    .unwrap();
    collector
        .with(move |ua, now| ua.accept(session, answer.to_bytes(), now))
        .await
        .unwrap()
        .unwrap();
    next(&mut events, |e| matches!(e, UaEvent::Confirmed { .. })).await;

    let (first, cfgs) = receive(&rtp, Duration::from_millis(1500));
    assert!(
        first.len() >= 100,
        "about 150 samples in 1.5 s, got {}",
        first.len()
    );
    assert_eq!(cfgs, [1]);
    // Every value is one the simulated sensor generates (the sender takes
    // the sensor's latest reading at each instant).
    let files = ConfigFiles {
        required: vec![config_path.clone()],
        optional: vec![],
    };
    let cfg = config::load_with_notes(&files).unwrap().0;
    let SensorConfig { kind, .. } = &cfg.sensors[0];
    let sim = match kind {
        sipsensor_agent::sensor::SensorKind::Simulated(sim) => sim.clone(),
        other => panic!("{other:?}"),
    };
    let generated: Vec<i32> = (0..2000u64)
        .map(|k| (sim.value(0, k, Duration::from_millis(10)) / 0.01).round() as i32)
        .collect();
    // MISSING marks an instant the sensor thread had no fresh reading for
    // (a busy machine); every value that is sent is one of the waveform's.
    let missing = sipsensor_protocol::MISSING_SAMPLE;
    let sent: Vec<i32> = first
        .iter()
        .map(|(_, raw)| *raw)
        .filter(|r| *r != missing)
        .collect();
    assert!(
        sent.len() * 5 >= first.len() * 4,
        "few missing: {} of {}",
        first.len() - sent.len(),
        first.len()
    );
    let foreign: Vec<&i32> = sent.iter().filter(|raw| !generated.contains(raw)).collect();
    assert!(
        foreign.is_empty(),
        "values not from the waveform: {foreign:?}"
    );
    // `sipsensor-agent status` shows the session with its counts.
    let socket = dir.path().join("agent.sock");
    let status = sipsensor_agent::status::client::fetch(&socket, Duration::from_secs(2)).unwrap();
    assert_eq!(status.state, sipsensor_agent::status::AgentState::Streaming);
    let [shown] = &status.sessions[..] else {
        panic!("{:?}", status.sessions)
    };
    assert_eq!(shown.rate_hz, 100);
    assert_eq!(shown.channels, ["sim.temperature"]);
    assert!(shown.packets_sent >= 50, "{shown:?}");
    assert!(
        shown.call_id.contains('@'),
        "the real Call-ID: {}",
        shown.call_id
    );

    // Two samples a packet at 100 Hz: packet timestamps two ticks apart.
    let steps = |s: &[(u32, i32)], d: u32| {
        s.windows(2)
            .filter(|w| w[1].0.wrapping_sub(w[0].0) == d)
            .count()
    };
    assert!(
        steps(&first, 2) > 50,
        "packets every 2 ticks: {}",
        steps(&first, 2)
    );

    // Halve the rate mid-session (docs/protocol.md 3.4): same clock,
    // period 2, cfg 2.
    let mut wanted = agreed.description.clone();
    if let Some(s) = wanted.samples.as_mut() {
        s.period = 2;
    }
    let wanted = wanted.next_config_after(&agreed.description);
    let reoffer = make_offer(&wanted, StreamRole::Receiver, &local, &mut origin).unwrap();
    collector
        .with(move |ua, now| ua.reinvite(session, reoffer.to_bytes(), now))
        .await
        .unwrap()
        .unwrap();
    next(&mut events, |e| {
        matches!(e, UaEvent::ReofferAnswered { .. })
    })
    .await;
    let (second, cfgs) = receive(&rtp, Duration::from_millis(1500));
    assert!(
        cfgs.contains(&2),
        "the new configuration is on the wire: {cfgs:?}"
    );
    // Period 2: packets of two samples now four ticks apart.
    let at_cfg2 = steps(&second, 4);
    assert!(
        at_cfg2 > 30,
        "packets four ticks apart after the re-INVITE: {at_cfg2}"
    );

    let status = sipsensor_agent::status::client::fetch(&socket, Duration::from_secs(2)).unwrap();
    assert_eq!(
        status.sessions[0].rate_hz, 50,
        "status follows the re-INVITE"
    );

    // A stranger who learnt the dialog (Call-ID, both tags: they cross
    // the network in clear) sends a BYE and a re-INVITE pointing the
    // stream at itself, from its own UDP socket: challenged, and the
    // stream goes on where it was.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let dialog = observed_dialog(&collector, session).await;
    let mut origin = LocalSdp::with_session_id("x", "127.0.0.1".parse().unwrap(), 9);
    let hijack = LocalMedia::new(stranger.local_addr().unwrap());
    let hijack_sdp = make_offer(&wanted, StreamRole::Receiver, &hijack, &mut origin)
        .unwrap()
        .to_bytes();
    for (method, cseq, body) in [("BYE", 900_001, vec![]), ("INVITE", 900_002, hijack_sdp)] {
        let forged = dialog.forge(method, cseq, &stranger, &body);
        stranger.send_to(&forged, agent_sip.addr).unwrap();
        let answer = status_line(&stranger);
        assert!(answer.starts_with("SIP/2.0 401"), "{method}: {answer}");
    }
    let (after, _) = receive(&rtp, Duration::from_millis(700));
    assert!(
        after.len() > 20,
        "the stream went on: {} samples",
        after.len()
    );
    let mut buf = [0u8; 2048];
    let mut stolen = 0;
    while let Ok(n) = stranger.recv(&mut buf) {
        stolen += usize::from(sipsensor_protocol::parse_rtp(&buf[..n]).is_ok());
    }
    assert_eq!(stolen, 0, "RTP went to the stranger");

    // SIGTERM: BYE, and the process is gone within 2 s.
    let pid = agent.0.id() as i32;
    let sent = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let ended = next(&mut events, |e| matches!(e, UaEvent::Ended { .. })).await;
    assert!(matches!(
        ended,
        UaEvent::Ended {
            reason: EndReason::RemoteBye,
            ..
        }
    ));
    let mut agent = agent;
    let status = loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "exit within 2 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");

    // Everything it sent is in its spool, value for value and in order.
    let options = SpoolOptions {
        dir: dir.path().join("spool"),
        max_bytes: 1 << 30,
        max_age: Duration::from_secs(86_400),
    };
    let spool = Spool::open(&options, std::time::SystemTime::now()).unwrap();
    let spooled: Vec<i32> = spool
        .read_from(i64::MIN)
        .flat_map(|r| match r {
            Record::Samples(s) => s.values,
            Record::Edge(_) => Vec::new(),
        })
        .collect();
    for (what, part) in [("before", &first), ("after the re-INVITE", &second)] {
        let sent: Vec<i32> = part.iter().map(|(_, raw)| *raw).collect();
        assert!(
            spooled.windows(sent.len()).any(|w| w == &sent[..]),
            "the {} values sent {what} are in the spool ({} values)",
            sent.len(),
            spooled.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensor_without_a_listening_port_is_called_over_its_own_flow() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (network, incoming) = Network::bind(NetConfig::udp_and_tcp(any)).await.unwrap();
    let proxy_addr = network.local_addr(Transport::Tcp).unwrap();
    let mut ua_config = UaConfig::new(
        LocalEndpoint::new(Transport::Tcp, proxy_addr),
        "sip:collector@127.0.0.1",
    );
    ua_config.accept_register = true;
    let ua = UserAgent::new(ua_config, IdGenerator::seeded(1), Box::new(LiteralsOnly)).unwrap();
    let (proxy, mut events, _task) = ua_driver::spawn(ua, network, incoming);
    let (mut registrar, rtp) = agent_process::open_registrar(proxy_addr);

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("agent.yaml");
    let yaml = format!(
        "identity:\n  aor: sip:sensor-0001@127.0.0.1\nsip:\n  registrar: sip:{proxy_addr}\n  \
         transport: tcp\n  listen: false\n  bind: 127.0.0.1:0\nstream:\n  rate: 100\n  \
         samples_per_packet: 2\nsensors:\n  - type: simulated\n    name: sim\n    seed: 7\n    \
         interval_ms: 10\n    channels:\n      - name: temperature\n        unit: Cel\n        \
         scale: 0.01\nstatus:\n  socket: {}\nsecrets_file: {}\nspool:\n  dir: {}\n",
        dir.path().join("agent.sock").display(),
        dir.path().join("secrets.yaml").display(),
        dir.path().join("spool").display(),
    );
    let _agent = Agent::start(&config_path, &yaml);

    // The REGISTER comes over TCP and names its flow.
    let UaEvent::Request {
        id,
        request,
        source,
    } = next(&mut events, |e| matches!(e, UaEvent::Request { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(source.transport, Transport::Tcp);
    let contact = request
        .headers
        .iter()
        .find_map(|h| match h {
            sipsensor_protocol::Header::Contact(c) => Some(c.value().to_owned()),
            _ => None,
        })
        .unwrap();
    assert!(
        contact.contains(";ob>")
            && contact.contains("+sip.instance=")
            && contact.contains("reg-id=1"),
        "{contact}"
    );
    let ok = registrar.handle_register(&request, source.addr, Transport::Tcp, Instant::now());
    assert_eq!(ok.status_code.code(), 200, "{ok}");
    proxy
        .with(move |ua, now| ua.respond(id, ok, now))
        .await
        .unwrap()
        .unwrap();

    // Nothing listens where the Contact points.
    let contact_port: u16 = contact
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split([';', '>']).next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert_ne!(contact_port, source.addr.port());
    assert!(TcpStream::connect(("127.0.0.1", contact_port)).is_err());

    // The call goes over the agent's own connection (its source port).
    let target = format!(
        "sip:sensor-0001@127.0.0.1:{};transport=tcp",
        source.addr.port()
    );
    let mut origin = LocalSdp::with_session_id("collector", "127.0.0.1".parse().unwrap(), 1);
    let local = LocalMedia::new(rtp.local_addr().unwrap());
    let files = ConfigFiles {
        required: vec![config_path.clone()],
        optional: vec![],
    };
    let wanted = capabilities(&config::load_with_notes(&files).unwrap().0).unwrap();
    let offer = make_offer(&wanted, StreamRole::Receiver, &local, &mut origin)
        .unwrap()
        .to_bytes();
    proxy
        .with(move |ua, now| ua.call(&target, offer, now))
        .await
        .unwrap()
        .unwrap();
    let answered = next(&mut events, |e| {
        matches!(e, UaEvent::Answered { .. } | UaEvent::Ended { .. })
    })
    .await;
    assert!(matches!(answered, UaEvent::Answered { .. }), "{answered:?}");
    let mut buf = [0u8; 2048];
    let end = Instant::now() + Duration::from_secs(3);
    let mut packets = 0;
    while Instant::now() < end && packets < 20 {
        if let Ok(n) = rtp.recv(&mut buf)
            && sipsensor_protocol::parse_rtp(&buf[..n]).is_ok()
        {
            packets += 1;
        }
    }
    assert!(packets >= 20, "RTP over the call: {packets} packets");
}
