//! File restores never write through a symlink inside the target, bring
//! hard links back as links, and refuse an --include that matches nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{Env, assert_same_tree};

#[test]
fn an_overwrite_restore_never_writes_through_a_symlink_in_the_target() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("src");
    fs::create_dir_all(src.join("conf")).unwrap();
    fs::write(src.join("top.txt"), b"restored top").unwrap();
    fs::write(src.join("conf/app.env"), b"restored env").unwrap();
    env.backup(&[&src]);

    let target = env.path().join("target");
    env.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    let inside = target.join(src.strip_prefix("/").unwrap());

    // Someone plants links inside the earlier restore, pointing outside it.
    let outside = env.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), b"must not change").unwrap();
    fs::remove_file(inside.join("top.txt")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), inside.join("top.txt")).unwrap();
    fs::remove_dir_all(inside.join("conf")).unwrap();
    std::os::unix::fs::symlink(&outside, inside.join("conf")).unwrap();

    env.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(
        fs::read(outside.join("victim")).unwrap(),
        b"must not change"
    );
    assert!(
        !outside.join("app.env").exists(),
        "a file was written through the link"
    );
    assert!(
        fs::symlink_metadata(inside.join("top.txt"))
            .unwrap()
            .is_file()
    );
    assert!(fs::symlink_metadata(inside.join("conf")).unwrap().is_dir());
    assert_same_tree(&src, &inside);
}

#[test]
fn hard_links_come_back_as_links() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("first"), common::pseudo_random(200_000, 3)).unwrap();
    fs::hard_link(src.join("first"), src.join("second")).unwrap();
    fs::hard_link(src.join("first"), src.join("sub/third")).unwrap();
    fs::write(src.join("alone"), b"one link").unwrap();
    env.backup(&[&src]);

    let target = env.path().join("target");
    let out = env.ok(&[
        "--json",
        "restore",
        "files",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.json()["summary"]["hardlinks"], 2, "{}", out.stdout);
    let inside = target.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&src, &inside);
    let ino = |p: &str| fs::metadata(inside.join(p)).unwrap().ino();
    assert_eq!(ino("first"), ino("second"));
    assert_eq!(ino("first"), ino("sub/third"));
    assert_eq!(fs::metadata(inside.join("first")).unwrap().nlink(), 3);
    assert_eq!(fs::metadata(inside.join("alone")).unwrap().nlink(), 1);

    // Only part of a link group restored: the file is still whole.
    let part = env.path().join("part");
    let sub = src.join("sub");
    env.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        part.to_str().unwrap(),
        "--include",
        sub.to_str().unwrap(),
    ]);
    let third = part.join(sub.strip_prefix("/").unwrap()).join("third");
    assert_eq!(
        fs::read(third).unwrap(),
        fs::read(src.join("first")).unwrap()
    );
}

#[test]
fn an_include_that_matches_nothing_is_refused() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    env.backup(&[&src]);
    let target = env.path().join("target");
    let out = env.run(&[
        "restore",
        "files",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        "/no/such/path",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("/no/such/path") && out.stderr.contains("no such path"),
        "{}",
        out.stderr
    );
    assert!(!target.exists(), "the target was created for nothing");
}
