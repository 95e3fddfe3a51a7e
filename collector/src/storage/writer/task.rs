//! The writer task. It keeps taking rows from the queue while a commit runs
//! (the commit is a task of its own), so a slow commit never stalls the
//! receivers: rows that arrive meanwhile wait for the next commit.

use super::late::{LateRows, Room};
use super::{CommitWatch, Op, WriterConfig, WriterSummary};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use crate::storage::{Batch, Reading, ReadingSource, Storage, StorageError, WriteReport};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

/// The live rows' room closes this share of `max_pending_rows` before the
/// bound (a tenth: 200,000 rows by default, four 50 ms batches of
/// 1,000,000 samples a second).
const LIVE_MARGIN_DIVISOR: usize = 10;

/// A commit in flight: gives back its rows with the result and duration.
type Commit = JoinHandle<(Batch, Result<WriteReport, StorageError>, Duration)>;

/// A `flush()` caller, answered once rows up to `upto` are resolved.
struct Waiter {
    upto: u64,
    reply: oneshot::Sender<Result<(), StorageError>>,
}

pub(super) struct Task {
    store: Arc<dyn Storage>,
    rx: mpsc::Receiver<Op>,
    metrics: Arc<Metrics>,
    config: WriterConfig,
    /// Live rows (and gaps, events, last-seen times) waiting.
    pending: Batch,
    /// Resent and backfilled readings waiting: behind the live rows.
    late: LateRows,
    /// `unwritten()`, for the receive thread's [`Room`] of live rows.
    unwritten_shared: Arc<AtomicUsize>,
    /// When the oldest pending row arrived.
    first_at: Option<Instant>,
    /// No commit before this instant (after a failure), unless flushed.
    retry_at: Option<Instant>,
    /// Current commit interval (stretched when commits are slow).
    interval: Duration,
    /// Largest chunk to commit; halved to isolate rows the store refuses.
    max_chunk: usize,
    inflight: Option<Commit>,
    inflight_rows: usize,
    /// Rows taken in, and rows resolved (committed, or dropped as invalid),
    /// both counted in arrival order.
    accepted: u64,
    resolved: u64,
    waiters: Vec<Waiter>,
    summary: WriterSummary,
    error_log: RateLimit,
    drop_log: RateLimit,
    defer_log: RateLimit,
    commits: CommitWatch,
}

/// Moves up to `n` rows from the front of `from` into a new batch.
pub(super) fn take_front(from: &mut Batch, n: usize) -> Batch {
    let mut left = n;
    let mut take = |len: usize| {
        let k = len.min(left);
        left -= k;
        k
    };
    let ks = take(from.readings.len());
    let ke = take(from.events.len());
    let kg = take(from.gaps.len());
    let kn = take(from.seen.len());
    Batch {
        readings: from.readings.drain(..ks).collect(),
        events: from.events.drain(..ke).collect(),
        gaps: from.gaps.drain(..kg).collect(),
        seen: from.seen.drain(..kn).collect(),
    }
}

/// Puts `front` back before the rows of `rest`.
pub(super) fn put_front(rest: &mut Batch, mut front: Batch) {
    front.readings.append(&mut rest.readings);
    front.events.append(&mut rest.events);
    front.gaps.append(&mut rest.gaps);
    front.seen.append(&mut rest.seen);
    *rest = front;
}

/// Moves the resent and backfilled readings of `b` out.
fn split_late(b: &mut Batch) -> Vec<Reading> {
    if b.readings.iter().all(|r| r.source == ReadingSource::Live) {
        return Vec::new();
    }
    let (live, late) = std::mem::take(&mut b.readings)
        .into_iter()
        .partition(|r| r.source == ReadingSource::Live);
    b.readings = live;
    late
}

fn append(to: &mut Batch, mut b: Batch) {
    to.readings.append(&mut b.readings);
    to.events.append(&mut b.events);
    to.gaps.append(&mut b.gaps);
    to.seen.append(&mut b.seen);
}

/// Waits for the commit in flight, if any.
async fn finished(c: &mut Option<Commit>) -> (Batch, Result<WriteReport, StorageError>, Duration) {
    match c {
        Some(handle) => {
            let r = handle.await;
            *c = None;
            r.unwrap_or_else(|e| {
                // The commit task panicked: its rows are gone with it.
                (
                    Batch::default(),
                    Err(StorageError::Database {
                        target: "storage writer".into(),
                        detail: format!("commit task failed: {e}"),
                    }),
                    Duration::ZERO,
                )
            })
        }
        None => std::future::pending().await,
    }
}

impl Task {
    pub(super) fn new(
        store: Arc<dyn Storage>,
        rx: mpsc::Receiver<Op>,
        metrics: Arc<Metrics>,
        config: WriterConfig,
        commits: CommitWatch,
    ) -> Self {
        let late_limit = config.max_late_rows.min(config.max_pending_rows / 2).max(1);
        Task {
            store,
            rx,
            metrics,
            interval: config.flush_interval,
            max_chunk: config.batch_rows.max(1),
            late: LateRows::new(late_limit, config.late_commit_budget),
            unwritten_shared: Arc::default(),
            config,
            pending: Batch::default(),
            first_at: None,
            retry_at: None,
            inflight: None,
            inflight_rows: 0,
            accepted: 0,
            resolved: 0,
            waiters: Vec::new(),
            summary: WriterSummary::default(),
            error_log: RateLimit::new(Duration::from_secs(10)),
            drop_log: RateLimit::new(Duration::from_secs(10)),
            defer_log: RateLimit::new(Duration::from_secs(10)),
            commits,
        }
    }

    pub(super) fn late_room(&self) -> Room {
        self.late.room()
    }

    /// Live rows are refused at the receive thread a margin before the
    /// memory bound: batches already on their way (in the queue, in the
    /// receive thread) still fit, and are not dropped here after their
    /// streams counted them received.
    pub(super) fn live_room(&self) -> Room {
        let max = self.config.max_pending_rows;
        Room::new(
            self.unwritten_shared.clone(),
            max - max / LIVE_MARGIN_DIVISOR,
        )
    }

    pub(super) async fn run(mut self) -> WriterSummary {
        loop {
            let deadline = self.deadline();
            tokio::select! {
                op = self.rx.recv() => match op {
                    Some(Op::Rows(b)) => self.absorb(b),
                    Some(Op::Flush(reply)) => {
                        if self.resolved >= self.accepted {
                            let _ = reply.send(Ok(()));
                        } else {
                            self.waiters.push(Waiter { upto: self.accepted, reply });
                        }
                    }
                    Some(Op::Shutdown) | None => break,
                },
                done = finished(&mut self.inflight) => self.commit_done(done),
                () = sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() && self.inflight.is_none() => {}
            }
            self.maybe_commit(false);
        }
        self.finish().await
    }

    /// When the pending rows are due: the current interval after the
    /// oldest, but not before a retry is due.
    fn deadline(&self) -> Option<Instant> {
        let due = self.first_at? + self.interval;
        Some(match self.retry_at {
            Some(r) if r > due => r,
            _ => due,
        })
    }

    fn absorb(&mut self, mut b: Batch) {
        let late = split_late(&mut b);
        if !late.is_empty() {
            let free = self
                .config
                .max_pending_rows
                .saturating_sub(self.unwritten() + b.rows());
            let offered = late.len() as u64;
            let refused = self.late.offer(late, free);
            self.accepted += offered - refused as u64;
            self.defer(refused);
            if !self.late.is_empty() {
                self.first_at.get_or_insert_with(Instant::now);
            }
        }
        let rows = b.rows();
        if rows == 0 {
            self.update_gauge();
            return;
        }
        // Live rows before late ones: the memory late rows hold is theirs.
        let over = (self.unwritten() + rows).saturating_sub(self.config.max_pending_rows);
        if over > 0 {
            let given = self.late.evict(over);
            // Given up is resolved: a flush waits for them no longer.
            self.resolve(given as u64);
            self.defer(given);
        }
        if self.unwritten() + rows > self.config.max_pending_rows {
            self.summary.dropped += rows as u64;
            self.metrics.rows_dropped.inc_by(rows as u64);
            if let Some(held) = self.drop_log.allow(Instant::now()) {
                tracing::error!(
                    pending = self.pending.rows(),
                    "storage is behind or failing: {rows} new rows dropped ({held} similar \
                     messages suppressed); at most {} rows are kept in memory",
                    self.config.max_pending_rows
                );
            }
            self.update_gauge();
            return;
        }
        if self.first_at.is_none() {
            self.first_at = Some(Instant::now());
        }
        self.accepted += rows as u64;
        append(&mut self.pending, b);
        self.update_gauge();
    }

    /// Late rows refused or given up: the agent sends them again, so
    /// this is a delay, not a loss; counted and logged (rate-limited).
    fn defer(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.summary.late_deferred += n as u64;
        self.metrics.late_rows_deferred.inc_by(n as u64);
        if let Some(held) = self.defer_log.allow(Instant::now()) {
            tracing::warn!(
                "storage is busy: {n} resent or backfilled rows deferred ({} waiting), the \
                 agents send them again ({held} similar messages suppressed)",
                self.late.len()
            );
        }
    }

    /// Rows received and not committed: waiting, and in the commit in flight.
    fn unwritten(&self) -> usize {
        self.pending.rows() + self.late.len() + self.inflight_rows
    }

    fn update_gauge(&self) {
        let unwritten = self.unwritten();
        self.unwritten_shared.store(unwritten, Ordering::Relaxed);
        self.metrics.pending_rows.set(unwritten as i64);
    }

    /// Starts a commit when none runs and rows are due: a full chunk, the
    /// interval over, or a flush waiting or `force` (which override a retry
    /// pause).
    fn maybe_commit(&mut self, force: bool) {
        if self.pending.is_empty() && self.late.is_empty() {
            // Nothing due: no deadline to wake up for.
            self.first_at = None;
            return;
        }
        if self.inflight.is_some() {
            return;
        }
        let now = Instant::now();
        let flush = force || !self.waiters.is_empty();
        let paused = self.retry_at.is_some_and(|t| now < t);
        let due =
            self.deadline().is_some_and(|d| now >= d) || self.pending.rows() >= self.max_chunk;
        if !(flush || (due && !paused)) {
            return;
        }
        let mut chunk = take_front(&mut self.pending, self.max_chunk);
        // A flush (or shutdown) wants everything; otherwise late rows fill
        // what the live ones leave of the commit time.
        let room = self.max_chunk.saturating_sub(chunk.rows());
        let quota = if flush {
            room
        } else {
            self.late.quota(chunk.rows()).min(room)
        };
        chunk.readings.extend(self.late.take(quota));
        if self.pending.is_empty() {
            // Late rows left over are due at the next interval.
            self.first_at = (!self.late.is_empty()).then_some(now);
        }
        self.inflight_rows = chunk.rows();
        let store = self.store.clone();
        self.inflight = Some(tokio::spawn(async move {
            let started = Instant::now();
            let r = store.write_batch(&chunk).await;
            (chunk, r, started.elapsed())
        }));
    }

    fn commit_done(
        &mut self,
        (chunk, result, took): (Batch, Result<WriteReport, StorageError>, Duration),
    ) {
        let rows = chunk.rows();
        self.inflight_rows = 0;
        match result {
            Ok(r) => {
                self.metrics.batch_seconds.observe(took.as_secs_f64());
                self.late.on_commit(rows, took);
                self.account(&r);
                self.commits.committed(&chunk);
                self.retry_at = None;
                self.resolve(rows as u64);
                if self.max_chunk == self.config.batch_rows.max(1) {
                    // Commits cost per stream, not per row: when they get
                    // slow, longer intervals amortise them (capped).
                    self.interval = (took * 4).max(self.config.flush_interval).min(
                        self.config
                            .max_flush_interval
                            .max(self.config.flush_interval),
                    );
                }
            }
            Err(e) if e.is_transient() => {
                self.count_error(&e);
                self.put_back(chunk);
                self.first_at.get_or_insert_with(Instant::now);
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
                // Callers of flush() learn that their rows are not stored yet.
                for w in self.waiters.drain(..) {
                    let _ = w.reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                // Invalid data: halve until the refused row stands alone, so
                // one bad row does not cost its whole batch.
                self.count_error(&e);
                if rows <= 1 {
                    self.summary.dropped += rows as u64;
                    self.metrics.rows_dropped.inc_by(rows as u64);
                    tracing::error!("dropped a row the store refuses: {e}; row: {chunk:?}");
                    self.resolve(rows as u64);
                    self.max_chunk = self.config.batch_rows.max(1);
                } else {
                    self.max_chunk = rows / 2;
                    self.put_back(chunk);
                    self.first_at.get_or_insert_with(Instant::now);
                }
            }
        }
        self.update_gauge();
    }

    /// A chunk that was not committed goes back in front, its late rows
    /// in front of the late queue.
    fn put_back(&mut self, mut chunk: Batch) {
        let late = split_late(&mut chunk);
        self.late.put_back(late);
        put_front(&mut self.pending, chunk);
    }

    fn count_error(&mut self, e: &StorageError) {
        self.summary.failures += 1;
        self.metrics
            .storage_errors
            .get_or_create(&[("kind", e.kind())])
            .inc();
    }

    /// `n` more rows are resolved; answers the flush callers they cover.
    fn resolve(&mut self, n: u64) {
        self.resolved += n;
        let resolved = self.resolved;
        let (ready, waiting): (Vec<Waiter>, Vec<Waiter>) =
            self.waiters.drain(..).partition(|w| w.upto <= resolved);
        self.waiters = waiting;
        for w in ready {
            let _ = w.reply.send(Ok(()));
        }
    }

    fn account(&mut self, r: &WriteReport) {
        self.summary.batches += 1;
        self.summary.written.add(r);
        self.metrics.samples_stored.inc_by(r.samples_inserted);
        self.metrics
            .samples_stored_late
            .inc_by(r.late_samples_inserted);
        self.metrics.samples_duplicate.inc_by(r.samples_duplicate);
        self.metrics.events_stored.inc_by(r.events_inserted);
        self.metrics.events_duplicate.inc_by(r.events_duplicate);
        self.metrics.gaps_stored.inc_by(r.gaps_inserted);
    }

    /// Takes in everything queued and commits it, retrying a failing store
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
        loop {
            if self.inflight.is_some() {
                let done = finished(&mut self.inflight).await;
                self.commit_done(done);
            }
            if self.pending.is_empty() && self.late.is_empty() {
                break;
            }
            let now = Instant::now();
            if let Some(t) = self.retry_at.filter(|t| *t > now) {
                if t > give_up {
                    break;
                }
                sleep_until(t).await;
            }
            self.retry_at = None;
            self.maybe_commit(true);
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Err(StorageError::WriterClosed));
        }
        self.summary.lost_at_shutdown = (self.pending.rows() + self.late.len()) as u64;
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
