//! `copy` between repositories in memory: a replica gets every snapshot
//! with its data and restores it exactly; a second copy moves nothing; a
//! stranger is refused; a damaged source pack is not carried over; a copy
//! cut off by the replica's storage is finished by the next one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TEST_KDF, check_read_data, noise, test_repo};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use lifeboat_format::Id;
use lifeboat_repo::progress::none;
use lifeboat_repo::{BackupOptions, RepoError, Repository, RestoreOptions, layout};
use lifeboat_storage::PutMode;
use lifeboat_storage::fault::{Fault, FaultStorage};
use lifeboat_storage::memory::MemoryStorage;

/// A source with two snapshots of a changing directory.
async fn source(src: &Path) -> (Repository, Vec<(Id, BTreeMap<String, Vec<u8>>)>) {
    let r = test_repo(Arc::new(MemoryStorage::new())).await;
    let mut taken = Vec::new();
    for round in 0..2u64 {
        for i in 0..3 {
            std::fs::write(src.join(format!("f{i}")), noise(600 << 10, 10 * round + i)).unwrap();
        }
        let id = r
            .backup_files(&[src.to_path_buf()], &BackupOptions::default(), none())
            .await
            .unwrap()
            .id;
        let files = std::fs::read_dir(src)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        taken.push((id, files));
    }
    (r, taken)
}

/// A replica of `source` in memory, with its own passphrase.
async fn replica_of(source: &Repository) -> Repository {
    source
        .init_replica(
            Arc::new(MemoryStorage::new()),
            "replica",
            b"other",
            TEST_KDF,
        )
        .await
        .unwrap()
}

async fn assert_restores(
    replica: &Repository,
    src: &Path,
    taken: &[(Id, BTreeMap<String, Vec<u8>>)],
) {
    let report = check_read_data(replica).await;
    assert_eq!(report.errors(), 0, "{:#?}", report.findings);
    assert_eq!(report.snapshots, taken.len() as u64);
    for (id, files) in taken {
        let target = tempfile::tempdir().unwrap();
        let entry = replica.find_snapshot(&id.to_hex(), &none()).await.unwrap();
        replica
            .restore_files(&entry, target.path(), &RestoreOptions::default(), none())
            .await
            .unwrap();
        let dir = target.path().join(src.strip_prefix("/").unwrap());
        for (name, bytes) in files {
            assert_eq!(
                &std::fs::read(dir.join(name)).unwrap(),
                bytes,
                "{id} {name}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_gets_everything_once_and_restores_it_exactly() {
    let src = tempfile::tempdir().unwrap();
    let (source, taken) = source(src.path()).await;
    // An archived WAL object travels too (verified by its seal).
    let wal_key = "wal/00000001/000000010000000000000001";
    let replica = replica_of(&source).await;
    assert!(source.is_replica(&replica));
    let first = source.copy_to(&replica, None, &none()).await.unwrap();
    assert_eq!(first.snapshots_copied, 2);
    assert!(first.packs_copied > 0 && first.index_files > 0, "{first:?}");
    assert_restores(&replica, src.path(), &taken).await;

    let again = source.copy_to(&replica, None, &none()).await.unwrap();
    assert_eq!(again.snapshots_copied, 0);
    assert_eq!(again.snapshots_present, 2);
    assert_eq!(again.packs_copied, 0);
    assert_eq!(again.wal_copied, 0);
    // A damaged WAL object is refused, not copied.
    source
        .storage()
        .put(wal_key, Bytes::from(noise(100, 3)), PutMode::Overwrite)
        .await
        .unwrap();
    let err = source.copy_to(&replica, None, &none()).await.unwrap_err();
    assert_eq!(err.class(), lifeboat_repo::ErrorClass::Failure, "{err}");
    assert!(replica.storage().get(wal_key, None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_that_is_not_a_replica_is_refused() {
    let src = tempfile::tempdir().unwrap();
    let (source, _) = source(src.path()).await;
    let stranger = test_repo(Arc::new(MemoryStorage::new())).await;
    assert!(!source.is_replica(&stranger));
    let err = source.copy_to(&stranger, None, &none()).await.unwrap_err();
    assert!(matches!(err, RepoError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("not a replica"), "{err}");
    assert!(stranger.snapshot_ids().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_source_pack_is_not_carried_over() {
    let src = tempfile::tempdir().unwrap();
    let (source, _) = source(src.path()).await;
    let mut packs = source.storage().list(layout::DATA).await.unwrap();
    packs.sort_by_key(|m| m.size);
    let victim = packs.pop().unwrap().key;
    let mut bytes = source.storage().get(&victim, None).await.unwrap().to_vec();
    bytes[100] ^= 1;
    source
        .storage()
        .put(&victim, Bytes::from(bytes), PutMode::Overwrite)
        .await
        .unwrap();
    let replica = replica_of(&source).await;
    let err = source.copy_to(&replica, None, &none()).await.unwrap_err();
    assert!(err.to_string().contains("does not match its name"), "{err}");
    assert!(replica.storage().get(&victim, None).await.is_err());
    // No snapshot reached the replica without its data.
    assert!(replica.snapshot_ids().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_cut_off_at_any_point_is_finished_by_the_next_one() {
    let src = tempfile::tempdir().unwrap();
    let (source, taken) = source(src.path()).await;
    // How many storage operations a whole copy makes on the replica.
    let counting = Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new())));
    let replica = source
        .init_replica(counting.clone(), "replica", b"other", TEST_KDF)
        .await
        .unwrap();
    let before = counting.calls();
    source.copy_to(&replica, None, &none()).await.unwrap();
    let ops = counting.calls() - before;
    assert!(ops >= 8, "{ops}");
    for skip in (0..ops).step_by((ops / 8) as usize) {
        let faulty = Arc::new(FaultStorage::new(Arc::new(MemoryStorage::new())));
        let replica = source
            .init_replica(faulty.clone(), "replica", b"other", TEST_KDF)
            .await
            .unwrap();
        faulty.inject_after(skip, Fault::Unreachable, u64::MAX);
        assert!(
            source.copy_to(&replica, None, &none()).await.is_err(),
            "skip {skip} of {ops}"
        );
        faulty.heal();
        // Whatever it stopped at, what the replica holds checks clean…
        let partial = check_read_data(&replica).await;
        assert_eq!(partial.errors(), 0, "skip {skip}: {:#?}", partial.findings);
        // …and the next copy completes it.
        let done = source.copy_to(&replica, None, &none()).await.unwrap();
        assert_eq!(done.snapshots_copied + done.snapshots_present, 2);
        assert_restores(&replica, src.path(), &taken).await;
    }
}
