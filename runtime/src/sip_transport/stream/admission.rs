//! Who may hold a connection: an overall cap and a per-source-address cap
//! on open stream connections (TLS handshakes in progress included), so a
//! flood of idle connections from one host cannot take every descriptor.
//! Refusals are logged at most once per interval.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` are open.
    Full(usize),
    /// `max_per_source` are open from this address.
    SourceFull(usize),
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Counts open connections; a [`Slot`] is one of them.
#[derive(Debug)]
pub(crate) struct Admission {
    open: Arc<Mutex<Open>>,
    max_total: usize,
    max_per_source: usize,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_source: usize) -> Self {
        Self {
            open: Arc::default(),
            max_total,
            max_per_source,
        }
    }

    /// A slot for a connection with `peer`. Inbound connections count
    /// against the per-source cap too; our own outbound ones (one per
    /// peer, reused) only against the total.
    pub(crate) fn reserve(&self, peer: IpAddr, inbound: bool) -> Result<Slot, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(Refusal::Full(self.max_total));
        }
        let from_peer = open.by_source.entry(peer).or_default();
        if inbound && *from_peer >= self.max_per_source {
            return Err(Refusal::SourceFull(self.max_per_source));
        }
        *from_peer += 1;
        open.total += 1;
        Ok(Slot {
            open: self.open.clone(),
            peer,
        })
    }

    pub(crate) fn open(&self) -> usize {
        self.open_count().get()
    }

    /// A view of the open count that outlives the transport's owner
    /// moving it elsewhere (read by /metrics at scrape time).
    pub(crate) fn open_count(&self) -> OpenCount {
        OpenCount(self.open.clone())
    }
}

/// How many connections are open now, read-only.
#[derive(Debug, Clone)]
pub(crate) struct OpenCount(Arc<Mutex<Open>>);

impl OpenCount {
    pub(crate) fn get(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

/// One admitted connection; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot {
    open: Arc<Mutex<Open>>,
    peer: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_source.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.by_source.remove(&self.peer);
            }
        }
    }
}

/// A warning that a flood would repeat thousands of times a second: say it
/// once per `interval`, with how many were left unsaid since.
#[derive(Debug)]
pub(crate) struct RateLimitedLog {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    unsaid: AtomicU64,
}

impl RateLimitedLog {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(None),
            unsaid: AtomicU64::new(0),
        }
    }

    /// Calls `say(unsaid_before)` if the interval has passed by `now`;
    /// true if it did.
    pub(crate) fn say(&self, now: Instant, say: impl FnOnce(u64)) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < self.interval) {
            self.unsaid.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *last = Some(now);
        drop(last);
        say(self.unsaid.swap(0, Ordering::Relaxed));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn caps_per_source_and_in_total_and_frees_on_drop() {
        let admission = Admission::new(3, 2);
        let a1 = admission.reserve(A, true).unwrap();
        let _a2 = admission.reserve(A, true).unwrap();
        assert_eq!(
            admission.reserve(A, true).err(),
            Some(Refusal::SourceFull(2))
        );
        // Another source still gets in, up to the total.
        let _b1 = admission.reserve(B, true).unwrap();
        assert_eq!(admission.reserve(B, true).err(), Some(Refusal::Full(3)));
        drop(a1);
        assert_eq!(admission.open(), 2);
        let _a3 = admission.reserve(A, true).unwrap();
    }

    #[test]
    fn outbound_connections_only_count_in_total() {
        let admission = Admission::new(3, 1);
        let _in = admission.reserve(A, true).unwrap();
        let _out = admission.reserve(A, false).unwrap();
        assert_eq!(
            admission.reserve(A, true).err(),
            Some(Refusal::SourceFull(1))
        );
    }

    #[test]
    fn the_log_speaks_once_per_interval_and_counts_the_rest() {
        let log = RateLimitedLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let mut said = Vec::new();
        for ms in [0, 1, 2, 3, 9_999] {
            log.say(t0 + Duration::from_millis(ms), |unsaid| said.push(unsaid));
        }
        log.say(t0 + Duration::from_secs(10), |unsaid| said.push(unsaid));
        assert_eq!(said, [0, 4]);
    }
}
