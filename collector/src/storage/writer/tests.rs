//! Writer tests against an in-memory fake store, on tokio's paused clock so
//! batching deadlines are exact.

use super::task::{put_front, take_front};
use super::*;
use crate::stats::StreamsRegistry;
use crate::storage::*;
use std::collections::HashSet;
use std::sync::Mutex;
use tokio::time::{Instant, advance, sleep};

/// Keeps sample keys in a set; can be told to fail.
#[derive(Debug, Default)]
struct FakeStore {
    keys: Mutex<HashSet<(i64, i64, u32)>>,
    batches: Mutex<Vec<usize>>,
    /// Fail this many next writes with a full disk.
    fail_next: Mutex<u32>,
    /// Time each write takes.
    delay: Mutex<Duration>,
    /// (live, resent or backfilled) readings of each write.
    mix: Mutex<Vec<(usize, usize)>>,
}

impl FakeStore {
    fn stored(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
    fn batch_sizes(&self) -> Vec<usize> {
        self.batches.lock().unwrap().clone()
    }
    fn mix(&self) -> Vec<(usize, usize)> {
        self.mix.lock().unwrap().clone()
    }
}

fn nope<T>() -> Result<T, StorageError> {
    Err(StorageError::NotFound("not part of the fake".into()))
}

#[async_trait::async_trait]
impl Storage for FakeStore {
    fn describe(&self) -> String {
        "fake".into()
    }
    async fn upsert_sensor(&self, _: &str, _: Option<&str>) -> Result<Sensor, StorageError> {
        nope()
    }
    async fn set_sensor_state(&self, _: SensorId, _: SensorState) -> Result<(), StorageError> {
        nope()
    }
    async fn sensors(&self) -> Result<Vec<Sensor>, StorageError> {
        nope()
    }
    async fn sensor(&self, _: SensorId) -> Result<Option<Sensor>, StorageError> {
        nope()
    }
    async fn sensor_by_aor(&self, _: &str) -> Result<Option<Sensor>, StorageError> {
        nope()
    }
    async fn open_session(&self, _: &NewSession) -> Result<Session, StorageError> {
        nope()
    }
    async fn close_session(&self, _: SessionId, _: i64) -> Result<(), StorageError> {
        nope()
    }
    async fn session(&self, _: SessionId) -> Result<Option<Session>, StorageError> {
        nope()
    }
    async fn sessions(&self, _: SensorId, _: i64, _: i64) -> Result<Vec<Session>, StorageError> {
        nope()
    }
    async fn write_batch(&self, b: &Batch) -> Result<WriteReport, StorageError> {
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            sleep(delay).await;
        }
        {
            let mut f = self.fail_next.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(StorageError::DiskFull {
                    target: "fake".into(),
                    detail: "database or disk is full".into(),
                });
            }
        }
        if b.readings.iter().any(|r| r.raws.contains(&Some(-1))) {
            return Err(StorageError::Invalid {
                target: "fake".into(),
                detail: "raw -1 refused".into(),
            });
        }
        let mut r = WriteReport::default();
        let mut keys = self.keys.lock().unwrap();
        for s in &b.readings {
            if keys.insert((s.session.0, s.seq, s.index)) {
                r.samples_inserted += s.sample_count();
                if s.source != ReadingSource::Live {
                    r.late_samples_inserted += s.sample_count();
                }
            } else {
                r.samples_duplicate += s.sample_count();
            }
        }
        self.batches.lock().unwrap().push(b.rows());
        let live = b
            .readings
            .iter()
            .filter(|r| r.source == ReadingSource::Live);
        let live = live.count();
        self.mix
            .lock()
            .unwrap()
            .push((live, b.readings.len() - live));
        Ok(r)
    }
    async fn record_expired(
        &self,
        _: SensorId,
        _: i64,
        _: i64,
    ) -> Result<Option<Gap>, StorageError> {
        nope()
    }
    async fn record_unsampled(
        &self,
        _: SensorId,
        _: i64,
        _: i64,
    ) -> Result<Option<Gap>, StorageError> {
        nope()
    }
    async fn committed_through(&self, _: SensorId) -> Result<Option<i64>, StorageError> {
        nope()
    }
    async fn close_open_sessions(&self, _: i64) -> Result<u64, StorageError> {
        nope()
    }
    async fn samples(&self, _: &SampleQuery) -> Result<Vec<StoredSample>, StorageError> {
        nope()
    }
    async fn gaps(&self, _: SensorId, _: i64, _: i64) -> Result<Vec<Gap>, StorageError> {
        nope()
    }
    async fn coverage(&self, _: &CoverageQuery) -> Result<Coverage, StorageError> {
        nope()
    }
    async fn events(&self, _: SensorId, _: i64, _: i64) -> Result<Vec<Event>, StorageError> {
        nope()
    }
    async fn delete_before(&self, _: i64) -> Result<RetentionReport, StorageError> {
        nope()
    }
    async fn schema_version(&self) -> Result<i64, StorageError> {
        nope()
    }
    async fn close(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

fn sample(seq: i64, raw: i64) -> Reading {
    Reading {
        session: SessionId(1),
        sensor: SensorId(1),
        seq,
        index: 0,
        ts_ns: seq * 100_000_000,
        raws: vec![Some(raw)],
        source: crate::storage::ReadingSource::Live,
    }
}

fn setup(config: WriterConfig) -> (Arc<FakeStore>, StorageWriter, Arc<Metrics>) {
    let store = Arc::new(FakeStore::default());
    let metrics = Metrics::new(StreamsRegistry::new());
    let w = StorageWriter::spawn(store.clone(), config, metrics.clone());
    (store, w, metrics)
}

/// Lets the writer task run without moving the paused clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn commits_after_the_flush_interval_not_before() {
    let (store, w, _) = setup(WriterConfig::default());
    let h = w.handle();
    for i in 0..10 {
        h.readings(vec![sample(i, i)]).await.unwrap();
    }
    settle().await;
    advance(Duration::from_millis(90)).await;
    settle().await;
    assert_eq!(store.stored(), 0, "written before the interval");
    advance(Duration::from_millis(15)).await;
    settle().await;
    assert_eq!(store.stored(), 10);
    assert_eq!(store.batch_sizes(), vec![10]);
    w.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn slow_commits_stretch_the_interval_up_to_one_second() {
    let (store, w, _) = setup(WriterConfig::default());
    *store.delay.lock().unwrap() = Duration::from_millis(300);
    let h = w.handle();
    let t0 = Instant::now();
    h.readings(vec![sample(0, 0)]).await.unwrap();
    // Committed from 100 ms to 400 ms.
    sleep(Duration::from_millis(450)).await;
    assert_eq!(store.stored(), 1);
    // Next interval: 4 x 300 ms, capped at 1 s: the row arriving at 450 ms
    // is committed from 1450 ms on, done at 1750 ms.
    h.readings(vec![sample(1, 1)]).await.unwrap();
    sleep_until_ms(t0, 1_700).await;
    assert_eq!(store.stored(), 1, "committed before the stretched interval");
    sleep_until_ms(t0, 1_800).await;
    assert_eq!(store.stored(), 2);
    // Fast commits bring the interval back to 100 ms.
    *store.delay.lock().unwrap() = Duration::ZERO;
    h.readings(vec![sample(2, 2)]).await.unwrap();
    sleep_until_ms(t0, 2_900).await;
    assert_eq!(store.stored(), 3);
    h.readings(vec![sample(3, 3)]).await.unwrap();
    sleep_until_ms(t0, 3_010).await;
    assert_eq!(store.stored(), 4, "interval did not shrink back");
    w.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_commit_does_not_stall_the_receivers() {
    let (store, w, m) = setup(WriterConfig {
        queue_capacity: 8,
        ..WriterConfig::default()
    });
    *store.delay.lock().unwrap() = Duration::from_secs(2);
    let h = w.handle();
    h.readings(vec![sample(0, 0)]).await.unwrap();
    sleep(Duration::from_millis(150)).await; // the commit is running
    // Far more packets than the queue holds arrive during the commit: the
    // task keeps taking them in, so none is refused.
    for i in 1..=200 {
        h.try_submit(Batch {
            readings: vec![sample(i, i)],
            ..Batch::default()
        })
        .unwrap();
        settle().await;
    }
    assert_eq!(store.stored(), 0);
    assert_eq!(m.pending_rows.get(), 201, "in flight + waiting");
    h.flush().await.unwrap();
    assert_eq!(store.stored(), 201);
    w.shutdown().await;
}

async fn sleep_until_ms(t0: Instant, ms: u64) {
    tokio::time::sleep_until(t0 + Duration::from_millis(ms)).await;
}

#[tokio::test(start_paused = true)]
async fn full_batches_are_written_at_once() {
    let (store, w, _) = setup(WriterConfig {
        batch_rows: 100,
        ..WriterConfig::default()
    });
    let h = w.handle();
    for i in 0..250 {
        h.readings(vec![sample(i, i)]).await.unwrap();
    }
    settle().await;
    assert_eq!(store.batch_sizes(), vec![100, 100]);
    sleep(Duration::from_millis(150)).await;
    assert_eq!(store.batch_sizes(), vec![100, 100, 50]);
    w.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn duplicates_are_stored_once_and_counted() {
    let (store, w, m) = setup(WriterConfig::default());
    let h = w.handle();
    h.readings((0..5).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    h.readings((3..8).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    h.flush().await.unwrap();
    assert_eq!(store.stored(), 8);
    assert_eq!(m.samples_stored.get(), 8);
    assert_eq!(m.samples_duplicate.get(), 2);
    let s = w.shutdown().await;
    assert_eq!(s.written.samples_inserted, 8);
    assert_eq!(s.written.samples_duplicate, 2);
}

#[tokio::test(start_paused = true)]
async fn a_full_disk_keeps_rows_and_retries() {
    let (store, w, m) = setup(WriterConfig::default());
    *store.fail_next.lock().unwrap() = 3;
    let h = w.handle();
    h.readings((0..20).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    let e = h.flush().await.unwrap_err();
    assert!(matches!(e, StorageError::DiskFull { .. }), "{e}");
    assert_eq!(store.stored(), 0);
    assert_eq!(m.pending_rows.get(), 20);
    // Retried once per retry_interval: fails at 1 s and 2 s, succeeds at 3 s.
    sleep(Duration::from_millis(2_500)).await;
    assert_eq!(store.stored(), 0);
    sleep(Duration::from_millis(1_000)).await;
    assert_eq!(store.stored(), 20);
    assert_eq!(m.pending_rows.get(), 0);
    assert_eq!(
        m.storage_errors
            .get_or_create(&[("kind", "disk_full")])
            .get(),
        3
    );
    let s = w.shutdown().await;
    assert_eq!(s.failures, 3);
    assert_eq!(s.dropped, 0);
}

#[tokio::test(start_paused = true)]
async fn memory_bound_drops_and_counts() {
    let (store, w, m) = setup(WriterConfig {
        max_pending_rows: 10,
        ..WriterConfig::default()
    });
    *store.fail_next.lock().unwrap() = u32::MAX;
    let h = w.handle();
    h.readings((0..8).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    h.readings((8..12).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    h.readings((12..14).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    settle().await;
    assert_eq!(m.rows_dropped.get(), 4);
    assert_eq!(m.pending_rows.get(), 10);
    *store.fail_next.lock().unwrap() = 0;
    h.flush().await.unwrap();
    assert_eq!(store.stored(), 10);
    w.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_live_room_closes_a_tenth_before_the_memory_bound() {
    // Rows the writer drops after their stream counted them received hold
    // no mark up: the agent would release them. The receive thread refuses
    // live packets while this room is closed, so they show as lost.
    let (store, w, _m) = setup(WriterConfig {
        max_pending_rows: 100,
        ..WriterConfig::default()
    });
    *store.fail_next.lock().unwrap() = u32::MAX;
    let h = w.handle();
    let room = h.live_room().clone();
    assert!(room.open());
    h.readings((0..89).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    settle().await;
    assert!(room.open(), "89 of 100 rows");
    h.readings(vec![sample(89, 89)]).await.unwrap();
    settle().await;
    assert!(!room.open(), "90 of 100: closed with room to spare");
    *store.fail_next.lock().unwrap() = 0;
    h.flush().await.unwrap();
    assert_eq!(store.stored(), 90);
    assert!(room.open(), "written: open again");
    w.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_invalid_row_costs_only_itself() {
    let (store, w, m) = setup(WriterConfig::default());
    let h = w.handle();
    let mut rows: Vec<Reading> = (0..16).map(|i| sample(i, i)).collect();
    rows[11].raws = vec![Some(-1)];
    h.readings(rows).await.unwrap();
    h.flush().await.unwrap();
    assert_eq!(store.stored(), 15);
    assert_eq!(m.rows_dropped.get(), 1);
    w.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_commits_everything_then_refuses_rows() {
    let (store, w, _) = setup(WriterConfig {
        flush_interval: Duration::from_secs(1),
        batch_rows: 1_000_000,
        ..WriterConfig::default()
    });
    let h = w.handle();
    for i in 0..100 {
        h.readings(vec![sample(i, i)]).await.unwrap();
    }
    settle().await;
    assert_eq!(store.stored(), 0);
    let s = w.shutdown().await;
    assert_eq!(store.stored(), 100);
    assert_eq!(s.lost_at_shutdown, 0);
    assert!(matches!(
        h.readings(vec![sample(1, 1)]).await,
        Err(StorageError::WriterClosed)
    ));
    assert!(matches!(
        h.try_submit(Batch::default()),
        Err(StorageError::WriterClosed)
    ));
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_a_dead_store_after_its_timeout() {
    let (store, w, _) = setup(WriterConfig {
        shutdown_timeout: Duration::from_secs(3),
        ..WriterConfig::default()
    });
    *store.fail_next.lock().unwrap() = u32::MAX;
    w.handle()
        .readings((0..7).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    let t0 = Instant::now();
    let s = w.shutdown().await;
    assert_eq!(s.lost_at_shutdown, 7);
    assert!(t0.elapsed() <= Duration::from_secs(3));
}

#[test]
fn take_and_put_front_keep_order() {
    let mut b = Batch {
        readings: (0..5).map(|i| sample(i, i)).collect(),
        seen: vec![(SensorId(1), 1), (SensorId(2), 2)],
        ..Batch::default()
    };
    let front = take_front(&mut b, 6);
    assert_eq!(front.readings.len(), 5);
    assert_eq!(front.seen, vec![(SensorId(1), 1)]);
    assert_eq!(b.rows(), 1);
    put_front(&mut b, front);
    assert_eq!(b.readings[0].seq, 0);
    assert_eq!(b.seen, vec![(SensorId(1), 1), (SensorId(2), 2)]);
}

fn backfilled(seq: i64) -> Reading {
    Reading {
        source: ReadingSource::Backfilled,
        ..sample(1_000_000 + seq, seq)
    }
}

fn late_batch(from: i64, n: i64) -> Batch {
    Batch {
        readings: (from..from + n).map(backfilled).collect(),
        ..Batch::default()
    }
}

#[tokio::test(start_paused = true)]
async fn live_rows_go_first_and_late_ones_fill_only_the_commit_budget() {
    let (store, w, m) = setup(WriterConfig::default());
    let h = w.handle();
    // 1,000 sensors' backfill arrives before the live rows of the interval.
    h.submit(late_batch(0, 5_000)).await.unwrap();
    h.readings((0..100).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    sleep(Duration::from_millis(105)).await;
    // The first commit: every live row, and late rows up to the floor (no
    // commit timed yet).
    assert_eq!(store.mix(), vec![(100, late::LATE_FLOOR)]);
    // The rest follow, interval by interval, while the store keeps up.
    sleep(Duration::from_millis(500)).await;
    assert_eq!(store.stored(), 5_100);
    assert!(
        store
            .mix()
            .iter()
            .all(|&(_, late)| late <= late::LATE_FLOOR)
    );
    assert_eq!(m.samples_stored_late.get(), 5_000);
    assert_eq!(m.samples_stored.get(), 5_100);
    w.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn backfill_beyond_its_bound_is_deferred_and_live_rows_take_its_memory() {
    let (store, w, m) = setup(WriterConfig {
        max_pending_rows: 1_000,
        max_late_rows: 300,
        ..WriterConfig::default()
    });
    *store.delay.lock().unwrap() = Duration::from_secs(2);
    let h = w.handle();
    let room = h.late_room().clone();
    h.submit(late_batch(0, 500)).await.unwrap();
    settle().await;
    assert!(
        !room.open(),
        "300 late rows wait: the receive thread refuses backfill"
    );
    assert_eq!(m.late_rows_deferred.get(), 200);
    // Storage is slow and live rows fill the memory: they take it from
    // the newest late rows, and none of them is dropped.
    h.readings((0..800).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    settle().await;
    assert_eq!(m.rows_dropped.get(), 0);
    assert_eq!(m.late_rows_deferred.get(), 300);
    assert_eq!(m.pending_rows.get(), 1_000);
    *store.delay.lock().unwrap() = Duration::ZERO;
    let summary = w.shutdown().await;
    assert_eq!(summary.late_deferred, 300);
    assert_eq!(summary.dropped, 0);
    assert_eq!(
        store.stored(),
        1_000,
        "800 live and the 200 oldest late rows"
    );
}

#[tokio::test(start_paused = true)]
async fn a_flush_commits_the_late_rows_too() {
    let (store, w, _) = setup(WriterConfig::default());
    let h = w.handle();
    h.submit(late_batch(0, 5_000)).await.unwrap();
    h.flush().await.unwrap();
    assert_eq!(store.stored(), 5_000);
    w.shutdown().await;
}
