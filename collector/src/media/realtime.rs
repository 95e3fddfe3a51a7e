//! The receive thread under SCHED_FIFO: it then runs as soon as packets are
//! waiting, ahead of the storage writer, SIP and (on a shared machine) the
//! database server, so a busy core delays the writer, which has memory to
//! catch up in, instead of overflowing the socket buffer, which loses
//! packets. The thread sleeps between batches, so it takes only the CPU the
//! packets need.

use nix::errno::Errno;
use sipsensor_runtime::realtime::enter_fifo;

/// What became of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Priority 0 in the configuration: normal scheduling asked for.
    Off,
    Fifo(u8),
    /// The kernel refused (no CAP_SYS_NICE and no RLIMIT_RTPRIO allowance).
    Refused(Errno),
}

/// Puts the calling thread under SCHED_FIFO at `priority` (1-99; 0: leave
/// it alone).
pub(super) fn enter(priority: u8) -> Outcome {
    if priority == 0 {
        return Outcome::Off;
    }
    match enter_fifo(priority) {
        Ok(()) => Outcome::Fifo(priority),
        Err(e) => Outcome::Refused(e),
    }
}

/// Logs the outcome once, at start.
pub(super) fn report(outcome: Outcome, priority: u8) {
    match outcome {
        Outcome::Off => {
            tracing::info!("RTP receive thread at normal priority (receive_priority 0)")
        }
        Outcome::Fifo(p) => tracing::info!("RTP receive thread under SCHED_FIFO priority {p}"),
        Outcome::Refused(e) => tracing::warn!(
            "RTP receive thread: SCHED_FIFO priority {priority} refused ({e}); running at \
             normal priority, so a busy machine may overflow the receive buffer. Run as root, \
             grant CAP_SYS_NICE or LimitRTPRIO={priority}, or set media.receive_priority: 0"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::libc;

    #[test]
    fn zero_leaves_the_thread_alone_and_a_request_gets_an_answer() {
        assert_eq!(enter(0), Outcome::Off);
        // In a thread of its own: the test runner's threads stay normal.
        let got = std::thread::spawn(|| {
            let got = enter(7);
            // SAFETY: pid 0 is the calling thread.
            let policy = unsafe { libc::sched_getscheduler(0) };
            (got, policy)
        })
        .join()
        .unwrap();
        match got {
            (Outcome::Fifo(7), policy) => assert_eq!(policy, libc::SCHED_FIFO),
            (Outcome::Refused(e), policy) => {
                assert_eq!(e, Errno::EPERM);
                assert_eq!(policy, libc::SCHED_OTHER);
            }
            other => panic!("{other:?}"),
        }
    }
}
