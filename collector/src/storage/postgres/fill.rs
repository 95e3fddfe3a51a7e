//! Gaps that data fills or that expire, the committed mark, and sessions a
//! crash left open (issue 15), as SQL on PostgreSQL. Set-based: a batch
//! costs a fixed number of round trips whatever the number of sensors. The
//! arithmetic is `storage::gap_cuts`, shared with SQLite.

use super::{PgStore, invalid};
use crate::storage::gap_cuts::{self, PROBE_BEFORE};
use crate::storage::*;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

type R<T> = Result<T, StorageError>;

pub(super) fn gap_from_row(target: &str, r: &Row) -> R<Gap> {
    let cause: String = r.get(5);
    Ok(Gap {
        sensor: SensorId(r.get(0)),
        session: r.get::<_, Option<i64>>(1).map(SessionId),
        from_ns: r.get(2),
        to_ns: r.get(3),
        samples: r.get(4),
        cause: GapCause::parse(&cause)
            .ok_or_else(|| invalid(target, format!("unknown gap cause {cause:?}")))?,
    })
}

impl PgStore {
    /// Stored gaps reaching into each `(sensor, lo, hi)`: those starting in
    /// it and the last few starting before it (see [`PROBE_BEFORE`]); index
    /// seeks, never a scan of a sensor's history.
    async fn gaps_overlapping(
        &self,
        tx: &Transaction<'_>,
        spans: &[(SensorId, i64, i64)],
    ) -> R<Vec<Gap>> {
        if spans.is_empty() {
            return Ok(Vec::new());
        }
        let sensors: Vec<i64> = spans.iter().map(|s| s.0.0).collect();
        let lo: Vec<i64> = spans.iter().map(|s| s.1).collect();
        let hi: Vec<i64> = spans.iter().map(|s| s.2).collect();
        let rows = tx
            .query(
                "SELECT g.sensor_id, g.session_id, g.from_ns, g.to_ns, g.samples, g.cause
                 FROM UNNEST($1::int8[], $2::int8[], $3::int8[]) AS r (sensor, lo, hi)
                 CROSS JOIN LATERAL (
                     (SELECT * FROM gaps
                      WHERE sensor_id = r.sensor AND from_ns >= r.lo AND from_ns < r.hi)
                     UNION ALL
                     (SELECT * FROM gaps
                      WHERE sensor_id = r.sensor AND from_ns < r.lo
                      ORDER BY from_ns DESC LIMIT $4)
                 ) AS g
                 WHERE g.to_ns > r.lo",
                &[&sensors, &lo, &hi, &PROBE_BEFORE],
            )
            .await
            .map_err(self.err())?;
        rows.iter().map(|r| gap_from_row(&self.target, r)).collect()
    }

    /// Cuts each of `gaps` by the instants stored inside it; the gaps cut.
    async fn cut_stored(&self, tx: &Transaction<'_>, gaps: Vec<Gap>) -> R<u64> {
        let gaps = gap_cuts::dedup(gaps);
        if gaps.is_empty() {
            return Ok(0);
        }
        let sensors: Vec<i64> = gaps.iter().map(|g| g.sensor.0).collect();
        let from: Vec<i64> = gaps.iter().map(|g| g.from_ns).collect();
        let to: Vec<i64> = gaps.iter().map(|g| g.to_ns).collect();
        let rows = tx
            .query(
                "SELECT u.i, s.ts_ns
                 FROM UNNEST($1::int8[], $2::int8[], $3::int8[]) WITH ORDINALITY
                      AS u (sensor, f, t, i)
                 JOIN samples s ON s.sensor_id = u.sensor AND s.ts_ns > u.f AND s.ts_ns < u.t
                 ORDER BY u.i, s.ts_ns",
                &[&sensors, &from, &to],
            )
            .await
            .map_err(self.err())?;
        let mut inside: Vec<Vec<i64>> = vec![Vec::new(); gaps.len()];
        for r in &rows {
            let i: i64 = r.get(0);
            if let Some(list) = usize::try_from(i - 1).ok().and_then(|i| inside.get_mut(i)) {
                list.push(r.get(1));
            }
        }
        let mut old = Vec::new();
        let mut pieces = Vec::new();
        for (g, stored) in gaps.iter().zip(&inside) {
            if let Some(p) = gap_cuts::cut_by_stored(g, stored) {
                old.push(*g);
                pieces.extend(p);
            }
        }
        self.replace_gaps(tx, &old, &pieces).await?;
        Ok(old.len() as u64)
    }

    /// Deletes `old` and inserts `new` (a key of `old` may come back).
    async fn replace_gaps(&self, tx: &Transaction<'_>, old: &[Gap], new: &[Gap]) -> R<()> {
        if !old.is_empty() {
            let sensors: Vec<i64> = old.iter().map(|g| g.sensor.0).collect();
            let from: Vec<i64> = old.iter().map(|g| g.from_ns).collect();
            let to: Vec<i64> = old.iter().map(|g| g.to_ns).collect();
            tx.execute(
                "DELETE FROM gaps g USING UNNEST($1::int8[], $2::int8[], $3::int8[]) AS d (s, f, t)
                 WHERE g.sensor_id = d.s AND g.from_ns = d.f AND g.to_ns = d.t",
                &[&sensors, &from, &to],
            )
            .await
            .map_err(self.err())?;
        }
        self.insert_gaps(tx, new).await?;
        Ok(())
    }

    /// Inserts gaps, skipping keys that exist; the number inserted.
    pub(super) async fn insert_gaps(&self, tx: &Transaction<'_>, gaps: &[Gap]) -> R<u64> {
        if gaps.is_empty() {
            return Ok(0);
        }
        let sen: Vec<i64> = gaps.iter().map(|g| g.sensor.0).collect();
        let from: Vec<i64> = gaps.iter().map(|g| g.from_ns).collect();
        let to: Vec<i64> = gaps.iter().map(|g| g.to_ns).collect();
        let sess: Vec<Option<i64>> = gaps.iter().map(|g| g.session.map(|s| s.0)).collect();
        let n: Vec<i64> = gaps.iter().map(|g| g.samples).collect();
        let cause: Vec<&str> = gaps.iter().map(|g| g.cause.as_str()).collect();
        tx.execute(
            "INSERT INTO gaps (sensor_id, from_ns, to_ns, session_id, samples, cause)
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[],
                                  $5::int8[], $6::text[])
             ON CONFLICT DO NOTHING",
            &[&sen, &from, &to, &sess, &n, &cause],
        )
        .await
        .map_err(self.err())
    }

    /// No stored gap covers a stored instant: the gaps just written and
    /// those the late readings of the batch reach into are cut by what is
    /// stored. Runs in the batch's transaction; the gaps changed.
    pub(super) async fn fill_gaps(&self, tx: &Transaction<'_>, b: &Batch) -> R<u64> {
        let spans: Vec<(SensorId, i64, i64)> = gap_cuts::late_spans(&b.readings)
            .into_iter()
            // Inclusive span: a reading at `hi` lies inside a gap starting
            // there only if that gap started before it.
            .map(|(s, lo, hi)| (s, lo, hi.saturating_add(1)))
            .collect();
        let mut candidates = b.gaps.clone();
        candidates.extend(self.gaps_overlapping(tx, &spans).await?);
        self.cut_stored(tx, candidates).await
    }

    /// A range the agent declared: see the SQLite `fill::record_declared`.
    pub(super) async fn declare(
        &self,
        sensor: SensorId,
        (after, before): (i64, i64),
        cause: GapCause,
    ) -> R<Option<Gap>> {
        if before <= after {
            return Ok(None);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.err())?;
        // Serialises with writers of this sensor's gaps in other collectors.
        tx.execute(
            "SELECT 1 FROM sensors WHERE id = $1 FOR UPDATE",
            &[&sensor.0],
        )
        .await
        .map_err(self.err())?;
        if cause == GapCause::Source {
            let stored = tx
                .query_opt(
                    "SELECT 1 FROM samples WHERE sensor_id = $1 AND ts_ns > $2 AND ts_ns < $3
                     LIMIT 1",
                    &[&sensor.0, &after, &before],
                )
                .await
                .map_err(self.err())?;
            if stored.is_some() {
                return Err(invalid(
                    &self.target,
                    gap_cuts::unsampled_but_stored(sensor, after, before),
                ));
            }
        }
        let mut overlapped: Option<i64> = None;
        let mut old = Vec::new();
        let mut outside = Vec::new();
        for g in self
            .gaps_overlapping(&tx, &[(sensor, after, before)])
            .await?
        {
            if let Some((keep, inside)) = gap_cuts::split_for_expiry(&g, after, before) {
                old.push(g);
                outside.extend(keep);
                *overlapped.get_or_insert(0) += inside;
            }
        }
        self.replace_gaps(&tx, &old, &outside).await?;
        let rate = match overlapped {
            Some(_) => None,
            None => tx
                .query_opt(
                    "SELECT rate_hz FROM sessions WHERE sensor_id = $1 AND started_ns <= $2
                     ORDER BY started_ns DESC LIMIT 1",
                    &[&sensor.0, &before],
                )
                .await
                .map_err(self.err())?
                .map(|r| r.get(0)),
        };
        let declared = gap_cuts::declared_gap(sensor, (after, before), cause, overlapped, rate);
        if let Some(gap) = declared {
            self.insert_gaps(&tx, &[gap]).await?;
            // Data stored inside the range (from another path) is not gone.
            self.cut_stored(&tx, vec![gap]).await?;
        }
        tx.commit().await.map_err(self.err())?;
        Ok(declared)
    }

    pub(super) async fn committed(&self, sensor: SensorId) -> R<Option<i64>> {
        let client = self.client().await?;
        // The WHERE repeats the partial index's own, so the planner uses it.
        let row = client
            .query_one(
                "SELECT (SELECT min(from_ns) FROM gaps WHERE sensor_id = $1
                           AND cause IN ('loss', 'session_break', 'overload')),
                        (SELECT max(ts_ns) FROM samples WHERE sensor_id = $1)",
                &[&sensor.0],
            )
            .await
            .map_err(self.err())?;
        let oldest_fillable: Option<i64> = row.get(0);
        let newest: Option<i64> = row.get(1);
        Ok(gap_cuts::committed_mark(oldest_fillable, newest))
    }

    /// [`Self::committed`] of many sensors in one round trip, in their order.
    pub(super) async fn committed_many(&self, sensors: &[SensorId]) -> R<Vec<Option<i64>>> {
        if sensors.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = sensors.iter().map(|s| s.0).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT u.i,
                        (SELECT min(from_ns) FROM gaps WHERE sensor_id = u.s
                           AND cause IN ('loss', 'session_break', 'overload')),
                        (SELECT max(ts_ns) FROM samples WHERE sensor_id = u.s)
                 FROM UNNEST($1::int8[]) WITH ORDINALITY AS u (s, i)",
                &[&ids],
            )
            .await
            .map_err(self.err())?;
        let mut marks = vec![None; sensors.len()];
        for r in &rows {
            let i: i64 = r.get(0);
            let oldest_fillable: Option<i64> = r.get(1);
            let newest: Option<i64> = r.get(2);
            if let Some(m) = usize::try_from(i - 1).ok().and_then(|i| marks.get_mut(i)) {
                *m = gap_cuts::committed_mark(oldest_fillable, newest);
            }
        }
        Ok(marks)
    }

    pub(super) async fn close_open(&self, quiet_since: i64) -> R<u64> {
        let client = self.client().await?;
        // A session's last instant is one seek of samples_by_session.
        client
            .execute(
                "UPDATE sessions AS s SET ended_ns = l.last
                 FROM (SELECT id, GREATEST(started_ns, coalesce(
                           (SELECT max(ts_ns) FROM samples WHERE session_id = sessions.id),
                           started_ns)) AS last
                       FROM sessions WHERE ended_ns IS NULL) AS l
                 WHERE s.id = l.id AND s.ended_ns IS NULL AND l.last < $1",
                &[&quiet_since],
            )
            .await
            .map_err(self.err())
    }
}
