//! A simulated fleet on a virtual clock: one fake install of the load
//! generator per sensor ([`FakeInstall`]), driven by a [`Rollout`]'s wants,
//! its state changes fed back as reports.

use super::super::{FleetState, Output, Rollout, RolloutEvent, RolloutStatus, UpdateState};
use super::{OLD, T0, state};
use sipsensor_loadgen::fake_install::{FakeInstall, FakeInstallConfig, FakeReport};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Sim {
    base: Instant,
    pub now: Instant,
    names: Vec<String>,
    index: HashMap<String, usize>,
    sensors: Vec<FakeInstall>,
}

impl Sim {
    /// `n` sensors `s0`.. on the old version; a share `failure_rate` of
    /// installs fails, drawn from `seed`.
    pub fn new(n: usize, failure_rate: f64, seed: u64) -> Self {
        let config = FakeInstallConfig {
            failure_rate,
            ..FakeInstallConfig::default()
        };
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let seeds = (0u64..).map(|i| seed.wrapping_mul(1_000_003).wrapping_add(i));
        let base = Instant::now();
        Sim {
            base,
            now: base,
            index: names.iter().cloned().zip(0..).collect(),
            sensors: seeds
                .take(n)
                .map(|s| FakeInstall::new(OLD, config.clone(), s))
                .collect(),
            names,
        }
    }

    pub fn now_ns(&self) -> i64 {
        T0 + i64::try_from((self.now - self.base).as_nanos()).unwrap_or(i64::MAX)
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// What the fleet view holds now: every sensor's state.
    pub fn known(&self) -> Vec<(String, FleetState)> {
        self.names
            .iter()
            .zip(&self.sensors)
            .map(|(n, s)| (n.clone(), fleet_state(s.report())))
            .collect()
    }

    /// One round: the rollout's wants to the sensors, their new states to
    /// the rollout; when neither has anything, the clock moves to the next
    /// timer. Returns the rollout's events of the round, `None` when
    /// nothing is left to happen.
    pub fn step(&mut self, rollout: &mut Rollout) -> Option<Vec<RolloutEvent>> {
        let mut events = Vec::new();
        let mut busy = self.deliver(rollout, &mut events);
        let now_ns = self.now_ns();
        for (i, s) in self.sensors.iter_mut().enumerate() {
            if let Some(report) = s.poll_report() {
                busy = true;
                rollout.report(&self.names[i], fleet_state(report), now_ns);
            }
        }
        if busy {
            return Some(events);
        }
        let next_sensor = self.sensors.iter().filter_map(|s| s.poll_timeout()).min();
        let next_rollout = rollout
            .poll_timeout()
            .map(|ns| self.base + Duration::from_nanos(u64::try_from(ns - T0).unwrap_or(0)));
        let next = [next_sensor, next_rollout].into_iter().flatten().min()?;
        self.now = self.now.max(next);
        for s in &mut self.sensors {
            s.handle_timeout(self.now);
        }
        rollout.handle_timeout(self.now_ns());
        Some(events)
    }

    /// Carries out the rollout's outputs: wants to the sensors, events
    /// into `events`. Whether there were any.
    fn deliver(&mut self, rollout: &mut Rollout, events: &mut Vec<RolloutEvent>) -> bool {
        let mut any = false;
        while let Some(out) = rollout.poll_output() {
            any = true;
            match out {
                Output::SetWant { sensor, want } => {
                    if let Some(&i) = self.index.get(&sensor) {
                        let version = want.as_ref().map(|w| w.version.as_str());
                        self.sensors[i].set_want(version, self.now);
                    }
                }
                Output::Event(e) => events.push(e),
            }
        }
        any
    }

    /// Runs until the rollout halts or finishes; its events in order.
    pub fn run(&mut self, rollout: &mut Rollout) -> Vec<RolloutEvent> {
        let mut all = Vec::new();
        while rollout.status() == &RolloutStatus::Running {
            match self.step(rollout) {
                Some(events) => all.extend(events),
                None => break,
            }
        }
        // What the last round decided (the halt's stops, say).
        self.deliver(rollout, &mut all);
        all
    }
}

fn fleet_state(r: FakeReport) -> FleetState {
    let update = UpdateState::parse(r.update.as_str()).unwrap_or(UpdateState::Idle);
    FleetState {
        target: r.target,
        reason: r.reason,
        ..state(&r.version, update, None)
    }
}
