//! [`UpdateStore`] on PostgreSQL: the tables of migration 4.

use super::{PgStore, invalid};
use crate::storage::StorageError;
use crate::storage::updates::{BundleRecord, FleetEvent, SensorFleetState, UpdateStore};
use crate::update::fleet::{FleetState, UpdateState};
use tokio_postgres::Row;

type R<T> = Result<T, StorageError>;

const BUNDLE_COLUMNS: &str = "sha256, version, compatible, size, published_ns";

fn update_state(target: &str, s: &str) -> R<UpdateState> {
    UpdateState::parse(s).ok_or_else(|| invalid(target, format!("stored update state {s:?}")))
}

fn bundle_from_row(target: &str, r: &Row) -> R<BundleRecord> {
    let size: i64 = r.get(3);
    Ok(BundleRecord {
        sha256: r.get(0),
        version: r.get(1),
        compatible: r.get(2),
        size: u64::try_from(size).map_err(|_| invalid(target, format!("stored size {size}")))?,
        published_ns: r.get(4),
    })
}

fn progress(target: &str, v: Option<i32>) -> R<Option<u8>> {
    v.map(|p| u8::try_from(p).map_err(|_| invalid(target, format!("stored progress {p}"))))
        .transpose()
}

#[async_trait::async_trait]
impl UpdateStore for PgStore {
    async fn record_bundle(&self, b: &BundleRecord) -> R<BundleRecord> {
        let size =
            i64::try_from(b.size).map_err(|_| invalid(&self.target, format!("size {}", b.size)))?;
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO update_bundles (sha256, version, compatible, size, published_ns)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
                &[&b.sha256, &b.version, &b.compatible, &size, &b.published_ns],
            )
            .await
            .map_err(self.err())?;
        drop(client);
        self.bundle(&b.sha256)
            .await?
            .ok_or_else(|| StorageError::NotFound(format!("bundle {}", b.sha256)))
    }

    async fn bundles(&self) -> R<Vec<BundleRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {BUNDLE_COLUMNS} FROM update_bundles ORDER BY published_ns DESC"),
                &[],
            )
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(|r| bundle_from_row(&self.target, r))
            .collect()
    }

    async fn bundle(&self, sha256: &str) -> R<Option<BundleRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {BUNDLE_COLUMNS} FROM update_bundles WHERE sha256 = $1"),
                &[&sha256],
            )
            .await
            .map_err(self.err())?;
        row.map(|r| bundle_from_row(&self.target, &r)).transpose()
    }

    async fn record_fleet_state(
        &self,
        report: &SensorFleetState,
        event: Option<&FleetEvent>,
    ) -> R<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.err())?;
        let s = &report.state;
        let progress = s.progress.map(i32::from);
        tx.execute(
            "INSERT INTO fleet_states (aor, version, agent, compatible, slot, update_state,
                                       target, progress, reason, reported_ns)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (aor) DO UPDATE SET
               version = EXCLUDED.version, agent = EXCLUDED.agent,
               compatible = EXCLUDED.compatible, slot = EXCLUDED.slot,
               update_state = EXCLUDED.update_state, target = EXCLUDED.target,
               progress = EXCLUDED.progress, reason = EXCLUDED.reason,
               reported_ns = EXCLUDED.reported_ns",
            &[
                &report.sensor,
                &s.version,
                &s.agent,
                &s.compatible,
                &s.slot,
                &s.update.as_str(),
                &s.target,
                &progress,
                &s.reason,
                &report.reported_ns,
            ],
        )
        .await
        .map_err(self.err())?;
        if let Some(e) = event {
            tx.execute(
                "INSERT INTO fleet_events (aor, ts_ns, version, update_state, target, reason)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &e.sensor,
                    &e.ts_ns,
                    &e.version,
                    &e.update.as_str(),
                    &e.target,
                    &e.reason,
                ],
            )
            .await
            .map_err(self.err())?;
        }
        tx.commit().await.map_err(self.err())
    }

    async fn fleet_states(&self) -> R<Vec<SensorFleetState>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT aor, version, agent, compatible, slot, update_state, target, progress,
                        reason, reported_ns
                 FROM fleet_states ORDER BY aor",
                &[],
            )
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(|r| {
                let update: String = r.get(5);
                Ok(SensorFleetState {
                    sensor: r.get(0),
                    state: FleetState {
                        version: r.get(1),
                        agent: r.get(2),
                        compatible: r.get(3),
                        slot: r.get(4),
                        update: update_state(&self.target, &update)?,
                        target: r.get(6),
                        progress: progress(&self.target, r.get(7))?,
                        reason: r.get(8),
                    },
                    reported_ns: r.get(9),
                })
            })
            .collect()
    }

    async fn fleet_events(&self, sensor: &str, limit: u32) -> R<Vec<FleetEvent>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT aor, ts_ns, version, update_state, target, reason FROM fleet_events
                 WHERE aor = $1 ORDER BY ts_ns DESC, id DESC LIMIT $2",
                &[&sensor, &i64::from(limit)],
            )
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(|r| {
                let update: String = r.get(3);
                Ok(FleetEvent {
                    sensor: r.get(0),
                    ts_ns: r.get(1),
                    version: r.get(2),
                    update: update_state(&self.target, &update)?,
                    target: r.get(4),
                    reason: r.get(5),
                })
            })
            .collect()
    }
}
