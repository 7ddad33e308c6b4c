//! `check` phase by phase, on a real repository in memory: each kind of
//! damage is found by the phase meant to find it, named with the snapshots
//! and files it costs, and a clean repository has no finding at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{noise, test_repo};

use std::sync::Arc;

use bytes::Bytes;
use lifeboat_format::Id;
use lifeboat_repo::progress::none;
use lifeboat_repo::{BackupOptions, CheckOptions, CheckReport, Repository, Severity, layout};
use lifeboat_storage::memory::MemoryStorage;
use lifeboat_storage::{DynStorage, PutMode};

struct Fixture {
    storage: DynStorage,
    repo: Repository,
    snapshot: Id,
    _src: tempfile::TempDir,
}

/// A repository holding one snapshot of `a/one`, `a/two` and `b/three`,
/// in 1 MiB packs.
async fn fixture() -> Fixture {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let repo = test_repo(storage.clone()).await;
    let src = tempfile::tempdir().unwrap();
    for (dir, name, seed) in [("a", "one", 1), ("a", "two", 2), ("b", "three", 3)] {
        std::fs::create_dir_all(src.path().join(dir)).unwrap();
        std::fs::write(src.path().join(dir).join(name), noise(900 << 10, seed)).unwrap();
    }
    let snapshot = repo
        .backup_files(
            &[src.path().to_path_buf()],
            &BackupOptions::default(),
            none(),
        )
        .await
        .unwrap()
        .id;
    Fixture {
        storage,
        repo,
        snapshot,
        _src: src,
    }
}

impl Fixture {
    async fn check(&self, read_data: bool) -> CheckReport {
        self.repo
            .check(
                CheckOptions {
                    read_data,
                    subset: None,
                },
                none(),
            )
            .await
            .unwrap()
    }

    async fn keys(&self, prefix: &str) -> Vec<(String, u64)> {
        let mut keys: Vec<(String, u64)> = self
            .storage
            .list(prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.key, m.size))
            .collect();
        keys.sort();
        keys
    }

    /// The largest pack: a data pack (trees are small).
    async fn data_pack(&self) -> String {
        let mut packs = self.keys(layout::DATA).await;
        packs.sort_by_key(|(_, size)| *size);
        packs.pop().unwrap().0
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) {
        self.storage
            .put(key, Bytes::from(bytes), PutMode::Overwrite)
            .await
            .unwrap();
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        self.storage.get(key, None).await.unwrap().to_vec()
    }
}

fn only_error<'a>(report: &'a CheckReport, object: &str) -> &'a lifeboat_repo::Finding {
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(
        !errors.is_empty() && errors.iter().all(|f| f.object == object),
        "expected errors about {object} only: {:#?}",
        report.findings
    );
    errors[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_repository_has_no_finding_and_every_byte_is_read() {
    let f = fixture().await;
    let report = f.check(true).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!(report.snapshots, 1);
    assert!(report.packs >= 3, "{report:?}");
    let stored: u64 = f.keys(layout::DATA).await.iter().map(|(_, s)| s).sum();
    assert_eq!(report.bytes_read, stored);
    // A 100 % subset reads the same; structure alone reads nothing.
    let all = f
        .repo
        .check(
            CheckOptions {
                read_data: true,
                subset: Some(100.0),
            },
            none(),
        )
        .await
        .unwrap();
    assert_eq!(all.bytes_read, stored);
    assert_eq!(f.check(false).await.bytes_read, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_pack_is_found_without_reading_data_and_names_its_files() {
    let f = fixture().await;
    let pack = f.data_pack().await;
    f.storage
        .delete(&pack, lifeboat_storage::IfMissing::Fail)
        .await
        .unwrap();
    let report = f.check(false).await;
    let finding = only_error(&report, &pack);
    assert_eq!(finding.message, "pack is missing from storage");
    assert_eq!(finding.affected.len(), 1);
    assert_eq!(finding.affected[0].snapshot, f.snapshot);
    assert!(
        finding.affected[0]
            .paths
            .iter()
            .any(|p| p.ends_with("/one") || p.ends_with("/two") || p.ends_with("/three")),
        "{finding:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_pack_is_found_by_its_size() {
    let f = fixture().await;
    let pack = f.data_pack().await;
    let mut bytes = f.get(&pack).await;
    bytes.truncate(bytes.len() - 100);
    f.put(&pack, bytes).await;
    let report = f.check(false).await;
    let finding = only_error(&report, &pack);
    assert!(finding.message.contains("truncated"), "{finding:?}");
    assert!(!finding.affected.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_pack_is_found_only_by_reading_data() {
    let f = fixture().await;
    let pack = f.data_pack().await;
    let mut bytes = f.get(&pack).await;
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    f.put(&pack, bytes).await;
    assert_eq!(f.check(false).await.errors(), 0);
    let report = f.check(true).await;
    let finding = only_error(&report, &pack);
    assert!(finding.message.contains("is damaged"), "{finding:?}");
    assert_eq!(finding.affected[0].snapshot, f.snapshot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_no_index_lists_is_a_warning() {
    let f = fixture().await;
    let stray = layout::pack(&Id::from_bytes([7; 32]));
    f.put(&stray, noise(1000, 9)).await;
    let report = f.check(true).await;
    assert_eq!(report.errors(), 0, "{:#?}", report.findings);
    assert_eq!(report.warnings(), 1);
    assert_eq!(report.findings[0].object, stray);
    assert!(
        report.findings[0]
            .message
            .contains("not listed in any index")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_file_loses_the_blobs_it_lists() {
    let f = fixture().await;
    let (index_key, _) = f.keys(layout::INDEX).await.pop().unwrap();
    let mut bytes = f.get(&index_key).await;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    f.put(&index_key, bytes).await;
    let report = f.check(false).await;
    assert!(
        report
            .findings
            .iter()
            .any(|x| x.object == index_key && x.message.contains("index file is unreadable")),
        "{:#?}",
        report.findings
    );
    // Its packs are now unlisted, and the snapshot's data is missing.
    assert!(report.warnings() > 0);
    assert!(
        report.findings.iter().any(|x| !x.affected.is_empty()),
        "{:#?}",
        report.findings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_an_error() {
    let f = fixture().await;
    let key = layout::snapshot(&f.snapshot);
    let mut bytes = f.get(&key).await;
    bytes[40] ^= 1;
    f.put(&key, bytes).await;
    let report = f.check(false).await;
    let finding = only_error(&report, &key);
    assert!(
        finding.message.contains("snapshot is unreadable"),
        "{finding:?}"
    );
    assert_eq!(report.snapshots, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_wal_object_is_found_by_reading_data() {
    let f = fixture().await;
    let key = "wal/00000001/000000010000000000000001";
    f.put(key, noise(4096, 5)).await;
    let quick = f.check(false).await;
    assert_eq!(quick.wal_files, 1);
    assert_eq!(quick.errors(), 0);
    let report = f.check(true).await;
    let finding = only_error(&report, key);
    assert!(
        finding.message.contains("WAL file is damaged"),
        "{finding:?}"
    );
}
