//! Process helpers for sipsensor's system tests.
//!
//! Every process started here runs in its own process group and is stopped
//! by that PID when its guard drops, also when the test panics; its output
//! goes to a log file that failure messages quote. Everything binds to
//! loopback.
//!
//! - [`Kamailio`]: the repository's `deploy/kamailio/kamailio.cfg` on a free
//!   port with a temporary db_text database of given subscribers.
//! - [`Baresip`]: a standard SIP phone that registers and auto-answers.
//! - [`Tshark`]: a capture on `lo` and the check that Wireshark's dissectors
//!   flag no packet as malformed.
//! - [`Sipp`]: SIPp runs of the scenarios in `tests/harness/scenarios/`.
//! - [`Postgres`]: a throw-away PostgreSQL 15 server on a Unix socket.
//! - [`Relay`]: a seeded UDP impairment relay (loss, jitter, reordering).
//! - [`pki`]: a throw-away CA and the certificates it signs, for TLS.
//! - [`rauc`]: throw-away signing keys and signed RAUC bundles.
//! - [`ports`]: free ports; [`require_tool`]: skip (or fail in CI) when a
//!   program is missing.

pub mod baresip;
pub mod kamailio;
pub mod pki;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod rauc;
pub mod relay;
pub mod sipp;
pub mod tools;
pub mod tshark;

pub use baresip::Baresip;
pub use kamailio::{Kamailio, KamailioOptions, KamailioTls};
pub use postgres::{Postgres, require_postgres};
pub use process::ChildGuard;
pub use relay::{Relay, RelayLog, RelayOptions};
pub use sipp::{Sipp, SippOptions, SippOutcome, SippTransport};
pub use tools::{in_ci, require_capture, require_tool, tool_path};
pub use tshark::{Capture, Tshark, TsharkOptions};

use std::path::PathBuf;

/// Why a helper could not do its job. Messages carry the log tail of the
/// process concerned, so a failing test explains itself.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{tool} is not installed")]
    MissingTool { tool: String },
    #[error("{name} exited early ({status}); log:\n{log}")]
    Exited {
        name: String,
        status: String,
        log: String,
    },
    #[error("{name} not ready after {seconds} s; log:\n{log}")]
    NotReady {
        name: String,
        seconds: u64,
        log: String,
    },
    #[error("{name} still running after {seconds} s; log:\n{log}")]
    Timeout {
        name: String,
        seconds: u64,
        log: String,
    },
    #[error("invalid {what}: {detail}")]
    Invalid { what: String, detail: String },
    /// The capture file is kept for inspection at `capture`.
    #[error("wireshark flags {} packet(s) as malformed (capture kept at {}):\n{}",
        .packets.len(), .capture.display(), .packets.join("\n"))]
    Malformed {
        packets: Vec<String>,
        capture: PathBuf,
    },
    /// A capture without SIP checks nothing; kept at `capture`.
    #[error("no SIP packet captured (capture kept at {})", .capture.display())]
    EmptyCapture { capture: PathBuf },
    #[error("{tool} failed: {detail}")]
    ToolFailed { tool: String, detail: String },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// The repository root (this crate lives in `tests/harness`).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(|tests| tests.parent())
        .map(PathBuf::from)
        .unwrap_or(manifest)
}

/// A SIPp scenario shipped in `tests/harness/scenarios/`.
pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// A binary of this workspace, built before the tests run (`make test`
/// builds them; by hand: `cargo build -p sipsensor-agent -p
/// sipsensor-collector`). `$SIPSENSOR_BIN_DIR` overrides where they are
/// looked for (default `<repo>/target/debug`, or `$CARGO_TARGET_DIR/debug`).
pub fn workspace_binary(name: &str) -> Result<PathBuf, HarnessError> {
    let dir = std::env::var_os("SIPSENSOR_BIN_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("debug")))
        .unwrap_or_else(|| repo_root().join("target").join("debug"));
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::Invalid {
            what: format!("binary {name}"),
            detail: format!(
                "{} does not exist: build it first (cargo build --bins, or make test)",
                path.display()
            ),
        })
    }
}
