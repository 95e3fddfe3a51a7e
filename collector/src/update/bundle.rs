//! `update publish` (docs/protocol.md 12.5): a bundle is copied into
//! `update.bundle_dir` first, and the copy is what RAUC checks (signature
//! against the keyring, verity format) and what is hashed, so a file
//! changed after the check can never be served as checked. Only then is
//! it renamed to `<sha256>.raucb` and recorded.

mod rauc;

pub use rauc::{BundleInfo, RaucError};

use crate::storage::StorageError;
use crate::storage::updates::{BundleRecord, UpdateStore};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot read bundle {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to the bundle directory {dir}: {source}")]
    Write {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("update.keyring is not set: a bundle's signature cannot be checked")]
    NoKeyring,
    #[error("bundle {path}: {source}")]
    Rauc {
        path: PathBuf,
        #[source]
        source: RaucError,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The file name a bundle is served under.
pub fn file_name(sha256: &str) -> String {
    format!("{sha256}.raucb")
}

/// Whether `s` is a bundle's name as published: 64 lower-case hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Copies `source` to a new file in `dir`, returning its path, SHA-256
/// (lower-case hex) and length.
fn copy_hashing(source: &Path, dir: &Path) -> Result<(PathBuf, String, u64), PublishError> {
    let read_err = |source_err| PublishError::Read {
        path: source.to_path_buf(),
        source: source_err,
    };
    let write_err = |e| PublishError::Write {
        dir: dir.to_path_buf(),
        source: e,
    };
    let mut input = std::fs::File::open(source).map_err(read_err)?;
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let (mut output, partial) = tempfile_in(dir).map_err(write_err)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let copied = (|| loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(write_err)?;
        size += n as u64;
    })()
    .and_then(|()| output.sync_all().map_err(write_err));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((partial, sha256, size))
}

/// A new file `.publish-<pid>-<n>.partial` in `dir`, created exclusively.
fn tempfile_in(dir: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    let pid = std::process::id();
    for n in 0u32.. {
        let path = dir.join(format!(".publish-{pid}-{n}.partial"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary name"))
}

/// Checks `source` and publishes it (see the module's text). Publishing a
/// file already published returns the first record.
pub async fn publish(
    source: &Path,
    dir: &Path,
    keyring: Option<&Path>,
    store: &dyn UpdateStore,
    now_ns: i64,
) -> Result<BundleRecord, PublishError> {
    let keyring = keyring.ok_or(PublishError::NoKeyring)?;
    let (src, d) = (source.to_path_buf(), dir.to_path_buf());
    let (partial, sha256, size) = tokio::task::spawn_blocking(move || copy_hashing(&src, &d))
        .await
        .map_err(|e| PublishError::Write {
            dir: dir.to_path_buf(),
            source: std::io::Error::other(e),
        })??;
    let checked = rauc::info(&partial, keyring).await;
    let info = match checked {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(PublishError::Rauc {
                path: source.to_path_buf(),
                source: e,
            });
        }
    };
    let published = dir.join(file_name(&sha256));
    let write_err = |e| PublishError::Write {
        dir: dir.to_path_buf(),
        source: e,
    };
    std::fs::rename(&partial, &published).map_err(write_err)?;
    // The rename is durable only once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err)?;
    let record = BundleRecord {
        sha256,
        version: info.version,
        compatible: info.compatible,
        size,
        published_ns: now_ns,
    };
    Ok(store.record_bundle(&record).await?)
}

#[cfg(test)]
mod tests;
