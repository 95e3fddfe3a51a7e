//! The backfill core on a virtual clock against a fake spool and a fake
//! collector that decodes every packet back to (channel, instant) keys.

use super::*;
use crate::spool::{GpioEdge, SampleRun, Spool, SpoolOptions};
use crate::stream::layout_id;
use sipsensor_protocol::{
    ChannelSpec, EventFormat, MISSING_SAMPLE, Payload, SampleFormat, StreamDescription,
    Unit as SdpUnit, decode_payload, parse_rtp,
};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

pub(super) const SEC: u64 = 1_000_000_000;
/// 10 Hz.
pub(super) const STEP: u64 = SEC / 10;
pub(super) const T0: u64 = 1_767_225_600 * SEC;
pub(super) const BF_SSRC: u32 = 0x0bf0_0001;
pub(super) const LIVE_SSRC: u32 = 0x1a2b_3c4d;

fn base() -> Instant {
    Instant::now()
}

fn channel(name: &str, unit: &str, scale: i8) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        unit: SdpUnit::from_symbol(unit).expect("unit"),
        scale,
    }
}

fn desc(channels: Vec<ChannelSpec>) -> StreamDescription {
    StreamDescription {
        clock_rate: 100,
        config: 3,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 10,
            samples_per_packet: 5,
            channels,
        }),
        events: Some(EventFormat {
            payload_type: 97,
            inputs: vec!["door".into(), "motion".into()],
        }),
    }
}

pub(super) fn current() -> StreamDescription {
    desc(vec![
        channel("temperature", "Cel", -2),
        channel("humidity", "%RH", -1),
        channel("pressure", "Pa", 0),
    ])
}

pub(super) fn plan(mark: u64, live_start: u64, max_rate: u64) -> BackfillPlan {
    BackfillPlan {
        ssrc: BF_SSRC,
        live_ssrc: LIVE_SSRC,
        payload_type: 100,
        instant_id: 1,
        mark,
        live_start,
        max_rate,
        ack_timeout: Duration::from_secs(6),
        description: current(),
        inputs: vec!["motion".into(), "door".into()],
    }
}

/// The value the waveform has on channel `c` at `at`.
fn wave(at: u64, c: usize) -> i32 {
    ((at / STEP) % 1000) as i32 * 10 + c as i32
}

/// Runs of 5 rows of the current layout from `from` for `packets` runs.
pub(super) fn runs(from: u64, packets: u64) -> Vec<Record> {
    (0..packets)
        .map(|p| {
            let first = from + p * 5 * STEP;
            let values = (0..5)
                .flat_map(|k| (0..3).map(move |c| wave(first + k * STEP, c)))
                .collect();
            Record::Samples(SampleRun {
                stream: layout_id(&current()),
                first_ns: first as i64,
                spacing_ns: STEP as u32,
                channels: 3,
                values,
            })
        })
        .collect()
}

/// What the collector decoded: samples by (channel position, instant),
/// edges by (input, instant), and each packet's (sequence, first, last).
#[derive(Default)]
struct Collector {
    samples: BTreeMap<(usize, u64), i32>,
    edges: BTreeMap<(u8, u64), bool>,
    packets: Vec<(u16, u64, u64)>,
}

impl Collector {
    fn take(&mut self, bytes: &[u8]) {
        let p = parse_rtp(bytes).expect("RTP");
        assert_eq!((p.ssrc, p.payload_type), (BF_SSRC, 100));
        let stamp = p.sample_instant(1).expect("extension").expect("instant");
        match decode_payload(p.payload).expect("payload") {
            Payload::Samples(s) => {
                assert_eq!(s.config, 3);
                let mut last = stamp.first_ns;
                for k in 0..usize::from(s.count) {
                    let at = stamp.first_ns + k as u64 * stamp.step_ns;
                    last = at;
                    for c in 0..usize::from(s.channels) {
                        let v = s.raw(k, c).expect("value");
                        self.samples.insert((c, at), v);
                    }
                }
                self.packets.push((p.sequence, stamp.first_ns, last));
            }
            Payload::Events(e) => {
                for r in e.records() {
                    assert_eq!(r.offset, 0, "a backfilled edge is at the packet's instant");
                    self.edges.insert((r.input, stamp.first_ns), r.state);
                }
                self.packets
                    .push((p.sequence, stamp.first_ns, stamp.first_ns));
            }
        }
    }

    fn instants(&self) -> Vec<u64> {
        let set: std::collections::BTreeSet<u64> = self.samples.keys().map(|(_, at)| *at).collect();
        set.into_iter().collect()
    }
}

/// A spool in memory: answers reads as the shell does.
struct FakeSpool {
    records: Vec<Record>,
    state: SpoolState,
}

impl FakeSpool {
    fn new(records: Vec<Record>) -> Self {
        let oldest = records.iter().map(|r| r.span().0).min();
        FakeSpool {
            records,
            state: SpoolState {
                oldest,
                dropped_through: None,
            },
        }
    }

    fn answer(&self, core: &mut Backfill) {
        let Some(after) = core.poll_read() else {
            return;
        };
        let end = core.cursor.end();
        let mut records: Vec<Record> = self
            .records
            .iter()
            .filter(|r| {
                let (first, last) = r.span();
                last as u64 > after && (first as u64) < end
            })
            .cloned()
            .collect();
        records.sort_by_key(|r| r.span().0);
        // Small batches, so continuing reads are exercised.
        let complete = records.len() <= 7;
        records.truncate(7);
        core.on_read(
            after,
            ReadChunk {
                records,
                complete,
                state: self.state,
            },
        );
    }
}

/// Drive `core` from `t` for `ms` milliseconds in 1 ms steps; `deliver`
/// decides which packets (by count sent) reach the collector, and the
/// collector's mark follows the contiguous prefix it holds.
fn drive(
    core: &mut Backfill,
    spool: &FakeSpool,
    collector: &mut Collector,
    t: Instant,
    ms: u64,
    mut deliver: impl FnMut(u64) -> bool,
) -> Vec<(Instant, usize)> {
    let mut buf = vec![0u8; 2048];
    let mut sent = Vec::new();
    for step in 0..ms {
        let now = t + Duration::from_millis(step);
        spool.answer(core);
        while let Some(n) = core.poll_transmit(now, &mut buf) {
            sent.push((now, n));
            if deliver(sent.len() as u64) {
                collector.take(&buf[..n]);
            }
        }
        if step % 100 == 0 {
            core.on_mark(contiguous_mark(collector, core.mark()), now);
        }
    }
    sent
}

/// The collector's mark: it holds every instant of the 10 Hz grid from
/// the mark up to here.
fn contiguous_mark(c: &Collector, mark: u64) -> u64 {
    let mut through = mark;
    while c.samples.contains_key(&(0, through + STEP)) {
        through += STEP;
    }
    through
}

fn new_core(plan: BackfillPlan, spool: &FakeSpool, t: Instant) -> Backfill {
    Backfill::new(plan, spool.state, HashMap::new(), 0xfff0, t)
}

#[test]
fn backfills_exactly_between_the_mark_and_the_live_start_oldest_first() {
    let t = base();
    // 40 s of spool; the mark is inside a run, the live start too.
    let spool = FakeSpool::new(runs(T0, 80));
    let mark = T0 + 7 * STEP;
    let live = T0 + 333 * STEP;
    let mut core = new_core(plan(mark, live, 1_000_000), &spool, t);
    assert_eq!(
        core.poll_release(),
        Some(mark),
        "the SDP's mark releases too"
    );
    let mut c = Collector::default();
    drive(&mut core, &spool, &mut c, t, 200, |_| true);
    let want: Vec<u64> = (8..333).map(|k| T0 + k * STEP).collect();
    assert_eq!(c.instants(), want, "exactly (M, L)");
    for ((ch, at), v) in &c.samples {
        assert_eq!(*v, wave(*at, *ch), "value of channel {ch} at {at}");
    }
    // Oldest first, contiguous sequence numbers from the random start.
    let seqs: Vec<u16> = c.packets.iter().map(|p| p.0).collect();
    let expect: Vec<u16> = (0..seqs.len() as u16)
        .map(|i| 0xfff0u16.wrapping_add(i))
        .collect();
    assert_eq!(seqs, expect);
    assert!(
        c.packets.windows(2).all(|w| w[0].2 < w[1].1),
        "instant order"
    );
    // Runs were merged: far fewer packets than the 65 runs sent.
    assert!(c.packets.len() < 20, "{} packets", c.packets.len());
    // Spool exhausted: the rest up to the live start is unsampled.
    let msgs = core
        .poll_rtcp(t + Duration::from_secs(5))
        .expect("compound due");
    assert_eq!(
        msgs,
        vec![BackfillMessage::Unsampled {
            media_ssrc: LIVE_SSRC,
            after_ns: live - STEP,
            before_ns: live,
        }]
    );
    // The collector's mark reaches the live start: done, nothing more.
    core.on_mark(live, t + Duration::from_secs(6));
    assert!(core.is_done());
    assert_eq!(core.poll_release(), Some(live));
    assert_eq!(core.poll_rtcp(t + Duration::from_secs(9)), None);
    assert_eq!(
        core.poll_transmit(t + Duration::from_secs(9), &mut [0; 2048]),
        None
    );
}

#[test]
fn the_rate_limit_holds_bytes_per_second_with_a_burst_of_one_packet() {
    let t = base();
    let spool = FakeSpool::new(runs(T0, 2000));
    let mut core = new_core(plan(T0, T0 + 10_000 * STEP, 2000), &spool, t);
    let mut c = Collector::default();
    let sent = drive(&mut core, &spool, &mut c, t, 10_000, |_| true);
    let bytes: usize = sent.iter().map(|s| s.1).sum();
    let largest = sent.iter().map(|s| s.1).max().unwrap_or(0);
    // The bucket starts full: one largest packet of burst.
    assert!(
        bytes <= 2000 * 10 + MAX_KEPT_PACKET,
        "{bytes} bytes in 10 s"
    );
    assert!(
        bytes >= 2000 * 10 - 2 * largest,
        "the rate is used: {bytes}"
    );
    // Burst of one packet: never two in the same millisecond.
    assert!(sent.windows(2).all(|w| w[0].0 != w[1].0));
    assert_eq!(core.stats().bytes, bytes as u64);
}

#[test]
fn under_srtp_the_tag_counts_against_the_rate() {
    let t = base();
    let spool = FakeSpool::new(runs(T0, 2000));
    let mut core = new_core(plan(T0, T0 + 10_000 * STEP, 2000), &spool, t);
    core.set_wire_overhead(10);
    let mut c = Collector::default();
    let sent = drive(&mut core, &spool, &mut c, t, 10_000, |_| true);
    let wire: usize = sent.iter().map(|s| s.1 + 10).sum();
    assert!(wire <= 2000 * 10 + MAX_KEPT_PACKET, "{wire} bytes in 10 s");
    assert_eq!(core.stats().bytes, wire as u64);
}

#[test]
fn a_lost_backfill_packet_is_sent_again_after_the_ack_timeout() {
    let t = base();
    let spool = FakeSpool::new(runs(T0, 40));
    let live = T0 + 200 * STEP;
    let mut core = new_core(plan(T0 - STEP, live, 1_000_000), &spool, t);
    let mut c = Collector::default();
    // The third packet is lost on the path.
    drive(&mut core, &spool, &mut c, t, 1000, |n| n != 3);
    let stalled = core.mark();
    assert!(stalled > T0 && stalled < live, "the mark stops at the gap");
    assert_eq!(core.stats().restarts, 0);
    // Past the ack timeout: it goes back to the mark and resends.
    let later = t + Duration::from_secs(7);
    drive(&mut core, &spool, &mut c, later, 1000, |_| true);
    assert_eq!(core.stats().restarts, 1);
    let want: Vec<u64> = (0..200).map(|k| T0 + k * STEP).collect();
    assert_eq!(c.instants(), want, "everything got there in the end");
}

#[test]
fn a_live_packet_the_collector_gave_up_on_is_backfilled_once_the_mark_stalls_on_it() {
    let t = base();
    // 50 s spooled at 10 Hz; the session went live at 2 s.
    let spool = FakeSpool::new(runs(T0, 100));
    let live = T0 + 20 * STEP;
    let mut core = new_core(plan(T0 - STEP, live, 1_000_000), &spool, t);
    let mut c = Collector::default();
    drive(&mut core, &spool, &mut c, t, 1000, |_| true);
    assert_eq!(
        core.mark(),
        live - STEP,
        "everything before the live start is held"
    );
    let restarts = core.stats().restarts;
    // Live brought everything up to 40 s but the packet at 10 s: its
    // NACKs went unanswered, so the collector's mark stops before it.
    let hole = T0 + 100 * STEP;
    for k in 20..400 {
        let at = T0 + k * STEP;
        if at != hole {
            for ch in 0..3 {
                c.samples.insert((ch, at), wave(at, ch));
            }
        }
    }
    core.on_mark(contiguous_mark(&c, core.mark()), t + Duration::from_secs(2));
    assert_eq!(core.mark(), hole - STEP);
    assert!(core.is_done());
    // Not before the ack timeout...
    drive(
        &mut core,
        &spool,
        &mut c,
        t + Duration::from_secs(3),
        100,
        |_| true,
    );
    assert!(!c.samples.contains_key(&(0, hole)));
    // ...but after it, the backfill stream brings the given-up instant.
    drive(
        &mut core,
        &spool,
        &mut c,
        t + Duration::from_secs(20),
        2000,
        |_| true,
    );
    assert_eq!(c.samples.get(&(0, hole)), Some(&wave(hole, 0)));
    assert!(core.mark() >= T0 + 399 * STEP, "the mark passes the hole");
    assert_eq!(core.stats().restarts, restarts + 1);
}

#[test]
fn an_expired_range_is_reported_when_the_spool_is_younger_than_the_mark() {
    let t = base();
    let mark = T0;
    let oldest = T0 + 100 * STEP;
    let mut spool = FakeSpool::new(runs(oldest, 20));
    spool.state.dropped_through = Some((oldest - STEP) as i64);
    let live = oldest + 100 * STEP;
    let mut core = new_core(plan(mark, live, 1_000_000), &spool, t);
    let expired = BackfillMessage::Expired {
        media_ssrc: LIVE_SSRC,
        after_ns: mark,
        before_ns: oldest,
    };
    assert_eq!(core.poll_rtcp(t), Some(vec![expired]));
    let mut c = Collector::default();
    drive(&mut core, &spool, &mut c, t, 50, |_| true);
    assert_eq!(c.instants().first(), Some(&oldest));
    // Repeated in every compound until the mark passes `before`.
    let again = core.poll_rtcp(t + Duration::from_secs(1)).expect("due");
    assert!(again.contains(&expired));
    core.on_mark(oldest + STEP, t + Duration::from_secs(2));
    let after = core.poll_rtcp(t + Duration::from_secs(2)).expect("due");
    assert!(!after.contains(&expired), "{after:?}");
}

#[test]
fn nothing_spooled_before_the_live_start_is_reported_unsampled_at_once() {
    let t = base();
    let spool = FakeSpool::new(Vec::new());
    let (mark, live) = (T0, T0 + 50 * STEP);
    let mut core = new_core(plan(mark, live, 1_000_000), &spool, t);
    let mut c = Collector::default();
    drive(&mut core, &spool, &mut c, t, 5, |_| true);
    assert!(c.packets.is_empty());
    assert_eq!(
        core.poll_rtcp(t + Duration::from_secs(1)),
        Some(vec![BackfillMessage::Unsampled {
            media_ssrc: LIVE_SSRC,
            after_ns: mark,
            before_ns: live,
        }])
    );
}

#[test]
fn a_spool_that_has_not_caught_up_with_the_live_start_is_read_again() {
    let t = base();
    let live = T0 + 50 * STEP;
    let spool = FakeSpool::new(Vec::new());
    let mut core = new_core(plan(T0, live, 1_000_000), &spool, t);
    let first = runs(T0 + STEP, 1);
    // The writer lags: only part is spooled and L is not reached yet.
    core.on_read(
        T0,
        ReadChunk {
            records: first,
            complete: false,
            state: spool.state,
        },
    );
    let mut buf = [0u8; 2048];
    assert!(core.poll_transmit(t, &mut buf).is_some());
    assert_eq!(core.poll_transmit(t, &mut buf), None);
    let after = T0 + 5 * STEP;
    assert_eq!(core.poll_read(), Some(after), "asks again from there");
    core.on_read(after, ReadChunk::default());
    assert_eq!(core.poll_read(), Some(after), "still not caught up");
    assert_eq!(core.poll_transmit(t, &mut buf), None);
    assert!(
        core.poll_rtcp(t).is_some_and(|m| m.is_empty()),
        "no unsampled claim while the spool may still get samples before L"
    );
}

#[test]
fn a_mark_that_goes_back_is_ignored_one_beyond_what_was_sent_is_clamped() {
    let t = base();
    let spool = FakeSpool::new(runs(T0, 40));
    let live = T0 + 200 * STEP;
    let mut core = new_core(plan(T0, live, 600), &spool, t);
    assert_eq!(core.poll_release(), Some(T0));
    let mut c = Collector::default();
    // 600 bytes/s: one packet so far.
    drive(&mut core, &spool, &mut c, t, 10, |_| true);
    let sent_through = c.packets.last().expect("one packet").2;
    core.on_mark(sent_through, t);
    assert_eq!(core.poll_release(), Some(sent_through));
    core.on_mark(T0 + STEP, t);
    assert_eq!(core.mark(), sent_through, "went back: ignored");
    assert_eq!(core.poll_release(), None);
    // A mark inside the backfill range beyond anything sent.
    core.on_mark(live - 10 * STEP, t);
    assert_eq!(core.mark(), sent_through, "clamped to what was sent");
    assert_eq!(core.poll_release(), None, "nothing unsent is released");
    assert_eq!(core.stats().odd_marks, 2);
    // A mark at or past the live start is the live stream's: taken.
    core.on_mark(live + SEC, t);
    assert!(core.is_done());
    assert_eq!(core.poll_release(), Some(live + SEC));
}

#[test]
fn old_layouts_are_placed_by_channel_name_and_unknown_ones_counted() {
    let t = base();
    let old = desc(vec![
        channel("humidity", "%RH", -1),
        channel("temperature", "Cel", -2),
    ]);
    let old_id = layout_id(&old);
    let run = |stream, first: u64| {
        Record::Samples(SampleRun {
            stream,
            first_ns: first as i64,
            spacing_ns: STEP as u32,
            channels: 2,
            values: vec![11, 22, 33, 44],
        })
    };
    let spool = FakeSpool::new(vec![run(old_id, T0 + STEP), run(0x5eed, T0 + 3 * STEP)]);
    let layouts = HashMap::from([(old_id, super::packet::layout_channels(&old))]);
    let mut core = Backfill::new(
        plan(T0, T0 + 10 * STEP, 1_000_000),
        spool.state,
        layouts,
        1,
        t,
    );
    let mut c = Collector::default();
    drive(&mut core, &spool, &mut c, t, 5, |_| true);
    let at = T0 + STEP;
    assert_eq!(
        c.samples[&(0, at)],
        22,
        "temperature from the old 2nd column"
    );
    assert_eq!(c.samples[&(1, at)], 11, "humidity from the old 1st");
    assert_eq!(
        c.samples[&(2, at)],
        MISSING_SAMPLE,
        "pressure did not exist"
    );
    assert_eq!(c.samples[&(0, at + STEP)], 44);
    assert_eq!(c.instants(), vec![at, at + STEP]);
    assert_eq!(core.stats().unplaceable, 1, "the unknown layout");
}

#[test]
fn an_edge_inside_a_run_goes_between_its_rows_at_its_own_instant() {
    let t = base();
    let mut records = runs(T0, 2);
    let at = T0 + 2 * STEP + 1234;
    records.push(Record::Edge(GpioEdge {
        at_ns: at as i64,
        // "door" in the config's order, input 1 of the description.
        input: 1,
        level: true,
    }));
    let spool = FakeSpool::new(records);
    let mut core = new_core(plan(T0 - 1, T0 + 10 * STEP, 1_000_000), &spool, t);
    let mut c = Collector::default();
    drive(&mut core, &spool, &mut c, t, 5, |_| true);
    assert_eq!(c.edges.get(&(0, at)), Some(&true), "door is input 0 now");
    // Rows up to the edge, the edge, the rest: in instant order.
    let spans: Vec<(u64, u64)> = c.packets.iter().map(|p| (p.1, p.2)).collect();
    assert_eq!(spans[0], (T0, T0 + 2 * STEP));
    assert_eq!(spans[1], (at, at));
    assert_eq!(spans[2].0, T0 + 3 * STEP);
    assert_eq!(c.instants().len(), 10);
}

#[test]
fn a_spool_read_error_stops_the_backfill_cleanly() {
    let t = base();
    let spool = FakeSpool::new(runs(T0, 10));
    let mut core = new_core(plan(T0, T0 + 100 * STEP, 1_000_000), &spool, t);
    assert!(core.poll_read().is_some());
    core.on_read_error("segment 0000000000000001.seg: Is a directory");
    assert_eq!(core.poll_read(), None);
    assert_eq!(core.poll_transmit(t, &mut [0; 2048]), None);
    assert_eq!(core.poll_timeout(t), None);
    assert_eq!(core.poll_rtcp(t), None);
    // Marks still release the spool: the live stream is committed too.
    core.on_mark(T0 + 200 * STEP, t);
    assert_eq!(core.poll_release(), Some(T0 + 200 * STEP));
}

pub(super) fn real_spool(dir: &std::path::Path) -> Spool {
    let options = SpoolOptions {
        dir: dir.to_owned(),
        // Segments of 128 KiB.
        max_bytes: 4 << 20,
        max_age: Duration::from_secs(3600 * 24 * 365 * 100),
    };
    Spool::open(&options, SystemTime::now()).expect("open")
}

#[test]
fn the_shell_reader_reports_an_unreadable_segment_as_an_error() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut s = real_spool(dir.path());
    for r in runs(T0, 5) {
        s.append(&r, SystemTime::now());
    }
    s.sync();
    // The segment becomes unreadable (a directory where the file was).
    let seg = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .expect("a segment")
        .path();
    std::fs::remove_file(&seg).expect("rm");
    std::fs::create_dir(&seg).expect("mkdir");
    let spool = Mutex::new(s);
    let mut reader = None;
    let got = shell::read(&spool, &mut reader, T0, T0 + 100 * STEP);
    assert!(got.is_err(), "{got:?}");
}

#[test]
fn a_release_never_drops_anything_above_the_mark() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut s = real_spool(dir.path());
    // Enough to fill several segments.
    let all = runs(T0, 20_000);
    for r in &all {
        s.append(r, SystemTime::now());
    }
    let segments = s.stats().segments;
    assert!(segments > 2, "{segments} segments");
    let t = base();
    let state = SpoolState {
        oldest: s.oldest(),
        dropped_through: s.dropped_through(),
    };
    let mut core = Backfill::new(plan(0, T0, 1000), state, HashMap::new(), 1, t);
    let mark = T0 + 50_003 * STEP;
    core.on_mark(mark, t);
    let at = core.poll_release().expect("release");
    assert_eq!(at, mark);
    s.release_through(at as i64, SystemTime::now());
    assert!(s.stats().segments < segments, "something was released");
    let kept: Vec<Record> = s.read_from(i64::MIN).collect();
    let above: Vec<&Record> = all.iter().filter(|r| r.span().1 > mark as i64).collect();
    for r in &above {
        assert!(kept.contains(r), "lost {:?}", r.span());
    }
}

mod downtime;
