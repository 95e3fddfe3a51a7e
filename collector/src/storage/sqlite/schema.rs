//! Versioned schema migrations for SQLite. The version lives in
//! `PRAGMA user_version`; each migration runs in its own IMMEDIATE
//! transaction so two processes opening a new file cannot both apply it.

use super::map_err;
use crate::storage::StorageError;
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// (version, SQL). Append only: a released migration is never edited.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("migrations/0001_initial.sql"))];

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
}
