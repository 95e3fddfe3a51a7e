//! Who may read the database: a new file is created 0600 (the collector's
//! user only), or 0640 with `storage.group` so that group's members (a
//! backup job, a report script) may read it. SQLite gives its -wal and -shm
//! files the database file's mode and owner (`findCreateFileMode` in
//! os_unix.c). An existing file's mode is the operator's choice and is
//! left alone, with a warning when every local user can read it.

use crate::storage::StorageError;
use std::fs::Permissions;
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of a new database without a group.
pub const OWNER_ONLY: u32 = 0o600;
/// Mode of a new database with `storage.group`.
pub const OWNER_AND_GROUP: u32 = 0o640;

/// The id of group `name`, for `storage.group`.
pub fn group_id(name: &str) -> Result<u32, StorageError> {
    let unknown = |detail: String| StorageError::Open {
        target: format!("storage.group {name:?}"),
        detail,
    };
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(unknown("no such group".into())),
        Err(e) => Err(unknown(e.to_string())),
    }
}

/// Creates the empty database file with its mode (and group) before
/// SQLite opens it; an existing file is left as it is. Returns whether
/// the file was created.
pub fn create(path: &Path, group: Option<u32>) -> Result<bool, StorageError> {
    let failed = |e: std::io::Error| StorageError::Open {
        target: path.display().to_string(),
        detail: e.to_string(),
    };
    let mode = if group.is_some() {
        OWNER_AND_GROUP
    } else {
        OWNER_ONLY
    };
    let file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(failed(e)),
    };
    if let Some(gid) = group {
        std::os::unix::fs::fchown(&file, None, Some(gid)).map_err(|e| StorageError::Open {
            target: path.display().to_string(),
            detail: format!("cannot give it to group {gid}: {e}"),
        })?;
    }
    // The umask may have taken bits away; the mode is exactly this.
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(failed)?;
    Ok(true)
}

/// A warning when others (not only owner and group) may read the file.
pub fn world_readable_warning(path: &Path) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.mode() & 0o777;
    (mode & 0o004 != 0).then(|| {
        format!(
            "database {} has mode {mode:03o}: every local user can read the sensors' data; \
             chmod 600 it (640 with storage.group)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn a_new_file_is_owner_only_and_an_old_one_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        assert!(create(&db, None).unwrap());
        assert_eq!(mode(&db), 0o600);
        assert_eq!(world_readable_warning(&db), None);
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&db, b"kept").unwrap();
        assert!(!create(&db, None).unwrap());
        assert_eq!(mode(&db), 0o644);
        assert_eq!(std::fs::read(&db).unwrap(), b"kept");
        let w = world_readable_warning(&db).unwrap();
        assert!(w.contains("mode 644"), "{w}");
    }

    #[test]
    fn with_a_group_the_group_may_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        // Our own primary group: chown to it needs no privilege.
        let gid = nix::unistd::getegid().as_raw();
        assert!(create(&db, Some(gid)).unwrap());
        assert_eq!(mode(&db), 0o640);
        assert_eq!(std::fs::metadata(&db).unwrap().gid(), gid);
        assert!(group_id("no-such-group-sipsensor").is_err());
    }
}
