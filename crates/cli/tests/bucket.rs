//! Buckets as a source, against the S3 test server: incremental snapshots,
//! restores into another bucket, a prefix, a directory and in place, as of
//! a time; and the bad inputs. Objects are written and judged by boto3,
//! AWS's own SDK, not by lifeboat's client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::pg::Cluster;
use common::{Env, s3_endpoint};
use serde_json::Value;

/// Runs the boto3 helper against the plain S3 test server.
fn boto(args: &[&str]) -> String {
    let python = std::env::var("LIFEBOAT_TEST_PYTHON").expect(
        "LIFEBOAT_TEST_PYTHON is not set: run the suite with scripts/test.sh, which installs boto3",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bucket.py");
    let out = Command::new(python)
        .arg(script)
        .arg(s3_endpoint())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bucket.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn manifest(bucket_and_prefix: &str) -> Value {
    let (bucket, prefix) = bucket_and_prefix
        .split_once('/')
        .unwrap_or((bucket_and_prefix, ""));
    serde_json::from_str(&boto(&["manifest", bucket, prefix])).unwrap()
}

/// A bucket name no earlier run used.
fn fresh_bucket(env: &Env, name: &str) -> String {
    let suffix: String = env
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    let bucket = format!("{name}-{suffix}");
    boto(&["create", &bucket]);
    bucket
}

/// A lifeboat run reaching the bucket with its own credentials (the
/// repository is local and needs none).
fn lb(env: &Env, args: &[&str]) -> common::Out {
    let endpoint = s3_endpoint();
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--endpoint", &endpoint]);
    env.run_with(
        &[
            ("LIFEBOAT_BUCKET_ACCESS_KEY_ID", "test"),
            ("LIFEBOAT_BUCKET_SECRET_ACCESS_KEY", "test"),
        ],
        &full,
    )
}

fn lb_ok(env: &Env, args: &[&str]) -> Value {
    let out = lb(env, args);
    assert_eq!(
        out.code, 0,
        "lifeboat {args:?}:\n{}\n{}",
        out.stdout, out.stderr
    );
    out.json()
}

/// Every file below `dir` with its SHA-256, as the manifest has them.
fn dir_digest(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let data = std::fs::read(&p).unwrap();
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, sha256_hex(&data)));
            }
        }
    }
    out.sort();
    out
}

fn sha256_hex(data: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_bucket_comes_back_whole_incrementally_and_as_of_a_time() {
    let env = Env::fs();
    env.init();
    let bucket = fresh_bucket(&env, "uploads");
    boto(&["fill", &bucket, "2000"]);
    let before = manifest(&bucket);
    let total = before.as_object().unwrap().len() as u64;
    assert_eq!(total, 2001);

    let first = lb_ok(&env, &["backup", "bucket", &format!("s3://{bucket}")]);
    let b1 = &first["snapshot"]["bucket"];
    assert_eq!(b1["objects"], total);
    assert_eq!(b1["objects_read"], total);
    let between = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // 1 % of the objects rewritten, two deleted, two added.
    let changed: Value = serde_json::from_str(&boto(&["change", &bucket, "1"])).unwrap();
    let rewritten = changed["rewritten"].as_u64().unwrap();
    let after = manifest(&bucket);
    let second = lb_ok(&env, &["backup", "bucket", &format!("s3://{bucket}")]);
    let b2 = &second["snapshot"]["bucket"];
    assert_eq!(b2["objects"], total);
    // Only what changed is downloaded: one GET per object read.
    assert_eq!(b2["objects_read"], rewritten + 2, "{b2}");
    assert_eq!(b2["get_requests"], rewritten + 2, "{b2}");
    assert_eq!(
        second["snapshot"]["summary"]["files_unchanged"],
        total - rewritten - 2
    );

    // Into another bucket: every key, byte and metadata field equal.
    let other = fresh_bucket(&env, "restored");
    lb_ok(
        &env,
        &[
            "restore",
            "bucket",
            "latest",
            "--to",
            &format!("s3://{other}"),
        ],
    );
    assert_eq!(manifest(&other), after);

    // Into a prefix of a bucket, as of a time between the two snapshots:
    // the first state.
    let as_of = between.to_rfc3339();
    let old = fresh_bucket(&env, "old");
    let out = lb_ok(
        &env,
        &[
            "restore",
            "bucket",
            "latest",
            "--as-of",
            &as_of,
            "--to",
            &format!("s3://{old}/then"),
        ],
    );
    assert_eq!(out["snapshot"], first["id"]);
    assert_eq!(manifest(&format!("{old}/then")), before);

    // Into a directory: the same bytes under the same names.
    let dir = env.path().join("restored-dir");
    lb_ok(
        &env,
        &["restore", "bucket", "latest", "--to", dir.to_str().unwrap()],
    );
    let expected: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = after
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, m)| (k.clone(), m["sha256"].as_str().unwrap().to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(dir_digest(&dir), expected);

    // In place, back to the first state: only what differs is written, and
    // what did not exist then is deleted only with --delete.
    let plan = lb_ok(
        &env,
        &[
            "restore",
            "bucket",
            &first["id"].as_str().unwrap()[..8],
            "--in-place",
            "--dry-run",
        ],
    );
    assert_eq!(
        plan["plan"]["write"].as_array().unwrap().len() as u64,
        rewritten + 2
    );
    assert_eq!(plan["plan"]["extra"].as_array().unwrap().len(), 2);
    assert_eq!(manifest(&bucket), after, "a dry run changes nothing");
    let kept = lb_ok(
        &env,
        &[
            "restore",
            "bucket",
            &first["id"].as_str().unwrap()[..8],
            "--in-place",
        ],
    );
    assert_eq!(kept["summary"]["written"], rewritten + 2);
    assert_eq!(kept["summary"]["deleted"], 0);
    let deleted = lb_ok(
        &env,
        &[
            "restore",
            "bucket",
            &first["id"].as_str().unwrap()[..8],
            "--in-place",
            "--delete",
        ],
    );
    assert_eq!(deleted["summary"]["written"], 0);
    assert_eq!(deleted["summary"]["deleted"], 2);
    assert_eq!(manifest(&bucket), before);

    // The repository's own judges see bucket snapshots like any other.
    env.ok(&["check", "--read-data"]);
    let ls = env.ok(&["ls", "latest"]).stdout;
    assert!(ls.contains("videos/large upload.bin"), "{ls}");
    let drill = lb(&env, &["drill", "latest"]);
    assert_eq!(drill.code, 0, "{}\n{}", drill.stdout, drill.stderr);
}

#[test]
fn bad_bucket_input_fails_clearly_and_writes_no_snapshot() {
    let env = Env::fs();
    env.init();
    let snapshots = |env: &Env| {
        env.ok(&["--json", "snapshots"])
            .json()
            .as_array()
            .unwrap()
            .len()
    };

    let missing = lb(&env, &["backup", "bucket", "s3://no-such-bucket-here"]);
    assert_eq!(missing.code, 6, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );

    // The authenticating server with a wrong secret.
    let auth_endpoint = std::env::var("LIFEBOAT_TEST_S3_AUTH_ENDPOINT").unwrap();
    let auth_bucket = std::env::var("LIFEBOAT_TEST_S3_AUTH_BUCKET").unwrap();
    let key_id = std::env::var("LIFEBOAT_TEST_S3_AUTH_KEY_ID").unwrap();
    let denied = env.run_with(
        &[
            ("LIFEBOAT_BUCKET_ACCESS_KEY_ID", key_id.as_str()),
            ("LIFEBOAT_BUCKET_SECRET_ACCESS_KEY", "wrong-secret"),
        ],
        &[
            "backup",
            "bucket",
            &format!("s3://{auth_bucket}"),
            "--endpoint",
            &auth_endpoint,
        ],
    );
    assert_eq!(denied.code, 5, "{}", denied.stderr);
    assert!(denied.stderr.contains("access denied"), "{}", denied.stderr);
    assert!(
        denied.stderr.contains("LIFEBOAT_BUCKET_SECRET_ACCESS_KEY"),
        "{}",
        denied.stderr
    );

    // An endpoint nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = env.run(&[
        "backup",
        "bucket",
        "s3://anything",
        "--endpoint",
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert_eq!(down.code, 4, "{}", down.stderr);
    assert!(down.stderr.contains("cannot be reached"), "{}", down.stderr);

    let bad = env.run(&["backup", "bucket", "media"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_eq!(snapshots(&env), 0, "no snapshot was written");

    // A restore never writes into a target that holds objects unless told.
    let bucket = fresh_bucket(&env, "src");
    boto(&["put", &bucket, "a.txt", "10"]);
    lb_ok(&env, &["backup", "bucket", &format!("s3://{bucket}")]);
    let busy = fresh_bucket(&env, "busy");
    boto(&["put", &busy, "keep-me.txt", "5"]);
    let refused = lb(
        &env,
        &[
            "restore",
            "bucket",
            "latest",
            "--to",
            &format!("s3://{busy}"),
        ],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("already holds objects"),
        "{}",
        refused.stderr
    );
    let keys: Vec<String> = serde_json::from_str(&boto(&["keys", &busy])).unwrap();
    assert_eq!(keys, vec!["keep-me.txt".to_string()]);
    let outside = lb(
        &env,
        &[
            "restore",
            "bucket",
            "latest",
            "--as-of",
            "2001-01-01 00:00:00Z",
            "--to",
            &format!("s3://{busy}/x"),
        ],
    );
    assert_eq!(outside.code, 2, "{}", outside.stderr);
    assert!(
        outside.stderr.contains("no snapshot of"),
        "{}",
        outside.stderr
    );
}

#[test]
fn a_declared_bucket_source_is_backed_up_restored_and_drilled_by_name() {
    let env = Env::fs();
    env.init();
    let bucket = fresh_bucket(&env, "declared");
    boto(&["fill", &bucket, "40"]);
    let secret = env.path().join("media.secret");
    std::fs::write(&secret, "test\n").unwrap();
    let config = env.path().join("lifeboat.toml");
    std::fs::write(
        &config,
        format!(
            "[[source]]\nname = \"media\"\nkind = \"bucket\"\nbucket = \"s3://{bucket}/level0-0\"\n\
             endpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"test\"\n\
             secret_access_key_file = \"{}\"\n",
            s3_endpoint(),
            secret.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    // No credentials in the environment: the source's own are used.
    let out = env.ok(&["--config", cfg, "--source", "media", "--json", "backup"]);
    let snap = out.json();
    assert!(
        snap["snapshot"]["tags"]
            .as_array()
            .unwrap()
            .contains(&Value::from("source:media"))
    );
    let expected = manifest(&format!("{bucket}/level0-0"));
    assert_eq!(
        snap["snapshot"]["bucket"]["objects"],
        expected.as_object().unwrap().len()
    );

    let dir = env.path().join("out");
    env.ok(&[
        "--config",
        cfg,
        "--source",
        "media",
        "restore",
        "bucket",
        "latest",
        "--to",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(dir_digest(&dir).len(), expected.as_object().unwrap().len());

    let drill = env.ok(&["--config", cfg, "--source", "media", "--json", "drill"]);
    let report = drill.json();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["source"], "bucket");
    // The scratch prefix is gone afterwards.
    let keys: Vec<String> = serde_json::from_str(&boto(&["keys", &bucket])).unwrap();
    assert!(
        keys.iter().all(|k| !k.starts_with(".lifeboat-drills/")),
        "{keys:?}"
    );
}

#[test]
fn a_set_pairs_a_database_with_its_bucket_and_rows_are_checked_against_objects() {
    let env = Env::fs();
    env.init();
    let bucket = fresh_bucket(&env, "storage");
    for key in ["avatars/alice.png", "avatars/bob.png", "docs/contract.pdf"] {
        boto(&["put", &bucket, key, "300"]);
    }
    // Rows that name the objects, shaped like Supabase's storage.objects.
    let c = Cluster::new(&env, "app");
    c.psql("CREATE DATABASE app");
    c.psql_db(
        "app",
        &format!(
            "CREATE SCHEMA storage;
             CREATE TABLE storage.objects (id bigserial PRIMARY KEY, bucket_id text, name text,
                 owner uuid, created_at timestamptz DEFAULT now(), metadata jsonb);
             INSERT INTO storage.objects (bucket_id, name) VALUES
                 ('{bucket}', 'avatars/alice.png'), ('{bucket}', 'avatars/bob.png'),
                 ('{bucket}', 'docs/contract.pdf'), ('other', 'unrelated.txt');"
        ),
    );
    let config = env.path().join("lifeboat.toml");
    std::fs::write(
        &config,
        format!(
            "[[source]]\nname = \"db\"\nkind = \"postgres-logical\"\ndb = \"{}\"\n\n\
             [[source]]\nname = \"media\"\nkind = \"bucket\"\nbucket = \"s3://{bucket}\"\n\
             endpoint = \"{}\"\naccess_key_id = \"test\"\nsecret_access_key_file = \"{}\"\n\n\
             [[set]]\nname = \"app\"\nsources = [\"db\", \"media\"]\n",
            c.conninfo_db("app"),
            s3_endpoint(),
            {
                let f = env.path().join("secret");
                std::fs::write(&f, "test").unwrap();
                f.display().to_string()
            }
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let first = env
        .ok(&["--config", cfg, "--json", "backup", "--set", "app"])
        .json();
    let linked = first["snapshots"].as_array().unwrap();
    assert_eq!(linked.len(), 2, "{first}");
    let db_first = linked
        .iter()
        .find(|s| s["source"] == "postgres-logical")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bucket_first = linked.iter().find(|s| s["source"] == "bucket").unwrap()["id"].clone();

    // Later: an object is deleted, and a row names an object never uploaded.
    boto(&["delete", &bucket, "avatars/bob.png"]);
    c.psql_db(
        "app",
        &format!("INSERT INTO storage.objects (bucket_id, name) VALUES ('{bucket}', 'ghost.png')"),
    );
    let second = env
        .ok(&["--config", cfg, "--json", "backup", "--set", "app"])
        .json();
    assert_ne!(second["run"], first["run"]);

    // The bucket as it was when the first database snapshot was taken.
    let restored = fresh_bucket(&env, "paired");
    let out = env
        .ok(&[
            "--config",
            cfg,
            "--source",
            "media",
            "--json",
            "restore",
            "bucket",
            "latest",
            "--paired-with",
            &db_first[..8],
            "--to",
            &format!("s3://{restored}"),
            "--check-rows",
            &c.conninfo_db("app"),
        ])
        .json();
    assert_eq!(out["snapshot"], bucket_first);
    assert_eq!(out["summary"]["written"], 3);
    // Against today's rows: one row names an object that never existed.
    assert_eq!(
        out["rows"]["rows_without_objects"],
        serde_json::json!(["ghost.png"])
    );
    assert_eq!(out["rows"]["objects_without_rows"], serde_json::json!([]));
    assert_eq!(out["rows"]["rows"], 4);

    // The newest bucket snapshot lacks bob's avatar, which a row still names.
    let dry = env
        .ok(&[
            "--config",
            cfg,
            "--source",
            "media",
            "--json",
            "restore",
            "bucket",
            "latest",
            "--in-place",
            "--dry-run",
            "--check-rows",
            &c.conninfo_db("app"),
        ])
        .json();
    assert_eq!(
        dry["rows"]["rows_without_objects"],
        serde_json::json!(["avatars/bob.png", "ghost.png"])
    );
    let text = env
        .ok(&[
            "--config",
            cfg,
            "--source",
            "media",
            "restore",
            "bucket",
            "latest",
            "--in-place",
            "--dry-run",
            "--check-rows",
            &c.conninfo_db("app"),
        ])
        .stdout;
    assert!(
        text.contains("row without object:  \"ghost.png\""),
        "{text}"
    );

    // A snapshot not taken by a set has no pair.
    let lone = lb_ok(&env, &["backup", "bucket", &format!("s3://{bucket}")]);
    let id = lone["id"].as_str().unwrap();
    let unpaired = lb(
        &env,
        &[
            "restore",
            "bucket",
            "latest",
            "--paired-with",
            &id[..8],
            "--to",
            "/nonexistent",
        ],
    );
    assert_eq!(unpaired.code, 2, "{}", unpaired.stderr);
    assert!(
        unpaired
            .stderr
            .contains("not taken by `lifeboat backup --set`"),
        "{}",
        unpaired.stderr
    );
}

/// A data subject's objects, found by a key pattern and by the rows of a
/// Supabase-shaped `storage.objects`, are erased from the live bucket and
/// left out of every later restore and drill of an older bucket snapshot;
/// neither the ledger nor the audit log holds the subject's key.
#[test]
fn an_erased_subjects_objects_never_come_back_from_a_bucket_restore_or_drill() {
    const SUBJECT: &str = "cust-7f3e9a";
    let env = Env::fs();
    env.init();
    let bucket = fresh_bucket(&env, "erasure");
    let mine = [
        format!("users/{SUBJECT}/avatar.png"),
        format!("users/{SUBJECT}/docs/id.pdf"),
        format!("users/{SUBJECT}/old.png"),
        "uploads/a1.png".to_string(),
    ];
    let others = ["users/other/avatar.png", "uploads/b2.png"];
    for key in mine.iter().map(String::as_str).chain(others) {
        boto(&["put", &bucket, key, "500"]);
    }
    let c = Cluster::new(&env, "app");
    c.psql("CREATE DATABASE app");
    c.script(
        "app",
        &format!(
            "CREATE SCHEMA storage;
             CREATE TABLE storage.objects (id bigserial PRIMARY KEY, bucket_id text, name text, owner_id text);
             INSERT INTO storage.objects (bucket_id, name, owner_id) VALUES
                 ('{bucket}', 'uploads/a1.png', '{SUBJECT}'), ('{bucket}', 'uploads/b2.png', 'other');"
        ),
    );
    let secret = env.path().join("media.secret");
    std::fs::write(&secret, "test\n").unwrap();
    let config = env.path().join("lifeboat.toml");
    std::fs::write(
        &config,
        format!(
            "[[source]]\nname = \"media\"\nkind = \"bucket\"\nbucket = \"s3://{bucket}\"\n\
             endpoint = \"{}\"\naccess_key_id = \"test\"\nsecret_access_key_file = \"{}\"\n\n\
             [[erasure]]\ntable = \"storage.objects\"\nsubject = \"owner_id\"\n\n\
             [[bucket_erasure]]\nsource = \"media\"\nkey = \"users/{{subject}}/**\"\n\n\
             [[bucket_erasure]]\nsource = \"media\"\n\
             query = \"SELECT name FROM storage.objects WHERE bucket_id = '{bucket}' AND owner_id = $1\"\n",
            s3_endpoint(),
            secret.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let lb_cfg = |args: &[&str]| {
        let mut full = vec!["--config", cfg, "--json"];
        full.extend_from_slice(args);
        env.run(&full)
    };
    let before = lb_cfg(&["--source", "media", "backup"]);
    assert_eq!(before.code, 0, "{}", before.stderr);
    // Deleted by the user after the backup: only the pattern finds it later.
    boto(&["delete", &bucket, &mine[2]]);

    let app = c.conninfo_db("app");
    let erase = |extra: &[&str]| {
        let mut args = vec![
            "erase",
            SUBJECT,
            "--reason",
            "request 2026-119",
            "--db",
            &app,
        ];
        args.extend_from_slice(extra);
        lb_cfg(&args)
    };
    let dry = erase(&["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.json()["objects"], 3, "{}", dry.stdout);
    let keys = |b: &str| -> Vec<String> { serde_json::from_str(&boto(&["keys", b])).unwrap() };
    assert_eq!(keys(&bucket).len(), 5, "a dry run deletes nothing");
    let done = erase(&[]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    let done = done.json();
    assert_eq!(
        (done["objects"].clone(), done["rows"].clone()),
        (3.into(), 1.into()),
        "{done}"
    );
    let mut live = keys(&bucket);
    live.sort();
    assert_eq!(
        live,
        others
            .iter()
            .rev()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );

    // A restore of the snapshot from before: the subject's objects stay out,
    // the one the user had deleted too; everyone else's come back.
    let restored = fresh_bucket(&env, "erasure-restored");
    let to = format!("s3://{restored}");
    let out = lb_cfg(&[
        "--source", "media", "restore", "bucket", "latest", "--to", &to,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["erased"]["objects"], 4, "{report}");
    assert_eq!(report["erased"]["found"], 1, "{report}");
    assert_eq!(report["summary"]["written"], 2, "{report}");
    let mut back = keys(&restored);
    back.sort();
    assert_eq!(back, live);
    // Into a directory the same.
    let dir = env.path().join("restored-dir");
    let out = lb_cfg(&[
        "--source",
        "media",
        "restore",
        "bucket",
        "latest",
        "--to",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dir_digest(&dir).len(), 2);
    // A drill restores and compares without them.
    let drill = lb_cfg(&["--source", "media", "drill"]);
    assert_eq!(drill.code, 0, "{}\n{}", drill.stdout, drill.stderr);
    let drill = drill.json();
    assert_eq!(drill["ok"], true, "{drill}");
    assert!(
        drill
            .to_string()
            .contains("4 object(s) of 1 erased subject(s) left out"),
        "{drill}"
    );
    // Skipping the ledger brings them back (and says so).
    let skipped = fresh_bucket(&env, "erasure-skipped");
    let to = format!("s3://{skipped}");
    let out = lb_cfg(&[
        "--source",
        "media",
        "restore",
        "bucket",
        "latest",
        "--to",
        &to,
        "--skip-erasures",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("come back"), "{}", out.stderr);
    assert_eq!(keys(&skipped).len(), 6);

    // Decrypted, neither the ledger nor the audit log names the subject.
    for what in [&["erasures"][..], &["audit"][..]] {
        let out = lb_cfg(what);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(!out.stdout.contains(SUBJECT), "{what:?}: {}", out.stdout);
    }
    let ledger = lb_cfg(&["erasures"]).json();
    assert_eq!(ledger["entries"][0]["buckets"][0]["objects"], 2, "{ledger}");
    assert_eq!(
        ledger["entries"][0]["buckets"][1]["hashes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The subject's report: the one backup from before the erasure still
    // holds its objects, until a date the retention policy gives.
    let report = lb_cfg(&["erasures", "--subject", SUBJECT]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    let report = report.json();
    assert_eq!(report["entries"], serde_json::json!([1]), "{report}");
    assert_eq!(report["backups"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["backups"][0]["snapshot"], before.json()["id"]);
    let last = report["last_expiry"].as_str().unwrap();
    assert!(last > report["erased_at"].as_str().unwrap(), "{report}");
    // A subject never erased: every retained backup may hold it.
    let other = lb_cfg(&["erasures", "--subject", "other"]).json();
    assert!(other["erased_at"].is_null() && other["backups"].as_array().unwrap().len() == 1);

    // The compliance report: the erasure and the restores that re-applied
    // it (the two restores and the drill), and the one that skipped it.
    let out = lb_cfg(&["erasures", "--compliance"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let compliance = out.json();
    let replays: Vec<&str> = compliance["erasures"][0]["replays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        replays,
        ["restore bucket", "restore bucket", "drill"],
        "{compliance}"
    );
    assert_eq!(
        compliance["skipped"][0]["not_applied"], "skipped",
        "{compliance}"
    );
    assert!(
        compliance["repository"]["encryption"]
            .as_str()
            .unwrap()
            .contains("AES-256-GCM")
    );
    assert!(!compliance.to_string().contains(SUBJECT));
    let text = env.run(&["--config", cfg, "erasures", "--compliance"]);
    assert!(
        text.stdout.contains("re-applied by drill"),
        "{}",
        text.stdout
    );
    eprintln!("{}", text.stdout);
    let text = env.run(&["--config", cfg, "erasures", "--subject", SUBJECT]);
    eprintln!("{}", text.stdout);

    // Rules that cannot find anything are refused before anything is
    // recorded or deleted.
    for (rule, says) in [
        ("source = \"media\"\nkey = \"users/*\"", "no {subject}"),
        (
            "source = \"nope\"\nkey = \"u/{subject}/**\"",
            "names source \"nope\"",
        ),
        ("source = \"media\"", "give either `key`"),
    ] {
        let text = std::fs::read_to_string(&config).unwrap();
        let bad = env.path().join("bad.toml");
        let cut = text.find("[[erasure]]").unwrap();
        std::fs::write(
            &bad,
            format!("{}[[bucket_erasure]]\n{rule}\n", &text[..cut]),
        )
        .unwrap();
        let out = env.run(&[
            "--config",
            bad.to_str().unwrap(),
            "erase",
            "other",
            "--reason",
            "r",
        ]);
        assert_eq!(out.code, 2, "{rule}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{rule}: {}", out.stderr);
    }
    assert_eq!(
        lb_cfg(&["erasures"]).json()["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(keys(&bucket).len(), 2);
}
