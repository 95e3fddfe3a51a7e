//! sipsensor-agent: the daemon on the board. Sensors in, a real-time RTP
//! stream out, a SIP user agent that survives the field.
//!
//! This library holds everything but `main`, so system tests under
//! `tests/` drive the same code the binary runs.

pub mod backfill;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod gpio;
pub mod handoff;
pub mod led;
pub mod logging;
pub mod probe;
pub mod sensor;
pub mod session;
pub mod spool;
pub mod status;
mod stoppable;
pub mod stream;
pub mod units;
pub mod update;
