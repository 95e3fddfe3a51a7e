//! What the board says at start: the running image, the booted slot, the
//! health check's record in `<data>/ota/` (images/rootfs-overlay/usr/
//! libexec/sipsensor/health-check and rauc-pre-install write it; the
//! format is in docs/building-images.md), the updater's own journal and
//! the bundles already downloaded. Parsed here; read by [`read`].

use super::journal::Journal;
use std::path::{Path, PathBuf};

/// The board at the agent's start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Board {
    /// `VERSION_ID` of /etc/os-release, `unknown` without one.
    pub version: String,
    /// `compatible` of RAUC's system.conf, `unknown` without one.
    pub compatible: String,
    /// `rauc.slot=` of the kernel command line; `None` outside A/B.
    pub slot: Option<String>,
    /// /proc/sys/kernel/random/boot_id: tells "rebooted since" from "the
    /// agent restarted".
    pub boot_id: String,
    pub ota: OtaRecord,
    pub journal: Option<Journal>,
    /// Bundle files in the download directory.
    pub bundles: Vec<BundleFile>,
}

/// `<data>/ota/`: the slot an installed update wrote (`pending`, until the
/// health check decides) and the health check's history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OtaRecord {
    pub pending: Option<String>,
    /// The history's last lines, oldest first.
    pub history: Vec<HistoryEntry>,
}

impl OtaRecord {
    /// The entries since the last `good` (the current update's story).
    pub fn since_last_good(&self) -> &[HistoryEntry] {
        let start = self
            .history
            .iter()
            .rposition(|e| e.event == HistoryEvent::Good)
            .map_or(0, |i| i + 1);
        &self.history[start..]
    }
}

/// One line of `<data>/ota/history`: `TIME EVENT SLOT: TEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// As written (`2026-12-07T04:00:00Z`); kept for the reason text only.
    pub time: String,
    pub event: HistoryEvent,
    /// The slot the update wrote.
    pub slot: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryEvent {
    /// The trial slot passed its health check and was marked good.
    Good,
    /// The trial slot failed its health check; the board reboots.
    TrialFailed,
    /// The old slot runs again: the update's slot was marked bad.
    RolledBack,
}

impl HistoryEntry {
    /// `None` for a line of another format (an older image's history).
    pub fn parse(line: &str) -> Option<Self> {
        let (time, rest) = line.split_once(' ')?;
        let (event, rest) = rest.split_once(' ')?;
        let (slot, text) = rest.split_once(": ")?;
        let event = match event {
            "good" => HistoryEvent::Good,
            "trial-failed" => HistoryEvent::TrialFailed,
            "rolled-back" => HistoryEvent::RolledBack,
            _ => return None,
        };
        if slot.is_empty() || slot.contains(' ') {
            return None;
        }
        Some(HistoryEntry {
            time: time.to_owned(),
            event,
            slot: slot.to_owned(),
            text: text.trim().to_owned(),
        })
    }
}

/// A bundle file in the download directory: `<sha256>.raucb.part` while
/// downloading, `<sha256>.raucb` once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    pub sha256: String,
    pub bytes: u64,
    pub complete: bool,
}

impl BundleFile {
    pub fn from_name(name: &str, bytes: u64) -> Option<Self> {
        let (sha256, complete) = match name.strip_suffix(".raucb.part") {
            Some(s) => (s, false),
            None => (name.strip_suffix(".raucb")?, true),
        };
        Some(BundleFile {
            sha256: sha256.to_owned(),
            bytes,
            complete,
        })
    }
}

/// `VERSION_ID` of an os-release file, unquoted.
pub fn os_release_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("VERSION_ID="))
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_owned())
        .filter(|v| !v.is_empty())
}

/// `rauc.slot=` of a kernel command line.
pub fn booted_slot(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rauc.slot="))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `compatible=` of RAUC's system.conf (its `[system]` section).
pub fn rauc_compatible(system_conf: &str) -> Option<String> {
    let mut in_system = false;
    for line in system_conf.lines().map(str::trim) {
        if line.starts_with('[') {
            in_system = line == "[system]";
        } else if in_system
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "compatible"
        {
            return Some(value.trim().to_owned());
        }
    }
    None
}

/// Where [`read`] looks (the image's paths by default; tests move them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardPaths {
    pub os_release: PathBuf,
    pub rauc_system_conf: PathBuf,
    pub cmdline: PathBuf,
    pub boot_id: PathBuf,
    /// `<data>/ota`.
    pub ota_dir: PathBuf,
    /// `<data>/update`: bundles and the journal.
    pub download_dir: PathBuf,
}

impl BoardPaths {
    /// The system's files, with the data directories of the config.
    pub fn system(ota_dir: PathBuf, download_dir: PathBuf) -> Self {
        BoardPaths {
            os_release: "/etc/os-release".into(),
            rauc_system_conf: "/etc/rauc/system.conf".into(),
            cmdline: "/proc/cmdline".into(),
            boot_id: "/proc/sys/kernel/random/boot_id".into(),
            ota_dir,
            download_dir,
        }
    }

    pub fn journal(&self) -> PathBuf {
        self.download_dir.join("state")
    }
}

/// The history lines kept: the current update's story is a few lines.
const HISTORY_TAIL: usize = 20;

/// Read the board; a missing or unreadable file is "not known".
pub fn read(paths: &BoardPaths) -> Board {
    let text = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    Board {
        version: os_release_version(&text(&paths.os_release)).unwrap_or_else(|| "unknown".into()),
        compatible: rauc_compatible(&text(&paths.rauc_system_conf))
            .unwrap_or_else(|| "unknown".into()),
        slot: booted_slot(&text(&paths.cmdline)),
        boot_id: text(&paths.boot_id).trim().to_owned(),
        ota: read_ota(&paths.ota_dir),
        journal: Journal::parse(&text(&paths.journal())),
        bundles: read_bundles(&paths.download_dir),
    }
}

/// `<data>/ota/pending` and the tail of `history`.
pub fn read_ota(dir: &Path) -> OtaRecord {
    let pending = std::fs::read_to_string(dir.join("pending"))
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.trim().to_owned()))
        .filter(|s| !s.is_empty());
    let history = std::fs::read_to_string(dir.join("history")).unwrap_or_default();
    let mut entries: Vec<HistoryEntry> = history.lines().filter_map(HistoryEntry::parse).collect();
    let cut = entries.len().saturating_sub(HISTORY_TAIL);
    entries.drain(..cut);
    OtaRecord {
        pending,
        history: entries,
    }
}

fn read_bundles(dir: &Path) -> Vec<BundleFile> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<BundleFile> = entries
        .flatten()
        .filter_map(|e| {
            let bytes = e.metadata().ok()?.len();
            BundleFile::from_name(e.file_name().to_str()?, bytes)
        })
        .collect();
    found.sort_by(|a, b| a.sha256.cmp(&b.sha256));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_image_files() {
        assert_eq!(
            os_release_version("NAME=sipsensor\nVERSION_ID=\"2026.12.1\"\n").as_deref(),
            Some("2026.12.1")
        );
        assert_eq!(os_release_version("NAME=x\n"), None);
        assert_eq!(
            booted_slot("console=ttyS0 rauc.slot=B panic=5\n").as_deref(),
            Some("B")
        );
        assert_eq!(booted_slot("console=ttyS0 rauc.slot= x"), None);
        let conf = "[system]\ncompatible=sipsensor-beaglebone\nbootloader=uboot\n\
                    [slot.rootfs.0]\ncompatible=other\n";
        assert_eq!(
            rauc_compatible(conf).as_deref(),
            Some("sipsensor-beaglebone")
        );
        assert_eq!(rauc_compatible("[keyring]\ncompatible=x\n"), None);
    }

    #[test]
    fn history_lines_name_event_slot_and_text() {
        let e = HistoryEntry::parse(
            "2026-12-07T04:00:00Z trial-failed B: the agent did not stream for 60s within 300s",
        )
        .expect("parses");
        assert_eq!(e.event, HistoryEvent::TrialFailed);
        assert_eq!(e.slot, "B");
        assert_eq!(e.text, "the agent did not stream for 60s within 300s");
        // An older image's free-text line is skipped, not misread.
        assert_eq!(
            HistoryEntry::parse("2026-12-01T00:00:00Z update to slot B is good: the agent"),
            None
        );
    }

    #[test]
    fn only_the_entries_after_the_last_good_count() {
        let line = |event, slot: &str| HistoryEntry {
            time: "t".into(),
            event,
            slot: slot.into(),
            text: "x".into(),
        };
        let ota = OtaRecord {
            pending: None,
            history: vec![
                line(HistoryEvent::TrialFailed, "A"),
                line(HistoryEvent::Good, "A"),
                line(HistoryEvent::TrialFailed, "B"),
            ],
        };
        assert_eq!(ota.since_last_good(), &ota.history[2..]);
    }

    #[test]
    fn read_takes_what_is_there_and_tolerates_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ota = dir.path().join("ota");
        let dl = dir.path().join("update");
        std::fs::create_dir_all(&ota).expect("mkdir");
        std::fs::create_dir_all(&dl).expect("mkdir");
        std::fs::write(ota.join("pending"), "B\n").expect("write");
        let mut history = String::new();
        for i in 0..30 {
            history.push_str(&format!(
                "2026-12-07T04:00:{i:02}Z trial-failed B: try {i}\n"
            ));
        }
        std::fs::write(ota.join("history"), history).expect("write");
        std::fs::write(dl.join(format!("{}.raucb.part", "a".repeat(64))), [0u8; 10])
            .expect("write");
        std::fs::write(dl.join("notes.txt"), "x").expect("write");
        let mut paths = BoardPaths::system(ota, dl);
        paths.os_release = dir.path().join("missing");
        paths.cmdline = dir.path().join("missing");
        paths.boot_id = dir.path().join("missing");
        paths.rauc_system_conf = dir.path().join("missing");
        let board = read(&paths);
        assert_eq!(board.version, "unknown");
        assert_eq!(board.slot, None);
        assert_eq!(board.ota.pending.as_deref(), Some("B"));
        assert_eq!(board.ota.history.len(), HISTORY_TAIL);
        assert_eq!(board.ota.history[0].text, "try 10");
        assert_eq!(
            board.bundles,
            [BundleFile {
                sha256: "a".repeat(64),
                bytes: 10,
                complete: false
            }]
        );
        assert_eq!(board.journal, None);
    }
}
