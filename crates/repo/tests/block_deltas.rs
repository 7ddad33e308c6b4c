//! Changed blocks of page-structured files are stored as deltas against the
//! parent snapshot's blocks: an incremental backup of a file with scattered
//! changes stores little more than the changes, every snapshot restores
//! exactly, and a file reused unchanged keeps its deltas' bases alive
//! through forget and prune.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{check_read_data, noise, test_repo};

use std::path::Path;
use std::sync::Arc;

use chrono::Duration;
use lifeboat_format::Id;
use lifeboat_format::snapshot::SourceKind;
use lifeboat_repo::backup::{Chunking, FilePolicy, SourceRoot, TreeSource};
use lifeboat_repo::progress::none;
use lifeboat_repo::prune::PruneOptions;
use lifeboat_repo::{BackupOptions, Repository, RestoreOptions, layout};
use lifeboat_storage::memory::MemoryStorage;
use lifeboat_storage::{DynStorage, IfMissing};

const BLOCK: usize = 64 << 10;
const BLOCKS: usize = 32;

/// Cuts every file into fixed blocks, as relation files are.
struct Pages;

impl FilePolicy for Pages {
    fn chunking(&self, _root: usize, _rel: &Path) -> Chunking {
        Chunking::Fixed(BLOCK as u32)
    }
}

async fn backup(repo: &Repository, dir: &Path) -> Id {
    let source = TreeSource {
        kind: SourceKind::Files,
        paths: vec![dir.display().to_string()],
        roots: vec![SourceRoot {
            at: "data".into(),
            path: dir.to_path_buf(),
            real_ancestors: false,
        }],
        policy: Arc::new(Pages),
    };
    let mut b = repo
        .start_backup(source, &BackupOptions::default(), none())
        .await
        .unwrap();
    b.store_files().await.unwrap();
    b.finish(|_| {}).await.unwrap().id
}

async fn stored_bytes(storage: &DynStorage) -> u64 {
    storage.list("").await.unwrap().iter().map(|m| m.size).sum()
}

async fn restored(repo: &Repository, id: &Id) -> Vec<u8> {
    restored_with(repo, id, &RestoreOptions::default()).await
}

async fn restored_with(repo: &Repository, id: &Id, options: &RestoreOptions) -> Vec<u8> {
    let target = tempfile::tempdir().unwrap();
    let entry = repo.find_snapshot(&id.to_hex(), &none()).await.unwrap();
    let summary = repo
        .restore_files(&entry, target.path(), options, none())
        .await
        .unwrap();
    assert!(summary.failed.is_empty(), "{:?}", summary.failed);
    std::fs::read(target.path().join("data/rel")).unwrap()
}

/// Changes a few bytes in every block, at places that depend on `round`.
fn scatter(data: &mut [u8], round: usize) {
    for b in 0..BLOCKS {
        for k in 0..3 {
            let at = b * BLOCK + (round * 7919 + k * 3001) % BLOCK;
            data[at] = data[at].wrapping_add(1 + round as u8);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scattered_changes_cost_their_deltas_and_every_snapshot_survives_prune() {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let repo = test_repo(storage.clone()).await;
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("rel");
    let size = BLOCK * BLOCKS;
    let mut data = noise(size, 5);
    std::fs::write(&file, &data).unwrap();
    let mut snapshots = vec![(backup(&repo, src.path()).await, data.clone())];

    // Two incrementals with a few bytes changed in every block: each stores
    // deltas (against the first backup's blocks), not the blocks again.
    for round in 1..=2 {
        scatter(&mut data, round);
        std::fs::write(&file, &data).unwrap();
        // Old enough for the next backup to trust its times (parent reuse).
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let before = stored_bytes(&storage).await;
        let id = backup(&repo, src.path()).await;
        let added = stored_bytes(&storage).await - before;
        assert!(
            added < size as u64 / 8,
            "round {round}: {added} bytes added for {size} bytes with 96 changed"
        );
        snapshots.push((id, data.clone()));
    }
    // Unchanged since: the file is reused with its chunk list and bases.
    let unchanged = backup(&repo, src.path()).await;
    // Deltas waiting for their bases, or (no room to wait) each decoded
    // with a read of its own base: the same bytes either way.
    let no_room = RestoreOptions {
        waiting_deltas: 1,
        ..RestoreOptions::default()
    };
    for (id, expected) in &snapshots {
        assert!(restored(&repo, id).await == *expected, "snapshot {id}");
        assert!(
            restored_with(&repo, id, &no_room).await == *expected,
            "snapshot {id}"
        );
    }

    // Only the unchanged reuse is kept: the bases its deltas need stay.
    for (id, _) in &snapshots {
        repo.storage()
            .delete(&layout::snapshot(id), IfMissing::Fail)
            .await
            .unwrap();
    }
    let options = PruneOptions {
        grace: Duration::zero(),
        max_unused_percent: 0.0,
        ..PruneOptions::default()
    };
    let pruned = repo.prune(&options, none()).await.unwrap();
    assert!(pruned.deleted.packs > 0, "{pruned:?}");
    let report = check_read_data(&repo).await;
    assert_eq!(report.errors(), 0, "{:?}", report.findings);
    assert!(restored(&repo, &unchanged).await == data);

    // New content throughout: deltas would save nothing, blocks are whole.
    let fresh = noise(size, 99);
    std::fs::write(&file, &fresh).unwrap();
    let before = stored_bytes(&storage).await;
    let id = backup(&repo, src.path()).await;
    assert!(stored_bytes(&storage).await - before >= size as u64);
    assert!(restored(&repo, &id).await == fresh);
}
