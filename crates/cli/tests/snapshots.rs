//! Snapshot metadata: kind, reason, tags, sizes and counts, as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Env;

#[test]
fn snapshots_record_kind_reason_tags_and_counts() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("cfg");
    std::fs::create_dir_all(src.join("conf.d")).unwrap();
    std::fs::write(src.join("app.env"), b"A=1\n").unwrap();
    std::fs::write(src.join("conf.d/x.conf"), b"x\n").unwrap();
    env.ok(&[
        "backup",
        "files",
        src.to_str().unwrap(),
        "--kind",
        "pre-deploy",
        "--reason",
        "migration 42",
        "--tag",
        "web",
        "--tag",
        "prod",
    ]);
    env.ok(&[
        "backup",
        "files",
        src.to_str().unwrap(),
        "--kind",
        "scheduled",
    ]);

    let list = env.ok(&["--json", "snapshots"]).json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let first = &list[0];
    assert_eq!(first["kind"], "pre-deploy");
    assert_eq!(first["reason"], "migration 42");
    assert_eq!(first["tags"], serde_json::json!(["web", "prod"]));
    assert_eq!(first["source"], "files");
    assert_eq!(first["summary"]["files"], 2);
    assert_eq!(first["summary"]["bytes"], 6);
    assert!(first["summary"]["dirs"].as_u64().unwrap() >= 2);
    assert!(first["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(first["id"].as_str().unwrap().len() == 64);
    assert_eq!(list[1]["kind"], "scheduled");

    let human = env.ok(&["snapshots"]).stdout;
    assert!(
        human.contains("pre-deploy")
            && human.contains("migration 42")
            && human.contains("2 snapshot(s)")
    );
    // Nothing but the result on a pipe: no progress output on stderr.
    let out = env.ok(&["backup", "files", src.to_str().unwrap()]);
    assert!(out.stderr.is_empty(), "unexpected stderr: {}", out.stderr);
}

#[test]
fn a_socket_is_skipped_with_a_warning_and_exit_1() {
    let env = Env::fs();
    env.init();
    let src = env.path().join("cfg");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("ok.env"), b"A=1\n").unwrap();
    std::os::unix::net::UnixListener::bind(src.join("app.sock")).unwrap();
    let out = env.run(&["--json", "backup", "files", src.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("app.sock"), "{}", out.stderr);
    assert!(out.stderr.contains("was saved"), "{}", out.stderr);
    let snap = out.json();
    assert_eq!(snap["snapshot"]["summary"]["skipped"], 1);
    assert_eq!(snap["snapshot"]["summary"]["files"], 1);
}
