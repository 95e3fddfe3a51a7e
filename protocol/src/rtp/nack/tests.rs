use super::*;
use crate::test_clock::base;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_gap_is_nacked_after_the_reorder_delay_and_retried() {
    let t0 = base();
    let mut s = NackScheduler::new(NackConfig::default());
    s.on_received(100, t0);
    s.on_received(103, t0);
    assert_eq!(s.missing(), 2);
    assert!(s.poll_nack(t0 + ms(19)).is_empty(), "may be reordered");
    assert_eq!(s.poll_timeout(), Some(t0 + ms(20)));
    assert_eq!(s.poll_nack(t0 + ms(20)), vec![101, 102]);
    assert!(s.poll_nack(t0 + ms(21)).is_empty());
    // 101 arrives (RTX); 102 is asked for again one retry interval later.
    s.on_received(101, t0 + ms(60));
    assert_eq!(s.poll_nack(t0 + ms(220)), vec![102]);
    assert!(s.take_given_up().is_empty());
}

#[test]
fn a_reordered_packet_is_never_nacked() {
    let t0 = base();
    let mut s = NackScheduler::new(NackConfig::default());
    s.on_received(1, t0);
    s.on_received(3, t0);
    s.on_received(2, t0 + ms(5));
    assert!(s.poll_nack(t0 + ms(50)).is_empty());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_packet_is_given_up_after_rtx_time_or_its_last_nack() {
    let t0 = base();
    let mut s = NackScheduler::new(NackConfig {
        max_nacks: 2,
        ..NackConfig::default()
    });
    s.on_received(10, t0);
    s.on_received(12, t0);
    assert_eq!(s.poll_nack(t0 + ms(20)), vec![11]);
    assert_eq!(s.poll_nack(t0 + ms(220)), vec![11]);
    // Out of NACKs: given up when the next one would be due.
    assert!(s.poll_nack(t0 + ms(420)).is_empty());
    assert_eq!(s.take_given_up(), vec![11..12]);
    assert_eq!(s.missing(), 0);

    let mut s = NackScheduler::new(NackConfig::default());
    s.on_received(10, t0);
    s.on_received(20, t0);
    assert!(!s.poll_nack(t0 + ms(20)).is_empty());
    assert!(s.poll_nack(t0 + Duration::from_secs(3)).is_empty());
    assert_eq!(s.take_given_up(), vec![11..20], "rtx-time has passed");
}

#[test]
fn a_sender_jumping_its_sequence_numbers_cannot_grow_the_state() {
    let t0 = base();
    let cfg = NackConfig {
        max_tracked: 64,
        max_per_nack: 16,
        ..NackConfig::default()
    };
    let mut s = NackScheduler::new(cfg);
    let mut seq = 0u64;
    let mut nacked = 0usize;
    for i in 0..1000u64 {
        // Every packet 2999 ahead: the largest gap A.1 still calls loss.
        seq += 2999;
        let now = t0 + ms(i);
        s.on_received(seq, now);
        assert!(s.missing() <= 64);
        let due = s.poll_nack(now + ms(20));
        assert!(due.len() <= 16);
        nacked += due.len();
        assert!(s.given_up.len() <= 64);
    }
    assert!(nacked > 0);
    let first = s.take_given_up();
    assert!(!first.is_empty());
}

#[test]
fn a_restart_forgets_what_was_missing() {
    let t0 = base();
    let mut s = NackScheduler::new(NackConfig::default());
    s.on_received(5, t0);
    s.on_received(9, t0);
    s.on_restart(70_000);
    assert_eq!(s.missing(), 0);
    assert_eq!(s.take_given_up(), vec![6..9]);
    s.on_received(70_001, t0);
    assert!(s.poll_nack(t0 + ms(100)).is_empty());
}

#[test]
fn the_sixteen_bit_numbers_wrap_like_the_wire() {
    let t0 = base();
    let mut s = NackScheduler::new(NackConfig::default());
    s.on_received(65_534, t0);
    s.on_received(65_538, t0);
    assert_eq!(s.poll_nack(t0 + ms(20)), vec![65_535, 0, 1]);
}

/// The whole loop without sockets: 10 % of live and of RTX packets lost,
/// the collector NACKs, the agent's history answers, and every packet
/// arrives in the end (issue #15, test 5, in miniature).
#[test]
fn a_lossy_path_delivers_every_packet_through_nack_and_rtx() {
    use crate::rtcp::{CompoundWriter, Nack, ReceiverReport, RtcpPacket, parse_compound};
    use crate::rtp::{RetransmitHistory, RtpSender, RtxConfig, parse, parse_rtx};
    let t0 = base();
    let mut live = RtpSender::with_start(0x1a2b3c4d, 1000, 0);
    let mut history = RetransmitHistory::new(
        RtxConfig {
            payload_types: vec![(96, 98)],
            rtx_time: Duration::from_secs(3),
            capacity: 512,
            max_rate: 50_000,
            burst: 3_000,
            resend_holdoff: ms(100),
        },
        RtpSender::with_start(0x5e1f0001, 0, 0),
        t0,
    );
    let mut nacks = NackScheduler::new(NackConfig::default());
    // A fixed xorshift: the same losses on every run.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut lost = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state.is_multiple_of(10)
    };
    let mut got = std::collections::BTreeSet::new();
    let (mut buf, mut rtcp) = ([0u8; 1600], [0u8; 1600]);
    for step in 0..1300u64 {
        let now = t0 + ms(10 * step);
        // Live runs on past the 1 000 checked packets: a lost packet is
        // seen only when a later one arrives.
        if step < 1010 {
            let n = live.write_with(&mut buf, 96, false, step, |b| {
                b[..8].copy_from_slice(&step.to_be_bytes());
                Ok(8)
            });
            let n = n.unwrap();
            history.record(&buf[..n], now);
            if !lost() {
                let seq = u64::from(parse(&buf[..n]).unwrap().sequence);
                got.insert(seq);
                nacks.on_received(seq, now);
            }
        }
        let due = nacks.poll_nack(now);
        if !due.is_empty() {
            let mut w = CompoundWriter::new(&mut rtcp);
            w.receiver_report(&ReceiverReport {
                ssrc: 0x0badcafe,
                reports: vec![],
            })
            .unwrap();
            w.nack(&Nack::for_lost(0x0badcafe, 0x1a2b3c4d, &due))
                .unwrap();
            let len = w.len();
            for p in parse_compound(&rtcp[..len]).unwrap() {
                if let RtcpPacket::Nack(n) = p {
                    history.on_nack(n.lost(), now);
                }
            }
        }
        while let Some(n) = history.poll_transmit(&mut buf, now).unwrap() {
            if lost() {
                continue;
            }
            let p = parse(&buf[..n]).unwrap();
            let (osn, _) = parse_rtx(p.payload).unwrap();
            // Sequence numbers stay below 2^16 here: extended = OSN.
            got.insert(u64::from(osn));
            nacks.on_received(u64::from(osn), now);
        }
    }
    let missing: Vec<u64> = (1000..2000).filter(|s| !got.contains(s)).collect();
    assert_eq!(missing, Vec::<u64>::new());
    assert!(nacks.take_given_up().is_empty());
}

#[test]
fn only_a_missing_packet_is_awaited() {
    let t0 = base();
    let mut s = NackScheduler::new(NackConfig::default());
    s.on_received(10, t0);
    s.on_received(12, t0);
    assert!(s.awaits(11));
    assert!(!s.awaits(10), "received");
    assert!(!s.awaits(13), "not yet sent");
    s.on_received(11, t0 + ms(30));
    assert!(!s.awaits(11), "filled");
}
