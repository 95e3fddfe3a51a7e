//! The coverage query on SQLite (see `storage::coverage`).

use super::map_err;
use crate::storage::StorageError;
use crate::storage::coverage::{
    COVERAGE_SQL, Coverage, CoverageQuery, RunRow, assemble, rows_to_fetch,
};
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::LazyLock;

/// The query with SQLite's numbered parameters (`?1`, not `$1`, which
/// SQLite reads as a parameter named "$1").
static SQL: LazyLock<String> = LazyLock::new(|| COVERAGE_SQL.replace('$', "?"));

pub(super) fn coverage(
    conn: &Connection,
    path: &Path,
    q: &CoverageQuery,
) -> Result<Coverage, StorageError> {
    let rows = conn
        .prepare_cached(&SQL)
        .and_then(|mut st| {
            st.query_map(
                params![
                    q.sensor.0,
                    q.from_ns,
                    q.to_ns,
                    i64::from(q.scan_limit),
                    rows_to_fetch(q)
                ],
                |r| {
                    Ok(RunRow {
                        class: r.get(0)?,
                        from_ns: r.get(1)?,
                        to_ns: r.get(2)?,
                        count: r.get(3)?,
                        resent: r.get(4)?,
                        missing: r.get(5)?,
                        cause: r.get(6)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| map_err(path, e))?;
    assemble(rows, q).map_err(|e| StorageError::Invalid {
        target: path.display().to_string(),
        detail: e.to_string(),
    })
}
