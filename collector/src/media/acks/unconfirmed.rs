//! Loss gaps the receive thread has handed to the writer that no committed
//! mark can be trusted to know of yet (docs/protocol.md 11.4, 11.7 step 7).
//!
//! While a stream's hole waits for late packets, the stream itself keeps
//! the mark below it (`Stream::hole_from_ns`). Once its grace time is over
//! the hole leaves the stream as a gap row; until that row is committed,
//! a mark read from storage does not see it and would pass it, and a mark
//! never goes back within a session: the agent would release the samples
//! the collector lacks (found in e2e s17: three samples lost for good when
//! the writer lagged). So each handed gap keeps capping its sensor's marks
//! until the writer has said it is committed (a flush queued behind it)
//! **and** a mark arrives whose storage query began after we heard so.

use crate::storage::{SensorId, StorageError};
use std::time::Instant;
use tokio::sync::oneshot;

/// The writer's answer to a flush queued behind a batch.
pub type CommitReply = oneshot::Receiver<Result<(), StorageError>>;

#[derive(Debug)]
struct Handed {
    gaps: Vec<(SensorId, i64)>,
    reply: Option<CommitReply>,
    /// When we learnt the batch was committed.
    committed_at: Option<Instant>,
}

/// The gaps handed, per batch, until confirmed.
#[derive(Debug, Default)]
pub struct UnconfirmedGaps {
    handed: Vec<Handed>,
}

impl UnconfirmedGaps {
    /// `gaps` (sensor, the last instant before the gap) went to the writer
    /// in a batch; `reply` answers a flush queued right behind it.
    pub fn handed(&mut self, gaps: Vec<(SensorId, i64)>, reply: CommitReply) {
        if !gaps.is_empty() {
            self.handed.push(Handed {
                gaps,
                reply: Some(reply),
                committed_at: None,
            });
        }
    }

    /// Looks at the writer's answers at `now`. Returns how many batches
    /// need a new flush queued behind them (the writer failed to commit
    /// them for now, or dropped the answer): give each a new reply with
    /// [`Self::retry`].
    pub fn poll(&mut self, now: Instant) -> usize {
        let mut again = 0;
        for h in &mut self.handed {
            let Some(reply) = h.reply.as_mut() else {
                continue;
            };
            match reply.try_recv() {
                Ok(Ok(())) => {
                    h.committed_at = Some(now);
                    h.reply = None;
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
                Ok(Err(_)) | Err(oneshot::error::TryRecvError::Closed) => {
                    h.reply = None;
                    again += 1;
                }
            }
        }
        again
    }

    /// A new flush reply for the oldest batch that lost its own.
    pub fn retry(&mut self, reply: CommitReply) {
        if let Some(h) = self
            .handed
            .iter_mut()
            .find(|h| h.reply.is_none() && h.committed_at.is_none())
        {
            h.reply = Some(reply);
        }
    }

    /// Marks read from storage at `asked` see every batch confirmed
    /// before: those cap nothing any more.
    pub fn seen_by(&mut self, asked: Instant) {
        self.handed
            .retain(|h| h.committed_at.is_none_or(|at| at >= asked));
    }

    /// The lowest instant before an unconfirmed gap of `sensor`.
    pub fn cap(&self, sensor: SensorId) -> Option<i64> {
        self.handed
            .iter()
            .flat_map(|h| h.gaps.iter())
            .filter(|(s, _)| *s == sensor)
            .map(|(_, from)| *from)
            .min()
    }

    pub fn is_empty(&self) -> bool {
        self.handed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: SensorId = SensorId(7);

    #[test]
    fn a_gap_caps_until_a_mark_read_after_its_commit_was_heard() {
        let mut u = UnconfirmedGaps::default();
        let (tx, rx) = oneshot::channel();
        let t0 = Instant::now();
        u.handed(vec![(S, 100), (SensorId(8), 50)], rx);
        assert_eq!(u.cap(S), Some(100));
        // A mark read before the commit: still capped.
        assert_eq!(u.poll(t0), 0);
        u.seen_by(t0 + Duration::from_millis(1));
        assert_eq!(u.cap(S), Some(100));
        // Committed, heard at t1; a mark asked before t1 may predate the
        // commit, one asked after sees it.
        tx.send(Ok(())).unwrap();
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(u.poll(t1), 0);
        u.seen_by(t1 - Duration::from_millis(5));
        assert_eq!(u.cap(S), Some(100), "a mark asked before we heard");
        u.seen_by(t1);
        assert_eq!(u.cap(S), Some(100), "asked at the same instant");
        u.seen_by(t1 + Duration::from_millis(1));
        assert_eq!(u.cap(S), None);
        assert_eq!(u.cap(SensorId(8)), None);
        assert!(u.is_empty());
    }

    #[test]
    fn a_failed_commit_keeps_capping_and_asks_again() {
        let mut u = UnconfirmedGaps::default();
        let (tx, rx) = oneshot::channel();
        u.handed(vec![(S, 100)], rx);
        tx.send(Err(StorageError::WriterClosed)).unwrap();
        let t0 = Instant::now();
        assert_eq!(u.poll(t0), 1);
        u.seen_by(t0 + Duration::from_secs(1));
        assert_eq!(u.cap(S), Some(100));
        let (tx, rx) = oneshot::channel();
        u.retry(rx);
        drop(tx); // the writer went away: asked again, still capped
        assert_eq!(u.poll(t0), 1);
        assert_eq!(u.cap(S), Some(100));
        let (tx, rx) = oneshot::channel();
        u.retry(rx);
        tx.send(Ok(())).unwrap();
        assert_eq!(u.poll(t0), 0);
        u.seen_by(t0 + Duration::from_millis(1));
        assert_eq!(u.cap(S), None);
    }

    #[test]
    fn the_lowest_gap_of_the_sensor_caps() {
        let mut u = UnconfirmedGaps::default();
        let (_a, ra) = oneshot::channel();
        let (_b, rb) = oneshot::channel();
        u.handed(vec![(S, 300)], ra);
        u.handed(vec![(S, 200), (S, 400)], rb);
        assert_eq!(u.cap(S), Some(200));
        u.handed(Vec::new(), oneshot::channel().1);
        assert_eq!(u.handed.len(), 2, "an empty batch is not kept");
    }
}
