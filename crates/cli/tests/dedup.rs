//! Deduplication: an unchanged tree adds almost nothing; an insertion into a
//! large file adds only the chunks around it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{Env, pseudo_random};

fn stored(snap: &serde_json::Value) -> u64 {
    snap["snapshot"]["summary"]["stored_bytes"]
        .as_u64()
        .unwrap()
}

#[test]
fn backing_up_the_same_tree_again_adds_under_one_percent() {
    let env = Env::fs();
    env.init();
    let doc = Path::new("/usr/share/doc");
    let first = env.backup(&[doc]);
    let total = first["snapshot"]["summary"]["bytes"].as_u64().unwrap();
    assert!(total > 1 << 20);
    let second = env.backup(&[doc]);
    assert_eq!(second["snapshot"]["summary"]["new_bytes"].as_u64(), Some(0));
    assert!(
        stored(&second) * 100 < total,
        "second backup stored {} bytes of a {} byte tree",
        stored(&second),
        total
    );
}

#[test]
fn a_one_mib_insertion_into_a_256_mib_file_adds_only_a_few_chunks() {
    let env = Env::fs();
    env.init();
    let dir = env.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("big.bin");
    let original = pseudo_random(256 << 20, 42);
    std::fs::write(&file, &original).unwrap();
    let first = env.backup(&[&dir]);
    // About 1 MiB chunks on average (FastCDC lands somewhat above its target).
    assert!(first["snapshot"]["summary"]["new_blobs"].as_u64().unwrap() > 128);

    let mut edited = original[..128 << 20].to_vec();
    edited.extend_from_slice(&pseudo_random(1 << 20, 43));
    edited.extend_from_slice(&original[128 << 20..]);
    drop(original);
    std::fs::write(&file, &edited).unwrap();
    let second = env.backup(&[&dir]);
    let new_bytes = second["snapshot"]["summary"]["new_bytes"].as_u64().unwrap();
    // The inserted MiB plus the one or two chunks it splits, and a handful
    // of small directory listings. Chunks average about 1 MiB but the
    // repository's random chunker seed can put the insertion into chunks of
    // up to the 8 MiB maximum, so the bound allows two of those: still a
    // fifteenth of the file, where no deduplication would store all 257 MiB.
    let new_blobs = second["snapshot"]["summary"]["new_blobs"].as_u64().unwrap();
    assert!(
        new_bytes <= 17 << 20 && new_blobs <= 12,
        "a 1 MiB insertion added {new_bytes} bytes of new data in {new_blobs} blobs"
    );
    assert!(new_bytes >= 1 << 20);

    // Both versions restore exactly.
    let target = env.path().join("restored");
    env.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    let restored = target.join(file.strip_prefix("/").unwrap());
    assert!(std::fs::read(&restored).unwrap() == edited);
}

#[test]
fn unchanged_files_are_not_read_again_but_changed_ones_are_even_with_the_same_mtime() {
    let env = Env::fs();
    env.init();
    let dir = env.path().join("cfg");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..20 {
        std::fs::write(dir.join(format!("f{i}.conf")), format!("value={i}\n")).unwrap();
    }
    // Files changed within a second of a backup's start are always read
    // again (coarse timestamps); let these age first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let first = env.backup(&[&dir]);
    assert_eq!(first["snapshot"]["summary"]["files_unchanged"], 0);

    let second = env.backup(&[&dir]);
    assert_eq!(second["snapshot"]["summary"]["files_unchanged"], 20);
    assert_eq!(second["snapshot"]["parent"], first["id"]);

    // Same size, same modification time, different content: only the
    // status-change time gives it away.
    let f = dir.join("f7.conf");
    let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
    std::fs::write(&f, "value=X\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let third = env.backup(&[&dir]);
    assert_eq!(third["snapshot"]["summary"]["files_unchanged"], 19);

    // --force reads everything.
    let out = env
        .ok(&[
            "--json",
            "backup",
            "files",
            dir.to_str().unwrap(),
            "--force",
        ])
        .json();
    assert_eq!(out["snapshot"]["summary"]["files_unchanged"], 0);
    assert!(out["snapshot"].get("parent").is_none());

    let target = env.path().join("restored");
    env.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    let restored = target.join(f.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(restored).unwrap(), "value=X\n");
}
