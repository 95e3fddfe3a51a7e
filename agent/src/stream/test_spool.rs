//! Reading back what the sender spooled, for the stream's tests.

use crate::spool::{Record, Spool, SpoolOptions};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A spool of a few MiB in `dir`.
pub(crate) fn open_in(dir: &Path, now: SystemTime) -> Spool {
    let options = SpoolOptions {
        dir: dir.to_owned(),
        max_bytes: 1 << 22,
        max_age: Duration::from_secs(86_400),
    };
    Spool::open(&options, now).expect("open")
}

/// Every sample instant the spool holds, in order, read back through its
/// API.
pub(crate) fn sample_instants(store: &Spool) -> Vec<i64> {
    store
        .read_from(i64::MIN)
        .flat_map(|rec| match rec {
            Record::Samples(s) => {
                let rows = s.values.len() / usize::from(s.channels.max(1));
                (0..rows as i64)
                    .map(|k| s.first_ns + k * i64::from(s.spacing_ns))
                    .collect()
            }
            Record::Edge(_) => Vec::new(),
        })
        .collect()
}
