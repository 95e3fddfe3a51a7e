//! The fleet body's fields a rollout reads and writes (docs/protocol.md
//! 12.3, 12.4), as plain data.
//!
//! Why here and not `protocol::fleet`: the codec lands in the protocol
//! crate at the same time as this module; these types carry the same names
//! and fields so that the switch is an import.

use std::fmt;
use std::str::FromStr;

/// `update=` of a NOTIFY (12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// The value on the wire (12.3).
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

    /// Whether the sensor has begun writing its other slot: from here on
    /// a `want` withdrawn no longer stops it (12.4: an install that has
    /// started is never cancelled).
    pub fn is_installing_or_later(self) -> bool {
        matches!(
            self,
            UpdateState::Installing
                | UpdateState::Installed
                | UpdateState::Rebooting
                | UpdateState::Trial
        )
    }
}

impl fmt::Display for UpdateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an update state of docs/protocol.md 12.3")]
pub struct UnknownUpdateState(pub String);

impl FromStr for UpdateState {
    type Err = UnknownUpdateState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UpdateState::ALL
            .into_iter()
            .find(|u| u.as_str() == s)
            .ok_or_else(|| UnknownUpdateState(s.to_string()))
    }
}

/// A sensor's state, the body of its NOTIFY (12.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetState {
    /// The running image's version.
    pub version: String,
    pub agent: String,
    pub compatible: String,
    /// The booted slot's bootname, `-` outside A/B.
    pub slot: String,
    pub update: UpdateState,
    /// The version the update is about (absent when `idle`).
    pub target: Option<String>,
    /// Whole percent of the current step.
    pub progress: Option<u8>,
    /// Why it failed or rolled back.
    pub reason: Option<String>,
}

/// `reboot=` of a SUBSCRIBE body (12.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RebootPolicy {
    #[default]
    Now,
    /// In the sensor's maintenance window (`update.window`).
    Window,
}

impl RebootPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RebootPolicy::Now => "now",
            RebootPolicy::Window => "window",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a reboot policy (now or window)")]
pub struct UnknownRebootPolicy(pub String);

impl FromStr for RebootPolicy {
    type Err = UnknownRebootPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "now" => Ok(RebootPolicy::Now),
            "window" => Ok(RebootPolicy::Window),
            other => Err(UnknownRebootPolicy(other.to_string())),
        }
    }
}

/// What the collector wants a sensor to run, the body of its SUBSCRIBE
/// (12.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetWant {
    pub want: String,
    /// `https://` URL of the bundle (12.5).
    pub url: String,
    pub sha256: [u8; 32],
    pub size: u64,
    pub reboot: RebootPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_states_and_policies_read_back_what_they_write() {
        for u in UpdateState::ALL {
            assert_eq!(u.as_str().parse::<UpdateState>(), Ok(u));
        }
        assert!("rolled_back".parse::<UpdateState>().is_err());
        assert!("Good".parse::<UpdateState>().is_err());
        for r in [RebootPolicy::Now, RebootPolicy::Window] {
            assert_eq!(r.as_str().parse::<RebootPolicy>(), Ok(r));
        }
        assert!("later".parse::<RebootPolicy>().is_err());
    }
}
