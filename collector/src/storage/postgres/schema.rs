//! Versioned schema migrations for PostgreSQL. Applied versions are rows of
//! `sipsensor_schema`; an advisory lock serialises collectors that start at
//! the same time against one database.

use super::map_pg;
use crate::storage::StorageError;
use tokio_postgres::Client;

/// (version, SQL). Append only: a released migration is never edited.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_readings.sql")),
    (3, include_str!("migrations/0003_sample_instants.sql")),
    (4, include_str!("migrations/0004_fleet_updates.sql")),
    (5, include_str!("migrations/0005_rollouts.sql")),
];

/// Key of the advisory lock held while migrating ("sipsens" in ASCII).
const LOCK_KEY: i64 = 0x0073_6970_7365_6e73;

pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

pub(super) async fn current_version(client: &Client, target: &str) -> Result<i64, StorageError> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM sipsensor_schema",
            &[],
        )
        .await
        .map_err(|e| map_pg(target, e))?;
    Ok(row.get(0))
}

/// Brings the database to [`latest_version`]; refuses a newer one.
/// Returns the version found before migrating.
pub(super) async fn migrate(client: &mut Client, target: &str) -> Result<i64, StorageError> {
    let tx = client.transaction().await.map_err(|e| map_pg(target, e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| map_pg(target, e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sipsensor_schema (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(|e| map_pg(target, e))?;
    let found: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM sipsensor_schema",
            &[],
        )
        .await
        .map_err(|e| map_pg(target, e))?
        .get(0);
    let known = latest_version();
    if found > known {
        return Err(StorageError::SchemaTooNew {
            target: target.to_string(),
            found,
            known,
        });
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        tx.batch_execute(sql).await.map_err(|e| map_pg(target, e))?;
        tx.execute(
            "INSERT INTO sipsensor_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(|e| map_pg(target, e))?;
        tracing::info!(db = target, version, "applied schema migration");
    }
    tx.commit().await.map_err(|e| map_pg(target, e))?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_from_one() {
        for (i, &(v, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(v, i as i64 + 1);
            assert!(!sql.trim().is_empty());
        }
        // Both backends are at the same version: one data model.
        assert_eq!(
            latest_version(),
            crate::storage::sqlite::schema::latest_version()
        );
    }
}
