//! Commands from the SIP side to the receive thread.
//!
//! The receive thread runs under SCHED_FIFO (see `realtime`), so it must
//! never wait for a thread of lower priority. `std::sync::mpsc` does: when
//! the receiver reaches a slot a sender has claimed but not yet written, it
//! spins on `sched_yield` until the write lands, and a yield from a
//! real-time thread lets no normal thread run on its CPU. With the
//! collector on one core, a sender preempted in that window kept the receive
//! thread spinning until the kernel's real-time throttling stopped it
//! (0.95 s of each second): the RTP socket overflowed and 37,000 packets
//! were lost (docs/benchmarks.md). Here the queue is behind a mutex the
//! receive thread only *tries*: if a sender holds it, the commands wait for
//! the next turn, a millisecond later.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

#[derive(Debug)]
struct Queue<T> {
    items: VecDeque<T>,
    /// The receiving side is gone: nothing queued would ever be taken.
    closed: bool,
}

fn lock<T>(m: &Mutex<Queue<T>>) -> MutexGuard<'_, Queue<T>> {
    // A panic while holding the lock leaves a valid queue (push_back and
    // mem::take either happened or did not).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The sending side: cloneable, blocking only for a push.
#[derive(Debug)]
pub(super) struct Outbox<T>(Arc<Mutex<Queue<T>>>);

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox(self.0.clone())
    }
}

/// The receiving side, owned by the receive thread. Dropping it (the thread
/// ends, or unwinds) closes the mailbox and drops what was queued, so a
/// sender waiting for a reply learns the thread is gone.
#[derive(Debug)]
pub(super) struct Inbox<T>(Arc<Mutex<Queue<T>>>);

/// What a receive turn found.
#[derive(Debug, PartialEq)]
pub(super) enum Taken<T> {
    /// Everything queued, in order (possibly nothing).
    Items(VecDeque<T>),
    /// A sender holds the queue right now: try again shortly.
    Busy,
}

pub(super) fn mailbox<T>() -> (Outbox<T>, Inbox<T>) {
    let q = Arc::new(Mutex::new(Queue {
        items: VecDeque::new(),
        closed: false,
    }));
    (Outbox(q.clone()), Inbox(q))
}

impl<T> Outbox<T> {
    /// Queues `item`; gives it back when the receiving side is gone.
    pub(super) fn send(&self, item: T) -> Result<(), T> {
        let mut q = lock(&self.0);
        if q.closed {
            return Err(item);
        }
        q.items.push_back(item);
        Ok(())
    }
}

impl<T> Inbox<T> {
    /// Takes everything queued without ever waiting for a sender.
    pub(super) fn take(&self) -> Taken<T> {
        match self.0.try_lock() {
            Ok(mut q) => Taken::Items(std::mem::take(&mut q.items)),
            Err(TryLockError::Poisoned(p)) => {
                Taken::Items(std::mem::take(&mut p.into_inner().items))
            }
            Err(TryLockError::WouldBlock) => Taken::Busy,
        }
    }
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        let left = {
            let mut q = lock(&self.0);
            q.closed = true;
            std::mem::take(&mut q.items)
        };
        // Dropped outside the lock: an item's drop may wake its sender.
        drop(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_out_in_order() {
        let (tx, rx) = mailbox();
        let tx2 = tx.clone();
        tx.send(1).unwrap();
        tx2.send(2).unwrap();
        tx.send(3).unwrap();
        assert_eq!(rx.take(), Taken::Items(VecDeque::from([1, 2, 3])));
        assert_eq!(rx.take(), Taken::Items(VecDeque::new()));
    }

    #[test]
    fn a_held_queue_is_busy_not_waited_for() {
        let (tx, rx) = mailbox::<u8>();
        let held = lock(&tx.0);
        assert_eq!(rx.take(), Taken::Busy);
        drop(held);
        assert_eq!(rx.take(), Taken::Items(VecDeque::new()));
    }

    #[test]
    fn closing_refuses_new_items_and_drops_queued_ones() {
        let (tx, rx) = mailbox();
        let (reply, answer) = std::sync::mpsc::channel::<()>();
        tx.send(reply).unwrap();
        drop(rx);
        // The queued sender was dropped: whoever waits on it is told.
        assert!(answer.recv().is_err());
        let (reply, _answer) = std::sync::mpsc::channel::<()>();
        assert!(tx.send(reply).is_err());
    }

    #[test]
    fn senders_on_other_threads_lose_nothing() {
        let (tx, rx) = mailbox();
        let senders: Vec<_> = (0..4u32)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u32 {
                        tx.send(t * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while got.len() < 4000 && std::time::Instant::now() < deadline {
            if let Taken::Items(items) = rx.take() {
                got.extend(items);
            }
            std::thread::yield_now();
        }
        for s in senders {
            s.join().unwrap();
        }
        if let Taken::Items(items) = rx.take() {
            got.extend(items);
        }
        assert_eq!(got.len(), 4000);
        // Each sender's items keep their order.
        for t in 0..4u32 {
            let mine: Vec<u32> = got.iter().copied().filter(|v| v / 1000 == t).collect();
            assert_eq!(mine, (t * 1000..t * 1000 + 1000).collect::<Vec<_>>());
        }
    }
}
