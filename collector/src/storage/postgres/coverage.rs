//! The coverage query on PostgreSQL (see `storage::coverage`).

use super::PgStore;
use crate::storage::StorageError;
use crate::storage::coverage::{
    COVERAGE_SQL, Coverage, CoverageQuery, RunRow, assemble, rows_to_fetch,
};

impl PgStore {
    pub(super) async fn query_coverage(&self, q: &CoverageQuery) -> Result<Coverage, StorageError> {
        let client = self.client().await?;
        let st = client
            .prepare_cached(COVERAGE_SQL)
            .await
            .map_err(self.err())?;
        let rows = client
            .query(
                &st,
                &[
                    &q.sensor.0,
                    &q.from_ns,
                    &q.to_ns,
                    &i64::from(q.scan_limit),
                    &rows_to_fetch(q),
                ],
            )
            .await
            .map_err(self.err())?;
        let runs = rows
            .iter()
            .map(|r| {
                Ok(RunRow {
                    class: r.try_get(0)?,
                    from_ns: r.try_get(1)?,
                    to_ns: r.try_get(2)?,
                    count: r.try_get(3)?,
                    resent: r.try_get(4)?,
                    missing: r.try_get(5)?,
                    cause: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(self.err())?;
        assemble(runs, q).map_err(|e| StorageError::Invalid {
            target: self.target.clone(),
            detail: e.to_string(),
        })
    }
}
