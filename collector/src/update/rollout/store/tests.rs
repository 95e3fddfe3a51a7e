//! The rollout tables on SQLite: what is read back is what the core holds,
//! and a collector restarted mid-rollout finishes it as if it had not
//! stopped. PostgreSQL runs the same statements
//! (collector/tests/storage_postgres.rs).

use super::super::tests::sim::Sim;
use super::super::tests::{plan, want};
use super::*;
use crate::storage::Storage;
use crate::storage::sqlite::{SqliteOptions, SqliteStore};
use crate::update::rollout::Rollout;

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
        .await
        .unwrap()
}

/// Runs `sim` against `r` until it halts or finishes, writing each
/// round's decisions; stops early after `rounds` rounds.
async fn run(store: &dyn RolloutStore, sim: &mut Sim, r: &mut Rollout, rounds: Option<usize>) {
    let mut n = 0;
    while r.status() == &RolloutStatus::Running && rounds.is_none_or(|max| n < max) {
        let Some(events) = sim.step(r) else { break };
        store.record_rollout(r.id(), &events).await.unwrap();
        n += 1;
    }
    let rest: Vec<_> = std::iter::from_fn(|| r.poll_output())
        .filter_map(|o| match o {
            crate::update::rollout::Output::Event(e) => Some(e),
            crate::update::rollout::Output::SetWant { .. } => None,
        })
        .collect();
    store.record_rollout(r.id(), &rest).await.unwrap();
}

#[tokio::test]
async fn what_is_read_back_is_what_the_core_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut sim = Sim::new(300, 0.05, 11);
    let p = plan(300, 5, 6);
    let id = store.create_rollout(&p, sim.now_ns()).await.unwrap();
    let mut r = Rollout::start(id, p, sim.known(), sim.now_ns()).unwrap();
    assert_eq!(store.rollout_ids(true, 10).await.unwrap(), [id]);
    run(&store, &mut sim, &mut r, None).await;
    assert!(matches!(r.status(), RolloutStatus::Halted { .. }));
    assert_eq!(store.rollout(id).await.unwrap(), Some(r.snapshot()));
    assert_eq!(
        store.rollout_ids(true, 10).await.unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(store.rollout_ids(false, 10).await.unwrap(), [id]);
    assert_eq!(store.rollout(id + 1).await.unwrap(), None);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_restart_mid_rollout_resumes_it_with_the_same_outcome() {
    const N: usize = 1000;
    // Without a restart.
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut sim = Sim::new(N, 0.02, 5);
    let p = plan(N, 10, 30);
    let id = store.create_rollout(&p, sim.now_ns()).await.unwrap();
    let mut r = Rollout::start(id, p.clone(), sim.known(), sim.now_ns()).unwrap();
    run(&store, &mut sim, &mut r, None).await;
    let straight = r.snapshot();
    store.close().await.unwrap();

    // The same fleet, the collector stopped halfway and started again.
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mut sim = Sim::new(N, 0.02, 5);
    let id = store.create_rollout(&p, sim.now_ns()).await.unwrap();
    let mut r = Rollout::start(id, p, sim.known(), sim.now_ns()).unwrap();
    run(&store, &mut sim, &mut r, Some(2500)).await;
    let (wave, _) = r.wave();
    assert!(
        r.status() == &RolloutStatus::Running && wave >= Some(2),
        "stopped too early or too late: wave {wave:?}, {:?}",
        r.status()
    );
    drop(r);
    store.close().await.unwrap();
    drop(store);
    let store = open(&dir).await;
    assert_eq!(store.rollout_ids(true, 10).await.unwrap(), [id]);
    let mut r = Rollout::resume(store.rollout(id).await.unwrap().unwrap());
    // The fleet view's states come back with the subscriptions.
    for (sensor, state) in sim.known() {
        r.report(&sensor, state, sim.now_ns());
    }
    r.handle_timeout(sim.now_ns());
    run(&store, &mut sim, &mut r, None).await;
    assert_eq!(r.snapshot(), straight);
    assert_eq!(store.rollout(id).await.unwrap(), Some(straight));
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_value_the_schema_should_have_kept_out_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id = store.create_rollout(&plan(3, 1, 0), 5).await.unwrap();
    let snapshot = store.rollout(id).await.unwrap().unwrap();
    assert_eq!(snapshot.plan.want, want());
    assert_eq!(snapshot.status, RolloutStatus::Running);
    assert_eq!(snapshot.wave, None);
    store
        .write(move |c, _| {
            c.execute("UPDATE rollouts SET sha256 = 'xyz' WHERE id = ?1", [id])
                .map(|_| ())
                .map_err(|e| StorageError::Database {
                    target: "test".into(),
                    detail: e.to_string(),
                })
        })
        .await
        .unwrap();
    let e = store.rollout(id).await.unwrap_err().to_string();
    assert!(e.contains("sha256 \"xyz\""), "{e}");
    store.close().await.unwrap();
}
