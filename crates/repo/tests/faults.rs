//! Storage failures in the middle of a backup: the backup fails cleanly, no
//! snapshot appears, the repository stays consistent, and the next backup works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{noise, test_repo};

use std::sync::Arc;
use std::time::Duration;

use lifeboat_repo::progress::none;
use lifeboat_repo::{BackupOptions, CheckOptions, RepoError, RestoreOptions};
use lifeboat_storage::fault::{Fault, FaultStorage};
use lifeboat_storage::memory::MemoryStorage;
use lifeboat_storage::retry::{RetryPolicy, RetryStorage};
use lifeboat_storage::{DynStorage, StorageError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_mid_backup_leaves_a_consistent_repository() {
    let faulty = Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new())));
    let policy = RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };
    let storage: DynStorage = Arc::new(RetryStorage::new(faulty.clone(), policy));
    let repo = test_repo(storage).await;

    let dir = tempfile::tempdir().unwrap();
    for i in 0..6 {
        std::fs::write(dir.path().join(format!("f{i}")), noise(3 << 20, i + 1)).unwrap();
    }
    let paths = vec![dir.path().to_path_buf()];

    // Transient failures are retried and the backup succeeds…
    faulty.inject_after(5, Fault::Transient, 2);
    repo.backup_files(&paths, &BackupOptions::default(), none())
        .await
        .unwrap();
    let first = repo.list_snapshots(&none()).await.unwrap();
    assert_eq!(first.len(), 1);

    // …a permanent failure part-way fails it, writing no snapshot.
    std::fs::write(dir.path().join("new"), noise(4 << 20, 99)).unwrap();
    faulty.inject_after(3, Fault::Denied, u64::MAX);
    let err = repo
        .backup_files(&paths, &BackupOptions::default(), none())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RepoError::Storage(StorageError::PermissionDenied { .. })
        ),
        "{err:?}"
    );
    faulty.heal();
    assert_eq!(repo.list_snapshots(&none()).await.unwrap().len(), 1);
    let report = repo
        .check(
            CheckOptions {
                read_data: true,
                subset: None,
            },
            none(),
        )
        .await
        .unwrap();
    assert_eq!(report.errors(), 0, "{:?}", report.findings);

    // The next backup completes and restores exactly.
    let done = repo
        .backup_files(&paths, &BackupOptions::default(), none())
        .await
        .unwrap();
    let target = tempfile::tempdir().unwrap();
    let entry = repo
        .find_snapshot(&done.id.to_hex(), &none())
        .await
        .unwrap();
    let summary = repo
        .restore_files(&entry, target.path(), &RestoreOptions::default(), none())
        .await
        .unwrap();
    assert!(summary.failed.is_empty());
    let restored = target.path().join(dir.path().strip_prefix("/").unwrap());
    for name in ["f0", "f5", "new"] {
        assert_eq!(
            std::fs::read(restored.join(name)).unwrap(),
            std::fs::read(dir.path().join(name)).unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_store_did_not_keep_fails_the_backup_that_made_it() {
    let faulty = Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new())));
    let storage: DynStorage = faulty.clone();
    let repo = test_repo(storage).await;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..4 {
        std::fs::write(dir.path().join(format!("f{i}")), noise(2 << 20, i + 7)).unwrap();
    }
    let paths = vec![dir.path().to_path_buf()];

    // Directory listings are always read back: a damaged one is caught.
    faulty.corrupt_writes("data/");
    let err = repo
        .backup_files(&paths, &BackupOptions::default(), none())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("reading back data/"), "{msg}");
    assert!(msg.contains("not reported as successful"), "{msg}");
    assert!(repo.snapshot_ids().await.unwrap().is_empty());

    // The damaged packs are not reused: the next backup stores its data
    // again and restores intact.
    faulty.heal();
    let ok = repo
        .backup_files(&paths, &BackupOptions::default(), none())
        .await
        .unwrap();
    assert!(ok.read_back_bytes > 0);
    let target = tempfile::tempdir().unwrap();
    let entry = repo.find_snapshot(&ok.id.to_hex(), &none()).await.unwrap();
    repo.restore_files(&entry, target.path(), &RestoreOptions::default(), none())
        .await
        .unwrap();
    for i in 0..4 {
        let name = format!("f{i}");
        let restored = target
            .path()
            .join(dir.path().strip_prefix("/").unwrap())
            .join(&name);
        assert_eq!(std::fs::read(restored).unwrap(), noise(2 << 20, i + 7));
    }
}
