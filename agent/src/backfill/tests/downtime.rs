//! The agent's downtimes inside its spool (docs/protocol.md 11.7 step 4):
//! between one run's last durable record and the next run's first, it
//! reports unsampled, so a collector's mark passes them and the spool is
//! released. A collector that honours unsampled ranges (and refuses one
//! holding samples it stores, as the real one does) on a virtual clock.

use super::*;

/// The collector: the decoded packets, the ranges it recorded unsampled,
/// and the declarations it refused (samples stored inside).
#[derive(Default)]
struct Honouring {
    packets: Collector,
    unsampled: Vec<(u64, u64)>,
    refused: Vec<(u64, u64)>,
}

impl Honouring {
    /// The ranges declared unsampled but the one before the live start,
    /// in order.
    fn downtimes(&self, live: u64) -> Vec<(u64, u64)> {
        let mut d: Vec<_> = self
            .unsampled
            .iter()
            .copied()
            .filter(|(_, before)| *before != live)
            .collect();
        d.sort_unstable();
        d
    }

    fn declare(&mut self, after: u64, before: u64) {
        let stored_inside = self
            .packets
            .samples
            .keys()
            .any(|(_, at)| *at > after && *at < before);
        if stored_inside {
            self.refused.push((after, before));
        } else if !self.unsampled.contains(&(after, before)) {
            self.unsampled.push((after, before));
        }
    }

    /// Over every grid instant stored or declared unsampled.
    fn mark(&self, from: u64) -> u64 {
        let mut through = from;
        loop {
            let next = through + STEP;
            let held = self.packets.samples.contains_key(&(0, next))
                || self.unsampled.iter().any(|(a, b)| *a < next && next < *b);
            if !held {
                return through;
            }
            through = next;
        }
    }
}

/// Drive `core` for `ms` virtual milliseconds: every packet arrives,
/// every compound's unsampled ranges are declared, and the mark goes back
/// to the agent every 100 ms. Returns the last mark.
fn drive_honouring(
    core: &mut Backfill,
    spool: &FakeSpool,
    c: &mut Honouring,
    t: Instant,
    ms: u64,
) -> u64 {
    let mut buf = vec![0u8; 2048];
    let mut mark = core.mark();
    // The live stream's first sample, stored from the start.
    c.packets.samples.insert((0, core.end()), 0);
    for step in 0..ms {
        let now = t + Duration::from_millis(step);
        spool.answer(core);
        while let Some(n) = core.poll_transmit(now, &mut buf) {
            c.packets.take(&buf[..n]);
        }
        for m in core.poll_rtcp(now).unwrap_or_default() {
            if let BackfillMessage::Unsampled {
                after_ns,
                before_ns,
                ..
            } = m
            {
                c.declare(after_ns, before_ns);
            }
        }
        if step % 100 == 0 {
            mark = c.mark(mark);
            core.on_mark(mark, now);
        }
        if core.is_done() {
            break;
        }
    }
    mark
}

/// Runs from `first` to `last` (inclusive, 5 rows a record).
fn run_between(first: u64, last: u64) -> Vec<Record> {
    runs(first, (last - first) / (5 * STEP) + 1)
}

/// Run 1 to R, down 50 s, run 2 from F; the live stream starts at L.
const RUN_END: u64 = T0 + 99 * STEP;
const NEXT_START: u64 = T0 + 600 * STEP;
const LIVE: u64 = T0 + 700 * STEP;

/// The spool of one restart, and a backfill from `mark` that knows it.
fn one_restart(mark: u64, t: Instant) -> (FakeSpool, Backfill) {
    let mut records = run_between(T0, RUN_END);
    records.extend(run_between(NEXT_START, LIVE - STEP));
    let spool = FakeSpool::new(records);
    let mut core = new_core(plan(mark, LIVE, 1_000_000), &spool, t);
    core.on_run_ends(&[RUN_END as i64]);
    (spool, core)
}

#[test]
fn one_restart_is_reported_unsampled_and_the_mark_passes_it() {
    let t = base();
    let (spool, mut core) = one_restart(T0 + 9 * STEP, t);
    let mut c = Honouring::default();
    let mark = drive_honouring(&mut core, &spool, &mut c, t, 20_000);
    assert!(core.is_done(), "the mark stayed at {mark}");
    assert_eq!(c.downtimes(LIVE), [(RUN_END, NEXT_START)]);
    assert_eq!(c.refused, []);
    assert_eq!(core.stats().restarts, 0);
}

#[test]
fn several_restarts_are_each_reported() {
    let t = base();
    let ends = [T0 + 49 * STEP, T0 + 349 * STEP];
    let starts = [T0 + 200 * STEP, T0 + 800 * STEP];
    let live = T0 + 900 * STEP;
    let mut records = run_between(T0, ends[0]);
    records.extend(run_between(starts[0], ends[1]));
    records.extend(run_between(starts[1], live - STEP));
    let spool = FakeSpool::new(records);
    let mut core = new_core(plan(T0 - STEP, live, 1_000_000), &spool, t);
    core.on_run_ends(&ends.map(|e| e as i64));
    let mut c = Honouring::default();
    drive_honouring(&mut core, &spool, &mut c, t, 30_000);
    assert!(core.is_done());
    assert_eq!(
        c.downtimes(live),
        [(ends[0], starts[0]), (ends[1], starts[1])]
    );
    assert_eq!(c.refused, []);
}

#[test]
fn live_samples_the_spool_lost_move_the_mark_into_the_downtime() {
    // kill -9: the collector stored live samples up to K after the last
    // durable record R; its mark K is genuine, and the range reported
    // starts there (from R it would be refused).
    let t = base();
    let live_through = T0 + 104 * STEP;
    let (spool, mut core) = one_restart(T0 + 9 * STEP, t);
    let mut c = Honouring::default();
    for k in 100..=104 {
        c.packets.samples.insert((0, T0 + k * STEP), 0);
    }
    drive_honouring(&mut core, &spool, &mut c, t, 20_000);
    assert!(core.is_done());
    assert_eq!(c.downtimes(LIVE), [(live_through, NEXT_START)]);
    assert_eq!(c.refused, []);
    assert_eq!(core.stats().odd_marks, 0, "K is not clamped");
}

#[test]
fn a_downtime_the_mark_has_passed_is_not_reported() {
    let t = base();
    // The collector already holds run 2's start.
    let (spool, mut core) = one_restart(NEXT_START + 10 * STEP, t);
    let mut c = Honouring::default();
    drive_honouring(&mut core, &spool, &mut c, t, 20_000);
    assert!(core.is_done());
    assert_eq!(c.downtimes(LIVE), []);
}

#[test]
fn a_run_end_with_nothing_spooled_after_it_is_the_range_before_the_live_start() {
    // The agent restarted and its live stream is the first thing spooled
    // since: one range, up to L, as before.
    let t = base();
    let spool = FakeSpool::new(run_between(T0, RUN_END));
    let mut core = new_core(plan(T0 + 9 * STEP, LIVE, 1_000_000), &spool, t);
    core.on_run_ends(&[RUN_END as i64]);
    let mut c = Honouring::default();
    drive_honouring(&mut core, &spool, &mut c, t, 20_000);
    assert!(core.is_done());
    assert_eq!(c.unsampled, [(RUN_END, LIVE)]);
}

#[test]
fn the_spool_records_each_runs_end_at_open_and_none_for_an_empty_spool() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    // Nothing spooled before: no run ended inside the spool.
    assert_eq!(real_spool(dir.path()).run_ends(), [] as [i64; 0]);
    let mut s = real_spool(dir.path());
    assert_eq!(s.run_ends(), [] as [i64; 0]);
    for r in run_between(T0, RUN_END) {
        s.append(&r, SystemTime::now());
    }
    s.sync();
    drop(s);
    // Killed: the next open knows where that run ended.
    let mut s = real_spool(dir.path());
    assert_eq!(s.run_ends(), [RUN_END as i64]);
    for r in run_between(NEXT_START, LIVE - STEP) {
        s.append(&r, SystemTime::now());
    }
    s.sync();
    drop(s);
    // A run that spooled nothing adds nothing.
    drop(real_spool(dir.path()));
    let s = real_spool(dir.path());
    assert_eq!(s.run_ends(), [RUN_END as i64, (LIVE - STEP) as i64]);
}
