//! The shared backend: PostgreSQL through a small connection pool
//! (deadpool-postgres over tokio-postgres). Several collectors may write the
//! same database; the primary keys make concurrent duplicate inserts safe.
//!
//! Bulk rows go in as one `INSERT ... SELECT * FROM UNNEST($1, $2, ...)
//! ON CONFLICT DO NOTHING` per table and batch: one round trip, a fixed
//! number of parameters whatever the batch size, and duplicate keys skipped
//! by the server. Connections are plain TCP or a Unix socket (no TLS): run
//! it on a trusted network or the same host.

mod bulk;
mod coverage;
mod fill;
pub mod schema;
mod update;

use crate::storage::url::redact;
use crate::storage::*;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

/// PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    target: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

/// Maps a PostgreSQL error to a [`StorageError`].
pub(crate) fn map_pg(target: &str, e: tokio_postgres::Error) -> StorageError {
    let target = target.to_string();
    let Some(db) = e.as_db_error() else {
        // Not from the server: the connection broke or could not be made.
        return StorageError::Unavailable {
            target,
            detail: e.to_string(),
        };
    };
    let detail = format!("{} (SQLSTATE {})", db.message(), db.code().code());
    let code = db.code();
    if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY {
        StorageError::DiskFull { target, detail }
    } else if code.code().starts_with("23") || code.code().starts_with("22") {
        // Class 23 integrity constraint violation, 22 data exception.
        StorageError::Invalid { target, detail }
    } else if code.code().starts_with("08")
        || code.code().starts_with("53")
        || code.code().starts_with("57")
    {
        // Connection exception, insufficient resources, operator intervention.
        StorageError::Unavailable { target, detail }
    } else {
        StorageError::Database { target, detail }
    }
}

fn map_pool(target: &str, e: PoolError) -> StorageError {
    match e {
        PoolError::Backend(e) => map_pg(target, e),
        other => StorageError::Unavailable {
            target: target.to_string(),
            detail: other.to_string(),
        },
    }
}

fn invalid(target: &str, detail: String) -> StorageError {
    StorageError::Invalid {
        target: target.to_string(),
        detail,
    }
}

fn sensor_from_row(target: &str, r: &Row) -> Result<Sensor, StorageError> {
    let state: String = r.get(3);
    Ok(Sensor {
        id: SensorId(r.get(0)),
        aor: r.get(1),
        display_name: r.get(2),
        state: SensorState::parse(&state)
            .ok_or_else(|| invalid(target, format!("unknown sensor state {state:?}")))?,
        last_seen_ns: r.get(4),
    })
}

fn session_from_row(target: &str, r: &Row) -> Result<Session, StorageError> {
    let ssrc: i64 = r.get(3);
    let spp: i32 = r.get(5);
    Ok(Session {
        id: SessionId(r.get(0)),
        sensor: SensorId(r.get(1)),
        call_id: r.get(2),
        ssrc: u32::try_from(ssrc)
            .map_err(|_| invalid(target, format!("stored SSRC {ssrc} out of range")))?,
        stream: StreamSpec {
            rate_hz: r.get(4),
            samples_per_packet: u32::try_from(spp)
                .map_err(|_| invalid(target, format!("samples per packet {spp}")))?,
            channels: Vec::new(),
        },
        started_ns: r.get(6),
        ended_ns: r.get(7),
    })
}

fn to_u16(target: &str, v: i32) -> Result<u16, StorageError> {
    u16::try_from(v).map_err(|_| invalid(target, format!("stored channel {v} out of range")))
}

fn to_u32(target: &str, v: i64) -> Result<u32, StorageError> {
    u32::try_from(v).map_err(|_| invalid(target, format!("stored index {v} out of range")))
}

const SENSOR_COLUMNS: &str = "id, aor, display_name, state, last_seen_ns";
const SESSION_COLUMNS: &str =
    "id, sensor_id, call_id, ssrc, rate_hz, samples_per_packet, started_ns, ended_ns";

impl PgStore {
    /// Connects, checks the server is reachable, and migrates the schema.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let target = redact(url);
        let config = tokio_postgres::Config::from_str(url).map_err(|e| StorageError::BadUrl {
            url: target.clone(),
            reason: e.to_string(),
        })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(4)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StorageError::Open {
                target: target.clone(),
                detail: e.to_string(),
            })?;
        let mut client = pool.get().await.map_err(|e| StorageError::Open {
            target: target.clone(),
            detail: map_pool(&target, e).to_string(),
        })?;
        schema::migrate(&mut client, &target).await?;
        drop(client);
        Ok(PgStore { pool, target })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.map_err(|e| map_pool(&self.target, e))
    }

    /// The server and database, for errors (no password).
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    fn err(&self) -> impl Fn(tokio_postgres::Error) -> StorageError + '_ {
        move |e| map_pg(&self.target, e)
    }

    async fn load_channels(
        &self,
        client: &impl GenericClient,
        session: &mut Session,
    ) -> Result<(), StorageError> {
        session.stream.channels = self.session_channels(client, session.id).await?;
        Ok(())
    }

    async fn session_channels(
        &self,
        client: &impl GenericClient,
        session: SessionId,
    ) -> Result<Vec<ChannelSpec>, StorageError> {
        let rows = client
            .query(
                "SELECT name, unit, scale FROM session_channels
                 WHERE session_id = $1 ORDER BY channel",
                &[&session.0],
            )
            .await
            .map_err(self.err())?;
        Ok(rows
            .iter()
            .map(|r| ChannelSpec {
                name: r.get(0),
                unit: r.get(1),
                scale: r.get(2),
            })
            .collect())
    }

    async fn delete_sensor_before(
        &self,
        sensor: SensorId,
        cutoff: i64,
    ) -> Result<RetentionReport, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.err())?;
        let p: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&sensor.0, &cutoff];
        // Samples are channel values: a reading's array less its NULLs.
        let samples: i64 = tx
            .query_one(
                "WITH gone AS (DELETE FROM samples WHERE sensor_id = $1 AND ts_ns < $2
                               RETURNING raws)
                 SELECT coalesce(sum(num_nonnulls(VARIADIC raws)), 0)::int8 FROM gone",
                &p,
            )
            .await
            .map_err(self.err())?
            .get(0);
        let samples = u64::try_from(samples).unwrap_or_default();
        let events = tx
            .execute("DELETE FROM events WHERE sensor_id = $1 AND ts_ns < $2", &p)
            .await
            .map_err(self.err())?;
        let gaps = tx
            .execute("DELETE FROM gaps WHERE sensor_id = $1 AND to_ns < $2", &p)
            .await
            .map_err(self.err())?;
        let dead = "SELECT id FROM sessions
                    WHERE sensor_id = $1 AND ended_ns IS NOT NULL AND ended_ns < $2
                      AND NOT EXISTS (SELECT 1 FROM samples WHERE session_id = sessions.id)
                      AND NOT EXISTS (SELECT 1 FROM events WHERE session_id = sessions.id)";
        tx.execute(
            &format!("DELETE FROM session_channels WHERE session_id IN ({dead})"),
            &p,
        )
        .await
        .map_err(self.err())?;
        let sessions = tx
            .execute(&format!("DELETE FROM sessions WHERE id IN ({dead})"), &p)
            .await
            .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok(RetentionReport {
            samples,
            events,
            gaps,
            sessions,
        })
    }
}

#[async_trait::async_trait]
impl Storage for PgStore {
    fn describe(&self) -> String {
        self.target.clone()
    }

    fn updates(
        self: std::sync::Arc<Self>,
    ) -> Option<std::sync::Arc<dyn crate::storage::updates::UpdateStore>> {
        Some(self)
    }

    async fn upsert_sensor(
        &self,
        aor: &str,
        display_name: Option<&str>,
    ) -> Result<Sensor, StorageError> {
        let client = self.client().await?;
        let sql = format!(
            "INSERT INTO sensors (aor, display_name) VALUES ($1, $2)
             ON CONFLICT (aor) DO UPDATE
               SET display_name = coalesce(EXCLUDED.display_name, sensors.display_name)
             RETURNING {SENSOR_COLUMNS}"
        );
        let st = client.prepare_cached(&sql).await.map_err(self.err())?;
        let row = client
            .query_one(&st, &[&aor, &display_name])
            .await
            .map_err(self.err())?;
        sensor_from_row(&self.target, &row)
    }

    async fn set_sensor_state(
        &self,
        sensor: SensorId,
        state: SensorState,
    ) -> Result<(), StorageError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE sensors SET state = $1 WHERE id = $2",
                &[&state.as_str(), &sensor.0],
            )
            .await
            .map_err(self.err())?;
        if n == 0 {
            return Err(StorageError::NotFound(format!("sensor {sensor}")));
        }
        Ok(())
    }

    async fn sensors(&self) -> Result<Vec<Sensor>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {SENSOR_COLUMNS} FROM sensors ORDER BY aor"),
                &[],
            )
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(|r| sensor_from_row(&self.target, r))
            .collect()
    }

    async fn sensor(&self, id: SensorId) -> Result<Option<Sensor>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {SENSOR_COLUMNS} FROM sensors WHERE id = $1"),
                &[&id.0],
            )
            .await
            .map_err(self.err())?;
        row.map(|r| sensor_from_row(&self.target, &r)).transpose()
    }

    async fn sensor_by_aor(&self, aor: &str) -> Result<Option<Sensor>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {SENSOR_COLUMNS} FROM sensors WHERE aor = $1"),
                &[&aor],
            )
            .await
            .map_err(self.err())?;
        row.map(|r| sensor_from_row(&self.target, &r)).transpose()
    }

    async fn open_session(&self, s: &NewSession) -> Result<Session, StorageError> {
        validate_stream(&self.target, &s.stream)?;
        let spp = i32::try_from(s.stream.samples_per_packet).map_err(|_| {
            invalid(
                &self.target,
                format!("{} samples per packet", s.stream.samples_per_packet),
            )
        })?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(self.err())?;
        let known = tx
            .query_opt("SELECT 1 FROM sensors WHERE id = $1", &[&s.sensor.0])
            .await
            .map_err(self.err())?;
        if known.is_none() {
            return Err(StorageError::NotFound(format!("sensor {}", s.sensor)));
        }
        let ssrc = i64::from(s.ssrc);
        let inserted = tx
            .query_opt(
                "INSERT INTO sessions
                   (sensor_id, call_id, ssrc, rate_hz, samples_per_packet, started_ns)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (sensor_id, call_id, ssrc, started_ns) DO NOTHING
                 RETURNING id",
                &[
                    &s.sensor.0,
                    &s.call_id,
                    &ssrc,
                    &s.stream.rate_hz,
                    &spp,
                    &s.started_ns,
                ],
            )
            .await
            .map_err(self.err())?;
        if let Some(row) = &inserted {
            let id: i64 = row.get(0);
            for (i, c) in s.stream.channels.iter().enumerate() {
                // validate_stream bounds the channel count by u16::MAX.
                let ch = i32::try_from(i).unwrap_or(i32::MAX);
                tx.execute(
                    "INSERT INTO session_channels (session_id, channel, name, unit, scale)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&id, &ch, &c.name, &c.unit, &c.scale],
                )
                .await
                .map_err(self.err())?;
            }
        }
        let row = tx
            .query_one(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions
                     WHERE sensor_id = $1 AND call_id = $2 AND ssrc = $3 AND started_ns = $4"
                ),
                &[&s.sensor.0, &s.call_id, &ssrc, &s.started_ns],
            )
            .await
            .map_err(self.err())?;
        let mut session = session_from_row(&self.target, &row)?;
        self.load_channels(&tx, &mut session).await?;
        tx.commit().await.map_err(self.err())?;
        Ok(session)
    }

    async fn close_session(&self, id: SessionId, ended_ns: i64) -> Result<(), StorageError> {
        let client = self.client().await?;
        // The first close wins: a repeated close (retry) does not move the end.
        let n = client
            .execute(
                "UPDATE sessions SET ended_ns = coalesce(ended_ns, $1) WHERE id = $2",
                &[&ended_ns, &id.0],
            )
            .await
            .map_err(self.err())?;
        if n == 0 {
            return Err(StorageError::NotFound(format!("session {id}")));
        }
        Ok(())
    }

    async fn session(&self, id: SessionId) -> Result<Option<Session>, StorageError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"),
                &[&id.0],
            )
            .await
            .map_err(self.err())?;
        match row {
            Some(r) => {
                let mut s = session_from_row(&self.target, &r)?;
                self.load_channels(&client, &mut s).await?;
                Ok(Some(s))
            }
            None => Ok(None),
        }
    }

    async fn sessions(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Session>, StorageError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions
                     WHERE sensor_id = $1 AND started_ns < $3
                       AND (ended_ns IS NULL OR ended_ns >= $2)
                     ORDER BY started_ns, id"
                ),
                &[&sensor.0, &from_ns, &to_ns],
            )
            .await
            .map_err(self.err())?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut s = session_from_row(&self.target, r)?;
            self.load_channels(&client, &mut s).await?;
            out.push(s);
        }
        Ok(out)
    }

    async fn write_batch(&self, b: &Batch) -> Result<WriteReport, StorageError> {
        self.write_rows(b).await
    }

    async fn record_expired(
        &self,
        sensor: SensorId,
        after_ns: i64,
        before_ns: i64,
    ) -> Result<Option<Gap>, StorageError> {
        self.declare(sensor, (after_ns, before_ns), GapCause::Expired)
            .await
    }

    async fn record_unsampled(
        &self,
        sensor: SensorId,
        after_ns: i64,
        before_ns: i64,
    ) -> Result<Option<Gap>, StorageError> {
        self.declare(sensor, (after_ns, before_ns), GapCause::Source)
            .await
    }

    async fn committed_through(&self, sensor: SensorId) -> Result<Option<i64>, StorageError> {
        self.committed(sensor).await
    }

    async fn committed_through_many(
        &self,
        sensors: &[SensorId],
    ) -> Result<Vec<Option<i64>>, StorageError> {
        self.committed_many(sensors).await
    }

    async fn close_open_sessions(&self, quiet_since_ns: i64) -> Result<u64, StorageError> {
        self.close_open(quiet_since_ns).await
    }

    async fn samples(&self, q: &SampleQuery) -> Result<Vec<StoredSample>, StorageError> {
        self.query_samples(q).await
    }

    async fn gaps(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Gap>, StorageError> {
        self.query_gaps(sensor, from_ns, to_ns).await
    }

    async fn coverage(&self, query: &CoverageQuery) -> Result<Coverage, StorageError> {
        self.query_coverage(query).await
    }

    async fn events(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Event>, StorageError> {
        self.query_events(sensor, from_ns, to_ns).await
    }

    async fn delete_before(&self, cutoff_ns: i64) -> Result<RetentionReport, StorageError> {
        let ids: Vec<i64> = {
            let client = self.client().await?;
            client
                .query("SELECT id FROM sensors ORDER BY id", &[])
                .await
                .map_err(self.err())?
                .iter()
                .map(|r| r.get(0))
                .collect()
        };
        let mut total = RetentionReport::default();
        for id in ids {
            let r = self.delete_sensor_before(SensorId(id), cutoff_ns).await?;
            total.samples += r.samples;
            total.events += r.events;
            total.gaps += r.gaps;
            total.sessions += r.sessions;
        }
        Ok(total)
    }

    fn rollouts(&self) -> Option<&dyn crate::storage::rollouts::RolloutStore> {
        Some(self)
    }

    async fn schema_version(&self) -> Result<i64, StorageError> {
        let client = self.client().await?;
        schema::current_version(&client, &self.target).await
    }

    async fn close(&self) -> Result<(), StorageError> {
        // Every write commits before it returns; closing just hangs up.
        self.pool.close();
        Ok(())
    }
}
