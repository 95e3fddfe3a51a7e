//! CPU time and memory of a process, from /proc.

use std::time::{Duration, Instant};

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub at: Instant,
    /// User + system CPU time.
    pub cpu: Duration,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    /// Bytes it caused to be written to storage (`write_bytes` of
    /// /proc/PID/io: the spool and its log, not its sockets).
    pub written: u64,
}

pub fn read(pid: u32) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), counted
    // from 3: utime is field 14, stime 15 (proc(5)).
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|t| *t > 0)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let written = io
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())?;
    Some(Reading {
        at: Instant::now(),
        written,
        cpu: Duration::from_millis(ticks * 1000 / per_second),
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:")?,
    })
}

/// CPU between two readings, as a share of one core.
pub fn cpu_share(from: &Reading, to: &Reading) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    to.cpu.saturating_sub(from.cpu).as_secs_f64() / wall
}

/// Bytes written between two readings, per hour.
pub fn written_per_hour(from: &Reading, to: &Reading) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    to.written.saturating_sub(from.written) as f64 * 3600.0 / wall
}
