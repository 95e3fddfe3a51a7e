//! The body of the fleet-update subscription, `application/vnd.sipsensor.fleet`
//! (docs/protocol.md 12.2-12.4): the sensor's state in NOTIFY
//! ([`FleetState`]) and the image the collector wants in SUBSCRIBE
//! ([`FleetWant`]).
//!
//! One text format both ways: UTF-8 `name=value` lines. Reading is strict
//! on the rules of 12.2 (size, names, duplicates, control characters) and
//! on the values this side acts on (a `want` needs an `https://` url, a
//! SHA-256 and a size), lenient on names it does not know, which newer
//! peers add.

mod lines;
#[cfg(test)]
mod tests;

use std::fmt;

use self::lines::{Lines, has_control};

/// The event package (RFC 6665 7.2: `Event` and `Allow-Events`).
pub const EVENT: &str = "sipsensor-fleet";

/// The body's media type (`Content-Type`, `Accept`).
pub const CONTENT_TYPE: &str = "application/vnd.sipsensor.fleet";

/// The largest body either side sends or reads (12.2).
pub const MAX_BODY: usize = 4096;

/// The package as the user agent speaks it (docs/protocol.md 12.1):
/// `notifier` on the sensor, which serves the subscription; off on the
/// collector, which subscribes. Bodies that break 12.2 get 400 before
/// the TU sees them; a SUBSCRIBE without `Expires` lasts an hour.
pub fn event_package(notifier: bool) -> crate::sip::ua::EventPackage {
    crate::sip::ua::EventPackage {
        name: EVENT.to_owned(),
        content_type: CONTENT_TYPE.to_owned(),
        notifier,
        default_expires: DEFAULT_EXPIRES,
        check_subscribe_body: Some(|body| {
            FleetWant::parse(body)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
        check_notify_body: Some(|body| {
            FleetState::parse(body)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    }
}

/// The duration the collector asks for (12.1).
pub const DEFAULT_EXPIRES: u32 = 3600;

/// Why a body is refused (12.2): the receiver answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetBodyError {
    #[error("the body is {len} bytes; at most {MAX_BODY}")]
    TooLarge { len: usize },
    #[error("the body is not UTF-8")]
    NotUtf8,
    #[error("line {line} is not name=value")]
    NotNameValue { line: usize },
    #[error("line {line}: a name is lower-case [a-z0-9-]+")]
    BadName { line: usize },
    #[error("line {line}: a control character in the value")]
    ControlCharacter { line: usize },
    #[error("{0} appears more than once")]
    Duplicate(String),
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{name}: {reason}")]
    BadValue {
        name: &'static str,
        reason: &'static str,
    },
}

/// `update=` (12.3): where the sensor's last update stands. Ordered as
/// 12.3 lists the states (the collector counts sensors by state in that
/// order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UpdateState {
    Idle,
    Downloading,
    Downloaded,
    Installing,
    Installed,
    Rebooting,
    /// Booted the slot an update wrote; the health check (12.6) runs.
    Trial,
    Good,
    /// Before the reboot: download, checksum or `rauc install`.
    Failed,
    /// The new slot failed its health check; the old one runs again.
    RolledBack,
}

impl UpdateState {
    pub const ALL: [UpdateState; 10] = [
        Self::Idle,
        Self::Downloading,
        Self::Downloaded,
        Self::Installing,
        Self::Installed,
        Self::Rebooting,
        Self::Trial,
        Self::Good,
        Self::Failed,
        Self::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Downloading => "downloading",
            Self::Downloaded => "downloaded",
            Self::Installing => "installing",
            Self::Installed => "installed",
            Self::Rebooting => "rebooting",
            Self::Trial => "trial",
            Self::Good => "good",
            Self::Failed => "failed",
            Self::RolledBack => "rolled-back",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The states that carry `progress` (12.3).
    pub fn has_progress(self) -> bool {
        matches!(self, Self::Downloading | Self::Installing)
    }
}

impl fmt::Display for UpdateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `reboot=` (12.4): when the sensor reboots into a new image.
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
            Self::Now => "now",
            Self::Window => "window",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Now, Self::Window]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// The sensor's state, the body of every NOTIFY (12.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetState {
    /// The running image's version (`VERSION_ID`).
    pub version: String,
    /// The agent's version.
    pub agent: String,
    /// The RAUC compatible string.
    pub compatible: String,
    /// The booted slot's bootname (`A`, `B`), `-` outside A/B.
    pub slot: String,
    pub update: UpdateState,
    /// The version the update is about; set unless `idle`.
    pub target: Option<String>,
    /// Whole percent of the current step (`downloading`, `installing`).
    pub progress: Option<u8>,
    /// Why it failed or rolled back: one line (see [`one_line`]).
    pub reason: Option<String>,
}

impl FleetState {
    /// Reads a NOTIFY body.
    pub fn parse(body: &[u8]) -> Result<Self, FleetBodyError> {
        let lines = Lines::read(body)?;
        let update = lines.required("update")?;
        let update = UpdateState::parse(update).ok_or(FleetBodyError::BadValue {
            name: "update",
            reason: "not a state of docs/protocol.md 12.3",
        })?;
        let target = lines.optional("target").map(str::to_owned);
        if update != UpdateState::Idle && target.is_none() {
            return Err(FleetBodyError::Missing("target"));
        }
        let progress = match lines.optional("progress") {
            None => None,
            Some(text) => Some(
                text.parse::<u8>()
                    .ok()
                    .filter(|p| *p <= 100 && !text.starts_with('+'))
                    .ok_or(FleetBodyError::BadValue {
                        name: "progress",
                        reason: "not a whole percent 0-100",
                    })?,
            ),
        };
        Ok(Self {
            version: lines.required("version")?.to_owned(),
            agent: lines.required("agent")?.to_owned(),
            compatible: lines.required("compatible")?.to_owned(),
            slot: lines.required("slot")?.to_owned(),
            update,
            target,
            progress,
            reason: lines.optional("reason").map(str::to_owned),
        })
    }

    /// The NOTIFY body. Refused when a value holds a control character
    /// (pass free text through [`one_line`]) or the body would pass
    /// [`MAX_BODY`].
    pub fn to_body(&self) -> Result<Vec<u8>, FleetBodyError> {
        let mut out = Body::default();
        out.line("version", &self.version)?;
        out.line("agent", &self.agent)?;
        out.line("compatible", &self.compatible)?;
        out.line("slot", &self.slot)?;
        out.line("update", self.update.as_str())?;
        if let Some(target) = &self.target {
            out.line("target", target)?;
        }
        if let Some(progress) = self.progress {
            out.line("progress", &progress.to_string())?;
        }
        if let Some(reason) = &self.reason {
            out.line("reason", reason)?;
        }
        out.finish()
    }
}

/// The image the collector wants a sensor to run: the `want` part of a
/// SUBSCRIBE body (12.4). A body without `want` (or no body) means "report
/// only": [`FleetWant::parse`] gives `None` for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetWant {
    /// The version to run.
    pub version: String,
    /// `https://` URL of the bundle.
    pub url: String,
    /// The bundle file's SHA-256.
    pub sha256: [u8; 32],
    /// The bundle's length in bytes.
    pub size: u64,
    pub reboot: RebootPolicy,
}

impl FleetWant {
    /// Reads a SUBSCRIBE body: `None` for "report only" (an empty body,
    /// or one without `want`).
    pub fn parse(body: &[u8]) -> Result<Option<Self>, FleetBodyError> {
        let lines = Lines::read(body)?;
        let reboot = match lines.optional("reboot") {
            None => RebootPolicy::Now,
            Some(text) => RebootPolicy::parse(text).ok_or(FleetBodyError::BadValue {
                name: "reboot",
                reason: "neither now nor window",
            })?,
        };
        let Some(version) = lines.optional("want") else {
            return Ok(None);
        };
        let url = lines.required("url")?;
        if !is_https_url(url) {
            return Err(FleetBodyError::BadValue {
                name: "url",
                reason: "not an https:// URL with a host",
            });
        }
        let sha256 = parse_sha256(lines.required("sha256")?).ok_or(FleetBodyError::BadValue {
            name: "sha256",
            reason: "not 64 lower-case hex digits",
        })?;
        let size = lines.required("size")?;
        let size = (!size.starts_with('+'))
            .then(|| size.parse::<u64>().ok())
            .flatten()
            .ok_or(FleetBodyError::BadValue {
                name: "size",
                reason: "not a length in bytes",
            })?;
        Ok(Some(Self {
            version: version.to_owned(),
            url: url.to_owned(),
            sha256,
            size,
            reboot,
        }))
    }

    /// The bundle's SHA-256 as `sha256=` writes it (and the agent names
    /// the file it downloads to, docs/protocol.md 12.5).
    pub fn sha256_hex(&self) -> String {
        sha256_hex(&self.sha256)
    }

    /// The SUBSCRIBE body. Refused as [`FleetState::to_body`] is, and for
    /// a URL that is not `https://`.
    pub fn to_body(&self) -> Result<Vec<u8>, FleetBodyError> {
        if !is_https_url(&self.url) {
            return Err(FleetBodyError::BadValue {
                name: "url",
                reason: "not an https:// URL with a host",
            });
        }
        let mut out = Body::default();
        out.line("want", &self.version)?;
        out.line("url", &self.url)?;
        out.line("sha256", &sha256_hex(&self.sha256))?;
        out.line("size", &self.size.to_string())?;
        out.line("reboot", self.reboot.as_str())?;
        out.finish()
    }
}

/// The SHA-256 as `sha256=` writes it: 64 lower-case hex digits.
pub fn sha256_hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads 64 lower-case hex digits.
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// Free text (an error message) as one value: control characters become
/// spaces, and it is cut to 512 bytes so that a state with it still fits
/// the body.
pub fn one_line(text: &str) -> String {
    const MAX_REASON: usize = 512;
    let mut out = String::new();
    for c in text.trim().chars() {
        if out.len() + c.len_utf8() > MAX_REASON {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// `https://` followed by a host: what the agent's download can fetch
/// (12.5); no white space.
fn is_https_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..host_end];
    !authority.is_empty()
        && !authority.starts_with(':')
        && !authority.contains('@')
        && !url.chars().any(char::is_whitespace)
}

/// A body being written: the same rules the reader holds it to.
#[derive(Default)]
struct Body(String);

impl Body {
    fn line(&mut self, name: &'static str, value: &str) -> Result<(), FleetBodyError> {
        if has_control(value) {
            return Err(FleetBodyError::BadValue {
                name,
                reason: "a control character",
            });
        }
        self.0.push_str(name);
        self.0.push('=');
        self.0.push_str(value);
        self.0.push('\n');
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>, FleetBodyError> {
        if self.0.len() > MAX_BODY {
            return Err(FleetBodyError::TooLarge { len: self.0.len() });
        }
        Ok(self.0.into_bytes())
    }
}
