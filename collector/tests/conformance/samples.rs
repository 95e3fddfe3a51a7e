//! Conformance cases about samples: exactly once, ordering and paging,
//! value ranges, the writer in front, two collectors on one store.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use super::open_store;
use crate::common::*;
use sipsensor_collector::metrics::Metrics;
use sipsensor_collector::stats::StreamsRegistry;
use sipsensor_collector::storage::writer::{StorageWriter, WriterConfig};
use sipsensor_collector::storage::*;

pub(super) async fn samples_are_stored_exactly_once(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let first = samples(&session, 0..100, T0);
    let r = s
        .write_batch(&Batch {
            readings: first.clone(),
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((r.samples_inserted, r.samples_duplicate), (200, 0));
    // The same packets again (a retransmission, or a retried batch).
    let r = s
        .write_batch(&Batch {
            readings: first,
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
            readings: overlap,
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
    // A sample is its sensor and instant (issue 15): the same instants in
    // another session (backfilled after a restart, with other sequence
    // numbers) are the samples stored already; the first copy stays.
    let (_, other) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c2", T0).await;
    let mut resent = samples(&other, 0..120, T0);
    for r in &mut resent {
        r.seq += 7_000;
        r.source = ReadingSource::Backfilled;
    }
    let r = s
        .write_batch(&Batch {
            readings: resent,
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((r.samples_inserted, r.samples_duplicate), (0, 240));
    let stored = all_samples(s.as_ref(), sensor.id).await;
    assert_eq!(stored.len(), 240);
    assert!(
        stored
            .iter()
            .all(|x| x.session == session.id && x.source == ReadingSource::Live)
    );
    // A new instant in the other session is stored, with its session and
    // how it came.
    let mut later = samples(&other, 120..121, T0);
    later[0].source = ReadingSource::Backfilled;
    let r = s
        .write_batch(&Batch {
            readings: later,
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!(r.samples_inserted, 2);
    // Live and backfilled in one batch, each with a stored and a new
    // instant: every new one stored, every stored one skipped.
    let mut mixed = samples(&other, [0, 121], T0);
    let mut backfilled = samples(&other, [1, 122], T0);
    for r in &mut backfilled {
        r.source = ReadingSource::Backfilled;
    }
    mixed.extend(backfilled);
    let r = s
        .write_batch(&Batch {
            readings: mixed,
            ..Batch::default()
        })
        .await
        .unwrap();
    assert_eq!((r.samples_inserted, r.samples_duplicate), (4, 4));
    let stored = all_samples(s.as_ref(), sensor.id).await;
    let last = &stored[stored.len() - 5];
    assert_eq!(
        (last.session, last.seq, last.source),
        (other.id, 120, ReadingSource::Backfilled)
    );
    assert_eq!(stored.len(), 2 * 123);
    s.close().await.unwrap();
}

pub(super) async fn sample_queries_order_limit_and_page(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, a) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let (_, b) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c2", T0).await;
    let (noise, n) = sensor_with_session(s.as_ref(), "sip:n@example.net", "c3", T0).await;
    // Two sessions interleaved, half a period apart (at the same instants
    // they would be the same samples).
    let mut batch = samples(&a, 0..50, T0);
    batch.extend(samples(&b, 0..50, T0 + PERIOD / 2));
    batch.extend(samples(&n, 0..50, T0));
    s.write_batch(&Batch {
        readings: batch,
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
    assert_eq!(r[39].ts_ns, T0 + 19 * PERIOD + PERIOD / 2);
    let keys: Vec<SampleKey> = r.iter().map(|x| x.key()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(
        keys, sorted,
        "ascending in (ts, session, seq, index, channel)"
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
    assert_eq!(r[0].ts_ns, T0 + 49 * PERIOD + PERIOD / 2);
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

pub(super) async fn value_ranges_round_trip(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    let extremes = [
        (0i64, i64::MIN, 0u32, i64::MIN + 1),
        (1 << 40, i64::MAX, u32::MAX, i64::MAX - 1),
        (i64::MAX, -1, 7, -1),
    ];
    // Channel 1 only: channel 0 had no reading.
    let rows: Vec<Reading> = extremes
        .iter()
        .map(|&(seq, raw, index, ts)| Reading {
            session: session.id,
            sensor: sensor.id,
            seq,
            index,
            ts_ns: ts,
            raws: vec![None, Some(raw)],
            source: ReadingSource::Live,
        })
        .collect();
    s.write_batch(&Batch {
        readings: rows,
        ..Batch::default()
    })
    .await
    .unwrap();
    let got = all_samples(s.as_ref(), sensor.id).await;
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|x| x.channel == 1 && x.name == "humidity"));
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

pub(super) async fn undescribed_channels_are_still_returned(url: StorageUrl) {
    let s = open_store(&url).await;
    let (sensor, session) = sensor_with_session(s.as_ref(), "sip:s@example.net", "c1", T0).await;
    s.write_batch(&Batch {
        readings: vec![Reading {
            session: session.id,
            sensor: sensor.id,
            seq: 1,
            index: 0,
            ts_ns: T0,
            raws: (0..10).map(|ch| (ch == 9).then_some(42)).collect(),
            source: ReadingSource::Live,
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

pub(super) async fn writer_pipeline_stores_each_sample_once(url: StorageUrl) {
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
                h.readings(samples(&session, seq..=seq, T0)).await.unwrap();
                if i % 10 == 0 {
                    h.readings(samples(&session, seq..=seq, T0)).await.unwrap();
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

pub(super) async fn two_collectors_share_one_store(url: StorageUrl) {
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
                        readings: samples(&session, lo..lo + 50, T0),
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
