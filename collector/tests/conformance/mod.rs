//! The storage conformance suite: every backend must pass every case.
//! A backend provides empty databases; each case opens its own handles.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::common::*;
use sipsensor_collector::metrics::Metrics;
use sipsensor_collector::stats::StreamsRegistry;
use sipsensor_collector::storage::writer::{StorageWriter, WriterConfig};
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

async fn open_store(url: &StorageUrl) -> Arc<dyn Storage> {
    open(url, OpenOptions::default())
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        const CASES: &[(&str, Case)] = &[
            $((stringify!($name), |url| Box::pin($name(url))),)*
        ];
    };
}

cases!(
    sensors_upsert_state_and_seen,
    sessions_are_idempotent_and_ranged,
    invalid_sessions_are_refused,
    samples_are_stored_exactly_once,
    sample_queries_order_limit_and_page,
    value_ranges_round_trip,
    undescribed_channels_are_still_returned,
    gaps_and_events_are_idempotent,
    retention_deletes_only_old_rows,
    writer_pipeline_stores_each_sample_once,
    two_collectors_share_one_store,
    reopening_keeps_data_and_schema,
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

async fn samples_are_stored_exactly_once(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let first = samples(&session, 0..100, T0);
    let r = s
        .write_batch(&Batch {
            samples: first.clone(),
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((r.samples_inserted, r.samples_duplicate), (200, 0));
    // The same packets again (a retransmission, or a retried batch).
    let r = s
        .write_batch(&Batch {
            samples: first,
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((r.samples_inserted, r.samples_duplicate), (0, 200));
    // Overlapping, and a duplicate inside the batch itself.
    let mut overlap = samples(&session, 90..120, T0);
    overlap.extend(samples(&session, 110..111, T0));
    let r = s
        .write_batch(&Batch {
            samples: overlap,
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((r.samples_inserted, r.samples_duplicate), (40, 22));

    let stored = all_samples(s.as_ref(), sensor.id).await;
    assert_eq!(stored.len(), 240);
    for (i, x) in stored.iter().enumerate() {
        let seq = (i / 2) as i64;
        let ch = (i % 2) as u16;
        assert_eq!((x.seq, x.channel, x.index), (seq, ch, 0), "row {i}");
        assert_eq!(x.ts_ns, T0 + seq * PERIOD);
        assert_eq!(x.raw, raw_of(seq, ch));
        assert_eq!(x.session, session.id);
        assert_eq!(x.sensor, sensor.id);
        let (name, unit, scale) = if ch == 0 {
            ("temperature", "Cel", 100.0)
        } else {
            ("humidity", "%RH", 10.0)
        };
        assert_eq!((x.name.as_str(), x.unit.as_str()), (name, unit));
        assert_eq!(x.value, x.raw as f64 / scale);
    }
    // The same sequence number in another session is another sample.
    let (_, other) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c2", T0).await;
    let r = s
        .write_batch(&Batch {
            samples: samples(&other, 0..1, T0),
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(r.samples_inserted, 2);
    s.close().await.unwrap();
}

async fn sample_queries_order_limit_and_page(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, a) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let (_, b) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c2", T0).await;
    let (noise, n) = sensor_with_session(s.as_ref(), "sip:n@example.net", "c3", T0).await;
    // Two sessions at the same instants: ties on ts_ns are broken by
    // session, channel, seq, index.
    let mut batch = samples(&a, 0..50, T0);
    batch.extend(samples(&b, 0..50, T0));
    batch.extend(samples(&n, 0..50, T0));
    s.write_batch(&Batch {
        samples: batch,
        ..Batch::default()
    })
    .await
    .unwrap();

    let q = |from_ns, to_ns, limit, order, after| SampleQuery {
        sensor: sensor.id,
        from_ns,
        to_ns,
        limit,
        order,
        after,
    };
    // Half-open range: [T0 + 10 periods, T0 + 20 periods).
    let r = s
        .samples(&q(
            T0 + 10 * PERIOD,
            T0 + 20 * PERIOD,
            1000,
            Order::Asc,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(r.len(), 40);
    assert_eq!(r[0].ts_ns, T0 + 10 * PERIOD);
    assert_eq!(r[39].ts_ns, T0 + 19 * PERIOD);
    let keys: Vec<SampleKey> = r.iter().map(|x| x.key()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        keys, sorted,
        "ascending in (ts, session, channel, seq, index)"
    );
    assert_eq!((r[0].session, r[0].channel), (a.id, 0));
    assert_eq!((r[1].session, r[1].channel), (a.id, 1));
    assert_eq!((r[2].session, r[2].channel), (b.id, 0));

    // The newest five, newest first.
    let r = s
        .samples(&q(i64::MIN, TS_MAX, 5, Order::Desc, None))
        .await
        .unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(r[0].ts_ns, T0 + 49 * PERIOD);
    assert_eq!((r[0].session, r[0].channel), (b.id, 1));
    assert!(r.windows(2).all(|w| w[0].key() > w[1].key()));

    // Paging with odd page sizes visits every row once, both ways.
    for order in [Order::Asc, Order::Desc] {
        let mut seen = Vec::new();
        let mut after = None;
        for _ in 0..100 {
            let page = s
                .samples(&q(i64::MIN, TS_MAX, 7, order, after))
                .await
                .unwrap();
            after = page.last().map(|x| x.key());
            let n = page.len();
            seen.extend(page.into_iter().map(|x| x.key()));
            if n < 7 {
                break;
            }
        }
        assert_eq!(seen.len(), 200, "{order:?}");
        let mut expect = seen.clone();
        expect.sort();
        if order == Order::Desc {
            expect.reverse();
        }
        assert_eq!(seen, expect, "{order:?}");
    }
    // Another sensor's samples never show.
    let r = s
        .samples(&SampleQuery {
            sensor: noise.id,
            ..q(i64::MIN, TS_MAX, 1000, Order::Asc, None)
        })
        .await
        .unwrap();
    assert!(r.iter().all(|x| x.session == n.id));
    assert_eq!(r.len(), 100);
    s.close().await.unwrap();
}

async fn value_ranges_round_trip(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let extremes = [
        (0i64, i64::MIN, 0u32, i64::MIN + 1),
        (1 << 40, i64::MAX, u32::MAX, i64::MAX - 1),
        (i64::MAX, -1, 7, -1),
    ];
    let rows: Vec<Sample> = extremes
        .iter()
        .map(|&(seq, raw, index, ts)| Sample {
            session: session.id,
            sensor: sensor.id,
            channel: 1,
            seq,
            index,
            ts_ns: ts,
            raw,
        })
        .collect();
    s.write_batch(&Batch {
        samples: rows,
        ..Batch::default()
    })
    .await
    .unwrap();
    let got = all_samples(s.as_ref(), sensor.id).await;
    assert_eq!(got.len(), 3);
    assert_eq!(
        (got[0].seq, got[0].raw, got[0].index, got[0].ts_ns),
        (0, i64::MIN, 0, i64::MIN + 1)
    );
    assert_eq!((got[1].seq, got[1].raw, got[1].index), (i64::MAX, -1, 7));
    assert_eq!(
        (got[2].seq, got[2].raw, got[2].index, got[2].ts_ns),
        (1 << 40, i64::MAX, u32::MAX, i64::MAX - 1)
    );
    s.close().await.unwrap();
}

async fn undescribed_channels_are_still_returned(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    s.write_batch(&Batch {
        samples: vec![Sample {
            session: session.id,
            sensor: sensor.id,
            channel: 9,
            seq: 1,
            index: 0,
            ts_ns: T0,
            raw: 42,
        }],
        ..Batch::default()
    })
    .await
    .unwrap();
    let got = all_samples(s.as_ref(), sensor.id).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "channel 9");
    assert_eq!(got[0].value, 42.0);
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
    batch.extend(samples(&live, 0..10, T0 + 2 * day));
    s.write_batch(&Batch {
        samples: batch,
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
    assert_eq!(r.samples, 20);
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

async fn writer_pipeline_stores_each_sample_once(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let metrics = Metrics::new(StreamsRegistry::new());
    let writer = StorageWriter::spawn(
        s.clone(),
        WriterConfig {
            batch_rows: 500,
            ..WriterConfig::default()
        },
        metrics.clone(),
    );
    // 8 receivers, 500 packets each; every 10th packet arrives twice.
    let mut tasks = Vec::new();
    for r in 0..8i64 {
        let h = writer.handle();
        let session = session.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500i64 {
                let seq = r * 500 + i;
                h.samples(samples(&session, seq..=seq, T0)).await.unwrap();
                if i % 10 == 0 {
                    h.samples(samples(&session, seq..=seq, T0)).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    writer.handle().flush().await.unwrap();
    let summary = writer.shutdown().await;
    assert_eq!(summary.written.samples_inserted, 8_000);
    assert_eq!(summary.written.samples_duplicate, 800);
    assert_eq!(summary.lost_at_shutdown, 0);
    assert_eq!(metrics.samples_stored.get(), 8_000);
    assert_eq!(metrics.samples_duplicate.get(), 800);
    let stored = all_samples(s.as_ref(), sensor.id).await;
    assert_eq!(stored.len(), 8_000);
    let mut seqs: Vec<i64> = stored.iter().map(|x| x.seq).collect();
    seqs.dedup();
    assert_eq!(seqs, (0..4_000).collect::<Vec<_>>());
    s.close().await.unwrap();
}

async fn two_collectors_share_one_store(url: StorageUrl) {
    let one = open_store(&url).await;
    let two = open_store(&url).await;
    let (sensor, session) = sensor_with_session(one.as_ref(), "sip:s@example.net", "c1", T0).await;
    // The second collector sees the same sensor and session records.
    let (sensor2, session2) =
        sensor_with_session(two.as_ref(), "sip:s@example.net", "c1", T0).await;
    assert_eq!((sensor.id, session.id), (sensor2.id, session2.id));
    // Both write overlapping batches at the same time.
    let mut tasks = Vec::new();
    for (k, store) in [one.clone(), two.clone()].into_iter().enumerate() {
        let session = session.clone();
        tasks.push(tokio::spawn(async move {
            let mut inserted = 0;
            for chunk in 0..20i64 {
                let lo = chunk * 50 + k as i64 * 25;
                let r = store
                    .write_batch(&Batch {
                        samples: samples(&session, lo..lo + 50, T0),
                        ..Batch::default()
                    })
                    .await
                    .unwrap();
                inserted += r.samples_inserted;
            }
            inserted
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        inserted += t.await.unwrap();
    }
    // Sequences 0 .. 1025, two channels, each stored once in total.
    assert_eq!(inserted, 2 * 1025);
    assert_eq!(all_samples(one.as_ref(), sensor.id).await.len(), 2 * 1025);
    assert_eq!(all_samples(two.as_ref(), sensor.id).await.len(), 2 * 1025);
    one.close().await.unwrap();
    two.close().await.unwrap();
}

async fn reopening_keeps_data_and_schema(url: StorageUrl) {
    let s = open_store(&url).await;
    let latest = s.schema_version().await.unwrap();
    assert!(latest >= 1);
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    s.write_batch(&Batch {
        samples: samples(&session, 0..10, T0),
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
