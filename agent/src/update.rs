//! Fleet updates, the sensor's side (docs/protocol.md 12.3-12.6): take
//! what the collector wants, download the bundle with resume, `rauc
//! install` it, reboot now or in the maintenance window, and report each
//! step and the outcome the health check leaves on the data partition.
//!
//! [`Updater`] is sans-I/O: it reads the collector's [`FleetWant`], what the
//! board said at start ([`Board`]), the shell's results and the clock, and
//! answers with [`Action`]s and the [`FleetState`]s to send. `run.rs` is
//! its shell (files, HTTPS, `rauc`, the reboot command); `download.rs` the
//! HTTPS client. The SIP subscription that carries wants in and states out
//! (RFC 6665) is the user agent's; the shell meets it on plain channels.

pub mod board;
pub mod download;
pub mod health;
pub mod journal;
pub mod run;
#[cfg(test)]
mod tests;
mod updater;
pub mod window;

pub use board::{Board, HistoryEntry, HistoryEvent, OtaRecord};
pub use journal::{Journal, Step};
pub use updater::{Action, DownloadEnd, Settings, Updater};
pub use window::Window;

/// What the collector wants this sensor to run: a SUBSCRIBE body with a
/// `want` (docs/protocol.md 12.4; the fields are the table's names). A
/// body without `want` is `None` where a want is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetWant {
    /// The version to run.
    pub want: String,
    /// `https://` URL of the bundle.
    pub url: String,
    /// 64 lower-case hex digits: the bundle file's SHA-256.
    pub sha256: String,
    /// The bundle's length in bytes.
    pub size: u64,
    pub reboot: RebootPolicy,
}

impl FleetWant {
    /// Why the agent cannot act on this want, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.want.is_empty() {
            return Some("the want names no version".into());
        }
        if !self.url.starts_with("https://") {
            return Some(format!("the bundle url `{}` is not https://", self.url));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Some(format!(
                "sha256 `{}` is not 64 lower-case hex digits",
                self.sha256
            ));
        }
        if self.size == 0 {
            return Some("the bundle size is 0".into());
        }
        None
    }
}

/// When to reboot into an installed update (`reboot` of 12.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "now" => Some(RebootPolicy::Now),
            "window" => Some(RebootPolicy::Window),
            _ => None,
        }
    }
}

/// The `update` value of a NOTIFY (docs/protocol.md 12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// The sensor's state as a NOTIFY carries it (docs/protocol.md 12.3; the
/// fields are the table's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetState {
    /// The running image's version (`VERSION_ID` of /etc/os-release).
    pub version: String,
    /// The agent's version.
    pub agent: String,
    /// The RAUC compatible string.
    pub compatible: String,
    /// The booted slot's bootname, `-` outside A/B.
    pub slot: String,
    pub update: UpdateState,
    /// The version the update is about; `None` exactly when `idle`.
    pub target: Option<String>,
    /// Whole percent of the current step, while downloading or installing.
    pub progress: Option<u8>,
    /// One line: why it failed or rolled back.
    pub reason: Option<String>,
}
