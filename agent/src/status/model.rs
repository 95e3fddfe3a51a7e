//! The data model of `sipsensor-agent status`: what the daemon reports,
//! as the status socket carries it in JSON, and the changes the sans-I/O
//! parts hand their shells to apply to the hub.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The daemon's overall state; also what the status LED shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Loading the config and starting the parts.
    Starting,
    /// No config file: waiting for one to appear.
    NoConfig,
    /// The config is invalid: waiting for a fixed file.
    ConfigError,
    Registering,
    Registered,
    /// Registered (or not registering) with at least one session streaming.
    Streaming,
    /// A failure that needs attention (wrong password, peer refuses).
    Error,
}

impl AgentState {
    /// What `status --wait-registered` waits for (the RAUC health check).
    pub fn is_registered(self) -> bool {
        matches!(self, AgentState::Registered | AgentState::Streaming)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Starting => "starting",
            AgentState::NoConfig => "no_config",
            AgentState::ConfigError => "config_error",
            AgentState::Registering => "registering",
            AgentState::Registered => "registered",
            AgentState::Streaming => "streaming",
            AgentState::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationState {
    Registering,
    Registered,
    Failed,
    Unregistered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationStatus {
    pub aor: String,
    pub registrar: String,
    pub state: RegistrationState,
    /// Seconds until the binding expires, when registered.
    pub expires_in_s: Option<u64>,
    /// The last final response, e.g. "200 OK" or "401 Unauthorized".
    pub last_response: Option<String>,
    /// Consecutive failed attempts.
    pub failures: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outgoing,
    Incoming,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub call_id: String,
    /// The remote party's URI.
    pub peer: String,
    pub direction: Direction,
    /// "calling", "streaming", "ending", ...
    pub state: String,
    pub rate_hz: u32,
    pub channels: Vec<String>,
    pub packets_sent: u64,
    pub samples_sent: u64,
    pub samples_missing: u64,
    pub started_unix_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorState {
    /// Not opened yet.
    Starting,
    Ok,
    /// Open or read failed; retrying with back-off.
    Failing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorStatus {
    pub name: String,
    /// The config's `type`.
    pub kind: String,
    pub state: SensorState,
    pub reads: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub last_read_unix_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputStatus {
    pub name: String,
    pub pin: u32,
    /// The logical level at the last edge, when known.
    pub level: Option<bool>,
    pub edges: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub at_unix_ms: u64,
    /// The part that failed: "config", "sensor env", "registration", ...
    pub source: String,
    pub message: String,
}

/// The backfill sender's figures since the daemon started (crate::backfill).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillStatus {
    pub packets: u64,
    /// RTP bytes, headers included.
    pub bytes: u64,
    /// Times it went back to the collector's mark (a packet was lost).
    pub restarts: u64,
    /// Spool bytes freed because the collector committed them.
    pub spool_released_bytes: u64,
}

/// The live stream's repair and acknowledgement figures since its sender
/// started (docs/protocol.md 11.4, 11.5, 11.7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStatus {
    /// Generic NACKs (RFC 4585 6.2.1) about our stream from the peer.
    pub nacks_received: u64,
    /// NACKs ignored: about another SSRC, or not from the peer.
    pub nacks_refused: u64,
    /// Packets resent in the RTX stream (RFC 4588).
    pub packets_resent: u64,
    /// NACKed packets no longer (or never) kept: given up on, left to
    /// the backfill.
    pub given_up: u64,
    /// The collector's committed mark (ns since the Unix epoch), once it
    /// sent one: the spool is released below it.
    pub committed_mark_ns: Option<u64>,
    /// The first live sample's instant (11.7's L), ns since the Unix epoch.
    pub first_live_ns: Option<u64>,
}

/// A snapshot of the daemon, as `status` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub state: AgentState,
    pub uptime_s: u64,
    pub config_files: Vec<PathBuf>,
    pub registrations: Vec<RegistrationStatus>,
    pub sessions: Vec<SessionStatus>,
    pub packets_sent: u64,
    pub samples_sent: u64,
    pub samples_missing: u64,
    pub events_sent: u64,
    pub events_dropped: u64,
    /// Absent from an older daemon's answer.
    #[serde(default)]
    pub backfill: BackfillStatus,
    /// Absent from an older daemon's answer.
    #[serde(default)]
    pub repair: RepairStatus,
    pub sensors: Vec<SensorStatus>,
    pub inputs: Vec<InputStatus>,
    pub last_error: Option<ErrorRecord>,
}

/// A status change decided by a sans-I/O part (the session's
/// `Controller`); its shell applies it to the [`StatusHub`](super::StatusHub).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// The daemon's overall state is now this.
    State(AgentState),
    /// A failure, to show as the last error.
    Error {
        /// The part that failed: "registration", "call", "stream", ...
        source: &'static str,
        message: String,
    },
}

/// Milliseconds since the Unix epoch, as status reports times (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::StatusHub;

    #[test]
    fn status_round_trips_through_json() {
        let hub = StatusHub::new();
        hub.set_state(AgentState::ConfigError);
        hub.error(
            "config",
            "agent.yaml:3:9: stream.rate: must be 1 to 10000 Hz, got 0",
        );
        let s = hub.snapshot();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"state\":\"config_error\""), "{json}");
        let back: Status = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(AgentState::Streaming.is_registered());
        assert!(!AgentState::Registering.is_registered());
    }
}
