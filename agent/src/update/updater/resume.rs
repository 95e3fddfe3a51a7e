//! Where the updater takes up after a reboot, a power cut or a restart of
//! the agent: its journal, the booted slot and version, and the health
//! check's record (docs/protocol.md 12.3, 12.6; the record's format is in
//! docs/building-images.md).

use super::{Phase, Updater};
use crate::update::board::{Board, HistoryEvent, OtaRecord};
use crate::update::journal::Step;
use std::time::Instant;

impl Updater {
    /// What the board says: the phase after a reboot or a restart.
    pub(super) fn resume(&mut self, board: &Board, now: Instant) {
        let on_trial = board.ota.pending.is_some() && board.ota.pending == board.slot;
        let trial = |target: &str| Phase::Trial {
            target: target.to_owned(),
            read_at: now,
        };
        let Some(j) = board.journal.clone() else {
            // A bundle installed by hand is on trial all the same.
            if on_trial {
                self.phase = trial(&board.version);
            }
            return;
        };
        let same_boot = !j.boot_id.is_empty() && j.boot_id == board.boot_id;
        let running_target = board.version == j.target;
        match j.step {
            Step::Installing if same_boot => self.fail(
                j.target,
                "the agent restarted during `rauc install`: the other slot may be incomplete"
                    .into(),
            ),
            Step::Installed if same_boot => {
                self.phase = Phase::Installed {
                    target: j.target,
                    reboot: j.reboot,
                    // Planned again at the first timeout.
                    recheck_at: Some(now),
                };
            }
            Step::Installing | Step::Installed | Step::Good if running_target => {
                if on_trial {
                    self.phase = trial(&j.target);
                } else {
                    if j.step != Step::Good {
                        self.record_outcome(&j.target, Step::Good, None, false);
                    }
                    self.phase = Phase::Good { target: j.target };
                }
            }
            Step::Installing => {
                let slot = board.slot.as_deref().unwrap_or("-");
                self.fail(
                    j.target,
                    format!("the installation was cut short (power cut or crash); slot {slot} still runs"),
                );
            }
            Step::Installed => {
                let reason = rollback_reason(&board.ota);
                self.record_outcome(&j.target, Step::RolledBack, Some(&reason), true);
                self.blocked = Some(j.target.clone());
                self.phase = Phase::RolledBack {
                    target: j.target,
                    reason,
                };
            }
            // An image changed by other means since.
            Step::Good if on_trial => self.phase = trial(&board.version),
            Step::Good => {}
            Step::Failed | Step::RolledBack => {
                if j.blocked {
                    self.blocked = Some(j.target.clone());
                }
                let reason = j.reason.unwrap_or_else(|| "unknown".into());
                self.phase = if j.step == Step::Failed {
                    Phase::Failed {
                        target: j.target,
                        reason,
                    }
                } else {
                    Phase::RolledBack {
                        target: j.target,
                        reason,
                    }
                };
            }
        }
    }
}

/// Why the update's slot is not running: the health check's words when
/// it left some (docs/building-images.md, the ota history).
fn rollback_reason(ota: &OtaRecord) -> String {
    let story = ota.since_last_good();
    if let Some(e) = story
        .iter()
        .rev()
        .find(|e| e.event == HistoryEvent::TrialFailed)
    {
        return format!("health check on slot {}: {}", e.slot, e.text);
    }
    if let Some(e) = story
        .iter()
        .rev()
        .find(|e| e.event == HistoryEvent::RolledBack)
    {
        return e.text.clone();
    }
    match &ota.pending {
        Some(slot) => format!("slot {slot} did not come up healthy"),
        None => "the updated slot is not running".into(),
    }
}
