//! Which sensors a commit touched, for the sensors whose agents take
//! acknowledgements (docs/protocol.md 11.4): the writer marks them after
//! each successful commit, and the acknowledger asks the store for their
//! committed marks. Sensors nobody watches cost one emptiness check per
//! commit.

use crate::storage::{Batch, SensorId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct State {
    /// Sensors with an acknowledged stream, and how many such streams.
    watched: HashMap<SensorId, u32>,
    /// Watched sensors with a commit (or a declared range) since the last
    /// [`CommitWatch::take_dirty`].
    dirty: HashSet<SensorId>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    changed: Notify,
}

/// Shared between the writer (which marks), the media thread (which
/// watches) and the acknowledger (which takes).
#[derive(Debug, Clone, Default)]
pub struct CommitWatch(Arc<Inner>);

impl CommitWatch {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A stream of `sensor` that is acknowledged starts.
    pub fn watch(&self, sensor: SensorId) {
        *self.state().watched.entry(sensor).or_default() += 1;
        // Its mark is wanted at once (the stored one may be ahead of the
        // SDP's, and the agent waits for it).
        self.touch(sensor);
    }

    /// Such a stream ended.
    pub fn unwatch(&self, sensor: SensorId) {
        let mut st = self.state();
        if let Some(n) = st.watched.get_mut(&sensor) {
            *n -= 1;
            if *n == 0 {
                st.watched.remove(&sensor);
                st.dirty.remove(&sensor);
            }
        }
    }

    /// `sensor`'s mark may have moved (a range was declared).
    pub fn touch(&self, sensor: SensorId) {
        let mut st = self.state();
        if st.watched.contains_key(&sensor) {
            st.dirty.insert(sensor);
            drop(st);
            self.0.changed.notify_one();
        }
    }

    /// A batch is committed.
    pub(crate) fn committed(&self, b: &Batch) {
        let mut st = self.state();
        if st.watched.is_empty() {
            return;
        }
        let State { watched, dirty } = &mut *st;
        let before = dirty.len();
        let mut last = None;
        let sensors = (b.readings.iter().map(|r| r.sensor))
            .chain(b.gaps.iter().map(|g| g.sensor))
            .chain(b.events.iter().map(|e| e.sensor));
        for s in sensors {
            // Rows come in runs per stream: look each run up once.
            if last == Some(s) {
                continue;
            }
            last = Some(s);
            if watched.contains_key(&s) {
                dirty.insert(s);
            }
        }
        let grew = dirty.len() > before;
        drop(st);
        if grew {
            self.0.changed.notify_one();
        }
    }

    /// The sensors marked since the last call.
    pub fn take_dirty(&self) -> Vec<SensorId> {
        let mut v: Vec<SensorId> = self.state().dirty.drain().collect();
        v.sort();
        v
    }

    /// Resolves once a sensor was marked since the last call returned (or
    /// at once when one was marked before it was called).
    pub async fn changed(&self) {
        self.0.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Gap, GapCause, Reading, ReadingSource, SessionId};

    fn reading(sensor: i64) -> Reading {
        Reading {
            session: SessionId(1),
            sensor: SensorId(sensor),
            seq: 0,
            index: 0,
            ts_ns: 0,
            raws: vec![Some(1)],
            source: ReadingSource::Live,
        }
    }

    #[tokio::test]
    async fn only_watched_sensors_of_a_commit_are_marked_until_unwatched() {
        let w = CommitWatch::default();
        w.committed(&Batch {
            readings: vec![reading(1)],
            ..Batch::default()
        });
        assert!(w.take_dirty().is_empty());
        w.watch(SensorId(1));
        w.watch(SensorId(1));
        // Watching asks for the mark at once.
        w.changed().await;
        assert_eq!(w.take_dirty(), vec![SensorId(1)]);
        w.committed(&Batch {
            readings: vec![reading(2), reading(1), reading(1)],
            gaps: vec![Gap {
                sensor: SensorId(3),
                session: None,
                from_ns: 0,
                to_ns: 1,
                samples: 0,
                cause: GapCause::Loss,
            }],
            ..Batch::default()
        });
        w.changed().await;
        assert_eq!(w.take_dirty(), vec![SensorId(1)]);
        // Two streams watched it: it stays watched until both end.
        w.unwatch(SensorId(1));
        w.touch(SensorId(1));
        assert_eq!(w.take_dirty(), vec![SensorId(1)]);
        w.unwatch(SensorId(1));
        w.touch(SensorId(1));
        w.committed(&Batch {
            readings: vec![reading(1)],
            ..Batch::default()
        });
        assert!(w.take_dirty().is_empty());
    }
}
