//! The `update` section: fleet updates over SIP (crate::update,
//! docs/protocol.md 12). Read, defaulted and checked here so the rest of
//! the config code only names the section.

use crate::update::Window;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// On the image `/var/lib/sipsensor` is the data partition's `state/`.
pub const DEFAULT_DIR: &str = "/var/lib/sipsensor/update";
/// Where the image's health check and RAUC pre-install handler keep their
/// record (`$SIPSENSOR_DATA_DIR/ota`).
pub const DEFAULT_OTA_DIR: &str = "/data/sipsensor/ota";
pub const DEFAULT_RAUC: &str = "rauc";
pub const DEFAULT_REBOOT_COMMAND: &str = "systemctl reboot";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpdate {
    pub enabled: bool,
    /// `HH:MM-HH:MM`, UTC; `None`: no window.
    pub window: Option<String>,
    pub rauc: String,
    pub reboot_command: String,
    pub dir: String,
    pub ota_dir: String,
}

impl Default for RawUpdate {
    fn default() -> Self {
        RawUpdate {
            enabled: true,
            window: None,
            rauc: DEFAULT_RAUC.into(),
            reboot_command: DEFAULT_REBOOT_COMMAND.into(),
            dir: DEFAULT_DIR.into(),
            ota_dir: DEFAULT_OTA_DIR.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateConfig {
    /// `false`: the state is reported, wants are refused.
    pub enabled: bool,
    pub window: Option<Window>,
    /// The RAUC command (a name on PATH or a path).
    pub rauc: PathBuf,
    /// Program and arguments, split at white space.
    pub reboot_command: Vec<String>,
    /// Bundles and the updater's journal.
    pub dir: PathBuf,
    pub ota_dir: PathBuf,
    /// What verifies the bundle server: `sip.ca_file` (12.5).
    pub ca_file: PathBuf,
}

/// The checked section, or each problem as the key it concerns and what
/// is wrong.
pub(super) fn check(
    raw: &RawUpdate,
    ca_file: &str,
) -> Result<UpdateConfig, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let window = match raw.window.as_deref().map(Window::parse).transpose() {
        Ok(w) => w,
        Err(e) => {
            errors.push(("window", e.to_string()));
            None
        }
    };
    if raw.rauc.trim().is_empty() {
        errors.push(("rauc", "must name the rauc command".into()));
    }
    let reboot_command: Vec<String> = raw
        .reboot_command
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if reboot_command.is_empty() {
        errors.push((
            "reboot_command",
            "must name a command, e.g. `systemctl reboot`".into(),
        ));
    }
    for (key, dir) in [("dir", &raw.dir), ("ota_dir", &raw.ota_dir)] {
        if !dir.starts_with('/') {
            errors.push((key, format!("`{dir}` must be an absolute path")));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(UpdateConfig {
        enabled: raw.enabled,
        window,
        rauc: PathBuf::from(raw.rauc.trim()),
        reboot_command,
        dir: PathBuf::from(&raw.dir),
        ota_dir: PathBuf::from(&raw.ota_dir),
        ca_file: PathBuf::from(ca_file),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_image_s() {
        let c = check(&RawUpdate::default(), "/etc/sipsensor/ca.pem").expect("valid");
        assert!(c.enabled);
        assert_eq!(c.window, None);
        assert_eq!(c.rauc, PathBuf::from("rauc"));
        assert_eq!(c.reboot_command, ["systemctl", "reboot"]);
        assert_eq!(c.dir, PathBuf::from(DEFAULT_DIR));
        assert_eq!(c.ota_dir, PathBuf::from(DEFAULT_OTA_DIR));
        assert_eq!(c.ca_file, PathBuf::from("/etc/sipsensor/ca.pem"));
        let windowed = RawUpdate {
            window: Some("02:00-04:00".into()),
            ..RawUpdate::default()
        };
        let c = check(&windowed, "/ca.pem").expect("valid");
        assert_eq!(
            c.window.map(|w| w.to_string()).as_deref(),
            Some("02:00-04:00 UTC")
        );
    }

    #[test]
    fn each_bad_key_is_named() {
        let raw = RawUpdate {
            enabled: true,
            window: Some("2am-4am".into()),
            rauc: " ".into(),
            reboot_command: "".into(),
            dir: "update".into(),
            ota_dir: "ota".into(),
        };
        let errors = check(&raw, "/ca.pem").expect_err("invalid");
        let keys: Vec<&str> = errors.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["window", "rauc", "reboot_command", "dir", "ota_dir"]);
        assert!(errors[0].1.contains("HH:MM-HH:MM (UTC)"), "{errors:?}");
    }
}
