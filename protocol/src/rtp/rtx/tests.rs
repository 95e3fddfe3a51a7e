use super::*;
use crate::rtp::SampleInstant;
use crate::test_clock::base;

const INSTANT_ID: u8 = 1;

fn config() -> RtxConfig {
    RtxConfig {
        payload_types: vec![(96, 98)],
        rtx_time: Duration::from_secs(3),
        capacity: 64,
        max_rate: 10_000,
        burst: 3_000,
        resend_holdoff: Duration::from_millis(100),
    }
}

/// Live packet `i`: sequence 1000 + i, 200 ms apart, with its instant.
fn live(tx: &mut RtpSender, i: u64) -> Vec<u8> {
    let mut buf = [0u8; 256];
    let instant = SampleInstant {
        first_ns: 1_000_000_000 * (100 + i),
        step_ns: 100_000_000,
    }
    .encode();
    let n = tx
        .write_extended(
            &mut buf,
            96,
            i == 0,
            0x1000 + 20 * i as u32,
            &[(INSTANT_ID, &instant)],
            |b| {
                b[..8].copy_from_slice(&i.to_be_bytes());
                Ok(8)
            },
        )
        .unwrap();
    buf[..n].to_vec()
}

fn history(now: Instant) -> (RetransmitHistory, RtpSender) {
    let h = RetransmitHistory::new(config(), RtpSender::with_start(0xbeef, 500, 0), now);
    (h, RtpSender::with_start(0x1a2b3c4d, 1000, 0x1000))
}

#[test]
fn rtx_payload_is_the_osn_then_the_original_payload() {
    let mut buf = [0u8; 8];
    let n = write_rtx_payload(&mut buf, 0x1234, &[1, 2, 3]).unwrap();
    assert_eq!(&buf[..n], &[0x12, 0x34, 1, 2, 3]);
    assert_eq!(parse_rtx(&buf[..n]), Ok((0x1234, &[1, 2, 3][..])));
    assert_eq!(parse_rtx(&[7]), Err(RtxError::TooShort(1)));
    assert!(write_rtx_payload(&mut buf[..3], 1, &[1, 2]).is_err());
}

#[test]
fn a_nacked_packet_comes_back_as_rtx_with_its_timestamp_marker_and_instant() {
    let t0 = base();
    let (mut h, mut tx) = history(t0);
    let originals: Vec<_> = (0..5).map(|i| live(&mut tx, i)).collect();
    for p in &originals {
        h.record(p, t0);
    }
    h.on_nack([1000, 1002], t0 + Duration::from_millis(50));
    let mut buf = [0u8; 1600];
    let mut got = Vec::new();
    while let Some(n) = h
        .poll_transmit(&mut buf, t0 + Duration::from_millis(50))
        .unwrap()
    {
        got.push(buf[..n].to_vec());
    }
    assert_eq!(got.len(), 2);
    for (rtx, orig_i) in got.iter().zip([0usize, 2]) {
        let r = parse(rtx).unwrap();
        let o = parse(&originals[orig_i]).unwrap();
        assert_eq!((r.ssrc, r.payload_type), (0xbeef, 98));
        assert_eq!((r.timestamp, r.marker), (o.timestamp, o.marker));
        assert_eq!(
            r.sample_instant(INSTANT_ID).unwrap(),
            o.sample_instant(INSTANT_ID).unwrap()
        );
        assert_eq!(parse_rtx(r.payload), Ok((o.sequence, o.payload)));
    }
    let seqs: Vec<_> = got.iter().map(|p| parse(p).unwrap().sequence).collect();
    assert_eq!(seqs, vec![500, 501], "the RTX stream's own sequence");
    assert_eq!(h.poll_timeout(t0), None, "nothing left");
}

#[test]
fn packets_older_than_rtx_time_or_overwritten_are_not_resent() {
    let t0 = base();
    let (mut h, mut tx) = history(t0);
    h.record(&live(&mut tx, 0), t0);
    for i in 1..=64 {
        h.record(&live(&mut tx, i), t0 + Duration::from_secs(1));
    }
    // 1000 was overwritten by 1064 (64 slots); 1001 is held.
    h.on_nack([1000, 1001], t0 + Duration::from_secs(1));
    assert_eq!(h.unavailable(), 1);
    // Four seconds after it was sent, 1001 is past rtx-time.
    let mut buf = [0u8; 1600];
    assert_eq!(
        h.poll_transmit(&mut buf, t0 + Duration::from_secs(5))
            .unwrap(),
        None
    );
    h.on_nack([1002], t0 + Duration::from_secs(5));
    assert_eq!(h.unavailable(), 2);
}

#[test]
fn a_forged_nack_for_every_sequence_number_cannot_exceed_the_rate() {
    let t0 = base();
    let (mut h, mut tx) = history(t0);
    for i in 0..64 {
        h.record(&live(&mut tx, i), t0);
    }
    let mut buf = [0u8; 1600];
    let mut bytes = 0usize;
    // The attacker NACKs all 65 536 sequence numbers every 50 ms for 2 s.
    for tick in 0..40u64 {
        let now = t0 + Duration::from_millis(50 * tick);
        h.on_nack(0..=u16::MAX, now);
        while let Some(n) = h.poll_transmit(&mut buf, now).unwrap() {
            bytes += n;
        }
    }
    let c = config();
    assert!(
        bytes as u64 <= c.max_rate * 2 + c.burst,
        "{bytes} bytes in 2 s"
    );
    assert!(bytes > 0, "real losses are still repaired");
    assert!(h.queue.len() <= 64, "the queue is bounded by the history");
}

#[test]
fn a_repeated_nack_resends_once_per_holdoff() {
    let t0 = base();
    let (mut h, mut tx) = history(t0);
    h.record(&live(&mut tx, 0), t0);
    let mut buf = [0u8; 1600];
    let mut sent = 0;
    for ms in 0..100u64 {
        let now = t0 + Duration::from_millis(ms);
        h.on_nack([1000], now);
        while h.poll_transmit(&mut buf, now).unwrap().is_some() {
            sent += 1;
        }
    }
    assert_eq!(sent, 1, "100 NACKs within the 100 ms hold-off");
    h.on_nack([1000], t0 + Duration::from_millis(100));
    assert!(
        h.poll_transmit(&mut buf, t0 + Duration::from_millis(100))
            .unwrap()
            .is_some()
    );
}

#[test]
fn the_rate_limit_defers_and_poll_timeout_says_until_when() {
    let t0 = base();
    let mut c = config();
    c.max_rate = 1_000;
    c.burst = 50;
    let mut h = RetransmitHistory::new(c, RtpSender::with_start(0xbeef, 0, 0), t0);
    let mut tx = RtpSender::with_start(1, 1000, 0);
    for i in 0..3 {
        h.record(&live(&mut tx, i), t0);
    }
    h.on_nack([1000, 1001, 1002], t0);
    let mut buf = [0u8; 1600];
    assert!(h.poll_transmit(&mut buf, t0).unwrap().is_some());
    assert_eq!(h.poll_transmit(&mut buf, t0).unwrap(), None);
    let wake = h.poll_timeout(t0).unwrap();
    assert!(wake > t0);
    assert!(h.poll_transmit(&mut buf, wake).unwrap().is_some());
}

#[test]
fn packets_of_payload_types_without_rtx_are_not_kept() {
    let t0 = base();
    let (mut h, _) = history(t0);
    let mut tx = RtpSender::with_start(1, 7, 0);
    let mut buf = [0u8; 64];
    let n = tx.write_with(&mut buf, 97, false, 0, |_| Ok(4)).unwrap();
    h.record(&buf[..n], t0);
    h.on_nack([7], t0);
    assert_eq!(h.unavailable(), 1);
    h.record(&[0xff; 3], t0);
}
