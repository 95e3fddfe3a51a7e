//! The acknowledger: the storage side of docs/protocol.md 11.4, a task
//! between the media thread and the store. After commits it asks the store
//! for the committed marks of the sensors they touched (those with an
//! acknowledged stream: [`CommitWatch`]) and hands them to the media
//! thread; it records the ranges agents declare expired or unsampled.
//!
//! A declared range is recorded only after every row the media thread
//! handed over before it is committed (`WriterHandle::flush`): the range
//! replaces the fillable gaps inside it, which must be stored by then (the
//! break gap of a new session is in the same flush as its first samples).

use super::{Declared, RangeKind};
use crate::media::MediaHandle;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimit;
use crate::storage::writer::{CommitWatch, WriterHandle};
use crate::storage::{Storage, StorageError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// Marks are looked up at most this often: they go out at most 4 times a
/// second (11.4), and each round costs a query per sensor committed.
const ROUND_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct Acknowledger {
    pub store: Arc<dyn Storage>,
    pub writer: WriterHandle,
    pub media: MediaHandle,
    pub metrics: Arc<Metrics>,
}

impl Acknowledger {
    /// Runs until the media engine stops or `declared` closes.
    pub async fn run(self, mut declared: UnboundedReceiver<Declared>) {
        let commits: CommitWatch = self.writer.commits().clone();
        let mut refused_log = RateLimit::new(Duration::from_secs(10));
        let mut error_log = RateLimit::new(Duration::from_secs(10));
        let mut last_round: Option<Instant> = None;
        loop {
            tokio::select! {
                d = declared.recv() => match d {
                    Some(d) => self.record(d, &commits, &mut refused_log, &mut error_log).await,
                    None => return,
                },
                () = commits.changed() => {
                    if let Some(t) = last_round {
                        tokio::time::sleep_until(t + ROUND_EVERY).await;
                    }
                    last_round = Some(Instant::now());
                    if !self.round(&commits, &mut error_log).await {
                        return;
                    }
                }
            }
        }
    }

    /// Looks up the marks of the sensors committed since the last round;
    /// false once the media engine is gone.
    async fn round(&self, commits: &CommitWatch, error_log: &mut RateLimit) -> bool {
        let sensors = commits.take_dirty();
        if sensors.is_empty() {
            return true;
        }
        // Before the query: a mark may count as seeing only what was
        // committed before this (acks/unconfirmed.rs).
        let asked = std::time::Instant::now();
        match self.store.committed_through_many(&sensors).await {
            Ok(marks) => {
                self.media
                    .marks(sensors.into_iter().zip(marks).collect(), asked)
                    .await
            }
            Err(e) => {
                // The next commit asks again.
                if let Some(held) = error_log.allow(Instant::now()) {
                    tracing::error!(
                        "cannot read the committed marks for acknowledgements: {e} \
                         ({held} similar messages suppressed)"
                    );
                }
                true
            }
        }
    }

    async fn record(
        &self,
        d: Declared,
        commits: &CommitWatch,
        refused_log: &mut RateLimit,
        error_log: &mut RateLimit,
    ) {
        let result = match self.writer.flush().await {
            Err(e) => Err(e),
            Ok(()) => match d.kind {
                RangeKind::Expired => {
                    self.store
                        .record_expired(d.sensor, d.after_ns, d.before_ns)
                        .await
                }
                RangeKind::Unsampled => {
                    self.store
                        .record_unsampled(d.sensor, d.after_ns, d.before_ns)
                        .await
                }
            },
        };
        match result {
            Ok(_) => {
                self.metrics
                    .backfill_marks
                    .get_or_create(&[("kind", d.kind.as_str())])
                    .inc();
                // The mark may pass the range now.
                commits.touch(d.sensor);
            }
            Err(StorageError::Invalid { detail, .. }) => {
                self.metrics
                    .packets_rejected
                    .get_or_create(&[("reason", "backfill_range")])
                    .inc();
                if let Some(held) = refused_log.allow(Instant::now()) {
                    tracing::warn!(
                        "refused an {} range from the agent of sensor {}: {detail} ({held} \
                         similar dropped since the last message; see \
                         sipsensor_collector_packets_rejected_total)",
                        d.kind.as_str(),
                        d.sensor.0
                    );
                }
            }
            // The agent repeats the range; it is handed on again later.
            Err(e) => {
                if let Some(held) = error_log.allow(Instant::now()) {
                    tracing::error!(
                        "cannot record an {} range of sensor {}: {e} ({held} similar messages \
                         suppressed)",
                        d.kind.as_str(),
                        d.sensor.0
                    );
                }
            }
        }
    }
}
