//! Bad input: each case gets a clear message, a distinct exit code, and
//! leaves the repository unharmed (or, for damage, named precisely).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::PathBuf;

use common::{Env, objects, packs, repo_contents};

/// A repository holding one snapshot of two small files.
fn setup() -> (Env, PathBuf, String) {
    let env = Env::fs();
    env.init();
    let src = env.path().join("app");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("secret.env"), common::pseudo_random(200_000, 7)).unwrap();
    fs::write(src.join("other.conf"), b"listen 8080\n").unwrap();
    let snap = env.backup(&[&src]);
    (env, src, snap["id"].as_str().unwrap().to_string())
}

#[test]
fn wrong_passphrase_exits_3_and_changes_nothing() {
    let (env, _, _) = setup();
    let before = repo_contents(&env.repo_dir());
    let out = env.run_with(
        &[("LIFEBOAT_PASSWORD", "not the passphrase")],
        &["snapshots"],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("wrong passphrase"), "{}", out.stderr);
    assert_eq!(repo_contents(&env.repo_dir()), before);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn missing_repository_path_exits_3() {
    let env = Env::fs();
    let out = env.run(&["snapshots"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(out.stderr.contains("lifeboat init"), "{}", out.stderr);
    // An existing directory that is not a repository says so too.
    fs::create_dir_all(env.repo_dir()).unwrap();
    let out = env.run(&["snapshots"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("no lifeboat repository"),
        "{}",
        out.stderr
    );
    assert!(!env.repo_dir().join("config").exists());
}

#[test]
fn init_over_an_existing_repository_is_refused() {
    let (env, _, _) = setup();
    let before = repo_contents(&env.repo_dir());
    let out = env.run_with(
        &[("LIFEBOAT_PASSWORD", "another passphrase")],
        &["init", "--kdf-memory", "19"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("already holds a lifeboat repository"),
        "{}",
        out.stderr
    );
    assert_eq!(repo_contents(&env.repo_dir()), before);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn a_flipped_byte_in_a_pack_is_named_with_its_snapshot_and_file() {
    let (env, src, id) = setup();
    // The largest pack holds the file data (directory listings live apart).
    let pack = packs(&env.repo_dir()).remove(0);
    let mut bytes = fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&pack, bytes).unwrap();

    // The structure is intact, so a plain check passes…
    env.ok(&["check"]);
    // …and reading the data finds the damage, names the snapshot and the file.
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&id[..8]),
        "snapshot not named:\n{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("{}/secret.env", src.display())),
        "file not named:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("other.conf"),
        "undamaged file named:\n{}",
        out.stderr
    );

    let json = env.run(&["--json", "check", "--read-data"]).json();
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    let finding = &findings[0];
    assert_eq!(finding["severity"], "error");
    assert_eq!(
        finding["affected"][0]["snapshot"].as_str().map(|s| &s[..8]),
        Some(&id[..8])
    );

    // A restore brings back what is intact and names what is not.
    let target = env.path().join("restored");
    let out = env.run(&[
        "restore",
        "files",
        &id,
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("secret.env"), "{}", out.stderr);
    let other = target
        .join(src.strip_prefix("/").unwrap())
        .join("other.conf");
    assert_eq!(fs::read(other).unwrap(), b"listen 8080\n");
}

#[test]
fn a_deleted_pack_is_named_with_its_snapshot_and_file() {
    let (env, src, id) = setup();
    let pack = packs(&env.repo_dir()).remove(0);
    fs::remove_file(&pack).unwrap();
    let out = env.run(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("missing"), "{}", out.stderr);
    assert!(out.stderr.contains(&id[..8]), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("{}/secret.env", src.display())),
        "{}",
        out.stderr
    );
    // Snapshots still list; the damage is confined.
    env.ok(&["snapshots"]);
}

#[test]
fn a_truncated_index_is_named_and_repair_rebuilds_it_from_the_packs() {
    let (env, src, id) = setup();
    let index = objects(&env.repo_dir(), "index").remove(0);
    let bytes = fs::read(&index).unwrap();
    fs::write(&index, &bytes[..bytes.len() / 2]).unwrap();
    let out = env.run(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let name = index.file_name().unwrap().to_str().unwrap();
    assert!(
        out.stderr.contains(&format!("index/{name}")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("unreadable"), "{}", out.stderr);
    // The directory listings were indexed there too: the whole snapshot is affected.
    assert!(out.stderr.contains(&id[..8]), "{}", out.stderr);
    assert!(out.stderr.contains("not in any index"), "{}", out.stderr);
    // The packs themselves are intact and reported as unindexed.
    assert!(
        out.stderr.contains("not listed in any index"),
        "{}",
        out.stderr
    );
    // Listing snapshots still works and warns about the index.
    let ls = env.ok(&["snapshots"]);
    assert!(ls.stdout.contains(&id[..8]));

    // The packs describe themselves: repair rebuilds the index from them.
    let out = env.ok(&["--json", "repair", "index"]).json();
    assert_eq!(out["indexed_packs"], 2, "{out}");
    assert_eq!(out["removed_index_files"].as_array().map(Vec::len), Some(1));
    let check = env.ok(&["check", "--read-data"]);
    assert!(
        check.stdout.contains("0 errors, 0 warnings"),
        "{}",
        check.stdout
    );
    let target = env.path().join("restored");
    env.ok(&[
        "restore",
        "files",
        &id,
        "--target",
        target.to_str().unwrap(),
    ]);
    common::assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn a_snapshot_that_does_not_exist_is_a_usage_error() {
    let (env, _, _) = setup();
    let out = env.run(&[
        "restore",
        "files",
        "deadbeef",
        "--target",
        "/tmp/never-created-by-lifeboat",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no snapshot matches"), "{}", out.stderr);
    assert!(!std::path::Path::new("/tmp/never-created-by-lifeboat").exists());
}

#[test]
fn missing_passphrase_without_a_terminal_is_a_usage_error() {
    let env = Env::fs();
    let out = Env {
        vars: vec![],
        ..env
    }
    .run(&["init"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no passphrase"), "{}", out.stderr);
}

#[test]
fn unknown_flags_are_usage_errors() {
    let env = Env::fs();
    let out = env.run(&["backup", "files", "--no-such-flag", "/etc"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn init_refuses_a_non_empty_directory_and_a_weak_kdf() {
    let env = Env::fs();
    fs::create_dir_all(env.repo_dir()).unwrap();
    fs::write(env.repo_dir().join("notes.txt"), b"someone's files").unwrap();
    let out = env.run(&["init", "--kdf-memory", "19", "--kdf-iterations", "2"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not empty") && out.stderr.contains("notes.txt"),
        "{}",
        out.stderr
    );
    assert!(
        !env.repo_dir().join("keys").exists(),
        "something was written"
    );
    assert!(!env.repo_dir().join("config").exists());

    let fresh = Env::fs();
    let out = fresh.run(&["init", "--kdf-memory", "1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("19..=4096"), "{}", out.stderr);
    assert!(!fresh.repo_dir().exists());
}

#[test]
fn repository_objects_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (env, _, _) = setup();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for slot in objects(&env.repo_dir(), "keys") {
        assert_eq!(mode(&slot), 0o600, "{}", slot.display());
    }
    for p in [
        env.repo_dir(),
        env.repo_dir().join("keys"),
        env.repo_dir().join("data"),
    ] {
        assert_eq!(mode(&p), 0o700, "{}", p.display());
    }
    for o in repo_contents(&env.repo_dir()).keys() {
        assert_eq!(mode(&env.repo_dir().join(o)), 0o600, "{}", o.display());
    }
}

#[test]
fn damaged_or_missing_key_slots_are_not_called_a_wrong_passphrase() {
    let (env, _, _) = setup();
    let slot = objects(&env.repo_dir(), "keys").pop().unwrap();
    let text = fs::read_to_string(&slot).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let wrapped = v["wrapped_key"].as_str().unwrap();
    let mut damaged = wrapped.as_bytes().to_vec();
    damaged[10] = if damaged[10] == b'A' { b'B' } else { b'A' };
    fs::write(
        &slot,
        text.replace(wrapped, std::str::from_utf8(&damaged).unwrap()),
    )
    .unwrap();
    let out = env.run(&["snapshots"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("damaged") && !out.stderr.contains("wrong passphrase"),
        "{}",
        out.stderr
    );
    fs::remove_file(&slot).unwrap();
    let out = env.run(&["snapshots"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no key slots"), "{}", out.stderr);
}

#[test]
fn os_errors_are_said_once_and_passwords_on_the_command_line_are_warned_about() {
    let env = Env::fs();
    let file = env.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let inside = file.join("repo");
    let out = env.run(&["--repo", inside.to_str().unwrap(), "init"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("Not a directory").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("os error"), "{}", out.stderr);

    let out = env.run(&[
        "verify-data",
        "--db",
        "host=/nonexistent/socket user=app password=hunter2",
    ]);
    assert!(
        out.stderr.contains("visible to every local user") && out.stderr.contains("PGPASSWORD"),
        "{}",
        out.stderr
    );
}
