//! Real bundles made with `rauc bundle` and throw-away keys from
//! images/scripts/mk-dev-keys; skipped where RAUC or its tools are missing.

use super::*;
use crate::storage::Storage;
use crate::storage::sqlite::{SqliteOptions, SqliteStore};
use std::sync::Arc;

use sipsensor_testkit::rauc::{bundle, keys};

struct Setup {
    dir: tempfile::TempDir,
    keys: PathBuf,
    bundles: PathBuf,
    store: Arc<dyn UpdateStore>,
}

async fn setup() -> Option<Setup> {
    if !sipsensor_testkit::rauc::available() {
        // CI installs them (.ci/apt/collector.txt): a skip there is a failure.
        assert!(
            std::env::var("SIPSENSOR_CI").map_or(true, |v| v != "1"),
            "SIPSENSOR_CI=1 but rauc, mksquashfs or openssl is missing"
        );
        eprintln!("skipped: needs rauc, mksquashfs and openssl");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path(), "fleet");
    let store = SqliteStore::open(dir.path().join("c.db"), SqliteOptions::default())
        .await
        .unwrap();
    let store = Arc::new(store).updates().unwrap();
    let bundles = dir.path().join("bundles");
    Some(Setup {
        dir,
        keys,
        bundles,
        store,
    })
}

impl Setup {
    async fn publish(&self, bundle: &Path) -> Result<BundleRecord, PublishError> {
        let keyring = self.keys.join("ca.cert.pem");
        publish(
            bundle,
            &self.bundles,
            Some(&keyring),
            self.store.as_ref(),
            7,
        )
        .await
    }

    /// Nothing recorded and nothing left in the bundle directory.
    async fn assert_nothing_published(&self) {
        assert_eq!(self.store.bundles().await.unwrap(), vec![]);
        let left: Vec<_> = std::fs::read_dir(&self.bundles)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert_eq!(left, Vec::<std::ffi::OsString>::new());
    }
}

#[tokio::test]
async fn a_signed_verity_bundle_is_copied_under_its_hash_and_recorded() {
    let Some(s) = setup().await else { return };
    let source = bundle(s.dir.path(), &s.keys, "2026.12.2", "verity");
    let record = s.publish(&source).await.unwrap();
    let bytes = std::fs::read(&source).unwrap();
    let expected: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(record.sha256, expected);
    assert!(is_sha256(&record.sha256));
    assert_eq!(
        (record.version.as_str(), record.compatible.as_str()),
        ("2026.12.2", "sipsensor-test")
    );
    assert_eq!(record.size, bytes.len() as u64);
    let published = s.bundles.join(file_name(&expected));
    assert_eq!(std::fs::read(&published).unwrap(), bytes);
    assert_eq!(s.store.bundles().await.unwrap(), vec![record.clone()]);
    // Again: the same record, no second file.
    assert_eq!(s.publish(&source).await.unwrap(), record);
    assert_eq!(std::fs::read_dir(&s.bundles).unwrap().count(), 1);
}

#[tokio::test]
async fn a_bundle_signed_by_another_ca_is_refused_and_nothing_kept() {
    let Some(s) = setup().await else { return };
    let other = keys(s.dir.path(), "other");
    let source = bundle(s.dir.path(), &other, "2026.12.2", "verity");
    let e = s.publish(&source).await.unwrap_err();
    assert!(
        matches!(&e, PublishError::Rauc { source: RaucError::Refused(m), .. } if m.contains("signature")),
        "{e}"
    );
    s.assert_nothing_published().await;
}

#[tokio::test]
async fn a_plain_bundle_is_refused() {
    let Some(s) = setup().await else { return };
    let source = bundle(s.dir.path(), &s.keys, "2026.12.2", "plain");
    let e = s.publish(&source).await.unwrap_err();
    assert!(
        matches!(&e, PublishError::Rauc { source: RaucError::NotVerity(f), .. } if f == "plain"),
        "{e}"
    );
    s.assert_nothing_published().await;
}

#[tokio::test]
async fn an_unreadable_file_or_no_bundle_at_all_is_refused() {
    let Some(s) = setup().await else { return };
    let e = s
        .publish(&s.dir.path().join("missing.raucb"))
        .await
        .unwrap_err();
    assert!(matches!(e, PublishError::Read { .. }), "{e}");
    let junk = s.dir.path().join("junk.raucb");
    std::fs::write(&junk, vec![0x5a; 100_000]).unwrap();
    let e = s.publish(&junk).await.unwrap_err();
    assert!(
        matches!(
            e,
            PublishError::Rauc {
                source: RaucError::Refused(_),
                ..
            }
        ),
        "{e}"
    );
    let source = bundle(s.dir.path(), &s.keys, "1", "verity");
    let e = publish(&source, &s.bundles, None, s.store.as_ref(), 7)
        .await
        .unwrap_err();
    assert!(matches!(e, PublishError::NoKeyring), "{e}");
    s.assert_nothing_published().await;
}

#[test]
fn only_lower_case_hex_of_64_digits_names_a_bundle() {
    assert!(is_sha256(&"0a".repeat(32)));
    assert!(!is_sha256(&"0A".repeat(32)));
    assert!(!is_sha256(&"0a".repeat(31)));
    assert!(!is_sha256("../../etc/passwd"));
    assert_eq!(
        rauc::bundle_format("Bundle Format: \tverity\n"),
        Some("verity")
    );
}
