//! docs/protocol.md section 11 on one stream: stamped instants, RTX after
//! a NACK, backfill, and what an attacker can and cannot do with them.

use super::*;
use crate::media::fixtures::{
    BACKFILL_SSRC, RTX_SSRC, STEP_NS, StampedAgent, recovery, setup as base_setup,
};
use sipsensor_protocol::{RtcpPacket, parse_rtcp_compound};

struct Rig {
    rx: StreamRx,
    agent: StampedAgent,
    sink: Sink,
    now: Instant,
    _registry: Arc<StreamsRegistry>,
}

fn rig(first_seq: u16) -> Rig {
    rig_agreeing(recovery(), first_seq)
}

fn rig_agreeing(agreement: AgreedRecovery, first_seq: u16) -> Rig {
    let registry = StreamsRegistry::new();
    let now = Instant::now();
    let mut ids = IdGenerator::seeded(1);
    let mut s = base_setup(&registry, agreed(desc(1, 10)), Some(SessionId(7)), None);
    s.recovery = agreement;
    Rig {
        rx: StreamRx::new(s, limits(100), now, &mut ids),
        agent: StampedAgent::new(first_seq),
        sink: Sink::default(),
        now,
        _registry: registry,
    }
}

/// Sample instants only: no NACK + RTX, no backfill.
fn instants_only() -> AgreedRecovery {
    AgreedRecovery {
        instant_id: Some(1),
        ..AgreedRecovery::default()
    }
}

impl Rig {
    /// A re-INVITE of the same description agreeing `agreement`.
    fn reinvite(&mut self, agreement: &AgreedRecovery) {
        let now = self.now;
        self.rx.update(
            agreed(desc(1, 10)),
            agreement,
            SessionId(7),
            now,
            &mut self.sink,
        );
    }

    fn feed_at(&mut self, bytes: &[u8], after: Duration) -> Outcome {
        let pkt = parse_rtp(bytes).unwrap();
        self.rx
            .on_rtp(&pkt, self.now + after, T0_NS, &mut self.sink)
    }

    fn feed(&mut self, bytes: &[u8]) -> Outcome {
        self.feed_at(bytes, Duration::ZERO)
    }

    /// (ts_ns, source, raws) of every reading so far.
    fn readings(&self) -> Vec<(i64, ReadingSource, Vec<Option<i64>>)> {
        self.sink
            .batch
            .readings
            .iter()
            .map(|r| (r.ts_ns, r.source, r.raws.clone()))
            .collect()
    }

    /// The sequence numbers NACKed at `after`, if a NACK is due.
    fn nacked(&mut self, after: Duration) -> Option<Vec<u16>> {
        let mut buf = [0u8; 1024];
        let n = self.rx.poll_nack(self.now + after, &mut buf)?;
        let packets = parse_rtcp_compound(&buf[..n]).unwrap();
        assert!(matches!(packets[0], RtcpPacket::ReceiverReport(_)));
        let nack = packets
            .iter()
            .find_map(|p| match p {
                RtcpPacket::Nack(n) => Some(n.clone()),
                _ => None,
            })
            .expect("a NACK in the compound");
        assert_eq!((nack.sender_ssrc, nack.media_ssrc), (0x0bad_cafe, SSRC));
        Some(nack.lost().collect())
    }
}

/// The expected reading of instant `k` of the packet starting at `tick`.
fn expected(tick: u64, k: u64) -> (i64, Vec<Option<i64>>) {
    let t = tick + k * 10;
    let ts = T0_NS + (k * STEP_NS) as i64 + tick as i64 * 10_000_000;
    let raws = (0..2)
        .map(|ch| Some(i64::from(StampedAgent::value(t, ch))))
        .collect();
    (ts, raws)
}

#[test]
fn stamped_samples_are_stored_at_their_instants_without_a_sender_report() {
    let mut r = rig(10);
    let p = r.agent.samples(0);
    assert_eq!(r.feed(&p), Outcome::Stored, "no SR needed with instants");
    let rows = r.readings();
    assert_eq!(rows.len(), 5);
    for (k, (ts, source, raws)) in rows.into_iter().enumerate() {
        assert_eq!((ts, raws), expected(0, k as u64));
        assert_eq!(source, ReadingSource::Live);
    }
}

#[test]
fn a_packet_without_the_agreed_instant_is_dropped() {
    let mut r = rig(10);
    // An unstamped packet from the live source.
    let mut buf = [0u8; 128];
    let n = r
        .agent
        .live
        .write_samples(&mut buf, &desc(1, 10), 0, &[1; 10], false)
        .unwrap();
    assert_eq!(r.feed(&buf[..n]), Outcome::Dropped(Reject::NoInstant));
    assert!(r.readings().is_empty());
}

#[test]
fn a_lost_packet_is_nacked_and_its_retransmission_stored_once_as_resent() {
    let mut r = rig(0xfffe);
    let p0 = r.agent.samples(0);
    let lost = r.agent.samples(50);
    let p2 = r.agent.samples(100);
    assert_eq!(r.feed(&p0), Outcome::Stored);
    assert_eq!(r.feed(&p2), Outcome::Stored);
    assert!(r.rx.nacking());
    assert_eq!(r.nacked(Duration::from_millis(5)), None, "reorder delay");
    assert_eq!(r.nacked(Duration::from_millis(25)), Some(vec![0xffff]));
    let rtx = r.agent.rtx_of(&lost);
    assert_eq!(r.feed_at(&rtx, Duration::from_millis(40)), Outcome::Stored);
    assert!(!r.rx.nacking());
    let resent: Vec<_> = r
        .readings()
        .into_iter()
        .filter(|(_, s, _)| *s == ReadingSource::Resent)
        .collect();
    assert_eq!(resent.len(), 5);
    for (k, (ts, _, raws)) in resent.into_iter().enumerate() {
        assert_eq!(
            (ts, raws),
            expected(50, k as u64),
            "the original's instants"
        );
    }
    // The same retransmission again (or replayed) stores nothing.
    assert_eq!(
        r.feed_at(&rtx, Duration::from_millis(60)),
        Outcome::Dropped(Reject::Unrequested)
    );
    assert_eq!(r.readings().len(), 15);
    assert_eq!(r.rx.take_repair_tally().recovered, 1);
    assert_eq!(r.nacked(Duration::from_millis(400)), None);
}

#[test]
fn a_retransmission_nobody_asked_for_stores_nothing() {
    let mut r = rig(10);
    let p0 = r.agent.samples(0);
    let p1 = r.agent.samples(50);
    assert_eq!(r.feed(&p0), Outcome::Stored);
    assert_eq!(r.feed(&p1), Outcome::Stored);
    // A received packet's OSN, and an OSN made up.
    let rtx = r.agent.rtx_of(&p0);
    assert_eq!(r.feed(&rtx), Outcome::Dropped(Reject::Unrequested));
    let future = r.agent.samples(5000);
    let rtx = r.agent.rtx_of(&future);
    assert_eq!(r.feed(&rtx), Outcome::Dropped(Reject::Unrequested));
    assert_eq!(r.readings().len(), 10);
}

#[test]
fn a_packet_given_up_after_rtx_time_is_not_taken_by_rtx_any_more() {
    let mut r = rig(10);
    let p0 = r.agent.samples(0);
    let lost = r.agent.samples(50);
    let p2 = r.agent.samples(100);
    r.feed(&p0);
    r.feed(&p2);
    assert!(r.nacked(Duration::from_millis(25)).is_some());
    // rtx-time (3 s) passes: given up, left to the backfill.
    assert_eq!(r.nacked(Duration::from_secs(4)), None);
    assert!(!r.rx.nacking());
    assert_eq!(r.rx.take_repair_tally().given_up, 1);
    let rtx = r.agent.rtx_of(&lost);
    assert_eq!(
        r.feed_at(&rtx, Duration::from_secs(5)),
        Outcome::Dropped(Reject::Unrequested)
    );
}

#[test]
fn a_sequence_jump_of_thousands_is_bounded_in_state_and_nacks() {
    let mut r = rig(10);
    let p0 = r.agent.samples(0);
    assert_eq!(r.feed(&p0), Outcome::Stored);
    // 2,900 sequence numbers skipped (under RFC 3550 A.1's MAX_DROPOUT, so
    // accepted at once as loss).
    let mut jumped = StampedAgent::new(11 + 2900);
    let far = jumped.samples(50);
    assert_eq!(r.feed(&far), Outcome::Stored);
    let mut asked = 0;
    let mut polls = 0;
    let mut at = Duration::from_millis(25);
    while let Some(lost) = r.nacked(at) {
        assert!(lost.len() <= 128, "at most 128 in one NACK");
        asked += lost.len();
        polls += 1;
        at += Duration::from_millis(1);
        assert!(polls <= 20, "bounded");
    }
    // Only the newest 1,024 are tracked; the rest are given up at once.
    assert_eq!(asked, 1024);
    assert_eq!(r.rx.take_repair_tally().given_up, 2900 - 1024);
}

#[test]
fn backfill_lands_on_the_live_keys_and_is_labelled_backfilled() {
    let mut r = rig(10);
    let live = r.agent.samples(0);
    assert_eq!(r.feed(&live), Outcome::Stored);
    // The same instants again from the spool.
    let again = r.agent.backfill(0);
    assert_eq!(r.feed(&again), Outcome::Stored);
    let rows = r.readings();
    assert_eq!(rows.len(), 10);
    for k in 0..5 {
        assert_eq!(rows[k].0, rows[k + 5].0, "the same key: stored once");
        assert_eq!(rows[k + 5].1, ReadingSource::Backfilled);
        assert_eq!(rows[k].2, rows[k + 5].2);
    }
    assert_eq!(parse_rtp(&again).unwrap().ssrc, BACKFILL_SSRC);
    // Backfill is no live packet: it is never NACKed nor seen as loss.
    assert!(!r.rx.nacking());
}

#[test]
fn backfill_under_another_payload_type_or_without_an_instant_is_dropped() {
    let mut r = rig(10);
    let mut bf = RtpSender::with_start(BACKFILL_SSRC, 1, 0);
    let mut buf = [0u8; 128];
    // The live payload type on the backfill SSRC.
    let n = bf
        .write_samples_stamped(
            &mut buf,
            &desc(1, 10),
            0,
            &[1; 10],
            false,
            (1, StampedAgent::instant(0)),
        )
        .unwrap();
    assert_eq!(
        r.feed(&buf[..n]),
        Outcome::Dropped(Reject::WrongPayloadType)
    );
    let mut d = desc(1, 10);
    d.samples.as_mut().unwrap().payload_type = 100;
    let n = bf.write_samples(&mut buf, &d, 0, &[1; 10], false).unwrap();
    assert_eq!(r.feed(&buf[..n]), Outcome::Dropped(Reject::NoInstant));
    assert!(r.readings().is_empty());
    assert_eq!(RTX_SSRC, r.rx.extra_ssrcs()[0]);
}

/// A lost live packet of a stamped stream is a loss gap at its exact
/// instants, with no sender report: before, such holes were timed only by
/// the report's mapping, so without one (the agent's first report lost,
/// or not yet come) they were never stored, the committed mark passed
/// them and the agent released what it should have backfilled (e2e s17).
#[test]
fn a_lost_stamped_packet_is_a_loss_gap_at_its_instants_without_a_sender_report() {
    let mut r = rig(10);
    let p0 = r.agent.samples(0);
    let _lost = r.agent.samples(50);
    let p2 = r.agent.samples(100);
    assert_eq!(r.feed(&p0), Outcome::Stored);
    assert_eq!(r.feed(&p2), Outcome::Stored);
    let hole = r.rx.hole_from_ns().expect("a hole awaits its grace time");
    assert_eq!(hole, expected(0, 4).0, "after the last instant before it");
    r.rx.tick(r.now + Duration::from_secs(60), &mut r.sink);
    let gaps = &r.sink.batch.gaps;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].cause, GapCause::Loss);
    assert_eq!(
        (gaps[0].from_ns, gaps[0].to_ns, gaps[0].samples),
        (expected(0, 4).0, expected(100, 0).0, 5)
    );
}

/// 1,000 sensors backfilling at once must never cost live data (11.6):
/// while storage defers late rows, backfill is refused before decoding,
/// and the stream's later backfill stays refused until the agent goes
/// back to its mark, so what is stored moves the mark; live packets pass.
#[test]
fn backfill_is_refused_unstored_while_storage_defers_until_the_agent_goes_back() {
    let mut r = rig(10);
    let first = r.agent.backfill(0);
    assert_eq!(r.feed(&first), Outcome::Stored);
    r.sink.late_closed = true;
    let refused = r.agent.backfill(50);
    assert_eq!(r.feed(&refused), Outcome::Dropped(Reject::BackfillDeferred));
    // Live data is untouched by it.
    let live = r.agent.samples(1000);
    assert_eq!(r.feed(&live), Outcome::Stored);
    // Room again, but the agent sends on beyond the refused packet.
    r.sink.late_closed = false;
    let beyond = r.agent.backfill(100);
    assert_eq!(r.feed(&beyond), Outcome::Dropped(Reject::BackfillDeferred));
    // It goes back to its mark (the end of what was stored): taken.
    let back = r.agent.backfill(50);
    assert_eq!(r.feed(&back), Outcome::Stored);
    let on = r.agent.backfill(100);
    assert_eq!(r.feed(&on), Outcome::Stored);
    let backfilled: Vec<i64> = r
        .readings()
        .iter()
        .filter(|(_, source, _)| *source == ReadingSource::Backfilled)
        .map(|(ts, _, _)| *ts)
        .collect();
    let at = |tick: i64| T0_NS + tick * 10_000_000;
    let expected: Vec<i64> = [0, 50, 100]
        .iter()
        .flat_map(|&t| (0..5).map(move |k| at(t) + k * STEP_NS as i64))
        .collect();
    assert_eq!(backfilled, expected);
    let deferred = r
        .sink
        .rejects
        .iter()
        .filter(|(reason, _)| *reason == Reject::BackfillDeferred)
        .count();
    assert_eq!(deferred, 2);
}

#[test]
fn a_reinvite_that_agrees_nack_and_rtx_starts_nacking_and_takes_their_packets() {
    let mut r = rig_agreeing(instants_only(), 100);
    let p0 = r.agent.samples(0);
    let lost = r.agent.samples(50);
    let p2 = r.agent.samples(100);
    let backfill = r.agent.backfill(0);
    assert_eq!(r.feed(&p0), Outcome::Stored);
    assert_ne!(r.feed(&backfill), Outcome::Stored, "no backfill agreed yet");
    r.reinvite(&recovery());
    assert_eq!(r.feed(&p2), Outcome::Stored);
    assert!(r.rx.nacking(), "NACKs start with the new agreement");
    assert_eq!(r.nacked(Duration::from_millis(25)), Some(vec![101]));
    let rtx = r.agent.rtx_of(&lost);
    assert_eq!(r.feed_at(&rtx, Duration::from_millis(40)), Outcome::Stored);
    // Stored again is stored once: the rows are keyed by instant.
    assert_eq!(r.feed(&backfill), Outcome::Stored);
    let resent = r
        .readings()
        .iter()
        .filter(|x| x.1 == ReadingSource::Resent)
        .count();
    assert_eq!(resent, 5);
}

#[test]
fn a_reinvite_that_drops_nack_and_rtx_stops_nacking_and_refuses_their_packets() {
    let mut r = rig(100);
    let p0 = r.agent.samples(0);
    let lost = r.agent.samples(50);
    let p2 = r.agent.samples(100);
    let backfill = r.agent.backfill(0);
    assert_eq!(r.feed(&p0), Outcome::Stored);
    assert_eq!(r.feed(&p2), Outcome::Stored);
    assert!(r.rx.nacking());
    r.reinvite(&instants_only());
    assert!(!r.rx.nacking(), "no NACKs without RTX any more");
    assert_eq!(r.nacked(Duration::from_millis(25)), None);
    // What NACKs waited for is the backfill's now.
    assert_eq!(r.rx.take_repair_tally().given_up, 1);
    let rtx = r.agent.rtx_of(&lost);
    assert_ne!(r.feed_at(&rtx, Duration::from_millis(40)), Outcome::Stored);
    assert_ne!(r.feed(&backfill), Outcome::Stored);
    assert!(r.readings().iter().all(|x| x.1 == ReadingSource::Live));
}

/// (from_ns, to_ns, samples) of the source gaps so far, in steps from T0.
fn source_gaps(r: &Rig) -> Vec<(i64, i64, i64)> {
    let step = STEP_NS as i64;
    r.sink
        .batch
        .gaps
        .iter()
        .filter(|g| g.cause == GapCause::Source)
        .map(|g| {
            (
                (g.from_ns - T0_NS) / step,
                (g.to_ns - T0_NS) / step,
                g.samples,
            )
        })
        .collect()
}

#[test]
fn instants_sent_without_any_reading_are_a_source_gap_across_packets() {
    // Found in e2e s17 under CPU load: the agent's sensor thread starved,
    // three instants went out with every channel 0x80000000, and storage
    // had neither a row nor a gap for them: an unexplained hole.
    let mut r = rig(10);
    let p0 = r.agent.samples(0);
    // Instants 8, 9 (of the packet at tick 50) and 10 (of the next) empty.
    let p1 = r.agent.samples_without(50, |k| k >= 3);
    let p2 = r.agent.samples_without(100, |k| k == 0);
    for p in [&p0, &p1, &p2] {
        assert_eq!(r.feed(p), Outcome::Stored);
    }
    assert_eq!(r.readings().len(), 5 + 3 + 4, "no row for an empty instant");
    // One gap, from the last instant with a reading to the next one.
    assert_eq!(source_gaps(&r), vec![(7, 11, 3)]);
    // Loss is still told apart: no sequence number is missing.
    r.rx.tick(r.now + Duration::from_secs(3), &mut r.sink);
    assert!(
        r.sink
            .batch
            .gaps
            .iter()
            .all(|g| g.cause == GapCause::Source)
    );
}

#[test]
fn a_run_of_empty_instants_open_when_the_stream_ends_is_stored() {
    let mut r = rig(10);
    let p0 = r.agent.samples(0);
    let p1 = r.agent.samples_without(50, |k| k >= 1);
    assert_eq!(r.feed(&p0), Outcome::Stored);
    assert_eq!(r.feed(&p1), Outcome::Stored);
    assert!(source_gaps(&r).is_empty(), "the run may go on");
    let mut buf = [0u8; 256];
    let now = r.now;
    r.rx.finish(now, &mut r.sink, &mut buf);
    assert_eq!(source_gaps(&r), vec![(5, 10, 4)]);
}

#[test]
fn a_retransmitted_empty_instant_is_a_source_gap_not_a_hole() {
    let mut r = rig(10);
    let p0 = r.agent.samples(0);
    let lost = r.agent.samples_without(50, |k| k == 2);
    let p2 = r.agent.samples(100);
    assert_eq!(r.feed(&p0), Outcome::Stored);
    assert_eq!(r.feed(&p2), Outcome::Stored);
    let rtx = r.agent.rtx_of(&lost);
    assert_eq!(r.feed_at(&rtx, Duration::from_millis(40)), Outcome::Stored);
    assert_eq!(source_gaps(&r), vec![(6, 8, 1)]);
    let resent = r
        .readings()
        .iter()
        .filter(|(_, s, _)| *s == ReadingSource::Resent)
        .count();
    assert_eq!(resent, 4);
}

#[test]
fn a_retransmitted_packet_leaves_a_loss_gap_for_storage_to_fill() {
    // The stream cannot know whether the writer commits a resent row (its
    // late queue may defer or give it up). Counted as received, the hole
    // left as a source gap, which the committed mark passes: the agent
    // released samples storage never got. As a loss gap, the stored rows
    // cut it away, or it holds the mark until backfill brings them.
    let mut r = rig(10);
    let p0 = r.agent.samples(0);
    let lost = r.agent.samples(50);
    let p2 = r.agent.samples(100);
    assert_eq!(r.feed(&p0), Outcome::Stored);
    assert_eq!(r.feed(&p2), Outcome::Stored);
    let rtx = r.agent.rtx_of(&lost);
    assert_eq!(r.feed_at(&rtx, Duration::from_millis(40)), Outcome::Stored);
    assert!(!r.rx.nacking(), "repaired: no more NACKs");
    assert!(r.rx.hole_from_ns().is_some(), "the mark waits for storage");
    r.rx.tick(r.now + Duration::from_secs(3), &mut r.sink);
    let step = STEP_NS as i64;
    let gaps: Vec<_> = r
        .sink
        .batch
        .gaps
        .iter()
        .map(|g| {
            (
                (g.from_ns - T0_NS) / step,
                (g.to_ns - T0_NS) / step,
                g.samples,
                g.cause,
            )
        })
        .collect();
    assert_eq!(gaps, vec![(4, 10, 5, GapCause::Loss)]);
}

#[test]
fn live_packets_refused_while_storage_is_full_are_a_loss_the_mark_waits_for() {
    // The writer drops rows beyond its memory bound; taken by the stream
    // first, they were counted received and the mark passed them. Refused
    // before the stream sees them, they are lost like on the network.
    let mut r = rig(10);
    let p0 = r.agent.samples(0);
    let refused = r.agent.samples(50);
    let p2 = r.agent.samples(100);
    assert_eq!(r.feed(&p0), Outcome::Stored);
    r.sink.live_closed = true;
    assert_eq!(r.feed(&refused), Outcome::Dropped(Reject::StorageFull));
    r.sink.live_closed = false;
    assert_eq!(r.feed(&p2), Outcome::Stored);
    assert_eq!(r.readings().len(), 10);
    assert_eq!(r.nacked(Duration::from_millis(25)), Some(vec![11]));
    assert!(r.rx.hole_from_ns().is_some());
    r.rx.tick(r.now + Duration::from_secs(3), &mut r.sink);
    let causes: Vec<_> = r
        .sink
        .batch
        .gaps
        .iter()
        .map(|g| (g.samples, g.cause))
        .collect();
    assert_eq!(causes, vec![(5, GapCause::Loss)]);
}
