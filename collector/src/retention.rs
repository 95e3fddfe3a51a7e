//! Retention: periodically deletes samples, events and gaps older than the
//! configured number of days (and ended sessions left empty).

use crate::metrics::Metrics;
use crate::storage::{RetentionReport, Storage, StorageError};
use crate::timefmt::{format_rfc3339, now_ns};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Rows with a timestamp before this are deleted.
pub fn cutoff(now_ns: i64, days: NonZeroU32) -> i64 {
    now_ns.saturating_sub(i64::from(days.get()).saturating_mul(NS_PER_DAY))
}

/// One retention pass.
pub async fn run_once(
    storage: &dyn Storage,
    days: NonZeroU32,
    now_ns: i64,
    metrics: &Metrics,
) -> Result<RetentionReport, StorageError> {
    let cut = cutoff(now_ns, days);
    let r = storage.delete_before(cut).await?;
    for (table, n) in [
        ("samples", r.samples),
        ("events", r.events),
        ("gaps", r.gaps),
        ("sessions", r.sessions),
    ] {
        metrics
            .retention_deleted
            .get_or_create(&[("table", table)])
            .inc_by(n);
    }
    tracing::info!(
        cutoff = %format_rfc3339(cut),
        samples = r.samples,
        events = r.events,
        gaps = r.gaps,
        sessions = r.sessions,
        "retention: deleted rows older than {} days",
        days
    );
    Ok(r)
}

/// Runs retention now and then every `interval`, until the task is aborted.
pub fn spawn(
    storage: Arc<dyn Storage>,
    days: NonZeroU32,
    interval: Duration,
    metrics: Arc<Metrics>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_once(storage.as_ref(), days, now_ns(), &metrics).await {
                metrics
                    .storage_errors
                    .get_or_create(&[("kind", e.kind())])
                    .inc();
                tracing::error!("retention run failed (retrying in {interval:?}): {e}");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_days_before_now() {
        let d = NonZeroU32::new(2).unwrap();
        assert_eq!(cutoff(5 * NS_PER_DAY, d), 3 * NS_PER_DAY);
        // Saturates instead of overflowing.
        assert_eq!(cutoff(i64::MIN + 1, d), i64::MIN);
        let max = NonZeroU32::new(u32::MAX).unwrap();
        assert!(cutoff(0, max) < 0);
    }
}
