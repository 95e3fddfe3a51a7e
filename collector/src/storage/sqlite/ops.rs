//! The SQL of the SQLite backend, as blocking functions on a connection.
//! `super` runs them on tokio's blocking pool.

use super::{fill, map_err};
use crate::storage::readings::{self, ReadingRow};
use crate::storage::*;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use std::collections::HashMap;
use std::path::Path;

type R<T> = Result<T, StorageError>;

const SENSOR_COLUMNS: &str = "id, aor, display_name, state, last_seen_ns";

fn sensor_from_row(row: &Row<'_>) -> rusqlite::Result<Sensor> {
    let state: String = row.get(3)?;
    Ok(Sensor {
        id: SensorId(row.get(0)?),
        aor: row.get(1)?,
        display_name: row.get(2)?,
        // The CHECK constraint admits only known states.
        state: SensorState::parse(&state).unwrap_or(SensorState::Offline),
        last_seen_ns: row.get(4)?,
    })
}

pub(super) fn upsert_sensor(
    conn: &Connection,
    path: &Path,
    aor: &str,
    display_name: Option<&str>,
) -> R<Sensor> {
    let sql = format!(
        "INSERT INTO sensors (aor, display_name) VALUES (?1, ?2)
         ON CONFLICT (aor) DO UPDATE
           SET display_name = coalesce(excluded.display_name, sensors.display_name)
         RETURNING {SENSOR_COLUMNS}"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.query_row(params![aor, display_name], sensor_from_row))
        .map_err(|e| map_err(path, e))
}

pub(super) fn set_sensor_state(
    conn: &Connection,
    path: &Path,
    id: SensorId,
    state: SensorState,
) -> R<()> {
    let n = conn
        .prepare_cached("UPDATE sensors SET state = ?1 WHERE id = ?2")
        .and_then(|mut st| st.execute(params![state.as_str(), id.0]))
        .map_err(|e| map_err(path, e))?;
    if n == 0 {
        return Err(StorageError::NotFound(format!("sensor {id}")));
    }
    Ok(())
}

pub(super) fn sensors(conn: &Connection, path: &Path) -> R<Vec<Sensor>> {
    let sql = format!("SELECT {SENSOR_COLUMNS} FROM sensors ORDER BY aor");
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.query_map([], sensor_from_row)?.collect())
        .map_err(|e| map_err(path, e))
}

pub(super) fn sensor_where(
    conn: &Connection,
    path: &Path,
    column: &str,
    value: &dyn rusqlite::ToSql,
) -> R<Option<Sensor>> {
    let sql = format!("SELECT {SENSOR_COLUMNS} FROM sensors WHERE {column} = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.query_row([value], sensor_from_row).optional())
        .map_err(|e| map_err(path, e))
}

const SESSION_COLUMNS: &str =
    "id, sensor_id, call_id, ssrc, rate_hz, samples_per_packet, started_ns, ended_ns";

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    let ssrc: i64 = row.get(3)?;
    Ok(Session {
        id: SessionId(row.get(0)?),
        sensor: SensorId(row.get(1)?),
        call_id: row.get(2)?,
        // CHECK (ssrc BETWEEN 0 AND 4294967295) keeps this lossless.
        ssrc: u32::try_from(ssrc).unwrap_or_default(),
        stream: StreamSpec {
            rate_hz: row.get(4)?,
            samples_per_packet: row.get(5)?,
            channels: Vec::new(),
        },
        started_ns: row.get(6)?,
        ended_ns: row.get(7)?,
    })
}

fn load_channels(conn: &Connection, path: &Path, session: &mut Session) -> R<()> {
    session.stream.channels = session_channels(conn, path, session.id)?;
    Ok(())
}

fn session_channels(conn: &Connection, path: &Path, session: SessionId) -> R<Vec<ChannelSpec>> {
    conn.prepare_cached(
        "SELECT name, unit, scale FROM session_channels
             WHERE session_id = ?1 ORDER BY channel",
    )
    .and_then(|mut st| {
        st.query_map([session.0], |r| {
            Ok(ChannelSpec {
                name: r.get(0)?,
                unit: r.get(1)?,
                scale: r.get(2)?,
            })
        })?
        .collect()
    })
    .map_err(|e| map_err(path, e))
}

pub(super) fn open_session(conn: &mut Connection, path: &Path, s: &NewSession) -> R<Session> {
    let target = path.display().to_string();
    validate_stream(&target, &s.stream)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| map_err(path, e))?;
    let known: Option<i64> = tx
        .query_row("SELECT id FROM sensors WHERE id = ?1", [s.sensor.0], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| map_err(path, e))?;
    if known.is_none() {
        return Err(StorageError::NotFound(format!("sensor {}", s.sensor)));
    }
    let inserted = tx
        .prepare_cached(
            "INSERT INTO sessions
               (sensor_id, call_id, ssrc, rate_hz, samples_per_packet, started_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (sensor_id, call_id, ssrc, started_ns) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(params![
                s.sensor.0,
                s.call_id,
                i64::from(s.ssrc),
                s.stream.rate_hz,
                s.stream.samples_per_packet,
                s.started_ns
            ])
        })
        .map_err(|e| map_err(path, e))?;
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE sensor_id = ?1 AND call_id = ?2 AND ssrc = ?3 AND started_ns = ?4"
    );
    let mut session = tx
        .query_row(
            &sql,
            params![s.sensor.0, s.call_id, i64::from(s.ssrc), s.started_ns],
            session_from_row,
        )
        .map_err(|e| map_err(path, e))?;
    if inserted == 1 {
        let mut st = tx
            .prepare_cached(
                "INSERT INTO session_channels (session_id, channel, name, unit, scale)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(|e| map_err(path, e))?;
        for (i, c) in s.stream.channels.iter().enumerate() {
            st.execute(params![session.id.0, i as i64, c.name, c.unit, c.scale])
                .map_err(|e| map_err(path, e))?;
        }
    }
    load_channels(&tx, path, &mut session)?;
    tx.commit().map_err(|e| map_err(path, e))?;
    Ok(session)
}

pub(super) fn close_session(conn: &Connection, path: &Path, id: SessionId, ended: i64) -> R<()> {
    // The first close wins: a repeated close (retry) does not move the end.
    let n = conn
        .prepare_cached("UPDATE sessions SET ended_ns = coalesce(ended_ns, ?1) WHERE id = ?2")
        .and_then(|mut st| st.execute(params![ended, id.0]))
        .map_err(|e| map_err(path, e))?;
    if n == 0 {
        return Err(StorageError::NotFound(format!("session {id}")));
    }
    Ok(())
}

pub(super) fn session(conn: &Connection, path: &Path, id: SessionId) -> R<Option<Session>> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1");
    let found = conn
        .prepare_cached(&sql)
        .and_then(|mut st| st.query_row([id.0], session_from_row).optional())
        .map_err(|e| map_err(path, e))?;
    match found {
        Some(mut s) => {
            load_channels(conn, path, &mut s)?;
            Ok(Some(s))
        }
        None => Ok(None),
    }
}

pub(super) fn sessions(
    conn: &Connection,
    path: &Path,
    sensor: SensorId,
    from: i64,
    to: i64,
) -> R<Vec<Session>> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE sensor_id = ?1 AND started_ns < ?3 AND (ended_ns IS NULL OR ended_ns >= ?2)
         ORDER BY started_ns, id"
    );
    let mut list: Vec<Session> = conn
        .prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_map(params![sensor.0, from, to], session_from_row)?
                .collect()
        })
        .map_err(|e| map_err(path, e))?;
    for s in &mut list {
        load_channels(conn, path, s)?;
    }
    Ok(list)
}

/// A reading ready for the INSERT: values as JSON text, samples counted.
pub(super) struct EncodedReading {
    session: i64,
    seq: i64,
    index: u32,
    sensor: i64,
    ts_ns: i64,
    source: i16,
    raws: String,
    samples: u64,
}

/// Encodes readings in key order, so consecutive inserts land on the same
/// leaf page of the primary key.
pub(super) fn encode_readings(readings: &[Reading]) -> Vec<EncodedReading> {
    let mut rows: Vec<EncodedReading> = readings
        .iter()
        .map(|r| EncodedReading {
            session: r.session.0,
            seq: r.seq,
            index: r.index,
            sensor: r.sensor.0,
            ts_ns: r.ts_ns,
            source: r.source.code(),
            raws: readings::to_json(&r.raws),
            samples: r.sample_count(),
        })
        .collect();
    rows.sort_unstable_by_key(|r| (r.sensor, r.ts_ns));
    rows
}

/// Writes `readings` and the rest of `b` (its own readings are ignored) in
/// one transaction, then shrinks the stored gaps the new rows fill: those
/// of `b` and those overlapping `late_spans` (see `storage::gap_cuts::late_spans`).
pub(super) fn write_batch(
    conn: &mut Connection,
    path: &Path,
    readings: &[EncodedReading],
    b: &Batch,
    late_spans: &[(SensorId, i64, i64)],
) -> R<WriteReport> {
    let mut report = WriteReport::default();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| map_err(path, e))?;
    {
        let mut st = tx
            .prepare_cached(
                "INSERT INTO samples (session_id, seq, idx, sensor_id, ts_ns, source, raws)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )
            .map_err(|e| map_err(path, e))?;
        for r in readings {
            let n = st
                .execute(params![
                    r.session, r.seq, r.index, r.sensor, r.ts_ns, r.source, r.raws
                ])
                .map_err(|e| map_err(path, e))?;
            if n == 1 {
                report.samples_inserted += r.samples;
                if r.source != ReadingSource::Live.code() {
                    report.late_samples_inserted += r.samples;
                }
            } else {
                report.samples_duplicate += r.samples;
            }
        }
        let mut st = tx
            .prepare_cached(
                "INSERT INTO events (session_id, channel, seq, idx, sensor_id, ts_ns, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )
            .map_err(|e| map_err(path, e))?;
        for e in &b.events {
            let n = st
                .execute(params![
                    e.session.0,
                    e.channel,
                    e.seq,
                    e.index,
                    e.sensor.0,
                    e.ts_ns,
                    e.value
                ])
                .map_err(|err| map_err(path, err))?;
            if n == 1 {
                report.events_inserted += 1;
            } else {
                report.events_duplicate += 1;
            }
        }
        report.gaps_inserted = fill::insert_gaps(&tx, path, &b.gaps)?;
        let mut st = tx
            .prepare_cached(
                "UPDATE sensors SET last_seen_ns = max(coalesce(last_seen_ns, ?1), ?1)
                 WHERE id = ?2",
            )
            .map_err(|e| map_err(path, e))?;
        for (sensor, at) in b.latest_seen() {
            st.execute(params![at, sensor.0])
                .map_err(|e| map_err(path, e))?;
        }
    }
    report.gaps_filled = fill::fill_gaps(&tx, path, &b.gaps, late_spans)?;
    tx.commit().map_err(|e| map_err(path, e))?;
    Ok(report)
}

pub(super) fn samples(conn: &Connection, path: &Path, q: &SampleQuery) -> R<Vec<StoredSample>> {
    let (cmp, dir) = match q.order {
        Order::Asc => (">=", "ASC"),
        Order::Desc => ("<=", "DESC"),
    };
    // The key's own row again: its later channels may not be returned yet.
    // An instant is one row of a sensor, so its time orders the rows.
    let after = if q.after.is_some() {
        format!("AND ts_ns {cmp} ?5")
    } else {
        String::new()
    };
    let sql = format!(
        "SELECT session_id, seq, idx, ts_ns, raws, source FROM samples
         WHERE sensor_id = ?1 AND ts_ns >= ?2 AND ts_ns < ?3 {after}
         ORDER BY ts_ns {dir}
         LIMIT ?4"
    );
    let mut st = conn.prepare_cached(&sql).map_err(|e| map_err(path, e))?;
    let map = |r: &Row<'_>| -> rusqlite::Result<(ReadingRow, String)> {
        Ok((
            ReadingRow {
                session: SessionId(r.get(0)?),
                seq: r.get(1)?,
                index: r.get(2)?,
                ts_ns: r.get(3)?,
                raws: Vec::new(),
                // The CHECK constraint admits only known codes.
                source: ReadingSource::from_code(r.get(5)?).unwrap_or_default(),
            },
            r.get(4)?,
        ))
    };
    let limit = readings::rows_to_fetch(q);
    let fetched: rusqlite::Result<Vec<(ReadingRow, String)>> = match q.after {
        Some(k) => st
            .query_map(params![q.sensor.0, q.from_ns, q.to_ns, limit, k.ts_ns], map)
            .and_then(|it| it.collect()),
        None => st
            .query_map(params![q.sensor.0, q.from_ns, q.to_ns, limit], map)
            .and_then(|it| it.collect()),
    };
    let mut rows = Vec::new();
    for (mut row, text) in fetched.map_err(|e| map_err(path, e))? {
        row.raws = readings::from_json(&text).map_err(|detail| StorageError::Invalid {
            target: path.display().to_string(),
            detail: format!("session {} packet {}: {detail}", row.session, row.seq),
        })?;
        rows.push(row);
    }
    let mut channels = HashMap::new();
    for row in &rows {
        if let std::collections::hash_map::Entry::Vacant(e) = channels.entry(row.session) {
            e.insert(session_channels(conn, path, row.session)?);
        }
    }
    Ok(readings::expand(rows, q, &channels))
}

pub(super) fn gaps(
    conn: &Connection,
    path: &Path,
    sensor: SensorId,
    from: i64,
    to: i64,
) -> R<Vec<Gap>> {
    conn.prepare_cached(
        "SELECT sensor_id, session_id, from_ns, to_ns, samples, cause FROM gaps
         WHERE sensor_id = ?1 AND to_ns > ?2 AND from_ns < ?3 ORDER BY from_ns, to_ns",
    )
    .and_then(|mut st| {
        st.query_map(params![sensor.0, from, to], fill::gap_from_row)?
            .collect()
    })
    .map_err(|e| map_err(path, e))
}

pub(super) fn events(
    conn: &Connection,
    path: &Path,
    sensor: SensorId,
    from: i64,
    to: i64,
) -> R<Vec<Event>> {
    conn.prepare_cached(
        "SELECT session_id, sensor_id, channel, seq, idx, ts_ns, value FROM events
         WHERE sensor_id = ?1 AND ts_ns >= ?2 AND ts_ns < ?3
         ORDER BY ts_ns, session_id, channel, seq, idx",
    )
    .and_then(|mut st| {
        st.query_map(params![sensor.0, from, to], |r| {
            Ok(Event {
                session: SessionId(r.get(0)?),
                sensor: SensorId(r.get(1)?),
                channel: r.get(2)?,
                seq: r.get(3)?,
                index: r.get(4)?,
                ts_ns: r.get(5)?,
                value: r.get(6)?,
            })
        })?
        .collect()
    })
    .map_err(|e| map_err(path, e))
}

/// Deletes one sensor's old rows in its own transaction, so the writer is
/// never locked out for a whole retention run.
pub(super) fn delete_sensor_before(
    conn: &mut Connection,
    path: &Path,
    sensor: SensorId,
    cutoff: i64,
) -> R<RetentionReport> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| map_err(path, e))?;
    // Samples are channel values: a reading's array less its nulls.
    let samples: i64 = tx
        .query_row(
            "SELECT coalesce(sum(json_array_length(raws)
                                 - (length(raws) - length(replace(raws, 'null', ''))) / 4), 0)
             FROM samples WHERE sensor_id = ?1 AND ts_ns < ?2",
            params![sensor.0, cutoff],
            |r| r.get(0),
        )
        .map_err(|e| map_err(path, e))?;
    tx.execute(
        "DELETE FROM samples WHERE sensor_id = ?1 AND ts_ns < ?2",
        params![sensor.0, cutoff],
    )
    .map_err(|e| map_err(path, e))?;
    let samples = u64::try_from(samples).unwrap_or_default();
    let events = tx
        .execute(
            "DELETE FROM events WHERE sensor_id = ?1 AND ts_ns < ?2",
            params![sensor.0, cutoff],
        )
        .map_err(|e| map_err(path, e))? as u64;
    let gaps = tx
        .execute(
            "DELETE FROM gaps WHERE sensor_id = ?1 AND to_ns < ?2",
            params![sensor.0, cutoff],
        )
        .map_err(|e| map_err(path, e))? as u64;
    let dead = "SELECT id FROM sessions
                WHERE sensor_id = ?1 AND ended_ns IS NOT NULL AND ended_ns < ?2
                  AND NOT EXISTS (SELECT 1 FROM samples WHERE session_id = sessions.id)
                  AND NOT EXISTS (SELECT 1 FROM events WHERE session_id = sessions.id)";
    tx.execute(
        &format!("DELETE FROM session_channels WHERE session_id IN ({dead})"),
        params![sensor.0, cutoff],
    )
    .map_err(|e| map_err(path, e))?;
    let sessions = tx
        .execute(
            &format!("DELETE FROM sessions WHERE id IN ({dead})"),
            params![sensor.0, cutoff],
        )
        .map_err(|e| map_err(path, e))? as u64;
    tx.commit().map_err(|e| map_err(path, e))?;
    Ok(RetentionReport {
        samples,
        events,
        gaps,
        sessions,
    })
}

pub(super) fn sensor_ids(conn: &Connection, path: &Path) -> R<Vec<SensorId>> {
    conn.prepare_cached("SELECT id FROM sensors ORDER BY id")
        .and_then(|mut st| st.query_map([], |r| Ok(SensorId(r.get(0)?)))?.collect())
        .map_err(|e| map_err(path, e))
}
