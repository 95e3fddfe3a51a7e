//! Making the sender thread real-time, and sleeping to absolute deadlines.
//!
//! * SCHED_FIFO ([`realtime::enter_fifo`]). Refused without CAP_SYS_NICE
//!   (or an RLIMIT_RTPRIO allowance): one warning per process, and the
//!   thread runs at normal priority.
//! * The process's memory locked ([`realtime::lock_memory`]), once per
//!   process, so no page the sender touches is ever paged out; on fault by
//!   default. The sender pre-touches its own stack.
//! * Timer slack of 1 ns: a normal-priority thread's sleeps are otherwise
//!   rounded up by 50 µs (SCHED_FIFO threads have none anyway).
//! * `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`: the deadline is a
//!   point on the clock, so a late wake never shifts the next one.

use crate::config::RealtimeConfig;
use nix::errno::Errno;
use nix::libc;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, ClockNanosleepFlags, clock_gettime, clock_nanosleep};
use sipsensor_runtime::realtime::{self, MemoryLock, enter_fifo};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What the thread got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RtOutcome {
    pub fifo: bool,
    pub locked: bool,
}

static FIFO_WARNED: AtomicBool = AtomicBool::new(false);
static AFFINITY_WARNED: AtomicBool = AtomicBool::new(false);
static LOCKED: OnceLock<bool> = OnceLock::new();

/// Bytes of stack touched up front so the loop never faults one in.
const STACK_PREFAULT: usize = 32 * 1024;

/// Apply the config to the calling thread (and lock the process's memory).
pub(crate) fn enter(cfg: &RealtimeConfig, lock: MemoryLock) -> RtOutcome {
    let locked = lock_memory(lock);
    prefault_stack();
    // Best effort: only affects how precisely a normal thread wakes.
    let _ = nix::sys::prctl::set_timerslack(1);
    if let Some(cpu) = cfg.cpu {
        pin(usize::from(cpu));
    }
    RtOutcome {
        fifo: set_fifo(cfg.priority),
        locked,
    }
}

fn set_fifo(priority: u8) -> bool {
    let Err(e) = enter_fifo(priority) else {
        return true;
    };
    if !FIFO_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "real-time sender: SCHED_FIFO priority {priority} refused ({e}); running at normal \
             priority, so packet timing suffers under load. Grant CAP_SYS_NICE (or an \
             RLIMIT_RTPRIO of at least {priority}) to the agent"
        );
    }
    false
}

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    let r = set
        .set(cpu)
        .and_then(|()| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
    if let Err(e) = r
        && !AFFINITY_WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!("real-time sender: cannot pin to CPU {cpu} ({e}); running unpinned");
    }
}

fn lock_memory(mode: MemoryLock) -> bool {
    if mode == MemoryLock::Off {
        return LOCKED.get().copied().unwrap_or(false);
    }
    *LOCKED.get_or_init(|| match realtime::lock_memory(mode) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                "real-time sender: mlockall failed ({e}); memory may be paged out under \
                     pressure. Grant CAP_IPC_LOCK or raise RLIMIT_MEMLOCK"
            );
            false
        }
    })
}

#[inline(never)]
fn prefault_stack() {
    let mut page = [0u8; STACK_PREFAULT];
    std::hint::black_box(&mut page);
}

/// CLOCK_MONOTONIC, which `Instant` reads on Linux, anchored to an
/// `Instant` so deadlines computed as `Instant`s become `timespec`s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MonoClock {
    instant: Instant,
    ns: i128,
}

impl MonoClock {
    pub fn new() -> MonoClock {
        let instant = Instant::now();
        // Read right after: the anchor is off by the tens of nanoseconds
        // between the two reads, a constant that never accumulates.
        let ns = clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
            i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
        });
        MonoClock { instant, ns }
    }

    /// Sleep until `deadline` on the absolute clock. Returns at once for a
    /// deadline in the past; retries after signals (bounded).
    pub fn sleep_until(&self, deadline: Instant) {
        let ns = self.ns + deadline.saturating_duration_since(self.instant).as_nanos() as i128;
        #[allow(clippy::useless_conversion)] // time_t and c_long vary by target.
        let ts = TimeSpec::new(
            (ns / 1_000_000_000) as libc::time_t,
            (ns % 1_000_000_000) as libc::c_long,
        );
        for _ in 0..16 {
            match clock_nanosleep(
                ClockId::CLOCK_MONOTONIC,
                ClockNanosleepFlags::TIMER_ABSTIME,
                &ts,
            ) {
                Err(Errno::EINTR) => continue,
                _ => return,
            }
        }
    }
}

/// Longest single `clock_nanosleep` while nothing else can wake the
/// thread: commands (stop, a new description) wait at most this long.
pub(crate) const MAX_NAP: Duration = Duration::from_millis(50);

/// Sleep until `deadline`.
///
/// * `wakeable` (the stream carries GPIO events): parked, so an edge's
///   `Wake` (or a command) unparks the thread at once. std's park is a
///   futex wait on an absolute CLOCK_MONOTONIC deadline computed on entry;
///   the last `fine` stretch, if any, is slept in `clock_nanosleep` so a
///   preemption just before parking cannot shift the deadline.
/// * otherwise: `clock_nanosleep(TIMER_ABSTIME)` to the deadline, in naps
///   of at most [`MAX_NAP`] so commands are still seen. One wake-up per
///   deadline: in a VM every wake-up costs tens of microseconds of CPU.
pub(crate) fn wait(clock: &MonoClock, deadline: Instant, wakeable: bool, fine: Duration) {
    let now = Instant::now();
    if deadline <= now {
        return;
    }
    let left = deadline - now;
    if !wakeable {
        clock.sleep_until(deadline.min(now + MAX_NAP));
    } else if left > fine {
        std::thread::park_timeout(left - fine);
    } else {
        clock.sleep_until(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_anchor_matches_instant() {
        let c = MonoClock::new();
        let later = MonoClock::new();
        // Both read CLOCK_MONOTONIC: the offsets agree to well under 1 ms
        // (they differ by the reads' spacing, not by drift).
        let d_instant = later.instant.duration_since(c.instant).as_nanos() as i128;
        let d_ns = later.ns - c.ns;
        assert!(
            (d_instant - d_ns).abs() < 1_000_000,
            "{d_instant} vs {d_ns}"
        );
        // A deadline in the past returns at once (the test would hang
        // otherwise, not fail: bounded by the 16 retries either way).
        c.sleep_until(c.instant - Duration::from_secs(1));
        let t = Instant::now() + Duration::from_millis(2);
        c.sleep_until(t);
        assert!(Instant::now() >= t, "woke before the deadline");
    }

    #[test]
    fn enter_reports_what_the_kernel_granted() {
        let probe = |cpu| {
            std::thread::spawn(move || {
                let out = enter(&RealtimeConfig { priority: 10, cpu }, MemoryLock::Off);
                // SAFETY: plain query of the calling thread's policy.
                let policy = unsafe { libc::sched_getscheduler(0) };
                let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
                (
                    out,
                    policy,
                    set.is_set(0).unwrap(),
                    set.is_set(1).unwrap_or(false),
                )
            })
            .join()
            .unwrap()
        };
        // Granted or refused (EPERM without CAP_SYS_NICE), the outcome
        // says which, and the thread keeps running either way.
        let (out, policy, _, _) = probe(Some(0));
        assert_eq!(out.fifo, policy == libc::SCHED_FIFO, "policy {policy}");
        let (_, _, cpu0, cpu1) = probe(Some(0));
        assert!(cpu0 && !cpu1, "pinned to CPU 0");
        // A CPU that does not exist is a warning, not a failure.
        let (_, _, cpu0, _) = probe(Some(1023));
        assert!(cpu0, "left unpinned");
    }
}
