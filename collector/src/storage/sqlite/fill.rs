//! Gaps that data fills or that expire, the committed mark, and sessions a
//! crash left open (issue 15), as SQL on the SQLite connection. The
//! arithmetic is `storage::gap_cuts`, shared with PostgreSQL.

use super::map_err;
use crate::storage::gap_cuts::{self, PROBE_BEFORE};
use crate::storage::*;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use std::path::Path;

type R<T> = Result<T, StorageError>;

const GAP_COLUMNS: &str = "sensor_id, session_id, from_ns, to_ns, samples, cause";

pub(super) fn gap_from_row(r: &Row<'_>) -> rusqlite::Result<Gap> {
    let cause: String = r.get(5)?;
    Ok(Gap {
        sensor: SensorId(r.get(0)?),
        session: r.get::<_, Option<i64>>(1)?.map(SessionId),
        from_ns: r.get(2)?,
        to_ns: r.get(3)?,
        samples: r.get(4)?,
        // The CHECK constraint admits only known causes.
        cause: GapCause::parse(&cause).unwrap_or(GapCause::Loss),
    })
}

/// Stored gaps of `sensor` reaching into `(lo, hi)`: those starting in it
/// and the last few starting before it (see [`PROBE_BEFORE`]); two index
/// seeks, never a scan of the sensor's history.
fn gaps_overlapping(
    conn: &Connection,
    path: &Path,
    sensor: SensorId,
    lo: i64,
    hi: i64,
) -> R<Vec<Gap>> {
    let sql = format!(
        "SELECT {GAP_COLUMNS} FROM gaps
         WHERE sensor_id = ?1 AND from_ns >= ?2 AND from_ns < ?3
         UNION ALL
         SELECT * FROM (SELECT {GAP_COLUMNS} FROM gaps
                        WHERE sensor_id = ?1 AND from_ns < ?2
                        ORDER BY from_ns DESC LIMIT ?4)
         WHERE to_ns > ?2"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_map(params![sensor.0, lo, hi, PROBE_BEFORE], gap_from_row)?
                .collect()
        })
        .map_err(|e| map_err(path, e))
}

/// Stored instants of `sensor` strictly between `from` and `to`, ascending.
fn instants_inside(
    conn: &Connection,
    path: &Path,
    sensor: SensorId,
    from: i64,
    to: i64,
) -> R<Vec<i64>> {
    conn.prepare_cached(
        "SELECT ts_ns FROM samples WHERE sensor_id = ?1 AND ts_ns > ?2 AND ts_ns < ?3
         ORDER BY ts_ns",
    )
    .and_then(|mut st| {
        st.query_map(params![sensor.0, from, to], |r| r.get(0))?
            .collect()
    })
    .map_err(|e| map_err(path, e))
}

/// Replaces `old` by `pieces` (a gap with the key of one left as it was).
fn replace_gap(conn: &Connection, path: &Path, old: &Gap, pieces: &[Gap]) -> R<()> {
    conn.prepare_cached("DELETE FROM gaps WHERE sensor_id = ?1 AND from_ns = ?2 AND to_ns = ?3")
        .and_then(|mut st| st.execute(params![old.sensor.0, old.from_ns, old.to_ns]))
        .map_err(|e| map_err(path, e))?;
    insert_gaps(conn, path, pieces)?;
    Ok(())
}

/// Inserts gaps, skipping keys that exist; the number inserted.
pub(super) fn insert_gaps(conn: &Connection, path: &Path, gaps: &[Gap]) -> R<u64> {
    let mut st = conn
        .prepare_cached(
            "INSERT INTO gaps (sensor_id, from_ns, to_ns, session_id, samples, cause)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )
        .map_err(|e| map_err(path, e))?;
    let mut inserted = 0;
    for g in gaps {
        inserted += st
            .execute(params![
                g.sensor.0,
                g.from_ns,
                g.to_ns,
                g.session.map(|s| s.0),
                g.samples,
                g.cause.as_str()
            ])
            .map_err(|e| map_err(path, e))? as u64;
    }
    Ok(inserted)
}

/// Cuts each of `gaps` by the instants stored inside it; the gaps cut.
fn cut_stored(conn: &Connection, path: &Path, gaps: Vec<Gap>) -> R<u64> {
    let mut cut = 0;
    for g in gap_cuts::dedup(gaps) {
        let stored = instants_inside(conn, path, g.sensor, g.from_ns, g.to_ns)?;
        if let Some(pieces) = gap_cuts::cut_by_stored(&g, &stored) {
            replace_gap(conn, path, &g, &pieces)?;
            cut += 1;
        }
    }
    Ok(cut)
}

/// No stored gap covers a stored instant: the gaps just written and those
/// the late readings of the batch reach into are cut by what is stored.
/// Runs in the batch's transaction. Returns the gaps changed.
pub(super) fn fill_gaps(
    conn: &Connection,
    path: &Path,
    batch_gaps: &[Gap],
    late_spans: &[(SensorId, i64, i64)],
) -> R<u64> {
    let mut candidates = batch_gaps.to_vec();
    for &(sensor, lo, hi) in late_spans {
        // Inclusive span: a reading at `hi` lies inside a gap starting there
        // only if that gap started before it.
        candidates.extend(gaps_overlapping(
            conn,
            path,
            sensor,
            lo,
            hi.saturating_add(1),
        )?);
    }
    cut_stored(conn, path, candidates)
}

/// The rate of the sensor's stream at `at`: its latest session started by
/// then.
fn rate_at(conn: &Connection, path: &Path, sensor: SensorId, at: i64) -> R<Option<f64>> {
    conn.prepare_cached(
        "SELECT rate_hz FROM sessions WHERE sensor_id = ?1 AND started_ns <= ?2
         ORDER BY started_ns DESC LIMIT 1",
    )
    .and_then(|mut st| {
        let mut rows = st.query(params![sensor.0, at])?;
        rows.next()?.map(|r| r.get(0)).transpose()
    })
    .map_err(|e| map_err(path, e))
}

/// Whether a sample of `sensor` is stored strictly between `from` and `to`.
fn any_stored_inside(
    conn: &Connection,
    path: &Path,
    sensor: SensorId,
    from: i64,
    to: i64,
) -> R<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM samples WHERE sensor_id = ?1 AND ts_ns > ?2 AND ts_ns < ?3 LIMIT 1",
    )
    .and_then(|mut st| st.exists(params![sensor.0, from, to]))
    .map_err(|e| map_err(path, e))
}

/// A range the agent declared (docs/protocol.md 11.4): `Expired` (its spool
/// lost it) or `Source` (it sampled nothing there). The fillable gaps in
/// it become one gap of that cause; a `Source` range with samples stored
/// inside is refused, as the agent's claim is false.
pub(super) fn record_declared(
    conn: &mut Connection,
    path: &Path,
    sensor: SensorId,
    (after, before): (i64, i64),
    cause: GapCause,
) -> R<Option<Gap>> {
    if before <= after {
        return Ok(None);
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| map_err(path, e))?;
    if cause == GapCause::Source && any_stored_inside(&tx, path, sensor, after, before)? {
        return Err(unsampled_but_stored(path, sensor, after, before));
    }
    let mut overlapped: Option<i64> = None;
    for g in gaps_overlapping(&tx, path, sensor, after, before)? {
        if let Some((outside, inside)) = gap_cuts::split_for_expiry(&g, after, before) {
            replace_gap(&tx, path, &g, &outside)?;
            *overlapped.get_or_insert(0) += inside;
        }
    }
    let rate = match overlapped {
        Some(_) => None,
        None => rate_at(&tx, path, sensor, before)?,
    };
    let declared = gap_cuts::declared_gap(sensor, (after, before), cause, overlapped, rate);
    if let Some(gap) = declared {
        insert_gaps(&tx, path, &[gap])?;
        // Data stored inside the range (from another path) is not gone.
        cut_stored(&tx, path, vec![gap])?;
    }
    tx.commit().map_err(|e| map_err(path, e))?;
    Ok(declared)
}

fn unsampled_but_stored(path: &Path, sensor: SensorId, after: i64, before: i64) -> StorageError {
    StorageError::Invalid {
        target: path.display().to_string(),
        detail: gap_cuts::unsampled_but_stored(sensor, after, before),
    }
}

const FILLABLE_OLDEST: &str = "SELECT from_ns FROM gaps INDEXED BY gaps_fillable
     WHERE sensor_id = ?1 AND cause IN ('loss', 'session_break', 'overload')
     ORDER BY from_ns LIMIT 1";

pub(super) fn committed_through(
    conn: &Connection,
    path: &Path,
    sensor: SensorId,
) -> R<Option<i64>> {
    // The WHERE repeats the partial index's own, and INDEXED BY makes
    // SQLite refuse the query rather than scan the sensor's gaps.
    let oldest_fillable: Option<i64> = conn
        .prepare_cached(FILLABLE_OLDEST)
        .and_then(|mut st| st.query_row([sensor.0], |r| r.get(0)).optional())
        .map_err(|e| map_err(path, e))?;
    let newest: Option<i64> = conn
        .prepare_cached("SELECT max(ts_ns) FROM samples WHERE sensor_id = ?1")
        .and_then(|mut st| st.query_row([sensor.0], |r| r.get(0)))
        .map_err(|e| map_err(path, e))?;
    Ok(gap_cuts::committed_mark(oldest_fillable, newest))
}

pub(super) fn close_open_sessions(conn: &mut Connection, path: &Path, quiet_since: i64) -> R<u64> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| map_err(path, e))?;
    // A session's last instant is one seek of samples_by_session.
    let closed = tx
        .execute(
            "UPDATE sessions
             SET ended_ns = max(started_ns, coalesce(
                 (SELECT max(ts_ns) FROM samples WHERE session_id = sessions.id), started_ns))
             WHERE ended_ns IS NULL
               AND max(started_ns, coalesce(
                 (SELECT max(ts_ns) FROM samples WHERE session_id = sessions.id), started_ns))
                   < ?1",
            [quiet_since],
        )
        .map_err(|e| map_err(path, e))?;
    tx.commit().map_err(|e| map_err(path, e))?;
    Ok(closed as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows: Vec<String> = st
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.join("; ")
    }

    #[test]
    fn the_committed_mark_and_the_gap_probe_use_indexes() {
        let path = Path::new(":memory:");
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, path).unwrap();
        let fillable = plan(&conn, &FILLABLE_OLDEST.replace("?1", "1"));
        assert!(
            fillable.contains("gaps_fillable") && !fillable.contains("TEMP B-TREE"),
            "{fillable}"
        );
        let newest = plan(&conn, "SELECT max(ts_ns) FROM samples WHERE sensor_id = 1");
        assert!(newest.contains("PRIMARY KEY"), "{newest}");
        let last = plan(&conn, "SELECT max(ts_ns) FROM samples WHERE session_id = 1");
        assert!(last.contains("samples_by_session"), "{last}");
        let probe = plan(
            &conn,
            "SELECT from_ns FROM gaps WHERE sensor_id = 1 AND from_ns < 5 ORDER BY from_ns DESC LIMIT 4",
        );
        assert!(
            probe.contains("PRIMARY KEY") && !probe.contains("TEMP B-TREE"),
            "{probe}"
        );
    }
}
