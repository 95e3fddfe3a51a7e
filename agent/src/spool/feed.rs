//! From the real-time sender to the spool without file I/O, locks or
//! allocation on the sender's side: records are encoded into a buffer
//! made up front and copied into a wait-free SPSC byte ring (`rtrb`, as
//! the commands ring of `stream`); the "spool-writer" thread drains it,
//! appends, and syncs at an interval. When the ring is full the record is
//! counted as dropped and streaming goes on: live data has priority.
//!
//! The writer wakes once per sync interval and writes what gathered in
//! the ring since: a record waits in the ring instead of the page cache,
//! which a power cut empties alike, so the loss bound (the interval) is
//! the same, for one wake, one batch of writes and one fsync per interval
//! (it woke every 50 ms before; docs/benchmarks.md). A fast stream fills
//! the ring sooner: the sender wakes the writer once the ring is half
//! full (`unpark`, a syscall only while the writer sleeps).
//!
//! In the ring: `len:u16 first:i64 last:i64 payload` (the payload as on
//! disk, format.rs), so the writer need not decode to know the instants.

use super::format::{self, MAX_PAYLOAD, SampleRunRef};
use super::{GpioEdge, Spool};
use crate::stoppable::StoppableThread;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime};

/// The ring's size: at 3 channels × 100 Hz (about 800 bytes a second in
/// the ring) a minute, the longest sync interval, fits; faster streams
/// wake the writer when it is half full.
pub const FEED_BYTES: usize = 64 << 10;
const ENTRY_HEAD: usize = 2 + 8 + 8;
/// At most one "fell behind" line this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(60);

/// What both ends share.
#[derive(Debug, Default)]
struct Shared {
    dropped: AtomicU64,
    /// The writer thread, once it runs: the sender wakes it when the ring
    /// is half full.
    writer: OnceLock<Thread>,
}

/// The sender's end.
#[derive(Debug)]
pub struct SpoolFeed {
    ring: rtrb::Producer<u8>,
    scratch: Box<[u8]>,
    /// Free bytes below which the writer is woken.
    wake_below: usize,
    shared: Arc<Shared>,
}

/// The writer's end, until `SpoolWriter::spawn` takes it.
#[derive(Debug)]
pub struct FeedReceiver {
    ring: rtrb::Consumer<u8>,
    shared: Arc<Shared>,
}

/// A feed of `capacity` bytes.
pub fn feed(capacity: usize) -> (SpoolFeed, FeedReceiver) {
    let (tx, rx) = rtrb::RingBuffer::new(capacity);
    let shared = Arc::new(Shared::default());
    (
        SpoolFeed {
            ring: tx,
            scratch: vec![0; ENTRY_HEAD + MAX_PAYLOAD].into_boxed_slice(),
            wake_below: capacity / 2,
            shared: shared.clone(),
        },
        FeedReceiver { ring: rx, shared },
    )
}

impl SpoolFeed {
    /// Hand over `count` rows of samples; `false` when the ring was full
    /// (counted in `dropped`).
    pub fn samples(&mut self, run: &SampleRunRef<'_>) -> bool {
        let rows = run
            .values
            .len()
            .checked_div(usize::from(run.channels))
            .unwrap_or(0);
        let last = run.first_ns.saturating_add(
            (rows.saturating_sub(1) as i64).saturating_mul(i64::from(run.spacing_ns)),
        );
        let n = format::encode_samples(&mut self.scratch[ENTRY_HEAD..], run);
        self.push(n, run.first_ns, last)
    }

    pub fn edge(&mut self, edge: &GpioEdge) -> bool {
        let n = format::encode_edge(&mut self.scratch[ENTRY_HEAD..], edge);
        self.push(n, edge.at_ns, edge.at_ns)
    }

    /// Records not handed over because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn push(&mut self, payload: Option<usize>, first: i64, last: i64) -> bool {
        let Some(n) = payload.and_then(|n| u16::try_from(n).ok()) else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let total = ENTRY_HEAD + usize::from(n);
        self.scratch[0..2].copy_from_slice(&n.to_le_bytes());
        self.scratch[2..10].copy_from_slice(&first.to_le_bytes());
        self.scratch[10..18].copy_from_slice(&last.to_le_bytes());
        let Ok(mut chunk) = self.ring.write_chunk(total) else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.wake_writer();
            return false;
        };
        let (a, b) = chunk.as_mut_slices();
        let split = a.len();
        a.copy_from_slice(&self.scratch[..split]);
        b.copy_from_slice(&self.scratch[split..total]);
        chunk.commit_all();
        if self.ring.slots() < self.wake_below {
            self.wake_writer();
        }
        true
    }

    /// An atomic swap while the writer runs, a futex wake while it
    /// sleeps: never blocks.
    fn wake_writer(&self) {
        if let Some(writer) = self.shared.writer.get() {
            writer.unpark();
        }
    }
}

impl FeedReceiver {
    /// Move every whole entry in the ring into `spool`; how many.
    pub fn drain(&mut self, spool: &mut Spool, buf: &mut Vec<u8>, now: SystemTime) -> usize {
        let mut moved = 0;
        loop {
            let Some(len) = self.peek_len() else {
                return moved;
            };
            let total = ENTRY_HEAD + len;
            let Ok(chunk) = self.ring.read_chunk(total) else {
                return moved;
            };
            buf.clear();
            let (a, b) = chunk.as_slices();
            buf.extend_from_slice(a);
            buf.extend_from_slice(b);
            chunk.commit_all();
            let first = i64::from_le_bytes(buf[2..10].try_into().unwrap_or_default());
            let last = i64::from_le_bytes(buf[10..18].try_into().unwrap_or_default());
            spool.append_payload(&buf[ENTRY_HEAD..], Some((first, last)), now);
            moved += 1;
        }
    }

    /// Whether the sender would wake the writer now.
    fn half_full(&self) -> bool {
        self.ring.slots() > self.ring.buffer().capacity() / 2
    }

    fn peek_len(&mut self) -> Option<usize> {
        let chunk = self.ring.read_chunk(2).ok()?;
        let (a, b) = chunk.as_slices();
        let mut len = [0u8; 2];
        for (dst, src) in len.iter_mut().zip(a.iter().chain(b)) {
            *dst = *src;
        }
        let len = usize::from(u16::from_le_bytes(len));
        // Only whole entries are committed, so the rest is there too.
        (self.ring.slots() >= ENTRY_HEAD + len).then_some(len)
    }
}

/// The thread that writes the feed into the spool and syncs it.
#[derive(Debug)]
pub struct SpoolWriter {
    thread: StoppableThread,
    spool: Arc<Mutex<Spool>>,
    shared: Arc<Shared>,
}

impl SpoolWriter {
    /// Start the "spool-writer" thread; it syncs every `fsync_interval`.
    pub fn spawn(
        spool: Spool,
        feed: FeedReceiver,
        fsync_interval: Duration,
    ) -> std::io::Result<SpoolWriter> {
        let spool = Arc::new(Mutex::new(spool));
        let shared = feed.shared.clone();
        let thread = StoppableThread::spawn("spool-writer", {
            let spool = spool.clone();
            move |stop| write_loop(&spool, feed, fsync_interval, stop)
        })?;
        Ok(SpoolWriter {
            thread,
            spool,
            shared,
        })
    }

    /// The spool, for reading back and releasing (the writer holds the
    /// lock only while it appends or syncs).
    pub fn spool(&self) -> Arc<Mutex<Spool>> {
        self.spool.clone()
    }

    /// Records the sender could not hand over (the ring was full).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Write what is in the ring, sync, end the thread (dropping does
    /// the same).
    pub fn stop(mut self) {
        self.thread.stop();
    }
}

/// Wakes at each sync (every `every`), when the sender finds the ring
/// half full, and to stop; drains the ring at each wake.
fn write_loop(spool: &Mutex<Spool>, mut feed: FeedReceiver, every: Duration, stop: &AtomicBool) {
    let _ = feed.shared.writer.set(std::thread::current());
    let mut buf = Vec::with_capacity(ENTRY_HEAD + MAX_PAYLOAD);
    let mut next_sync = Instant::now() + every;
    let mut dropped_seen = 0;
    let mut dropped_logged: Option<Instant> = None;
    loop {
        // Filled before this thread could be woken: no sleep.
        if !feed.half_full() {
            std::thread::park_timeout(next_sync.saturating_duration_since(Instant::now()));
        }
        let stopping = stop.load(Ordering::Relaxed);
        {
            let mut s = spool.lock().unwrap_or_else(PoisonError::into_inner);
            feed.drain(&mut s, &mut buf, SystemTime::now());
            let now = Instant::now();
            if stopping || now >= next_sync {
                // A no-op when nothing was appended since the last one.
                s.sync();
                next_sync = now + every;
            }
        }
        let dropped = feed.shared.dropped.load(Ordering::Relaxed);
        if dropped > dropped_seen && dropped_logged.is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY) {
            tracing::warn!(
                "spool: the writer fell behind; {} records not spooled so far (live streaming unaffected)",
                dropped
            );
            dropped_seen = dropped;
            dropped_logged = Some(Instant::now());
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Record, SpoolOptions};
    use super::*;

    fn values(k: i32) -> [i32; 30] {
        std::array::from_fn(|i| 1000 + k + i as i32)
    }

    fn run(values: &[i32], k: i64) -> SampleRunRef<'_> {
        SampleRunRef {
            stream: 1,
            first_ns: k * 1_000_000_000,
            spacing_ns: 100_000_000,
            channels: 3,
            values,
        }
    }

    #[test]
    fn a_full_ring_drops_and_counts_instead_of_waiting() {
        let (mut tx, _rx) = feed(1024);
        let v = values(0);
        let accepted = (0..100).filter(|&k| tx.samples(&run(&v, k))).count();
        assert!(accepted > 0 && accepted < 100, "{accepted}");
        assert_eq!(tx.dropped(), 100 - accepted as u64);
    }

    #[test]
    fn the_writer_spools_what_the_feed_hands_over_and_syncs_on_stop() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let options = SpoolOptions {
            dir: dir.path().to_owned(),
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        };
        let spool = Spool::open(&options, SystemTime::now()).expect("open");
        let (mut tx, rx) = feed(FEED_BYTES);
        let writer = SpoolWriter::spawn(spool, rx, Duration::from_secs(3600)).expect("spawn");
        for k in 0..200 {
            let v = values(k as i32);
            assert!(tx.samples(&run(&v, k)));
        }
        let edge = GpioEdge {
            at_ns: 5,
            input: 2,
            level: true,
        };
        assert!(tx.edge(&edge));
        let shared = writer.spool();
        writer.stop();
        let spool = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let stats = spool.stats();
        assert_eq!(stats.records_written, 201);
        assert!(stats.fsyncs >= 1, "synced at stop: {stats:?}");
        let back: Vec<Record> = spool.read_from(i64::MIN).collect();
        assert_eq!(
            back[1],
            Record::Edge(edge),
            "sorted by instant: after run 0 at 0 ns"
        );
        let Record::Samples(last) = &back[200] else {
            panic!("samples last: {:?}", back[200]);
        };
        assert_eq!(last.values, values(199));
        assert_eq!(last.first_ns, 199_000_000_000);
    }

    #[test]
    fn the_writer_syncs_at_its_interval_while_running() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let options = SpoolOptions {
            dir: dir.path().to_owned(),
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        };
        let spool = Spool::open(&options, SystemTime::now()).expect("open");
        let (mut tx, rx) = feed(FEED_BYTES);
        let writer = SpoolWriter::spawn(spool, rx, Duration::from_millis(20)).expect("spawn");
        let v = values(1);
        assert!(tx.samples(&run(&v, 1)));
        let shared = writer.spool();
        let synced = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            let s = shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stats();
            s.records_written == 1 && s.fsyncs >= 1
        });
        assert!(synced, "written and synced without being stopped");
        writer.stop();
    }

    fn writer_with(
        capacity: usize,
        every: Duration,
    ) -> (tempfile::TempDir, SpoolFeed, SpoolWriter) {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let options = SpoolOptions {
            dir: dir.path().to_owned(),
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        };
        let spool = Spool::open(&options, SystemTime::now()).expect("open");
        let (tx, rx) = feed(capacity);
        let writer = SpoolWriter::spawn(spool, rx, every).expect("spawn");
        (dir, tx, writer)
    }

    fn stats(writer: &SpoolWriter) -> crate::spool::SpoolStats {
        writer
            .spool()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats()
    }

    #[test]
    fn the_writer_writes_once_an_interval_not_as_records_come() {
        let (_dir, mut tx, writer) = writer_with(FEED_BYTES, Duration::from_secs(2));
        for k in 0..3 {
            let v = values(k as i32);
            assert!(tx.samples(&run(&v, k)));
            std::thread::sleep(Duration::from_millis(50));
        }
        // Well before the first sync: the records wait in the ring.
        assert_eq!(stats(&writer).records_written, 0);
        let batch = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            let s = stats(&writer);
            s.records_written == 3 && s.fsyncs == 1
        });
        assert!(
            batch,
            "written and synced at the interval: {:?}",
            stats(&writer)
        );
        writer.stop();
    }

    #[test]
    fn a_half_full_ring_wakes_the_writer_before_its_sync() {
        // A sync an hour away: only the sender's wake gets the records out.
        let (_dir, mut tx, writer) = writer_with(2048, Duration::from_secs(3600));
        let v = values(0);
        let mut k = 0;
        while tx.ring.slots() >= 1024 {
            assert!(tx.samples(&run(&v, k)));
            k += 1;
        }
        let woken = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            stats(&writer).records_written == k as u64
        });
        assert!(woken, "{k} records handed over: {:?}", stats(&writer));
        assert_eq!(tx.dropped(), 0);
        writer.stop();
    }
}
