//! The rollouts' task against a SQLite store and fake seams: the operator's
//! requests and their errors, wants carried to the subscriptions, a
//! collector restart.

use super::*;
use crate::storage::sqlite::{SqliteOptions, SqliteStore};
use crate::update::rollout::UpdateState;
use crate::update::rollout::control::RolloutRequest;
use crate::update::rollout::tests::state;
use std::sync::Mutex;

const V: &str = "2026.12.2";

#[derive(Debug, Default)]
struct Catalog;

#[async_trait]
impl BundleCatalog for Catalog {
    async fn published(&self, version: &str) -> Result<Option<PublishedBundle>, StorageError> {
        Ok((version == V).then(|| PublishedBundle {
            version: V.into(),
            url: "https://collector.test:8443/bundles/ab.raucb".into(),
            sha256: [0xab; 32],
            size: 1234,
        }))
    }
}

#[derive(Debug, Default)]
struct Fleet {
    told: Mutex<Vec<(String, Option<String>)>>,
}

impl Fleet {
    fn take(&self) -> Vec<(String, Option<String>)> {
        std::mem::take(&mut *self.told.lock().unwrap())
    }
}

impl FleetWants for Fleet {
    fn set_want(&self, sensor: &str, want: Option<FleetWant>) {
        self.told
            .lock()
            .unwrap()
            .push((sensor.to_string(), want.map(|w| w.version)));
    }
}

#[async_trait]
impl FleetStates for Fleet {
    async fn states(&self) -> Vec<(String, FleetState)> {
        vec![(
            "sip:s3@example.net".into(),
            state(V, UpdateState::Idle, None),
        )]
    }
}

async fn store(dir: &tempfile::TempDir, sensors: usize) -> Arc<dyn Storage> {
    let s = SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
        .await
        .unwrap();
    for i in 0..sensors {
        s.upsert_sensor(&format!("sip:s{i}@example.net"), None)
            .await
            .unwrap();
    }
    Arc::new(s)
}

fn request(sensors: Option<&[&str]>, canary: u32) -> UpdateRequest {
    UpdateRequest::Rollout(RolloutRequest {
        version: V.into(),
        sensors: sensors.map(|s| s.iter().map(|n| n.to_string()).collect()),
        canary,
        max_failures: 0,
        growth: 2,
        timeout_s: 1800,
        reboot: "now".into(),
    })
}

async fn start(storage: Arc<dyn Storage>, fleet: Arc<Fleet>) -> RolloutHandle {
    let (handle, service) = RolloutService::start(storage, Arc::new(Catalog), fleet)
        .await
        .unwrap();
    tokio::spawn(service.run());
    handle
}

#[tokio::test]
async fn requests_that_cannot_run_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Arc::new(Fleet::default());
    let empty = start(store(&dir, 0).await, fleet.clone()).await;
    let r = empty.control(request(None, 1)).await;
    assert_eq!(
        (r.ok, r.message.as_str()),
        (false, "no sensors to roll out to")
    );

    let dir = tempfile::tempdir().unwrap();
    let h = start(store(&dir, 3).await, fleet.clone()).await;
    let mut unpublished = request(None, 1);
    if let UpdateRequest::Rollout(r) = &mut unpublished {
        r.version = "2099.1".into();
    }
    let r = h.control(unpublished).await;
    assert!(
        !r.ok && r.message.contains("version 2099.1 is not published"),
        "{r:?}"
    );
    let r = h.control(request(None, 4)).await;
    assert_eq!(r.message, "--canary 4 is more than the 3 sensors");
    let r = h.control(request(Some(&["s0", "s9"]), 1)).await;
    assert_eq!(r.message, "unknown sensor s9");
    let r = h.control(UpdateRequest::Halt { rollout: 7 }).await;
    assert_eq!((r.ok, r.message.as_str()), (false, "no rollout 7"));
    let r = h.control(UpdateRequest::Status { rollout: None }).await;
    assert_eq!((r.ok, r.message.as_str()), (true, "no rollouts"));
    assert!(fleet.take().is_empty());
}

#[tokio::test]
async fn a_rollout_tells_the_canaries_goes_on_with_reports_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = store(&dir, 7).await;
    let fleet = Arc::new(Fleet::default());
    let h = start(storage.clone(), fleet.clone()).await;
    // User names or addresses of record; s3 runs the version already.
    let r = h
        .control(request(Some(&["s0", "sip:s1@example.net", "s2", "s3"]), 1))
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(
        r.message,
        "rollout 1 of 2026.12.2: running, wave 1 of 3; 0 done, 0 failed, 1 targeted, 3 pending"
    );
    assert_eq!(
        fleet.take(),
        [("sip:s0@example.net".into(), Some(V.into()))]
    );
    let again = h.control(request(Some(&["s6", "s2"]), 1)).await;
    assert!(
        again.message.contains("sip:s2@example.net is in rollout 1"),
        "{again:?}"
    );

    h.report("sip:s0@example.net", state(V, UpdateState::Good, Some(V)))
        .await;
    let status = h.control(UpdateRequest::Status { rollout: Some(1) }).await;
    assert!(
        status
            .message
            .starts_with("rollout 1 of 2026.12.2: running, wave 2 of 3; 1 done")
    );
    assert_eq!(
        fleet.take(),
        [
            ("sip:s1@example.net".into(), Some(V.into())),
            ("sip:s2@example.net".into(), Some(V.into()))
        ]
    );

    // The collector stops and starts: the wave's sensors are told again.
    drop(h);
    tokio::task::yield_now().await;
    let h = start(storage.clone(), fleet.clone()).await;
    let mut told = fleet.take();
    told.sort();
    assert_eq!(
        told,
        [
            ("sip:s1@example.net".into(), Some(V.into())),
            ("sip:s2@example.net".into(), Some(V.into()))
        ]
    );
    h.report(
        "sip:s1@example.net",
        state("2026.12.1", UpdateState::Downloading, Some(V)),
    )
    .await;
    h.report(
        "sip:s2@example.net",
        state("2026.12.1", UpdateState::Installing, Some(V)),
    )
    .await;
    let r = h.control(UpdateRequest::Halt { rollout: 1 }).await;
    assert!(r.ok && r.message.contains("halted"), "{r:?}");
    // s2 is installing: it goes on (12.4), and its result still counts.
    assert_eq!(fleet.take(), [("sip:s1@example.net".into(), None)]);
    let status = h.control(UpdateRequest::Status { rollout: Some(1) }).await;
    assert!(
        status.message.contains("halted: halted by the operator"),
        "{status:?}"
    );
    assert!(
        status
            .message
            .contains("sip:s1@example.net stopped (last reported downloading)")
    );
    // A halted rollout frees its sensors for the next one.
    let next = h.control(request(Some(&["s1"]), 1)).await;
    assert!(next.ok, "{next:?}");
    h.report("sip:s2@example.net", state(V, UpdateState::Good, Some(V)))
        .await;
    let status = h.control(UpdateRequest::Status { rollout: Some(1) }).await;
    assert!(
        status
            .message
            .contains("; 2 done, 0 failed, 1 stopped, 1 pending"),
        "{status:?}"
    );
    let r = h.control(UpdateRequest::Halt { rollout: 1 }).await;
    assert!(
        !r.ok && r.message.starts_with("rollout 1 is not running"),
        "{r:?}"
    );
    let list = h.control(UpdateRequest::Status { rollout: None }).await;
    assert_eq!(list.message.lines().count(), 2, "{list:?}");
}
