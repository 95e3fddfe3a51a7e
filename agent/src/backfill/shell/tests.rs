//! The backfill thread on loopback sockets with SRTP, against a real
//! spool: what a collector receives and what the spool keeps.

use super::*;
use crate::backfill::tests::{BF_SSRC, LIVE_SSRC, SEC, STEP, T0, plan, real_spool, runs};
use sipsensor_protocol::{BackfillMessage, RtcpPacket, SrtpSuite, parse_rtcp_compound, parse_rtp};
use std::collections::BTreeSet;

fn bound() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    s
}

#[test]
fn the_thread_backfills_over_srtp_reports_unsampled_and_releases_at_the_mark() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut spool = real_spool(dir.path());
    // 40 runs before L, and the live stream's first one from L on.
    for r in runs(T0, 41) {
        spool.append(&r, SystemTime::now());
    }
    let spool = Arc::new(Mutex::new(spool));
    let (collector_rtp, collector_rtcp) = (bound(), bound());
    let key = SrtpKey::generate(SrtpSuite::AesCm128HmacSha1_80);
    let mut open = SrtpContext::inbound(&key).expect("inbound");
    let live = T0 + 200 * STEP;
    let mark = CommittedMark::detached();
    let counters = Arc::new(Counters::default());
    let shell = BackfillShell::start(ShellPlan {
        backfill: plan(T0 - STEP, live, 1_000_000),
        rtp: bound(),
        rtcp: bound(),
        remote_rtp: collector_rtp.local_addr().expect("addr"),
        remote_rtcp: collector_rtcp.local_addr().expect("addr"),
        srtp: Some(key),
        cname: "s1@127.0.0.1".into(),
        spool: spool.clone(),
        mark: mark.clone(),
        counters: counters.clone(),
        first_sequence: 7,
        live_start: None,
    })
    .expect("start");
    let mut buf = [0u8; 2048];
    let mut plain = Vec::new();
    let mut instants = BTreeSet::new();
    for _ in 0..50 {
        if instants.len() == 200 {
            break;
        }
        let n = collector_rtp.recv(&mut buf).expect("a backfill packet");
        open.unprotect_rtp(&buf[..n], &mut plain).expect("SRTP");
        let p = parse_rtp(&plain).expect("RTP");
        assert_eq!((p.ssrc, p.payload_type), (BF_SSRC, 100));
        let stamp = p.sample_instant(1).expect("ext").expect("instant");
        let rows = (p.payload.len() - 4) / 12;
        instants.extend((0..rows as u64).map(|k| stamp.first_ns + k * stamp.step_ns));
    }
    assert_eq!(instants.len(), 200, "every spooled instant before L");
    // Everything went: the compound reports the rest as unsampled.
    let unsampled = BackfillMessage::Unsampled {
        media_ssrc: LIVE_SSRC,
        after_ns: live - STEP,
        before_ns: live,
    };
    let found = (0..5).any(|_| {
        let n = collector_rtcp.recv(&mut buf).expect("a compound");
        open.unprotect_rtcp(&buf[..n], &mut plain).expect("SRTCP");
        let packets = parse_rtcp_compound(&plain).expect("compound");
        assert!(
            matches!(packets.first(), Some(RtcpPacket::SenderReport(sr)) if sr.ssrc == BF_SSRC)
        );
        packets.iter().any(|p| match p {
            RtcpPacket::App(a) => BackfillMessage::from_app(a) == Ok(Some(unsampled)),
            _ => false,
        })
    });
    assert!(found, "unsampled (last, L) reported");
    // The collector's mark passes the live start: the spool is released.
    let through = live + SEC;
    mark.set(through);
    let released = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        spool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .released()
            == through as i64
    });
    assert!(released);
    shell.stop();
    assert!(counters.backfill_packets.load(Ordering::Relaxed) >= 1);
    assert!(counters.backfill_bytes.load(Ordering::Relaxed) > 200 * 12);
}
