//! How the fleet-update parts meet (docs/protocol.md 12.8): the rollouts'
//! seams ([`BundleCatalog`], [`FleetWants`], [`FleetStates`]) over the
//! bundle table, the subscription manager and the fleet view, and the
//! manager's reports to the rollouts.

use super::fleet::{FleetState, FleetView, FleetWant};
use super::rollout::service::{BundleCatalog, FleetStates, PublishedBundle, RolloutHandle};
use super::store::UpdateStore;
use super::subscriptions::run::{FleetHandle, FleetReports, FleetWants};
use crate::storage::StorageError;
use async_trait::async_trait;
use sipsensor_protocol::fleet::parse_sha256;
use std::sync::Arc;

/// The published bundles as a rollout names them: the newest bundle of a
/// version, at `update.url` (12.4, 12.5).
#[derive(Debug)]
pub struct StoreCatalog {
    pub store: Arc<dyn UpdateStore>,
    pub config: super::config::UpdateConfig,
}

#[async_trait]
impl BundleCatalog for StoreCatalog {
    async fn published(&self, version: &str) -> Result<Option<PublishedBundle>, StorageError> {
        let bundles = self.store.bundles().await?;
        let Some(bundle) = bundles.into_iter().find(|b| b.version == version) else {
            return Ok(None);
        };
        let invalid = |detail: String| StorageError::Invalid {
            target: "update".into(),
            detail,
        };
        let url = self.config.bundle_url(&bundle.sha256).ok_or_else(|| {
            invalid(
                "update.url is not set: sensors could not be told where to download the bundle"
                    .into(),
            )
        })?;
        let sha256 = parse_sha256(&bundle.sha256)
            .ok_or_else(|| invalid(format!("bundle {:?}: not a SHA-256", bundle.sha256)))?;
        Ok(Some(PublishedBundle {
            version: bundle.version,
            url,
            sha256,
            size: bundle.size,
        }))
    }
}

/// The sensors as the rollouts see them: their wants go to the
/// subscription manager, their states come from the fleet view.
#[derive(Debug, Clone)]
pub struct Sensors {
    pub wants: FleetHandle,
    pub view: Arc<FleetView>,
}

impl FleetWants for Sensors {
    fn set_want(&self, sensor: &str, want: Option<FleetWant>) {
        self.wants.set_want(sensor, want);
    }
}

#[async_trait]
impl FleetStates for Sensors {
    async fn states(&self) -> Vec<(String, FleetState)> {
        self.view
            .snapshot()
            .into_iter()
            .map(|s| (s.sensor, s.state))
            .collect()
    }
}

#[async_trait]
impl FleetReports for RolloutHandle {
    async fn report(&self, sensor: &str, state: FleetState) {
        RolloutHandle::report(self, sensor, state).await;
    }
}
