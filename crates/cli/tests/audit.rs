//! The audit log: what is recorded, by whom, and `audit verify` naming the
//! entry that was edited, deleted, moved or cut off; the log travels with
//! `copy`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Env, make_sample_tree};

/// The directory of the repository's own audit log.
fn own_log(env: &Env) -> PathBuf {
    let audit = env.repo_dir().join("audit");
    std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("an audit log directory")
}

fn entry(log: &Path, seq: u64) -> PathBuf {
    log.join(format!("{seq:012}"))
}

/// A repository whose log holds `n` entries (init, then backups).
fn logged(n: usize) -> (Env, PathBuf) {
    let env = Env::fs();
    env.init();
    let src = env.path().join("src");
    make_sample_tree(&src);
    for _ in 1..n {
        env.backup(&[&src]);
    }
    let log = own_log(&env);
    (env, log)
}

/// Runs `audit verify`, expects exit 1, and returns the error text.
fn tampered(env: &Env) -> String {
    let out = env.run(&["audit", "verify"]);
    assert_eq!(out.code, 1, "stdout {} stderr {}", out.stdout, out.stderr);
    assert!(out.stdout.contains("DAMAGED"), "{}", out.stdout);
    out.stderr
}

#[test]
fn each_action_is_recorded_with_the_account_that_ran_it_and_how_it_ended() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("src");
    make_sample_tree(&src);
    let snap = env.backup(&[&src])["id"].as_str().unwrap().to_string();
    let out = env.path().join("out");
    env.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        out.to_str().unwrap(),
    ]);
    // A failed restore is recorded too, with its exit code and error.
    let bad = env.run(&["restore", "files", "nope", "--target", "/tmp/x"]);
    assert_eq!(bad.code, 2);
    // Reading commands are not.
    env.ok(&["snapshots"]);
    env.ok(&["check"]);
    // $USER is anyone's to set: the entry names the account itself.
    let spoofed = env.run_with(&[("USER", "mallory")], &["forget", "--keep-last", "1"]);
    assert_eq!(spoofed.code, 0, "{}", spoofed.stderr);

    let logs = env.ok(&["--json", "audit"]).json();
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["own"], true);
    let entries = logs[0]["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "init",
            "backup files",
            "restore files",
            "restore files",
            "forget"
        ]
    );
    assert_eq!(entries[1]["details"]["snapshot"], snap.as_str());
    assert_eq!(entries[2]["details"]["snapshot"], snap.as_str());
    assert_eq!(entries[2]["outcome"], "ok");
    assert_eq!(entries[3]["outcome"], "failed");
    assert_eq!(entries[3]["exit"], 2);
    assert!(
        entries[3]["error"].as_str().unwrap().contains("nope"),
        "{}",
        entries[3]
    );
    let host = entries[4]["from"].as_str().unwrap();
    assert!(!host.is_empty());
    let actor = entries[4]["actor"].as_str().unwrap();
    assert!(
        actor.ends_with(&format!("@{host}")) && !actor.starts_with("mallory"),
        "{actor}"
    );
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
    }

    let last = env.ok(&["--json", "audit", "--last", "2"]).json();
    assert_eq!(last[0]["entries"].as_array().unwrap().len(), 2);
    let human = env.ok(&["audit"]).stdout;
    assert!(
        human.contains("restore files") && human.contains("failed (exit 2)"),
        "{human}"
    );
    let verified = env.ok(&["audit", "verify"]).stdout;
    assert!(
        verified.contains("5 entries") && verified.contains("intact"),
        "{verified}"
    );
}

#[test]
fn an_entry_with_flipped_bytes_is_named_by_verify_and_by_check() {
    let (env, log) = logged(5);
    let path = entry(&log, 3);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let err = tampered(&env);
    assert!(err.contains("entry 3 of log"), "{err}");
    let check = env.run(&["check"]);
    assert_ne!(check.code, 0, "{}", check.stdout);
    assert!(
        format!("{}{}", check.stdout, check.stderr).contains("audit log"),
        "{} {}",
        check.stdout,
        check.stderr
    );
}

#[test]
fn a_deleted_entry_is_named() {
    let (env, log) = logged(5);
    std::fs::remove_file(entry(&log, 3)).unwrap();
    let err = tampered(&env);
    assert!(err.contains("entry 3 is missing"), "{err}");
}

#[test]
fn reordered_entries_are_named() {
    let (env, log) = logged(5);
    let (a, b) = (entry(&log, 3), entry(&log, 4));
    let tmp = log.join("swap");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let err = tampered(&env);
    assert!(err.contains("entry 3 of log"), "{err}");
}

#[test]
fn a_log_cut_short_is_named_and_stays_visible_after_new_entries() {
    let (env, log) = logged(6);
    std::fs::remove_file(entry(&log, 5)).unwrap();
    std::fs::remove_file(entry(&log, 6)).unwrap();
    let err = tampered(&env);
    assert!(err.contains("entries 5 to 6 are missing"), "{err}");
    // The next action does not fill the gap with new entries.
    env.ok(&["forget", "--keep-last", "3"]);
    assert!(entry(&log, 7).exists());
    let err = tampered(&env);
    assert!(err.contains("entry 5 of log"), "{err}");
}

#[test]
fn the_audit_log_travels_with_copy_and_verifies_on_the_replica() {
    let (env, _) = logged(3);
    let replica = Env::fs();
    let out = env.copy_init(&replica.repo, "replica passphrase");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let replica = replica.with_var("LIFEBOAT_PASSWORD", "replica passphrase");
    let logs = replica.ok(&["--json", "audit"]).json();
    let copied = logs
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["own"] == false)
        .expect("the source's log on the replica");
    assert_eq!(copied["entries"].as_array().unwrap().len(), 3);
    // The replica keeps its own log beside the copied one, and a second
    // copy brings the source's new entries (the first copy's: each copy's
    // own entry is written after it ends).
    let out = replica.path().join("out");
    replica.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        out.to_str().unwrap(),
    ]);
    let out = env.run_with(
        &[("LIFEBOAT_TO_PASSWORD", "replica passphrase")],
        &["copy", "--to", &replica.repo],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let logs = replica.ok(&["--json", "audit"]).json();
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert_eq!(logs[0]["own"], true);
    assert_eq!(logs[0]["entries"][0]["action"], "restore files");
    let copied: Vec<&str> = logs[1]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(copied, ["init", "backup files", "backup files", "copy"]);
    replica.ok(&["audit", "verify"]);
}
