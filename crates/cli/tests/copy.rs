//! `copy --to`: a replica with its own passphrase, on another store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Env, assert_same_tree, make_sample_tree, pseudo_random};

const REPLICA_PASSWORD: &str = "another passphrase for the offsite copy";

/// Runs `copy --to` with the S3 test server's settings available.
fn copy(env: &Env, to: &str, extra: &[&str]) -> common::Out {
    copy_with(env, to, REPLICA_PASSWORD, extra)
}

fn copy_with(env: &Env, to: &str, password: &str, extra: &[&str]) -> common::Out {
    let mut args = vec![
        "--json",
        "copy",
        "--to",
        to,
        "--kdf-memory",
        "19",
        "--kdf-iterations",
        "2",
    ];
    args.extend_from_slice(extra);
    let s3 = Env::s3("unused");
    let mut vars: Vec<(&str, &str)> = s3
        .vars
        .iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    vars.push(("LIFEBOAT_TO_PASSWORD", password));
    env.run_with(&vars, &args)
}

#[test]
fn a_replica_on_s3_restores_like_the_original_and_a_second_copy_sends_nothing() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("src");
    make_sample_tree(&src);
    std::fs::write(src.join("big"), pseudo_random(5 << 20, 11)).unwrap();
    env.backup(&[&src]);
    std::fs::write(src.join("later"), pseudo_random(3 << 20, 12)).unwrap();
    let second = env.backup(&[&src])["id"].as_str().unwrap().to_string();

    // The replica: another store, another passphrase.
    let replica = Env::s3("replica");
    let out = copy(&env, &replica.repo, &["--init"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first = out.json();
    assert_eq!(first["snapshots_copied"], 2, "{first}");
    assert!(first["packs_copied"].as_u64().unwrap() >= 2);

    // Open it with its own passphrase only.
    let replica = replica.with_var("LIFEBOAT_PASSWORD", REPLICA_PASSWORD);
    let listed = replica.ok(&["--json", "snapshots"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let target = env.path().join("from-replica");
    replica.ok(&[
        "restore",
        "files",
        &second[..8],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
    replica.ok(&["check", "--read-data"]);
    let wrong = replica.run_with(&[("LIFEBOAT_PASSWORD", common::PASSWORD)], &["snapshots"]);
    assert_eq!(
        wrong.code, 3,
        "the source passphrase must not open the replica"
    );

    // Again: nothing new to send. Then one new snapshot: only its data.
    let again = copy(&env, &replica.repo, &[]).json();
    assert_eq!(again["snapshots_copied"], 0, "{again}");
    assert_eq!(again["packs_copied"], 0, "{again}");
    std::fs::write(src.join("newest"), pseudo_random(2 << 20, 13)).unwrap();
    env.backup(&[&src]);
    let third = copy(&env, &replica.repo, &[]).json();
    assert_eq!(third["snapshots_copied"], 1, "{third}");
    let new_bytes = third["pack_bytes"].as_u64().unwrap();
    assert!(
        new_bytes < 4 << 20,
        "copied {new_bytes} bytes for a 2 MiB change"
    );

    // Bad input: a wrong replica passphrase, --init over the replica, and a
    // repository that is not a replica.
    let out = copy_with(&env, &replica.repo, "wrong", &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("wrong passphrase"), "{}", out.stderr);
    let out = copy(&env, &replica.repo, &["--init"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("already holds"), "{}", out.stderr);
    let stranger = Env::fs();
    stranger.init();
    let out = copy_with(&env, &stranger.repo, common::PASSWORD, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not a replica"), "{}", out.stderr);
    let missing = env.path().join("nowhere");
    let out = copy(&env, missing.to_str().unwrap(), &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("--init"), "{}", out.stderr);
}

#[test]
fn a_damaged_pack_stops_the_copy_before_any_snapshot_names_it() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("data"), pseudo_random(6 << 20, 5)).unwrap();
    env.backup(&[&src]);
    let pack = common::packs(&env.repo_dir()).remove(0);
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[1000] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();
    let to = env.path().join("replica");
    let out = copy(&env, to.to_str().unwrap(), &["--init"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("does not match its name"),
        "{}",
        out.stderr
    );
    assert!(
        common::objects(&to, "snapshots").is_empty(),
        "a snapshot was copied without its data"
    );
}
