//! What interrupted or damaged bookkeeping leaves behind is seen by `check`
//! and cleaned up: damaged pins, plans and reports are named, a damaged
//! deletion plan has a repair path, and records and temporary files of
//! killed processes are removed by `prune` once older than its grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::time::{Duration, Instant, SystemTime};

use common::{Env, objects, pseudo_random};

/// Backup-in-progress records (not temporary files beside them).
fn records(env: &Env) -> usize {
    objects(&env.repo_dir(), "running")
        .iter()
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .count()
}

const FAKE_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn check_names_damaged_bookkeeping_and_repair_plans_lets_prune_run_again() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    env.backup(&[&src]);
    let repo = env.repo_dir();
    for dir in ["prune", "pins", "reports"] {
        fs::create_dir_all(repo.join(dir)).unwrap();
        fs::write(repo.join(dir).join(FAKE_ID), b"\x01garbage").unwrap();
    }
    let out = env.run(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    for expected in [
        "deletion plan is unreadable",
        "lifeboat repair plans",
        "pin (legal hold) is unreadable",
        "report is unreadable",
    ] {
        assert!(out.stderr.contains(expected), "{expected}: {}", out.stderr);
    }

    // Prune stops on the damaged plan until it is repaired.
    let out = env.run(&["prune"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    let out = env.ok(&["--json", "repair", "plans"]).json();
    assert_eq!(out["removed_plans"].as_array().unwrap().len(), 1, "{out}");
    assert!(!repo.join("prune").join(FAKE_ID).exists());
    env.ok(&["prune"]);
    fs::remove_file(repo.join("pins").join(FAKE_ID)).unwrap();
    fs::remove_file(repo.join("reports").join(FAKE_ID)).unwrap();
    let out = env.ok(&["check"]);
    assert!(out.stdout.contains("0 errors"), "{}", out.stdout);
}

#[test]
fn prune_removes_what_killed_processes_left_once_it_is_old_enough() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("big");
    fs::create_dir_all(&src).unwrap();
    for i in 0..6 {
        fs::write(src.join(format!("{i}.bin")), pseudo_random(40 << 20, i)).unwrap();
    }
    let mut child = env
        .cmd()
        .args(["backup", "files", src.to_str().unwrap()])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while records(&env) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no record written"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended first"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(records(&env), 1);

    // An old and a fresh temporary file of interrupted writes.
    let data = env.repo_dir().join("data");
    fs::create_dir_all(&data).unwrap();
    let old = data.join(".tmp-0000000000000001");
    let fresh = data.join(".tmp-0000000000000002");
    fs::write(&old, vec![7u8; 4096]).unwrap();
    fs::write(&fresh, vec![7u8; 4096]).unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();

    let out = env.ok(&["check"]);
    assert!(
        out.stderr.contains("left by an interrupted files backup")
            && out.stderr.contains(".tmp-0000000000000001")
            && out
                .stderr
                .contains("temporary file of an interrupted write"),
        "{}",
        out.stderr
    );
    // The record is not yet older than the default grace period: kept.
    let report = env.ok(&["--json", "prune"]).json();
    assert_eq!(
        report["stale_records_removed"].as_array().unwrap().len(),
        0,
        "{report}"
    );
    assert_eq!(
        report["temporary_files_removed"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert!(!old.exists());
    assert!(fresh.exists(), "a file of a write in progress was removed");
    // With no grace, the dead backup's record goes too.
    let report = env.ok(&["--json", "prune", "--grace", "0"]).json();
    assert_eq!(
        report["stale_records_removed"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert_eq!(records(&env), 0);
    // Even with no grace, a young temporary file may be a write that started
    // after prune looked for running backups: it stays.
    assert!(fresh.exists(), "a young temporary file was removed");
}
