//! CPU time and memory of a process, from /proc.

use std::collections::BTreeMap;
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

/// One thread's counters, to tell which thread costs what.
#[derive(Debug, Clone)]
pub struct ThreadReading {
    pub name: String,
    /// Time on a CPU (`/proc/PID/task/TID/schedstat`: ns, where
    /// `/proc/PID/stat` counts 10 ms ticks).
    pub cpu: Duration,
    /// Times it went to sleep (`voluntary_ctxt_switches`): its wake-ups.
    pub sleeps: u64,
}

/// Every thread of `pid` by thread id; threads unreadable (ended
/// meanwhile) are left out.
pub fn threads(pid: u32) -> BTreeMap<u32, ThreadReading> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|tid| Some((tid, thread(pid, tid)?)))
        .collect()
}

fn thread(pid: u32, tid: u32) -> Option<ThreadReading> {
    let task = format!("/proc/{pid}/task/{tid}");
    let name = std::fs::read_to_string(format!("{task}/comm")).ok()?;
    let schedstat = std::fs::read_to_string(format!("{task}/schedstat")).ok()?;
    let ns: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
    let status = std::fs::read_to_string(format!("{task}/status")).ok()?;
    let sleeps = status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())?;
    Some(ThreadReading {
        name: name.trim().to_owned(),
        cpu: Duration::from_nanos(ns),
        sleeps,
    })
}

/// Per thread name (tokio's workers share one), between two readings
/// `wall` apart: share of a core and wake-ups a second, costliest first.
pub fn thread_costs(
    from: &BTreeMap<u32, ThreadReading>,
    to: &BTreeMap<u32, ThreadReading>,
    wall: Duration,
) -> Vec<(String, f64, f64)> {
    let seconds = wall.as_secs_f64().max(f64::MIN_POSITIVE);
    let mut by_name: BTreeMap<&str, (Duration, u64)> = BTreeMap::new();
    for (tid, now) in to {
        // A thread started within the window counts from zero.
        let (cpu, sleeps) = from
            .get(tid)
            .map_or((Duration::ZERO, 0), |t| (t.cpu, t.sleeps));
        let sum = by_name.entry(&now.name).or_default();
        sum.0 += now.cpu.saturating_sub(cpu);
        sum.1 += now.sleeps.saturating_sub(sleeps);
    }
    let mut costs: Vec<(String, f64, f64)> = by_name
        .into_iter()
        .map(|(name, (cpu, sleeps))| {
            (
                name.to_owned(),
                cpu.as_secs_f64() / seconds,
                sleeps as f64 / seconds,
            )
        })
        .collect();
    costs.sort_by(|a, b| b.1.total_cmp(&a.1));
    costs
}

/// The 1-minute load average (the machine is shared: a busy one inflates
/// every CPU figure), or "?" where /proc/loadavg is unreadable.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
