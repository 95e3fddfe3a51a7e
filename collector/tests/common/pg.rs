//! A throw-away PostgreSQL server for tests: Debian's `postgresql-15`
//! binaries (`initdb`, `pg_ctl`) run on a Unix socket in a temporary
//! directory (no TCP port at all), as the `postgres` user when the tests run
//! as root. Stopped, and its postmaster killed by PID if need be, on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Where Debian puts the binaries; `SIPSENSOR_PG_BINDIR` overrides.
const DEFAULT_BINDIR: &str = "/usr/lib/postgresql/15/bin";
const PORT: u16 = 5432;

#[derive(Debug)]
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Run the server binaries as this user (root may not run postgres).
    run_as: Option<String>,
    postmaster: Option<i32>,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl PgServer {
    /// Starts a server tuned for tests (no fsync), or returns None (after
    /// saying why) when PostgreSQL is not installed and SIPSENSOR_CI is not set.
    pub fn start() -> Option<PgServer> {
        Self::start_with(false)
    }

    /// Like [`PgServer::start`], with `durable`: fsync and synchronous
    /// commit on, as in production (for benchmarks).
    pub fn start_with(durable: bool) -> Option<PgServer> {
        let bin = std::env::var_os("SIPSENSOR_PG_BINDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BINDIR));
        if !bin.join("initdb").exists() || !bin.join("pg_ctl").exists() {
            super::skip_or_fail(&format!(
                "PostgreSQL server binaries not found in {} (apt-get install postgresql-15, \
                 or set SIPSENSOR_PG_BINDIR)",
                bin.display()
            ));
            return None;
        }
        let run_as = if is_root() {
            match nix::unistd::User::from_name("postgres") {
                Ok(Some(_)) if Path::new("/usr/sbin/runuser").exists() => {
                    Some("postgres".to_string())
                }
                _ => {
                    super::skip_or_fail(
                        "running as root, but there is no `postgres` user or no runuser \
                         to start PostgreSQL with",
                    );
                    return None;
                }
            }
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("sipsensor-pg-")
            .tempdir()
            .expect("temporary directory");
        if let Some(user) = &run_as {
            let u = nix::unistd::User::from_name(user).unwrap().unwrap();
            nix::unistd::chown(dir.path(), Some(u.uid), Some(u.gid)).unwrap();
        }
        let mut server = PgServer {
            dir,
            bin,
            run_as,
            postmaster: None,
        };
        server.init_and_start(durable);
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("/usr/sbin/runuser");
                c.arg("-u").arg(user).arg("--").arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run(&self, mut cmd: Command, what: &str) -> Output {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "{what} failed ({}):\n{}\n{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    fn init_and_start(&mut self, durable: bool) {
        let mut init = self.command("initdb");
        init.arg("-D")
            .arg(self.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .env("LC_ALL", "C");
        self.run(init, "initdb");
        let speed = if durable {
            ""
        } else {
            "-c fsync=off -c synchronous_commit=off"
        };
        let opts = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -p {PORT} \
             -c max_connections=50 {speed}",
            self.socket_dir().display()
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .arg("-o")
            .arg(opts)
            .args(["-w", "-t", "60", "start"]);
        self.run(start, "pg_ctl start");
        let pidfile = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("postmaster.pid after start");
        self.postmaster = pidfile.lines().next().and_then(|l| l.trim().parse().ok());
        assert!(self.postmaster.is_some(), "no PID in postmaster.pid");
    }

    pub fn postmaster_pid(&self) -> Option<i32> {
        self.postmaster
    }

    /// URL of a database on this server.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql:///{db}?user=postgres&host={}&port={PORT}",
            self.socket_dir().display()
        )
    }

    /// Creates an empty database and returns its URL.
    pub async fn create_db(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test server");
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        drop(client);
        let _ = task.await;
        self.url(name)
    }

    /// Runs SQL on a database (for tests that tamper with it).
    pub async fn execute(&self, db: &str, sql: &str) {
        let (client, conn) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls)
            .await
            .expect("connect to the test server");
        let task = tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        let _ = task.await;
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "-t", "10", "stop"]);
        let _ = stop.output();
        // Whatever pg_ctl did, the postmaster we started must be gone.
        if let Some(pid) = self.postmaster {
            let pid = nix::unistd::Pid::from_raw(pid);
            let deadline = Instant::now() + Duration::from_secs(10);
            while nix::sys::signal::kill(pid, None).is_ok() && Instant::now() < deadline {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
