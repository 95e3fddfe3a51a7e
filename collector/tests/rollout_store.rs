//! Rollouts written to both backends and read back (docs/protocol.md
//! 12.7: a rollout survives a collector restart): the core's decisions as
//! they come, a halt's reason, a store reopened and the rollout resumed.
//! PostgreSQL is Debian's postgresql-15, started on a Unix socket.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pg::PgServer;
use sipsensor_collector::storage::{OpenOptions, Storage, StorageUrl, open};
use sipsensor_collector::update::rollout::{
    FleetState, FleetWant, Output, RebootPolicy, Rollout, RolloutEvent, RolloutPlan, RolloutStatus,
    SensorPhase, UpdateState,
};
use std::sync::Arc;
use std::time::Duration;

const SEC: i64 = 1_000_000_000;
const T0: i64 = common::T0;
const V: &str = "2026.12.2";

fn plan() -> RolloutPlan {
    RolloutPlan {
        want: FleetWant {
            version: V.into(),
            url: "https://collector.test:8443/bundles/x.raucb".into(),
            sha256: [0x5a; 32],
            size: 1 << 40,
            reboot: RebootPolicy::Window,
        },
        sensors: (0..7).map(|i| format!("sip:s{i}@example.net")).collect(),
        canary: 1,
        growth: 2,
        max_failures: 1,
        timeout: Duration::from_secs(900),
    }
}

fn report(version: &str, update: UpdateState, reason: Option<&str>) -> FleetState {
    FleetState {
        version: version.into(),
        agent: "0.1.0".into(),
        compatible: "sipsensor-beaglebone".into(),
        slot: "B".into(),
        update,
        target: Some(V.into()),
        progress: None,
        reason: reason.map(String::from),
    }
}

fn events(r: &mut Rollout) -> Vec<RolloutEvent> {
    std::iter::from_fn(|| r.poll_output())
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            Output::SetWant { .. } => None,
        })
        .collect()
}

async fn exercise(url: StorageUrl) {
    let store: Arc<dyn Storage> = open(&url, OpenOptions::default()).await.unwrap();
    let rollouts = store.rollouts().unwrap();
    let id = rollouts.create_rollout(&plan(), T0).await.unwrap();
    let mut r = Rollout::start(id, plan(), [], T0).unwrap();
    rollouts.record_rollout(id, &events(&mut r)).await.unwrap();
    let s0 = "sip:s0@example.net";
    r.report(
        s0,
        report("2026.12.1", UpdateState::Downloading, None),
        T0 + SEC,
    );
    r.report(s0, report(V, UpdateState::Good, None), T0 + 200 * SEC);
    rollouts.record_rollout(id, &events(&mut r)).await.unwrap();
    assert_eq!(rollouts.rollout(id).await.unwrap(), Some(r.snapshot()));
    store.close().await.unwrap();
    drop(store);

    // Restarted: the same rollout, the wave of two still running.
    let store = open(&url, OpenOptions::default()).await.unwrap();
    let rollouts = store.rollouts().unwrap();
    assert_eq!(rollouts.rollout_ids(true, 5).await.unwrap(), [id]);
    let mut r = Rollout::resume(rollouts.rollout(id).await.unwrap().unwrap());
    assert_eq!(r.wave(), (Some(1), 3));
    let s1 = "sip:s1@example.net";
    let s2 = "sip:s2@example.net";
    r.report(
        s1,
        report("2026.12.1", UpdateState::Failed, Some("download: 404")),
        T0 + 300 * SEC,
    );
    r.report(
        s2,
        report("2026.12.1", UpdateState::RolledBack, Some("health check")),
        T0 + 400 * SEC,
    );
    rollouts.record_rollout(id, &events(&mut r)).await.unwrap();
    let RolloutStatus::Halted { reason } = r.status().clone() else {
        panic!("{:?}", r.status());
    };
    assert_eq!(
        reason,
        "2 failures > --max-failures 1: sip:s1@example.net failed (download: 404), \
         sip:s2@example.net rolled back (health check)"
    );
    let stored = rollouts.rollout(id).await.unwrap().unwrap();
    assert_eq!(stored, r.snapshot());
    assert_eq!(stored.sensors[2].phase, SensorPhase::Failed);
    assert_eq!(stored.sensors[2].last_update, Some(UpdateState::RolledBack));
    assert_eq!(
        rollouts.rollout_ids(true, 5).await.unwrap(),
        Vec::<i64>::new()
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exercise(StorageUrl::Sqlite(dir.path().join("c.db"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(server) = PgServer::start() else {
        return;
    };
    exercise(server.create_db("rollouts").await.parse().unwrap()).await;
}
