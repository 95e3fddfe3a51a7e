//! Staged rollouts (docs/protocol.md 12.7), sans-I/O.
//!
//! A [`Rollout`] takes the sensors' reports (the NOTIFY bodies, 12.3) and
//! the wall clock `now_ns` (Unix nanoseconds: a rollout's timeouts must
//! survive a collector restart, which a monotonic instant does not), and
//! hands out [`Output`]s: the `want` to put in each sensor's subscription
//! (the subscription manager's `set_want` seam) and the [`RolloutEvent`]s
//! the shell records and logs. [`Rollout::poll_timeout`] says when to call
//! [`Rollout::handle_timeout`] next.
//!
//! Every decision is an event, and the events are all the state: the
//! store writes them as they come ([`store`]) and [`Rollout::resume`]
//! rebuilds the same rollout from what it wrote.

pub mod control;
mod model;
mod plan;
pub mod request;
pub mod service;
pub mod store;
#[cfg(test)]
mod tests;

pub use model::{
    Output, RolloutEvent, RolloutId, RolloutSnapshot, RolloutStatus, SensorPhase, SensorRecord,
    Tally,
};
pub use plan::{DEFAULT_GROWTH, DEFAULT_TIMEOUT, PlanError, RolloutPlan};
pub use sipsensor_protocol::fleet::{FleetState, FleetWant, RebootPolicy, UpdateState};

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::ops::Range;
use std::time::Duration;

/// Whether the sensor has begun writing its other slot: from here on a
/// `want` withdrawn no longer stops it (12.4: an install that has started
/// is never cancelled).
fn has_begun_installing(update: UpdateState) -> bool {
    matches!(
        update,
        UpdateState::Installing
            | UpdateState::Installed
            | UpdateState::Rebooting
            | UpdateState::Trial
    )
}

/// One staged rollout.
#[derive(Debug)]
pub struct Rollout {
    id: RolloutId,
    plan: RolloutPlan,
    created_ns: i64,
    waves: Vec<Range<usize>>,
    wave: Option<u32>,
    status: RolloutStatus,
    sensors: Vec<SensorRecord>,
    index: HashMap<String, usize>,
    /// The latest report of every sensor of the plan (targeted or not):
    /// a sensor already on the version is done when its wave starts.
    reports: HashMap<usize, FleetState>,
    out: VecDeque<Output>,
}

impl Rollout {
    /// Starts `plan`: `known` are the states the fleet view holds now; the
    /// canaries are targeted at once.
    pub fn start(
        id: RolloutId,
        plan: RolloutPlan,
        known: impl IntoIterator<Item = (String, FleetState)>,
        now_ns: i64,
    ) -> Result<Self, PlanError> {
        plan.validate()?;
        let sensors = plan
            .sensors
            .iter()
            .map(|s| SensorRecord {
                sensor: s.clone(),
                phase: SensorPhase::Pending,
                targeted_ns: None,
                finished_ns: None,
                last_update: None,
                detail: None,
            })
            .collect();
        let mut rollout = Self::build(RolloutSnapshot {
            id,
            plan,
            created_ns: now_ns,
            status: RolloutStatus::Running,
            wave: None,
            sensors,
        });
        for (sensor, state) in known {
            if let Some(&i) = rollout.index.get(&sensor) {
                rollout.reports.insert(i, state);
            }
        }
        rollout.advance(now_ns);
        Ok(rollout)
    }

    /// Rebuilds a rollout from what the store wrote. The sensors still
    /// targeted are told the `want` again (the subscriptions' wants lived
    /// in the process that stopped); call [`Rollout::handle_timeout`] next,
    /// which fails the sensors whose time ran out in the meantime.
    pub fn resume(snapshot: RolloutSnapshot) -> Self {
        let mut rollout = Self::build(snapshot);
        if rollout.status == RolloutStatus::Running {
            for i in 0..rollout.sensors.len() {
                if rollout.sensors[i].phase == SensorPhase::Targeted {
                    rollout.tell_want(i);
                }
            }
        }
        rollout
    }

    fn build(snapshot: RolloutSnapshot) -> Self {
        let index = snapshot
            .sensors
            .iter()
            .enumerate()
            .map(|(i, s)| (s.sensor.clone(), i))
            .collect();
        Rollout {
            id: snapshot.id,
            waves: snapshot.plan.waves(),
            plan: snapshot.plan,
            created_ns: snapshot.created_ns,
            wave: snapshot.wave,
            status: snapshot.status,
            sensors: snapshot.sensors,
            index,
            reports: HashMap::new(),
            out: VecDeque::new(),
        }
    }

    pub fn id(&self) -> RolloutId {
        self.id
    }

    pub fn plan(&self) -> &RolloutPlan {
        &self.plan
    }

    pub fn status(&self) -> &RolloutStatus {
        &self.status
    }

    /// The wave last started (0 the canaries) and how many there are.
    pub fn wave(&self) -> (Option<u32>, usize) {
        (self.wave, self.waves.len())
    }

    pub fn sensors(&self) -> &[SensorRecord] {
        &self.sensors
    }

    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for s in &self.sensors {
            match s.phase {
                SensorPhase::Pending => t.pending += 1,
                SensorPhase::Targeted => t.targeted += 1,
                SensorPhase::Done => t.done += 1,
                SensorPhase::Failed => t.failed += 1,
                SensorPhase::Stopped => t.stopped += 1,
            }
        }
        t
    }

    /// The state the store would give back now.
    pub fn snapshot(&self) -> RolloutSnapshot {
        RolloutSnapshot {
            id: self.id,
            plan: self.plan.clone(),
            created_ns: self.created_ns,
            status: self.status.clone(),
            wave: self.wave,
            sensors: self.sensors.clone(),
        }
    }

    /// A sensor's NOTIFY. Sensors outside the plan are ignored.
    pub fn report(&mut self, sensor: &str, state: FleetState, now_ns: i64) {
        let Some(&i) = self.index.get(sensor) else {
            return;
        };
        if self.sensors[i].phase == SensorPhase::Targeted {
            if self.sensors[i].last_update != Some(state.update) {
                self.sensors[i].last_update = Some(state.update);
                self.emit(RolloutEvent::SensorUpdate {
                    sensor: sensor.to_string(),
                    update: state.update,
                });
            }
            match self.judge(&state) {
                Verdict::Done => self.finish_sensor(i, SensorPhase::Done, None, now_ns),
                Verdict::Failed(why) => {
                    self.finish_sensor(i, SensorPhase::Failed, Some(why), now_ns)
                }
                Verdict::Waiting => {}
            }
        }
        self.reports.insert(i, state);
        self.advance(now_ns);
    }

    /// Fails the targeted sensors whose `--timeout` has passed and starts
    /// what follows.
    pub fn handle_timeout(&mut self, now_ns: i64) {
        let timeout = duration_ns(self.plan.timeout);
        for i in 0..self.sensors.len() {
            let s = &self.sensors[i];
            if s.phase != SensorPhase::Targeted {
                continue;
            }
            let Some(targeted) = s.targeted_ns else {
                continue;
            };
            if now_ns.saturating_sub(targeted) < timeout {
                continue;
            }
            let last = match (s.last_update, self.reports.get(&i)) {
                (Some(u), _) => format!("last reported {u}"),
                (None, Some(r)) => format!("last reported {}", r.update),
                (None, None) => "no report".to_string(),
            };
            let why = format!(
                "not good within {} ({last})",
                human_duration(self.plan.timeout)
            );
            let installing = s.last_update.is_some_and(has_begun_installing);
            self.finish_sensor(i, SensorPhase::Failed, Some(why), now_ns);
            // One that timed out before installing would otherwise start
            // later, outside the wave's accounting.
            if !installing {
                self.withdraw_want(i);
            }
        }
        self.advance(now_ns);
    }

    /// The operator's `update halt`.
    pub fn halt(&mut self, reason: &str, now_ns: i64) {
        if self.status == RolloutStatus::Running {
            self.halt_with(reason.to_string(), now_ns);
        }
    }

    /// When [`Rollout::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<i64> {
        let timeout = duration_ns(self.plan.timeout);
        self.sensors
            .iter()
            .filter(|s| s.phase == SensorPhase::Targeted)
            .filter_map(|s| s.targeted_ns)
            .min()
            .map(|t| t.saturating_add(timeout))
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn judge(&self, state: &FleetState) -> Verdict {
        let version = self.plan.version();
        let about_version = state.target.as_deref() == Some(version);
        match state.update {
            UpdateState::Failed | UpdateState::RolledBack if about_version => {
                let what = if state.update == UpdateState::Failed {
                    "failed"
                } else {
                    "rolled back"
                };
                Verdict::Failed(match &state.reason {
                    Some(r) => format!("{what} ({r})"),
                    None => what.to_string(),
                })
            }
            // A trial is not good yet (12.6).
            UpdateState::Trial => Verdict::Waiting,
            // Running the version and not on trial: `good` after an update,
            // or `idle` (or a stale result about another version) on a
            // sensor that ran it before.
            _ if state.version == version => Verdict::Done,
            _ => Verdict::Waiting,
        }
    }

    fn finish_sensor(&mut self, i: usize, phase: SensorPhase, why: Option<String>, now_ns: i64) {
        let s = &mut self.sensors[i];
        s.phase = phase;
        s.finished_ns = Some(now_ns);
        s.detail.clone_from(&why);
        let sensor = s.sensor.clone();
        self.emit(match (phase, why) {
            (SensorPhase::Failed, Some(why)) => RolloutEvent::SensorFailed {
                sensor,
                at_ns: now_ns,
                why,
            },
            (SensorPhase::Stopped, Some(why)) => RolloutEvent::SensorStopped {
                sensor,
                at_ns: now_ns,
                why,
            },
            _ => RolloutEvent::SensorDone {
                sensor,
                at_ns: now_ns,
            },
        });
    }

    fn failures(&self) -> usize {
        self.sensors
            .iter()
            .filter(|s| s.phase == SensorPhase::Failed)
            .count()
    }

    /// Halts past the threshold, else starts the next wave when the
    /// current one is settled, else finishes.
    fn advance(&mut self, now_ns: i64) {
        while self.status == RolloutStatus::Running {
            let failures = self.failures();
            if failures > usize::try_from(self.plan.max_failures).unwrap_or(usize::MAX) {
                let reason = self.threshold_reason(failures);
                self.halt_with(reason, now_ns);
                return;
            }
            if let Some(w) = self.wave {
                let current = self.waves[w as usize].clone();
                if self.sensors[current]
                    .iter()
                    .any(|s| s.phase == SensorPhase::Targeted)
                {
                    return;
                }
            }
            let next = self.wave.map_or(0, |w| w + 1);
            let Some(range) = self.waves.get(next as usize).cloned() else {
                self.status = RolloutStatus::Finished;
                self.emit(RolloutEvent::Finished { at_ns: now_ns });
                return;
            };
            self.start_wave(next, range, now_ns);
        }
    }

    fn start_wave(&mut self, wave: u32, range: Range<usize>, now_ns: i64) {
        self.wave = Some(wave);
        self.emit(RolloutEvent::WaveStarted {
            wave,
            at_ns: now_ns,
            first: range.start,
            count: range.len(),
        });
        for i in range {
            self.sensors[i].phase = SensorPhase::Targeted;
            self.sensors[i].targeted_ns = Some(now_ns);
            match self.reports.get(&i).map(|r| self.judge(r)) {
                // Already on the version: done at once, nothing to tell it.
                Some(Verdict::Done) => self.finish_sensor(i, SensorPhase::Done, None, now_ns),
                // It failed this version before (an earlier rollout) and an
                // agent never retries a version it failed (12.4).
                Some(Verdict::Failed(why)) => {
                    self.finish_sensor(i, SensorPhase::Failed, Some(why), now_ns)
                }
                // A sensor offline now simply waits: its timeout runs.
                Some(Verdict::Waiting) | None => self.tell_want(i),
            }
        }
    }

    fn halt_with(&mut self, reason: String, now_ns: i64) {
        self.status = RolloutStatus::Halted {
            reason: reason.clone(),
        };
        // Only those that have not begun installing can still stop (12.4).
        for i in 0..self.sensors.len() {
            let s = &self.sensors[i];
            if s.phase == SensorPhase::Targeted && !s.last_update.is_some_and(has_begun_installing)
            {
                self.finish_sensor(
                    i,
                    SensorPhase::Stopped,
                    Some("the rollout halted".into()),
                    now_ns,
                );
                self.withdraw_want(i);
            }
        }
        self.emit(RolloutEvent::Halted {
            at_ns: now_ns,
            reason,
        });
    }

    /// `3 failures > --max-failures 2: s7 rolled back (health check: not
    /// streaming), ...` (12.7).
    fn threshold_reason(&self, failures: usize) -> String {
        let mut reason = format!(
            "{failures} failures > --max-failures {}:",
            self.plan.max_failures
        );
        let failed = self
            .sensors
            .iter()
            .filter(|s| s.phase == SensorPhase::Failed);
        for (n, s) in failed.enumerate() {
            let sep = if n == 0 { " " } else { ", " };
            let why = s.detail.as_deref().unwrap_or("failed");
            let _ = write!(reason, "{sep}{} {why}", s.sensor);
        }
        reason
    }

    fn tell_want(&mut self, i: usize) {
        self.out.push_back(Output::SetWant {
            sensor: self.sensors[i].sensor.clone(),
            want: Some(self.plan.want.clone()),
        });
    }

    fn withdraw_want(&mut self, i: usize) {
        self.out.push_back(Output::SetWant {
            sensor: self.sensors[i].sensor.clone(),
            want: None,
        });
    }

    fn emit(&mut self, event: RolloutEvent) {
        self.out.push_back(Output::Event(event));
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Waiting,
    Done,
    Failed(String),
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// `30m`, `90s`, `2h`, `1h30m`: how `--timeout` is written.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if sec > 0 || out.is_empty() {
        let _ = write!(out, "{sec}s");
    }
    out
}
