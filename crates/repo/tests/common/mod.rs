//! Helpers shared by the repository's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use lifeboat_format::keyslot::KdfCost;
use lifeboat_repo::progress::none;
use lifeboat_repo::{CheckOptions, CheckReport, InitOptions, Repository};
use lifeboat_storage::DynStorage;

/// A key derivation cheap enough for tests.
pub const TEST_KDF: KdfCost = KdfCost {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// `len` pseudo-random (incompressible) bytes from `seed`.
pub fn noise(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A new repository on `storage` with 1 MiB packs and passphrase `pw`.
pub async fn test_repo(storage: DynStorage) -> Repository {
    let init = InitOptions {
        kdf: TEST_KDF,
        pack_size: 1 << 20,
        ..InitOptions::default()
    };
    Repository::init(storage, "test", b"pw", init)
        .await
        .unwrap()
}

/// `check --read-data`.
pub async fn check_read_data(repo: &Repository) -> CheckReport {
    repo.check(
        CheckOptions {
            read_data: true,
            subset: None,
        },
        none(),
    )
    .await
    .unwrap()
}
