//! Rollouts in the database (schema version 4, `rollouts` and
//! `rollout_sensors`): a rollout's plan when it is created, then each
//! decision of the core ([`RolloutEvent`]) as it is made, so that
//! [`Rollout::resume`](super::Rollout::resume) after a restart goes on
//! exactly where the stopped collector was.
//!
//! Both backends run the same statements ([`statements`]); only the
//! binding of values and the reading of rows is theirs.

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use super::{FleetWant, RebootPolicy, UpdateState};
use super::{RolloutEvent, RolloutId, RolloutPlan, RolloutSnapshot, RolloutStatus};
use super::{SensorPhase, SensorRecord};
use crate::storage::StorageError;
use async_trait::async_trait;
use sipsensor_protocol::fleet::{parse_sha256, sha256_hex};
use std::time::Duration;

/// What the rollouts need from a database; both backends implement it
/// (reach it through [`Storage::rollouts`](crate::storage::Storage::rollouts)).
#[async_trait]
pub trait RolloutStore: Send + Sync {
    /// Records a rollout about to start, its sensors pending; returns its id.
    async fn create_rollout(
        &self,
        plan: &RolloutPlan,
        created_ns: i64,
    ) -> Result<RolloutId, StorageError>;

    /// Writes a rollout's decisions, in their order, in one transaction.
    async fn record_rollout(
        &self,
        id: RolloutId,
        events: &[RolloutEvent],
    ) -> Result<(), StorageError>;

    /// A rollout as last written.
    async fn rollout(&self, id: RolloutId) -> Result<Option<RolloutSnapshot>, StorageError>;

    /// Rollout ids, newest first, at most `limit`; only the running ones
    /// with `running_only` (what a starting collector resumes).
    async fn rollout_ids(
        &self,
        running_only: bool,
        limit: u32,
    ) -> Result<Vec<RolloutId>, StorageError>;
}

/// A value bound to a statement, whichever the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

/// One statement in PostgreSQL's `$n` form (SQLite reads it as `?n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub sql: &'static str,
    pub args: Vec<Value>,
}

const INSERT_ROLLOUT: &str = "INSERT INTO rollouts (version, url, sha256, size, reboot, canary, \
     growth, max_failures, timeout_ms, created_ns) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";

const SELECT_ROLLOUT: &str = "SELECT id, version, url, sha256, size, reboot, canary, growth, \
     max_failures, timeout_ms, created_ns, status, reason, wave FROM rollouts WHERE id = $1";

const SELECT_SENSORS: &str = "SELECT sensor, phase, targeted_ns, finished_ns, last_update, \
     detail FROM rollout_sensors WHERE rollout_id = $1 ORDER BY position";

// The cast: PostgreSQL would take a bare `$1 = 0` for a 32-bit integer.
const SELECT_IDS: &str = "SELECT id FROM rollouts \
     WHERE (CAST($1 AS BIGINT) = 0 OR status = 'running') ORDER BY id DESC LIMIT $2";

/// The rows an event changes.
pub(crate) fn statements(id: RolloutId, event: &RolloutEvent) -> Vec<Statement> {
    let int = |v: i64| Value::Int(Some(v));
    let count = |v: usize| Value::Int(Some(i64::try_from(v).unwrap_or(i64::MAX)));
    let text = |v: &str| Value::Text(Some(v.to_string()));
    match event {
        RolloutEvent::WaveStarted {
            wave,
            at_ns,
            first,
            count: n,
        } => vec![
            Statement {
                sql: "UPDATE rollouts SET wave = $2 WHERE id = $1",
                args: vec![int(id), int(i64::from(*wave))],
            },
            Statement {
                sql: "UPDATE rollout_sensors SET phase = 'targeted', targeted_ns = $2 \
                      WHERE rollout_id = $1 AND position >= $3 AND position < $4",
                args: vec![
                    int(id),
                    int(*at_ns),
                    count(*first),
                    count(first.saturating_add(*n)),
                ],
            },
        ],
        RolloutEvent::SensorUpdate { sensor, update } => vec![Statement {
            sql: "UPDATE rollout_sensors SET last_update = $3 \
                  WHERE rollout_id = $1 AND sensor = $2",
            args: vec![int(id), text(sensor), text(update.as_str())],
        }],
        RolloutEvent::SensorDone { sensor, at_ns } => {
            finish(id, sensor, SensorPhase::Done, *at_ns, None)
        }
        RolloutEvent::SensorFailed { sensor, at_ns, why } => {
            finish(id, sensor, SensorPhase::Failed, *at_ns, Some(why))
        }
        RolloutEvent::SensorStopped { sensor, at_ns, why } => {
            finish(id, sensor, SensorPhase::Stopped, *at_ns, Some(why))
        }
        RolloutEvent::Halted { at_ns, reason } => end(id, "halted", Some(reason), *at_ns),
        RolloutEvent::Finished { at_ns } => end(id, "finished", None, *at_ns),
    }
}

fn finish(
    id: RolloutId,
    sensor: &str,
    phase: SensorPhase,
    at_ns: i64,
    why: Option<&String>,
) -> Vec<Statement> {
    vec![Statement {
        sql: "UPDATE rollout_sensors SET phase = $3, finished_ns = $4, detail = $5 \
              WHERE rollout_id = $1 AND sensor = $2",
        args: vec![
            Value::Int(Some(id)),
            Value::Text(Some(sensor.to_string())),
            Value::Text(Some(phase.as_str().to_string())),
            Value::Int(Some(at_ns)),
            Value::Text(why.cloned()),
        ],
    }]
}

fn end(id: RolloutId, status: &str, reason: Option<&String>, at_ns: i64) -> Vec<Statement> {
    vec![Statement {
        sql: "UPDATE rollouts SET status = $2, reason = $3, ended_ns = $4 WHERE id = $1",
        args: vec![
            Value::Int(Some(id)),
            Value::Text(Some(status.to_string())),
            Value::Text(reason.cloned()),
            Value::Int(Some(at_ns)),
        ],
    }]
}

/// The values of [`INSERT_ROLLOUT`].
pub(crate) fn insert_args(plan: &RolloutPlan, created_ns: i64) -> Vec<Value> {
    let int = |v: i64| Value::Int(Some(v));
    let text = |v: &str| Value::Text(Some(v.to_string()));
    let timeout_ms = i64::try_from(plan.timeout.as_millis()).unwrap_or(i64::MAX);
    vec![
        text(&plan.want.version),
        text(&plan.want.url),
        text(&sha256_hex(&plan.want.sha256)),
        int(i64::try_from(plan.want.size).unwrap_or(i64::MAX)),
        text(plan.want.reboot.as_str()),
        int(i64::from(plan.canary)),
        int(i64::from(plan.growth)),
        int(i64::from(plan.max_failures)),
        int(timeout_ms),
        int(created_ns),
    ]
}

/// A `rollouts` row as read, whichever the backend.
#[derive(Debug, Clone)]
pub(crate) struct RolloutRow {
    pub id: i64,
    pub version: String,
    pub url: String,
    pub sha256: String,
    pub size: i64,
    pub reboot: String,
    pub canary: i64,
    pub growth: i64,
    pub max_failures: i64,
    pub timeout_ms: i64,
    pub created_ns: i64,
    pub status: String,
    pub reason: Option<String>,
    pub wave: Option<i64>,
}

/// A `rollout_sensors` row as read.
#[derive(Debug, Clone)]
pub(crate) struct SensorRow {
    pub sensor: String,
    pub phase: String,
    pub targeted_ns: Option<i64>,
    pub finished_ns: Option<i64>,
    pub last_update: Option<String>,
    pub detail: Option<String>,
}

/// Builds the snapshot; a value the schema's checks should have kept out
/// is an [`StorageError::Invalid`] naming it.
pub(crate) fn snapshot(
    target: &str,
    row: RolloutRow,
    sensors: Vec<SensorRow>,
) -> Result<RolloutSnapshot, StorageError> {
    let bad = |what: &str, value: &dyn std::fmt::Debug| StorageError::Invalid {
        target: target.to_string(),
        detail: format!("rollout {}: {what} {value:?} in the database", row.id),
    };
    let small = |what: &str, v: i64| u32::try_from(v).map_err(|_| bad(what, &v));
    let sha256 = parse_sha256(&row.sha256).ok_or_else(|| bad("sha256", &row.sha256))?;
    let reboot = RebootPolicy::parse(&row.reboot).ok_or_else(|| bad("reboot", &row.reboot))?;
    let status = match (row.status.as_str(), &row.reason) {
        ("running", _) => RolloutStatus::Running,
        ("finished", _) => RolloutStatus::Finished,
        ("halted", reason) => RolloutStatus::Halted {
            reason: reason.clone().unwrap_or_default(),
        },
        (other, _) => return Err(bad("status", &other)),
    };
    let plan = RolloutPlan {
        want: FleetWant {
            version: row.version.clone(),
            url: row.url.clone(),
            sha256,
            size: u64::try_from(row.size).map_err(|_| bad("size", &row.size))?,
            reboot,
        },
        sensors: sensors.iter().map(|s| s.sensor.clone()).collect(),
        canary: small("canary", row.canary)?,
        growth: small("growth", row.growth)?,
        max_failures: small("max_failures", row.max_failures)?,
        timeout: Duration::from_millis(
            u64::try_from(row.timeout_ms).map_err(|_| bad("timeout_ms", &row.timeout_ms))?,
        ),
    };
    let wave = row.wave.map(|w| small("wave", w)).transpose()?;
    let records = sensors
        .into_iter()
        .map(|s| {
            let phase = SensorPhase::parse(&s.phase).ok_or_else(|| bad("phase", &s.phase))?;
            let last_update = s
                .last_update
                .as_deref()
                .map(|u| UpdateState::parse(u).ok_or_else(|| bad("last_update", &u)))
                .transpose()?;
            Ok(SensorRecord {
                sensor: s.sensor,
                phase,
                targeted_ns: s.targeted_ns,
                finished_ns: s.finished_ns,
                last_update,
                detail: s.detail,
            })
        })
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(RolloutSnapshot {
        id: row.id,
        plan,
        created_ns: row.created_ns,
        status,
        wave,
        sensors: records,
    })
}
