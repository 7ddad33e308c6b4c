//! A backup killed with SIGKILL part-way leaves a repository that checks
//! clean, and the next backup completes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Env, assert_same_tree, packs, pseudo_random};

#[test]
fn sigkill_during_backup_leaves_a_consistent_repository() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("big");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8 {
        std::fs::write(
            src.join(format!("part-{i}.bin")),
            pseudo_random(80 << 20, 100 + i),
        )
        .unwrap();
    }

    let mut child = env
        .cmd()
        .args(["backup", "files", src.to_str().unwrap()])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while packs(&env.repo_dir()).len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "backup made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup finished before it could be killed; use more data"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // No snapshot was written, and what was left is consistent.
    assert!(env.ok(&["snapshots"]).stdout.contains("no snapshots"));
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.stdout.contains("0 errors"), "{}", check.stdout);

    // The next backup completes and restores exactly.
    env.backup(&[&src]);
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.stdout.contains("0 errors"), "{}", check.stdout);
    let target = env.path().join("restored");
    env.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}
