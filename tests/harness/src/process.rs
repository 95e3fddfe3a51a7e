//! A child process in its own process group, logged to a file, stopped by
//! its PID (the group's ID) when the guard drops.

use crate::{HarnessError, io_err};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Poll interval while waiting for a process.
const POLL: Duration = Duration::from_millis(20);
/// Lines of log quoted when a test fails.
const TAIL_LINES: usize = 80;

#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
    log_path: PathBuf,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Start `command` with stdout and stderr appended to `log_path`, in a
    /// new process group so that its own children are stopped with it.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> Result<Self, HarnessError> {
        let log =
            File::create(log_path).map_err(io_err(format!("creating {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(io_err(format!("opening {}", log_path.display())))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(io_err(format!("starting {name} ({command:?})")))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log_path: log_path.to_path_buf(),
            status: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }

    /// The exit status, if it has exited (reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Wait up to `limit` for the process to exit.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait until the log contains one of `needles` (a readiness line);
    /// the index of the one found. Fails when the process exits first or
    /// after `limit`, with its log.
    pub fn wait_log(&mut self, needles: &[&str], limit: Duration) -> Result<usize, HarnessError> {
        let start = Instant::now();
        loop {
            let log = self.log();
            if let Some(i) = needles.iter().position(|n| log.contains(n)) {
                return Ok(i);
            }
            if self.try_wait().is_some() {
                return Err(self.exited_error());
            }
            if start.elapsed() > limit {
                return Err(HarnessError::NotReady {
                    name: self.name.clone(),
                    seconds: limit.as_secs(),
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Send `signal` to the process group. The group ID is the PID of the
    /// process started here, and Linux does not reuse a PID while its group
    /// has members, so this reaches only what we started.
    pub fn signal(&self, signal: i32) {
        let Ok(pgid) = i32::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) has no memory effects; a stale group gives ESRCH.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }

    /// SIGTERM, `grace` to exit, then SIGKILL. The group is killed in any
    /// case, so children that outlive their parent go too.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.try_wait().is_none() {
            self.signal(libc::SIGTERM);
            self.wait_timeout(grace);
        }
        self.signal(libc::SIGKILL);
        self.wait_timeout(Duration::from_secs(5))
    }

    /// An error saying the process exited, with its log.
    pub fn exited_error(&mut self) -> HarnessError {
        HarnessError::Exited {
            name: self.name.clone(),
            status: self
                .try_wait()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "still running".into()),
            log: self.log_tail(),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
        if std::thread::panicking() {
            eprintln!(
                "--- {} (pid {}) log, last {TAIL_LINES} lines of {} ---\n{}\n--- end of {} log ---",
                self.name,
                self.child.id(),
                self.log_path.display(),
                self.log_tail(),
                self.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_the_whole_group_and_keeps_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sh.log");
        let mut cmd = Command::new("sh");
        // A child that ignores SIGTERM, and a grandchild sleeping.
        cmd.args(["-c", "echo started; trap '' TERM; sleep 60 & wait"]);
        let mut guard = ChildGuard::spawn("sh", cmd, &log).unwrap();
        let start = Instant::now();
        while !guard.log().contains("started") {
            assert!(start.elapsed() < Duration::from_secs(5));
            std::thread::sleep(POLL);
        }
        let pgid = guard.pid() as i32;
        let status = guard.stop(Duration::from_millis(200));
        assert!(status.is_some(), "killed after the grace period");
        // No running member of the group is left (zombies wait for init).
        assert_eq!(running_members(pgid), Vec::<i32>::new());
        assert_eq!(guard.log_tail(), "started");
    }

    /// PIDs in process group `pgid` that are not zombies, from /proc.
    fn running_members(pgid: i32) -> Vec<i32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid pgrp ...": split after the comm's ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z") {
                found.push(pid);
            }
        }
        found
    }

    #[test]
    fn reports_an_early_exit() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        let mut guard = ChildGuard::spawn("failing", cmd, &dir.path().join("f.log")).unwrap();
        assert!(guard.wait_timeout(Duration::from_secs(5)).is_some());
        let err = guard.exited_error().to_string();
        assert!(
            err.contains("exit status: 3") && err.contains("oops"),
            "{err}"
        );
    }
}
