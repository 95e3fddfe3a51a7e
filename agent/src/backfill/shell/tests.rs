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

#[test]
fn the_nap_lasts_until_the_core_s_timer_and_at_most_the_release_lag() {
    let now = Instant::now();
    let ms = Duration::from_millis;
    // Pacing the next packet, or the RTCP compound: that timer.
    assert_eq!(nap(Some(now + ms(20)), false, now), ms(20));
    // Due already: at once.
    assert_eq!(nap(Some(now - ms(5)), false, now), Duration::ZERO);
    // Done, the reopen check 6 s away: asleep until then, but marks
    // are read (and the spool released) at least every RELEASE_LAG.
    assert_eq!(nap(Some(now + ms(6000)), false, now), RELEASE_LAG);
    assert_eq!(nap(None, false, now), RELEASE_LAG);
    // The spool has not reached the live start yet: look again soon.
    assert_eq!(nap(Some(now + ms(6000)), true, now), SPOOL_RETRY);
    assert_eq!(nap(Some(now + ms(20)), true, now), ms(20));
}

/// The voluntary context switches (sleeps) of this process's threads
/// called `name`, by thread id.
fn sleeps_of(name: &str) -> std::collections::BTreeMap<u32, u64> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Default::default();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| {
            let dir = t.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            if comm.trim() != name {
                return None;
            }
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let sleeps = status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
                .trim()
                .parse()
                .ok()?;
            Some((t.file_name().to_str()?.parse().ok()?, sleeps))
        })
        .collect()
}

#[test]
fn a_backfill_with_nothing_to_send_sleeps_instead_of_polling_for_marks() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut spool = real_spool(dir.path());
    for r in runs(T0, 11) {
        spool.append(&r, SystemTime::now());
    }
    let spool = Arc::new(Mutex::new(spool));
    let live = T0 + 100 * STEP;
    let collector = bound();
    let others = sleeps_of("backfill");
    // The collector holds everything before L: nothing to backfill.
    let shell = BackfillShell::start(ShellPlan {
        backfill: plan(live - 1, live, 1_000_000),
        rtp: bound(),
        rtcp: bound(),
        remote_rtp: collector.local_addr().expect("addr"),
        remote_rtcp: collector.local_addr().expect("addr"),
        srtp: None,
        cname: "s1@127.0.0.1".into(),
        spool,
        mark: CommittedMark::detached(),
        counters: Arc::new(Counters::default()),
        first_sequence: 7,
        live_start: None,
    })
    .expect("start");
    std::thread::sleep(Duration::from_millis(200));
    let before = sleeps_of("backfill");
    std::thread::sleep(Duration::from_millis(1500));
    let after = sleeps_of("backfill");
    shell.stop();
    // Other tests' backfill threads may run meanwhile: ours is new.
    let ours: Vec<u64> = after
        .iter()
        .filter(|(tid, _)| !others.contains_key(tid))
        .filter_map(|(tid, n)| Some(n - before.get(tid)?))
        .collect();
    assert!(!ours.is_empty(), "the backfill thread is found in /proc");
    // It polled every 100 ms for marks: 15 sleeps in this window.
    assert!(ours.iter().any(|&n| n <= 1), "sleeps in 1.5 s: {ours:?}");
}
