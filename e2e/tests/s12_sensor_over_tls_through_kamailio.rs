//! Scenario 12 (issue #14): the whole path over TLS. Kamailio with its tls
//! module is registrar and proxy; the sensor (`sip.transport: tls`, no SIP
//! port) registers over TLS, verifying Kamailio's certificate against the
//! site CA; the collector (`sip.tls`) registers and calls the sensor's AOR
//! through Kamailio over TLS, and Kamailio relays the INVITE over the
//! sensor's own TLS connection (RFC 5626, RFC 5923). The SDP carries SDES
//! keys (RFC 4568) only inside TLS, and the samples travel as SRTP
//! (RFC 3711).
//!
//! The sensor's BYE reaches the collector through Kamailio over TLS too.
//! On the wire: no SIP in clear between any two of them (only TLS records
//! on Kamailio's TLS port, nothing on its UDP/TCP port), RTP payloads that
//! do not read as the sensor's samples; stored, the samples are exactly
//! the seeded waveform. A stranger's INVITE to the sensor's address finds
//! no port and gets nothing.

#![allow(clippy::unwrap_used)]

use sipsensor_agent::status::{AgentState, Direction};
use sipsensor_e2e::capture::hex_bytes;
use sipsensor_e2e::pki::{SitePki, require_kamailio_tls};
use sipsensor_e2e::site::{CALL_WAVE_AT_20_HZ, COLLECTOR_PASSWORD, SENSOR_PASSWORD};
use sipsensor_e2e::wave::Waveform;
use sipsensor_e2e::*;
use sipsensor_protocol::{Payload, decode_payload};
use sipsensor_testkit::{Kamailio, KamailioOptions, Tshark, TsharkOptions};
use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

const SENSOR: &str = "sensor12";

#[test]
fn collector_calls_a_sensor_through_kamailio_over_tls_with_srtp() {
    if !require(&["kamailio", "tshark"]) || !require_kamailio_tls() {
        return;
    }
    let pki = SitePki::new();
    let kamailio = Kamailio::start(
        KamailioOptions {
            tls: Some(pki.kamailio()),
            ..KamailioOptions::default()
        }
        .with_subscriber(SENSOR, SENSOR_PASSWORD)
        .with_subscriber("collector", COLLECTOR_PASSWORD),
    )
    .unwrap_or_else(|e| panic!("kamailio: {e}"));
    let kamailio_tls = kamailio.tls_addr().unwrap();

    let mut cspec = collector_behind(&kamailio, "collector", COLLECTOR_PASSWORD);
    cspec.kamailio = Some(kamailio_tls);
    cspec.tls = Some(pki.collector());
    let mut collector = Collector::new(cspec).unwrap();
    let mut aspec = AgentSpec::new(SENSOR, &kamailio.domain());
    aspec.password = Some(SENSOR_PASSWORD.into());
    aspec.registrar = Some(format!("sip:{kamailio_tls}"));
    aspec.tls_ca_file = Some(pki.ca_file());
    let mut agent = Agent::new(aspec).unwrap();

    // Clear SIP would be decoded on Kamailio's and the sensor's ports;
    // the TLS port is only captured (the filter takes every listed port,
    // TCP too; "RTCP" decodes UDP alone, and TLS has none). SRTCP is left
    // out: Wireshark reads its encrypted reports as malformed RTCP.
    let tshark = Tshark::start(TsharkOptions {
        sip_ports: vec![kamailio.addr().port(), agent.sip_port],
        rtp_ports: vec![collector.rtp_port],
        rtcp_ports: vec![kamailio_tls.port()],
        ..TsharkOptions::default()
    })
    .unwrap_or_else(|e| panic!("tshark: {e}"));

    collector.launch().unwrap();
    wait_log(
        "collector registration over TLS",
        Duration::from_secs(20),
        || collector.log(),
        "registered as",
    );
    agent.launch().unwrap();
    agent.wait_status("registered", Duration::from_secs(30), |s| {
        s.state == AgentState::Registered
    });

    // A stranger has no way in: no TCP (or TLS) port, and its INVITE over
    // UDP gets no answer.
    assert!(TcpStream::connect(("127.0.0.1", agent.sip_port)).is_err());
    assert_eq!(stranger_invite(agent.sip_port, &agent.spec.aor()), None);

    let aor = agent.spec.aor();
    let mut args = vec!["call", aor.as_str()];
    args.extend(CALL_WAVE_AT_20_HZ);
    let (ok, said) = collector.control(&args);
    assert!(
        ok,
        "call: {said}\ncollector log:\n{}\nagent log:\n{}\nkamailio log:\n{}",
        collector.log(),
        agent.log(),
        kamailio.log()
    );
    let status = agent.wait_status("streaming", Duration::from_secs(20), |s| {
        s.state == AgentState::Streaming
    });
    assert_eq!(status.sessions.len(), 1, "{status:?}");
    assert_eq!(status.sessions[0].direction, Direction::Incoming);
    std::thread::sleep(Duration::from_secs(3));
    // The sensor hangs up: its BYE follows the Record-Route through
    // Kamailio and reaches the collector over TLS (with a UDP Contact
    // behind a TLS proxy, Kamailio sent it in clear to a closed port).
    agent.stop();
    wait_log(
        "the sensor's BYE over TLS",
        Duration::from_secs(10),
        || collector.log(),
        "ended: RemoteBye",
    );
    let stored = settled_samples(&collector, &aor, 40);
    let capture = tshark.stop().unwrap();
    let malformed = capture.malformed().unwrap();
    assert!(malformed.is_empty(), "malformed: {malformed:?}");

    // Stored exactly as the seeded waveform generated them.
    let wave = Waveform::new(&agent.sim(), agent.interval());
    let matched = wave.match_samples(&stored).unwrap();
    assert!(matched.len() >= 40, "{} samples matched", matched.len());

    // The only clear SIP is the stranger's INVITE; between Kamailio and
    // either end only TLS records, and none of them holds a SIP line.
    let count = |f: String| capture.count(&f).unwrap();
    let sensor_port = agent.sip_port;
    assert_eq!(count(format!("sip && !(udp.port == {sensor_port})")), 0);
    let k = kamailio_tls.port();
    // 0x17 0x03 0x03: a TLS application data record (RFC 8446 5.1).
    assert!(count(format!("tcp.port == {k} && tcp.payload[0:3] == 17:03:03")) >= 4);
    assert_eq!(
        count(format!("tcp.port == {k} && frame contains \"SIP/2.0\"")),
        0
    );

    // SRTP: the RTP packets are there, and not one payload reads as the
    // sensor's samples.
    let payloads = capture
        .fields(
            &format!("rtp && udp.dstport == {}", collector.rtp_port),
            &["rtp.payload"],
        )
        .unwrap();
    assert!(payloads.len() >= 20, "{} RTP packets", payloads.len());
    let generated: HashSet<i64> = stored.iter().map(|s| s.raw).collect();
    let readable = payloads
        .iter()
        .filter(|p| readable_samples(&p[0], &generated))
        .count();
    assert_eq!(readable, 0, "RTP payloads readable in clear");
}

/// An INVITE from an unregistered peer to the sensor's configured SIP
/// address over UDP: what came back within a second, if anything.
fn stranger_invite(port: u16, aor: &str) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = socket.local_addr().unwrap();
    let invite = format!(
        "INVITE {aor} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKstranger1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:collector@127.0.0.1>;tag=x1\r\nTo: <{aor}>\r\n\
         Call-ID: stranger1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:collector@{me}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    socket
        .send_to(invite.as_bytes(), ("127.0.0.1", port))
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 2048];
    match socket.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        // Nothing, or the kernel's "port unreachable".
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => None,
        Err(e) => panic!("stranger's socket: {e}"),
    }
}

/// Does a captured RTP payload (tshark's hex) decode as samples whose
/// values the sensor stored?
fn readable_samples(hex: &str, generated: &HashSet<i64>) -> bool {
    let Some(bytes) = hex_bytes(hex) else {
        return false;
    };
    let Ok(Payload::Samples(s)) = decode_payload(&bytes) else {
        return false;
    };
    (0..usize::from(s.count))
        .filter_map(|i| s.raw(i, 0))
        .any(|raw| generated.contains(&i64::from(raw)))
}
