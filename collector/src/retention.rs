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
    use crate::stats::StreamsRegistry;
    use crate::storage::sqlite::{SqliteOptions, SqliteStore};
    use crate::storage::{Batch, ChannelSpec, NewSession, Reading, StreamSpec};

    /// A store with one sample per day for the last ten days.
    async fn store_with_ten_days(now: i64) -> (tempfile::TempDir, Arc<dyn Storage>) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path().join("r.db"), SqliteOptions::default())
            .await
            .unwrap();
        let sensor = s.upsert_sensor("sip:s@example.net", None).await.unwrap();
        let session = s
            .open_session(&NewSession {
                sensor: sensor.id,
                call_id: "c".into(),
                ssrc: 1,
                stream: StreamSpec {
                    rate_hz: 1.0,
                    samples_per_packet: 1,
                    channels: vec![ChannelSpec {
                        name: "t".into(),
                        unit: "Cel".into(),
                        scale: 1.0,
                    }],
                },
                started_ns: now - 10 * NS_PER_DAY,
            })
            .await
            .unwrap();
        let readings = (0..10)
            .map(|d| Reading {
                session: session.id,
                sensor: sensor.id,
                seq: d,
                index: 0,
                ts_ns: now - (10 - d) * NS_PER_DAY + 3_600_000_000_000,
                raws: vec![Some(d)],
                source: crate::storage::ReadingSource::Live,
            })
            .collect();
        s.write_batch(&Batch {
            readings,
            ..Batch::default()
        })
        .await
        .unwrap();
        (dir, Arc::new(s))
    }

    #[tokio::test]
    async fn a_run_deletes_what_is_older_and_counts_it() {
        let now = 100 * NS_PER_DAY;
        let (_dir, s) = store_with_ten_days(now).await;
        let m = Metrics::new(StreamsRegistry::new());
        let r = run_once(s.as_ref(), NonZeroU32::new(3).unwrap(), now, &m)
            .await
            .unwrap();
        // Days -10 .. -4 are older than three days; -3, -2, -1 stay.
        assert_eq!(r.samples, 7);
        assert_eq!(
            m.retention_deleted
                .get_or_create(&[("table", "samples")])
                .get(),
            7
        );
    }

    #[tokio::test]
    async fn the_task_runs_at_start_and_then_periodically() {
        let now = now_ns();
        let (_dir, s) = store_with_ten_days(now).await;
        let m = Metrics::new(StreamsRegistry::new());
        let task = spawn(
            s.clone(),
            NonZeroU32::new(5).unwrap(),
            Duration::from_millis(50),
            m.clone(),
        );
        // Not holding the family's guard: the task needs it to count.
        let samples = || {
            m.retention_deleted
                .get_or_create(&[("table", "samples")])
                .get()
        };
        for _ in 0..100 {
            if samples() == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(samples(), 5);
        // An old row written later goes at one of the next runs.
        let sensor = s.sensors().await.unwrap()[0].id;
        let session = s.sessions(sensor, i64::MIN, i64::MAX).await.unwrap()[0].id;
        s.write_batch(&Batch {
            readings: vec![Reading {
                session,
                sensor,
                seq: 99,
                index: 0,
                ts_ns: now - 9 * NS_PER_DAY,
                raws: vec![Some(0)],
                source: crate::storage::ReadingSource::Live,
            }],
            ..Batch::default()
        })
        .await
        .unwrap();
        for _ in 0..100 {
            if samples() == 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(samples(), 6);
        task.abort();
    }

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
