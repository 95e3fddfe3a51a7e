//! A simulated sensor's side of the fleet subscription (docs/protocol.md
//! 12.1-12.4), sans-I/O: the notifier's decisions around a [`FakeInstall`].
//!
//! The sensor's shell (`sensor.rs`) hands it what the user agent reports
//! about `sipsensor-fleet` subscriptions and `now`, carries out the
//! [`FleetAction`]s it returns (accept, NOTIFY, the fake reboot) and wakes
//! it at [`FleetNotifier::poll_timeout`]. Other event packages never reach
//! it: the user agent answers them 489 itself (RFC 6665 7.2.2), and a body
//! that breaks 12.2 gets 400 from the package's check.

#[cfg(test)]
mod tests;

use crate::fake_install::{FakeInstall, FakeInstallConfig, FakeReport};
use sipsensor_protocol::SubscriptionId;
use sipsensor_protocol::fleet::{FleetState, FleetWant, UpdateState};
use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// 12.1: a NOTIFY for progress alone at most this often.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// What the sensor reports besides its update (12.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetIdentity {
    /// `agent=`: the agent's version.
    pub agent: String,
    /// `compatible=`: the RAUC compatible string.
    pub compatible: String,
}

/// A simulated sensor's fleet side: what it runs and how its fake
/// installs go.
#[derive(Debug, Clone)]
pub struct SimFleet {
    /// The image version it runs at start.
    pub version: String,
    pub identity: FleetIdentity,
    pub install: FakeInstallConfig,
    /// Seeds the install's draws (which fail, how long each step takes).
    pub seed: u64,
}

impl SimFleet {
    pub fn notifier(self) -> FleetNotifier {
        FleetNotifier::new(
            FakeInstall::new(&self.version, self.install, self.seed),
            self.identity,
        )
    }
}

/// What the shell does for the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetAction {
    /// 200 to a new SUBSCRIBE with this first NOTIFY body (4.2.1.2).
    Accept {
        subscription: SubscriptionId,
        body: Vec<u8>,
    },
    /// Refuse a new SUBSCRIBE (400 for a body that breaks 12.2/12.4).
    Reject {
        subscription: SubscriptionId,
        status: u16,
        reason: String,
    },
    /// NOTIFY `active`, or, when `last`, `terminated;reason=deactivated`
    /// (12.1: the sensor goes down on purpose).
    Notify {
        subscription: SubscriptionId,
        body: Vec<u8>,
        last: bool,
    },
    /// The fake reboot begins: stop streaming, hang up, unregister, and
    /// drop the user agent, so every dialog is forgotten as on a board.
    GoDown,
    /// The new slot is up: a new user agent registers and calls again.
    ComeBack,
}

/// Why the notifier could not write its state.
#[derive(Debug, thiserror::Error)]
#[error("the fleet state does not fit its body: {0}")]
pub struct FleetStateError(#[from] sipsensor_protocol::fleet::FleetBodyError);

/// One simulated sensor's notifier.
#[derive(Debug)]
pub struct FleetNotifier {
    install: FakeInstall,
    identity: FleetIdentity,
    subscriptions: BTreeSet<SubscriptionId>,
    /// The last progress sent and when: the next goes out 5 s later.
    progress_sent: Option<(Instant, Option<u8>)>,
    /// Between [`FleetAction::GoDown`] and [`FleetAction::ComeBack`].
    down: bool,
    actions: VecDeque<FleetAction>,
}

impl FleetNotifier {
    pub fn new(install: FakeInstall, identity: FleetIdentity) -> Self {
        FleetNotifier {
            install,
            identity,
            subscriptions: BTreeSet::new(),
            progress_sent: None,
            down: false,
            actions: VecDeque::new(),
        }
    }

    /// Whether the fake reboot is under way (no user agent).
    pub fn is_down(&self) -> bool {
        self.down
    }

    /// The state as a NOTIFY carries it now.
    pub fn state(&self, now: Instant) -> FleetState {
        self.state_of(self.install.report(), now)
    }

    /// A new SUBSCRIBE for `sipsensor-fleet`, trusted by the shell: its
    /// `want` goes to the install, and it is accepted with the state that
    /// results (4.2.1.2).
    pub fn subscribed(&mut self, subscription: SubscriptionId, body: &[u8], now: Instant) {
        let want = match FleetWant::parse(body) {
            Ok(want) => want,
            Err(e) => {
                self.actions.push_back(FleetAction::Reject {
                    subscription,
                    status: 400,
                    reason: e.to_string(),
                });
                return;
            }
        };
        self.install
            .set_want(want.as_ref().map(|w| w.version.as_str()), now);
        // The others hear of the change; the new one gets it in its first
        // NOTIFY below.
        self.flush(now);
        match self.state(now).to_body() {
            Ok(body) => {
                self.subscriptions.insert(subscription);
                self.progress_sent = Some((now, self.install.progress(now)));
                self.actions
                    .push_back(FleetAction::Accept { subscription, body });
            }
            Err(e) => self.actions.push_back(FleetAction::Reject {
                subscription,
                status: 500,
                reason: FleetStateError(e).to_string(),
            }),
        }
    }

    /// A refresh in the dialog (the user agent answered it and repeated
    /// the last NOTIFY): its body is the collector's want now (12.4).
    pub fn refreshed(&mut self, subscription: SubscriptionId, body: &[u8], now: Instant) {
        if !self.subscriptions.contains(&subscription) {
            return;
        }
        // The package's check passed it; a body read otherwise changes
        // nothing rather than cancelling a download.
        if let Ok(want) = FleetWant::parse(body) {
            self.install
                .set_want(want.as_ref().map(|w| w.version.as_str()), now);
        }
        self.flush(now);
    }

    /// The subscription ended (unsubscribed, expired, the dialog gone).
    pub fn ended(&mut self, subscription: SubscriptionId) {
        self.subscriptions.remove(&subscription);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let progress = self
            .progress_sent
            .filter(|_| !self.subscriptions.is_empty() && self.install.update().has_progress())
            .map(|(at, _)| at + PROGRESS_INTERVAL);
        [self.install.poll_timeout(), progress]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.install.handle_timeout(now);
        self.flush(now);
        let Some((at, sent)) = self.progress_sent else {
            return;
        };
        let progress = self.install.progress(now);
        if now >= at + PROGRESS_INTERVAL && progress.is_some() && progress != sent {
            self.notify_all(self.state(now), false, now);
        }
    }

    pub fn poll_action(&mut self) -> Option<FleetAction> {
        self.actions.pop_front()
    }

    /// Every state the install entered, to every subscription, in order;
    /// the reboot takes the sensor down and brings it back.
    fn flush(&mut self, now: Instant) {
        while let Some(report) = self.install.poll_report() {
            let update = report.update;
            let state = self.state_of(report, now);
            if self.down {
                // The old slot went down with its subscriptions; the new
                // one is up once the install left `rebooting`.
                if update != UpdateState::Rebooting {
                    self.down = false;
                    self.actions.push_back(FleetAction::ComeBack);
                }
                continue;
            }
            self.notify_all(state.clone(), false, now);
            if update == UpdateState::Rebooting {
                // 12.5: `rebooting`, then the last NOTIFY (12.1).
                self.notify_all(state, true, now);
                self.subscriptions.clear();
                self.down = true;
                self.actions.push_back(FleetAction::GoDown);
            }
        }
    }

    fn notify_all(&mut self, state: FleetState, last: bool, now: Instant) {
        let Ok(body) = state.to_body() else {
            // Our own values (versions from a parsed want, fixed reasons)
            // always fit; nothing to send if one did not.
            return;
        };
        self.progress_sent = Some((now, state.progress));
        for &subscription in &self.subscriptions {
            self.actions.push_back(FleetAction::Notify {
                subscription,
                body: body.clone(),
                last,
            });
        }
    }

    fn state_of(&self, report: FakeReport, now: Instant) -> FleetState {
        // A report of the step under way: a queued older one has none.
        let progress = (report.update == self.install.update())
            .then(|| self.install.progress(now))
            .flatten();
        FleetState {
            version: report.version,
            agent: self.identity.agent.clone(),
            compatible: self.identity.compatible.clone(),
            slot: report.slot.to_owned(),
            update: report.update,
            target: report.target,
            progress,
            reason: report.reason,
        }
    }
}
