//! Storage: the data model, one trait, two backends (SQLite embedded,
//! PostgreSQL shared), and the batching writer in front of them.

mod coverage;
mod error;
mod gap_cuts;
pub mod model;
pub mod postgres;
mod readings;
pub mod rollouts;
pub mod sqlite;
pub mod updates;
mod url;
pub mod writer;

pub use coverage::{
    COVERAGE_SCAN_LIMIT, Coverage, CoverageKind, CoverageQuery, CoverageRange, each_coverage_range,
};
pub use error::StorageError;
pub use model::*;
pub use url::StorageUrl;

use async_trait::async_trait;
use std::sync::Arc;

/// Everything the collector needs from a database. Both backends pass the
/// same conformance suite (`collector/tests/conformance/`).
///
/// Writes of samples, gaps and events are idempotent: a row whose key exists
/// is skipped and counted as a duplicate, so "every received sample is stored
/// exactly once" holds even when a packet arrives twice or a batch is retried.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Human-readable name of the store for logs (path or host/db, no password).
    fn describe(&self) -> String;

    /// The fleet-update tables (docs/protocol.md 12); `None` for a store
    /// without them (test fakes).
    fn updates(self: Arc<Self>) -> Option<Arc<dyn updates::UpdateStore>> {
        None
    }

    /// Creates the sensor or returns the existing one; a given display name
    /// replaces the stored one.
    async fn upsert_sensor(
        &self,
        aor: &str,
        display_name: Option<&str>,
    ) -> Result<Sensor, StorageError>;

    /// Sets the state; last-seen times travel in [`Batch::seen`].
    async fn set_sensor_state(
        &self,
        sensor: SensorId,
        state: SensorState,
    ) -> Result<(), StorageError>;

    /// All sensors, ordered by address of record.
    async fn sensors(&self) -> Result<Vec<Sensor>, StorageError>;

    async fn sensor(&self, id: SensorId) -> Result<Option<Sensor>, StorageError>;

    async fn sensor_by_aor(&self, aor: &str) -> Result<Option<Sensor>, StorageError>;

    /// Records a session. Idempotent on (sensor, call-id, SSRC, start): the
    /// existing record is returned.
    async fn open_session(&self, session: &NewSession) -> Result<Session, StorageError>;

    async fn close_session(&self, id: SessionId, ended_ns: i64) -> Result<(), StorageError>;

    async fn session(&self, id: SessionId) -> Result<Option<Session>, StorageError>;

    /// Sessions of a sensor overlapping `[from_ns, to_ns)`, oldest first.
    async fn sessions(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Session>, StorageError>;

    /// Writes a batch in one transaction. Existing keys are skipped: a
    /// reading whose sensor and instant are stored (from any session) is a
    /// duplicate. No gap covers a stored instant: the batch's gaps, and the
    /// stored gaps its resent or backfilled readings reach into, shrink,
    /// split or disappear by the instants stored inside them.
    async fn write_batch(&self, batch: &Batch) -> Result<WriteReport, StorageError>;

    /// Records that the samples of `sensor` strictly between `after_ns` and
    /// `before_ns` can never come (older than the agent's spool): the
    /// fillable gaps there become one [`GapCause::Expired`] gap of exactly
    /// that range (less any instants stored inside it); their parts outside
    /// stay as they were. Returns the expired gap, `None` for an empty range.
    async fn record_expired(
        &self,
        sensor: SensorId,
        after_ns: i64,
        before_ns: i64,
    ) -> Result<Option<Gap>, StorageError>;

    /// Records that the agent sampled nothing of `sensor` strictly between
    /// `after_ns` and `before_ns` (it was off, or its backfill reached its
    /// live start: docs/protocol.md 11.4 `unsampled`): the fillable gaps
    /// there become one [`GapCause::Source`] gap of exactly that range, as
    /// for instants the sensor skipped within a session, which holds back
    /// neither the mark nor counts as lost. Refused with
    /// [`StorageError::Invalid`] when a sample of the range is stored (the
    /// claim is false). Returns the gap, `None` for an empty range.
    async fn record_unsampled(
        &self,
        sensor: SensorId,
        after_ns: i64,
        before_ns: i64,
    ) -> Result<Option<Gap>, StorageError>;

    /// The instant up to which `sensor`'s data is stored with no gap that
    /// could still be filled ([`GapCause::is_fillable`]; expired and source
    /// gaps do not hold it back): the newest stored instant, or the start
    /// of the oldest fillable gap. The collector's acknowledgement mark.
    /// `None` when nothing of the sensor is stored.
    async fn committed_through(&self, sensor: SensorId) -> Result<Option<i64>, StorageError>;

    /// [`Storage::committed_through`] of several sensors (the acknowledger
    /// asks after each commit for the sensors it touched), in their order.
    async fn committed_through_many(
        &self,
        sensors: &[SensorId],
    ) -> Result<Vec<Option<i64>>, StorageError> {
        let mut marks = Vec::with_capacity(sensors.len());
        for s in sensors {
            marks.push(self.committed_through(*s).await?);
        }
        Ok(marks)
    }

    /// Closes the sessions a crash left open (`ended_ns` NULL) whose last
    /// stored instant (or start, without samples) is before `quiet_since_ns`,
    /// at that instant. Returns how many.
    async fn close_open_sessions(&self, quiet_since_ns: i64) -> Result<u64, StorageError>;

    /// Samples in a time range, in `query.order`, at most `query.limit`.
    async fn samples(&self, query: &SampleQuery) -> Result<Vec<StoredSample>, StorageError>;

    /// Gaps of a sensor overlapping `[from_ns, to_ns)`, oldest first.
    async fn gaps(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Gap>, StorageError>;

    /// The sensor's timeline in `[query.from_ns, query.to_ns)` as ranges
    /// of live, resent and backfilled readings and of gaps by cause, oldest
    /// first, bounded by the query's limits (see [`Coverage`]).
    async fn coverage(&self, query: &CoverageQuery) -> Result<Coverage, StorageError>;

    /// Events of a sensor with `from_ns <= ts_ns < to_ns`, oldest first.
    async fn events(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Event>, StorageError>;

    /// Retention: deletes samples and events with `ts_ns < cutoff_ns`, gaps
    /// ending before it, and ended sessions left without samples.
    async fn delete_before(&self, cutoff_ns: i64) -> Result<RetentionReport, StorageError>;

    /// Schema version the database is at (see the backend's migrations).
    async fn schema_version(&self) -> Result<i64, StorageError>;

    /// Makes everything durable and releases the database (SQLite:
    /// checkpoints the WAL). Further calls may fail.
    async fn close(&self) -> Result<(), StorageError>;

    /// The staged rollouts' tables (docs/protocol.md 12.7); `None` for a
    /// store that keeps none (test fakes).
    fn rollouts(&self) -> Option<&dyn rollouts::RolloutStore> {
        None
    }
}

/// How to open a store.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Check of an existing SQLite file (PostgreSQL checks itself).
    pub sqlite_check: sqlite::IntegrityCheck,
    /// Group of a new SQLite file (`storage.group`, resolved).
    pub sqlite_group: Option<u32>,
}

/// Opens the store a URL names, creating or migrating its schema.
pub async fn open(url: &StorageUrl, opts: OpenOptions) -> Result<Arc<dyn Storage>, StorageError> {
    match url {
        StorageUrl::Sqlite(path) => {
            let options = sqlite::SqliteOptions {
                integrity_check: opts.sqlite_check,
                group: opts.sqlite_group,
                ..sqlite::SqliteOptions::default()
            };
            let store = sqlite::SqliteStore::open(path.clone(), options).await?;
            Ok(Arc::new(store))
        }
        StorageUrl::Postgres(url) => {
            let store = postgres::PgStore::connect(url).await?;
            Ok(Arc::new(store))
        }
    }
}

/// How long a session in a shared PostgreSQL store may have stored nothing
/// and still be another collector's live one: longer than any stream's
/// packet interval and than the writer's commit delay.
pub const SHARED_STORE_QUIET: std::time::Duration = std::time::Duration::from_secs(600);

/// At start: closes the sessions a crash of a previous run left open
/// (issue 15), which would otherwise show as streaming forever. A SQLite
/// file is this collector's alone, so every open session is a leftover; in
/// a PostgreSQL store other collectors may be streaming, so only sessions
/// quiet for [`SHARED_STORE_QUIET`] are. Returns how many were closed.
pub async fn close_sessions_left_open(
    store: &dyn Storage,
    url: &StorageUrl,
    now_ns: i64,
) -> Result<u64, StorageError> {
    let quiet_since = match url {
        StorageUrl::Sqlite(_) => now_ns,
        StorageUrl::Postgres(_) => {
            let quiet = i64::try_from(SHARED_STORE_QUIET.as_nanos()).unwrap_or(i64::MAX);
            now_ns.saturating_sub(quiet)
        }
    };
    store.close_open_sessions(quiet_since).await
}

/// Upper bound of a time range meaning "until the end of time".
pub const TS_MAX: i64 = i64::MAX;

/// Checks that a stream description can be stored: at least one channel,
/// channel indexes fit `u16`, finite positive rate and scales.
pub(crate) fn validate_stream(target: &str, stream: &StreamSpec) -> Result<(), StorageError> {
    let invalid = |detail: String| StorageError::Invalid {
        target: target.to_string(),
        detail,
    };
    if stream.channels.is_empty() {
        return Err(invalid("a session needs at least one channel".into()));
    }
    if stream.channels.len() > usize::from(u16::MAX) {
        return Err(invalid(format!(
            "{} channels; at most {}",
            stream.channels.len(),
            u16::MAX
        )));
    }
    if !(stream.rate_hz.is_finite() && stream.rate_hz > 0.0) {
        return Err(invalid(format!(
            "rate {} Hz is not a positive number",
            stream.rate_hz
        )));
    }
    if let Some(c) = stream.channels.iter().find(|c| !c.scale.is_finite()) {
        return Err(invalid(format!(
            "channel {:?} has scale {}",
            c.name, c.scale
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate: f64, n: usize) -> StreamSpec {
        StreamSpec {
            rate_hz: rate,
            samples_per_packet: 1,
            channels: (0..n)
                .map(|i| ChannelSpec {
                    name: format!("c{i}"),
                    unit: "Cel".into(),
                    scale: 0.01,
                })
                .collect(),
        }
    }

    #[test]
    fn stream_validation() {
        assert!(validate_stream("t", &spec(10.0, 3)).is_ok());
        assert!(validate_stream("t", &spec(10.0, 0)).is_err());
        assert!(validate_stream("t", &spec(0.0, 1)).is_err());
        assert!(validate_stream("t", &spec(f64::NAN, 1)).is_err());
        let mut s = spec(1.0, 1);
        s.channels[0].scale = f64::INFINITY;
        assert!(validate_stream("t", &s).is_err());
    }
}
