//! The storage URL of the config: `sqlite:///var/lib/sipsensor/collector.db`
//! or `postgres://user:password@host:5432/db` (also `postgresql://`, and
//! `postgres:///db?host=/run/postgresql` for a Unix socket).

use super::StorageError;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum StorageUrl {
    /// Path of the SQLite database file.
    Sqlite(PathBuf),
    /// The full PostgreSQL connection URL (may hold a password).
    Postgres(String),
}

impl FromStr for StorageUrl {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, StorageError> {
        let bad = |reason: &str| StorageError::BadUrl {
            url: redact(s),
            reason: reason.to_string(),
        };
        if let Some(rest) = s.strip_prefix("sqlite://") {
            // sqlite:///abs/path -> /abs/path; sqlite://rel.db -> rel.db
            if rest.is_empty() {
                return Err(bad("no file path after sqlite://"));
            }
            if rest.contains('?') || rest.contains('#') {
                return Err(bad("SQLite URLs take no query or fragment"));
            }
            if rest.ends_with('/') {
                return Err(bad("the path names a directory, not a database file"));
            }
            return Ok(StorageUrl::Sqlite(PathBuf::from(rest)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            // Parsed here so a typo is reported at config load, not at first use.
            tokio_postgres::Config::from_str(s).map_err(|e| bad(&e.to_string()))?;
            return Ok(StorageUrl::Postgres(s.to_string()));
        }
        Err(bad(
            "expected sqlite:///path/to/file.db or postgres://user@host/database",
        ))
    }
}

impl TryFrom<String> for StorageUrl {
    type Error = StorageError;

    fn try_from(s: String) -> Result<Self, StorageError> {
        s.parse()
    }
}

/// Replaces a password in a URL with `***` for logs and errors.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let auth_start = scheme_end + 3;
    let rest = &url[auth_start..];
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..host_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..auth_start],
            &userinfo[..colon],
            &url[auth_start + at..]
        ),
        None => url.to_string(),
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageUrl::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            StorageUrl::Postgres(u) => f.write_str(&redact(u)),
        }
    }
}

// Debug must not print the password either.
impl fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            "sqlite:///var/lib/sipsensor/collector.db"
                .parse::<StorageUrl>()
                .unwrap(),
            StorageUrl::Sqlite(PathBuf::from("/var/lib/sipsensor/collector.db"))
        );
        assert_eq!(
            "sqlite://data/c.db".parse::<StorageUrl>().unwrap(),
            StorageUrl::Sqlite(PathBuf::from("data/c.db"))
        );
        assert!("sqlite://".parse::<StorageUrl>().is_err());
        assert!("sqlite:///tmp/".parse::<StorageUrl>().is_err());
        assert!("sqlite:///a.db?mode=ro".parse::<StorageUrl>().is_err());
    }

    #[test]
    fn postgres_urls() {
        let u: StorageUrl = "postgres://sip:secret@db.example.net:5432/sensors"
            .parse()
            .unwrap();
        assert!(matches!(u, StorageUrl::Postgres(_)));
        assert_eq!(
            u.to_string(),
            "postgres://sip:***@db.example.net:5432/sensors"
        );
        assert!(!format!("{u:?}").contains("secret"));
        assert!(
            "postgresql:///sensors?host=/run/postgresql"
                .parse::<StorageUrl>()
                .is_ok()
        );
        assert!(
            "postgres://h/db?sslmode=bogus"
                .parse::<StorageUrl>()
                .is_err()
        );
    }

    #[test]
    fn unknown_scheme_is_explained() {
        let e = "mysql://x/y".parse::<StorageUrl>().unwrap_err().to_string();
        assert!(e.contains("expected sqlite:///"), "{e}");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact("postgres://u:p@h/d"), "postgres://u:***@h/d");
        assert_eq!(redact("postgres://u:p@h"), "postgres://u:***@h");
        assert_eq!(redact("no-scheme"), "no-scheme");
    }
}
