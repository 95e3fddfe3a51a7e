//! A throw-away PostgreSQL 15 server for system tests that run the
//! collector binary: Debian's `initdb` and `pg_ctl` on a Unix socket in a
//! temporary directory (no TCP port), as the `postgres` user when the test
//! runs as root. Stopped on drop, its postmaster killed by PID if need be.

use crate::{HarnessError, io_err};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where Debian puts the binaries; `SIPSENSOR_PG_BINDIR` overrides.
pub const DEFAULT_PG_BINDIR: &str = "/usr/lib/postgresql/15/bin";
/// The socket's port number (part of its file name; no TCP listener).
const PORT: u16 = 5432;

#[derive(Debug)]
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    postmaster: Option<i32>,
}

/// The server binaries, if installed.
pub fn pg_bindir() -> Option<PathBuf> {
    let bin = std::env::var_os("SIPSENSOR_PG_BINDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BINDIR));
    ["initdb", "pg_ctl", "psql"]
        .iter()
        .all(|p| bin.join(p).is_file())
        .then_some(bin)
}

/// Like [`crate::require_tool`] for the PostgreSQL server binaries.
pub fn require_postgres() -> bool {
    if pg_bindir().is_some() {
        return true;
    }
    let why = format!(
        "PostgreSQL server binaries not found in {DEFAULT_PG_BINDIR} \
         (apt-get install postgresql-15, or set SIPSENSOR_PG_BINDIR)"
    );
    if crate::in_ci() {
        panic!("{why} (SIPSENSOR_CI=1: missing tools are failures)");
    }
    eprintln!("SKIPPED: {why}");
    false
}

impl Postgres {
    /// Initialise and start a server tuned for tests (no fsync).
    pub fn start() -> Result<Self, HarnessError> {
        Self::start_with(false)
    }

    /// Like [`Postgres::start`]; `durable` keeps fsync and synchronous
    /// commit on, as in production (for benchmarks).
    pub fn start_with(durable: bool) -> Result<Self, HarnessError> {
        let bin = pg_bindir().ok_or(HarnessError::MissingTool {
            tool: "postgresql-15".into(),
        })?;
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let run_as = root.then(|| "postgres".to_string());
        let dir = tempfile::Builder::new()
            .prefix("sipsensor-pg-")
            .tempdir()
            .map_err(io_err("creating the PostgreSQL directory"))?;
        if root {
            // The server refuses to run as root: hand the directory over.
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .map_err(io_err("chown of the PostgreSQL directory"))?;
            if !status.success() {
                return Err(HarnessError::ToolFailed {
                    tool: "chown".into(),
                    detail: "no postgres user? (apt-get install postgresql-15)".into(),
                });
            }
        }
        let mut pg = Self {
            dir,
            bin,
            run_as,
            postmaster: None,
        };
        pg.run(
            pg.command("initdb")
                .arg("-D")
                .arg(pg.data())
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
                .env("LC_ALL", "C"),
            "initdb",
        )?;
        let speed = if durable {
            ""
        } else {
            "-c fsync=off -c synchronous_commit=off"
        };
        let opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -p {PORT} \
             -c max_connections=100 {speed}",
            pg.socket_dir().display()
        );
        pg.run(
            pg.command("pg_ctl")
                .arg("-D")
                .arg(pg.data())
                .arg("-l")
                .arg(pg.dir.path().join("server.log"))
                .arg("-o")
                .arg(opts)
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        )?;
        let pidfile = std::fs::read_to_string(pg.data().join("postmaster.pid"))
            .map_err(io_err("reading postmaster.pid"))?;
        pg.postmaster = pidfile.lines().next().and_then(|l| l.trim().parse().ok());
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's main process (for CPU accounting in benchmarks).
    pub fn postmaster_pid(&self) -> Option<i32> {
        self.postmaster
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run(&self, cmd: &mut Command, what: &str) -> Result<String, HarnessError> {
        let out = cmd.output().map_err(io_err(what))?;
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            return Err(HarnessError::ToolFailed {
                tool: what.into(),
                detail: format!(
                    "{}\n{}{}\nserver log:\n{log}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The collector's URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres:///{db}?user=postgres&host={}&port={PORT}",
            self.socket_dir().display()
        )
    }

    /// Run SQL with psql on database `db`; its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, HarnessError> {
        self.run(
            self.command("psql")
                .args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-U",
                    "postgres",
                ])
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-p", &PORT.to_string(), "-d", db, "-c", sql]),
            "psql",
        )
    }

    /// Create an empty database; its URL.
    pub fn create_db(&self, name: &str) -> Result<String, HarnessError> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(HarnessError::Invalid {
                what: "database name".into(),
                detail: name.into(),
            });
        }
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(name))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "10", "stop"])
            .output();
        if let Some(pid) = self.postmaster {
            let deadline = Instant::now() + Duration::from_secs(10);
            // SAFETY: kill(2) has no memory effects; signal 0 only probes.
            while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
                unsafe { libc::kill(pid, libc::SIGKILL) };
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
