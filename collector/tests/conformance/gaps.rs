//! Issue 15 in the store: gaps that resent or backfilled data fills,
//! expired gaps, the committed mark, sessions a crash left open.

use super::open_store;
use crate::common::*;
use sipsensor_collector::storage::*;

fn late(mut readings: Vec<Reading>, source: ReadingSource) -> Vec<Reading> {
    for r in &mut readings {
        r.source = source;
        // Another stream's sequence numbers (RFC 4588 RTX, or the backfill).
        r.seq += 50_000;
    }
    readings
}

/// `(from, to, samples, cause)` in periods after T0.
fn shape(gaps: &[Gap]) -> Vec<(i64, i64, i64, GapCause)> {
    gaps.iter()
        .map(|g| {
            (
                (g.from_ns - T0) / PERIOD,
                (g.to_ns - T0) / PERIOD,
                g.samples,
                g.cause,
            )
        })
        .collect()
}

fn gap(sensor: SensorId, from: i64, to: i64, cause: GapCause) -> Gap {
    Gap {
        sensor,
        session: None,
        from_ns: T0 + from * PERIOD,
        to_ns: T0 + to * PERIOD,
        samples: to - from - 1,
        cause,
    }
}

pub(super) async fn backfilled_samples_fill_stored_gaps(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, first) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let (_, second) =
        sensor_with_session(s.as_ref(), "sip:s@example.net", "c2", T0 + 100 * PERIOD).await;
    let (other, _) = sensor_with_session(s.as_ref(), "sip:o@example.net", "c3", T0).await;
    // Live: 0..=20 and 40..=60 in the first session, 100..=110 in the
    // second; lost 21..=39, a break 61..=99. Another sensor has a gap at
    // the same times.
    let mut live = samples(&first, (0..=20).chain(40..=60), T0);
    live.extend(samples(&second, 100..=110, T0));
    let gaps = vec![
        gap(sensor.id, 20, 40, GapCause::Loss),
        gap(sensor.id, 60, 100, GapCause::SessionBreak),
        gap(other.id, 20, 40, GapCause::Loss),
    ];
    let r = s
        .write_batch(&Batch {
            readings: live,
            gaps: gaps.clone(),
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((r.gaps_inserted, r.gaps_filled), (3, 0));

    // Resent in the middle of the loss: the gap splits around it.
    let r = s
        .write_batch(&Batch {
            readings: late(samples(&first, 30..=31, T0), ReadingSource::Resent),
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((r.samples_inserted, r.gaps_filled), (4, 1));
    assert_eq!(
        shape(&s.gaps(sensor.id, i64::MIN, TS_MAX).await.unwrap()),
        vec![
            (20, 30, 9, GapCause::Loss),
            (31, 40, 8, GapCause::Loss),
            (60, 100, 39, GapCause::SessionBreak),
        ]
    );
    // Backfilled by the second session from the start of the break: it
    // shrinks from the left. Then the rest of the loss: it disappears.
    s.write_batch(&Batch {
        readings: late(samples(&second, 61..=80, T0), ReadingSource::Backfilled),
        ..Batch::default()
    })
    .await
    .unwrap();
    let rest = samples(&second, (21..=29).chain(32..=39), T0);
    s.write_batch(&Batch {
        readings: late(rest, ReadingSource::Backfilled),
        ..Batch::default()
    })
    .await
    .unwrap();
    assert_eq!(
        shape(&s.gaps(sensor.id, i64::MIN, TS_MAX).await.unwrap()),
        vec![(80, 100, 19, GapCause::SessionBreak)]
    );
    // Another sensor's gap at the same times is its own.
    assert_eq!(
        shape(&s.gaps(other.id, i64::MIN, TS_MAX).await.unwrap()),
        vec![(20, 40, 19, GapCause::Loss)]
    );
    // Every instant once, each with how it came.
    let stored = all_samples(s.as_ref(), sensor.id).await;
    assert_eq!(stored.len(), 2 * (81 + 11));
    let source_at = |k: i64| {
        stored
            .iter()
            .find(|x| x.ts_ns == T0 + k * PERIOD)
            .map(|x| x.source)
    };
    assert_eq!(source_at(0), Some(ReadingSource::Live));
    assert_eq!(source_at(30), Some(ReadingSource::Resent));
    assert_eq!(source_at(61), Some(ReadingSource::Backfilled));
    assert_eq!(source_at(81), None);

    // A gap recorded after the data that fills part of it (the gap finder
    // waits out its grace time; a retransmission may be quicker).
    s.write_batch(&Batch {
        readings: late(samples(&second, 200..=201, T0), ReadingSource::Resent),
        ..Batch::default()
    })
    .await
    .unwrap();
    let r = s
        .write_batch(&Batch {
            gaps: vec![gap(sensor.id, 110, 210, GapCause::Loss)],
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(r.gaps_filled, 1);
    assert_eq!(
        shape(&s.gaps(sensor.id, T0 + 105 * PERIOD, TS_MAX).await.unwrap()),
        vec![
            (110, 200, 89, GapCause::Loss),
            (201, 210, 8, GapCause::Loss)
        ]
    );
    s.close().await.unwrap();
}

pub(super) async fn expired_gaps_and_the_committed_mark(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    assert_eq!(s.committed_through(sensor.id).await.unwrap(), None);
    s.write_batch(&Batch {
        readings: samples(&session, (0..=10).chain(50..=60).chain(90..=99), T0),
        gaps: vec![
            gap(sensor.id, 10, 50, GapCause::SessionBreak),
            gap(sensor.id, 60, 90, GapCause::Loss),
        ],
        ..Batch::default()
    })
    .await
    .unwrap();
    // The oldest gap that could still fill holds the mark.
    assert_eq!(
        s.committed_through(sensor.id).await.unwrap(),
        Some(T0 + 10 * PERIOD)
    );
    // The agent's spool starts at 30: 11..=29 can never come. The break
    // keeps its part the spool still has.
    let expired = s
        .record_expired(sensor.id, T0 + 10 * PERIOD, T0 + 30 * PERIOD)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shape(&[expired]), vec![(10, 30, 19, GapCause::Expired)]);
    assert_eq!(
        shape(&s.gaps(sensor.id, i64::MIN, TS_MAX).await.unwrap()),
        vec![
            (10, 30, 19, GapCause::Expired),
            // 30 onwards may still come: bounded by the instant before.
            (29, 50, 20, GapCause::SessionBreak),
            (60, 90, 29, GapCause::Loss),
        ]
    );
    // Expired gaps do not hold the mark; the fillable ones do: through 29
    // everything is stored or gone.
    assert_eq!(
        s.committed_through(sensor.id).await.unwrap(),
        Some(T0 + 29 * PERIOD)
    );
    s.record_expired(sensor.id, T0 + 29 * PERIOD, T0 + 50 * PERIOD)
        .await
        .unwrap();
    s.record_expired(sensor.id, T0 + 60 * PERIOD, T0 + 90 * PERIOD)
        .await
        .unwrap();
    assert_eq!(
        s.committed_through(sensor.id).await.unwrap(),
        Some(T0 + 99 * PERIOD)
    );
    assert!(
        s.gaps(sensor.id, i64::MIN, TS_MAX)
            .await
            .unwrap()
            .iter()
            .all(|g| g.cause == GapCause::Expired)
    );
    // A range no gap described is counted at the session's rate (10 Hz);
    // what is stored inside it is not gone.
    s.write_batch(&Batch {
        readings: samples(&session, 150..=150, T0),
        ..Batch::default()
    })
    .await
    .unwrap();
    s.record_expired(sensor.id, T0 + 99 * PERIOD, T0 + 200 * PERIOD)
        .await
        .unwrap();
    assert_eq!(
        shape(&s.gaps(sensor.id, T0 + 95 * PERIOD, TS_MAX).await.unwrap()),
        vec![
            (99, 150, 50, GapCause::Expired),
            (150, 200, 49, GapCause::Expired)
        ]
    );
    // An empty range records nothing.
    assert_eq!(s.record_expired(sensor.id, T0, T0).await.unwrap(), None);
    s.close().await.unwrap();
}

/// A store holding instants 0-10 and 50-60 of one sensor, the break
/// between them a session-break gap.
async fn broken_between_10_and_50(
    url: &StorageUrl,
) -> (std::sync::Arc<dyn Storage>, Sensor, Session) {
    let s = open_store(url).await;
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    s.write_batch(&Batch {
        readings: samples(&session, (0..=10).chain(50..=60), T0),
        gaps: vec![gap(sensor.id, 10, 50, GapCause::SessionBreak)],
        ..Batch::default()
    })
    .await
    .unwrap();
    (s, sensor, session)
}

/// docs/protocol.md 11.4 `unsampled`: the agent was off between two
/// sessions (or its backfill reached its live start). The break becomes a
/// source gap, which holds the mark no longer; a claim that contradicts
/// stored samples is refused and changes nothing.
pub(super) async fn unsampled_ranges_release_the_mark(url: StorageUrl) {
    let (s, sensor, _) = broken_between_10_and_50(&url).await;
    assert_eq!(
        s.committed_through(sensor.id).await.unwrap(),
        Some(T0 + 10 * PERIOD)
    );
    // A false claim: 55 is stored.
    let refused = s
        .record_unsampled(sensor.id, T0 + 10 * PERIOD, T0 + 56 * PERIOD)
        .await;
    assert!(
        matches!(refused, Err(StorageError::Invalid { .. })),
        "{refused:?}"
    );
    assert_eq!(
        shape(&s.gaps(sensor.id, i64::MIN, TS_MAX).await.unwrap()),
        vec![(10, 50, 39, GapCause::SessionBreak)]
    );
    let declared = s
        .record_unsampled(sensor.id, T0 + 10 * PERIOD, T0 + 50 * PERIOD)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shape(&[declared]), vec![(10, 50, 39, GapCause::Source)]);
    assert_eq!(
        shape(&s.gaps(sensor.id, i64::MIN, TS_MAX).await.unwrap()),
        vec![(10, 50, 39, GapCause::Source)]
    );
    assert_eq!(
        s.committed_through(sensor.id).await.unwrap(),
        Some(T0 + 60 * PERIOD)
    );
    assert_eq!(
        s.committed_through_many(&[sensor.id, SensorId(999_999)])
            .await
            .unwrap(),
        vec![Some(T0 + 60 * PERIOD), None]
    );
    assert_eq!(s.record_unsampled(sensor.id, T0, T0).await.unwrap(), None);
    s.close().await.unwrap();
}

/// docs/protocol.md 11.7 step 4 at the end of every backfill: the agent
/// declares unsampled from its last backfilled instant to its first live
/// one. One step apart, nothing lies between: no gap is stored (a source
/// gap of 0 samples at every backfill end and every reopen was).
pub(super) async fn a_backfill_ending_next_to_the_live_start_leaves_no_gap(url: StorageUrl) {
    let (s, sensor, session) = broken_between_10_and_50(&url).await;
    s.write_batch(&Batch {
        readings: late(samples(&session, 11..=49, T0), ReadingSource::Backfilled),
        ..Batch::default()
    })
    .await
    .unwrap();
    let declared = s
        .record_unsampled(sensor.id, T0 + 49 * PERIOD, T0 + 50 * PERIOD)
        .await
        .unwrap();
    assert_eq!(declared, None);
    assert_eq!(
        shape(&s.gaps(sensor.id, i64::MIN, TS_MAX).await.unwrap()),
        vec![]
    );
    assert_eq!(
        s.committed_through(sensor.id).await.unwrap(),
        Some(T0 + 60 * PERIOD)
    );
    s.close().await.unwrap();
}

pub(super) async fn sessions_left_open_are_closed(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, with_data) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let (_, empty) =
        sensor_with_session(s.as_ref(), "sip:s@example.net", "c2", T0 + 500 * PERIOD).await;
    let (_, ended) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c3", T0).await;
    let (_, recent) =
        sensor_with_session(s.as_ref(), "sip:s@example.net", "c4", T0 + 900 * PERIOD).await;
    s.close_session(ended.id, T0 + 7).await.unwrap();
    let mut readings = samples(&with_data, 0..=42, T0);
    readings.extend(samples(&recent, 1000..=1001, T0));
    s.write_batch(&Batch {
        readings,
        ..Batch::default()
    })
    .await
    .unwrap();
    // Quiet since before T0 + 1000 periods: the recent one (another
    // collector's live session in a shared store) stays open.
    let closed = s.close_open_sessions(T0 + 1000 * PERIOD).await.unwrap();
    assert_eq!(closed, 2);
    let ended_at = |id| {
        let s = s.clone();
        async move { s.session(id).await.unwrap().unwrap().ended_ns }
    };
    assert_eq!(ended_at(with_data.id).await, Some(T0 + 42 * PERIOD));
    assert_eq!(ended_at(empty.id).await, Some(T0 + 500 * PERIOD));
    assert_eq!(ended_at(ended.id).await, Some(T0 + 7));
    assert_eq!(ended_at(recent.id).await, None);
    assert_eq!(s.close_open_sessions(T0 + 1000 * PERIOD).await.unwrap(), 0);
    assert_eq!(s.close_open_sessions(TS_MAX).await.unwrap(), 1);
    assert_eq!(ended_at(recent.id).await, Some(T0 + 1001 * PERIOD));

    // At start: a session that stored a minute ago is a leftover in a
    // SQLite file (this collector's alone), but in PostgreSQL possibly
    // another collector's live one.
    let now = T0 + 100_000 * PERIOD;
    let minute = 600 * PERIOD;
    let (_, last_run) =
        sensor_with_session(s.as_ref(), "sip:s@example.net", "c5", now - minute).await;
    s.write_batch(&Batch {
        readings: samples(&last_run, 99_400..=99_400, T0),
        ..Batch::default()
    })
    .await
    .unwrap();
    let closed = close_sessions_left_open(s.as_ref(), &url, now)
        .await
        .unwrap();
    let expected = match url {
        StorageUrl::Sqlite(_) => (1, Some(now - minute)),
        StorageUrl::Postgres(_) => (0, None),
    };
    assert_eq!((closed, ended_at(last_run.id).await), expected);
    let _ = sensor;
    s.close().await.unwrap();
}
