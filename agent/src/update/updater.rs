//! [`Updater`]: the rules of docs/protocol.md 12.3-12.6, sans-I/O.
//!
//! Inputs: the collector's want, the shell's results (download progress
//! and end, verification, `rauc install`, the health record), the
//! monotonic clock (`now`) and, for the maintenance window, the wall
//! clock. Outputs: [`Action`]s, the [`FleetState`]s to send (a change at
//! once, progress at most once per `progress_interval`), and when to be
//! woken ([`Updater::poll_timeout`]).

use super::board::{Board, BundleFile, OtaRecord};
use super::journal::{Journal, Step};
use super::window::Window;
use super::{FleetState, FleetWant, RebootPolicy, UpdateState};
use crate::backoff::Backoff;
use sipsensor_protocol::{IdGenerator, fleet};
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

mod resume;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `update.enabled`: `false` refuses every want (the state is still
    /// reported).
    pub enabled: bool,
    /// The `agent` of every state.
    pub agent_version: String,
    /// `update.window`; without one `reboot=window` reboots at once (a
    /// rollout waiting for a window the sensor does not have would only
    /// time out).
    pub window: Option<Window>,
    /// Progress is reported at most this often (12.1: 5 s).
    pub progress_interval: Duration,
    /// Back-off between download attempts after an interruption.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How often the health record is read during a trial.
    pub health_poll: Duration,
    /// How long after a failed reboot command it is tried again.
    pub reboot_retry: Duration,
    /// The longest sleep while waiting for the window: the wall clock is
    /// read again then (it may have been stepped, e.g. by NTP at boot).
    pub window_recheck: Duration,
}

impl Settings {
    pub fn new(agent_version: String, window: Option<Window>) -> Self {
        Settings {
            enabled: true,
            agent_version,
            window,
            progress_interval: Duration::from_secs(5),
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            health_poll: Duration::from_secs(10),
            reboot_retry: Duration::from_secs(60),
            window_recheck: Duration::from_secs(600),
        }
    }
}

/// What the updater asks its shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Fetch `url` into `<sha256>.raucb.part`, keeping its first `offset`
    /// bytes (`Range: bytes=offset-`, 12.5); report with
    /// [`Updater::download_progress`] and [`Updater::download_ended`].
    Download {
        sha256: String,
        url: String,
        size: u64,
        offset: u64,
    },
    /// Stop the running download (its file stays for a later resume).
    CancelDownload,
    /// Check that the part file has `size` bytes hashing to `sha256`;
    /// rename it to `<sha256>.raucb` if so, delete it if not. Report with
    /// [`Updater::verified`].
    Verify { sha256: String, size: u64 },
    /// `rauc install <sha256>.raucb`; report with
    /// [`Updater::install_progress`] and [`Updater::install_ended`].
    Install { sha256: String },
    /// Write the journal (durably) before going on.
    Record(Journal),
    /// Delete the bundle files in the download directory but this one.
    RemoveBundles { keep: Option<String> },
    /// Read `<data>/ota` and hand it to [`Updater::health_read`].
    ReadHealth,
    /// Send the states taken so far and end the subscriptions (the last
    /// NOTIFY, 12.1), then run the reboot command; report a failure with
    /// [`Updater::reboot_failed`].
    Reboot,
}

/// How a download ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadEnd {
    /// `size` bytes are in the part file.
    Complete,
    /// Network, timeout, a server error: resumed after a back-off.
    Interrupted(String),
    /// The server refuses the bundle (a 4xx other than 416): failed.
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    Downloading {
        job: FleetWant,
        /// Bytes in the part file.
        have: u64,
        retry_at: Option<Instant>,
    },
    Verifying {
        job: FleetWant,
    },
    Installing {
        job: FleetWant,
        progress: u8,
    },
    /// Written; waiting for the window.
    Installed {
        target: String,
        reboot: RebootPolicy,
        recheck_at: Option<Instant>,
    },
    Rebooting {
        target: String,
        retry_at: Option<Instant>,
    },
    Trial {
        target: String,
        read_at: Instant,
    },
    Good {
        target: String,
    },
    Failed {
        target: String,
        reason: String,
    },
    RolledBack {
        target: String,
        reason: String,
    },
}

#[derive(Debug)]
pub struct Updater {
    settings: Settings,
    version: String,
    compatible: String,
    slot: Option<String>,
    boot_id: String,
    phase: Phase,
    /// A target that failed or rolled back: not tried again until the
    /// collector clears its want (12.4).
    blocked: Option<String>,
    /// The last journal read or written.
    journal: Option<Journal>,
    /// Bundle files found at start, for a resume.
    on_disk: Vec<BundleFile>,
    backoff: Backoff,
    ids: IdGenerator,
    actions: VecDeque<Action>,
    states: VecDeque<FleetState>,
    last_state: Option<FleetState>,
    last_progress_at: Option<Instant>,
    /// A progress change held back until then.
    progress_due: Option<Instant>,
}

impl Updater {
    /// Takes up where the board left off (a reboot, a power cut, a
    /// restart of the agent).
    pub fn new(settings: Settings, board: Board, ids: IdGenerator, now: Instant) -> Self {
        let backoff = Backoff::new(settings.retry_initial, settings.retry_max);
        let mut updater = Updater {
            settings,
            version: board.version.clone(),
            compatible: board.compatible.clone(),
            slot: board.slot.clone(),
            boot_id: board.boot_id.clone(),
            phase: Phase::Idle,
            blocked: None,
            journal: board.journal.clone(),
            on_disk: board.bundles.clone(),
            backoff,
            ids,
            actions: VecDeque::new(),
            states: VecDeque::new(),
            last_state: None,
            last_progress_at: None,
            progress_due: None,
        };
        updater.resume(&board, now);
        updater.report(now);
        updater
    }

    /// The state now: the first NOTIFY of a new subscription (12.1).
    pub fn state(&self) -> FleetState {
        let (update, target, progress, reason) = match &self.phase {
            Phase::Idle => (UpdateState::Idle, None, None, None),
            Phase::Downloading { job, have, .. } => {
                let percent = (u128::from(*have) * 100 / u128::from(job.size.max(1))).min(100);
                (
                    UpdateState::Downloading,
                    Some(&job.version),
                    Some(u8::try_from(percent).unwrap_or(100)),
                    None,
                )
            }
            Phase::Verifying { job } => (
                UpdateState::Downloading,
                Some(&job.version),
                Some(100),
                None,
            ),
            Phase::Installing { job, progress } => (
                UpdateState::Installing,
                Some(&job.version),
                Some(*progress),
                None,
            ),
            Phase::Installed { target, .. } => (UpdateState::Installed, Some(target), None, None),
            Phase::Rebooting { target, .. } => (UpdateState::Rebooting, Some(target), None, None),
            Phase::Trial { target, .. } => (UpdateState::Trial, Some(target), None, None),
            Phase::Good { target } => (UpdateState::Good, Some(target), None, None),
            Phase::Failed { target, reason } => {
                (UpdateState::Failed, Some(target), None, Some(reason))
            }
            Phase::RolledBack { target, reason } => {
                (UpdateState::RolledBack, Some(target), None, Some(reason))
            }
        };
        FleetState {
            version: self.version.clone(),
            agent: self.settings.agent_version.clone(),
            compatible: self.compatible.clone(),
            slot: self.slot.clone().unwrap_or_else(|| "-".into()),
            update,
            target: target.cloned(),
            progress,
            // Free text (rauc's output) on one line, as 12.2 wants it.
            reason: reason.map(|r| fleet::one_line(r)),
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next state to send, in the order taken.
    pub fn poll_state(&mut self) -> Option<FleetState> {
        self.states.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Downloading { retry_at, .. } => *retry_at,
            Phase::Installed { recheck_at, .. } => *recheck_at,
            Phase::Rebooting { retry_at, .. } => *retry_at,
            Phase::Trial { read_at, .. } => Some(*read_at),
            _ => None,
        };
        phase.into_iter().chain(self.progress_due).min()
    }

    pub fn handle_timeout(&mut self, now: Instant, wall: SystemTime) {
        match &mut self.phase {
            Phase::Downloading {
                job,
                have,
                retry_at,
            } if retry_at.is_some_and(|t| t <= now) => {
                *retry_at = None;
                let action = download(job, *have);
                self.actions.push_back(action);
            }
            Phase::Installed { recheck_at, .. } if recheck_at.is_some_and(|t| t <= now) => {
                self.plan_reboot(now, wall);
            }
            Phase::Rebooting { retry_at, .. } if retry_at.is_some_and(|t| t <= now) => {
                *retry_at = None;
                self.actions.push_back(Action::Reboot);
            }
            Phase::Trial { read_at, .. } if *read_at <= now => {
                *read_at = now + self.settings.health_poll;
                self.actions.push_back(Action::ReadHealth);
            }
            _ => {}
        }
        if self.progress_due.is_some_and(|t| t <= now) {
            self.progress_due = None;
            self.report(now);
        }
    }

    /// A SUBSCRIBE's body: `None` without a `want` (12.4).
    pub fn handle_want(&mut self, want: Option<FleetWant>, now: Instant) {
        let Some(want) = want else {
            self.clear(now);
            return;
        };
        if let Some(problem) = problem(&want) {
            if !self.install_started() {
                self.drop_download(None);
                self.phase = Phase::Failed {
                    target: want.version,
                    reason: problem,
                };
            }
            self.report(now);
            return;
        }
        if self.install_started() {
            // Never cancelled; a new want is taken up after the reboot,
            // when the collector subscribes again.
            return;
        }
        if want.version == self.version {
            // "Reported as it is": good after a trial, else idle.
            if !matches!(self.phase, Phase::Trial { .. } | Phase::Good { .. }) {
                self.drop_download(None);
                self.phase = Phase::Idle;
            }
            self.report(now);
            return;
        }
        if !self.settings.enabled {
            self.phase = Phase::Failed {
                target: want.version,
                reason: "updates are off (update.enabled: false)".into(),
            };
            self.report(now);
            return;
        }
        if self.blocked.as_deref() == Some(want.version.as_str()) {
            return;
        }
        match &mut self.phase {
            Phase::Downloading { job, .. } | Phase::Verifying { job }
                if job.version == want.version
                    && job.sha256 == want.sha256
                    && job.url == want.url =>
            {
                // A refresh; the reboot policy may have changed.
                job.reboot = want.reboot;
                return;
            }
            _ => {}
        }
        self.drop_download(Some(&want.sha256_hex()));
        self.start(want, now);
    }

    pub fn download_progress(&mut self, sha256: &str, bytes: u64, now: Instant) {
        if let Phase::Downloading { job, have, .. } = &mut self.phase
            && job.sha256_hex() == sha256
        {
            *have = bytes;
            self.report(now);
        }
    }

    pub fn download_ended(&mut self, sha256: &str, end: DownloadEnd, now: Instant) {
        let Phase::Downloading { job, retry_at, .. } = &mut self.phase else {
            return;
        };
        if job.sha256_hex() != sha256 {
            return;
        }
        match end {
            DownloadEnd::Complete => {
                self.backoff.reset();
                let job = job.clone();
                self.actions.push_back(Action::Verify {
                    sha256: job.sha256_hex(),
                    size: job.size,
                });
                self.phase = Phase::Verifying { job };
            }
            DownloadEnd::Interrupted(_) => {
                *retry_at = Some(now + self.backoff.next_delay(&mut self.ids));
            }
            DownloadEnd::Refused(reason) => {
                let target = job.version.clone();
                self.actions.push_back(Action::RemoveBundles { keep: None });
                self.fail(target, format!("download: {reason}"));
            }
        }
        self.report(now);
    }

    pub fn verified(&mut self, sha256: &str, result: Result<(), String>, now: Instant) {
        let Phase::Verifying { job } = &self.phase else {
            return;
        };
        if job.sha256_hex() != sha256 {
            return;
        }
        let job = job.clone();
        match result {
            Err(reason) => self.fail(job.version, reason),
            Ok(()) => {
                let mut downloaded = self.state();
                downloaded.update = UpdateState::Downloaded;
                downloaded.progress = None;
                self.push_state(downloaded, now);
                let sha256 = job.sha256_hex();
                self.write_journal(&job.version, &sha256, Step::Installing, job.reboot, None);
                self.actions.push_back(Action::Install { sha256 });
                self.phase = Phase::Installing { job, progress: 0 };
            }
        }
        self.report(now);
    }

    pub fn install_progress(&mut self, percent: u8, now: Instant) {
        if let Phase::Installing { progress, .. } = &mut self.phase {
            *progress = percent.min(100);
            self.report(now);
        }
    }

    pub fn install_ended(&mut self, result: Result<(), String>, now: Instant, wall: SystemTime) {
        let Phase::Installing { job, .. } = &self.phase else {
            return;
        };
        let job = job.clone();
        // The bundle has done its work either way; the data partition
        // is small.
        self.actions.push_back(Action::RemoveBundles { keep: None });
        match result {
            Err(reason) => self.fail(job.version, format!("rauc install: {reason}")),
            Ok(()) => {
                let sha256 = job.sha256_hex();
                self.write_journal(&job.version, &sha256, Step::Installed, job.reboot, None);
                self.phase = Phase::Installed {
                    target: job.version,
                    reboot: job.reboot,
                    recheck_at: None,
                };
                self.report(now);
                self.plan_reboot(now, wall);
            }
        }
        self.report(now);
    }

    pub fn reboot_failed(&mut self, now: Instant) {
        if let Phase::Rebooting { retry_at, .. } = &mut self.phase {
            *retry_at = Some(now + self.settings.reboot_retry);
        }
    }

    /// The health check's record, read during a trial.
    pub fn health_read(&mut self, ota: &OtaRecord, now: Instant) {
        let Phase::Trial { target, .. } = &self.phase else {
            return;
        };
        // The check removes `pending` only once it marked the slot good
        // (a fallback boot never runs the trial slot).
        if ota.pending.is_none() {
            let target = target.clone();
            self.record_outcome(&target, Step::Good, None, false);
            self.phase = Phase::Good { target };
            self.report(now);
        }
    }

    fn install_started(&self) -> bool {
        matches!(
            self.phase,
            Phase::Installing { .. } | Phase::Installed { .. } | Phase::Rebooting { .. }
        )
    }

    /// A want-less body: stop a download, and let a failed version be
    /// tried again when it is wanted again (12.4). The last result stays
    /// in view.
    fn clear(&mut self, now: Instant) {
        if matches!(
            self.phase,
            Phase::Downloading { .. } | Phase::Verifying { .. }
        ) {
            self.drop_download(None);
            self.phase = Phase::Idle;
        }
        if self.blocked.take().is_some()
            && let Some(mut j) = self.journal.clone()
        {
            j.blocked = false;
            self.actions.push_back(Action::Record(j.clone()));
            self.journal = Some(j);
        }
        self.report(now);
    }

    /// Leave a running download; its files go unless they are `keep`'s.
    fn drop_download(&mut self, keep: Option<&str>) {
        match &self.phase {
            Phase::Downloading { job, .. } | Phase::Verifying { job }
                if Some(job.sha256_hex().as_str()) != keep =>
            {
                if matches!(self.phase, Phase::Downloading { .. }) {
                    self.actions.push_back(Action::CancelDownload);
                }
                self.actions.push_back(Action::RemoveBundles {
                    keep: keep.map(str::to_owned),
                });
                self.on_disk.clear();
            }
            _ => {}
        }
    }

    fn start(&mut self, job: FleetWant, now: Instant) {
        let sha256 = job.sha256_hex();
        let found = self.on_disk.iter().find(|b| b.sha256 == sha256).cloned();
        self.actions.push_back(Action::RemoveBundles {
            keep: Some(sha256.clone()),
        });
        self.on_disk.clear();
        self.backoff.reset();
        match found {
            // Downloaded before a restart: checked again all the same.
            Some(b) if b.complete => {
                self.actions.push_back(Action::Verify {
                    sha256,
                    size: job.size,
                });
                self.phase = Phase::Verifying { job };
            }
            found => {
                let have = found.map_or(0, |b| b.bytes);
                self.actions.push_back(download(&job, have));
                self.phase = Phase::Downloading {
                    job,
                    have,
                    retry_at: None,
                };
            }
        }
        self.report(now);
    }

    fn plan_reboot(&mut self, now: Instant, wall: SystemTime) {
        let Phase::Installed { target, reboot, .. } = &self.phase else {
            return;
        };
        let wait = match (reboot, &self.settings.window) {
            (RebootPolicy::Window, Some(window)) => window.wait(wall),
            _ => Duration::ZERO,
        };
        if wait.is_zero() {
            self.phase = Phase::Rebooting {
                target: target.clone(),
                retry_at: None,
            };
            self.report(now);
            self.actions.push_back(Action::Reboot);
        } else {
            let target = target.clone();
            let reboot = *reboot;
            self.phase = Phase::Installed {
                target,
                reboot,
                recheck_at: Some(now + wait.min(self.settings.window_recheck)),
            };
        }
    }

    fn fail(&mut self, target: String, reason: String) {
        self.record_outcome(&target, Step::Failed, Some(&reason), true);
        self.blocked = Some(target.clone());
        self.phase = Phase::Failed { target, reason };
    }

    /// An outcome for the journal's current update (or a new entry).
    fn record_outcome(&mut self, target: &str, step: Step, reason: Option<&str>, blocked: bool) {
        let (sha256, reboot) = match &self.journal {
            Some(j) if j.target == target => (j.sha256.clone(), j.reboot),
            _ => (String::new(), RebootPolicy::Now),
        };
        let mut j = Journal {
            target: target.to_owned(),
            sha256,
            step,
            reboot,
            boot_id: self.boot_id.clone(),
            reason: reason.map(str::to_owned),
            blocked,
        };
        if let Some(reason) = &mut j.reason {
            *reason = super::journal::one_line(reason);
        }
        self.actions.push_back(Action::Record(j.clone()));
        self.journal = Some(j);
    }

    fn write_journal(
        &mut self,
        target: &str,
        sha256: &str,
        step: Step,
        reboot: RebootPolicy,
        reason: Option<&str>,
    ) {
        let j = Journal {
            target: target.to_owned(),
            sha256: sha256.to_owned(),
            step,
            reboot,
            boot_id: self.boot_id.clone(),
            reason: reason.map(str::to_owned),
            blocked: false,
        };
        self.actions.push_back(Action::Record(j.clone()));
        self.journal = Some(j);
    }

    /// Take the current state if it changed; a change of progress alone
    /// waits until `progress_interval` has passed since the last one.
    fn report(&mut self, now: Instant) {
        let state = self.state();
        if self.last_state.as_ref() == Some(&state) {
            return;
        }
        let progress_only = self.last_state.as_ref().is_some_and(|last| {
            last.update == state.update
                && last.target == state.target
                && last.reason == state.reason
        });
        if progress_only && let Some(last) = self.last_progress_at {
            let due = last + self.settings.progress_interval;
            if now < due {
                self.progress_due = Some(due);
                return;
            }
        }
        self.push_state(state, now);
    }

    fn push_state(&mut self, state: FleetState, now: Instant) {
        if state.progress.is_some() {
            self.last_progress_at = Some(now);
        }
        self.progress_due = None;
        self.last_state = Some(state.clone());
        self.states.push_back(state);
    }
}

fn download(job: &FleetWant, offset: u64) -> Action {
    Action::Download {
        sha256: job.sha256_hex(),
        url: job.url.clone(),
        size: job.size,
        offset,
    }
}

/// Why the agent cannot act on a want the body's reader let through
/// (12.4: reported `failed`, the version not blocked). The reader already
/// refused a `url` that is not `https://` and a malformed `sha256` (400).
fn problem(want: &FleetWant) -> Option<String> {
    if want.version.is_empty() {
        return Some("the want names no version".into());
    }
    if !want.url.starts_with("https://") {
        return Some(format!("the bundle url `{}` is not https://", want.url));
    }
    if want.size == 0 {
        return Some("the bundle size is 0".into());
    }
    None
}
