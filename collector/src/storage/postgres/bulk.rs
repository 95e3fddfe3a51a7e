//! Bulk rows: batched writes (one `INSERT ... SELECT * FROM UNNEST(...)
//! ON CONFLICT DO NOTHING` per table) and the range queries.

use super::{PgStore, invalid, to_u16, to_u32};
use crate::storage::readings::{self, ReadingRow};
use crate::storage::*;
use deadpool_postgres::Transaction;
use std::collections::HashMap;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

/// Readings by binary COPY; fails on the first one already stored.
async fn copy_readings(
    tx: &Transaction<'_>,
    readings: &[&Reading],
) -> Result<(), tokio_postgres::Error> {
    let sink = tx
        .copy_in(
            "COPY samples (session_id, seq, idx, sensor_id, ts_ns, source, raws)
             FROM STDIN BINARY",
        )
        .await?;
    let types = [
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT2,
        Type::INT8_ARRAY,
    ];
    let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
    for r in readings {
        let index = i64::from(r.index);
        let source = r.source.code();
        writer
            .as_mut()
            .write(&[
                &r.session.0,
                &r.seq,
                &index,
                &r.sensor.0,
                &r.ts_ns,
                &source,
                &r.raws,
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Readings by INSERT, skipping those already stored; the samples inserted.
async fn insert_readings(
    tx: &Transaction<'_>,
    readings: &[&Reading],
) -> Result<u64, tokio_postgres::Error> {
    let n = readings.len();
    let (mut sess, mut seq, mut idx, mut sen, mut ts, mut src, mut raws) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for r in readings {
        sess.push(r.session.0);
        seq.push(r.seq);
        idx.push(i64::from(r.index));
        sen.push(r.sensor.0);
        ts.push(r.ts_ns);
        src.push(r.source.code());
        // Array literals: UNNEST would flatten an array of arrays.
        raws.push(readings::to_pg_array(&r.raws));
    }
    let st = tx
        .prepare_cached(
            "WITH inserted AS (
                 INSERT INTO samples (session_id, seq, idx, sensor_id, ts_ns, source, raws)
                 SELECT u.s, u.q, u.i, u.n, u.t, u.o, u.r::int8[]
                 FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[],
                             $5::int8[], $6::int2[], $7::text[]) AS u (s, q, i, n, t, o, r)
                 ON CONFLICT DO NOTHING
                 RETURNING num_nonnulls(VARIADIC raws) AS values)
             SELECT coalesce(sum(values), 0)::int8 FROM inserted",
        )
        .await?;
    let inserted: i64 = tx
        .query_one(&st, &[&sess, &seq, &idx, &sen, &ts, &src, &raws])
        .await?
        .get(0);
    Ok(u64::try_from(inserted).unwrap_or_default())
}

impl PgStore {
    pub(super) async fn write_rows(&self, b: &Batch) -> Result<WriteReport, StorageError> {
        let mut report = WriteReport::default();
        let mut client = self.client().await?;
        let mut tx = client.transaction().await.map_err(self.err())?;
        // Late readings (resent, backfilled) often overlap what is stored:
        // they take the INSERT that skips what exists, so that a backfill
        // never sends the live rows of the same batch off the COPY path.
        let (live, late): (Vec<&Reading>, Vec<&Reading>) = b
            .readings
            .iter()
            .partition(|r| r.source == ReadingSource::Live);
        if !live.is_empty() {
            let samples: u64 = live.iter().map(|r| r.sample_count()).sum();
            // The fast path: COPY (several times cheaper for the server than
            // INSERT with ON CONFLICT). A reading stored before (a batch
            // retried after a commit whose outcome was unknown) fails it
            // with a unique violation: then, from the savepoint, the
            // idempotent INSERT that skips what exists.
            let sp = tx.savepoint("readings").await.map_err(self.err())?;
            match copy_readings(&sp, &live).await {
                Ok(()) => {
                    sp.commit().await.map_err(self.err())?;
                    report.samples_inserted = samples;
                }
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    sp.rollback().await.map_err(self.err())?;
                    let inserted = insert_readings(&tx, &live).await.map_err(self.err())?;
                    report.samples_inserted = inserted;
                    report.samples_duplicate = samples.saturating_sub(inserted);
                }
                Err(e) => return Err(self.err()(e)),
            }
        }
        if !late.is_empty() {
            let samples: u64 = late.iter().map(|r| r.sample_count()).sum();
            let inserted = insert_readings(&tx, &late).await.map_err(self.err())?;
            report.samples_inserted += inserted;
            report.late_samples_inserted = inserted;
            report.samples_duplicate += samples.saturating_sub(inserted);
        }
        if !b.events.is_empty() {
            let n = b.events.len();
            let sess: Vec<i64> = b.events.iter().map(|e| e.session.0).collect();
            let ch: Vec<i32> = b.events.iter().map(|e| i32::from(e.channel)).collect();
            let seq: Vec<i64> = b.events.iter().map(|e| e.seq).collect();
            let idx: Vec<i64> = b.events.iter().map(|e| i64::from(e.index)).collect();
            let sen: Vec<i64> = b.events.iter().map(|e| e.sensor.0).collect();
            let ts: Vec<i64> = b.events.iter().map(|e| e.ts_ns).collect();
            let val: Vec<i64> = b.events.iter().map(|e| e.value).collect();
            let inserted = tx
                .execute(
                    "INSERT INTO events (session_id, channel, seq, idx, sensor_id, ts_ns, value)
                     SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::int8[], $4::int8[],
                                          $5::int8[], $6::int8[], $7::int8[])
                     ON CONFLICT DO NOTHING",
                    &[&sess, &ch, &seq, &idx, &sen, &ts, &val],
                )
                .await
                .map_err(self.err())?;
            report.events_inserted = inserted;
            report.events_duplicate = n as u64 - inserted;
        }
        report.gaps_inserted = self.insert_gaps(&tx, &b.gaps).await?;
        if !b.seen.is_empty() {
            let latest = b.latest_seen();
            let ids: Vec<i64> = latest.iter().map(|s| s.0.0).collect();
            let at: Vec<i64> = latest.iter().map(|s| s.1).collect();
            tx.execute(
                "UPDATE sensors AS s
                 SET last_seen_ns = GREATEST(coalesce(s.last_seen_ns, v.t), v.t)
                 FROM UNNEST($1::int8[], $2::int8[]) AS v(id, t)
                 WHERE s.id = v.id",
                &[&ids, &at],
            )
            .await
            .map_err(self.err())?;
        }
        report.gaps_filled = self.fill_gaps(&tx, b).await?;
        tx.commit().await.map_err(self.err())?;
        Ok(report)
    }

    pub(super) async fn query_samples(
        &self,
        q: &SampleQuery,
    ) -> Result<Vec<StoredSample>, StorageError> {
        let (cmp, dir) = match q.order {
            Order::Asc => (">=", "ASC"),
            Order::Desc => ("<=", "DESC"),
        };
        // The key's own row again: its later channels may not be returned yet.
        // An instant is one row of a sensor, so its time orders the rows.
        let after = if q.after.is_some() {
            format!("AND ts_ns {cmp} $5")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT session_id, seq, idx, ts_ns, raws, source FROM samples
             WHERE sensor_id = $1 AND ts_ns >= $2 AND ts_ns < $3 {after}
             ORDER BY ts_ns {dir}
             LIMIT $4"
        );
        let client = self.client().await?;
        let st = client.prepare_cached(&sql).await.map_err(self.err())?;
        let limit = readings::rows_to_fetch(q);
        let rows = match q.after {
            Some(k) => {
                client
                    .query(&st, &[&q.sensor.0, &q.from_ns, &q.to_ns, &limit, &k.ts_ns])
                    .await
            }
            None => {
                client
                    .query(&st, &[&q.sensor.0, &q.from_ns, &q.to_ns, &limit])
                    .await
            }
        }
        .map_err(self.err())?;
        let mut readings = Vec::with_capacity(rows.len());
        let mut channels = HashMap::new();
        for r in &rows {
            let row = ReadingRow {
                session: SessionId(r.get(0)),
                seq: r.get(1),
                index: to_u32(&self.target, r.get(2))?,
                ts_ns: r.get(3),
                raws: r.get(4),
                source: ReadingSource::from_code(i64::from(r.get::<_, i16>(5)))
                    .ok_or_else(|| invalid(&self.target, "unknown reading source".into()))?,
            };
            if let std::collections::hash_map::Entry::Vacant(e) = channels.entry(row.session) {
                e.insert(self.session_channels(&client, row.session).await?);
            }
            readings.push(row);
        }
        Ok(readings::expand(readings, q, &channels))
    }

    pub(super) async fn query_gaps(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Gap>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT sensor_id, session_id, from_ns, to_ns, samples, cause FROM gaps
                 WHERE sensor_id = $1 AND to_ns > $2 AND from_ns < $3
                 ORDER BY from_ns, to_ns",
                &[&sensor.0, &from_ns, &to_ns],
            )
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(|r| super::fill::gap_from_row(&self.target, r))
            .collect()
    }

    pub(super) async fn query_events(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Event>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT session_id, sensor_id, channel, seq, idx, ts_ns, value FROM events
                 WHERE sensor_id = $1 AND ts_ns >= $2 AND ts_ns < $3
                 ORDER BY ts_ns, session_id, channel, seq, idx",
                &[&sensor.0, &from_ns, &to_ns],
            )
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    session: SessionId(r.get(0)),
                    sensor: SensorId(r.get(1)),
                    channel: to_u16(&self.target, r.get(2))?,
                    seq: r.get(3),
                    index: to_u32(&self.target, r.get(4))?,
                    ts_ns: r.get(5),
                    value: r.get(6),
                })
            })
            .collect()
    }
}
