//! The agent's SRTP checked by an independent implementation: a collector
//! offer with SDES keys is answered by the protocol crate as the agent's
//! session does, the agent streams under the agreed keys, and libsrtp
//! (through Python's pylibsrtp, tests/srtp/unprotect.py) unprotects what
//! it sent with the key read from the agent's SDP answer. The payloads must
//! decode to exactly the values the board held; a wrong key or one flipped
//! bit must make libsrtp refuse.
//!
//! Runs under `make test-srtp` (in `make test`), which makes the venv and
//! names its Python in SIPSENSOR_SRTP_PYTHON; without it the test says so
//! and passes (plain `cargo test`).

// Test helpers outside #[test] functions: a failure is the test's.
#![allow(clippy::unwrap_used)]

use sipsensor_agent::config::RealtimeConfig;
use sipsensor_agent::handoff::{self, Board};
use sipsensor_agent::sensor::Reading;
use sipsensor_agent::status::StatusHub;
use sipsensor_agent::stream::{MemoryLock, StreamOptions, StreamPlan, Streamer};
use sipsensor_protocol::{
    AnswerPolicy, ChannelSpec, IdGenerator, LocalMedia, LocalSdp, MediaSecurity, Payload,
    RtcpPacket, RtpSender, SampleFormat, SdpAttribute, SrtpKey, SrtpPolicy, SrtpSuite,
    StreamDescription, StreamRole, Unit, answer_offer, decode_payload, make_offer,
    parse_rtcp_compound, parse_rtp, parse_sdp_str,
};
use std::io::Write;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHANNELS: usize = 3;

fn description() -> StreamDescription {
    StreamDescription {
        clock_rate: 100,
        config: 1,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 1,
            samples_per_packet: 2,
            channels: (0..CHANNELS)
                .map(|c| ChannelSpec {
                    name: format!("c{c}"),
                    unit: Unit::from_symbol("Cel").expect("a SenML unit"),
                    scale: -2,
                })
                .collect(),
        }),
        events: None,
    }
}

fn secure() -> MediaSecurity {
    MediaSecurity {
        srtp: SrtpPolicy::Required,
        signalling_secure: true,
    }
}

/// What the agent sent under `suite`, and the key its SDP answer carries.
struct Capture {
    suite: &'static str,
    key: String,
    rtp: Vec<Vec<u8>>,
    rtcp: Vec<Vec<u8>>,
    ssrc: u32,
}

fn stream_under(suite: SrtpSuite) -> Capture {
    let collector_rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let collector_rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&collector_rtp, &collector_rtcp] {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    }
    // The collector's offer, with only `suite` left in it.
    let mut collector = LocalMedia::new(collector_rtp.local_addr().unwrap());
    collector.security = secure();
    let mut origin = LocalSdp::with_session_id("collector", "127.0.0.1".parse().unwrap(), 1);
    let mut offer = make_offer(
        &description(),
        StreamRole::Receiver,
        &collector,
        &mut origin,
    )
    .expect("an SRTP offer");
    offer.media[0].attributes.retain(|a: &SdpAttribute| {
        a.name != "crypto" || a.value.as_deref().is_some_and(|v| v.contains(suite.name()))
    });

    let (rtp, rtcp) = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    let mut ids = IdGenerator::seeded(5);
    let sender = RtpSender::new(&mut ids);
    let mut agent = LocalMedia::new(rtp.local_addr().unwrap());
    agent.ssrc = Some(sender.ssrc());
    agent.cname = Some("s@127.0.0.1".into());
    agent.security = secure();
    let mut origin = LocalSdp::with_session_id("s", "127.0.0.1".parse().unwrap(), 2);
    let policy = AnswerPolicy::Send {
        capabilities: description(),
    };
    let (answer, agreed) = answer_offer(&offer, &policy, &agent, &mut origin).unwrap();
    // The key as the collector reads it: from the answer's text.
    let text = answer.to_string();
    let answer = parse_sdp_str(&text).unwrap();
    let crypto = answer.media[0]
        .attribute_values("crypto")
        .next()
        .expect("the answer's a=crypto");
    let key = crypto
        .split_once("inline:")
        .map(|(_, k)| k.to_owned())
        .expect("an inline key");

    let (mut writer, reader) = handoff::samples(CHANNELS, Duration::from_secs(60));
    let board = Board::new(
        vec![reader],
        &[CHANNELS],
        (0..CHANNELS).map(|c| (0, c)).collect(),
    );
    let (_inputs, events) = handoff::events(0, 1);
    let plan = StreamPlan {
        rtp,
        rtcp,
        remote_rtp: collector_rtp.local_addr().unwrap(),
        remote_rtcp: collector_rtcp.local_addr().unwrap(),
        description: agreed.description.clone(),
        sender,
        ids,
        cname: "s@127.0.0.1".into(),
        channels: (0..CHANNELS).map(|c| format!("c{c}")).collect(),
        inputs: Vec::new(),
        options: StreamOptions {
            rtcp_min_interval: Duration::from_millis(100),
            memory_lock: MemoryLock::Off,
            ..StreamOptions::default()
        },
        srtp: agreed.srtp.clone(),
        spool: None,
        recovery: Default::default(),
    };
    let rt = RealtimeConfig {
        priority: 10,
        cpu: None,
    };
    let reading = Reading {
        at: Instant::now(),
        values: (0..CHANNELS).map(|c| Some(c as f64 + 1.0)).collect(),
    };
    writer.publish(&reading);
    let ssrc = plan.sender.ssrc();
    let streamer = Streamer::start(plan, board, events, &rt, StatusHub::new()).unwrap();
    let (mut rtp_seen, mut rtcp_seen) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 2048];
    while (rtp_seen.len() < 20 || rtcp_seen.is_empty()) && Instant::now() < deadline {
        writer.publish(&reading);
        if let Ok(n) = collector_rtp.recv(&mut buf) {
            rtp_seen.push(buf[..n].to_vec());
        }
        if let Ok(n) = collector_rtcp.recv(&mut buf) {
            rtcp_seen.push(buf[..n].to_vec());
        }
    }
    streamer.stop().unwrap();
    assert!(
        rtp_seen.len() >= 20 && !rtcp_seen.is_empty(),
        "too little sent"
    );
    Capture {
        suite: suite.name(),
        key,
        rtp: rtp_seen,
        rtcp: rtcp_seen,
        ssrc,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex from the script"))
        .collect()
}

/// Plaintext packets, RTP then RTCP.
type Plaintexts = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// libsrtp's plaintexts, or its complaint.
fn libsrtp(python: &Path, c: &Capture, key: &str) -> Result<Plaintexts, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/srtp/unprotect.py");
    let request = serde_json::json!({
        "suite": c.suite,
        "key": key,
        "rtp": c.rtp.iter().map(|p| hex(p)).collect::<Vec<_>>(),
        "rtcp": c.rtcp.iter().map(|p| hex(p)).collect::<Vec<_>>(),
    });
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = |k: &str| -> Vec<Vec<u8>> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|p| unhex(p.as_str().unwrap()))
            .collect()
    };
    Ok((list("rtp"), list("rtcp")))
}

#[test]
fn libsrtp_decrypts_what_the_agent_sent_with_the_key_from_the_sdp() {
    let Some(python) = std::env::var_os("SIPSENSOR_SRTP_PYTHON") else {
        eprintln!("skipped: SIPSENSOR_SRTP_PYTHON is not set (run `make test-srtp`)");
        return;
    };
    let python = Path::new(&python);
    for suite in SrtpSuite::ALL {
        let c = stream_under(suite);
        let (rtp, rtcp) = libsrtp(python, &c, &c.key).unwrap_or_else(|e| panic!("{suite}: {e}"));
        for (wire, plain) in c.rtp.iter().zip(&rtp) {
            assert_ne!(
                wire[12..plain.len()],
                plain[12..],
                "{suite}: sent encrypted"
            );
            let packet = parse_rtp(plain).unwrap();
            assert_eq!(packet.ssrc, c.ssrc);
            assert_eq!(packet.payload_type, 96);
            let Payload::Samples(s) =
                decode_payload(packet.payload).unwrap_or_else(|e| panic!("{suite}: {e}"))
            else {
                panic!("{suite}: not a samples payload");
            };
            // Before the sensor's first reading an instant may be MISSING;
            // every value present is the board's (c + 1 at scale -2).
            assert_eq!((s.count, usize::from(s.channels)), (2, CHANNELS));
            for instant in 0..usize::from(s.count) {
                for (c, v) in s.instant(instant).enumerate() {
                    assert!(
                        v.is_none_or(|v| i64::from(v) == (c as i64 + 1) * 100),
                        "{suite}: value {v:?} of channel {c}"
                    );
                }
            }
        }
        assert_eq!(rtp.len(), c.rtp.len());
        let reports = parse_rtcp_compound(&rtcp[0]).unwrap();
        assert!(
            matches!(&reports[0], RtcpPacket::SenderReport(sr) if sr.ssrc == c.ssrc),
            "{suite}: {reports:?}"
        );

        // A stranger's key, and one flipped bit, are refused.
        let wrong = SrtpKey::generate(suite).to_base64();
        assert!(libsrtp(python, &c, &wrong).is_err(), "{suite}: wrong key");
        let key = c.key.clone();
        let mut flipped = c.rtp[3].clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let tampered = Capture {
            rtp: vec![flipped],
            rtcp: Vec::new(),
            ..c
        };
        assert!(
            libsrtp(python, &tampered, &key).is_err(),
            "{suite}: flipped bit"
        );
    }
}
