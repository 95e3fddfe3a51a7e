//! The updater's shell: reads the board, carries out the [`Updater`]'s
//! actions (HTTPS download, verification, `rauc install`, the journal,
//! the reboot command) and feeds the results and the clock back.
//!
//! It meets the SIP subscription (RFC 6665, the user agent's) on plain
//! channels ([`Links`]): wants in, [`Report`]s out. Before the reboot it
//! hands over [`Report::GoingDown`] so the subscription's side can send the
//! last NOTIFY (`Subscription-State: terminated;reason=deactivated`,
//! docs/protocol.md 12.1), and waits for it up to [`FAREWELL_WAIT`].

use super::board::{self, BoardPaths, OtaRecord};
use super::download::{self, Fetch};
use super::{Action, DownloadEnd, FleetState, FleetWant, Journal, Settings, UpdateState, Updater};
use crate::config::update::UpdateConfig;
use sipsensor_protocol::IdGenerator;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How long the reboot waits for the subscription's last NOTIFY.
pub const FAREWELL_WAIT: Duration = Duration::from_secs(5);
/// The lines of `rauc install`'s output kept for a failure's reason.
const RAUC_LINES: usize = 4;

/// What the updater hands the subscription side.
#[derive(Debug)]
pub enum Report {
    /// Send this state to every subscriber (a NOTIFY each).
    State(FleetState),
    /// The board reboots: end the subscriptions, then answer.
    GoingDown(oneshot::Sender<()>),
}

/// The updater's ends of its channels to the SIP subscription.
#[derive(Debug)]
pub struct Links {
    /// Each SUBSCRIBE's want (`None`: a body without `want`).
    pub wants: mpsc::UnboundedReceiver<Option<FleetWant>>,
    pub reports: mpsc::UnboundedSender<Report>,
}

/// The other ends, for the subscription side (and tests).
#[derive(Debug)]
pub struct SubscriptionEnds {
    pub wants: mpsc::UnboundedSender<Option<FleetWant>>,
    pub reports: mpsc::UnboundedReceiver<Report>,
}

pub fn links() -> (Links, SubscriptionEnds) {
    let (want_tx, want_rx) = mpsc::unbounded_channel();
    let (report_tx, report_rx) = mpsc::unbounded_channel();
    (
        Links {
            wants: want_rx,
            reports: report_tx,
        },
        SubscriptionEnds {
            wants: want_tx,
            reports: report_rx,
        },
    )
}

/// What the shell's tasks report back.
#[derive(Debug)]
enum Done {
    Progress(String, u64),
    Downloaded(String, DownloadEnd),
    Verified(String, Result<(), String>),
    InstallProgress(u8),
    Installed(Result<(), String>),
    Health(OtaRecord),
}

/// Run the updater on the system's files until `stop` turns true.
pub async fn run(
    config: UpdateConfig,
    agent_version: String,
    links: Links,
    stop: watch::Receiver<bool>,
) {
    let paths = BoardPaths::system(config.ota_dir.clone(), config.dir.clone());
    run_with(config, paths, agent_version, links, stop).await;
}

/// [`run`] with the board's files elsewhere (tests).
pub async fn run_with(
    config: UpdateConfig,
    paths: BoardPaths,
    agent_version: String,
    mut links: Links,
    mut stop: watch::Receiver<bool>,
) {
    // Off, it only reports (12.4): nothing is downloaded.
    if config.enabled
        && let Err(e) = std::fs::create_dir_all(&config.dir)
    {
        tracing::error!(
            "update: cannot create {}: {e}; downloads will fail",
            config.dir.display()
        );
    }
    let board = {
        let paths = paths.clone();
        tokio::task::spawn_blocking(move || board::read(&paths))
            .await
            .unwrap_or_default()
    };
    let mut settings = Settings::new(agent_version, config.window);
    settings.enabled = config.enabled;
    let mut updater = Updater::new(settings, board, IdGenerator::from_entropy(), Instant::now());
    let mut shell = Shell {
        config,
        paths,
        reports: links.reports,
        download: None,
        done: mpsc::unbounded_channel(),
    };
    let mut wants_open = true;
    loop {
        shell.carry_out(&mut updater).await;
        let wake = updater.poll_timeout();
        tokio::select! {
            _ = stop.changed() => break,
            want = links.wants.recv(), if wants_open => match want {
                Some(want) => updater.handle_want(want, Instant::now()),
                None => wants_open = false,
            },
            Some(done) = shell.done.1.recv() => shell.feed(&mut updater, done),
            () = sleep_until(wake) => updater.handle_timeout(Instant::now(), SystemTime::now()),
        }
    }
    if let Some(task) = shell.download.take() {
        task.abort();
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

struct Shell {
    config: UpdateConfig,
    paths: BoardPaths,
    reports: mpsc::UnboundedSender<Report>,
    download: Option<JoinHandle<()>>,
    done: (mpsc::UnboundedSender<Done>, mpsc::UnboundedReceiver<Done>),
}

impl Shell {
    fn feed(&self, u: &mut Updater, done: Done) {
        let now = Instant::now();
        match done {
            Done::Progress(sha, have) => u.download_progress(&sha, have, now),
            Done::Downloaded(sha, end) => {
                match &end {
                    DownloadEnd::Interrupted(reason) => {
                        tracing::warn!("update: download interrupted: {reason}; resuming later")
                    }
                    DownloadEnd::Refused(_) | DownloadEnd::Complete => {}
                }
                u.download_ended(&sha, end, now);
            }
            Done::Verified(sha, result) => u.verified(&sha, result, now),
            Done::InstallProgress(p) => u.install_progress(p, now),
            Done::Installed(result) => u.install_ended(result, now, SystemTime::now()),
            Done::Health(ota) => u.health_read(&ota, now),
        }
    }

    /// The states first (a reboot's last NOTIFY needs them sent), then
    /// the actions, in order.
    async fn carry_out(&mut self, u: &mut Updater) {
        loop {
            while let Some(state) = u.poll_state() {
                log_state(&state);
                let _ = self.reports.send(Report::State(state));
            }
            let Some(action) = u.poll_action() else {
                return;
            };
            self.act(u, action).await;
        }
    }

    async fn act(&mut self, u: &mut Updater, action: Action) {
        let dir = self.config.dir.clone();
        match action {
            Action::Download {
                sha256,
                url,
                size,
                offset,
            } => {
                if let Some(old) = self.download.take() {
                    old.abort();
                }
                let job = Fetch {
                    url,
                    size,
                    part: download::part_path(&dir, &sha256),
                    offset,
                };
                let tx = self.done.0.clone();
                let ca_file = self.config.ca_file.clone();
                self.download = Some(tokio::spawn(async move {
                    let end = match sipsensor_runtime::sip_transport::tls::client_config(
                        &ca_file, None,
                    ) {
                        Ok(tls) => {
                            let progress_tx = tx.clone();
                            download::fetch(tls, &job, |have| {
                                let _ = progress_tx.send(Done::Progress(sha256.clone(), have));
                            })
                            .await
                        }
                        Err(e) => DownloadEnd::Interrupted(format!("sip.ca_file: {e}")),
                    };
                    let _ = tx.send(Done::Downloaded(sha256, end));
                }));
            }
            Action::CancelDownload => {
                if let Some(task) = self.download.take() {
                    task.abort();
                }
            }
            Action::Verify { sha256, size } => {
                let tx = self.done.0.clone();
                tokio::task::spawn_blocking(move || {
                    let result = download::verify(&dir, &sha256, size).map(|_| ());
                    let _ = tx.send(Done::Verified(sha256, result));
                });
            }
            Action::Install { sha256 } => {
                let bundle = download::bundle_path(&dir, &sha256);
                let tx = self.done.0.clone();
                let rauc = self.config.rauc.clone();
                tokio::spawn(async move {
                    let result = install(&rauc, &bundle, &tx).await;
                    let _ = tx.send(Done::Installed(result));
                });
            }
            Action::Record(journal) => {
                let path = self.paths.journal();
                let written =
                    tokio::task::spawn_blocking(move || write_journal(&path, &journal)).await;
                if let Ok(Err(e)) = written {
                    tracing::warn!("update: cannot write the journal: {e}");
                }
            }
            Action::RemoveBundles { keep } => {
                let _ = tokio::task::spawn_blocking(move || remove_bundles(&dir, keep.as_deref()))
                    .await;
            }
            Action::ReadHealth => {
                let tx = self.done.0.clone();
                let ota_dir = self.paths.ota_dir.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send(Done::Health(board::read_ota(&ota_dir)));
                });
            }
            Action::Reboot => {
                let (ack, acked) = oneshot::channel();
                if self.reports.send(Report::GoingDown(ack)).is_ok() {
                    let _ = tokio::time::timeout(FAREWELL_WAIT, acked).await;
                }
                if let Err(e) = reboot(&self.config.reboot_command).await {
                    tracing::error!(
                        "update: the reboot command `{}` failed: {e}; trying again in a minute",
                        self.config.reboot_command.join(" ")
                    );
                    u.reboot_failed(Instant::now());
                }
            }
        }
    }
}

fn log_state(s: &FleetState) {
    let target = s.target.as_deref().unwrap_or("-");
    let reason = s.reason.as_deref().unwrap_or("");
    match s.update {
        UpdateState::Failed | UpdateState::RolledBack => {
            tracing::warn!("update: {} {target}: {reason}", s.update.as_str());
        }
        // Progress would fill the log; the status shows it.
        UpdateState::Downloading | UpdateState::Installing if s.progress != Some(0) => {}
        _ => tracing::info!("update: {} {target}", s.update.as_str()),
    }
}

/// `rauc install BUNDLE`, its percentages passed on; on failure the last
/// lines of its output are the reason.
async fn install(
    rauc: &Path,
    bundle: &Path,
    progress: &mpsc::UnboundedSender<Done>,
) -> Result<(), String> {
    let mut child = tokio::process::Command::new(rauc)
        .arg("install")
        .arg(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", rauc.display()))?;
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<String>();
    let readers: Vec<JoinHandle<()>> = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    .map(|out| {
        let tx = lines_tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        })
    })
    .collect();
    drop(lines_tx);
    let mut last: Vec<String> = Vec::new();
    while let Some(line) = lines_rx.recv().await {
        if let Some(p) = percent(&line) {
            let _ = progress.send(Done::InstallProgress(p));
        }
        let line = line.trim();
        if !line.is_empty() {
            last.push(line.to_owned());
            if last.len() > RAUC_LINES {
                last.remove(0);
            }
        }
    }
    for r in readers {
        let _ = r.await;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for `{}`: {e}", rauc.display()))?;
    if status.success() {
        Ok(())
    } else if last.is_empty() {
        Err(format!("{status}"))
    } else {
        Err(format!("{status}: {}", last.join(" / ")))
    }
}

/// The percentage of a `rauc install` progress line (`" 40% Copying"`).
fn percent(line: &str) -> Option<u8> {
    let word = line.split_whitespace().find(|w| w.ends_with('%'))?;
    let n: u8 = word.trim_end_matches('%').parse().ok()?;
    (n <= 100).then_some(n)
}

async fn reboot(command: &[String]) -> Result<(), String> {
    let (program, args) = command.split_first().ok_or("no command")?;
    let status = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .await
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(status.to_string())
    }
}

/// Durably: a new file, synced, renamed over the old one.
fn write_journal(path: &Path, journal: &Journal) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("new");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(journal.render().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn remove_bundles(dir: &Path, keep: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let doomed: Vec<PathBuf> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let file = board::BundleFile::from_name(&name, 0)?;
            (Some(file.sha256.as_str()) != keep).then(|| e.path())
        })
        .collect();
    for path in doomed {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!("update: cannot delete {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rauc_progress_lines() {
        assert_eq!(percent("  0% Installing"), Some(0));
        assert_eq!(percent(" 40% Copying image to rootfs.1"), Some(40));
        assert_eq!(percent("100% Installing done."), Some(100));
        assert_eq!(percent("installing `/data/x.raucb`: started"), None);
        assert_eq!(percent("250% nonsense"), None);
    }

    #[test]
    fn remove_bundles_keeps_the_named_one_and_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keep = "a".repeat(64);
        for name in [
            format!("{keep}.raucb.part"),
            format!("{}.raucb", "b".repeat(64)),
            format!("{}.raucb.part", "c".repeat(64)),
            "state".into(),
        ] {
            std::fs::write(dir.path().join(name), "x").expect("write");
        }
        remove_bundles(dir.path(), Some(&keep));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(left, [format!("{keep}.raucb.part"), "state".into()]);
    }
}
