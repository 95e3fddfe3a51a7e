//! The embedded backend: one SQLite file (bundled SQLite), WAL journal,
//! `synchronous=NORMAL`.
//!
//! Durability: in WAL mode with NORMAL, a committed transaction survives a
//! crash of the process (kill -9); only a power cut can lose the last
//! commits. The writer commits at least every second, so a crash loses at
//! most the rows of the last second, and the file stays consistent.
//!
//! A damaged file found at start is reported and left alone: the store
//! never deletes or recreates an existing file.

mod coverage;
pub mod file_mode;
mod fill;
mod ops;
pub mod schema;
mod update;

use crate::storage::*;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How much of the file to check when opening an existing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityCheck {
    /// `PRAGMA quick_check`: every page and the structure of every b-tree,
    /// without cross-checking indexes (linear in the file size).
    #[default]
    Quick,
    /// `PRAGMA integrity_check`: also verifies indexes against tables.
    Full,
    /// Only that the file is a readable SQLite database (instant).
    #[serde(rename = "header")]
    HeaderOnly,
}

#[derive(Debug, Clone, Default)]
pub struct SqliteOptions {
    pub integrity_check: IntegrityCheck,
    /// Caps the file at this many pages (`PRAGMA max_page_count`); writes
    /// past it fail like a full disk. None: no cap.
    pub max_page_count: Option<u64>,
    /// A new file is created 0640 and given to this group (else 0600).
    pub group: Option<u32>,
}

type Shared = Arc<Mutex<Option<Connection>>>;

/// SQLite store: one connection for writes, one for reads (WAL lets readers
/// run while the writer commits).
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Shared,
    reader: Shared,
}

/// Maps a SQLite error to a [`StorageError`] naming the file.
pub(crate) fn map_err(path: &Path, e: rusqlite::Error) -> StorageError {
    let target = path.display().to_string();
    let detail = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StorageError::DiskFull { target, detail },
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StorageError::Corrupt {
            path: path.to_path_buf(),
            detail,
        },
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            StorageError::Open { target, detail }
        }
        Some(ErrorCode::ConstraintViolation) => StorageError::Invalid { target, detail },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StorageError::Unavailable { target, detail }
        }
        _ => StorageError::Database { target, detail },
    }
}

fn lock(m: &Mutex<Option<Connection>>) -> MutexGuard<'_, Option<Connection>> {
    // A panic while holding the lock leaves a usable connection: rusqlite
    // rolls back an open transaction when it is dropped.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, StorageError> {
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StorageError::Open {
        target: path.display().to_string(),
        detail: e.to_string(),
    })?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| map_err(path, e))?;
    Ok(conn)
}

/// Refuses a file that is not a sound SQLite database.
fn check_integrity(
    conn: &Connection,
    path: &Path,
    how: IntegrityCheck,
) -> Result<(), StorageError> {
    let corrupt = |detail: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    // Reading the schema fails with SQLITE_NOTADB on a foreign file.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| match map_err(path, e) {
        StorageError::Corrupt { detail, .. } => corrupt(detail),
        other => other,
    })?;
    let pragma = match how {
        IntegrityCheck::Quick => "PRAGMA quick_check(20)",
        IntegrityCheck::Full => "PRAGMA integrity_check(20)",
        IntegrityCheck::HeaderOnly => return Ok(()),
    };
    let problems: Vec<String> = conn
        .prepare(pragma)
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect())
        .map_err(|e| match map_err(path, e) {
            StorageError::Corrupt { detail, .. } => corrupt(detail),
            other => other,
        })?;
    if problems.len() == 1 && problems[0] == "ok" {
        Ok(())
    } else {
        Err(corrupt(format!("integrity check: {}", problems.join("; "))))
    }
}

fn open_blocking(
    path: &Path,
    opts: &SqliteOptions,
) -> Result<(Connection, Connection), StorageError> {
    if !path.exists()
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Open {
            target: path.display().to_string(),
            detail: format!("cannot create directory {}: {e}", dir.display()),
        })?;
    }
    // Created here, not by SQLite (0644 less the umask): see file_mode.
    let existed = !file_mode::create(path, opts.group)?;
    if let Some(w) = file_mode::world_readable_warning(path) {
        tracing::warn!("{w}");
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut writer = connect(path, flags)?;
    if existed {
        check_integrity(&writer, path, opts.integrity_check)?;
    }
    let mode: String = writer
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| map_err(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::Open {
            target: path.display().to_string(),
            detail: format!(
                "cannot switch to WAL journal (got {mode:?}); is it on a network file system?"
            ),
        });
    }
    // NORMAL: commits are not fsynced (WAL keeps them safe from a process
    // crash); checkpoints are. Checkpointing every 64k pages (256 MB of WAL)
    // instead of SQLite's 1000 copies each hot page once per checkpoint;
    // measured at 10,000 streams it halves the commit backlog.
    // The cache holds the hot leaf page of every stream in both indexes
    // (10,000 streams: about 80 MB); it grows only as pages are used.
    let pragmas = "PRAGMA synchronous = NORMAL;
                   PRAGMA cache_size = -262144;
                   PRAGMA wal_autocheckpoint = 65536;
                   PRAGMA temp_store = MEMORY;";
    writer
        .execute_batch(pragmas)
        .map_err(|e| map_err(path, e))?;
    if let Some(pages) = opts.max_page_count {
        writer
            .pragma_update(
                None,
                "max_page_count",
                i64::try_from(pages).unwrap_or(i64::MAX),
            )
            .map_err(|e| map_err(path, e))?;
    }
    schema::migrate(&mut writer, path)?;
    let reader = connect(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    reader
        .execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -16384;")
        .map_err(|e| map_err(path, e))?;
    Ok((writer, reader))
}

impl SqliteStore {
    /// Opens (or creates) the database file, checks an existing one, and
    /// migrates its schema.
    pub async fn open(path: PathBuf, opts: SqliteOptions) -> Result<Self, StorageError> {
        let p = path.clone();
        let (writer, reader) = tokio::task::spawn_blocking(move || open_blocking(&p, &opts))
            .await
            .map_err(|e| StorageError::Open {
                target: path.display().to_string(),
                detail: format!("open task failed: {e}"),
            })??;
        Ok(SqliteStore {
            path,
            writer: Arc::new(Mutex::new(Some(writer))),
            reader: Arc::new(Mutex::new(Some(reader))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, F>(&self, which: &Shared, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Path) -> Result<T, StorageError> + Send + 'static,
    {
        let conn = which.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = lock(&conn);
            match guard.as_mut() {
                Some(c) => f(c, &path),
                None => Err(StorageError::Unavailable {
                    target: path.display().to_string(),
                    detail: "the store is closed".into(),
                }),
            }
        })
        .await
        .map_err(|e| StorageError::Database {
            target: self.path.display().to_string(),
            detail: format!("storage task failed: {e}"),
        })?
    }

    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Path) -> Result<T, StorageError> + Send + 'static,
    {
        self.run(&self.writer, f).await
    }

    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Path) -> Result<T, StorageError> + Send + 'static,
    {
        self.run(&self.reader, f).await
    }
}

#[async_trait::async_trait]
impl Storage for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn updates(self: Arc<Self>) -> Option<Arc<dyn crate::storage::updates::UpdateStore>> {
        Some(self)
    }

    async fn upsert_sensor(
        &self,
        aor: &str,
        display_name: Option<&str>,
    ) -> Result<Sensor, StorageError> {
        let aor = aor.to_string();
        let name = display_name.map(str::to_string);
        self.write(move |c, p| ops::upsert_sensor(c, p, &aor, name.as_deref()))
            .await
    }

    async fn set_sensor_state(
        &self,
        sensor: SensorId,
        state: SensorState,
    ) -> Result<(), StorageError> {
        self.write(move |c, p| ops::set_sensor_state(c, p, sensor, state))
            .await
    }

    async fn sensors(&self) -> Result<Vec<Sensor>, StorageError> {
        self.read(|c, p| ops::sensors(c, p)).await
    }

    async fn sensor(&self, id: SensorId) -> Result<Option<Sensor>, StorageError> {
        self.read(move |c, p| ops::sensor_where(c, p, "id", &id.0))
            .await
    }

    async fn sensor_by_aor(&self, aor: &str) -> Result<Option<Sensor>, StorageError> {
        let aor = aor.to_string();
        self.read(move |c, p| ops::sensor_where(c, p, "aor", &aor))
            .await
    }

    async fn open_session(&self, session: &NewSession) -> Result<Session, StorageError> {
        let s = session.clone();
        self.write(move |c, p| ops::open_session(c, p, &s)).await
    }

    async fn close_session(&self, id: SessionId, ended_ns: i64) -> Result<(), StorageError> {
        self.write(move |c, p| ops::close_session(c, p, id, ended_ns))
            .await
    }

    async fn session(&self, id: SessionId) -> Result<Option<Session>, StorageError> {
        self.read(move |c, p| ops::session(c, p, id)).await
    }

    async fn sessions(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Session>, StorageError> {
        self.read(move |c, p| ops::sessions(c, p, sensor, from_ns, to_ns))
            .await
    }

    async fn write_batch(&self, batch: &Batch) -> Result<WriteReport, StorageError> {
        // Encoded here, so the blocking task owns its rows without a copy
        // of every reading's values.
        let readings = ops::encode_readings(&batch.readings);
        let late = gap_cuts::late_spans(&batch.readings);
        let rest = Batch {
            readings: Vec::new(),
            gaps: batch.gaps.clone(),
            events: batch.events.clone(),
            seen: batch.seen.clone(),
        };
        self.write(move |c, p| ops::write_batch(c, p, &readings, &rest, &late))
            .await
    }

    async fn record_expired(
        &self,
        sensor: SensorId,
        after_ns: i64,
        before_ns: i64,
    ) -> Result<Option<Gap>, StorageError> {
        self.write(move |c, p| {
            fill::record_declared(c, p, sensor, (after_ns, before_ns), GapCause::Expired)
        })
        .await
    }

    async fn record_unsampled(
        &self,
        sensor: SensorId,
        after_ns: i64,
        before_ns: i64,
    ) -> Result<Option<Gap>, StorageError> {
        self.write(move |c, p| {
            fill::record_declared(c, p, sensor, (after_ns, before_ns), GapCause::Source)
        })
        .await
    }

    async fn committed_through(&self, sensor: SensorId) -> Result<Option<i64>, StorageError> {
        self.read(move |c, p| fill::committed_through(c, p, sensor))
            .await
    }

    async fn committed_through_many(
        &self,
        sensors: &[SensorId],
    ) -> Result<Vec<Option<i64>>, StorageError> {
        // One trip to the reader thread for all of them.
        let sensors = sensors.to_vec();
        self.read(move |c, p| {
            sensors
                .iter()
                .map(|s| fill::committed_through(c, p, *s))
                .collect()
        })
        .await
    }

    async fn close_open_sessions(&self, quiet_since_ns: i64) -> Result<u64, StorageError> {
        self.write(move |c, p| fill::close_open_sessions(c, p, quiet_since_ns))
            .await
    }

    async fn samples(&self, query: &SampleQuery) -> Result<Vec<StoredSample>, StorageError> {
        let q = query.clone();
        self.read(move |c, p| ops::samples(c, p, &q)).await
    }

    async fn gaps(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Gap>, StorageError> {
        self.read(move |c, p| ops::gaps(c, p, sensor, from_ns, to_ns))
            .await
    }

    async fn coverage(&self, query: &CoverageQuery) -> Result<Coverage, StorageError> {
        let q = *query;
        self.read(move |c, p| coverage::coverage(c, p, &q)).await
    }

    async fn events(
        &self,
        sensor: SensorId,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<Event>, StorageError> {
        self.read(move |c, p| ops::events(c, p, sensor, from_ns, to_ns))
            .await
    }

    async fn delete_before(&self, cutoff_ns: i64) -> Result<RetentionReport, StorageError> {
        let ids = self.read(|c, p| ops::sensor_ids(c, p)).await?;
        let mut total = RetentionReport::default();
        for id in ids {
            // One short write transaction per sensor; batches interleave.
            let r = self
                .write(move |c, p| ops::delete_sensor_before(c, p, id, cutoff_ns))
                .await?;
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
        self.read(|c, p| schema::user_version(c, p)).await
    }

    async fn close(&self) -> Result<(), StorageError> {
        let path = self.path.clone();
        let reader = self.reader.clone();
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            drop(lock(&reader).take());
            if let Some(conn) = lock(&writer).take() {
                // Fold the WAL into the main file so the next start (or a
                // copy of the file) needs no recovery.
                conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                    .map_err(|e| map_err(&path, e))?;
                conn.close().map_err(|(_, e)| map_err(&path, e))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StorageError::Database {
            target: self.path.display().to_string(),
            detail: format!("close task failed: {e}"),
        })?
    }
}
