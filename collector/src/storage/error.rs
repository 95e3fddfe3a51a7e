//! Typed storage errors. Each message says what happened to which database
//! and, where a person must act, what to do.

use std::path::PathBuf;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    #[error("storage URL {url:?} is not valid: {reason}")]
    BadUrl { url: String, reason: String },

    #[error(
        "database file {path} is damaged ({detail}). The collector does not overwrite it. \
         Stop the collector and either restore the file from a backup, or move it aside \
         (mv {path} {path}.damaged) so that an empty database is created on the next start; \
         `sqlite3 {path}.damaged .recover | sqlite3 {path}.recovered` can salvage rows."
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "no space left for {target} ({detail}); samples are kept in memory and retried; \
         free disk space or lower the retention"
    )]
    DiskFull { target: String, detail: String },

    #[error(
        "the database {target} has schema version {found}, newer than this collector \
         knows ({known}); run a newer sipsensor-collector"
    )]
    SchemaTooNew {
        target: String,
        found: i64,
        known: i64,
    },

    #[error("cannot open {target}: {detail}")]
    Open { target: String, detail: String },

    #[error("{target} is unavailable: {detail}")]
    Unavailable { target: String, detail: String },

    #[error("{0} not found")]
    NotFound(String),

    #[error("invalid data for {target}: {detail}")]
    Invalid { target: String, detail: String },

    #[error("{target}: {detail}")]
    Database { target: String, detail: String },

    #[error("the storage writer has stopped")]
    WriterClosed,

    #[error("the storage writer queue is full ({0} operations); the collector is overloaded")]
    Backpressure(usize),
}

impl StorageError {
    /// Short label for metrics (`kind="disk_full"`).
    pub fn kind(&self) -> &'static str {
        match self {
            StorageError::BadUrl { .. } => "bad_url",
            StorageError::Corrupt { .. } => "corrupt",
            StorageError::DiskFull { .. } => "disk_full",
            StorageError::SchemaTooNew { .. } => "schema_too_new",
            StorageError::Open { .. } => "open",
            StorageError::Unavailable { .. } => "unavailable",
            StorageError::NotFound(_) => "not_found",
            StorageError::Invalid { .. } => "invalid",
            StorageError::Database { .. } => "database",
            StorageError::WriterClosed => "writer_closed",
            StorageError::Backpressure(_) => "backpressure",
        }
    }

    /// Whether retrying the same write later can succeed (a full disk gets
    /// space, a server comes back); invalid data never will.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::DiskFull { .. }
                | StorageError::Unavailable { .. }
                | StorageError::Database { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_message_names_file_and_remedy() {
        let e = StorageError::Corrupt {
            path: PathBuf::from("/var/lib/sipsensor/collector.db"),
            detail: "file is not a database".into(),
        };
        let m = e.to_string();
        assert!(m.contains("/var/lib/sipsensor/collector.db is damaged"));
        assert!(m.contains("mv /var/lib/sipsensor/collector.db"));
        assert!(m.contains("backup"));
        assert_eq!(e.kind(), "corrupt");
        assert!(!e.is_transient());
    }

    #[test]
    fn disk_full_is_transient() {
        let e = StorageError::DiskFull {
            target: "x".into(),
            detail: "y".into(),
        };
        assert!(e.is_transient());
        assert_eq!(e.kind(), "disk_full");
    }
}
