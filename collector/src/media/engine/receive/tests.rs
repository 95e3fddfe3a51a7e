//! The receive thread's marks against the rows it holds or has handed to
//! the writer uncommitted (docs/protocol.md 11.4): built on loopback
//! sockets, driven by its own methods on a blocking thread.

use super::*;
use crate::media::fixtures::{T0_NS, agreed, desc, recovery, setup};
use crate::media::mailbox::mailbox;
use crate::stats::StreamsRegistry;
use crate::storage::sqlite::{SqliteOptions, SqliteStore};
use crate::storage::writer::{StorageWriter, WriterConfig};
use crate::storage::{Gap, GapCause, Reading, ReadingSource, Storage};

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_mark_never_passes_a_loss_gap_still_in_the_threads_batch() {
    // Found in e2e s17 under load: a hole's grace time ended, its loss gap
    // left the stream for this thread's batch, and marks handled before
    // the next flush saw neither: the mark passed it, the agent released
    // the samples, and no backfill could bring them.
    with_acknowledged_stream(|thread, sensor| {
        // The gap left the stream, the next flush has not come yet; storage
        // holds samples far beyond it.
        let gap_from = T0_NS + 1_000_000_000;
        thread.sink.batch.gaps.push(Gap {
            sensor,
            session: Some(SessionId(7)),
            from_ns: gap_from,
            to_ns: gap_from + 400_000_000,
            samples: 3,
            cause: GapCause::Loss,
        });
        let stored = T0_NS + 5_000_000_000;
        thread.on_marks(&[(sensor, Some(stored))], Instant::now());
        let now = Instant::now() + Duration::from_secs(2);
        assert_eq!(marks_sent(thread, now), vec![gap_from]);
        // Handed to the writer, it keeps the cap until it is committed.
        thread.flush_rows();
        thread.on_marks(&[(sensor, Some(stored))], Instant::now());
        let later = now + Duration::from_secs(2);
        assert_eq!(marks_sent(thread, later), vec![gap_from]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_mark_never_passes_a_row_handed_to_the_writer_and_not_yet_committed() {
    // A reordered live packet fills its hole in the stream at once; its
    // row then waits in the writer while later rows are committed. A mark
    // read from storage before the writer answered for the row's batch
    // does not pass it.
    with_acknowledged_stream(|thread, sensor| {
        let row_ns = T0_NS + 1_000_000_000;
        thread.sink.batch.readings.push(Reading {
            session: SessionId(7),
            sensor,
            seq: 3,
            index: 0,
            ts_ns: row_ns,
            raws: vec![Some(1), Some(2)],
            source: ReadingSource::Live,
        });
        thread.flush_rows();
        thread.on_marks(&[(sensor, Some(T0_NS + 5_000_000_000))], Instant::now());
        let now = Instant::now() + Duration::from_secs(2);
        assert_eq!(marks_sent(thread, now), vec![row_ns - 1]);
    })
    .await;
}

/// Runs `f` with a receive thread holding one acknowledged stream, on a
/// blocking thread (it blocks on the writer, as in the collector).
async fn with_acknowledged_stream(f: impl FnOnce(&mut ReceiveThread, SensorId) + Send + 'static) {
    let dir = tempfile::tempdir().unwrap();
    let (writer, metrics) = writer_in(&dir).await;
    let handle = writer.handle();
    tokio::task::spawn_blocking(move || {
        let mut thread = thread_on(handle, metrics);
        let sensor = acknowledged_stream(&mut thread);
        f(&mut thread, sensor);
    })
    .await
    .unwrap();
    writer.shutdown().await;
}

/// A writer on a SQLite store in `dir`, and its metrics.
async fn writer_in(dir: &tempfile::TempDir) -> (StorageWriter, Arc<Metrics>) {
    let store: Arc<dyn Storage> = Arc::new(
        SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let metrics = Metrics::new(StreamsRegistry::new());
    let writer = StorageWriter::spawn(store, WriterConfig::default(), metrics.clone());
    (writer, metrics)
}

/// The committed marks the acknowledged streams send at `now`.
fn marks_sent(thread: &mut ReceiveThread, now: Instant) -> Vec<i64> {
    (thread.acks.values_mut())
        .filter_map(|a| a.poll_send(now))
        .map(|m| i64::try_from(m).unwrap())
        .collect()
}

/// A receive thread on loopback sockets handing rows to `writer`.
fn thread_on(writer: WriterHandle, metrics: Arc<Metrics>) -> ReceiveThread {
    let sockets = (
        UdpSocket::bind("127.0.0.1:0").unwrap(),
        UdpSocket::bind("127.0.0.1:0").unwrap(),
    );
    let (_waker, waker) = UnixDatagram::pair().unwrap();
    let (_commands, inbox) = mailbox();
    let (notices, _notices) = tokio::sync::mpsc::unbounded_channel();
    ReceiveThread::new(
        sockets,
        waker,
        inbox,
        &MediaConfig::default(),
        writer,
        metrics,
        notices,
    )
}

/// Adds an acknowledged stream (backfill agreed); its sensor.
fn acknowledged_stream(thread: &mut ReceiveThread) -> SensorId {
    let registry = StreamsRegistry::new();
    let mut s = setup(&registry, agreed(desc(1, 10)), Some(SessionId(7)), None);
    s.recovery = recovery();
    s.acknowledge = true;
    let sensor = s.sensor;
    thread.add(s, Instant::now()).unwrap();
    sensor
}
