//! Issue 15: a sensor's timeline as live, resent, backfilled and missing
//! ranges, and the continuation that bounds each answer.

use super::open_store;
use crate::common::*;
use sipsensor_collector::storage::*;

fn at(i: i64) -> i64 {
    T0 + i * PERIOD
}

fn gap(sensor: SensorId, from: i64, to: i64, samples: i64, cause: GapCause) -> Gap {
    Gap {
        sensor,
        session: None,
        from_ns: at(from),
        to_ns: at(to),
        samples,
        cause,
    }
}

/// `(kind, from, to, instants, resent, cause)` in periods after T0.
type Shape = (CoverageKind, i64, i64, i64, i64, Option<GapCause>);

fn shape(ranges: &[CoverageRange]) -> Vec<Shape> {
    ranges
        .iter()
        .map(|r| {
            (
                r.kind,
                (r.from_ns - T0) / PERIOD,
                (r.to_ns - T0) / PERIOD,
                r.instants,
                r.resent,
                r.cause,
            )
        })
        .collect()
}

fn query(sensor: SensorId, from: i64, to: i64, limit: u32, scan_limit: u32) -> CoverageQuery {
    CoverageQuery {
        sensor,
        from_ns: at(from),
        to_ns: at(to),
        limit,
        scan_limit,
    }
}

/// Every range of the window, through the continuations.
async fn paged(s: &dyn Storage, q: CoverageQuery) -> (Vec<CoverageRange>, u64) {
    let mut out = Vec::new();
    let answers = each_coverage_range(s, q, |r| {
        out.push(r);
        Ok::<_, StorageError>(())
    })
    .await
    .unwrap();
    (out, answers)
}

pub(super) async fn coverage_shows_each_source_and_cause(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, first) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let (_, second) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c2", at(40)).await;
    let (other, other_session) =
        sensor_with_session(s.as_ref(), "sip:o@example.net", "c3", T0).await;
    // Live 0..=9 and 12..=19 (15 resent), 10 and 11 lost; a break to the
    // second session at 40, live 40..=49 and, after 50..=54 not sampled,
    // 55..=59. Another sensor streams at the same times.
    let mut live = samples(&first, (0..=9).chain(12..=19), T0);
    for r in live.iter_mut().filter(|r| r.ts_ns == at(15)) {
        r.source = ReadingSource::Resent;
    }
    live.extend(samples(&second, (40..=49).chain(55..=59), T0));
    live.extend(samples(&other_session, 0..=59, T0));
    s.write_batch(&Batch {
        readings: live,
        gaps: vec![
            gap(sensor.id, 9, 12, 2, GapCause::Loss),
            gap(sensor.id, 19, 40, 20, GapCause::SessionBreak),
            gap(sensor.id, 49, 55, 5, GapCause::Source),
        ],
        ..Batch::default()
    })
    .await
    .unwrap();
    // Backfill brings 20..=29; 30..=34 are older than the agent's spool.
    let mut backfill = samples(&second, 20..=29, T0);
    for r in &mut backfill {
        r.source = ReadingSource::Backfilled;
        r.seq += 50_000;
    }
    s.write_batch(&Batch {
        readings: backfill,
        ..Batch::default()
    })
    .await
    .unwrap();
    s.record_expired(sensor.id, at(29), at(35)).await.unwrap();

    use CoverageKind::*;
    let whole: Vec<Shape> = vec![
        (Live, 0, 9, 10, 0, None),
        (Missing, 9, 12, 2, 0, Some(GapCause::Loss)),
        (Resent, 12, 19, 8, 1, None),
        (Backfilled, 20, 29, 10, 0, None),
        (Missing, 29, 35, 5, 0, Some(GapCause::Expired)),
        (Missing, 34, 40, 5, 0, Some(GapCause::SessionBreak)),
        (Live, 40, 49, 10, 0, None),
        (Missing, 49, 55, 5, 0, Some(GapCause::Source)),
        (Live, 55, 59, 5, 0, None),
    ];
    let c = s
        .coverage(&query(sensor.id, 0, 60, 100, 1_000))
        .await
        .unwrap();
    assert_eq!(shape(&c.ranges), whole);
    assert_eq!(c.next_from_ns, None);

    // A window starting inside a gap sees that gap whole; one ending
    // inside the readings sees them up to its end.
    let c = s
        .coverage(&query(sensor.id, 31, 45, 100, 1_000))
        .await
        .unwrap();
    assert_eq!(
        shape(&c.ranges),
        whole[4..7]
            .iter()
            .map(|r| {
                if r.1 == 40 {
                    (Live, 40, 44, 5, 0, None)
                } else {
                    *r
                }
            })
            .collect::<Vec<_>>()
    );

    // Small limits: every answer bounded, the continuations give it all.
    for (limit, scan_limit) in [(1, 1_000), (2, 1_000), (100, 4), (3, 7), (1, 1)] {
        let (ranges, answers) = paged(s.as_ref(), query(sensor.id, 0, 60, limit, scan_limit)).await;
        assert_eq!(
            shape(&ranges),
            whole,
            "limit {limit}, scan limit {scan_limit}"
        );
        assert!(answers > 1, "limit {limit}, scan limit {scan_limit}");
    }

    // The other sensor: one live range; an empty window, nothing.
    let c = s
        .coverage(&query(other.id, 0, 60, 100, 1_000))
        .await
        .unwrap();
    assert_eq!(shape(&c.ranges), vec![(Live, 0, 59, 60, 0, None)]);
    let c = s
        .coverage(&query(other.id, 60, 600, 100, 1_000))
        .await
        .unwrap();
    assert!(c.ranges.is_empty() && c.next_from_ns.is_none(), "{c:?}");
}
