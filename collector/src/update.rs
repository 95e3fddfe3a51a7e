//! Fleet updates (docs/protocol.md 12): the bundles the collector publishes
//! and serves over HTTPS, the fleet view of what every sensor reports, and
//! the RFC 6665 subscriptions that carry reports and wants, and the staged
//! rollouts of a published version to a set of sensors (12.7: the sans-I/O
//! core, its persistence, the control requests behind
//! `sipsensor-collector update rollout/status/halt`).

pub mod bundle;
pub mod cli;
pub mod config;
pub mod fleet;
pub mod links;
pub mod rollout;
pub mod server;
pub mod store;
pub mod subscriptions;

use crate::config::Config;
use crate::http::Limits;
use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError};
use fleet::FleetView;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the store {0} has no fleet-update tables")]
    NoTables(String),
    #[error("update.listen needs sip.tls: the bundle server presents its certificate and key")]
    NoCertificate,
    #[error("update.listen: {0}")]
    Tls(#[from] sipsensor_runtime::sip_transport::tls::TlsError),
    #[error(transparent)]
    Bind(#[from] crate::http::BindError),
    #[error(transparent)]
    Rollouts(#[from] rollout::service::ServiceError),
}

/// What the SIP side takes to carry the fleet subscriptions: the manager's
/// handle for its events and the SUBSCRIBEs the manager asks for.
#[derive(Debug)]
pub struct SipLink {
    pub handle: subscriptions::run::FleetHandle,
    pub commands: tokio::sync::mpsc::Receiver<subscriptions::Command>,
}

/// The running parts of fleet updates.
#[derive(Debug)]
pub struct Updates {
    pub fleet: Arc<FleetView>,
    /// For the SIP side; taken by it.
    pub sip: Option<SipLink>,
    /// Where `update rollout/status/halt` go (12.7).
    pub rollouts: rollout::service::RolloutHandle,
    /// The bundle server's address and task, when `update.listen` is set.
    pub server: Option<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

/// Loads the fleet view, starts the subscription manager and the
/// rollouts (resuming the running ones, 12.7) and the bundle server
/// (`update.listen`), until `shutdown` resolves.
pub async fn start(
    config: &Config,
    storage: &Arc<dyn Storage>,
    metrics: &Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Updates, StartError> {
    let store = storage
        .clone()
        .updates()
        .ok_or_else(|| StartError::NoTables(storage.describe()))?;
    let fleet = FleetView::load(store.clone()).await?;
    metrics.watch_fleet(fleet.clone());
    let (handle, inputs) = subscriptions::run::channel();
    let catalog = links::StoreCatalog {
        store: store.clone(),
        config: config.update.clone(),
    };
    let sensors = links::Sensors {
        wants: handle.clone(),
        view: fleet.clone(),
    };
    let (rollouts, service) = rollout::service::RolloutService::start(
        storage.clone(),
        Arc::new(catalog),
        Arc::new(sensors),
    )
    .await?;
    tokio::spawn(service.run());
    // Bounded: the SIP side takes each one at once, and the manager waits.
    let (commands_tx, commands) = tokio::sync::mpsc::channel(256);
    // One shutdown for the manager and the bundle server.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut stop = stop_rx.clone();
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    };
    tokio::spawn(subscriptions::run::run(
        inputs,
        commands_tx,
        fleet.clone(),
        Some(Arc::new(rollouts.clone())),
        stopped(),
    ));
    let sip = Some(SipLink { handle, commands });
    let Some(listen) = config.update.listen else {
        return Ok(Updates {
            fleet,
            sip,
            rollouts,
            server: None,
        });
    };
    let tls = config.sip.tls.as_ref().ok_or(StartError::NoCertificate)?;
    let identity = sipsensor_runtime::sip_transport::tls::IdentityFiles {
        certificate: tls.certificate.clone(),
        private_key: tls.private_key.clone(),
    };
    let tls = sipsensor_runtime::sip_transport::tls::server_config(&identity, None)?;
    let listener = crate::http::bind(listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|source| crate::http::BindError {
            addr: listen,
            source,
        })?;
    let bundles = server::Bundles {
        store,
        dir: config.update.bundle_dir.clone(),
    };
    let task = tokio::spawn(server::serve(
        listener,
        bundles,
        tls,
        Limits::from_config(&config.http),
        metrics.clone(),
        stopped(),
    ));
    tracing::info!(
        "bundle server on https://{addr}/bundles/ ({})",
        config.update.bundle_dir.display()
    );
    Ok(Updates {
        fleet,
        sip,
        rollouts,
        server: Some((addr, task)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::{SqliteOptions, SqliteStore};

    #[tokio::test]
    async fn a_bundle_server_without_a_certificate_does_not_start() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "storage:\n  url: sqlite://{}/c.db\nupdate:\n  listen: 127.0.0.1:0\n",
            dir.path().display()
        );
        let config = Config::parse(&yaml, std::path::Path::new("c.yaml")).unwrap();
        let store = SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
            .await
            .unwrap();
        let storage: Arc<dyn Storage> = Arc::new(store);
        let metrics = Metrics::new(crate::stats::StreamsRegistry::new());
        let e = start(&config, &storage, &metrics, std::future::pending())
            .await
            .unwrap_err();
        assert!(matches!(e, StartError::NoCertificate), "{e}");
        // Without update.listen: the view, no server.
        let config = Config::parse(
            &yaml.replace("update:\n  listen: 127.0.0.1:0\n", ""),
            std::path::Path::new("c.yaml"),
        )
        .unwrap();
        let updates = start(&config, &storage, &metrics, std::future::pending())
            .await
            .unwrap();
        assert!(updates.server.is_none());
    }
}
