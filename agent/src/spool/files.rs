//! The spool's file chores at open: listing segments, reading a header,
//! scanning the newest segment and cutting its torn tail.

use super::SpoolError;
use super::format::{self, Entry, HEADER_LEN, Header, HeaderError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

/// The ids of the segment files in `dir`, ascending.
pub(super) fn segment_ids(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let entries = fs::read_dir(dir).map_err(|source| SpoolError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    let mut ids: Vec<u64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let stem = name.to_str()?.strip_suffix(".seg")?;
            (stem.len() == 16).then(|| u64::from_str_radix(stem, 16).ok())?
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

pub(super) enum HeaderRead {
    Io(io::Error),
    Format(HeaderError),
}

pub(super) fn read_header(path: &Path) -> Result<Header, HeaderRead> {
    let mut b = [0u8; HEADER_LEN];
    let mut f = File::open(path).map_err(HeaderRead::Io)?;
    let mut got = 0;
    while got < HEADER_LEN {
        match f.read(&mut b[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(HeaderRead::Io(e)),
        }
    }
    Header::decode(&b[..got]).map_err(HeaderRead::Format)
}

/// Whether the file holds nothing but zeros (a header the power cut left
/// unwritten; ext4 and f2fs may show the allocated size as zeros).
pub(super) fn is_zeros(path: &Path) -> bool {
    fs::read(path).is_ok_and(|b| b.len() <= 1 << 20 && b.iter().all(|&x| x == 0))
}

/// A segment whose header is unreadable holds nothing we can trust: log
/// it and remove it, so it is not reported at every start.
pub(super) fn skip_damaged(path: &Path, why: &str) {
    tracing::warn!(
        "spool: segment {} is damaged ({why}); skipped and removed",
        path.display()
    );
    let _ = fs::remove_file(path);
}

/// The newest segment, scanned, its torn tail cut, open for appending.
pub(super) struct Tail {
    pub file: File,
    pub len: u64,
    pub span: Option<(i64, i64)>,
    pub released: i64,
}

pub(super) fn open_tail(path: &Path) -> io::Result<Tail> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let body = bytes.get(HEADER_LEN..).unwrap_or(&[]);
    let (entries, good) = format::scan(body);
    let len = (HEADER_LEN + good) as u64;
    if (bytes.len() as u64) > len {
        tracing::warn!(
            "spool: cut a torn tail of {} bytes off {} (a write the power cut interrupted)",
            bytes.len() as u64 - len,
            path.display()
        );
        file.set_len(len)?;
        file.sync_data()?;
    }
    let mut span: Option<(i64, i64)> = None;
    let mut released = i64::MIN;
    for e in &entries {
        match e {
            Entry::Released(at) => released = released.max(*at),
            Entry::Record(r) => {
                let (a, b) = r.span();
                span = Some(span.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
            }
        }
    }
    drop(bytes);
    // Appends go to the end (O_APPEND would too, but the cut must come first).
    io::Seek::seek(&mut file, io::SeekFrom::Start(len))?;
    Ok(Tail {
        file,
        len,
        span,
        released,
    })
}
