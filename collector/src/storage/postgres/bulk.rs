//! Bulk rows: batched writes (one `INSERT ... SELECT * FROM UNNEST(...)
//! ON CONFLICT DO NOTHING` per table) and the range queries.

use super::{PgStore, invalid, to_u16, to_u32};
use crate::storage::*;

impl PgStore {
    pub(super) async fn write_rows(&self, b: &Batch) -> Result<WriteReport, StorageError> {
        let mut report = WriteReport::default();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.err())?;
        if !b.samples.is_empty() {
            let n = b.samples.len();
            let (mut sess, mut ch, mut seq, mut idx, mut sen, mut ts, mut raw) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for s in &b.samples {
                sess.push(s.session.0);
                ch.push(i32::from(s.channel));
                seq.push(s.seq);
                idx.push(i64::from(s.index));
                sen.push(s.sensor.0);
                ts.push(s.ts_ns);
                raw.push(s.raw);
            }
            let st = tx
                .prepare_cached(
                    "INSERT INTO samples (session_id, channel, seq, idx, sensor_id, ts_ns, raw)
                     SELECT * FROM UNNEST($1::int8[], $2::int4[], $3::int8[], $4::int8[],
                                          $5::int8[], $6::int8[], $7::int8[])
                     ON CONFLICT DO NOTHING",
                )
                .await
                .map_err(self.err())?;
            let inserted = tx
                .execute(&st, &[&sess, &ch, &seq, &idx, &sen, &ts, &raw])
                .await
                .map_err(self.err())?;
            report.samples_inserted = inserted;
            report.samples_duplicate = n as u64 - inserted;
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
        if !b.gaps.is_empty() {
            let sen: Vec<i64> = b.gaps.iter().map(|g| g.sensor.0).collect();
            let from: Vec<i64> = b.gaps.iter().map(|g| g.from_ns).collect();
            let to: Vec<i64> = b.gaps.iter().map(|g| g.to_ns).collect();
            let sess: Vec<Option<i64>> = b.gaps.iter().map(|g| g.session.map(|s| s.0)).collect();
            let n: Vec<i64> = b.gaps.iter().map(|g| g.samples).collect();
            let cause: Vec<&str> = b.gaps.iter().map(|g| g.cause.as_str()).collect();
            report.gaps_inserted = tx
                .execute(
                    "INSERT INTO gaps (sensor_id, from_ns, to_ns, session_id, samples, cause)
                     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[],
                                          $5::int8[], $6::text[])
                     ON CONFLICT DO NOTHING",
                    &[&sen, &from, &to, &sess, &n, &cause],
                )
                .await
                .map_err(self.err())?;
        }
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
        tx.commit().await.map_err(self.err())?;
        Ok(report)
    }

    pub(super) async fn query_samples(
        &self,
        q: &SampleQuery,
    ) -> Result<Vec<StoredSample>, StorageError> {
        let (cmp, dir) = match q.order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let after = if q.after.is_some() {
            format!(
                "AND (s.ts_ns, s.session_id, s.channel, s.seq, s.idx) {cmp} ($5, $6, $7, $8, $9)"
            )
        } else {
            String::new()
        };
        // LEFT JOIN: a sample whose channel is not described is still returned.
        let sql = format!(
            "SELECT s.session_id, s.channel, c.name, c.unit, c.scale, s.seq, s.idx, s.ts_ns, s.raw
             FROM samples s
             LEFT JOIN session_channels c
               ON c.session_id = s.session_id AND c.channel = s.channel
             WHERE s.sensor_id = $1 AND s.ts_ns >= $2 AND s.ts_ns < $3 {after}
             ORDER BY s.ts_ns {dir}, s.session_id {dir}, s.channel {dir}, s.seq {dir}, s.idx {dir}
             LIMIT $4"
        );
        let client = self.client().await?;
        let st = client.prepare_cached(&sql).await.map_err(self.err())?;
        let limit = i64::from(q.limit);
        let rows = match q.after {
            Some(k) => {
                let ch = i32::from(k.channel);
                let idx = i64::from(k.index);
                client
                    .query(
                        &st,
                        &[
                            &q.sensor.0,
                            &q.from_ns,
                            &q.to_ns,
                            &limit,
                            &k.ts_ns,
                            &k.session.0,
                            &ch,
                            &k.seq,
                            &idx,
                        ],
                    )
                    .await
            }
            None => {
                client
                    .query(&st, &[&q.sensor.0, &q.from_ns, &q.to_ns, &limit])
                    .await
            }
        }
        .map_err(self.err())?;
        rows.iter()
            .map(|r| {
                let channel = to_u16(&self.target, r.get(1))?;
                let scale: Option<f64> = r.get(4);
                let raw: i64 = r.get(8);
                Ok(StoredSample {
                    session: SessionId(r.get(0)),
                    sensor: q.sensor,
                    channel,
                    name: r
                        .get::<_, Option<String>>(2)
                        .unwrap_or_else(|| format!("channel {channel}")),
                    unit: r.get::<_, Option<String>>(3).unwrap_or_default(),
                    seq: r.get(5),
                    index: to_u32(&self.target, r.get(6))?,
                    ts_ns: r.get(7),
                    raw,
                    value: scaled(raw, scale.unwrap_or(1.0)),
                })
            })
            .collect()
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
            .map(|r| {
                let cause: String = r.get(5);
                Ok(Gap {
                    sensor: SensorId(r.get(0)),
                    session: r.get::<_, Option<i64>>(1).map(SessionId),
                    from_ns: r.get(2),
                    to_ns: r.get(3),
                    samples: r.get(4),
                    cause: GapCause::parse(&cause).ok_or_else(|| {
                        invalid(&self.target, format!("unknown gap cause {cause:?}"))
                    })?,
                })
            })
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
