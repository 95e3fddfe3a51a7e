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

use super::{Batch, Event, Gap, Sample, SensorId, Storage, StorageError, WriteReport};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

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
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle")
            .field("queued", &(self.capacity - self.tx.capacity()))
            .finish()
    }
}

impl WriterHandle {
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

    pub async fn samples(&self, samples: Vec<Sample>) -> Result<(), StorageError> {
        self.submit(Batch {
            samples,
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
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Flush(tx))
            .await
            .map_err(|_| StorageError::WriterClosed)?;
        rx.await.map_err(|_| StorageError::WriterClosed)?
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
        let handle = WriterHandle {
            tx,
            capacity: config.queue_capacity.max(1),
        };
        let interval = config.flush_interval;
        let task = Task {
            store,
            rx,
            metrics,
            config,
            pending: Batch::default(),
            first_at: None,
            retry_at: None,
            interval,
            summary: WriterSummary::default(),
            error_log: RateLimit::new(Duration::from_secs(10)),
            drop_log: RateLimit::new(Duration::from_secs(10)),
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

struct Task {
    store: Arc<dyn Storage>,
    rx: mpsc::Receiver<Op>,
    metrics: Arc<Metrics>,
    config: WriterConfig,
    pending: Batch,
    /// When the oldest pending row arrived.
    first_at: Option<Instant>,
    /// No write before this instant (after a failure).
    retry_at: Option<Instant>,
    /// Current interval (stretched when commits are slow).
    interval: Duration,
    summary: WriterSummary,
    error_log: RateLimit,
    drop_log: RateLimit,
}

/// Moves up to `n` rows from the front of `from` into a new batch.
fn take_front(from: &mut Batch, n: usize) -> Batch {
    let mut left = n;
    let mut take = |v_len: usize| {
        let k = v_len.min(left);
        left -= k;
        k
    };
    let ks = take(from.samples.len());
    let ke = take(from.events.len());
    let kg = take(from.gaps.len());
    let kn = take(from.seen.len());
    Batch {
        samples: from.samples.drain(..ks).collect(),
        events: from.events.drain(..ke).collect(),
        gaps: from.gaps.drain(..kg).collect(),
        seen: from.seen.drain(..kn).collect(),
    }
}

/// Puts `front` back before the rows of `rest`.
fn put_front(rest: &mut Batch, mut front: Batch) {
    front.samples.append(&mut rest.samples);
    front.events.append(&mut rest.events);
    front.gaps.append(&mut rest.gaps);
    front.seen.append(&mut rest.seen);
    *rest = front;
}

fn append(to: &mut Batch, mut b: Batch) {
    to.samples.append(&mut b.samples);
    to.events.append(&mut b.events);
    to.gaps.append(&mut b.gaps);
    to.seen.append(&mut b.seen);
}

impl Task {
    async fn run(mut self) -> WriterSummary {
        loop {
            let deadline = self.deadline();
            tokio::select! {
                op = self.rx.recv() => match op {
                    Some(Op::Rows(b)) => {
                        self.absorb(b);
                        let ready = self.retry_at.is_none_or(|t| Instant::now() >= t);
                        if ready && self.pending.rows() >= self.config.batch_rows {
                            let _ = self.write_pending(false).await;
                        }
                    }
                    Some(Op::Flush(reply)) => {
                        // An explicit flush ignores the retry pause.
                        let r = self.write_pending(true).await;
                        let _ = reply.send(r);
                    }
                    Some(Op::Shutdown) | None => break,
                },
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let _ = self.write_pending(true).await;
                }
            }
        }
        self.finish().await
    }

    /// When the pending rows must be written: the current interval after
    /// the oldest, but not before a retry is due.
    fn deadline(&self) -> Option<Instant> {
        let first = self.first_at?;
        let due = first + self.interval;
        Some(match self.retry_at {
            Some(r) if r > due => r,
            _ => due,
        })
    }

    fn absorb(&mut self, b: Batch) {
        let rows = b.rows();
        if self.pending.rows() + rows > self.config.max_pending_rows {
            self.summary.dropped += rows as u64;
            self.metrics.rows_dropped.inc_by(rows as u64);
            if let Some(held) = self.drop_log.allow(Instant::now()) {
                tracing::error!(
                    pending = self.pending.rows(),
                    "storage has failed for too long: {rows} new rows dropped \
                     ({held} similar messages suppressed); rows are kept only up to \
                     {} in memory",
                    self.config.max_pending_rows
                );
            }
            return;
        }
        if self.first_at.is_none() {
            self.first_at = Some(Instant::now());
        }
        append(&mut self.pending, b);
        self.metrics.pending_rows.set(self.pending.rows() as i64);
    }

    /// Writes all pending rows in chunks of `batch_rows`. Stops at the first
    /// transient failure, keeping the rest for a retry.
    async fn write_pending(&mut self, forced: bool) -> Result<(), StorageError> {
        if !forced && self.retry_at.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        let started = Instant::now();
        while !self.pending.is_empty() {
            let chunk = take_front(&mut self.pending, self.config.batch_rows.max(1));
            if let Err(e) = self.write_chunk(chunk).await {
                self.metrics.pending_rows.set(self.pending.rows() as i64);
                return Err(e);
            }
        }
        self.interval = (started.elapsed() * 4).max(self.config.flush_interval).min(
            self.config
                .max_flush_interval
                .max(self.config.flush_interval),
        );
        self.first_at = None;
        self.retry_at = None;
        self.metrics.pending_rows.set(0);
        Ok(())
    }

    /// Writes one chunk. Invalid data is split until the bad rows are
    /// isolated, so one bad row does not cost its whole batch.
    async fn write_chunk(&mut self, chunk: Batch) -> Result<(), StorageError> {
        let mut stack = vec![chunk];
        while let Some(b) = stack.pop() {
            let started = Instant::now();
            match self.store.write_batch(&b).await {
                Ok(r) => {
                    self.metrics
                        .batch_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.account(&r);
                }
                Err(e) => {
                    self.summary.failures += 1;
                    self.metrics
                        .storage_errors
                        .get_or_create(&[("kind", e.kind())])
                        .inc();
                    if e.is_transient() {
                        for rest in stack.into_iter().chain(std::iter::once(b)) {
                            put_front(&mut self.pending, rest);
                        }
                        self.retry_at = Some(Instant::now() + self.config.retry_interval);
                        if let Some(held) = self.error_log.allow(Instant::now()) {
                            tracing::error!(
                                pending = self.pending.rows(),
                                "cannot write to {}: {e} ({held} similar messages suppressed); \
                                 retrying every {:?}",
                                self.store.describe(),
                                self.config.retry_interval
                            );
                        }
                        return Err(e);
                    }
                    let rows = b.rows();
                    if rows <= 1 {
                        self.summary.dropped += rows as u64;
                        self.metrics.rows_dropped.inc_by(rows as u64);
                        tracing::error!("dropped a row the store refuses: {e}; row: {b:?}");
                    } else {
                        let mut b = b;
                        let second = b.rows() / 2;
                        let front = take_front(&mut b, second);
                        stack.push(b);
                        stack.push(front);
                    }
                }
            }
        }
        Ok(())
    }

    fn account(&mut self, r: &WriteReport) {
        self.summary.batches += 1;
        self.summary.written.add(r);
        self.metrics.samples_stored.inc_by(r.samples_inserted);
        self.metrics.samples_duplicate.inc_by(r.samples_duplicate);
        self.metrics.events_stored.inc_by(r.events_inserted);
        self.metrics.events_duplicate.inc_by(r.events_duplicate);
        self.metrics.gaps_stored.inc_by(r.gaps_inserted);
    }

    /// Drains the queue and commits everything, retrying a failing store
    /// until `shutdown_timeout`.
    async fn finish(mut self) -> WriterSummary {
        self.rx.close();
        while let Some(op) = self.rx.recv().await {
            match op {
                Op::Rows(b) => self.absorb(b),
                Op::Flush(reply) => {
                    let _ = reply.send(Err(StorageError::WriterClosed));
                }
                Op::Shutdown => {}
            }
        }
        let give_up = Instant::now() + self.config.shutdown_timeout;
        while self.write_pending(true).await.is_err() {
            if Instant::now() + self.config.retry_interval > give_up {
                break;
            }
            tokio::time::sleep(self.config.retry_interval).await;
        }
        self.summary.lost_at_shutdown = self.pending.rows() as u64;
        if self.summary.lost_at_shutdown > 0 {
            tracing::error!(
                "shutting down with {} rows not written to {}",
                self.summary.lost_at_shutdown,
                self.store.describe()
            );
        }
        self.summary
    }
}

#[cfg(test)]
mod tests;
