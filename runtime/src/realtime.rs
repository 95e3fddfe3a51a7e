//! Real-time threads: SCHED_FIFO, and process memory locked against paging.
//! What to ask for and how to report a refusal is each program's own
//! business; these are the bare calls.
//!
//! * SCHED_FIFO through `sched_setscheduler` (nix has no wrapper; its
//!   re-exported libc has the call). Without CAP_SYS_NICE (or an
//!   RLIMIT_RTPRIO allowance) the kernel says EPERM and the thread keeps
//!   its normal priority.
//! * `mlockall(MCL_CURRENT | MCL_FUTURE)`, so no page is ever paged out. By
//!   default with `MCL_ONFAULT` (Linux 4.4): pages are locked as they are
//!   touched instead of all at once, which keeps every other thread's
//!   unused stack and the unused parts of the binary out of RSS (see
//!   docs/benchmarks.md for the difference).

use nix::errno::Errno;
use nix::libc;
use nix::sys::mman::{MlockAllFlags, mlockall};

/// Puts the calling thread under SCHED_FIFO at `priority` (1-99). On
/// failure (EPERM: not allowed; EINVAL: priority out of range) the thread
/// keeps its scheduling.
pub fn enter_fifo(priority: u8) -> Result<(), Errno> {
    // SAFETY: sched_param is plain data; zero is valid for every field
    // (musl has more fields than glibc, hence not a struct literal).
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = i32::from(priority);
    // SAFETY: pid 0 names the calling thread (sched_setscheduler(2) acts
    // per thread on Linux); `param` outlives the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// How `mlockall` is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryLock {
    /// `MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT` (falls back to `All` on a
    /// kernel without `MCL_ONFAULT`).
    #[default]
    OnFault,
    /// `MCL_CURRENT | MCL_FUTURE`: every mapping resident at once.
    All,
    /// No locking (tests, benchmarks comparing).
    Off,
}

/// Locks the whole process's memory as `mode` says; `Off` locks nothing
/// and succeeds. Fails without CAP_IPC_LOCK when RLIMIT_MEMLOCK is below
/// what the process maps.
pub fn lock_memory(mode: MemoryLock) -> Result<(), Errno> {
    let base = MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE;
    match mode {
        MemoryLock::Off => Ok(()),
        MemoryLock::All => mlockall(base),
        MemoryLock::OnFault => {
            match mlockall(base | MlockAllFlags::from_bits_retain(libc::MCL_ONFAULT)) {
                // Linux before 4.4 does not know MCL_ONFAULT.
                Err(Errno::EINVAL) => mlockall(base),
                r => r,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_request_is_granted_or_refused_as_the_kernel_says() {
        // In a thread of its own: the test runner's threads stay normal.
        let got = std::thread::spawn(|| {
            let got = enter_fifo(7);
            // SAFETY: pid 0 is the calling thread.
            let policy = unsafe { libc::sched_getscheduler(0) };
            // SAFETY: as above; sched_param is plain data.
            let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
            // SAFETY: pid 0 is the calling thread; `param` outlives the call.
            let _ = unsafe { libc::sched_getparam(0, &mut param) };
            (got, policy, param.sched_priority)
        })
        .join()
        .unwrap();
        match got {
            (Ok(()), policy, priority) => assert_eq!((policy, priority), (libc::SCHED_FIFO, 7)),
            (Err(e), policy, _) => {
                assert_eq!(e, Errno::EPERM);
                assert_eq!(policy, libc::SCHED_OTHER);
            }
        }
    }

    #[test]
    fn an_out_of_range_priority_is_refused() {
        // Linux checks the range before the permission: EINVAL either way.
        let got = std::thread::spawn(|| enter_fifo(100)).join().unwrap();
        assert_eq!(got, Err(Errno::EINVAL));
    }

    /// Kilobytes of this process's memory that are locked.
    fn locked_kb() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmLck:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    #[test]
    fn off_locks_nothing() {
        assert_eq!(lock_memory(MemoryLock::Off), Ok(()));
        // Nothing else in these tests locks memory.
        assert_eq!(locked_kb(), Some(0));
    }
}
