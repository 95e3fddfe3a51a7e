//! The rollouts' shell: one task that owns the running [`Rollout`]s, feeds
//! them the sensors' reports, the operator's requests and the wall clock,
//! writes their decisions to the store before carrying them out, and
//! resumes the running ones when the collector starts.
//!
//! Its two seams to the rest of fleet updates are traits: which versions
//! are published ([`BundleCatalog`], the bundle table) and the sensors'
//! subscriptions ([`FleetWants::set_want`], [`FleetStates::states`]).

use super::control::{RolloutRequest, UpdateRequest, details, summary_line};
use super::{FleetState, FleetWant, Output, Rollout, RolloutEvent, RolloutId, RolloutPlan};
use super::{RolloutStatus, store::RolloutStore};
use crate::sip::control::Reply;
use crate::storage::{Storage, StorageError};
pub use crate::update::subscriptions::run::FleetWants;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// A published bundle, as a rollout tells it to the sensors (12.4, 12.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedBundle {
    pub version: String,
    /// `https://` URL the collector serves it at.
    pub url: String,
    pub sha256: [u8; 32],
    pub size: u64,
}

/// Which versions are published (`update publish`).
#[async_trait]
pub trait BundleCatalog: Send + Sync {
    async fn published(&self, version: &str) -> Result<Option<PublishedBundle>, StorageError>;
}

/// The fleet view: what each sensor last reported.
#[async_trait]
pub trait FleetStates: Send + Sync {
    /// The latest state every sensor reported, by address of record.
    async fn states(&self) -> Vec<(String, FleetState)>;
}

/// Both seams to the sensors' subscriptions.
pub trait FleetLink: FleetWants + FleetStates {}

impl<T: FleetWants + FleetStates> FleetLink for T {}

/// How many finished and halted rollouts `update status` lists.
const RECENT: u32 = 20;

enum Input {
    Control(UpdateRequest, oneshot::Sender<Reply>),
    Report(String, FleetState),
}

/// What the rest of the collector holds to reach the rollouts.
#[derive(Debug, Clone)]
pub struct RolloutHandle {
    inputs: mpsc::Sender<Input>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Control(r, _) => f.debug_tuple("Control").field(r).finish(),
            Input::Report(s, _) => f.debug_tuple("Report").field(s).finish(),
        }
    }
}

impl RolloutHandle {
    /// An `update rollout/status/halt` request; the reply for the client.
    pub async fn control(&self, request: UpdateRequest) -> Reply {
        let (tx, rx) = oneshot::channel();
        if self.inputs.send(Input::Control(request, tx)).await.is_err() {
            return Reply::error("the collector is shutting down");
        }
        rx.await
            .unwrap_or_else(|_| Reply::error("the collector is shutting down"))
    }

    /// A sensor's NOTIFY body (12.3), by its address of record.
    pub async fn report(&self, sensor: &str, state: FleetState) {
        let _ = self
            .inputs
            .send(Input::Report(sensor.to_string(), state))
            .await;
    }
}

/// The rollouts' task.
pub struct RolloutService {
    storage: Arc<dyn Storage>,
    catalog: Arc<dyn BundleCatalog>,
    fleet: Arc<dyn FleetLink>,
    running: HashMap<RolloutId, Rollout>,
    inputs: mpsc::Receiver<Input>,
}

impl std::fmt::Debug for RolloutService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutService")
            .field("running", &self.running.len())
            .finish()
    }
}

/// Why the rollouts cannot run at all.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("the store {0} keeps no rollouts")]
    NoRolloutTables(String),
    #[error("cannot resume the running rollouts: {0}")]
    Resume(#[from] StorageError),
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

impl RolloutService {
    /// Resumes the rollouts the store has running and returns the task's
    /// handle and the task (spawn it).
    pub async fn start(
        storage: Arc<dyn Storage>,
        catalog: Arc<dyn BundleCatalog>,
        fleet: Arc<dyn FleetLink>,
    ) -> Result<(RolloutHandle, RolloutService), ServiceError> {
        let (tx, rx) = mpsc::channel(1024);
        let mut service = RolloutService {
            storage,
            catalog,
            fleet,
            running: HashMap::new(),
            inputs: rx,
        };
        let store = service.store()?;
        let mut resumed = Vec::new();
        for id in store.rollout_ids(true, u32::MAX).await? {
            if let Some(snapshot) = store.rollout(id).await? {
                resumed.push(Rollout::resume(snapshot));
            }
        }
        let states = service.fleet.states().await;
        let now = now_ns();
        for mut rollout in resumed {
            for (sensor, state) in &states {
                rollout.report(sensor, state.clone(), now);
            }
            rollout.handle_timeout(now);
            tracing::info!(
                rollout = rollout.id(),
                "{}",
                summary_line(&rollout.snapshot())
            );
            service.running.insert(rollout.id(), rollout);
        }
        service.flush_all().await;
        Ok((RolloutHandle { inputs: tx }, service))
    }

    fn store(&self) -> Result<&dyn RolloutStore, ServiceError> {
        self.storage
            .rollouts()
            .ok_or_else(|| ServiceError::NoRolloutTables(self.storage.describe()))
    }

    /// Runs until every handle is dropped.
    pub async fn run(mut self) {
        loop {
            let wake = self
                .running
                .values()
                .filter_map(Rollout::poll_timeout)
                .min()
                .map(|at| Duration::from_nanos(u64::try_from(at - now_ns()).unwrap_or(0)));
            let sleep = tokio::time::sleep(wake.unwrap_or(Duration::from_secs(3600)));
            tokio::select! {
                input = self.inputs.recv() => match input {
                    Some(Input::Control(request, reply)) => {
                        let answer = self.control(request).await;
                        let _ = reply.send(answer);
                    }
                    Some(Input::Report(sensor, state)) => {
                        let now = now_ns();
                        for r in self.running.values_mut() {
                            r.report(&sensor, state.clone(), now);
                        }
                    }
                    None => return,
                },
                () = sleep => {
                    let now = now_ns();
                    for r in self.running.values_mut() {
                        r.handle_timeout(now);
                    }
                }
            }
            self.flush_all().await;
        }
    }

    /// Writes every rollout's decisions, then tells the sensors; drops the
    /// ones that ended.
    async fn flush_all(&mut self) {
        let ids: Vec<RolloutId> = self.running.keys().copied().collect();
        for id in ids {
            let Some(rollout) = self.running.get_mut(&id) else {
                continue;
            };
            let mut events = Vec::new();
            let mut wants = Vec::new();
            while let Some(out) = rollout.poll_output() {
                match out {
                    Output::Event(e) => events.push(e),
                    Output::SetWant { sensor, want } => wants.push((sensor, want)),
                }
            }
            // A halted rollout stays until its sensors already installing
            // have a result (or time out): those are still recorded.
            let ended =
                rollout.status() != &RolloutStatus::Running && rollout.tally().targeted == 0;
            if events.is_empty() && wants.is_empty() && !ended {
                continue;
            }
            for e in &events {
                log_event(id, e);
            }
            // Written before it is carried out: a crash in between resumes
            // with the decision made and tells the sensors again.
            if let Some(store) = self.storage.rollouts()
                && let Err(e) = store.record_rollout(id, &events).await
            {
                tracing::error!(rollout = id, "cannot record the rollout's progress: {e}");
            }
            for (sensor, want) in wants {
                self.fleet.set_want(&sensor, want);
            }
            if ended {
                self.running.remove(&id);
            }
        }
    }

    async fn control(&mut self, request: UpdateRequest) -> Reply {
        let result = match request {
            UpdateRequest::Rollout(r) => self.start_rollout(r).await,
            UpdateRequest::Status { rollout } => self.status(rollout).await,
            UpdateRequest::Halt { rollout } => self.halt(rollout).await,
        };
        result.unwrap_or_else(Reply::error)
    }

    async fn start_rollout(&mut self, request: RolloutRequest) -> Result<Reply, String> {
        let reboot = request.reboot_policy()?;
        let bundle = self
            .catalog
            .published(&request.version)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "version {} is not published (sipsensor-collector update publish BUNDLE)",
                    request.version
                )
            })?;
        let known = self.storage.sensors().await.map_err(|e| e.to_string())?;
        let sensors = match &request.sensors {
            None => known.iter().map(|s| s.aor.clone()).collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    known
                        .iter()
                        .find(|s| s.aor == *name || user_of(&s.aor) == Some(name.as_str()))
                        .map(|s| s.aor.clone())
                        .ok_or_else(|| format!("unknown sensor {name}"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        for r in self
            .running
            .values()
            .filter(|r| r.status() == &RolloutStatus::Running)
        {
            if let Some(busy) = sensors.iter().find(|s| r.plan().sensors.contains(s)) {
                return Err(format!(
                    "{busy} is in rollout {}, still running (update halt {} first)",
                    r.id(),
                    r.id()
                ));
            }
        }
        let plan = RolloutPlan {
            want: FleetWant {
                version: bundle.version,
                url: bundle.url,
                sha256: bundle.sha256,
                size: bundle.size,
                reboot,
            },
            sensors,
            canary: request.canary,
            growth: request.growth,
            max_failures: request.max_failures,
            timeout: request.timeout(),
        };
        plan.validate().map_err(|e| e.to_string())?;
        let store = self.store().map_err(|e| e.to_string())?;
        let now = now_ns();
        let id = store
            .create_rollout(&plan, now)
            .await
            .map_err(|e| e.to_string())?;
        let states = self.fleet.states().await;
        let rollout = Rollout::start(id, plan, states, now).map_err(|e| e.to_string())?;
        let line = summary_line(&rollout.snapshot());
        self.running.insert(id, rollout);
        self.flush_all().await;
        Ok(Reply::ok(line))
    }

    async fn status(&self, rollout: Option<RolloutId>) -> Result<Reply, String> {
        let store = self.store().map_err(|e| e.to_string())?;
        let snapshot = |id| async move { store.rollout(id).await.map_err(|e| e.to_string()) };
        match rollout {
            Some(id) => {
                let s = snapshot(id)
                    .await?
                    .ok_or_else(|| format!("no rollout {id}"))?;
                Ok(Reply::ok(details(&s)))
            }
            None => {
                let ids = store
                    .rollout_ids(false, RECENT)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut lines = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(s) = snapshot(id).await? {
                        lines.push(summary_line(&s));
                    }
                }
                if lines.is_empty() {
                    lines.push("no rollouts".into());
                }
                Ok(Reply::ok(lines.join("\n")))
            }
        }
    }

    async fn halt(&mut self, id: RolloutId) -> Result<Reply, String> {
        let running = self
            .running
            .get_mut(&id)
            .filter(|r| r.status() == &RolloutStatus::Running);
        let Some(rollout) = running else {
            let store = self.store().map_err(|e| e.to_string())?;
            return Err(match store.rollout(id).await.map_err(|e| e.to_string())? {
                Some(s) => format!("rollout {id} is not running: {}", summary_line(&s)),
                None => format!("no rollout {id}"),
            });
        };
        rollout.halt("halted by the operator", now_ns());
        let line = summary_line(&rollout.snapshot());
        self.flush_all().await;
        Ok(Reply::ok(line))
    }
}

/// `sensor-0001` of `sip:sensor-0001@example.net`.
fn user_of(aor: &str) -> Option<&str> {
    aor.strip_prefix("sip:")
        .or_else(|| aor.strip_prefix("sips:"))
        .and_then(|rest| rest.split('@').next())
}

fn log_event(id: RolloutId, event: &RolloutEvent) {
    match event {
        RolloutEvent::WaveStarted { wave, count, .. } => {
            tracing::info!(rollout = id, wave, sensors = count, "rollout wave started");
        }
        RolloutEvent::SensorUpdate { .. } => {}
        RolloutEvent::SensorDone { sensor, .. } => {
            tracing::debug!(rollout = id, sensor, "rollout: sensor done");
        }
        RolloutEvent::SensorFailed { sensor, why, .. } => {
            tracing::warn!(rollout = id, sensor, "rollout: sensor failed: {why}");
        }
        RolloutEvent::SensorStopped { sensor, .. } => {
            tracing::info!(rollout = id, sensor, "rollout: sensor told to stop");
        }
        RolloutEvent::Halted { reason, .. } => {
            tracing::warn!(rollout = id, "rollout halted: {reason}");
        }
        RolloutEvent::Finished { .. } => tracing::info!(rollout = id, "rollout finished"),
    }
}

#[cfg(test)]
mod tests;
