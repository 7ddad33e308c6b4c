//! Backup and restore of real trees, to a local directory and to S3:
//! `diff -r` and metadata must match exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{Env, assert_same_metadata, assert_same_tree, make_sample_tree};

fn round_trip(env: &Env, source: &Path) {
    env.init();
    let snap = env.backup(&[source]);
    let id = snap["id"].as_str().unwrap().to_string();
    assert!(snap["snapshot"]["summary"]["files"].as_u64().unwrap() > 10);

    let target = env.path().join("restored");
    let out = env.ok(&[
        "restore",
        "files",
        &id[..8],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(out.stdout.contains("restored snapshot"), "{}", out.stdout);
    let restored = target.join(source.strip_prefix("/").unwrap());
    assert_same_tree(source, &restored);
    assert_same_metadata(source, &restored);

    let check = env.ok(&["check", "--read-data"]);
    assert!(check.stdout.contains("0 errors"), "{}", check.stdout);
}

#[test]
fn sample_tree_round_trips_through_a_local_repository() {
    let env = Env::fs();
    let src = env.path().join("src");
    make_sample_tree(&src);
    round_trip(&env, &src);
    // Sparse files stay sparse: far fewer blocks than their length.
    let restored = env
        .path()
        .join("restored")
        .join(src.strip_prefix("/").unwrap())
        .join("sparse.img");
    let blocks = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&restored).unwrap());
    assert!(
        blocks * 512 < 16 << 20,
        "sparse file restored with {blocks} blocks"
    );
}

#[test]
fn usr_share_doc_round_trips_through_a_local_repository() {
    let env = Env::fs();
    round_trip(&env, Path::new("/usr/share/doc"));
}

#[test]
fn sample_tree_and_usr_share_doc_round_trip_through_s3() {
    let env = Env::s3("roundtrip");
    let src = env.path().join("src");
    make_sample_tree(&src);
    env.init();
    let snap = env.backup(&[&src, Path::new("/usr/share/doc")]);
    let id = snap["id"].as_str().unwrap();
    let target = env.path().join("restored");
    env.ok(&["restore", "files", id, "--target", target.to_str().unwrap()]);
    for source in [src.as_path(), Path::new("/usr/share/doc")] {
        let restored = target.join(source.strip_prefix("/").unwrap());
        assert_same_tree(source, &restored);
        assert_same_metadata(source, &restored);
    }
    env.ok(&["check", "--read-data"]);
}

#[test]
fn partial_restore_and_ls_show_only_what_was_asked() {
    let env = Env::fs();
    let src = env.path().join("src");
    make_sample_tree(&src);
    env.init();
    env.backup(&[&src]);
    let sub = src.join("sub");
    let ls = env
        .ok(&["--json", "ls", "latest", sub.to_str().unwrap()])
        .json();
    let paths: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|p| p.ends_with("sub/deeper/text.env")),
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p.ends_with("one-byte")), "{paths:?}");

    let target = env.path().join("partial");
    env.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        sub.to_str().unwrap(),
    ]);
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&sub, &restored.join("sub"));
    assert!(!restored.join("one-byte").exists());
}

#[test]
fn restore_refuses_a_non_empty_target_unless_overwrite() {
    let env = Env::fs();
    let src = env.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.env"), b"A=1").unwrap();
    env.init();
    env.backup(&[&src]);
    let target = env.path().join("busy");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep-me"), b"precious").unwrap();
    let out = env.run(&[
        "restore",
        "files",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert_eq!(std::fs::read(target.join("keep-me")).unwrap(), b"precious");
    env.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(std::fs::read(target.join("keep-me")).unwrap(), b"precious");
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}
