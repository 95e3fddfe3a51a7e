//! Reading the spool back in instant order. Records are appended in the
//! order the sender produced them, which is instant order only nearly: a
//! GPIO edge is written when it happens, the samples packet around it
//! when its last sample is taken. So a segment is sorted after it is read,
//! and the next segment is read before the current one is finished,
//! which orders every record displaced by less than a segment's length.

use super::Record;
use super::format::{self, Entry, HEADER_LEN, Header};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::path::PathBuf;

/// An iterator over spooled records (see `Spool::read_from`).
#[derive(Debug)]
pub struct Replay {
    /// Segments not yet read, oldest first.
    pending: VecDeque<(u64, PathBuf)>,
    /// The segment being written: a short tail there is a write in
    /// progress, not damage.
    current: Option<u64>,
    from: i64,
    heap: BinaryHeap<Reverse<Keyed>>,
    /// Segments read so far; records carry the number of theirs.
    loaded: u64,
    /// Records appended while reading, in read order (tie-break).
    serial: u64,
    /// The first segment that could not be read (not merely trimmed).
    error: Option<String>,
}

#[derive(Debug)]
struct Keyed {
    first: i64,
    segment: u64,
    serial: u64,
    record: Record,
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Keyed {}

impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.first, self.serial).cmp(&(other.first, other.serial))
    }
}

impl Replay {
    pub(super) fn new(segments: Vec<(u64, PathBuf)>, current: Option<u64>, from: i64) -> Replay {
        Replay {
            pending: segments.into(),
            current,
            from,
            heap: BinaryHeap::new(),
            loaded: 0,
            serial: 0,
            error: None,
        }
    }

    /// Read the next segment into the heap; `false` when none is left.
    fn load_next(&mut self) -> bool {
        let Some((id, path)) = self.pending.pop_front() else {
            return false;
        };
        let segment = self.loaded;
        self.loaded += 1;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            // Trimmed since `read_from` listed it: nothing to read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(e) => {
                tracing::warn!("spool: cannot read {}: {e}; skipped", path.display());
                self.error
                    .get_or_insert_with(|| format!("{}: {e}", path.display()));
                return true;
            }
        };
        if let Err(e) = Header::decode(&bytes) {
            tracing::warn!(
                "spool: segment {} is damaged ({e}); skipped",
                path.display()
            );
            return true;
        }
        let body = bytes.get(HEADER_LEN..).unwrap_or(&[]);
        let (entries, good) = format::scan(body);
        if good < body.len() && self.current != Some(id) {
            tracing::warn!(
                "spool: segment {} is damaged at byte {}; the rest of it ({} bytes) skipped",
                path.display(),
                HEADER_LEN + good,
                body.len() - good
            );
        }
        for entry in entries {
            let Entry::Record(record) = entry else {
                continue;
            };
            let (first, last) = record.span();
            if last < self.from {
                continue;
            }
            self.serial += 1;
            self.heap.push(Reverse(Keyed {
                first,
                segment,
                serial: self.serial,
                record,
            }));
        }
        true
    }
}

impl Replay {
    /// A segment that could not be read: what was returned has a hole.
    /// Damage inside a segment is not an error here (logged, skipped).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl Iterator for Replay {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            // Keep the segment after the smallest record's loaded, so a
            // record displaced across the boundary is still ordered.
            let need = self.heap.peek().map_or(0, |Reverse(k)| k.segment + 2);
            if self.loaded < need || self.heap.is_empty() {
                if self.load_next() {
                    continue;
                }
                if self.heap.is_empty() {
                    return None;
                }
            }
            return self.heap.pop().map(|Reverse(k)| k.record);
        }
    }
}
