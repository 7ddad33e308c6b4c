//! A cached snapshot listing (the daemon's) sees what a fresh listing sees:
//! new snapshots appear and deleted ones go.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use lifeboat_format::keyslot::KdfCost;
use lifeboat_repo::progress::none;
use lifeboat_repo::{BackupOptions, InitOptions, Repository, SnapshotCache};
use lifeboat_storage::DynStorage;
use lifeboat_storage::memory::MemoryStorage;

#[tokio::test]
async fn a_cached_listing_follows_new_and_deleted_snapshots() {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let init = InitOptions {
        kdf: KdfCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    let repo = Repository::init(storage.clone(), "memory", b"pw", init)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), b"hello").unwrap();
    repo.backup_files(
        &[dir.path().to_path_buf()],
        &BackupOptions::default(),
        none(),
    )
    .await
    .unwrap();
    let first = repo.list_snapshots(&none()).await.unwrap().remove(0);

    let mut cache = SnapshotCache::default();
    let ids =
        |l: Vec<lifeboat_repo::SnapshotEntry>| l.into_iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids(repo
            .list_snapshots_cached(&mut cache, &none())
            .await
            .unwrap()),
        vec![first.id]
    );

    // Two more, older and newer: they appear, in time order.
    let mut older = first.snapshot.clone();
    older.time -= chrono::Duration::hours(1);
    let (older_id, _) = repo.save_snapshot(&older).await.unwrap();
    let mut newer = first.snapshot.clone();
    newer.time += chrono::Duration::hours(1);
    let (newer_id, _) = repo.save_snapshot(&newer).await.unwrap();
    let cached = ids(repo
        .list_snapshots_cached(&mut cache, &none())
        .await
        .unwrap());
    assert_eq!(cached, vec![older_id, first.id, newer_id]);
    assert_eq!(cached, ids(repo.list_snapshots(&none()).await.unwrap()));

    // One deleted (as forget does): it goes.
    storage
        .delete(
            &lifeboat_repo::layout::snapshot(&first.id),
            lifeboat_storage::IfMissing::Fail,
        )
        .await
        .unwrap();
    let cached = ids(repo
        .list_snapshots_cached(&mut cache, &none())
        .await
        .unwrap());
    assert_eq!(cached, vec![older_id, newer_id]);
}
