//! Findings 6 and 9 on a running collector, over real UDP from loopback:
//! an INVITE never ACKed is answered once (no retransmitted 401s), a
//! `sips:` Request-URI in clear gets 416, and each is counted.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use sip_support::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Sends `method` for `scheme:collector@...` once, never ACKs, and returns
/// the status lines received within `listen`.
fn send_once(to: SocketAddr, method: &str, scheme: &str, listen: Duration) -> Vec<String> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = s.local_addr().unwrap();
    let msg = format!(
        "{method} {scheme}:collector@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-{method}{}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:s1@{DOMAIN}>;tag=g1\r\n\
         To: <sip:collector@{DOMAIN}>\r\n\
         Call-ID: guard-{method}-{}@{me}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:s1@{me}>\r\n\
         Content-Length: 0\r\n\r\n",
        me.port(),
        me.port(),
    );
    s.send_to(msg.as_bytes(), to).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + listen;
    let mut buf = [0u8; 8192];
    let mut got = Vec::new();
    while Instant::now() < end {
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            got.push(text.lines().next().unwrap_or_default().to_owned());
        }
    }
    got
}

#[test]
fn an_unanswered_challenge_is_not_retransmitted_and_sips_in_clear_is_refused() {
    runtime().block_on(async {
        let mut c = start(&[("s1", "pw-1")], &sip_section("")).await;
        let sip = c.sip;
        // A transaction would resend the 401 at 0.5, 1.5 and 3.5 s.
        let got = tokio::task::spawn_blocking(move || {
            send_once(sip, "INVITE", "sip", Duration::from_millis(2000))
        })
        .await
        .unwrap();
        assert_eq!(got, ["SIP/2.0 401 Unauthorized"]);
        assert_eq!(
            c.metric("sipsensor_collector_sip_auth_total{outcome=\"challenged\"}"),
            1.0
        );
        for method in ["INVITE", "REGISTER", "OPTIONS"] {
            let got = tokio::task::spawn_blocking(move || {
                send_once(sip, method, "sips", Duration::from_millis(300))
            })
            .await
            .unwrap();
            assert_eq!(got, ["SIP/2.0 416 Unsupported URI Scheme"], "{method}");
        }
        assert_eq!(c.rejected("sip_insecure_scheme"), 3.0);
        c.stop().await;
    });
}
