//! The agent's durable sample spool: every sample run and GPIO edge the
//! sender produced, with its instant, in a bounded ring of segment files
//! on the data partition, so what the collector did not commit can be
//! sent again after an outage (issue #15; the sending is crate::backfill,
//! which reads with `read_from` and releases with `release_through`).
//!
//! ```text
//!  rtp-sender ──feed (lock-free byte ring)──► "spool-writer" thread ──► Spool
//!  (no file I/O, no allocation)                appends, fsyncs at an      │
//!                                              interval                  ▼
//!                                  dir/0000000000000001.seg … (format.rs)
//! ```
//!
//! Durability: records are appended with one `write` each and made durable
//! by `sync` (the writer calls it every `spool.fsync_interval_ms`), so a
//! power cut loses at most that interval. What a cut leaves half-written
//! at the end of the newest segment (a torn record, zeros, garbage) is cut
//! off at the next open; only that segment is scanned, the sealed ones'
//! bounds are in their successors' headers, so opening after a crash
//! costs one segment however long the spool is. A damaged sealed segment
//! is skipped from the damage on, with a log line, when it is read.
//!
//! Bounds: the oldest segments go first when the spool is over
//! `max_bytes` or older than `max_age`, and as soon as the collector's
//! committed mark (`release_through`) covers them. The mark is persisted
//! as a record (and in every new segment's header), so it survives a
//! reboot without a file of its own rewritten at every acknowledgement.
//!
//! Failures never stop the sensor: a write that fails (ENOSPC, EIO) is
//! logged once, the record is lost, and the next append tries again.

mod feed;
mod files;
mod format;
mod layouts;
mod replay;
mod ring;
mod runs;

pub use feed::{FEED_BYTES, FeedReceiver, SpoolFeed, SpoolWriter, feed};
pub use format::{HeaderError, SampleRunRef};
pub use layouts::LayoutChannel;
pub use replay::Replay;

use crate::config::spool::SpoolConfig;
use files::{
    HeaderRead, is_zeros, open_tail, read_header, segment_ids, segment_path, skip_damaged,
};
use format::{FRAME_LEN, HEADER_LEN, Header, MAX_PAYLOAD};
use ring::{DropReason, Limits, Ring, Segment};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Consecutive samples of one stream, as the sender packed them: sample
/// `k` (row `k` of `values`) was taken at `first_ns + k × spacing_ns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRun {
    /// Which stream layout the values belong to (`stream::layout_id`).
    pub stream: u32,
    /// ns since the Unix epoch, as the agent stamped it.
    pub first_ns: i64,
    pub spacing_ns: u32,
    pub channels: u8,
    /// Raw values exactly as the payload encodes them (docs/protocol.md
    /// 5.2), `MISSING` included; row-major, `channels` per row.
    pub values: Vec<i32>,
}

impl SampleRun {
    pub fn count(&self) -> usize {
        self.values
            .len()
            .checked_div(usize::from(self.channels))
            .unwrap_or(0)
    }

    fn borrowed(&self) -> format::SampleRunRef<'_> {
        format::SampleRunRef {
            stream: self.stream,
            first_ns: self.first_ns,
            spacing_ns: self.spacing_ns,
            channels: self.channels,
            values: &self.values,
        }
    }
}

/// A GPIO input changed level at `at_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpioEdge {
    pub at_ns: i64,
    /// The GPIO input, in the order of the config's `gpio.inputs`.
    pub input: u16,
    pub level: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Samples(SampleRun),
    Edge(GpioEdge),
}

impl Record {
    /// The earliest and latest instant in it.
    pub fn span(&self) -> (i64, i64) {
        match self {
            Record::Samples(r) => {
                let last =
                    (r.count().saturating_sub(1) as i64).saturating_mul(i64::from(r.spacing_ns));
                (r.first_ns, r.first_ns.saturating_add(last))
            }
            Record::Edge(e) => (e.at_ns, e.at_ns),
        }
    }
}

/// Where the spool lives and how big it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub max_age: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spool segment {path}: {source}")]
    Segment {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the spool writer thread: {source}")]
    Thread {
        #[source]
        source: io::Error,
    },
    #[error("spool segment {path}: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: HeaderError,
    },
}

/// What the spool holds and has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    pub bytes_on_disk: u64,
    pub bytes_written: u64,
    pub records_written: u64,
    pub segments: usize,
    /// Records lost to failed writes (full disk, I/O errors).
    pub records_lost: u64,
    pub write_errors: u64,
    pub fsyncs: u64,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    ring: Ring,
    /// The segment being written; `None` after a failure (the next append
    /// starts a new one).
    file: Option<File>,
    stats: SpoolStats,
    /// A write failed and has not worked since (log once, not per record).
    failing: bool,
    /// Written since the last sync: a sync without it is skipped.
    unsynced: bool,
    /// Frame and payload of one record, reused.
    scratch: Vec<u8>,
    /// The newest instant of any segment dropped (released, too old or
    /// over the size); `i64::MIN` when none is known.
    dropped_through: i64,
    /// Layout numbers already in the layouts file.
    layouts: HashMap<u32, Vec<LayoutChannel>>,
    /// Where earlier runs of the agent ended (runs.rs), oldest first.
    run_ends: Vec<i64>,
}

impl Spool {
    /// Open the spool in `options.dir` (created if missing), cutting a torn
    /// tail off the newest segment. `now` decides what is already too old.
    pub fn open(options: &SpoolOptions, now: SystemTime) -> Result<Spool, SpoolError> {
        let dir = options.dir.clone();
        fs::create_dir_all(&dir).map_err(|source| SpoolError::Dir {
            path: dir.clone(),
            source,
        })?;
        let ids = segment_ids(&dir)?;
        let mut headers = Vec::with_capacity(ids.len());
        for id in ids {
            let path = segment_path(&dir, id);
            match read_header(&path) {
                Ok(h) if h.id == id => headers.push(h),
                // Created, but its header never made it to the disk (a
                // full disk, or a power cut right after the creation).
                Err(HeaderRead::Format(HeaderError::NotSegment))
                    if fs::metadata(&path).is_ok_and(|m| m.len() < HEADER_LEN as u64)
                        || is_zeros(&path) =>
                {
                    let _ = fs::remove_file(&path);
                }
                Ok(_) => skip_damaged(&path, "its header names another segment"),
                Err(HeaderRead::Format(HeaderError::Future(v))) => {
                    return Err(SpoolError::Format {
                        path,
                        source: HeaderError::Future(v),
                    });
                }
                Err(HeaderRead::Format(e)) => skip_damaged(&path, &e.to_string()),
                Err(HeaderRead::Io(source)) => return Err(SpoolError::Segment { path, source }),
            }
        }
        let mut released = headers.iter().map(|h| h.released).max().unwrap_or(i64::MIN);
        // The oldest remaining segment's header bounds the one dropped
        // before it, if any was.
        let dropped_through = headers.first().map_or(i64::MIN, |h| h.prev_max);
        let mut segments = Vec::with_capacity(headers.len());
        for (i, h) in headers.iter().enumerate() {
            let path = segment_path(&dir, h.id);
            let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            // The successor's header bounds this one, if it follows on.
            let span = headers
                .get(i + 1)
                .filter(|n| n.id == h.id + 1 && n.prev_min <= n.prev_max)
                .map(|n| (n.prev_min, n.prev_max));
            segments.push(Segment {
                id: h.id,
                bytes,
                span,
            });
        }
        let mut file = None;
        if let Some(last) = segments.last_mut() {
            let path = segment_path(&dir, last.id);
            let tail = open_tail(&path).map_err(|source| SpoolError::Segment {
                path: path.clone(),
                source,
            })?;
            last.bytes = tail.len;
            last.span = tail.span;
            released = released.max(tail.released);
            file = Some(tail.file);
        }
        let limits = Limits {
            max_bytes: options.max_bytes,
            max_age_ns: i64::try_from(options.max_age.as_nanos()).unwrap_or(i64::MAX),
        };
        let run_end = segments
            .iter()
            .filter_map(|s| s.span)
            .map(|(_, max)| max)
            .max()
            .or((released != i64::MIN).then_some(released));
        let run_ends = runs::note_run_end(&dir, run_end, released);
        let mut spool = Spool {
            dir,
            ring: Ring::new(limits, segments, released),
            file,
            stats: SpoolStats::default(),
            failing: false,
            unsynced: false,
            scratch: Vec::with_capacity(FRAME_LEN + MAX_PAYLOAD),
            dropped_through,
            layouts: layouts::read(&options.dir),
            run_ends,
        };
        spool.trim(now);
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append `record`; it is durable after the next `sync`. A failed write
    /// is counted and logged once; the spool carries on.
    pub fn append(&mut self, record: &Record, now: SystemTime) {
        let mut payload = [0u8; MAX_PAYLOAD];
        let n = match record {
            Record::Samples(r) => format::encode_samples(&mut payload, &r.borrowed()),
            Record::Edge(e) => format::encode_edge(&mut payload, e),
        };
        match n {
            Some(n) => self.append_payload(&payload[..n], Some(record.span()), now),
            // More values than a packet can carry: not from the sender.
            None => self.stats.records_lost += 1,
        }
    }

    /// Append an encoded payload (from the feed) holding instants `span`
    /// (`None`: a release mark, which holds no samples).
    fn append_payload(&mut self, payload: &[u8], span: Option<(i64, i64)>, now: SystemTime) {
        let rotate = self
            .ring
            .should_rotate(span.unwrap_or((i64::MIN, i64::MIN)));
        if (self.file.is_none() || rotate) && !self.rotate() {
            self.stats.records_lost += 1;
            return;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&format::frame(payload));
        self.scratch.extend_from_slice(payload);
        let Some(file) = self.file.as_mut() else {
            self.stats.records_lost += 1;
            return;
        };
        match file.write_all(&self.scratch) {
            Ok(()) => {
                let n = self.scratch.len() as u64;
                self.ring.appended(n, span);
                self.stats.bytes_written += n;
                self.stats.records_written += 1;
                self.unsynced = true;
                self.recovered();
            }
            Err(e) => {
                self.stats.records_lost += 1;
                self.failed(&e);
                // Cut what part of the record reached the file, so the
                // segment stays a sequence of whole records.
                let good = self.ring.current().map_or(0, |s| s.bytes);
                let cut = self.file.as_mut().is_some_and(|f| {
                    f.set_len(good).is_ok() && io::Seek::seek(f, io::SeekFrom::Start(good)).is_ok()
                });
                if !cut {
                    self.file = None;
                }
            }
        }
        self.trim(now);
    }

    /// Make everything appended so far durable; nothing to do (no fsync)
    /// when nothing was appended since the last time.
    pub fn sync(&mut self) {
        let Some(file) = self.file.as_ref() else {
            return;
        };
        if !self.unsynced {
            return;
        }
        match file.sync_data() {
            Ok(()) => {
                self.stats.fsyncs += 1;
                self.unsynced = false;
            }
            Err(e) => self.failed(&e),
        }
    }

    /// The collector has committed everything through `at`: the spool may
    /// drop it. The mark is durable after the next `sync`.
    pub fn release_through(&mut self, at: i64, now: SystemTime) {
        if !self.ring.release(at) {
            return;
        }
        let mut payload = [0u8; 16];
        if let Some(n) = format::encode_released(&mut payload, at) {
            self.append_payload(&payload[..n], None, now);
        }
    }

    /// The collector's committed mark; `i64::MIN` when none is known.
    pub fn released(&self) -> i64 {
        self.ring.released()
    }

    /// The earliest instant the spool still holds.
    pub fn oldest(&self) -> Option<i64> {
        self.ring.oldest()
    }

    pub fn newest(&self) -> Option<i64> {
        self.ring.newest()
    }

    /// The newest instant the spool has dropped a segment up to, for any
    /// reason; `None` when it has dropped nothing it knows the span of.
    /// Above the collector's mark, that is data it will never get
    /// (docs/protocol.md 11.7 step 3).
    pub fn dropped_through(&self) -> Option<i64> {
        (self.dropped_through != i64::MIN).then_some(self.dropped_through)
    }

    /// Note which channels samples filed under layout `id` have, so
    /// backfill can place them under a later description. Written once
    /// per layout; a failure is logged and only costs that placing.
    pub fn remember_layout(&mut self, id: u32, channels: &[LayoutChannel]) {
        if self.layouts.get(&id).is_some_and(|c| c == channels) {
            return;
        }
        match layouts::append(&self.dir, id, channels) {
            Ok(()) => {
                self.layouts.insert(id, channels.to_vec());
            }
            Err(e) => tracing::warn!(
                "spool: cannot write {}: {e}; samples of this channel layout cannot be backfilled under another one",
                self.dir.join(layouts::FILE).display()
            ),
        }
    }

    /// Where the agent's earlier runs ended (their newest durable
    /// instants, oldest first): from each to the next run's first record
    /// it was not running (docs/protocol.md 11.7 step 4).
    pub fn run_ends(&self) -> &[i64] {
        &self.run_ends
    }

    /// The channels of every layout remembered.
    pub fn layouts(&self) -> &HashMap<u32, Vec<LayoutChannel>> {
        &self.layouts
    }

    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            bytes_on_disk: self.ring.bytes(),
            segments: self.ring.segments().count(),
            ..self.stats
        }
    }

    /// Every record whose last instant is at or after `from`, in order of
    /// first instant, across segments. Reads the files as they are now
    /// (records appended later may or may not be seen).
    pub fn read_from(&self, from: i64) -> Replay {
        let segments = self
            .ring
            .segments()
            .filter(|s| s.span.is_none_or(|(_, max)| max >= from))
            .map(|s| (s.id, segment_path(&self.dir, s.id)))
            .collect();
        let current = self.ring.current().map(|s| s.id);
        Replay::new(segments, current, from)
    }

    /// Seal the current segment and start the next, its header carrying
    /// the sealed one's bounds and the mark. `false` when it failed.
    fn rotate(&mut self) -> bool {
        let (prev_min, prev_max) = self
            .ring
            .current()
            .and_then(|s| s.span)
            .unwrap_or((i64::MIN, i64::MIN));
        if let Some(old) = self.file.take() {
            // The bounds in the new header must not outlive the records.
            if let Err(e) = old.sync_data() {
                self.failed(&e);
            }
        }
        let id = self.ring.next_id();
        let path = segment_path(&self.dir, id);
        let header = Header {
            id,
            prev_min,
            prev_max,
            released: self.ring.released(),
        }
        .encode();
        let created = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&header).map(|()| f));
        match created {
            Ok(f) => {
                // The new name must survive a power cut with its data.
                if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
                    self.failed(&e);
                }
                self.ring.opened(id, HEADER_LEN as u64);
                self.stats.bytes_written += HEADER_LEN as u64;
                self.unsynced = true;
                self.file = Some(f);
                true
            }
            Err(e) => {
                // The file stays: the next attempt truncates and reuses it
                // (an open that finds it short removes it).
                self.failed(&e);
                false
            }
        }
    }

    fn trim(&mut self, now: SystemTime) {
        let now_ns = unix_ns(now);
        for (segment, reason) in self.ring.trim(now_ns) {
            if let Some((_, max)) = segment.span {
                self.dropped_through = self.dropped_through.max(max);
            }
            let path = segment_path(&self.dir, segment.id);
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!("spool: cannot delete {}: {e}", path.display());
            }
            match (reason, segment.span) {
                (DropReason::Released, _) => {}
                (DropReason::Expired, Some((a, b))) => tracing::info!(
                    "spool: dropped samples from {a} to {b} ns, older than spool.max_age and not acknowledged"
                ),
                (DropReason::Full, Some((a, b))) => tracing::info!(
                    "spool: dropped samples from {a} to {b} ns to stay under spool.max_bytes, not acknowledged"
                ),
                (_, None) => tracing::info!(
                    "spool: dropped segment {} of unknown span to stay under spool.max_bytes",
                    path.display()
                ),
            }
        }
    }

    fn failed(&mut self, e: &io::Error) {
        self.stats.write_errors += 1;
        if !self.failing {
            self.failing = true;
            tracing::warn!(
                "spool: cannot write to {}: {e}; streaming goes on live, samples are not spooled until writing works again",
                self.dir.display()
            );
        }
    }

    fn recovered(&mut self) {
        if self.failing {
            self.failing = false;
            tracing::info!(
                "spool: writing to {} again after {} lost records",
                self.dir.display(),
                self.stats.records_lost
            );
        }
    }
}

/// Open the spool `config` names and start its writer thread: the feed
/// goes to the sender. Opening reads one segment (at most 4 MiB).
pub fn start(config: &SpoolConfig) -> Result<(SpoolFeed, SpoolWriter), SpoolError> {
    let options = SpoolOptions {
        dir: config.dir.clone(),
        max_bytes: config.max_bytes,
        max_age: config.max_age,
    };
    let spool = Spool::open(&options, SystemTime::now())?;
    let s = spool.stats();
    tracing::info!(
        "spool: {} holds {} bytes in {} segments (oldest {}, committed through {}); fsync every {} ms",
        config.dir.display(),
        s.bytes_on_disk,
        s.segments,
        spool.oldest().map_or("none".into(), |t| t.to_string()),
        match spool.released() {
            i64::MIN => "nothing yet".into(),
            t => t.to_string(),
        },
        config.fsync_interval.as_millis()
    );
    let (tx, rx) = feed(FEED_BYTES);
    let writer = SpoolWriter::spawn(spool, rx, config.fsync_interval)
        .map_err(|source| SpoolError::Thread { source })?;
    Ok((tx, writer))
}

/// ns since the Unix epoch (negative before it).
pub fn unix_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

#[cfg(test)]
mod tests;
