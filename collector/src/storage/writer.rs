//! The batching writer: one task between the receivers and the store.
//!
//! Receivers hand over rows without waiting for the database; the task
//! groups them and commits a batch when `batch_rows` rows are waiting or
//! the interval since the first of them arrived is over, whichever comes
//! first. The interval is `flush_interval` (100 ms by default); when commits
//! get slow it stretches to four times the last commit's duration, never
//! beyond `max_flush_interval` (1 s). Why: a commit costs about one page
//! write per stream and index whatever the number of rows (SQLite's WAL
//! logs whole pages), so with 10,000 streams 100 ms batches cost 2.5 times
//! the CPU of 1 s batches. A crash loses at most the rows of the current
//! interval (and of a commit in progress).
//!
//! When the store fails (full disk, server gone) the rows stay in memory up
//! to `max_pending_rows` and the batch is retried every `retry_interval`;
//! past that bound new rows are counted as dropped. Either way the error is
//! logged (rate-limited) and counted, and the rest of the collector keeps
//! running.
//!
//! Live rows come first: resent and backfilled readings wait in a queue of
//! their own and go into a commit only as far as the commit time allows
//! (`late`), so 1,000 sensors backfilling at once never cost live rows.

use super::{Batch, Event, Gap, Reading, SensorId, Storage, StorageError, WriteReport};
use crate::metrics::Metrics;
pub use commits::CommitWatch;
pub use late::Room;
use std::sync::Arc;
use std::time::Duration;
use task::Task;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Time a row waits before its batch is committed, when commits are fast.
    pub flush_interval: Duration,
    /// Longest time a row waits, however slow commits are (<= 1 s).
    pub max_flush_interval: Duration,
    /// Rows per transaction.
    pub batch_rows: usize,
    /// Rows kept in memory while the store fails.
    pub max_pending_rows: usize,
    /// Operations queued between receivers and the writer task.
    pub queue_capacity: usize,
    /// Pause before retrying a failed batch.
    pub retry_interval: Duration,
    /// How long shutdown keeps retrying a failing store.
    pub shutdown_timeout: Duration,
    /// Resent and backfilled rows kept waiting at most (at most half of
    /// `max_pending_rows`); beyond, backfill is refused until they are
    /// committed (see `late`).
    pub max_late_rows: usize,
    /// Longest a commit that carries late rows should take: they fill
    /// what the live rows leave of it.
    pub late_commit_budget: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            flush_interval: Duration::from_millis(100),
            max_flush_interval: Duration::from_secs(1),
            batch_rows: 500_000,
            max_pending_rows: 2_000_000,
            queue_capacity: 65_536,
            retry_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(10),
            max_late_rows: 200_000,
            late_commit_budget: Duration::from_millis(250),
        }
    }
}

enum Op {
    Rows(Batch),
    Flush(oneshot::Sender<Result<(), StorageError>>),
    Shutdown,
}

/// Cheap, cloneable handle for submitting rows.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Op>,
    capacity: usize,
    commits: CommitWatch,
    late_room: Room,
    live_room: Room,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle")
            .field("queued", &(self.capacity - self.tx.capacity()))
            .finish()
    }
}

impl WriterHandle {
    /// The sensors each commit touched, for acknowledgements.
    pub fn commits(&self) -> &CommitWatch {
        &self.commits
    }

    /// Whether resent and backfilled rows are taken now (the receive
    /// thread refuses backfill packets while they are not).
    pub fn late_room(&self) -> &Room {
        &self.late_room
    }

    /// Whether the writer's memory takes live rows now: when it does not,
    /// the receive thread refuses live packets undecoded, so each stream
    /// sees them lost (NACKed, then a loss gap that holds the mark until
    /// backfill brings them) instead of handing rows the writer would
    /// drop after the stream counted them received.
    pub fn live_room(&self) -> &Room {
        &self.live_room
    }

    /// Queues rows, waiting while the queue is full.
    pub async fn submit(&self, batch: Batch) -> Result<(), StorageError> {
        self.tx
            .send(Op::Rows(batch))
            .await
            .map_err(|_| StorageError::WriterClosed)
    }

    /// Queues rows without waiting (for code that must not block, such as
    /// a packet receive loop). Fails when the queue is full.
    pub fn try_submit(&self, batch: Batch) -> Result<(), StorageError> {
        self.tx.try_send(Op::Rows(batch)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StorageError::Backpressure(self.capacity),
            mpsc::error::TrySendError::Closed(_) => StorageError::WriterClosed,
        })
    }

    pub async fn readings(&self, readings: Vec<Reading>) -> Result<(), StorageError> {
        self.submit(Batch {
            readings,
            ..Batch::default()
        })
        .await
    }

    pub async fn events(&self, events: Vec<Event>) -> Result<(), StorageError> {
        self.submit(Batch {
            events,
            ..Batch::default()
        })
        .await
    }

    pub async fn gap(&self, gap: Gap) -> Result<(), StorageError> {
        self.submit(Batch {
            gaps: vec![gap],
            ..Batch::default()
        })
        .await
    }

    pub async fn seen(&self, sensor: SensorId, at_ns: i64) -> Result<(), StorageError> {
        self.submit(Batch {
            seen: vec![(sensor, at_ns)],
            ..Batch::default()
        })
        .await
    }

    /// Returns once every row submitted before is committed, or with the
    /// error that keeps them from being committed now.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.flush_later()
            .await?
            .await
            .map_err(|_| StorageError::WriterClosed)?
    }

    /// [`Self::flush`] without waiting for it: the receiver gets the
    /// answer once every row submitted before is committed.
    pub async fn flush_later(
        &self,
    ) -> Result<oneshot::Receiver<Result<(), StorageError>>, StorageError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Flush(tx))
            .await
            .map_err(|_| StorageError::WriterClosed)?;
        Ok(rx)
    }
}

/// What the writer did over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterSummary {
    pub written: WriteReport,
    pub batches: u64,
    pub failures: u64,
    /// Rows dropped for the memory bound or invalid data.
    pub dropped: u64,
    /// Resent or backfilled rows refused for the late rows' bound, or
    /// given up for live rows' memory: never committed, so the agent
    /// sends them again (docs/protocol.md 11.7).
    pub late_deferred: u64,
    /// Rows still uncommitted when shutdown gave up.
    pub lost_at_shutdown: u64,
}

/// The writer task and its handle.
#[derive(Debug)]
pub struct StorageWriter {
    handle: WriterHandle,
    task: JoinHandle<WriterSummary>,
}

impl StorageWriter {
    pub fn spawn(store: Arc<dyn Storage>, config: WriterConfig, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let commits = CommitWatch::default();
        let task = Task::new(store, rx, metrics, config.clone(), commits.clone());
        let handle = WriterHandle {
            tx,
            capacity: config.queue_capacity.max(1),
            commits,
            late_room: task.late_room(),
            live_room: task.live_room(),
        };
        StorageWriter {
            handle,
            task: tokio::spawn(task.run()),
        }
    }

    pub fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    /// Stops accepting rows, commits everything queued (retrying a failing
    /// store for up to `shutdown_timeout`) and returns the summary.
    pub async fn shutdown(self) -> WriterSummary {
        // If the task is gone already, the join below reports it.
        let _ = self.handle.tx.send(Op::Shutdown).await;
        drop(self.handle);
        match self.task.await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("storage writer task failed: {e}");
                WriterSummary::default()
            }
        }
    }
}

mod commits;
mod late;
mod task;
#[cfg(test)]
mod tests;
