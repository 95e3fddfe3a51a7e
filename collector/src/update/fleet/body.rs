//! The body's fields (docs/protocol.md 12.3, 12.4) as plain data. The
//! codec is `protocol::fleet`'s; these mirror its `FleetState` and
//! `FleetWant` so the collector's side can be built and tested before it
//! lands (the lead switches the imports at merge).

use serde::Serialize;

/// A sensor's `update` value (12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateState {
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

impl UpdateState {
    pub const ALL: [UpdateState; 10] = [
        UpdateState::Idle,
        UpdateState::Downloading,
        UpdateState::Downloaded,
        UpdateState::Installing,
        UpdateState::Installed,
        UpdateState::Rebooting,
        UpdateState::Trial,
        UpdateState::Good,
        UpdateState::Failed,
        UpdateState::RolledBack,
    ];

    /// The wire name (12.3), also the stored and exported one.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Idle => "idle",
            UpdateState::Downloading => "downloading",
            UpdateState::Downloaded => "downloaded",
            UpdateState::Installing => "installing",
            UpdateState::Installed => "installed",
            UpdateState::Rebooting => "rebooting",
            UpdateState::Trial => "trial",
            UpdateState::Good => "good",
            UpdateState::Failed => "failed",
            UpdateState::RolledBack => "rolled-back",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        UpdateState::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

/// What a sensor reports in a NOTIFY (12.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetState {
    pub version: String,
    pub agent: String,
    pub compatible: String,
    /// The booted slot's bootname, `-` outside A/B.
    pub slot: String,
    pub update: UpdateState,
    /// The version the update is about; `None` when `idle`.
    pub target: Option<String>,
    /// Whole percent of the current step (`downloading`, `installing`).
    pub progress: Option<u8>,
    /// Why it failed or rolled back.
    pub reason: Option<String>,
}

/// `reboot` of a want (12.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RebootPolicy {
    #[default]
    Now,
    /// In the sensor's maintenance window (`update.window`).
    Window,
}

/// The image a SUBSCRIBE asks the sensor to run (12.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetWant {
    pub want: String,
    /// `https://` URL of the bundle (12.5).
    pub url: String,
    /// 64 lower-case hex digits.
    pub sha256: String,
    pub size: u64,
    pub reboot: RebootPolicy,
}
