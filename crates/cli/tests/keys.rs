//! Several passphrases per repository: add, list, remove, without touching data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Env, objects, repo_contents};

#[test]
fn passphrases_can_be_added_and_removed_without_rewriting_data() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("cfg");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("app.env"), b"TOKEN=abc\n").unwrap();
    env.backup(&[&src]);
    let data_before: Vec<_> = repo_contents(&env.repo_dir())
        .into_iter()
        .filter(|(k, _)| !k.starts_with("keys") && !k.starts_with("audit"))
        .collect();

    let out = env.run_with(
        &[("LIFEBOAT_NEW_PASSWORD", "second passphrase")],
        &[
            "--json",
            "key",
            "add",
            "--label",
            "ops",
            "--kdf-memory",
            "19",
            "--kdf-iterations",
            "2",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let added = out.json()["added"].as_str().unwrap().to_string();

    let second = [("LIFEBOAT_PASSWORD", "second passphrase")];
    let list = env.run_with(&second, &["--json", "key", "list"]).json();
    let keys = list.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let current: Vec<_> = keys.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"].as_str(), Some(added.as_str()));
    assert_eq!(current[0]["label"].as_str(), Some("ops"));
    let first = keys.iter().find(|k| k["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A session cannot remove the slot it was unlocked with.
    let out = env.run_with(&second, &["key", "remove", &added[..8]]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("unlocked with"), "{}", out.stderr);

    // Unlocked with the second passphrase, remove the first.
    let out = env.run_with(&second, &["key", "remove", &first[..8]]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(objects(&env.repo_dir(), "keys").len(), 1);
    let out = env.run(&["snapshots"]);
    assert_eq!(
        out.code, 3,
        "the removed passphrase still works: {}",
        out.stdout
    );

    // The data was never rewritten and still restores with the new passphrase.
    let data_after: Vec<_> = repo_contents(&env.repo_dir())
        .into_iter()
        .filter(|(k, _)| !k.starts_with("keys") && !k.starts_with("audit"))
        .collect();
    assert_eq!(data_before, data_after);
    let target = env.path().join("r");
    let out = env.run_with(
        &second,
        &[
            "restore",
            "files",
            "latest",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    common::assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn password_file_and_command_work() {
    let env = Env::fs();
    env.init();
    let file = env.path().join("pass");
    std::fs::write(&file, format!("{}\n", common::PASSWORD)).unwrap();
    let no_env = Env {
        vars: vec![],
        ..env
    };
    // Readable by others: refused, like libpq refuses such a .pgpass.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = no_env.run_with(
        &[("LIFEBOAT_PASSWORD_FILE", file.to_str().unwrap())],
        &["snapshots"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("mode 644") && out.stderr.contains("chmod 600"),
        "{}",
        out.stderr
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = no_env.run_with(
        &[("LIFEBOAT_PASSWORD_FILE", file.to_str().unwrap())],
        &["snapshots"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // A missing file is bad usage, said once, without the OS error number.
    let out = no_env.run_with(
        &[("LIFEBOAT_PASSWORD_FILE", "/no/such/passphrase")],
        &["snapshots"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("os error"), "{}", out.stderr);
    let out = no_env.run_with(
        &[(
            "LIFEBOAT_PASSWORD_COMMAND",
            &format!("cat {}", file.display()),
        )],
        &["snapshots"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = no_env.run_with(&[("LIFEBOAT_PASSWORD_COMMAND", "false")], &["snapshots"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}
