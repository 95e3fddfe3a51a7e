//! The updater's journal, `<data>/update/state`: what it installed (or
//! failed on) and when, so that the outcome survives the reboot it causes
//! and a version that failed is not tried again by itself
//! (docs/protocol.md 12.4). `name=value` lines, like the fleet body.

use super::RebootPolicy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The version the update is about.
    pub target: String,
    pub sha256: String,
    pub step: Step,
    pub reboot: RebootPolicy,
    /// The boot the step was taken in (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// Why it failed or rolled back.
    pub reason: Option<String>,
    /// A failed or rolled-back target the collector has not cleared yet:
    /// it is not retried by itself.
    pub blocked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `rauc install` started; a restart in this state means it was cut.
    Installing,
    /// The other slot is written; a reboot boots it.
    Installed,
    Good,
    Failed,
    RolledBack,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::Installing => "installing",
            Step::Installed => "installed",
            Step::Good => "good",
            Step::Failed => "failed",
            Step::RolledBack => "rolled-back",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "installing" => Step::Installing,
            "installed" => Step::Installed,
            "good" => Step::Good,
            "failed" => Step::Failed,
            "rolled-back" => Step::RolledBack,
            _ => return None,
        })
    }
}

impl Journal {
    pub fn render(&self) -> String {
        let mut out = format!(
            "target={}\nsha256={}\nstep={}\nreboot={}\nboot={}\nblocked={}\n",
            one_line(&self.target),
            one_line(&self.sha256),
            self.step.as_str(),
            self.reboot.as_str(),
            one_line(&self.boot_id),
            if self.blocked { "yes" } else { "no" },
        );
        if let Some(reason) = &self.reason {
            out.push_str(&format!("reason={}\n", one_line(reason)));
        }
        out
    }

    /// `None` for an empty, cut or foreign file: the updater then starts
    /// from what the board says alone.
    pub fn parse(text: &str) -> Option<Self> {
        let mut target = None;
        let mut sha256 = None;
        let mut step = None;
        let mut reboot = RebootPolicy::Now;
        let mut boot_id = String::new();
        let mut reason = None;
        let mut blocked = false;
        for line in text.lines() {
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            match name {
                "target" => target = Some(value.to_owned()),
                "sha256" => sha256 = Some(value.to_owned()),
                "step" => step = Step::parse(value),
                "reboot" => reboot = RebootPolicy::parse(value).unwrap_or_default(),
                "boot" => boot_id = value.to_owned(),
                "reason" => reason = Some(value.to_owned()),
                "blocked" => blocked = value == "yes",
                _ => {}
            }
        }
        Some(Journal {
            target: target.filter(|t| !t.is_empty())?,
            sha256: sha256?,
            step: step?,
            reboot,
            boot_id,
            reason,
            blocked,
        })
    }
}

/// A value stays on its line: control characters become spaces.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_reasons_on_one_line() {
        let j = Journal {
            target: "2026.12.2".into(),
            sha256: "ab".repeat(32),
            step: Step::Failed,
            reboot: RebootPolicy::Window,
            boot_id: "b1".into(),
            reason: Some("rauc install: signature\ninvalid".into()),
            blocked: true,
        };
        let text = j.render();
        assert!(
            text.contains("reason=rauc install: signature invalid\n"),
            "{text}"
        );
        let back = Journal::parse(&text).expect("parses");
        assert_eq!(
            back.reason.as_deref(),
            Some("rauc install: signature invalid")
        );
        assert_eq!(
            back,
            Journal {
                reason: back.reason.clone(),
                ..j
            }
        );
    }

    #[test]
    fn a_cut_file_is_no_journal() {
        assert_eq!(Journal::parse(""), None);
        assert_eq!(Journal::parse("target=1\nsha256=x\n"), None);
        assert_eq!(Journal::parse("target=1\nsha256=x\nstep=dancing\n"), None);
    }
}
