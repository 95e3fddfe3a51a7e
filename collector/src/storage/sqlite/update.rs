//! [`UpdateStore`] on SQLite: the tables of migration 4.

use super::{SqliteStore, map_err};
use crate::storage::StorageError;
use crate::storage::updates::{BundleRecord, FleetEvent, SensorFleetState, UpdateStore};
use crate::update::fleet::{FleetState, UpdateState};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;

type R<T> = Result<T, StorageError>;

fn invalid(path: &Path, detail: String) -> StorageError {
    StorageError::Invalid {
        target: path.display().to_string(),
        detail,
    }
}

fn update_state(path: &Path, s: &str) -> R<UpdateState> {
    UpdateState::parse(s).ok_or_else(|| invalid(path, format!("stored update state {s:?}")))
}

const BUNDLE_COLUMNS: &str = "sha256, version, compatible, size, published_ns";

fn bundle_from_row(r: &Row<'_>) -> rusqlite::Result<BundleRecord> {
    Ok(BundleRecord {
        sha256: r.get(0)?,
        version: r.get(1)?,
        compatible: r.get(2)?,
        // The CHECK keeps it non-negative.
        size: r.get::<_, i64>(3)?.unsigned_abs(),
        published_ns: r.get(4)?,
    })
}

fn bundle(conn: &Connection, path: &Path, sha256: &str) -> R<Option<BundleRecord>> {
    conn.query_row(
        &format!("SELECT {BUNDLE_COLUMNS} FROM update_bundles WHERE sha256 = ?1"),
        [sha256],
        bundle_from_row,
    )
    .optional()
    .map_err(|e| map_err(path, e))
}

fn record_bundle(conn: &mut Connection, path: &Path, b: &BundleRecord) -> R<BundleRecord> {
    let size = i64::try_from(b.size).map_err(|_| invalid(path, format!("size {}", b.size)))?;
    conn.execute(
        "INSERT INTO update_bundles (sha256, version, compatible, size, published_ns)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (sha256) DO NOTHING",
        params![b.sha256, b.version, b.compatible, size, b.published_ns],
    )
    .map_err(|e| map_err(path, e))?;
    bundle(conn, path, &b.sha256)?
        .ok_or_else(|| StorageError::NotFound(format!("bundle {}", b.sha256)))
}

fn record_state(
    conn: &mut Connection,
    path: &Path,
    report: &SensorFleetState,
    event: Option<&FleetEvent>,
) -> R<()> {
    let tx = conn.transaction().map_err(|e| map_err(path, e))?;
    let s = &report.state;
    tx.execute(
        "INSERT INTO fleet_states (aor, version, agent, compatible, slot, update_state,
                                   target, progress, reason, reported_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (aor) DO UPDATE SET
           version = excluded.version, agent = excluded.agent,
           compatible = excluded.compatible, slot = excluded.slot,
           update_state = excluded.update_state, target = excluded.target,
           progress = excluded.progress, reason = excluded.reason,
           reported_ns = excluded.reported_ns",
        params![
            report.sensor,
            s.version,
            s.agent,
            s.compatible,
            s.slot,
            s.update.as_str(),
            s.target,
            s.progress,
            s.reason,
            report.reported_ns
        ],
    )
    .map_err(|e| map_err(path, e))?;
    if let Some(e) = event {
        tx.execute(
            "INSERT INTO fleet_events (aor, ts_ns, version, update_state, target, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                e.sensor,
                e.ts_ns,
                e.version,
                e.update.as_str(),
                e.target,
                e.reason
            ],
        )
        .map_err(|e| map_err(path, e))?;
    }
    tx.commit().map_err(|e| map_err(path, e))
}

fn states(conn: &Connection, path: &Path) -> R<Vec<SensorFleetState>> {
    let mut st = conn
        .prepare(
            "SELECT aor, version, agent, compatible, slot, update_state, target, progress,
                    reason, reported_ns
             FROM fleet_states ORDER BY aor",
        )
        .map_err(|e| map_err(path, e))?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                FleetState {
                    version: r.get(1)?,
                    agent: r.get(2)?,
                    compatible: r.get(3)?,
                    slot: r.get(4)?,
                    update: UpdateState::Idle,
                    target: r.get(6)?,
                    progress: r.get(7)?,
                    reason: r.get(8)?,
                },
                r.get::<_, String>(5)?,
                r.get::<_, i64>(9)?,
            ))
        })
        .map_err(|e| map_err(path, e))?;
    let mut out = Vec::new();
    for row in rows {
        let (sensor, mut state, update, reported_ns) = row.map_err(|e| map_err(path, e))?;
        state.update = update_state(path, &update)?;
        out.push(SensorFleetState {
            sensor,
            state,
            reported_ns,
        });
    }
    Ok(out)
}

fn events(conn: &Connection, path: &Path, sensor: &str, limit: u32) -> R<Vec<FleetEvent>> {
    let mut st = conn
        .prepare(
            "SELECT aor, ts_ns, version, update_state, target, reason FROM fleet_events
             WHERE aor = ?1 ORDER BY ts_ns DESC, id DESC LIMIT ?2",
        )
        .map_err(|e| map_err(path, e))?;
    let rows = st
        .query_map(params![sensor, limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .map_err(|e| map_err(path, e))?;
    let mut out = Vec::new();
    for row in rows {
        let (sensor, ts_ns, version, update, target, reason) = row.map_err(|e| map_err(path, e))?;
        out.push(FleetEvent {
            sensor,
            ts_ns,
            version,
            update: update_state(path, &update)?,
            target,
            reason,
        });
    }
    Ok(out)
}

#[async_trait::async_trait]
impl UpdateStore for SqliteStore {
    async fn record_bundle(&self, b: &BundleRecord) -> R<BundleRecord> {
        let b = b.clone();
        self.write(move |c, p| record_bundle(c, p, &b)).await
    }

    async fn bundles(&self) -> R<Vec<BundleRecord>> {
        self.read(|c, p| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {BUNDLE_COLUMNS} FROM update_bundles ORDER BY published_ns DESC"
                ))
                .map_err(|e| map_err(p, e))?;
            st.query_map([], bundle_from_row)
                .and_then(|rows| rows.collect())
                .map_err(|e| map_err(p, e))
        })
        .await
    }

    async fn bundle(&self, sha256: &str) -> R<Option<BundleRecord>> {
        let sha256 = sha256.to_string();
        self.read(move |c, p| bundle(c, p, &sha256)).await
    }

    async fn record_fleet_state(
        &self,
        report: &SensorFleetState,
        event: Option<&FleetEvent>,
    ) -> R<()> {
        let report = report.clone();
        let event = event.cloned();
        self.write(move |c, p| record_state(c, p, &report, event.as_ref()))
            .await
    }

    async fn fleet_states(&self) -> R<Vec<SensorFleetState>> {
        self.read(|c, p| states(c, p)).await
    }

    async fn fleet_events(&self, sensor: &str, limit: u32) -> R<Vec<FleetEvent>> {
        let sensor = sensor.to_string();
        self.read(move |c, p| events(c, p, &sensor, limit)).await
    }
}
