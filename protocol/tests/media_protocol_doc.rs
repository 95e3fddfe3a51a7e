//! docs/protocol.md and the code agree: every worked example in the page
//! (SDP bodies, hex dumps of packets, the Warning header) is rebuilt here
//! through the public API and compared with the page's text.
//!
//! Examples in the page are fenced as ```` ```sdp <name> ```` or
//! ```` ```hex <name> ````; in hex blocks everything after `#` on a line
//! is commentary.

// A test crate: helpers may unwrap like the #[test]s do.
#![allow(clippy::unwrap_used)]

use sipsensor_protocol::{
    AnswerPolicy, ChannelSpec, EventFormat, EventOutbox, LocalMedia, LocalSdp, MISSING_SAMPLE,
    NtpTime, OutboxConfig, ReceivePolicy, ReceiverReport, ReportBlock, RtpSender, SampleFormat,
    SrMapping, StreamDescription, StreamRole, TickTime, Unit, answer_offer, apply_answer,
    make_offer, parse_sdp_str, receiver_report_compound, sender_report_compound,
};
use sipsensor_protocol::{
    BackfillMessage, BackfillSupport, CompoundWriter, Nack, RecoverySupport, RetransmitHistory,
    RtxConfig, RtxSupport, SampleInstant, agreed_recovery, answer_with_recovery,
    offer_with_recovery, parse_rtp,
};
use std::collections::HashMap;
use std::time::{Duration, Instant, UNIX_EPOCH};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).unwrap()
}

/// Named fenced blocks: ```` ```<kind> <name> ```` ... ```` ``` ````.
fn blocks(doc: &str) -> HashMap<String, (String, String)> {
    let mut out = HashMap::new();
    let mut lines = doc.lines();
    while let Some(l) = lines.next() {
        let Some(info) = l.strip_prefix("```") else {
            continue;
        };
        let mut words = info.split_whitespace();
        let (Some(kind), Some(name)) = (words.next(), words.next()) else {
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
            }
            continue;
        };
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        out.insert(name.to_string(), (kind.to_string(), body));
    }
    out
}

fn hex_of(body: &str) -> String {
    body.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.chars().filter(|c| c.is_ascii_hexdigit()))
        .collect::<String>()
        .to_lowercase()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn check_hex(blocks: &HashMap<String, (String, String)>, name: &str, bytes: &[u8]) {
    let (kind, body) = blocks
        .get(name)
        .unwrap_or_else(|| panic!("block {name} missing"));
    assert_eq!(kind, "hex");
    assert_eq!(
        hex_of(body),
        hex(bytes),
        "block {name}; the code makes:\n{}",
        hex(bytes)
    );
}

fn check_sdp(blocks: &HashMap<String, (String, String)>, name: &str, text: &str) {
    let (kind, body) = blocks
        .get(name)
        .unwrap_or_else(|| panic!("block {name} missing"));
    assert_eq!(kind, "sdp");
    assert_eq!(
        body.as_str(),
        text.replace("\r\n", "\n"),
        "block {name}; the code makes:\n{text}"
    );
}

fn ch(n: &str, u: &str, s: i8) -> ChannelSpec {
    ChannelSpec {
        name: n.into(),
        unit: Unit::from_symbol(u).unwrap(),
        scale: s,
    }
}

fn agent_description() -> StreamDescription {
    StreamDescription {
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
    }
}

const SSRC: u32 = 0x1a2b3c4d;

/// The five instants of section 8's samples packet: temperature, pressure.
const SECTION_8_SAMPLES: [i32; 10] = [
    2150,
    101_325,
    2151,
    101_325,
    2151,
    MISSING_SAMPLE,
    2152,
    101_324,
    2152,
    101_324,
];

/// A compound writer holding an empty RR from `ssrc`.
fn writer_with_rr(buf: &mut [u8], ssrc: u32) -> CompoundWriter<'_> {
    let mut w = CompoundWriter::new(buf);
    w.receiver_report(&ReceiverReport {
        ssrc,
        reports: vec![],
    })
    .unwrap();
    w
}

fn agent_media() -> LocalMedia {
    LocalMedia {
        rtp: "198.51.100.10:40000".parse().unwrap(),
        rtcp: None,
        ssrc: Some(SSRC),
        cname: Some("s1@198.51.100.10".into()),
        security: Default::default(),
    }
}

fn collector_media() -> LocalMedia {
    LocalMedia::new("203.0.113.5:50000".parse().unwrap())
}

/// The `o=` lines of the agent and the collector of the examples.
fn origins() -> (LocalSdp, LocalSdp) {
    (
        LocalSdp::with_session_id("s1", "198.51.100.10".parse().unwrap(), 3_900_000_001),
        LocalSdp::with_session_id("collector", "203.0.113.5".parse().unwrap(), 3_900_000_002),
    )
}

#[test]
fn the_page_matches_the_code() {
    let doc = doc();
    let b = blocks(&doc);

    // SDP: the agent's offer, the collector's answer (two channels, at
    // most 5 Hz), the collector's re-offer halving that, the agent's answer.
    let (mut agent_origin, mut coll_origin) = origins();
    let offer1 = make_offer(
        &agent_description(),
        StreamRole::Sender,
        &agent_media(),
        &mut agent_origin,
    )
    .unwrap();
    check_sdp(&b, "agent-offer", &offer1.to_string());
    let policy = AnswerPolicy::Receive(ReceivePolicy {
        channels: Some(vec!["temperature".into(), "pressure".into()]),
        max_rate_hz: Some(5.0),
        ..ReceivePolicy::default()
    });
    let (answer1, agreed) =
        answer_offer(&offer1, &policy, &collector_media(), &mut coll_origin).unwrap();
    check_sdp(&b, "collector-answer", &answer1.to_string());
    assert_eq!(
        apply_answer(&offer1, &answer1, StreamRole::Sender)
            .unwrap()
            .description,
        agreed.description
    );
    let d = agreed.description.clone();

    let mut half = d.clone();
    half.samples.as_mut().unwrap().period = 40;
    let half = half.next_config_after(&d);
    let reoffer = make_offer(
        &half,
        StreamRole::Receiver,
        &collector_media(),
        &mut coll_origin,
    )
    .unwrap();
    check_sdp(&b, "collector-reoffer", &reoffer.to_string());
    let caps = AnswerPolicy::Send {
        capabilities: agent_description(),
    };
    let (reanswer, at_agent) =
        answer_offer(&reoffer, &caps, &agent_media(), &mut agent_origin).unwrap();
    check_sdp(&b, "agent-reanswer", &reanswer.to_string());
    assert_eq!(
        apply_answer(&reoffer, &reanswer, StreamRole::Receiver)
            .unwrap()
            .description,
        at_agent.description
    );

    // 488 for a phone's offer.
    let phone = parse_sdp_str(&b["phone-offer"].1).unwrap();
    let e = answer_offer(
        &phone,
        &AnswerPolicy::Receive(ReceivePolicy::default()),
        &collector_media(),
        &mut coll_origin,
    )
    .unwrap_err();
    let warning = format!("Warning: {}", e.warning_header("collector.example.org"));
    assert_eq!(e.status_code(), 488);
    assert!(doc.contains(&warning), "the page lacks:\n{warning}");

    // RTP: SSRC 0x1a2b3c4d, first sequence number 0x1234, timestamp
    // base 0x00001000 (random in real life).
    let mut tx = RtpSender::with_start(SSRC, 0x1234, 0x0000_1000);
    let mut buf = [0u8; 1500];
    let t0 = Instant::now();
    let mut outbox = EventOutbox::new(2, 0b00, 0x0101, OutboxConfig::default(), t0);
    let state = outbox.poll_packet(t0, 0).unwrap();
    let n = tx.write_events(&mut buf, &d, &state).unwrap();
    check_hex(&b, "events-state", &buf[..n]);
    let values = SECTION_8_SAMPLES;
    let n = tx.write_samples(&mut buf, &d, 0, &values, true).unwrap();
    check_hex(&b, "samples", &buf[..n]);
    // Door opens at tick 99.75; the debounced edge is sent at tick 100.
    for ms in [40, 240] {
        outbox.poll_packet(t0 + Duration::from_millis(ms), ms / 10);
    }
    let t = t0 + Duration::from_secs(1);
    outbox.edge(
        0,
        true,
        TickTime {
            tick: 99,
            fraction: 3 << 30,
        },
        t,
    );
    let edge = outbox.poll_packet(t, 100).unwrap();
    let n = tx.write_events(&mut buf, &d, &edge).unwrap();
    check_hex(&b, "events-edge", &buf[..n]);

    // RTCP: an SR at tick 100, which is 2026-01-01T00:00:01.5Z on the
    // agent's clock (so tick 0 was 00:00:00.5).
    let ntp = NtpTime::from_unix(Duration::from_millis(1_767_225_601_500));
    let sr = tx.sender_report(100, ntp);
    let n = sender_report_compound(&mut buf, &sr, "s1@198.51.100.10").unwrap();
    check_hex(&b, "sender-report", &buf[..n]);
    let rr = ReceiverReport {
        ssrc: 0x0bad_cafe,
        reports: vec![ReportBlock {
            ssrc: SSRC,
            fraction_lost: 0,
            cumulative_lost: 1,
            extended_highest_seq: 0x1236,
            jitter: 2,
            last_sr: ntp.middle32(),
            delay_since_last_sr: 0x0001_8000,
        }],
    };
    let n = receiver_report_compound(&mut buf, &rr, "collector@203.0.113.5").unwrap();
    check_hex(&b, "receiver-report", &buf[..n]);

    // The absolute times the page derives from that SR.
    let m = SrMapping {
        ntp,
        rtp_timestamp: 0x1064,
        clock_rate: 100,
    };
    let at = |ts: u32, off: i64| {
        m.system_time_at(ts, off)
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
    };
    assert_eq!(at(0x1000 + 20, 0), Duration::from_millis(1_767_225_600_700));
    assert_eq!(
        at(0x1064, -(1 << 30)),
        Duration::from_micros(1_767_225_601_497_500)
    );
}

/// docs/protocol.md section 11: the SDP with recovery, a live packet with
/// its sample instant, a NACK, the RTX packet answering it, and the APP
/// messages.
#[test]
fn the_recovery_examples_match_the_code() {
    let doc = doc();
    let b = blocks(&doc);
    let (mut agent_origin, mut coll_origin) = origins();
    let agent_support = RecoverySupport {
        instant: true,
        rtx: Some(RtxSupport {
            rtx_time: Duration::from_millis(3000),
            ssrc: Some(0x5e1f_0001),
        }),
        backfill: Some(BackfillSupport {
            oldest: Some(1_766_620_800_000_000_000),
            ssrc: Some(0x0bf0_0001),
            ..BackfillSupport::default()
        }),
    };
    let collector_support = RecoverySupport {
        instant: true,
        rtx: Some(RtxSupport {
            rtx_time: Duration::from_millis(3000),
            ssrc: None,
        }),
        backfill: Some(BackfillSupport {
            mark: Some(1_767_225_300_100_000_000),
            max_rate: Some(2000),
            ..BackfillSupport::default()
        }),
    };
    let offer = offer_with_recovery(
        &agent_description(),
        StreamRole::Sender,
        &agent_media(),
        &agent_support,
        &mut agent_origin,
    )
    .unwrap();
    check_sdp(&b, "recovery-offer", &offer.to_string());
    let policy = AnswerPolicy::Receive(ReceivePolicy {
        channels: Some(vec!["temperature".into(), "pressure".into()]),
        max_rate_hz: Some(5.0),
        ..ReceivePolicy::default()
    });
    let (answer, agreed, at_collector) = answer_with_recovery(
        &offer,
        &policy,
        &collector_media(),
        &collector_support,
        &mut coll_origin,
    )
    .unwrap();
    check_sdp(&b, "recovery-answer", &answer.to_string());
    let at_agent = agreed_recovery(&offer, &answer, StreamRole::Sender);
    assert_eq!(at_agent, at_collector);
    let instant_id = at_agent.instant_id.unwrap();

    // The first samples packet of section 8, with its sample instant:
    // tick 0 is 2026-01-01T00:00:00.5Z, instants 200 ms apart.
    let mut tx = RtpSender::with_start(SSRC, 0x1235, 0x0000_1000);
    let instant = SampleInstant {
        first_ns: 1_767_225_600_500_000_000,
        step_ns: 200_000_000,
    };
    let d = agreed.description;
    let values = SECTION_8_SAMPLES;
    let mut live = [0u8; 128];
    let n = tx
        .write_extended(
            &mut live,
            96,
            true,
            tx.timestamp(0),
            &[(instant_id, &instant.encode())],
            |buf| sipsensor_protocol::encode_samples(buf, d.config, 2, &values),
        )
        .unwrap();
    let live = &live[..n];
    check_hex(&b, "samples-with-instant", live);
    let parsed = parse_rtp(live).unwrap();
    assert_eq!(parsed.sample_instant(instant_id).unwrap(), Some(instant));

    // The collector lost it and NACKs it.
    let mut rtcp = [0u8; 128];
    let mut w = writer_with_rr(&mut rtcp, 0x0bad_cafe);
    let at = w.len();
    w.nack(&Nack::for_lost(0x0bad_cafe, SSRC, &[0x1235]))
        .unwrap();
    let end = w.len();
    check_hex(&b, "nack", &rtcp[at..end]);

    // The agent's RTX answer.
    let t0 = Instant::now();
    let rtx = at_agent.rtx.unwrap();
    let mut history = RetransmitHistory::new(
        RtxConfig {
            payload_types: rtx.payload_types,
            rtx_time: rtx.rtx_time,
            capacity: 32,
            max_rate: 2000,
            burst: 1500,
            resend_holdoff: Duration::from_millis(100),
        },
        RtpSender::with_start(rtx.ssrc.unwrap(), 0x0001, 0),
        t0,
    );
    history.record(live, t0);
    history.on_nack([0x1235], t0);
    let mut out = [0u8; 256];
    let n = history.poll_transmit(&mut out, t0).unwrap().unwrap();
    check_hex(&b, "rtx", &out[..n]);

    // The APP messages.
    let mut app = [0u8; 128];
    let mut w = writer_with_rr(&mut app, 0x0bad_cafe);
    let start = w.len();
    w.app(
        &BackfillMessage::Committed {
            media_ssrc: SSRC,
            through_ns: 1_767_225_600_700_000_000,
        }
        .to_app(0x0bad_cafe),
    )
    .unwrap();
    let end = w.len();
    check_hex(&b, "app-committed", &app[start..end]);
    let mut w = writer_with_rr(&mut app, SSRC);
    let start = w.len();
    w.app(
        &BackfillMessage::Expired {
            media_ssrc: SSRC,
            after_ns: 1_767_225_300_100_000_000,
            before_ns: 1_767_225_400_000_000_000,
        }
        .to_app(SSRC),
    )
    .unwrap();
    let end = w.len();
    check_hex(&b, "app-expired", &app[start..end]);
}

/// Section 12's bodies (```` ```fleet <name> ````): read by the code and
/// written back byte for byte, and the want's URL names its own SHA-256.
#[test]
fn the_fleet_examples_match_the_code() {
    use sipsensor_protocol::fleet::{FleetState, FleetWant, RebootPolicy, UpdateState, sha256_hex};
    let doc = doc();
    let b = blocks(&doc);
    let body = |name: &str| {
        let (kind, body) = b
            .get(name)
            .unwrap_or_else(|| panic!("block {name} missing"));
        assert_eq!(kind, "fleet");
        body.clone()
    };
    let text = body("fleet-state-idle");
    let state = FleetState::parse(text.as_bytes()).unwrap();
    assert_eq!(state.update, UpdateState::Idle);
    assert_eq!(state.slot, "A");
    assert_eq!(state.to_body().unwrap(), text.as_bytes());
    let text = body("fleet-want");
    let want = FleetWant::parse(text.as_bytes()).unwrap().unwrap();
    assert_eq!(want.reboot, RebootPolicy::Now);
    assert_eq!(want.size, 41_234_432);
    assert!(
        want.url
            .ends_with(&format!("/bundles/{}.raucb", sha256_hex(&want.sha256)))
    );
    assert_eq!(want.to_body().unwrap(), text.as_bytes());
}
