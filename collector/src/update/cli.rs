//! `sipsensor-collector update ...`: publishing and listing bundles.

use super::bundle;
use crate::config::{self, Config};
use crate::storage::{self, OpenOptions};
use crate::timefmt;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Bundles, in the store.
    #[command(flatten)]
    Bundles(BundleCommand),
    /// Rollouts, through the running collector's control socket.
    #[command(flatten)]
    Rollouts(super::rollout::control::UpdateCommand),
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Check a RAUC bundle against update.keyring and publish it.
    Publish {
        #[arg(short, long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// The bundle file (.raucb, verity format).
        bundle: PathBuf,
    },
    /// List the published bundles, newest first.
    List {
        #[arg(short, long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

/// Runs `command`, printing what it did; the error is the line to print.
pub async fn run(command: UpdateCommand) -> Result<(), String> {
    match command {
        UpdateCommand::Bundles(b) => bundles(b).await,
        UpdateCommand::Rollouts(r) => {
            tokio::task::spawn_blocking(move || super::rollout::control::run(r))
                .await
                .map_err(|e| e.to_string())?
        }
    }
}

async fn bundles(command: BundleCommand) -> Result<(), String> {
    let path = match &command {
        BundleCommand::Publish { config, .. } | BundleCommand::List { config } => config,
    };
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let store = storage::open(&config.storage.url, OpenOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let updates = store
        .clone()
        .updates()
        .ok_or("this store has no update tables")?;
    let result = match command {
        BundleCommand::Publish { bundle: file, .. } => bundle::publish(
            &file,
            &config.update.bundle_dir,
            config.update.keyring.as_deref(),
            updates.as_ref(),
            timefmt::now_ns(),
        )
        .await
        .map(|b| {
            println!(
                "published {} {} ({}, {} bytes) as {}",
                b.compatible,
                b.version,
                b.sha256,
                b.size,
                config
                    .update
                    .bundle_url(&b.sha256)
                    .unwrap_or_else(|| bundle::file_name(&b.sha256)),
            )
        })
        .map_err(|e| e.to_string()),
        BundleCommand::List { .. } => updates
            .bundles()
            .await
            .map(|bundles| {
                for b in bundles {
                    println!(
                        "{}  {}  {}  {}  {}",
                        timefmt::format_rfc3339(b.published_ns),
                        b.version,
                        b.compatible,
                        b.size,
                        b.sha256
                    );
                }
            })
            .map_err(|e| e.to_string()),
    };
    let closed = store.close().await.map_err(|e| e.to_string());
    result.and(closed)
}
