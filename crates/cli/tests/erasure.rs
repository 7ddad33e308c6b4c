//! GDPR erasure: a subject erased from the live database stays erased in
//! every logical restore of an older backup; a rule that no longer fits the
//! schema fails the restore closed; a tampered ledger is caught; the
//! subject's key is never stored in the clear.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::Env;
use common::pg::{Cluster, logical_backup, logical_restore};

const SUBJECT: &str = "cust-7f3e9a";

fn config(env: &Env, subject_column: &str) -> PathBuf {
    let path = env.path().join(format!("lifeboat-{subject_column}.toml"));
    std::fs::write(
        &path,
        format!(
            "[[erasure]]\ntable = \"shop.order_lines\"\n\
             subject = \"(SELECT o.customer FROM shop.orders o WHERE o.id = order_id)\"\ndatabase = \"app\"\n\n\
             [[erasure]]\ntable = \"shop.orders\"\nsubject = \"customer\"\ndatabase = \"app\"\n\n\
             [[erasure]]\ntable = \"shop.customers\"\nsubject = \"{subject_column}\"\ndatabase = \"app\"\n"
        ),
    )
    .unwrap();
    path
}

fn rows_of(c: &Cluster, db: &str) -> String {
    c.psql_db(
        db,
        &format!(
            "SELECT (SELECT count(*) FROM shop.customers WHERE code = '{SUBJECT}') || '/' || \
             (SELECT count(*) FROM shop.orders WHERE customer = '{SUBJECT}') || '/' || \
             (SELECT count(*) FROM shop.order_lines) || '/' || (SELECT count(*) FROM shop.customers)"
        ),
    )
}

/// Creates the database `app` with the shop's three tables, then runs `rows`.
fn create_shop(c: &Cluster, rows: &str) {
    c.psql("CREATE DATABASE app");
    c.script(
        "app",
        &format!(
            "CREATE SCHEMA shop;
             CREATE TABLE shop.customers (code text PRIMARY KEY, email text);
             CREATE TABLE shop.orders (id int PRIMARY KEY, customer text REFERENCES shop.customers);
             CREATE TABLE shop.order_lines (order_id int REFERENCES shop.orders, item text);
             {rows}"
        ),
    );
}

/// `lifeboat --config CFG --json erase SUBJECT --reason … --db DB EXTRA…`.
fn erase(env: &Env, cfg: &Path, db: &str, subject: &str, extra: &[&str]) -> common::Out {
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--json",
        "erase",
        subject,
        "--reason",
        "request 2026-118",
        "--db",
        db,
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn cfg_args(cfg: &Path) -> Vec<String> {
    vec!["--config".into(), cfg.to_str().unwrap().into()]
}

#[test]
fn an_erased_subject_never_comes_back_from_a_restore() {
    let env = Env::fs();
    env.init();
    let c = Cluster::new(&env, "pg");
    create_shop(
        &c,
        &format!(
            "INSERT INTO shop.customers VALUES ('{SUBJECT}', 'subject@example.com'), ('other', 'o@example.com');
             INSERT INTO shop.orders VALUES (1, '{SUBJECT}'), (2, '{SUBJECT}'), (3, 'other');
             INSERT INTO shop.order_lines VALUES (1, 'a'), (1, 'b'), (2, 'c'), (3, 'd');"
        ),
    );
    let logical = logical_backup(&env, &c, "app", &[]);
    let base = common::pg::base_backup(&env, &c);
    let cfg = config(&env, "code");
    let cfg_a = cfg_args(&cfg);
    let cfg_s: Vec<&str> = cfg_a.iter().map(String::as_str).collect();
    let app = c.conninfo_db("app");

    // `lifeboat erase SUBJECT` on the live database, with these settings.
    let erase = |subject: &str, extra: &[&str]| erase(&env, &cfg, &app, subject, extra);

    // A dry run counts; the erasure deletes in the live database.
    let out = erase(SUBJECT, &["--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dry = out.json();
    assert_eq!(dry["rows"], 6, "{dry}");
    assert_eq!(rows_of(&c, "app"), "1/2/4/2");
    let out = erase(SUBJECT, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let done = out.json();
    assert_eq!(done["rows"], 6, "{done}");
    assert_eq!(done["entry"], 1);
    assert_eq!(rows_of(&c, "app"), "0/0/1/1");

    // The ledger names the subject only by its keyed hash.
    let ledger = env.ok(&["--json", "erasures"]).json();
    let text = ledger.to_string();
    assert_eq!(ledger["entries"].as_array().unwrap().len(), 1, "{ledger}");
    assert!(!text.contains(SUBJECT), "{text}");
    assert_eq!(ledger["entries"][0]["subject"], done["subject"]);
    for f in common::objects(&env.repo_dir(), "erasures") {
        let raw = std::fs::read(f).unwrap();
        assert!(!raw.windows(SUBJECT.len()).any(|w| w == SUBJECT.as_bytes()));
    }
    // Nor, decrypted, the audit log, which records the erase command line.
    let audit = env.ok(&["--json", "audit"]).stdout;
    assert!(audit.contains("\"erase\""), "{audit}");
    assert!(!audit.contains(SUBJECT), "{audit}");
    // The ledger travels with `copy`: a restore from the replica re-applies it too.
    let replica = Env::fs();
    let out = env.run_with(
        &[("LIFEBOAT_TO_PASSWORD", "replica passphrase")],
        &[
            "--json",
            "copy",
            "--to",
            &replica.repo,
            "--init",
            "--kdf-memory",
            "19",
            "--kdf-iterations",
            "2",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["erasures_copied"], 1, "{}", out.stdout);
    let replica = replica.with_var("LIFEBOAT_PASSWORD", "replica passphrase");
    let copied = replica.ok(&["--json", "erasures"]).json();
    assert_eq!(copied["entries"], ledger["entries"], "{copied}");

    // A restore of the backup taken before the erasure: the subject is gone.
    c.psql("CREATE DATABASE restored");
    let mut extra = vec!["--config", cfg.to_str().unwrap()];
    extra.extend(["--database", "app"]);
    let out = logical_restore(&env, &c, "restored", &extra);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["erased"]["found"], 1, "{report}");
    assert_eq!(rows_of(&c, "restored"), "0/0/1/1");
    // Closed to PUBLIC while loading, open again as before once re-erased.
    assert_eq!(
        c.psql("SELECT has_database_privilege('public', 'restored', 'CONNECT')"),
        "t"
    );

    // A point-in-time restore of the base backup taken before the erasure,
    // to after it: the ledger is re-applied before the server opens.
    c.archive_now();
    let (pitr, report) =
        common::pg::restore_and_start(&env, "pitr", &["--config", cfg.to_str().unwrap()]);
    assert_eq!(rows_of(&pitr, "app"), "0/0/1/1");
    assert_eq!(report["erased"][0][0], "app", "{report}");
    pitr.stop();

    // Drills of both backups from before the erasure re-apply the ledger in
    // their scratch clusters before checking them (the logical drill's row
    // counts expect the subject's rows gone) and pass.
    for (backup, says) in [
        (
            &logical,
            "erasure ledger re-applied: 1 of 1 erased subject(s) found, 6 row(s) removed",
        ),
        (&base, "erasure ledger re-applied to app before it opened"),
    ] {
        let id = backup["id"].as_str().unwrap();
        let out = env.run(&[
            "--json",
            "--config",
            cfg.to_str().unwrap(),
            "drill",
            &id[..8],
        ]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        assert_eq!(out.json()["ok"], true, "{}", out.stdout);
        assert!(out.stdout.contains(says), "{}", out.stdout);
    }

    // Restored with the ledger skipped, the subject is back, until the
    // ledger is re-applied by hand.
    c.psql("CREATE DATABASE skipped");
    let mut skip = extra.clone();
    skip.push("--skip-erasures");
    let out = logical_restore(&env, &c, "skipped", &skip);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("erased subjects in this backup come back"),
        "{}",
        out.stderr
    );
    assert_eq!(rows_of(&c, "skipped"), "1/2/4/2");
    let skipped = c.conninfo_db("skipped");
    let mut args = cfg_s.clone();
    args.extend([
        "--json",
        "erasures",
        "--replay",
        "--db",
        &skipped,
        "--database",
        "app",
    ]);
    let replayed = env.ok(&args).json();
    assert_eq!(replayed["found"], 1, "{replayed}");
    assert_eq!(rows_of(&c, "skipped"), "0/0/1/1");
    // A database no rule names holds no subject: left alone, no error.
    let other = c.conninfo_db("postgres");
    let mut args = cfg_s.clone();
    args.extend(["--json", "erasures", "--replay", "--db", &other]);
    let untouched = env.ok(&args).json();
    assert_eq!(untouched["found"], 0, "{untouched}");
    assert!(
        untouched["tables"].as_array().unwrap().is_empty(),
        "{untouched}"
    );

    // A rule that no longer fits the schema fails closed.
    c.psql("CREATE DATABASE stale");
    let stale = config(&env, "customer_code");
    let out = logical_restore(
        &env,
        &c,
        "stale",
        &["--config", stale.to_str().unwrap(), "--database", "app"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("does not fit the database"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("customer_code"), "{}", out.stderr);
    assert!(
        out.stderr.contains("closed to new connections"),
        "{}",
        out.stderr
    );
    assert_eq!(
        c.psql("SELECT datallowconn FROM pg_database WHERE datname = 'stale'"),
        "f"
    );

    // A tampered ledger is caught by `erasures`, `check` and restores.
    let entry = common::objects(&env.repo_dir(), "erasures").remove(0);
    let mut bytes = std::fs::read(&entry).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 1;
    std::fs::write(&entry, bytes).unwrap();
    let out = env.run(&["erasures"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("unreadable"), "{}", out.stderr);
    let out = env.run(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("erasure"), "{}", out.stderr);
    c.psql("CREATE DATABASE refused");
    let out = logical_restore(&env, &c, "refused", &extra);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("ledger is damaged"), "{}", out.stderr);
    assert!(out.stderr.contains("--skip-erasures"), "{}", out.stderr);
    // A damaged ledger takes no new entry, and nothing is deleted without one.
    let out = erase("other", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("ledger is damaged"), "{}", out.stderr);
    assert_eq!(
        c.psql_db(
            "app",
            "SELECT count(*) FROM shop.customers WHERE code = 'other'"
        ),
        "1"
    );
}

#[test]
fn a_physical_restore_whose_replay_fails_is_stopped_unseen() {
    let env = Env::fs();
    env.init();
    let c = Cluster::new(&env, "pg");
    create_shop(
        &c,
        &format!("INSERT INTO shop.customers VALUES ('{SUBJECT}', 's@example.com');"),
    );
    common::pg::base_backup(&env, &c);
    let cfg = config(&env, "code");
    let app = c.conninfo_db("app");
    let out = erase(&env, &cfg, &app, SUBJECT, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    c.archive_now();
    // The rules no longer fit: the restored server is stopped, never opened.
    let stale = config(&env, "customer_code");
    let (restored, out) =
        common::pg::try_restore_and_start(&env, "pitr", &["--config", stale.to_str().unwrap()]);
    let data = restored.data.clone();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("customer_code"), "{}", out.stderr);
    assert!(out.stderr.contains("was stopped"), "{}", out.stderr);
    assert!(
        !data.join("postmaster.pid").exists(),
        "the restored server still runs"
    );
}

/// `SELECT count(*)` of the subject's customer rows in `db`, as the login
/// role `reader`; `None` when the role cannot connect or read.
fn subject_rows_as_reader(c: &Cluster, db: &str) -> Option<String> {
    let out = c
        .client("psql")
        .args(["-U", "reader", "-X", "-q", "-At", "-d", db, "-c"])
        .arg(format!(
            "SELECT count(*) FROM shop.customers WHERE code = '{SUBJECT}'"
        ))
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn no_other_role_reads_an_erased_subject_while_a_restore_runs() {
    let env = Env::fs();
    env.init();
    let c = Cluster::new(&env, "pg");
    c.psql("CREATE ROLE reader LOGIN");
    create_shop(
        &c,
        &format!(
            "INSERT INTO shop.customers VALUES ('{SUBJECT}', 'subject@example.com');
             INSERT INTO shop.customers SELECT 'c' || g, g || '@example.com' FROM generate_series(1, 200000) g;
             INSERT INTO shop.orders VALUES (1, '{SUBJECT}');
             GRANT USAGE ON SCHEMA shop TO reader;
             GRANT SELECT ON ALL TABLES IN SCHEMA shop TO reader;"
        ),
    );
    logical_backup(&env, &c, "app", &[]);
    let cfg = config(&env, "code");
    let app = c.conninfo_db("app");
    let out = erase(&env, &cfg, &app, SUBJECT, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    c.psql("CREATE DATABASE restored");
    assert_eq!(subject_rows_as_reader(&c, "app").as_deref(), Some("0"));

    // A reader polls the database being restored the whole time.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (seen, out) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(rows) = subject_rows_as_reader(&c, "restored") {
                    seen.push(rows);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            seen
        });
        let out = logical_restore(
            &env,
            &c,
            "restored",
            &["--config", cfg.to_str().unwrap(), "--database", "app"],
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (watcher.join().unwrap(), out)
    });
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        seen.iter().all(|rows| rows == "0"),
        "the reader saw the erased subject during the restore: {seen:?}"
    );
    // Open again afterwards, without the subject.
    assert_eq!(subject_rows_as_reader(&c, "restored").as_deref(), Some("0"));
}
