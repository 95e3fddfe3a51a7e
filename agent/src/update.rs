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

/// The subscription's bodies (docs/protocol.md 12.2-12.4) are the
/// protocol crate's: the collector reads what this side writes.
pub use sipsensor_protocol::fleet::{FleetState, FleetWant, RebootPolicy, UpdateState};
