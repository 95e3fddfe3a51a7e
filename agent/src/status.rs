//! What the running daemon reports: the data model of
//! `sipsensor-agent status` (`model`), the shared hub every shell of the
//! daemon updates (`hub`), its text rendering (`render`), and the
//! Unix-socket server and client.
//!
//! Sans-I/O parts do not hold the hub: they return [`StatusChange`]s and
//! their shells apply them.

pub mod client;
mod hub;
mod model;
mod render;
pub mod server;

pub use hub::{Counters, RepairSource, StatusHub};
pub use model::{
    AgentState, Direction, ErrorRecord, InputStatus, RegistrationState, RegistrationStatus,
    RepairStatus, SensorState, SensorStatus, SessionStatus, Status, StatusChange, unix_ms,
};
pub use render::render;

pub const DEFAULT_SOCKET: &str = "/run/sipsensor/agent.sock";
