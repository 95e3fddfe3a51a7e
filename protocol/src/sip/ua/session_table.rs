//! The user agent's INVITE sessions (and its subscriptions), with an index
//! of their next timers.
//!
//! A collector holds thousands of sessions, almost all of them established
//! and without a timer; finding the next wake-up may not cost a scan of all
//! of them on every message. Sessions handed out mutably are noted as
//! touched, and their timers re-filed before the index is next read, so no
//! call site has to remember to re-file anything.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::time::Instant;

use super::session::{Session, SessionId};

/// What a [`TimerTable`] holds: something with a next timer.
pub(super) trait Timed {
    fn next_timeout(&self) -> Option<Instant>;
}

impl Timed for Session {
    fn next_timeout(&self) -> Option<Instant> {
        Session::next_timeout(self)
    }
}

pub(super) type SessionTable = TimerTable<SessionId, Session>;

pub(super) struct TimerTable<Id, T> {
    sessions: HashMap<Id, T>,
    deadlines: BTreeSet<(Instant, Id)>,
    scheduled: HashMap<Id, Instant>,
    /// Possibly changed since their timers were filed.
    touched: HashSet<Id>,
}

impl<Id, T> Default for TimerTable<Id, T> {
    fn default() -> Self {
        Self {
            sessions: HashMap::new(),
            deadlines: BTreeSet::new(),
            scheduled: HashMap::new(),
            touched: HashSet::new(),
        }
    }
}

impl<Id: Copy + Eq + Hash + Ord, T: Timed> TimerTable<Id, T> {
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn get(&self, id: &Id) -> Option<&T> {
        self.sessions.get(id)
    }

    pub fn get_mut(&mut self, id: &Id) -> Option<&mut T> {
        let session = self.sessions.get_mut(id)?;
        self.touched.insert(*id);
        Some(session)
    }

    pub fn insert(&mut self, id: Id, session: T) {
        self.sessions.insert(id, session);
        self.touched.insert(id);
    }

    pub fn remove(&mut self, id: &Id) -> Option<T> {
        self.touched.remove(id);
        if let Some(at) = self.scheduled.remove(id) {
            self.deadlines.remove(&(at, *id));
        }
        self.sessions.remove(id)
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.sessions.values()
    }

    /// The earliest timer of any session. A touched session's filed entry
    /// may be stale, so those are asked directly (an early wake-up from a
    /// stale entry finds nothing due and costs nothing more).
    pub fn next_timeout(&self) -> Option<Instant> {
        let filed = self.deadlines.first().map(|(at, _)| *at);
        let touched = self
            .touched
            .iter()
            .filter_map(|id| self.sessions.get(id)?.next_timeout());
        touched.chain(filed).min()
    }

    /// The sessions with a timer due at `now`, earliest first.
    pub fn due(&mut self, now: Instant) -> Vec<Id> {
        self.refile();
        self.deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    fn refile(&mut self) {
        for id in std::mem::take(&mut self.touched) {
            let next = self.sessions.get(&id).and_then(T::next_timeout);
            if self.scheduled.get(&id).copied() == next {
                continue;
            }
            if let Some(old) = self.scheduled.remove(&id) {
                self.deadlines.remove(&(old, id));
            }
            if let Some(at) = next {
                self.scheduled.insert(id, at);
                self.deadlines.insert((at, id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::ua::session::{Role, SessionState};
    use std::time::Duration;

    fn giving_up_at(at: Option<Instant>) -> Session {
        let mut s = Session::new(Role::Caller, SessionState::Calling);
        s.give_up_at = at;
        s
    }

    #[test]
    fn the_index_follows_every_change_made_through_get_mut() {
        let t0 = crate::test_clock::base();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut table = SessionTable::default();
        for i in 0..1000 {
            // Most sessions have no timer, as established ones don't.
            let timer = (i % 100 == 0).then(|| at(10 + i));
            table.insert(SessionId(i), giving_up_at(timer));
        }
        assert_eq!(table.next_timeout(), Some(at(10)));
        assert_eq!(table.due(at(10)), vec![SessionId(0)]);
        // Changed through get_mut: read before and after the refile.
        if let Some(s) = table.get_mut(&SessionId(0)) {
            s.give_up_at = None;
        }
        if let Some(s) = table.get_mut(&SessionId(555)) {
            s.give_up_at = Some(at(5));
        }
        assert_eq!(table.next_timeout(), Some(at(5)));
        assert_eq!(table.due(at(120)), vec![SessionId(555), SessionId(100)]);
        assert_eq!(table.next_timeout(), Some(at(5)));
        table.remove(&SessionId(555));
        assert_eq!(table.next_timeout(), Some(at(110)));
        assert!(table.due(at(109)).is_empty());
        for i in (100..1000).step_by(100) {
            table.remove(&SessionId(i));
        }
        assert_eq!(table.next_timeout(), None);
        assert!(table.due(at(10_000)).is_empty());
        assert_eq!(table.len(), 990);
    }
}
