//! Rows and loss gaps the receive thread has handed to the writer that no
//! committed mark can be trusted to know of yet (docs/protocol.md 11.4,
//! 11.7 step 7).
//!
//! While a stream's hole waits for late packets, the stream itself keeps
//! the mark below it (`Stream::hole_from_ns`). Once a late packet fills
//! it, or its grace time is over and it leaves as a gap row, the stream
//! caps nothing: until that row is committed, a mark read from storage
//! does not see it and would pass it (storage's mark is its newest sample
//! below its oldest fillable gap), and a mark never goes back within a
//! session: the agent would release samples the collector lacks (found in
//! e2e s17: three samples lost for good when the writer lagged). So each
//! handed batch keeps capping its sensors' marks, below its oldest row,
//! until the writer has said it is committed (a flush queued behind it)
//! **and** a mark arrives whose storage query began after we heard so.

use crate::storage::{Batch, SensorId, StorageError};
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use tokio::sync::oneshot;

/// The writer's answer to a flush queued behind a batch.
pub type CommitReply = oneshot::Receiver<Result<(), StorageError>>;

#[derive(Debug)]
struct Handed {
    /// Per sensor, the last instant before the batch's oldest row or gap.
    caps: HashMap<SensorId, i64>,
    reply: Option<CommitReply>,
    /// When we learnt the batch was committed.
    committed_at: Option<Instant>,
}

/// What `batch` keeps the marks of the `acked` sensors below until it is
/// committed: each row's instant but one (a reordered live row fills its
/// hole in the stream before storage has it) and each fillable gap's
/// start. A source or expired gap holds no mark up (`GapCause::is_fillable`).
pub fn caps_of(batch: &Batch, acked: &HashSet<SensorId>) -> Vec<(SensorId, i64)> {
    let rows = (batch.readings.iter().map(|r| (r.sensor, r.ts_ns)))
        .chain(batch.events.iter().map(|e| (e.sensor, e.ts_ns)))
        .map(|(sensor, ts)| (sensor, ts.saturating_sub(1)));
    let gaps = (batch.gaps.iter())
        .filter(|g| g.cause.is_fillable())
        .map(|g| (g.sensor, g.from_ns));
    rows.chain(gaps)
        .filter(|(sensor, _)| acked.contains(sensor))
        .collect()
}

/// The batches handed, until confirmed.
#[derive(Debug, Default)]
pub struct UnconfirmedGaps {
    handed: Vec<Handed>,
}

impl UnconfirmedGaps {
    /// A batch went to the writer holding, per sensor, `caps` (the last
    /// instant before each of its rows and gaps; the lowest counts);
    /// `reply` answers a flush queued right behind it.
    pub fn handed(&mut self, caps: impl IntoIterator<Item = (SensorId, i64)>, reply: CommitReply) {
        let mut lowest: HashMap<SensorId, i64> = HashMap::new();
        for (sensor, cap) in caps {
            lowest
                .entry(sensor)
                .and_modify(|c| *c = (*c).min(cap))
                .or_insert(cap);
        }
        if lowest.is_empty() {
            return;
        }
        // The writer answers a flush once everything submitted before it
        // is committed: the new reply answers for the batch still waiting
        // too. One entry for all of them keeps this list as small as the
        // sensors, however long the store fails.
        if let Some(waiting) = self.handed.last_mut().filter(|h| h.committed_at.is_none()) {
            for (sensor, cap) in lowest {
                waiting
                    .caps
                    .entry(sensor)
                    .and_modify(|c| *c = (*c).min(cap))
                    .or_insert(cap);
            }
            waiting.reply = Some(reply);
            return;
        }
        self.handed.push(Handed {
            caps: lowest,
            reply: Some(reply),
            committed_at: None,
        });
    }

    /// Looks at the writer's answers at `now`; the sensors of batches
    /// newly committed go to `confirmed` (a mark asked from now on may
    /// pass them). Returns how many batches need a new flush queued
    /// behind them (the writer failed to commit them for now, or dropped
    /// the answer): give each a new reply with [`Self::retry`].
    pub fn poll(&mut self, now: Instant, confirmed: &mut Vec<SensorId>) -> usize {
        let mut again = 0;
        for h in &mut self.handed {
            let Some(reply) = h.reply.as_mut() else {
                continue;
            };
            match reply.try_recv() {
                Ok(Ok(())) => {
                    h.committed_at = Some(now);
                    h.reply = None;
                    confirmed.extend(h.caps.keys().copied());
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

    /// The lowest cap of `sensor` among the batches not seen committed.
    pub fn cap(&self, sensor: SensorId) -> Option<i64> {
        self.handed
            .iter()
            .filter_map(|h| h.caps.get(&sensor))
            .copied()
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
        assert_eq!(u.poll(t0, &mut Vec::new()), 0);
        u.seen_by(t0 + Duration::from_millis(1));
        assert_eq!(u.cap(S), Some(100));
        // Committed, heard at t1; a mark asked before t1 may predate the
        // commit, one asked after sees it.
        tx.send(Ok(())).unwrap();
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(u.poll(t1, &mut Vec::new()), 0);
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
        assert_eq!(u.poll(t0, &mut Vec::new()), 1);
        u.seen_by(t0 + Duration::from_secs(1));
        assert_eq!(u.cap(S), Some(100));
        let (tx, rx) = oneshot::channel();
        u.retry(rx);
        drop(tx); // the writer went away: asked again, still capped
        assert_eq!(u.poll(t0, &mut Vec::new()), 1);
        assert_eq!(u.cap(S), Some(100));
        let (tx, rx) = oneshot::channel();
        u.retry(rx);
        tx.send(Ok(())).unwrap();
        assert_eq!(u.poll(t0, &mut Vec::new()), 0);
        u.seen_by(t0 + Duration::from_millis(1));
        assert_eq!(u.cap(S), None);
    }

    #[test]
    fn a_batch_caps_below_its_oldest_row_and_fillable_gap_of_acknowledged_sensors() {
        use crate::storage::{Event, Gap, GapCause, Reading, ReadingSource, SessionId};
        let reading = |sensor, ts_ns| Reading {
            session: SessionId(1),
            sensor,
            seq: 0,
            index: 0,
            ts_ns,
            raws: vec![Some(1)],
            source: ReadingSource::Live,
        };
        let gap = |from_ns, cause| Gap {
            sensor: S,
            session: None,
            from_ns,
            to_ns: from_ns + 10,
            samples: 1,
            cause,
        };
        let batch = Batch {
            // A reordered live row older than the rest of the batch.
            readings: vec![reading(S, 500), reading(S, 300), reading(SensorId(9), 1)],
            events: vec![Event {
                session: SessionId(1),
                sensor: S,
                channel: 0,
                seq: 0,
                index: 0,
                ts_ns: 400,
                value: 1,
            }],
            gaps: vec![gap(250, GapCause::Loss), gap(100, GapCause::Source)],
            seen: Vec::new(),
        };
        let acked: HashSet<SensorId> = [S].into();
        let mut caps = caps_of(&batch, &acked);
        caps.sort();
        assert_eq!(caps, vec![(S, 250), (S, 299), (S, 399), (S, 499)]);
        let mut u = UnconfirmedGaps::default();
        let (tx, rx) = oneshot::channel();
        u.handed(caps, rx);
        assert_eq!(u.cap(S), Some(250));
        assert_eq!(u.cap(SensorId(9)), None, "not acknowledged");
        tx.send(Ok(())).unwrap();
        let mut confirmed = Vec::new();
        let t0 = Instant::now();
        assert_eq!(u.poll(t0, &mut confirmed), 0);
        assert_eq!(confirmed, vec![S], "its sensors get a mark round");
    }

    #[test]
    fn batches_waiting_together_share_the_newest_answer_and_the_lowest_cap() {
        let mut u = UnconfirmedGaps::default();
        let (_a, ra) = oneshot::channel();
        let (b, rb) = oneshot::channel();
        u.handed(vec![(S, 300)], ra);
        u.handed(vec![(S, 200), (S, 400)], rb);
        assert_eq!(u.cap(S), Some(200));
        u.handed(Vec::new(), oneshot::channel().1);
        assert_eq!(u.handed.len(), 1, "one entry, however many batches wait");
        // The newer flush's answer covers the older batch: both confirmed.
        b.send(Ok(())).unwrap();
        let t0 = Instant::now();
        assert_eq!(u.poll(t0, &mut Vec::new()), 0);
        u.seen_by(t0 + Duration::from_millis(1));
        assert_eq!(u.cap(S), None);
        // A batch handed after a confirmed one waits on its own.
        let (_c, rc) = oneshot::channel();
        u.handed(vec![(S, 500)], rc);
        assert_eq!(u.cap(S), Some(500));
    }
}
