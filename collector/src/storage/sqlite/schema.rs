//! Versioned schema migrations for SQLite. The version lives in
//! `PRAGMA user_version`; each migration runs in its own IMMEDIATE
//! transaction so two processes opening a new file cannot both apply it.

use super::map_err;
use crate::storage::StorageError;
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// (version, SQL). Append only: a released migration is never edited.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_readings.sql")),
    (3, include_str!("migrations/0003_sample_instants.sql")),
    (4, include_str!("migrations/0004_fleet_updates.sql")),
    (5, include_str!("migrations/0005_rollouts.sql")),
];

/// Latest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

pub(super) fn user_version(conn: &Connection, path: &Path) -> Result<i64, StorageError> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| map_err(path, e))
}

/// Brings the database to [`latest_version`]; refuses a newer database.
/// Returns the version found before migrating.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<i64, StorageError> {
    let found = user_version(conn, path)?;
    let known = latest_version();
    if found > known {
        return Err(StorageError::SchemaTooNew {
            target: path.display().to_string(),
            found,
            known,
        });
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| map_err(path, e))?;
        // Re-read under the write lock: another process may have migrated.
        if user_version(&tx, path)? >= version {
            continue;
        }
        tx.execute_batch(sql).map_err(|e| map_err(path, e))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(|e| map_err(path, e))?;
        tx.commit().map_err(|e| map_err(path, e))?;
        tracing::info!(db = %path.display(), version, "applied schema migration");
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_from_one() {
        for (i, &(v, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(v, i as i64 + 1);
            assert!(!sql.trim().is_empty());
        }
    }

    #[test]
    fn migrate_fresh_then_noop_then_refuse_newer() {
        let path = Path::new(":memory:");
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, path).unwrap(), 0);
        assert_eq!(user_version(&conn, path).unwrap(), latest_version());
        assert_eq!(migrate(&mut conn, path).unwrap(), latest_version());
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .unwrap();
        let e = migrate(&mut conn, path).unwrap_err();
        assert!(matches!(e, StorageError::SchemaTooNew { .. }), "{e}");
    }

    #[test]
    fn version_one_samples_become_readings_with_nothing_lost() {
        let path = Path::new(":memory:");
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO samples (session_id, channel, seq, idx, sensor_id, ts_ns, raw) VALUES
               (5, 0, 1, 0, 1, 100, 2508), (5, 1, 1, 0, 1, 100, 455),
               (5, 2, 1, 0, 1, 100, -9223372036854775808),
               (5, 2, 2, 0, 1, 200, 7),
               (6, 0, 1, 3, 2, 300, 1);",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, path).unwrap(), 1);
        let rows: Vec<(i64, i64, i64, i64, i64, String)> = conn
            .prepare(
                "SELECT session_id, seq, idx, sensor_id, ts_ns, raws FROM samples ORDER BY 1, 2, 3",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    5,
                    1,
                    0,
                    1,
                    100,
                    "[2508,455,-9223372036854775808]".to_string()
                ),
                // Channels 0 and 1 had no reading in that packet.
                (5, 2, 0, 1, 200, "[null,null,7]".to_string()),
                (6, 1, 3, 2, 300, "[1]".to_string()),
            ]
        );
        let leftovers: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'samples_v1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leftovers, 0);
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT raws FROM samples WHERE sensor_id = 1 AND ts_ns >= 0",
                [],
                |r| r.get(3),
            )
            .unwrap();
        // Version 3: the key (sensor_id, ts_ns) is the range index.
        assert!(
            plan.contains("PRIMARY KEY (sensor_id=? AND ts_ns>?)"),
            "{plan}"
        );
    }

    #[test]
    fn version_two_keeps_one_reading_per_instant() {
        let path = Path::new(":memory:");
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].1).unwrap();
        conn.execute_batch(MIGRATIONS[1].1).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        // Two sessions' copies of the instant 100 (a sensor calling two
        // collectors sharing nothing, merged later, say).
        conn.execute_batch(
            "INSERT INTO samples (session_id, seq, idx, sensor_id, ts_ns, raws) VALUES
               (6, 9, 0, 1, 100, '[7]'), (5, 1, 0, 1, 100, '[1]'), (5, 2, 0, 1, 200, '[2]');
             INSERT INTO gaps VALUES (1, 200, 500, 5, 2, 'loss');",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, path).unwrap(), 2);
        let rows: Vec<(i64, i64, i64, String)> = conn
            .prepare("SELECT session_id, ts_ns, source, raws FROM samples ORDER BY ts_ns")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (5, 100, 0, "[1]".to_string()),
                (5, 200, 0, "[2]".to_string())
            ]
        );
        let gaps: i64 = conn
            .query_row("SELECT count(*) FROM gaps WHERE cause = 'loss'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(gaps, 1);
        conn.execute(
            "INSERT INTO gaps VALUES (1, 500, 900, NULL, 3, 'expired')",
            [],
        )
        .unwrap();
        let leftovers: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('samples_v2', 'gaps_v2')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(leftovers, 0);
    }
}
