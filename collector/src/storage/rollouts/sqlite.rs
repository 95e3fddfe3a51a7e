//! [`RolloutStore`] on the SQLite file, through the store's writer and
//! reader connections.

use super::{
    INSERT_ROLLOUT, RolloutRow, RolloutStore, SELECT_IDS, SELECT_ROLLOUT, SELECT_SENSORS,
    SensorRow, Value, insert_args, snapshot, statements,
};
use crate::storage::StorageError;
use crate::storage::sqlite::{SqliteStore, map_err};
use crate::update::rollout::{RolloutEvent, RolloutId, RolloutPlan, RolloutSnapshot};
use async_trait::async_trait;
use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, OptionalExtension, ToSql, TransactionBehavior, params};
use std::path::Path;

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Value::Int(v) => v.to_sql(),
            Value::Text(v) => v.to_sql(),
        }
    }
}

/// PostgreSQL's `$n` is SQLite's `?n` (same numbering).
fn sql(statement: &str) -> String {
    statement.replace('$', "?")
}

#[async_trait]
impl RolloutStore for SqliteStore {
    async fn create_rollout(
        &self,
        plan: &RolloutPlan,
        created_ns: i64,
    ) -> Result<RolloutId, StorageError> {
        let args = insert_args(plan, created_ns);
        let sensors = plan.sensors.clone();
        self.write(move |c, p| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map_err(p, e))?;
            let id: i64 = tx
                .query_row(
                    &sql(INSERT_ROLLOUT),
                    rusqlite::params_from_iter(&args),
                    |r| r.get(0),
                )
                .map_err(|e| map_err(p, e))?;
            {
                let mut insert = tx
                    .prepare(
                        "INSERT INTO rollout_sensors (rollout_id, position, sensor) \
                         VALUES (?1, ?2, ?3)",
                    )
                    .map_err(|e| map_err(p, e))?;
                for (position, sensor) in (0i64..).zip(&sensors) {
                    insert
                        .execute(params![id, position, sensor])
                        .map_err(|e| map_err(p, e))?;
                }
            }
            tx.commit().map_err(|e| map_err(p, e))?;
            Ok(id)
        })
        .await
    }

    async fn record_rollout(
        &self,
        id: RolloutId,
        events: &[RolloutEvent],
    ) -> Result<(), StorageError> {
        let todo: Vec<_> = events.iter().flat_map(|e| statements(id, e)).collect();
        if todo.is_empty() {
            return Ok(());
        }
        self.write(move |c, p| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| map_err(p, e))?;
            for st in &todo {
                tx.prepare_cached(&sql(st.sql))
                    .and_then(|mut s| s.execute(rusqlite::params_from_iter(&st.args)))
                    .map_err(|e| map_err(p, e))?;
            }
            tx.commit().map_err(|e| map_err(p, e))
        })
        .await
    }

    async fn rollout(&self, id: RolloutId) -> Result<Option<RolloutSnapshot>, StorageError> {
        self.read(move |c, p| read_rollout(c, p, id)).await
    }

    async fn rollout_ids(
        &self,
        running_only: bool,
        limit: u32,
    ) -> Result<Vec<RolloutId>, StorageError> {
        self.read(move |c, p| {
            let mut st = c.prepare(&sql(SELECT_IDS)).map_err(|e| map_err(p, e))?;
            st.query_map(params![i64::from(running_only), i64::from(limit)], |r| {
                r.get(0)
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| map_err(p, e))
        })
        .await
    }
}

fn read_rollout(
    c: &Connection,
    p: &Path,
    id: RolloutId,
) -> Result<Option<RolloutSnapshot>, StorageError> {
    let row = c
        .query_row(&sql(SELECT_ROLLOUT), [id], |r| {
            Ok(RolloutRow {
                id: r.get(0)?,
                version: r.get(1)?,
                url: r.get(2)?,
                sha256: r.get(3)?,
                size: r.get(4)?,
                reboot: r.get(5)?,
                canary: r.get(6)?,
                growth: r.get(7)?,
                max_failures: r.get(8)?,
                timeout_ms: r.get(9)?,
                created_ns: r.get(10)?,
                status: r.get(11)?,
                reason: r.get(12)?,
                wave: r.get(13)?,
            })
        })
        .optional()
        .map_err(|e| map_err(p, e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut st = c.prepare(&sql(SELECT_SENSORS)).map_err(|e| map_err(p, e))?;
    let sensors = st
        .query_map([id], |r| {
            Ok(SensorRow {
                sensor: r.get(0)?,
                phase: r.get(1)?,
                targeted_ns: r.get(2)?,
                finished_ns: r.get(3)?,
                last_update: r.get(4)?,
                detail: r.get(5)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| map_err(p, e))?;
    snapshot(&p.display().to_string(), row, sensors).map(Some)
}
