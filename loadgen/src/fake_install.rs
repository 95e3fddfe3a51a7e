//! A simulated sensor's side of a fleet update (docs/protocol.md 12.3-12.6),
//! sans-I/O: told a `want` (from the collector's SUBSCRIBE body), it walks
//! through download, install, reboot and trial as timed state changes, and
//! ends `good` or, at a configured rate, `failed` or `rolled-back`.
//!
//! The sensor's shell feeds it the wants and `now`, sends each state it
//! hands out ([`FakeInstall::poll_report`]) as a NOTIFY, and wakes it at
//! [`FakeInstall::poll_timeout`]. The collector's rollout tests drive the
//! same machine on a virtual clock.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// `update=` of docs/protocol.md 12.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpdatePhase {
    Idle,
    Downloading,
    Downloaded,
    Installing,
    Installed,
    Rebooting,
    Trial,
    Good,
    Failed,
    RolledBack,
}

impl UpdatePhase {
    /// The value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdatePhase::Idle => "idle",
            UpdatePhase::Downloading => "downloading",
            UpdatePhase::Downloaded => "downloaded",
            UpdatePhase::Installing => "installing",
            UpdatePhase::Installed => "installed",
            UpdatePhase::Rebooting => "rebooting",
            UpdatePhase::Trial => "trial",
            UpdatePhase::Good => "good",
            UpdatePhase::Failed => "failed",
            UpdatePhase::RolledBack => "rolled-back",
        }
    }
}

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
    pub update: UpdatePhase,
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
    phase: UpdatePhase,
    target: Option<String>,
    reason: Option<String>,
    /// Versions it failed or rolled back from: never retried by itself (12.4).
    refused: Vec<String>,
    fault: Option<Fault>,
    /// The version of the slot that booted before the trial: what runs
    /// again after a rollback.
    fallback: Option<String>,
    next: Option<Instant>,
    changed: bool,
}

impl FakeInstall {
    /// A sensor running `version`, idle; `seed` makes its draws repeatable.
    pub fn new(version: &str, config: FakeInstallConfig, seed: u64) -> Self {
        FakeInstall {
            config,
            rng: StdRng::seed_from_u64(seed),
            version: version.to_string(),
            phase: UpdatePhase::Idle,
            target: None,
            reason: None,
            refused: Vec::new(),
            fault: None,
            fallback: None,
            next: None,
            // The first NOTIFY of a subscription carries the state (12.1).
            changed: true,
        }
    }

    pub fn report(&self) -> FakeReport {
        FakeReport {
            version: self.version.clone(),
            update: self.phase,
            target: self.target.clone(),
            reason: self.reason.clone(),
        }
    }

    /// The state to NOTIFY when it changed since the last call.
    pub fn poll_report(&mut self) -> Option<FakeReport> {
        std::mem::take(&mut self.changed).then(|| self.report())
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// The `want` of a SUBSCRIBE (initial or refresh), `None` without one.
    pub fn set_want(&mut self, want: Option<&str>, now: Instant) {
        let Some(want) = want else {
            // Withdrawn: a download stops, an install never does (12.4).
            if matches!(
                self.phase,
                UpdatePhase::Downloading | UpdatePhase::Downloaded
            ) {
                self.enter(UpdatePhase::Idle, None, None);
                self.target = None;
            }
            return;
        };
        let busy = matches!(
            self.phase,
            UpdatePhase::Downloading
                | UpdatePhase::Downloaded
                | UpdatePhase::Installing
                | UpdatePhase::Installed
                | UpdatePhase::Rebooting
                | UpdatePhase::Trial
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
        self.enter(UpdatePhase::Downloading, Some((now, step)), None);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next.is_none_or(|t| now < t) {
            return;
        }
        let c = self.config.clone();
        match (self.phase, self.fault) {
            (UpdatePhase::Downloading, Some(Fault::Download)) => {
                self.fail(UpdatePhase::Failed, "download: connection reset by peer")
            }
            (UpdatePhase::Downloading, _) => {
                self.enter(UpdatePhase::Installing, Some((now, c.install)), None)
            }
            (UpdatePhase::Installing, Some(Fault::Install)) => self.fail(
                UpdatePhase::Failed,
                "rauc install: signature verification failed",
            ),
            (UpdatePhase::Installing, _) => {
                // `installed` then at once `rebooting` (reboot=now).
                self.enter(UpdatePhase::Installed, None, None);
                self.enter(UpdatePhase::Rebooting, Some((now, c.reboot)), None);
            }
            (UpdatePhase::Rebooting, _) => {
                if let Some(t) = self.target.clone() {
                    self.fallback = Some(std::mem::replace(&mut self.version, t));
                }
                self.enter(UpdatePhase::Trial, Some((now, c.trial)), None);
            }
            (UpdatePhase::Trial, Some(Fault::Health)) => {
                self.fail(UpdatePhase::RolledBack, "health check: not streaming")
            }
            (UpdatePhase::Trial, _) => self.enter(UpdatePhase::Good, None, None),
            _ => self.next = None,
        }
    }

    fn fail(&mut self, phase: UpdatePhase, reason: &str) {
        if let Some(t) = self.target.clone() {
            if let Some(old) = self
                .fallback
                .take()
                .filter(|_| phase == UpdatePhase::RolledBack)
            {
                self.version = old;
            }
            self.refused.push(t);
        }
        self.enter(phase, None, Some(reason.to_string()));
    }

    fn enter(
        &mut self,
        phase: UpdatePhase,
        step: Option<(Instant, Duration)>,
        reason: Option<String>,
    ) {
        self.phase = phase;
        self.reason = reason;
        self.next = step.map(|(now, d)| now + self.jittered(d));
        self.changed = true;
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        let j = self.config.jitter.clamp(0.0, 1.0);
        if j == 0.0 {
            return d;
        }
        d.mul_f64(self.rng.random_range(1.0 - j..=1.0 + j))
    }
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
    fn run(f: &mut FakeInstall, mut now: Instant) -> (Vec<UpdatePhase>, Instant) {
        let mut seen = Vec::new();
        for _ in 0..20 {
            if let Some(r) = f.poll_report() {
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
        assert_eq!(f.poll_report().map(|r| r.update), Some(UpdatePhase::Idle));
        f.set_want(Some(NEW), t0);
        let (seen, end) = run(&mut f, t0);
        assert_eq!(
            seen,
            [
                UpdatePhase::Downloading,
                UpdatePhase::Installing,
                UpdatePhase::Rebooting,
                UpdatePhase::Trial,
                UpdatePhase::Good
            ]
        );
        assert_eq!(end - t0, Duration::from_secs(60 + 90 + 40 + 60));
        let r = f.report();
        assert_eq!((r.version.as_str(), r.target.as_deref()), (NEW, Some(NEW)));
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
        }
        assert_eq!(
            outcomes,
            [UpdatePhase::Failed, UpdatePhase::RolledBack].into()
        );
    }

    #[test]
    fn a_withdrawn_want_stops_a_download_but_not_an_install() {
        let t0 = Instant::now();
        let mut f = FakeInstall::new(OLD, fixed(0.0), 2);
        f.set_want(Some(NEW), t0);
        f.set_want(None, t0 + Duration::from_secs(10));
        assert_eq!(f.report().update, UpdatePhase::Idle);
        assert_eq!(f.poll_timeout(), None);
        f.set_want(Some(NEW), t0);
        f.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(f.report().update, UpdatePhase::Installing);
        f.set_want(None, t0 + Duration::from_secs(61));
        let (_, _) = run(&mut f, t0 + Duration::from_secs(61));
        assert_eq!(f.report().update, UpdatePhase::Good);
    }

    #[test]
    fn about_the_configured_share_of_installs_fail() {
        let t0 = Instant::now();
        let failures = (0..1000)
            .filter(|&seed| {
                let mut f = FakeInstall::new(OLD, fixed(0.05), seed);
                f.set_want(Some(NEW), t0);
                run(&mut f, t0);
                f.report().update != UpdatePhase::Good
            })
            .count();
        assert!((25..=80).contains(&failures), "{failures} of 1000");
    }
}
