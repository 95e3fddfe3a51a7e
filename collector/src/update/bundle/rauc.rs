//! Asking the real RAUC about a bundle: `rauc info --keyring=K` verifies
//! the signature against the keyring and prints the manifest.

use serde::Deserialize;
use std::path::Path;
use tokio::process::Command;

/// What publishing needs from a bundle's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleInfo {
    pub version: String,
    pub compatible: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RaucError {
    #[error("cannot run rauc (is it installed?): {0}")]
    Spawn(std::io::Error),
    /// RAUC's own last line: a signature not chaining to the keyring, a
    /// file that is no bundle, an unreadable keyring.
    #[error("rauc refused it: {0}")]
    Refused(String),
    #[error("rauc printed what this collector cannot read: {0}")]
    Output(String),
    /// Sensors install only verity bundles (RAUC checks every block as it
    /// reads it, and streams over HTTP only from them).
    #[error("a {0:?} bundle; only the verity format is published")]
    NotVerity(String),
}

#[derive(Deserialize)]
struct Manifest {
    compatible: String,
    version: String,
}

async fn rauc_info(bundle: &Path, keyring: &Path, format: &str) -> Result<String, RaucError> {
    let mut keyring_arg = std::ffi::OsString::from("--keyring=");
    keyring_arg.push(keyring);
    let out = Command::new("rauc")
        .arg("info")
        .arg(keyring_arg)
        .arg(format!("--output-format={format}"))
        .arg(bundle)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(RaucError::Spawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(RaucError::Refused(last.trim().to_string()));
    }
    String::from_utf8(out.stdout).map_err(|e| RaucError::Output(e.to_string()))
}

/// The bundle's format from `rauc info`'s readable output (RAUC 1.8's JSON
/// does not carry it): the line `Bundle Format: <format>`.
pub(super) fn bundle_format(readable: &str) -> Option<&str> {
    readable
        .lines()
        .find_map(|l| l.trim().strip_prefix("Bundle Format:"))
        .and_then(|rest| rest.split_whitespace().next())
}

/// Verifies `bundle` against `keyring` and reads its manifest; refuses any
/// format but verity.
pub async fn info(bundle: &Path, keyring: &Path) -> Result<BundleInfo, RaucError> {
    let json = rauc_info(bundle, keyring, "json").await?;
    let manifest: Manifest =
        serde_json::from_str(&json).map_err(|e| RaucError::Output(e.to_string()))?;
    let readable = rauc_info(bundle, keyring, "readable").await?;
    match bundle_format(&readable) {
        Some("verity") => Ok(BundleInfo {
            version: manifest.version,
            compatible: manifest.compatible,
        }),
        Some(other) => Err(RaucError::NotVerity(other.to_string())),
        None => Err(RaucError::Output("no `Bundle Format:` line".into())),
    }
}
