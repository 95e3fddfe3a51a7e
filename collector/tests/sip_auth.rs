//! Who may open a session: digest-authenticated sensors (401 first),
//! trusted peers, nobody else (403); and what: a sensor stream, not a
//! phone's audio (488 with a Warning, docs/protocol.md 3.5).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use sip_support::*;
use sipsensor_loadgen::pump::MediaPump;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Sends an INVITE from `from_user` with `sdp` and returns the first final
/// response (status line and headers).
fn raw_invite(to: SocketAddr, from_user: &str, sdp: &str) -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = s.local_addr().unwrap();
    let msg = format!(
        "INVITE sip:collector@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{from_user}@{DOMAIN}>;tag=t1\r\n\
         To: <sip:collector@{to}>\r\n\
         Call-ID: raw-{}@{me}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{from_user}@{me}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        me.port(),
        me.port(),
        sdp.len()
    );
    s.send_to(msg.as_bytes(), to).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
    panic!("no final response to the INVITE");
}

const PHONE: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

#[test]
fn digest_challenge_then_only_the_right_user_gets_in() {
    runtime().block_on(async {
        let mut c = start(&[("s1", "pw-1")], &sip_section("")).await;
        let sip = c.sip;
        let r = tokio::task::spawn_blocking(move || raw_invite(sip, "s1", PHONE))
            .await
            .unwrap();
        assert!(r.starts_with("SIP/2.0 401"), "{r}");
        assert!(r.contains("realm=\"example.net\""), "{r}");
        assert!(r.contains("algorithm=SHA-256"), "{r}");

        let pump = MediaPump::start().unwrap();
        // The right password: the user agent answers the 401 and gets in.
        let good = sensor(&c, &pump, "s1", "pw-1", 1).await;
        good.call().await.unwrap();
        good.hangup().await;
        // A wrong password is challenged again and refused.
        let bad = sensor(&c, &pump, "s1", "wrong", 2).await;
        let e = bad.call().await.unwrap_err().to_string();
        assert!(e.contains("401"), "{e}");
        // Authenticated as s1, calling as s2: forbidden.
        let impostor = sensor_as(&c, &pump, "sip:s2@example.net", "s1", "pw-1", 3).await;
        let e = impostor.call().await.unwrap_err().to_string();
        assert!(e.contains("403") && e.contains("may not call as"), "{e}");
        assert!(
            c.metric("sipsensor_collector_packets_rejected_total{reason=\"sip_forbidden\"}") >= 1.0
        );
        c.stop().await;
    });
}

#[test]
fn untrusted_peers_get_403_trusted_ones_need_no_digest() {
    runtime().block_on(async {
        let untrusted = "sip:\n  bind: 127.0.0.1:0\n  registrar: false\n  trusted_peers: [10.0.0.0/8]\n  control_socket: '{dir}/control.sock'\n";
        let mut c = start(&[], untrusted).await;
        let sip = c.sip;
        let r = tokio::task::spawn_blocking(move || raw_invite(sip, "s1", PHONE))
            .await
            .unwrap();
        assert!(r.starts_with("SIP/2.0 403"), "{r}");
        assert!(r.contains("Warning: 399"), "{r}");
        assert!(r.contains("not a trusted peer"), "{r}");
        c.stop().await;

        let trusted = "sip:\n  bind: 127.0.0.1:0\n  registrar: false\n  trusted_peers: [127.0.0.0/8]\n  control_socket: '{dir}/control.sock'\n";
        let mut c = start(&[], trusted).await;
        let pump = MediaPump::start().unwrap();
        // Any password: a trusted proxy authenticated it.
        let s = sensor(&c, &pump, "s9", "whatever", 4).await;
        s.call().await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.hangup().await;
        let stored = c.sensor("sip:s9@example.net").await;
        assert!(!c.wait_samples(stored.id, 3).await.is_empty());

        // A phone's audio offer: 488 and why (docs/protocol.md 3.5).
        let sip = c.sip;
        let r = tokio::task::spawn_blocking(move || raw_invite(sip, "phone", PHONE))
            .await
            .unwrap();
        assert!(r.starts_with("SIP/2.0 488"), "{r}");
        assert!(
            r.contains("Warning: 304 ") && r.contains("no sensor stream offered (audio RTP/AVP)"),
            "{r}"
        );
        // SDP that does not parse: 400.
        let r = tokio::task::spawn_blocking(move || raw_invite(sip, "phone", "v=9\r\nbogus\r\n"))
            .await
            .unwrap();
        assert!(r.starts_with("SIP/2.0 400"), "{r}");
        assert_eq!(c.rejected("sip_not_acceptable"), 2.0);
        c.stop().await;
    });
}
