//! The harness's throw-away PostgreSQL server (`sipsensor_testkit::Postgres`:
//! Debian's binaries on a Unix socket in a temporary directory, no TCP port,
//! stopped and its postmaster killed by PID on drop), with the calls the
//! storage tests and benchmark make.

use sipsensor_testkit::{Postgres, require_postgres};
use std::path::Path;

#[derive(Debug)]
pub struct PgServer(Postgres);

impl PgServer {
    /// Starts a server tuned for tests (no fsync), or returns None (after
    /// saying why) when PostgreSQL is not installed and SIPSENSOR_CI is not set.
    pub fn start() -> Option<PgServer> {
        Self::start_with(false)
    }

    /// Like [`PgServer::start`], with `durable`: fsync and synchronous
    /// commit on, as in production (for benchmarks).
    pub fn start_with(durable: bool) -> Option<PgServer> {
        if !require_postgres() {
            return None;
        }
        match Postgres::start_with(durable) {
            Ok(pg) => Some(PgServer(pg)),
            Err(e) => panic!("cannot start PostgreSQL: {e}"),
        }
    }

    pub fn socket_dir(&self) -> &Path {
        self.0.socket_dir()
    }

    pub fn postmaster_pid(&self) -> Option<i32> {
        self.0.postmaster_pid()
    }

    /// Creates an empty database and returns its URL. The name is a test's
    /// (`samples::stored_once`): made a plain SQL identifier first.
    pub async fn create_db(&self, name: &str) -> String {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        self.0
            .create_db(&name)
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"))
    }

    /// Runs SQL on a database (for tests that tamper with it).
    pub async fn execute(&self, db: &str, sql: &str) {
        self.0
            .psql(db, sql)
            .unwrap_or_else(|e| panic!("psql on {db}: {e}"));
    }
}
