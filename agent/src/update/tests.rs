//! The updater's rules (docs/protocol.md 12.3-12.6) on a virtual clock.

use super::board::{BundleFile, HistoryEntry, OtaRecord};
use super::*;
use sipsensor_protocol::IdGenerator;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SIZE: u64 = 1000;

fn sha(version: &str) -> String {
    let digit = match version {
        "2.0" => "2",
        "3.0" => "3",
        _ => "f",
    };
    digit.repeat(64)
}

fn want(version: &str) -> FleetWant {
    FleetWant {
        version: version.into(),
        url: format!(
            "https://collector.example:8443/bundles/{}.raucb",
            sha(version)
        ),
        sha256: sipsensor_protocol::fleet::parse_sha256(&sha(version)).expect("64 hex digits"),
        size: SIZE,
        reboot: RebootPolicy::Now,
    }
}

fn board() -> Board {
    Board {
        version: "1.0".into(),
        compatible: "sipsensor-test".into(),
        slot: Some("A".into()),
        boot_id: "boot-1".into(),
        ..Board::default()
    }
}

struct Bench {
    u: Updater,
    now: Instant,
    /// 01:00 UTC on some day.
    wall: SystemTime,
}

impl Bench {
    fn new(board: Board) -> Self {
        Self::with_window(board, None)
    }

    fn with_window(board: Board, window: Option<&str>) -> Self {
        let window = window.map(|w| Window::parse(w).expect("valid window"));
        let now = Instant::now();
        Bench {
            u: Updater::new(
                Settings::new("0.1.0".into(), window),
                board,
                IdGenerator::seeded(3),
                now,
            ),
            now,
            wall: UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + 3600),
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.wall += by;
        self.u.handle_timeout(self.now, self.wall);
    }

    /// Run the clock to the updater's next wake.
    fn wake(&mut self) {
        let at = self.u.poll_timeout().expect("a wake is planned");
        let by = at.saturating_duration_since(self.now);
        self.advance(by);
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.u.poll_action()).collect()
    }

    fn states(&mut self) -> Vec<(UpdateState, Option<u8>)> {
        std::iter::from_fn(|| self.u.poll_state())
            .map(|s| (s.update, s.progress))
            .collect()
    }

    fn want(&mut self, w: Option<FleetWant>) {
        self.u.handle_want(w, self.now);
    }

    /// Download 2.0 to the end and verify it.
    fn downloaded(&mut self) {
        self.want(Some(want("2.0")));
        self.u
            .download_ended(&sha("2.0"), DownloadEnd::Complete, self.now);
        self.u.verified(&sha("2.0"), Ok(()), self.now);
        self.actions();
        self.states();
    }
}

fn download_at(version: &str, offset: u64) -> Action {
    Action::Download {
        sha256: sha(version),
        url: want(version).url,
        size: SIZE,
        offset,
    }
}

fn journal_steps(actions: &[Action]) -> Vec<Step> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Record(j) => Some(j.step),
            _ => None,
        })
        .collect()
}

#[test]
fn a_fresh_board_reports_idle_with_what_it_runs() {
    let mut b = Bench::new(board());
    let s = b.u.poll_state().expect("the first state");
    assert_eq!(s.version, "1.0");
    assert_eq!(s.agent, "0.1.0");
    assert_eq!(s.compatible, "sipsensor-test");
    assert_eq!(s.slot, "A");
    assert_eq!(s.update, UpdateState::Idle);
    assert_eq!((s.target, s.progress, s.reason), (None, None, None));
    assert_eq!(b.actions(), []);
    assert_eq!(b.u.poll_timeout(), None);
    let outside = Board {
        slot: None,
        ..board()
    };
    assert_eq!(Bench::new(outside).u.state().slot, "-");
}

#[test]
fn a_want_downloads_and_progress_goes_out_at_most_every_5_s() {
    let mut b = Bench::new(board());
    b.states();
    b.want(Some(want("2.0")));
    assert_eq!(
        b.actions(),
        [
            Action::RemoveBundles {
                keep: Some(sha("2.0"))
            },
            download_at("2.0", 0)
        ]
    );
    assert_eq!(b.states(), [(UpdateState::Downloading, Some(0))]);
    assert_eq!(b.u.state().target.as_deref(), Some("2.0"));
    b.advance(Duration::from_secs(1));
    b.u.download_progress(&sha("2.0"), 100, b.now);
    b.advance(Duration::from_secs(1));
    b.u.download_progress(&sha("2.0"), 300, b.now);
    assert_eq!(b.states(), [], "held back");
    b.wake();
    assert_eq!(b.states(), [(UpdateState::Downloading, Some(30))]);
    // Five seconds after that one, not before.
    b.advance(Duration::from_secs(4));
    b.u.download_progress(&sha("2.0"), 500, b.now);
    assert_eq!(b.states(), []);
    b.advance(Duration::from_secs(1));
    assert_eq!(b.states(), [(UpdateState::Downloading, Some(50))]);
    // A change of step goes out at once.
    b.advance(Duration::from_millis(100));
    b.u.download_progress(&sha("2.0"), SIZE, b.now);
    b.u.download_ended(&sha("2.0"), DownloadEnd::Complete, b.now);
    b.u.verified(&sha("2.0"), Ok(()), b.now);
    assert_eq!(
        b.states(),
        [
            (UpdateState::Downloaded, None),
            (UpdateState::Installing, Some(0))
        ]
    );
}

#[test]
fn an_interrupted_download_resumes_where_the_file_ends() {
    let mut b = Bench::new(board());
    b.want(Some(want("2.0")));
    b.actions();
    b.u.download_progress(&sha("2.0"), 400, b.now);
    // The held-back progress goes out first (its wake is not the retry's).
    b.advance(Duration::from_secs(5));
    b.u.download_ended(
        &sha("2.0"),
        DownloadEnd::Interrupted("connection reset".into()),
        b.now,
    );
    assert_eq!(b.actions(), []);
    assert_eq!(b.u.state().update, UpdateState::Downloading);
    let first = b.u.poll_timeout().expect("a retry") - b.now;
    assert!(first >= Duration::from_millis(2500) && first <= Duration::from_secs(5));
    b.wake();
    assert_eq!(b.actions(), [download_at("2.0", 400)]);
    // The back-off grows while the server stays away.
    b.u.download_ended(&sha("2.0"), DownloadEnd::Interrupted("503".into()), b.now);
    let second = b.u.poll_timeout().expect("a retry") - b.now;
    assert!(second >= Duration::from_secs(5), "{second:?}");
}

#[test]
fn a_bundle_on_disk_from_before_a_restart_is_resumed_or_checked_again() {
    let mut partial = board();
    partial.bundles = vec![BundleFile {
        sha256: sha("2.0"),
        bytes: 640,
        complete: false,
    }];
    let mut b = Bench::new(partial);
    b.want(Some(want("2.0")));
    assert!(b.actions().contains(&download_at("2.0", 640)));
    assert_eq!(b.u.state().progress, Some(64));

    let mut complete = board();
    complete.bundles = vec![BundleFile {
        sha256: sha("2.0"),
        bytes: SIZE,
        complete: true,
    }];
    let mut b = Bench::new(complete);
    b.want(Some(want("2.0")));
    assert!(b.actions().contains(&Action::Verify {
        sha256: sha("2.0"),
        size: SIZE
    }));
}

#[test]
fn a_checksum_mismatch_fails_and_the_version_is_not_tried_again_until_cleared() {
    let mut b = Bench::new(board());
    b.want(Some(want("2.0")));
    b.u.download_ended(&sha("2.0"), DownloadEnd::Complete, b.now);
    b.actions();
    b.u.verified(&sha("2.0"), Err("sha256 mismatch".into()), b.now);
    let s = b.u.state();
    assert_eq!(s.update, UpdateState::Failed);
    assert_eq!(s.target.as_deref(), Some("2.0"));
    assert_eq!(s.reason.as_deref(), Some("sha256 mismatch"));
    assert_eq!(journal_steps(&b.actions()), [Step::Failed]);
    // The refresh still wants it: nothing happens.
    b.want(Some(want("2.0")));
    assert_eq!(b.actions(), []);
    assert_eq!(b.u.state().update, UpdateState::Failed);
    // The collector clears the want, then sets it again.
    b.want(None);
    let cleared = b.actions();
    assert!(
        matches!(&cleared[..], [Action::Record(j)] if !j.blocked),
        "{cleared:?}"
    );
    assert_eq!(b.u.state().update, UpdateState::Failed, "the result stays");
    b.want(Some(want("2.0")));
    assert!(b.actions().contains(&download_at("2.0", 0)));
}

#[test]
fn a_block_survives_a_restart() {
    let mut failed = board();
    failed.journal = Some(Journal {
        target: "2.0".into(),
        sha256: sha("2.0"),
        step: Step::Failed,
        reboot: RebootPolicy::Now,
        boot_id: "boot-0".into(),
        reason: Some("rauc install: signature invalid".into()),
        blocked: true,
    });
    let mut b = Bench::new(failed);
    let s = b.u.state();
    assert_eq!(s.update, UpdateState::Failed);
    assert_eq!(s.reason.as_deref(), Some("rauc install: signature invalid"));
    b.want(Some(want("2.0")));
    assert_eq!(b.actions(), []);
    // Another version is taken.
    b.want(Some(want("3.0")));
    assert!(b.actions().contains(&download_at("3.0", 0)));
}

#[test]
fn a_want_less_body_cancels_a_download_but_never_an_install() {
    let mut b = Bench::new(board());
    b.want(Some(want("2.0")));
    b.actions();
    b.want(None);
    assert_eq!(
        b.actions(),
        [Action::CancelDownload, Action::RemoveBundles { keep: None }]
    );
    assert_eq!(b.u.state().update, UpdateState::Idle);
    // Late news of the cancelled download changes nothing.
    b.u.download_ended(&sha("2.0"), DownloadEnd::Complete, b.now);
    assert_eq!(b.actions(), []);

    b.downloaded();
    assert_eq!(b.u.state().update, UpdateState::Installing);
    b.want(None);
    b.want(Some(want("3.0")));
    assert_eq!(b.actions(), []);
    assert_eq!(b.u.state().update, UpdateState::Installing);
}

#[test]
fn another_version_replaces_a_running_download() {
    let mut b = Bench::new(board());
    b.want(Some(want("2.0")));
    b.actions();
    b.want(Some(want("3.0")));
    assert_eq!(
        b.actions(),
        [
            Action::CancelDownload,
            Action::RemoveBundles {
                keep: Some(sha("3.0"))
            },
            Action::RemoveBundles {
                keep: Some(sha("3.0"))
            },
            download_at("3.0", 0)
        ]
    );
    // Progress of the old one is not taken for the new one.
    b.u.download_progress(&sha("2.0"), 900, b.now);
    assert_eq!(b.u.state().progress, Some(0));
    // A refresh of the same want starts nothing.
    b.want(Some(want("3.0")));
    assert_eq!(b.actions(), []);
}

#[test]
fn the_running_version_is_reported_as_it_is() {
    let mut b = Bench::new(board());
    b.want(Some(want("2.0")));
    b.actions();
    b.want(Some(want("1.0")));
    assert_eq!(b.u.state().update, UpdateState::Idle);
    assert!(b.actions().contains(&Action::CancelDownload));
}

#[test]
fn a_want_the_agent_cannot_act_on_fails_without_blocking() {
    let mut b = Bench::new(board());
    let mut bad = want("2.0");
    bad.url = "http://collector.example/b.raucb".into();
    b.want(Some(bad));
    let s = b.u.state();
    assert_eq!(s.update, UpdateState::Failed);
    assert!(
        s.reason
            .as_deref()
            .is_some_and(|r| r.contains("not https://")),
        "{s:?}"
    );
    assert_eq!(b.actions(), []);
    b.want(Some(want("2.0")));
    assert!(b.actions().contains(&download_at("2.0", 0)));
}

#[test]
fn a_refused_download_fails() {
    let mut b = Bench::new(board());
    b.want(Some(want("2.0")));
    b.actions();
    b.u.download_ended(&sha("2.0"), DownloadEnd::Refused("HTTP 404".into()), b.now);
    let s = b.u.state();
    assert_eq!(s.update, UpdateState::Failed);
    assert_eq!(s.reason.as_deref(), Some("download: HTTP 404"));
}

#[test]
fn an_install_journals_then_reboots_at_once() {
    let mut b = Bench::new(board());
    b.want(Some(want("2.0")));
    b.u.download_ended(&sha("2.0"), DownloadEnd::Complete, b.now);
    b.u.verified(&sha("2.0"), Ok(()), b.now);
    let actions = b.actions();
    assert_eq!(journal_steps(&actions), [Step::Installing]);
    assert_eq!(
        actions.last(),
        Some(&Action::Install { sha256: sha("2.0") })
    );
    b.states();
    b.u.install_progress(40, b.now);
    b.advance(Duration::from_secs(5));
    assert_eq!(b.states(), [(UpdateState::Installing, Some(40))]);
    b.u.install_ended(Ok(()), b.now, b.wall);
    let actions = b.actions();
    assert_eq!(journal_steps(&actions), [Step::Installed]);
    assert!(actions.contains(&Action::RemoveBundles { keep: None }));
    assert_eq!(actions.last(), Some(&Action::Reboot));
    assert_eq!(
        b.states(),
        [
            (UpdateState::Installed, None),
            (UpdateState::Rebooting, None)
        ]
    );
    // A reboot command that fails is tried again a minute later.
    b.u.reboot_failed(b.now);
    b.advance(Duration::from_secs(59));
    assert_eq!(b.actions(), []);
    b.advance(Duration::from_secs(1));
    assert_eq!(b.actions(), [Action::Reboot]);
}

#[test]
fn a_failed_install_reports_rauc_s_words() {
    let mut b = Bench::new(board());
    b.downloaded();
    b.u.install_ended(Err("signature verification failed".into()), b.now, b.wall);
    let s = b.u.state();
    assert_eq!(s.update, UpdateState::Failed);
    assert_eq!(
        s.reason.as_deref(),
        Some("rauc install: signature verification failed")
    );
    assert!(!b.actions().contains(&Action::Reboot));
}

#[test]
fn reboot_window_waits_for_the_window_in_utc() {
    // The bench's wall clock starts at 01:00 UTC.
    let mut b = Bench::with_window(board(), Some("02:00-04:00"));
    let mut w = want("2.0");
    w.reboot = RebootPolicy::Window;
    b.want(Some(w));
    b.u.download_ended(&sha("2.0"), DownloadEnd::Complete, b.now);
    b.u.verified(&sha("2.0"), Ok(()), b.now);
    b.actions();
    b.u.install_ended(Ok(()), b.now, b.wall);
    assert!(!b.actions().contains(&Action::Reboot));
    assert_eq!(b.u.state().update, UpdateState::Installed);
    // Woken every 10 minutes to read the wall clock again.
    for _ in 0..5 {
        b.wake();
        assert!(!b.actions().contains(&Action::Reboot));
    }
    b.wake();
    assert_eq!(b.actions(), [Action::Reboot]);
    assert_eq!(b.u.state().update, UpdateState::Rebooting);

    // `reboot=window` without a window: at once.
    let mut b = Bench::new(board());
    let mut w = want("2.0");
    w.reboot = RebootPolicy::Window;
    b.want(Some(w));
    b.u.download_ended(&sha("2.0"), DownloadEnd::Complete, b.now);
    b.u.verified(&sha("2.0"), Ok(()), b.now);
    b.u.install_ended(Ok(()), b.now, b.wall);
    assert!(b.actions().contains(&Action::Reboot));
}

/// The journal an install left, and the board after the reboot.
fn after_reboot(step: Step, running: &str, slot: &str, pending: Option<&str>) -> Board {
    Board {
        version: running.into(),
        slot: Some(slot.into()),
        boot_id: "boot-2".into(),
        ota: OtaRecord {
            pending: pending.map(str::to_owned),
            history: Vec::new(),
        },
        journal: Some(Journal {
            target: "2.0".into(),
            sha256: sha("2.0"),
            step,
            reboot: RebootPolicy::Now,
            boot_id: "boot-1".into(),
            reason: None,
            blocked: false,
        }),
        ..board()
    }
}

#[test]
fn the_new_slot_is_on_trial_until_the_health_check_passes() {
    let mut b = Bench::new(after_reboot(Step::Installed, "2.0", "B", Some("B")));
    let s = b.u.state();
    assert_eq!(
        (s.update, s.target.as_deref(), s.slot.as_str()),
        (UpdateState::Trial, Some("2.0"), "B")
    );
    b.wake();
    assert_eq!(b.actions(), [Action::ReadHealth]);
    b.u.health_read(
        &OtaRecord {
            pending: Some("B".into()),
            history: Vec::new(),
        },
        b.now,
    );
    assert_eq!(b.u.state().update, UpdateState::Trial);
    b.wake();
    assert_eq!(b.actions(), [Action::ReadHealth]);
    b.u.health_read(&OtaRecord::default(), b.now);
    assert_eq!(b.u.state().update, UpdateState::Good);
    assert_eq!(journal_steps(&b.actions()), [Step::Good]);
    assert_eq!(b.u.poll_timeout(), None);
    // The collector's want is now the running version.
    b.want(Some(want("2.0")));
    assert_eq!(b.u.state().update, UpdateState::Good);
}

#[test]
fn the_new_slot_already_marked_good_is_good() {
    let mut b = Bench::new(after_reboot(Step::Installed, "2.0", "B", None));
    assert_eq!(b.u.state().update, UpdateState::Good);
    assert_eq!(journal_steps(&b.actions()), [Step::Good]);
}

#[test]
fn the_old_slot_running_again_is_a_rollback_with_the_health_check_s_reason() {
    let mut board = after_reboot(Step::Installed, "1.0", "A", None);
    board.ota.history = vec![
        HistoryEntry::parse("2026-12-07T01:00:00Z good A: registered and streamed for 60s")
            .expect("line"),
        HistoryEntry::parse(
            "2026-12-07T02:00:00Z trial-failed B: the agent did not stream for 60s within 300s",
        )
        .expect("line"),
        HistoryEntry::parse("2026-12-07T02:10:00Z rolled-back B: running slot A").expect("line"),
    ];
    let mut b = Bench::new(board);
    let s = b.u.state();
    assert_eq!(s.update, UpdateState::RolledBack);
    assert_eq!(s.target.as_deref(), Some("2.0"));
    assert_eq!(
        s.reason.as_deref(),
        Some("health check on slot B: the agent did not stream for 60s within 300s")
    );
    let actions = b.actions();
    assert!(
        matches!(&actions[..], [Action::Record(j)] if j.step == Step::RolledBack && j.blocked),
        "{actions:?}"
    );
    // Never retried by itself.
    b.want(Some(want("2.0")));
    assert_eq!(b.actions(), []);
}

#[test]
fn a_rollback_before_the_health_check_ran_names_the_pending_slot() {
    let b = Bench::new(after_reboot(Step::Installed, "1.0", "A", Some("B")));
    let s = b.u.state();
    assert_eq!(s.update, UpdateState::RolledBack);
    assert_eq!(s.reason.as_deref(), Some("slot B did not come up healthy"));
}

#[test]
fn an_install_cut_by_a_power_cut_is_failed() {
    let b = Bench::new(after_reboot(Step::Installing, "1.0", "A", Some("B")));
    let s = b.u.state();
    assert_eq!(s.update, UpdateState::Failed);
    assert!(
        s.reason.as_deref().is_some_and(|r| r.contains("cut short")),
        "{s:?}"
    );
}

#[test]
fn an_agent_restart_keeps_an_installed_update_s_reboot_and_fails_a_cut_install() {
    let mut same_boot = after_reboot(Step::Installed, "1.0", "A", Some("B"));
    same_boot.boot_id = "boot-1".into();
    let mut b = Bench::new(same_boot.clone());
    assert_eq!(b.u.state().update, UpdateState::Installed);
    b.wake();
    assert_eq!(b.actions(), [Action::Reboot]);

    if let Some(j) = &mut same_boot.journal {
        j.step = Step::Installing;
    }
    let b = Bench::new(same_boot);
    let s = b.u.state();
    assert_eq!(s.update, UpdateState::Failed);
    assert!(
        s.reason.as_deref().is_some_and(|r| r.contains("restarted")),
        "{s:?}"
    );
}

#[test]
fn a_bundle_installed_by_hand_is_on_trial_too() {
    let mut manual = board();
    manual.version = "1.5".into();
    manual.slot = Some("B".into());
    manual.ota.pending = Some("B".into());
    let b = Bench::new(manual);
    let s = b.u.state();
    assert_eq!(
        (s.update, s.target.as_deref()),
        (UpdateState::Trial, Some("1.5"))
    );
}

#[test]
fn updates_off_refuses_wants_and_still_reports() {
    let mut settings = Settings::new("0.1.0".into(), None);
    settings.enabled = false;
    let now = Instant::now();
    let mut u = Updater::new(settings, board(), IdGenerator::seeded(1), now);
    u.handle_want(Some(want("2.0")), now);
    let s = u.state();
    assert_eq!(s.update, UpdateState::Failed);
    assert_eq!(
        s.reason.as_deref(),
        Some("updates are off (update.enabled: false)")
    );
    assert_eq!(u.poll_action(), None);
    u.handle_want(Some(want("1.0")), now);
    assert_eq!(u.state().update, UpdateState::Idle);
}
