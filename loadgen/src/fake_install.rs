//! A simulated sensor's side of a fleet update (docs/protocol.md 12.3-12.6),
//! sans-I/O: told a `want` (from the collector's SUBSCRIBE body), it walks
//! through download, install, reboot and trial as timed state changes, and
//! ends `good` or, at a configured rate, `failed` or `rolled-back`.
//!
//! The sensor's shell ([`crate::fleet::FleetNotifier`]) feeds it the wants
//! and `now`, sends each state it hands out ([`FakeInstall::poll_report`])
//! as a NOTIFY, and wakes it at [`FakeInstall::poll_timeout`]. The
//! collector's rollout tests drive the same machine on a virtual clock.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sipsensor_protocol::fleet::UpdateState;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long each step takes and how often an install goes wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeInstallConfig {
    pub download: Duration,
    pub install: Duration,
    /// From `rebooting` to the new slot up (`trial`).
    pub reboot: Duration,
    /// The health check (12.6): `trial` to `good`.
    pub trial: Duration,
    /// Each step's time is drawn from ±`jitter` (0 to 1) of its value,
    /// so that a wave's sensors do not finish in lock step.
    pub jitter: f64,
    /// The share of installs that fail (0 to 1), at a step drawn at random:
    /// the download, `rauc install`, or the health check (a rollback).
    pub failure_rate: f64,
}

impl Default for FakeInstallConfig {
    /// A small board on a slow link: about 4 minutes from `want` to `good`.
    fn default() -> Self {
        FakeInstallConfig {
            download: Duration::from_secs(60),
            install: Duration::from_secs(90),
            reboot: Duration::from_secs(40),
            trial: Duration::from_secs(60),
            jitter: 0.5,
            failure_rate: 0.0,
        }
    }
}

/// The state a NOTIFY carries (the fields of 12.3 that change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeReport {
    pub version: String,
    /// The booted slot's bootname: `A`, `B` after an update booted the
    /// other one, `A` again after a rollback.
    pub slot: &'static str,
    pub update: UpdateState,
    pub target: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Download,
    Install,
    Health,
}

/// One simulated sensor's updater.
#[derive(Debug)]
pub struct FakeInstall {
    config: FakeInstallConfig,
    rng: StdRng,
    version: String,
    phase: UpdateState,
    target: Option<String>,
    reason: Option<String>,
    /// Versions it failed or rolled back from: never retried by itself (12.4).
    refused: Vec<String>,
    fault: Option<Fault>,
    /// The version of the slot that booted before the trial: what runs
    /// again after a rollback.
    fallback: Option<String>,
    slot: &'static str,
    /// The current timed step: when it began and how long it takes.
    step: Option<(Instant, Duration)>,
    /// States entered and not yet handed out: each one is a NOTIFY (12.1),
    /// `installed` too though `rebooting` follows at the same instant.
    reports: VecDeque<FakeReport>,
}

impl FakeInstall {
    /// A sensor running `version`, idle; `seed` makes its draws repeatable.
    pub fn new(version: &str, config: FakeInstallConfig, seed: u64) -> Self {
        let mut f = FakeInstall {
            config,
            rng: StdRng::seed_from_u64(seed),
            version: version.to_string(),
            phase: UpdateState::Idle,
            target: None,
            reason: None,
            refused: Vec::new(),
            fault: None,
            fallback: None,
            slot: "A",
            step: None,
            reports: VecDeque::new(),
        };
        // The first NOTIFY of a subscription carries the state (12.1).
        f.reports.push_back(f.report());
        f
    }

    pub fn report(&self) -> FakeReport {
        FakeReport {
            version: self.version.clone(),
            slot: self.slot,
            update: self.phase,
            target: self.target.clone(),
            reason: self.reason.clone(),
        }
    }

    /// Where the update stands now.
    pub fn update(&self) -> UpdateState {
        self.phase
    }

    /// The next state to NOTIFY, oldest first: each state entered since
    /// the last call.
    pub fn poll_report(&mut self) -> Option<FakeReport> {
        self.reports.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.step.map(|(start, length)| start + length)
    }

    /// Whole percent of the current download or install (12.3 `progress`).
    pub fn progress(&self, now: Instant) -> Option<u8> {
        let (start, length) = self.step.filter(|_| self.phase.has_progress())?;
        let done = now.saturating_duration_since(start).as_secs_f64();
        let share = if length.is_zero() {
            1.0
        } else {
            done / length.as_secs_f64()
        };
        // A float in 0..=100 after the clamp: the cast cannot wrap.
        Some((share.clamp(0.0, 1.0) * 100.0).floor() as u8)
    }

    /// The `want` of a SUBSCRIBE (initial or refresh), `None` without one.
    pub fn set_want(&mut self, want: Option<&str>, now: Instant) {
        let Some(want) = want else {
            // The "clear" of 12.4: a failed version may be wanted again.
            self.refused.clear();
            // Withdrawn: a download stops, an install never does (12.4).
            if matches!(
                self.phase,
                UpdateState::Downloading | UpdateState::Downloaded
            ) {
                self.target = None;
                self.enter(UpdateState::Idle, None, None);
            }
            return;
        };
        let busy = matches!(
            self.phase,
            UpdateState::Downloading
                | UpdateState::Downloaded
                | UpdateState::Installing
                | UpdateState::Installed
                | UpdateState::Rebooting
                | UpdateState::Trial
        );
        if want == self.version
            || self.refused.iter().any(|r| r == want)
            || (busy && self.target.as_deref() == Some(want))
        {
            return;
        }
        self.target = Some(want.to_string());
        self.reason = None;
        self.fault = self
            .rng
            .random_bool(self.config.failure_rate.clamp(0.0, 1.0))
            .then(|| match self.rng.random_range(0..3) {
                0 => Fault::Download,
                1 => Fault::Install,
                _ => Fault::Health,
            });
        let step = self.config.download;
        self.enter(UpdateState::Downloading, Some((now, step)), None);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_none_or(|t| now < t) {
            return;
        }
        let c = self.config.clone();
        match (self.phase, self.fault) {
            (UpdateState::Downloading, Some(Fault::Download)) => {
                self.fail(UpdateState::Failed, "download: connection reset by peer")
            }
            (UpdateState::Downloading, _) => {
                self.enter(UpdateState::Installing, Some((now, c.install)), None)
            }
            (UpdateState::Installing, Some(Fault::Install)) => self.fail(
                UpdateState::Failed,
                "rauc install: signature verification failed",
            ),
            (UpdateState::Installing, _) => {
                // `installed` then at once `rebooting` (reboot=now).
                self.enter(UpdateState::Installed, None, None);
                self.enter(UpdateState::Rebooting, Some((now, c.reboot)), None);
            }
            (UpdateState::Rebooting, _) => {
                if let Some(t) = self.target.clone() {
                    self.fallback = Some(std::mem::replace(&mut self.version, t));
                    self.slot = other_slot(self.slot);
                }
                self.enter(UpdateState::Trial, Some((now, c.trial)), None);
            }
            (UpdateState::Trial, Some(Fault::Health)) => {
                self.fail(UpdateState::RolledBack, "health check: not streaming")
            }
            (UpdateState::Trial, _) => self.enter(UpdateState::Good, None, None),
            _ => self.step = None,
        }
    }

    fn fail(&mut self, phase: UpdateState, reason: &str) {
        if let Some(t) = self.target.clone() {
            if let Some(old) = self
                .fallback
                .take()
                .filter(|_| phase == UpdateState::RolledBack)
            {
                self.version = old;
                self.slot = other_slot(self.slot);
            }
            self.refused.push(t);
        }
        self.enter(phase, None, Some(reason.to_string()));
    }

    fn enter(
        &mut self,
        phase: UpdateState,
        step: Option<(Instant, Duration)>,
        reason: Option<String>,
    ) {
        self.phase = phase;
        self.reason = reason;
        self.step = step.map(|(now, d)| (now, self.jittered(d)));
        self.reports.push_back(self.report());
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        let j = self.config.jitter.clamp(0.0, 1.0);
        if j == 0.0 {
            return d;
        }
        d.mul_f64(self.rng.random_range(1.0 - j..=1.0 + j))
    }
}

fn other_slot(slot: &str) -> &'static str {
    if slot == "A" { "B" } else { "A" }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "2026.12.1";
    const NEW: &str = "2026.12.2";

    fn fixed(failure_rate: f64) -> FakeInstallConfig {
        FakeInstallConfig {
            jitter: 0.0,
            failure_rate,
            ..FakeInstallConfig::default()
        }
    }

    /// Runs the machine until it rests; the phases it reported, in order.
    fn run(f: &mut FakeInstall, mut now: Instant) -> (Vec<UpdateState>, Instant) {
        let mut seen = Vec::new();
        for _ in 0..20 {
            while let Some(r) = f.poll_report() {
                seen.push(r.update);
            }
            let Some(t) = f.poll_timeout() else {
                return (seen, now);
            };
            now = t;
            f.handle_timeout(now);
        }
        panic!("no rest after 20 steps: {seen:?}");
    }

    #[test]
    fn a_want_walks_through_every_step_to_good_on_the_new_version() {
        let t0 = Instant::now();
        let mut f = FakeInstall::new(OLD, fixed(0.0), 1);
        assert_eq!(f.poll_report().map(|r| r.update), Some(UpdateState::Idle));
        f.set_want(Some(NEW), t0);
        let (seen, end) = run(&mut f, t0);
        assert_eq!(
            seen,
            [
                UpdateState::Downloading,
                UpdateState::Installing,
                UpdateState::Installed,
                UpdateState::Rebooting,
                UpdateState::Trial,
                UpdateState::Good
            ]
        );
        assert_eq!(end - t0, Duration::from_secs(60 + 90 + 40 + 60));
        let r = f.report();
        assert_eq!((r.version.as_str(), r.target.as_deref()), (NEW, Some(NEW)));
        assert_eq!(r.slot, "B", "the update booted the other slot");
        // The same want again, or the running version: nothing to do.
        f.set_want(Some(NEW), end);
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn a_failing_install_reports_why_and_is_not_retried() {
        let t0 = Instant::now();
        let mut outcomes = std::collections::HashSet::new();
        for seed in 0..30 {
            let mut f = FakeInstall::new(OLD, fixed(1.0), seed);
            f.set_want(Some(NEW), t0);
            let (_, end) = run(&mut f, t0);
            let r = f.report();
            // Failed before the reboot, or rolled back to the old slot.
            assert_eq!(r.version, OLD, "seed {seed}");
            assert_eq!(r.target.as_deref(), Some(NEW));
            assert!(r.reason.is_some());
            outcomes.insert(r.update);
            f.set_want(Some(NEW), end);
            assert_eq!(f.poll_timeout(), None, "retried by itself");
            // Cleared, then wanted again: a new attempt (12.4).
            f.set_want(None, end);
            f.set_want(Some(NEW), end);
            assert_eq!(f.report().update, UpdateState::Downloading, "seed {seed}");
        }
        assert_eq!(
            outcomes,
            [UpdateState::Failed, UpdateState::RolledBack].into()
        );
    }

    #[test]
    fn a_withdrawn_want_stops_a_download_but_not_an_install() {
        let t0 = Instant::now();
        let mut f = FakeInstall::new(OLD, fixed(0.0), 2);
        f.set_want(Some(NEW), t0);
        f.set_want(None, t0 + Duration::from_secs(10));
        let withdrawn = std::iter::from_fn(|| f.poll_report()).last();
        assert_eq!(
            withdrawn.map(|r| (r.update, r.target)),
            Some((UpdateState::Idle, None))
        );
        assert_eq!(f.poll_timeout(), None);
        f.set_want(Some(NEW), t0);
        f.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(f.report().update, UpdateState::Installing);
        f.set_want(None, t0 + Duration::from_secs(61));
        let (_, _) = run(&mut f, t0 + Duration::from_secs(61));
        assert_eq!(f.report().update, UpdateState::Good);
    }

    #[test]
    fn about_the_configured_share_of_installs_fail() {
        let t0 = Instant::now();
        let failures = (0..1000)
            .filter(|&seed| {
                let mut f = FakeInstall::new(OLD, fixed(0.05), seed);
                f.set_want(Some(NEW), t0);
                run(&mut f, t0);
                f.report().update != UpdateState::Good
            })
            .count();
        assert!((25..=80).contains(&failures), "{failures} of 1000");
    }

    #[test]
    fn progress_counts_through_a_download_and_an_install_only() {
        let t0 = Instant::now();
        let mut f = FakeInstall::new(OLD, fixed(0.0), 3);
        assert_eq!(f.progress(t0), None, "idle");
        f.set_want(Some(NEW), t0);
        assert_eq!(f.progress(t0), Some(0));
        assert_eq!(f.progress(t0 + Duration::from_secs(15)), Some(25));
        assert_eq!(f.progress(t0 + Duration::from_secs(600)), Some(100));
        f.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(f.report().update, UpdateState::Installing);
        assert_eq!(f.progress(t0 + Duration::from_secs(105)), Some(50));
        f.handle_timeout(t0 + Duration::from_secs(150));
        assert_eq!(f.report().update, UpdateState::Rebooting);
        assert_eq!(f.progress(t0 + Duration::from_secs(160)), None);
    }

    #[test]
    fn a_rollback_runs_the_old_version_on_the_old_slot_again() {
        let t0 = Instant::now();
        let rolled_back = (0..200)
            .find_map(|seed| {
                let mut f = FakeInstall::new(OLD, fixed(1.0), seed);
                f.set_want(Some(NEW), t0);
                let (seen, _) = run(&mut f, t0);
                seen.contains(&UpdateState::Trial)
                    .then_some((seen, f.report()))
            })
            .expect("some seed fails at the health check");
        let (seen, r) = rolled_back;
        assert_eq!(seen.last(), Some(&UpdateState::RolledBack));
        assert_eq!((r.version.as_str(), r.slot), (OLD, "A"));
        assert_eq!(r.reason.as_deref(), Some("health check: not streaming"));
    }
}
