//! Wireshark's dissectors read our SDP, RTP and RTCP without complaint.
//!
//! Writes a capture of one sensor session (INVITE with the offer, 200 with
//! the answer, sample and event packets, SR, RR and BYE compounds) to a
//! temporary pcap file and asks `tshark` for any packet flagged malformed
//! or with an error-level expert item. Needs Debian's `tshark`; skipped with
//! a message when it is missing, failed when SIPSENSOR_CI=1.

// A test crate: helpers may unwrap like the #[test]s do.
#![allow(clippy::unwrap_used)]

use sipsensor_protocol::{
    AnswerPolicy, ChannelSpec, CompoundWriter, EventFormat, EventOutbox, IdGenerator, LocalMedia,
    LocalSdp, NtpTime, OutboxConfig, ReceivePolicy, ReceiverReport, RtpReceiver, RtpSender,
    SampleFormat, StreamDescription, StreamRole, TickTime, Unit, answer_offer, make_offer,
    receiver_report_compound, sender_report_compound,
};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};

const AGENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const COLLECTOR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 5);

fn ipv4_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ]);
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    let sum = p
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp_len = (8 + payload.len()) as u16;
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]); // no UDP checksum (IPv4 allows it)
    p.extend_from_slice(payload);
    p
}

fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut f = Vec::new();
    // Classic pcap, microsecond stamps, LINKTYPE_RAW (101): bare IPv4.
    for v in [
        0xa1b2_c3d4u32.to_le_bytes().as_slice(),
        &2u16.to_le_bytes(),
        &4u16.to_le_bytes(),
    ] {
        f.extend_from_slice(v);
    }
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65_535u32.to_le_bytes());
    f.extend_from_slice(&101u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        f.extend_from_slice(&1_767_225_600u32.to_le_bytes());
        f.extend_from_slice(&((i as u32) * 10_000).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(p);
    }
    f
}

fn sip(first_line: &str, cseq: &str, body: &str) -> Vec<u8> {
    format!(
        "{first_line}\r\n\
         Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bKtest1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:s1@example.org>;tag=a1\r\n\
         To: <sip:collector@example.org>{}\r\n\
         Call-ID: wireshark-test@198.51.100.10\r\n\
         CSeq: {cseq}\r\n\
         Contact: <sip:s1@198.51.100.10:5060>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        if first_line.starts_with("SIP/2.0") {
            ";tag=b2"
        } else {
            ""
        },
        body.len()
    )
    .into_bytes()
}

fn session() -> Vec<Vec<u8>> {
    let ch = |n: &str, u: &str, s: i8| ChannelSpec {
        name: n.into(),
        unit: Unit::from_symbol(u).unwrap(),
        scale: s,
    };
    let desc = StreamDescription {
        clock_rate: 100,
        config: 1,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 10,
            samples_per_packet: 5,
            channels: vec![
                ch("temperature", "Cel", -2),
                ch("humidity", "%RH", -1),
                ch("pressure", "Pa", 0),
            ],
        }),
        events: Some(EventFormat {
            payload_type: 97,
            inputs: vec!["door".into(), "motion".into()],
        }),
    };
    let mut ids = IdGenerator::seeded(42);
    let mut tx = RtpSender::new(&mut ids);
    let agent_rtp = SocketAddrV4::new(AGENT, 40000);
    let coll_rtp = SocketAddrV4::new(COLLECTOR, 50000);
    let local = LocalMedia {
        rtp: agent_rtp.into(),
        rtcp: None,
        ssrc: Some(tx.ssrc()),
        cname: Some("s1@198.51.100.10".into()),
        security: Default::default(),
    };
    let offer_sdp = make_offer(
        &desc,
        StreamRole::Sender,
        &local,
        &mut LocalSdp::new("s1", AGENT.into(), &mut ids),
    )
    .unwrap();
    let policy = AnswerPolicy::Receive(ReceivePolicy::default());
    let (answer_sdp, agreed) = answer_offer(
        &offer_sdp,
        &policy,
        &LocalMedia::new(coll_rtp.into()),
        &mut LocalSdp::new("collector", COLLECTOR.into(), &mut ids),
    )
    .unwrap();
    let sip_a = SocketAddrV4::new(AGENT, 5060);
    let sip_c = SocketAddrV4::new(COLLECTOR, 5060);
    let mut out = vec![
        ipv4_udp(
            sip_a,
            sip_c,
            &sip(
                "INVITE sip:collector@example.org SIP/2.0",
                "1 INVITE",
                &offer_sdp.to_string(),
            ),
        ),
        ipv4_udp(
            sip_c,
            sip_a,
            &sip("SIP/2.0 200 OK", "1 INVITE", &answer_sdp.to_string()),
        ),
    ];
    let d = &agreed.description;
    let mut buf = [0u8; 1500];
    let rtcp_a = SocketAddrV4::new(AGENT, 40001);
    let rtcp_c = SocketAddrV4::new(COLLECTOR, 50001);
    let n = sender_report_compound(
        &mut buf,
        &tx.sender_report(0, NtpTime::from_unix(Duration::from_secs(1_767_225_600))),
        "s1@198.51.100.10",
    )
    .unwrap();
    out.push(ipv4_udp(rtcp_a, rtcp_c, &buf[..n]));
    let now = Instant::now();
    let mut outbox = EventOutbox::new(2, 0b01, 0, OutboxConfig::default(), now);
    let batch = outbox.poll_packet(now, 0).unwrap();
    let n = tx.write_events(&mut buf, d, &batch).unwrap();
    out.push(ipv4_udp(agent_rtp, coll_rtp, &buf[..n]));
    let mut rx = RtpReceiver::new(100, agreed.remote_ssrc);
    for k in 0..4u64 {
        let values: Vec<i32> = (0..15)
            .map(|i| if i == 7 { i32::MIN } else { 2000 + i })
            .collect();
        let n = tx
            .write_samples(&mut buf, d, k * 50, &values, k == 0)
            .unwrap();
        rx.on_packet(&sipsensor_protocol::parse_rtp(&buf[..n]).unwrap(), now);
        out.push(ipv4_udp(agent_rtp, coll_rtp, &buf[..n]));
    }
    outbox.edge(
        0,
        false,
        TickTime {
            tick: 123,
            fraction: 1 << 31,
        },
        now,
    );
    let batch = outbox.poll_packet(now, 124).unwrap();
    let n = tx.write_events(&mut buf, d, &batch).unwrap();
    out.push(ipv4_udp(agent_rtp, coll_rtp, &buf[..n]));
    let rr = ReceiverReport {
        ssrc: 0x0bad_cafe,
        reports: rx.report_block(now).into_iter().collect(),
    };
    let n = receiver_report_compound(&mut buf, &rr, "collector@203.0.113.5").unwrap();
    out.push(ipv4_udp(rtcp_c, rtcp_a, &buf[..n]));
    let mut w = CompoundWriter::new(&mut buf);
    w.sender_report(&tx.sender_report(200, NtpTime::from_unix(Duration::from_secs(1_767_225_602))))
        .unwrap();
    w.sdes(tx.ssrc(), "s1@198.51.100.10", &[]).unwrap();
    w.bye(&[tx.ssrc()], Some("shutdown")).unwrap();
    let n = w.finish().unwrap();
    out.push(ipv4_udp(rtcp_a, rtcp_c, &buf[..n]));
    out
}

fn tshark(file: &std::path::Path, filter: &str) -> String {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-Y",
            filter,
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "_ws.col.Protocol",
            "-e",
            "_ws.col.Info",
        ])
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn wireshark_finds_nothing_malformed() {
    if Command::new("tshark").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("SIPSENSOR_CI").is_none(),
            "tshark is required in CI (.ci/apt/media.txt)"
        );
        eprintln!("SKIP: tshark not installed (apt-get install tshark)");
        return;
    }
    let packets = session();
    let file = std::env::temp_dir().join(format!("sipsensor-media-{}.pcap", std::process::id()));
    std::fs::write(&file, pcap(&packets)).unwrap();
    let bad = tshark(&file, "_ws.malformed || _ws.expert.severity >= \"error\"");
    let rtp = tshark(&file, "rtp");
    let rtcp = tshark(&file, "rtcp");
    let sdp = tshark(&file, "sdp");
    let detail = Command::new("tshark")
        .args(["-n", "-V", "-r"])
        .arg(&file)
        .output()
        .map(|o| o.stdout);
    std::fs::remove_file(&file).ok();
    assert_eq!(
        bad,
        "",
        "flagged packets:\n{bad}\n{}",
        String::from_utf8_lossy(&detail.unwrap_or_default())
    );
    // The SDP set up the RTP/RTCP conversations, so all were dissected.
    assert_eq!(sdp.lines().count(), 2, "{sdp}");
    assert_eq!(rtp.lines().count(), 6, "{rtp}");
    assert_eq!(rtcp.lines().count(), 3, "{rtcp}");
}
