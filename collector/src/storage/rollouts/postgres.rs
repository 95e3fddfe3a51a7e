//! [`RolloutStore`] on PostgreSQL, through the store's pool.

use super::{
    INSERT_ROLLOUT, RolloutRow, RolloutStore, SELECT_IDS, SELECT_ROLLOUT, SELECT_SENSORS,
    SensorRow, Value, insert_args, snapshot, statements,
};
use crate::storage::StorageError;
use crate::storage::postgres::{PgStore, map_pg};
use crate::update::rollout::{RolloutEvent, RolloutId, RolloutPlan, RolloutSnapshot};
use async_trait::async_trait;
use tokio_postgres::types::ToSql;

fn bind(args: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| match a {
            Value::Int(v) => v as &(dyn ToSql + Sync),
            Value::Text(v) => v as &(dyn ToSql + Sync),
        })
        .collect()
}

#[async_trait]
impl RolloutStore for PgStore {
    async fn create_rollout(
        &self,
        plan: &RolloutPlan,
        created_ns: i64,
    ) -> Result<RolloutId, StorageError> {
        let err = |e| map_pg(self.target(), e);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(err)?;
        let args = insert_args(plan, created_ns);
        let id: i64 = tx
            .query_one(INSERT_ROLLOUT, &bind(&args))
            .await
            .map_err(err)?
            .get(0);
        // One round trip for every sensor, in the plan's order.
        tx.execute(
            "INSERT INTO rollout_sensors (rollout_id, position, sensor) \
             SELECT $1, ord - 1, sensor FROM UNNEST($2::text[]) WITH ORDINALITY AS t(sensor, ord)",
            &[&id, &plan.sensors],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(id)
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
        let err = |e| map_pg(self.target(), e);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(err)?;
        for st in &todo {
            let prepared = tx.prepare_cached(st.sql).await.map_err(err)?;
            tx.execute(&prepared, &bind(&st.args)).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn rollout(&self, id: RolloutId) -> Result<Option<RolloutSnapshot>, StorageError> {
        let err = |e| map_pg(self.target(), e);
        let client = self.client().await?;
        let Some(r) = client
            .query_opt(SELECT_ROLLOUT, &[&id])
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let row = RolloutRow {
            id: r.try_get(0).map_err(err)?,
            version: r.try_get(1).map_err(err)?,
            url: r.try_get(2).map_err(err)?,
            sha256: r.try_get(3).map_err(err)?,
            size: r.try_get(4).map_err(err)?,
            reboot: r.try_get(5).map_err(err)?,
            canary: r.try_get(6).map_err(err)?,
            growth: r.try_get(7).map_err(err)?,
            max_failures: r.try_get(8).map_err(err)?,
            timeout_ms: r.try_get(9).map_err(err)?,
            created_ns: r.try_get(10).map_err(err)?,
            status: r.try_get(11).map_err(err)?,
            reason: r.try_get(12).map_err(err)?,
            wave: r.try_get(13).map_err(err)?,
        };
        let sensors = client
            .query(SELECT_SENSORS, &[&id])
            .await
            .map_err(err)?
            .iter()
            .map(|r| {
                Ok(SensorRow {
                    sensor: r.try_get(0)?,
                    phase: r.try_get(1)?,
                    targeted_ns: r.try_get(2)?,
                    finished_ns: r.try_get(3)?,
                    last_update: r.try_get(4)?,
                    detail: r.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(err)?;
        snapshot(self.target(), row, sensors).map(Some)
    }

    async fn rollout_ids(
        &self,
        running_only: bool,
        limit: u32,
    ) -> Result<Vec<RolloutId>, StorageError> {
        let err = |e| map_pg(self.target(), e);
        let client = self.client().await?;
        let rows = client
            .query(SELECT_IDS, &[&i64::from(running_only), &i64::from(limit)])
            .await
            .map_err(err)?;
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)
    }
}
