//! The storage conformance suite: every backend must pass every case.
//! A backend provides empty databases; each case opens its own handles.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use sipsensor_collector::storage::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Case = fn(StorageUrl) -> CaseFuture;

/// Gives each case a new, empty database.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    async fn create(&self, name: &str) -> StorageUrl;
}

pub(crate) async fn open_store(url: &StorageUrl) -> Arc<dyn Storage> {
    open(url, OpenOptions::default())
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

mod coverage;
mod gaps;
mod samples;
mod update;

macro_rules! cases {
    ($($name:path),* $(,)?) => {
        const CASES: &[(&str, Case)] = &[
            $((stringify!($name), |url| Box::pin($name(url))),)*
        ];
    };
}

cases!(
    sensors_upsert_state_and_seen,
    sessions_are_idempotent_and_ranged,
    invalid_sessions_are_refused,
    samples::samples_are_stored_exactly_once,
    samples::sample_queries_order_limit_and_page,
    samples::value_ranges_round_trip,
    samples::undescribed_channels_are_still_returned,
    gaps_and_events_are_idempotent,
    retention_deletes_only_old_rows,
    samples::writer_pipeline_stores_each_sample_once,
    samples::two_collectors_share_one_store,
    reopening_keeps_data_and_schema,
    gaps::backfilled_samples_fill_stored_gaps,
    gaps::expired_gaps_and_the_committed_mark,
    gaps::unsampled_ranges_release_the_mark,
    gaps::a_backfill_ending_next_to_the_live_start_leaves_no_gap,
    gaps::sessions_left_open_are_closed,
    coverage::coverage_shows_each_source_and_cause,
    update::bundles_and_fleet_states_round_trip,
);

/// Runs every case (each on a fresh database) and fails with the list of
/// failed cases.
pub async fn run_all(backend: &dyn Backend) {
    let mut failed = Vec::new();
    for (name, case) in CASES {
        let url = backend.create(name).await;
        let started = std::time::Instant::now();
        // A panicking case fails alone; the join error carries its message.
        match tokio::spawn(case(url)).await {
            Ok(()) => eprintln!("conformance {name}: ok ({:?})", started.elapsed()),
            Err(e) => {
                eprintln!("conformance {name}: FAILED: {e}");
                failed.push(*name);
            }
        }
    }
    assert!(failed.is_empty(), "failed conformance cases: {failed:?}");
    eprintln!("conformance: {} cases passed", CASES.len());
}

async fn sensors_upsert_state_and_seen(url: StorageUrl) {
    let s = open_store(&url).await;
    let a = s.upsert_sensor("sip:b@example.net", None).await.unwrap();
    assert_eq!(a.state, SensorState::Offline);
    assert_eq!(a.display_name, None);
    assert_eq!(a.last_seen_ns, None);
    let again = s
        .upsert_sensor("sip:b@example.net", Some("Hall"))
        .await
        .unwrap();
    assert_eq!(again.id, a.id);
    assert_eq!(again.display_name.as_deref(), Some("Hall"));
    // No name given: the stored one stays.
    let kept = s.upsert_sensor("sip:b@example.net", None).await.unwrap();
    assert_eq!(kept.display_name.as_deref(), Some("Hall"));
    let other = s.upsert_sensor("sip:a@example.net", None).await.unwrap();
    assert_ne!(other.id, a.id);

    s.set_sensor_state(a.id, SensorState::Streaming)
        .await
        .unwrap();
    assert!(matches!(
        s.set_sensor_state(SensorId(987_654), SensorState::Offline)
            .await,
        Err(StorageError::NotFound(_))
    ));
    s.write_batch(&Batch {
        seen: vec![(a.id, 50), (a.id, 70), (other.id, 5), (a.id, 60)],
        ..Batch::default()
    })
    .await
    .unwrap();
    // An older time never moves last-seen back.
    s.write_batch(&Batch {
        seen: vec![(a.id, 10)],
        ..Batch::default()
    })
    .await
    .unwrap();
    let list = s.sensors().await.unwrap();
    let aors: Vec<&str> = list.iter().map(|x| x.aor.as_str()).collect();
    assert_eq!(aors, ["sip:a@example.net", "sip:b@example.net"]);
    assert_eq!(list[1].state, SensorState::Streaming);
    assert_eq!(list[1].last_seen_ns, Some(70));
    assert_eq!(list[0].last_seen_ns, Some(5));
    assert_eq!(
        s.sensor(a.id).await.unwrap().unwrap().aor,
        "sip:b@example.net"
    );
    assert_eq!(
        s.sensor_by_aor("sip:a@example.net")
            .await
            .unwrap()
            .unwrap()
            .id,
        other.id
    );
    assert!(
        s.sensor_by_aor("sip:zz@example.net")
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.sensor(SensorId(-1)).await.unwrap().is_none());
    s.close().await.unwrap();
}

async fn sessions_are_idempotent_and_ranged(url: StorageUrl) {
    let s = open_store(&url).await;
    let sensor = s.upsert_sensor("sip:s@example.net", None).await.unwrap();
    let new = NewSession {
        sensor: sensor.id,
        call_id: "abc@host".into(),
        ssrc: u32::MAX,
        stream: climate(),
        started_ns: T0,
    };
    let a = s.open_session(&new).await.unwrap();
    let b = s.open_session(&new).await.unwrap();
    assert_eq!(a, b, "opening twice returns the same record");
    assert_eq!(a.ssrc, u32::MAX);
    assert_eq!(a.stream, climate());
    assert_eq!(a.ended_ns, None);
    // A re-INVITE: same dialog, new record with the new stream.
    let halved = NewSession {
        started_ns: T0 + 60 * 1_000_000_000,
        stream: StreamSpec {
            rate_hz: 5.0,
            ..climate()
        },
        ..new.clone()
    };
    s.close_session(a.id, halved.started_ns).await.unwrap();
    s.close_session(a.id, halved.started_ns + 999)
        .await
        .unwrap();
    let c = s.open_session(&halved).await.unwrap();
    assert_ne!(c.id, a.id);
    assert_eq!(c.stream.rate_hz, 5.0);
    let got = s.session(a.id).await.unwrap().unwrap();
    assert_eq!(got.ended_ns, Some(halved.started_ns), "first close wins");
    assert!(s.session(SessionId(424_242)).await.unwrap().is_none());

    let all = s.sessions(sensor.id, i64::MIN, TS_MAX).await.unwrap();
    assert_eq!(all.iter().map(|x| x.id).collect::<Vec<_>>(), [a.id, c.id]);
    // Only the second overlaps a range after the first ended.
    let late = s
        .sessions(sensor.id, halved.started_ns + 1, TS_MAX)
        .await
        .unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].id, c.id);
    assert_eq!(late[0].stream.channels.len(), 2);
    // Nothing before the first started.
    assert!(s.sessions(sensor.id, 0, T0).await.unwrap().is_empty());
    assert!(matches!(
        s.close_session(SessionId(424_242), 1).await,
        Err(StorageError::NotFound(_))
    ));
    s.close().await.unwrap();
}

async fn invalid_sessions_are_refused(url: StorageUrl) {
    let s = open_store(&url).await;
    let sensor = s.upsert_sensor("sip:s@example.net", None).await.unwrap();
    let unknown = NewSession {
        sensor: SensorId(55_555),
        call_id: "x".into(),
        ssrc: 1,
        stream: climate(),
        started_ns: T0,
    };
    assert!(matches!(
        s.open_session(&unknown).await,
        Err(StorageError::NotFound(_))
    ));
    let no_channels = NewSession {
        sensor: sensor.id,
        stream: StreamSpec {
            channels: vec![],
            ..climate()
        },
        ..unknown.clone()
    };
    assert!(matches!(
        s.open_session(&no_channels).await,
        Err(StorageError::Invalid { .. })
    ));
    let zero_rate = NewSession {
        sensor: sensor.id,
        stream: StreamSpec {
            rate_hz: 0.0,
            ..climate()
        },
        ..unknown
    };
    assert!(matches!(
        s.open_session(&zero_rate).await,
        Err(StorageError::Invalid { .. })
    ));
    assert!(
        s.sessions(sensor.id, i64::MIN, TS_MAX)
            .await
            .unwrap()
            .is_empty()
    );
    s.close().await.unwrap();
}

async fn gaps_and_events_are_idempotent(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let gaps = vec![
        Gap {
            sensor: sensor.id,
            session: Some(session.id),
            from_ns: T0 + 10 * PERIOD,
            to_ns: T0 + 14 * PERIOD,
            samples: 3,
            cause: GapCause::Loss,
        },
        Gap {
            sensor: sensor.id,
            session: None,
            from_ns: T0 + 100 * PERIOD,
            to_ns: T0 + 400 * PERIOD,
            samples: 299,
            cause: GapCause::SessionBreak,
        },
    ];
    let events: Vec<Event> = (0..4)
        .map(|i| Event {
            session: session.id,
            sensor: sensor.id,
            channel: 2,
            seq: 1000 + i,
            index: 0,
            ts_ns: T0 + i * 1_234_567,
            value: i % 2,
        })
        .collect();
    let batch = Batch {
        gaps: gaps.clone(),
        events: events.clone(),
        ..Batch::default()
    };
    let r = s.write_batch(&batch).await.unwrap();
    assert_eq!(
        (r.gaps_inserted, r.events_inserted, r.events_duplicate),
        (2, 4, 0)
    );
    let r = s.write_batch(&batch).await.unwrap();
    assert_eq!(
        (r.gaps_inserted, r.events_inserted, r.events_duplicate),
        (0, 0, 4)
    );

    assert_eq!(s.gaps(sensor.id, i64::MIN, TS_MAX).await.unwrap(), gaps);
    // Overlap semantics: a gap shows in any range it intersects.
    let mid = s
        .gaps(sensor.id, T0 + 200 * PERIOD, T0 + 201 * PERIOD)
        .await
        .unwrap();
    assert_eq!(mid, vec![gaps[1]]);
    assert!(s.gaps(sensor.id, 0, T0).await.unwrap().is_empty());
    assert_eq!(s.events(sensor.id, i64::MIN, TS_MAX).await.unwrap(), events);
    assert_eq!(
        s.events(sensor.id, T0 + 1, T0 + 2_469_134).await.unwrap(),
        vec![events[1]]
    );
    s.close().await.unwrap();
}

async fn retention_deletes_only_old_rows(url: StorageUrl) {
    let s = open_store(&url).await;
    let day = 86_400 * 1_000_000_000i64;
    let (sensor, old) = sensor_with_session(s.as_ref(), "sip:s@example.net", "old", T0).await;
    let (_, live) =
        sensor_with_session(s.as_ref(), "sip:s@example.net", "live", T0 + 2 * day).await;
    s.close_session(old.id, T0 + day).await.unwrap();
    let mut batch = samples(&old, 0..10, T0);
    // A channel without a reading is not a sample: 19 go, not 20.
    batch[3].raws[1] = None;
    batch.extend(samples(&live, 0..10, T0 + 2 * day));
    s.write_batch(&Batch {
        readings: batch,
        gaps: vec![
            Gap {
                sensor: sensor.id,
                session: Some(old.id),
                from_ns: T0,
                to_ns: T0 + PERIOD,
                samples: 0,
                cause: GapCause::Loss,
            },
            Gap {
                sensor: sensor.id,
                session: Some(live.id),
                from_ns: T0 + day,
                to_ns: T0 + 2 * day,
                samples: 864_000,
                cause: GapCause::SessionBreak,
            },
        ],
        events: vec![Event {
            session: old.id,
            sensor: sensor.id,
            channel: 0,
            seq: 5,
            index: 0,
            ts_ns: T0,
            value: 1,
        }],
        ..Batch::default()
    })
    .await
    .unwrap();
    let r = s.delete_before(T0 + 2 * day).await.unwrap();
    assert_eq!(r.samples, 19);
    assert_eq!(r.events, 1);
    assert_eq!(r.gaps, 1, "the gap ending at the cutoff stays");
    assert_eq!(r.sessions, 1, "the ended, empty session goes");
    let left = all_samples(s.as_ref(), sensor.id).await;
    assert_eq!(left.len(), 20);
    assert!(left.iter().all(|x| x.session == live.id));
    assert!(s.session(old.id).await.unwrap().is_none());
    assert!(s.session(live.id).await.unwrap().is_some());
    assert_eq!(s.gaps(sensor.id, i64::MIN, TS_MAX).await.unwrap().len(), 1);
    // Nothing more to delete.
    let r = s.delete_before(T0 + 2 * day).await.unwrap();
    assert_eq!(r, RetentionReport::default());
    s.close().await.unwrap();
}

async fn reopening_keeps_data_and_schema(url: StorageUrl) {
    let s = open_store(&url).await;
    let latest = s.schema_version().await.unwrap();
    assert!(latest >= 1);
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    s.write_batch(&Batch {
        readings: samples(&session, 0..10, T0),
        ..Batch::default()
    })
    .await
    .unwrap();
    s.close().await.unwrap();
    assert!(s.sensors().await.is_err(), "a closed store refuses work");
    let s = open_store(&url).await;
    assert_eq!(s.schema_version().await.unwrap(), latest);
    assert_eq!(all_samples(s.as_ref(), sensor.id).await.len(), 20);
    s.close().await.unwrap();
}
