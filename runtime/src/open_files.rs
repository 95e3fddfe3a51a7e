//! The open-file limit of a process holding thousands of sockets (the load
//! generator's sensors, the receive benchmark's streams): the soft limit
//! (1024 by default) is far below what the hard one allows.

use nix::errno::Errno;
use nix::libc::rlim_t;
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Lifts the soft RLIMIT_NOFILE to the hard limit; returns the new limit
/// (`rlim_t`: 64 bits on x86_64 and aarch64, 32 on armv7).
pub fn raise_to_hard_limit() -> Result<rlim_t, Errno> {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_becomes_the_hard_one() {
        let raised = raise_to_hard_limit().unwrap();
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE), Ok((raised, raised)));
    }
}
