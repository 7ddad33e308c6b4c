//! Restore drills, `drills`, `status` and `recover` on throwaway clusters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::pg::{Cluster, base_backup, free_port, give_to_postgres};
use common::{Env, Out};

const GOOD_CHECKS: &str = r#"
[[check]]
name = "orders exist"
sql = "SELECT count(*) FROM orders"
min = 1
[[check]]
name = "recent orders"
sql = "SELECT max(at) FROM orders"
max_age = "24h"
"#;

fn shop(env: &Env) -> Cluster {
    let c = Cluster::new(env, "live");
    c.psql(
        "CREATE TABLE orders (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), item text);\
         INSERT INTO orders (item) SELECT 'o' || g || repeat('x', 200) FROM generate_series(1, 500) g;\
         CREATE INDEX ON orders (item);\
         CREATE TABLE customers (id int PRIMARY KEY, name text);\
         INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 40) g;",
    );
    c
}

/// The shop, a base backup of it, then 25 more orders, archived: 525 rows
/// to recover, 25 of them only from the WAL.
fn shop_archived_after_a_base_backup(env: &Env) -> Cluster {
    let c = shop(env);
    base_backup(env, &c);
    c.psql("INSERT INTO orders (item) SELECT 'late' || g FROM generate_series(1, 25) g");
    c.archive_now();
    c
}

fn config(env: &Env, name: &str, text: &str) -> String {
    let p = env.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn drill(env: &Env, cfg: &str, extra: &[&str]) -> Out {
    let mut args = vec!["--json", "--config", cfg, "drill"];
    args.extend_from_slice(extra);
    env.run(&args)
}

/// Asserts the drill's scratch cluster is gone.
fn assert_scratch_removed(r: &serde_json::Value) {
    let dir = r["scratch_dir"].as_str().expect("a scratch directory");
    assert!(dir.contains("lifeboat-drill-"), "{dir}");
    assert!(!Path::new(dir).exists(), "{dir} is left behind");
}

#[test]
fn logical_drills_pass_fail_on_checks_and_targets_and_are_listed() {
    let env = Env::fs();
    env.init();
    let c = shop(&env);
    env.ok(&["backup", "postgres", "--logical", "--db", &c.conninfo()]);
    let cfg = config(&env, "good.toml", GOOD_CHECKS);

    // A good backup passes, with its RTO and the row counts compared.
    let md = env.path().join("drill.md");
    let out = drill(&env, &cfg, &["latest", "--report", md.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["source"], "postgres-logical");
    assert!(r["rto"]["seconds"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["rto"]["met"], true);
    assert!(r["rpo"]["seconds"].as_f64().unwrap() < 600.0, "{r}");
    let orders = r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.orders")
        .unwrap();
    assert_eq!(orders["found"], 500);
    assert_eq!(orders["expected"], 500);
    assert!(
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true)
    );
    let steps: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["restore", "row counts", "pg_amcheck", "checks", "clean up"]
    );
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.starts_with("# Restore drill passed"), "{text}");
    assert!(text.contains("| public.orders | 500 | 500 |"), "{text}");
    assert_scratch_removed(&r);

    // A failing user check: exit 1, the check named.
    let bad = config(
        &env,
        "bad.toml",
        &format!(
            "{GOOD_CHECKS}\n[[check]]\nname = \"big spender\"\nsql = \"SELECT count(*) FROM orders\"\nmin = 1000\n"
        ),
    );
    let out = drill(&env, &bad, &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("check big spender returned 500"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("500"), "{}", out.stderr);

    // A tiny RTO target: the drill fails with both figures in the message.
    let tiny = config(
        &env,
        "tiny.toml",
        &format!("[targets]\nrto = \"1ms\"\n{GOOD_CHECKS}"),
    );
    let out = drill(&env, &tiny, &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["rto"]["met"], false, "{r}");
    assert!(
        out.stderr.contains("RTO")
            && out.stderr.contains("misses the target 1ms (")
            && out.stderr.contains("s > 0.001s)"),
        "{}",
        out.stderr
    );

    // Into an empty staging database instead of a scratch cluster.
    c.psql("CREATE DATABASE staging");
    let staging = c.conninfo().replace("dbname=postgres", "dbname=staging");
    let out = drill(&env, &cfg, &["latest", "--db", &staging]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert!(
        r["restored_into"].as_str().unwrap().contains("staging"),
        "{r}"
    );
    assert!(r["scratch_dir"].is_null(), "{r}");
    assert_eq!(c.psql_db("staging", "SELECT count(*) FROM orders"), "500");

    // The four reports are kept in the repository, newest last.
    let out = env.ok(&["--json", "drills"]);
    let list = out.json()["drills"].as_array().unwrap().clone();
    assert_eq!(list.len(), 4);
    assert_eq!(
        list.iter()
            .map(|d| d["ok"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [true, false, false, true]
    );
    let out = env.ok(&["drills"]);
    assert!(
        out.stdout.contains("passed") && out.stdout.contains("FAILED"),
        "{}",
        out.stdout
    );

    // A damaged report is named, and the others are still listed.
    let damaged = common::objects(&env.repo_dir(), "reports").remove(0);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    let v = env.ok(&["--json", "drills"]).json();
    assert_eq!(v["drills"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["unreadable"].as_array().unwrap().len(), 1, "{v}");
    let out = env.ok(&["drills"]);
    assert!(out.stderr.contains("cannot be read"), "{}", out.stderr);
    c.stop();
}

#[test]
fn a_drill_of_a_backup_with_a_corrupted_pack_fails_and_names_it() {
    let env = Env::fs();
    env.init();
    let c = shop(&env);
    let snap = env
        .ok(&[
            "--json",
            "backup",
            "postgres",
            "--logical",
            "--db",
            &c.conninfo(),
        ])
        .json();
    c.stop();
    // Damage one pack in its middle: the largest, which holds the table data.
    let repo = env.repo_dir();
    let p = common::packs(&repo)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let pack_name = p.file_name().unwrap().to_str().unwrap().to_string();
    let cfg = config(&env, "good.toml", GOOD_CHECKS);
    let id = snap["id"].as_str().unwrap();
    let out = drill(&env, &cfg, &[id]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["ok"], false);
    assert_eq!(r["steps"][0]["name"], "restore");
    assert_eq!(r["steps"][0]["ok"], false, "{r}");
    assert!(out.stderr.contains("restore:"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&pack_name),
        "the damaged pack is named: {}",
        out.stderr
    );
    assert!(r["rto"].is_null(), "no RTO for a restore that failed: {r}");
}

#[test]
fn a_physical_drill_recovers_the_archive_and_measures_rpo() {
    let env = Env::fs();
    env.init();
    let c = shop_archived_after_a_base_backup(&env);
    let cfg = config(
        &env,
        "phys.toml",
        &format!(
            "{GOOD_CHECKS}\n[[check]]\nname = \"late orders replayed\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \"525\"\ndatabase = \"postgres\"\n"
        ),
    );
    let out = drill(&env, &cfg, &["latest"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["source"], "postgres");
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["rpo"]["seconds"].as_f64().unwrap() < 3600.0, "{r}");
    assert!(
        r["steps"][2]["detail"]
            .as_str()
            .unwrap()
            .contains("no corruption"),
        "{r}"
    );
    assert_scratch_removed(&r);
    // A random backup (there is one) recovers to its own end; a staging
    // database cannot take a physical backup.
    let out = drill(&env, &cfg, &["random"]);
    let r = out.json();
    assert_eq!(r["source"], "postgres", "{r}");
    assert_eq!(r["steps"][0]["ok"], true, "{r}");
    let out = drill(&env, &cfg, &["latest", "--db", &c.conninfo()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("physical base backup"),
        "{}",
        out.stderr
    );
    // The source keeps running, untouched, and was not archived into by the drill.
    assert_eq!(c.psql("SELECT count(*) FROM orders"), "525");
    c.stop();
}

#[test]
fn status_turns_overdue_for_an_old_backup_and_a_missing_check() {
    let env = Env::fs();
    env.init();
    let data = env.path().join("etc");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("app.env"), "A=1\n").unwrap();
    let old = (chrono::Utc::now() - chrono::Duration::days(3))
        .format("%Y-%m-%d %H:%M:%SZ")
        .to_string();
    env.ok(&["backup", "files", data.to_str().unwrap(), "--time", &old]);

    let out = env.run(&["--json", "status"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let s = out.json();
    assert_eq!(s["ok"], false);
    let overdue = s["overdue"].to_string();
    assert!(overdue.contains("backup of"), "{overdue}");
    assert!(overdue.contains("3d 0h old"), "{overdue}");
    assert!(
        overdue.contains("integrity check: none recorded"),
        "{overdue}"
    );
    let out = env.run(&["status"]);
    assert!(out.stdout.contains("OVERDUE"), "{}", out.stdout);
    // Bad input: nothing to drill, no such snapshot, a wrong passphrase.
    let out = env.run(&["drill"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no PostgreSQL or bucket backup"),
        "{}",
        out.stderr
    );
    let out = env.run(&["drill", "0badc0de"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = env.run_with(&[("LIFEBOAT_PASSWORD", "wrong")], &["status"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let bad = config(&env, "bad.toml", "[targets]\nrto = \"soon\"\n");
    let out = env.run(&["--config", &bad, "status"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("rto"), "{}", out.stderr);

    // A fresh backup and a check clear it; a tighter RPO makes it overdue again.
    env.ok(&["backup", "files", data.to_str().unwrap()]);
    env.ok(&["check", "--read-data"]);
    let out = env.run(&["--json", "status"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.json()["check"]["ok"], true);
    let cfg = config(&env, "t.toml", "[targets]\nrpo = \"1s\"\n");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = env.run(&["--json", "--config", &cfg, "status"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
}

fn recovery_dir(env: &Env, name: &str) -> PathBuf {
    let base = env.path().join(name);
    std::fs::create_dir_all(&base).unwrap();
    give_to_postgres(&base);
    base
}

/// `recover` into `base`/data on `port`, stopping writes on `db`; JSON output.
fn recover(env: &Env, cfg: &str, target: &str, base: &Path, db: &str, port: u16) -> Out {
    recover_as(env, &["--json"], cfg, target, base, db, port)
}

fn recover_as(
    env: &Env,
    output: &[&str],
    cfg: &str,
    target: &str,
    base: &Path,
    db: &str,
    port: u16,
) -> Out {
    let port = port.to_string();
    let data = base.join("data");
    let mut args = output.to_vec();
    args.extend_from_slice(&[
        "--config",
        cfg,
        "recover",
        "--target-time",
        target,
        "--target-dir",
        data.to_str().unwrap(),
        "--socket-dir",
        base.to_str().unwrap(),
        "--port",
        &port,
        "--db",
        db,
        "--grace",
        "1s",
        "--no-archive",
        "--timeout",
        "2min",
    ]);
    env.run(&args)
}

/// Relation files and control data of a data directory (the server
/// recycles WAL and rewrites statistics by itself).
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("base"), dir.join("global")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn recover_brings_back_a_dropped_table_and_stops_on_a_failed_check() {
    let env = Env::fs();
    env.init();
    let c = shop(&env);
    base_backup(&env, &c);
    c.psql("INSERT INTO orders (item) SELECT 'after' || g FROM generate_series(1, 10) g");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let before_accident =
        c.psql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || 'Z'");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    c.psql("DROP TABLE orders");
    c.archive_now();
    let switched = env.path().join("switched");
    let checks_with = |extra: &str| {
        format!(
            "{GOOD_CHECKS}{extra}\n[recover]\nswitch_command = \"echo $LIFEBOAT_RECOVERED_PORT > {}\"\n",
            switched.display()
        )
        .replace("max_age = \"24h\"", "max_age = \"1h\"")
    };

    // A check the copy cannot pass: stopped before switch-over.
    let bad = config(
        &env,
        "bad.toml",
        &checks_with(
            "\n[[check]]\nname = \"impossible\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \"7\"\ndatabase = \"postgres\"\n",
        ),
    );
    let b1 = recovery_dir(&env, "r1");
    let p1 = free_port();
    let out = recover(&env, &bad, &before_accident, &b1, &c.conninfo(), p1);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert!(
        r["outcome"]
            .as_str()
            .unwrap()
            .contains("before switch-over"),
        "{r}"
    );
    assert!(!switched.exists(), "no switch-over after a failed check");
    assert!(
        r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "switch over"),
        "{r}"
    );
    Cluster::existing(b1.join("data"), p1, b1.clone()).stop();
    // Writes stay stopped on the damaged database meanwhile.
    let denied = c.psql_result("CREATE TABLE x (a int)");
    assert!(denied.is_err(), "maintenance keeps new sessions read-only");
    env.ok(&["maintenance", "off", "--db", &c.conninfo()]);

    // The real recovery: rows back, switched over, old data directory untouched.
    let c_stop_listing = {
        c.stop();
        let l = listing(&c.data);
        c.start();
        l
    };
    let good_text = checks_with(
        "\n[[check]]\nname = \"rows back\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \"510\"\ndatabase = \"postgres\"\n",
    );
    // A customer erased after the accident: the recovery, to a moment
    // before the erasure, re-applies the ledger before the switch-over.
    let good = config(
        &env,
        "good.toml",
        &format!("{good_text}\n[[erasure]]\ntable = \"customers\"\nsubject = \"id\"\n"),
    );
    let erased = env.run(&[
        "--config",
        &good,
        "erase",
        "7",
        "--reason",
        "request 12",
        "--db",
        &c.conninfo(),
    ]);
    assert_eq!(erased.code, 0, "{}", erased.stderr);
    let b2 = recovery_dir(&env, "r2");
    let p2 = free_port();
    let out = recover(&env, &good, &before_accident, &b2, &c.conninfo(), p2);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let r = out.json();
    assert_eq!(r["ok"], true, "{r}");
    let names: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "stop writes",
            "restore",
            "pg_amcheck",
            "checks",
            "row counts",
            "switch over",
            "resume writes"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&switched).unwrap().trim(),
        p2.to_string()
    );
    let recovered = Cluster::existing(b2.join("data"), p2, b2.clone());
    assert_eq!(recovered.psql("SELECT count(*) FROM orders"), "510");
    assert_eq!(
        recovered.psql("SELECT count(*) || '/' || count(*) FILTER (WHERE id = 7) FROM customers"),
        "39/0"
    );
    recovered.psql("INSERT INTO orders (item) VALUES ('writes resumed')");
    recovered.stop();

    // Without a switch command the switch-over is printed for a person, and
    // the way to resume writes with it.
    env.ok(&["maintenance", "off", "--db", &c.conninfo()]);
    let manual = config(
        &env,
        "manual.toml",
        &good_text
            .lines()
            .take_while(|l| !l.starts_with("[recover]"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let b3 = recovery_dir(&env, "r3");
    let p3 = free_port();
    let out = recover_as(&env, &[], &manual, &before_accident, &b3, &c.conninfo(), p3);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("switch over by hand"), "{}", out.stdout);
    assert!(
        out.stdout.contains("next: switch over") && out.stdout.contains("maintenance off --db"),
        "{}",
        out.stdout
    );
    Cluster::existing(b3.join("data"), p3, b3.clone()).stop();
    // The damaged cluster still lacks the table; its files are as they were
    // (apart from what the server itself writes while running).
    assert!(c.psql_result("SELECT count(*) FROM orders").is_err());
    c.stop();
    let after: Vec<PathBuf> = listing(&c.data).into_iter().map(|(p, _)| p).collect();
    for (p, _) in &c_stop_listing {
        assert!(
            after.contains(p),
            "{} vanished from the old data directory",
            p.display()
        );
    }
    assert!(
        !after.iter().any(|p| p.ends_with("recovery.signal")),
        "recovery settings were written into the old data directory"
    );
}

/// `restore postgres latest --start` into `name`, then `verify-data` with
/// `cfg` against it, as the README's runbooks say.
fn restore_and_verify(env: &Env, cfg: &str, name: &str) -> Cluster {
    let base = recovery_dir(env, name);
    let port = free_port();
    env.ok(&[
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        base.join("data").to_str().unwrap(),
        "--start",
        "--port",
        &port.to_string(),
        "--socket-dir",
        base.to_str().unwrap(),
        "--no-archive",
        "--timeout",
        "2min",
    ]);
    let restored = Cluster::existing(base.join("data"), port, base.clone());
    let out = env.run(&["--config", cfg, "verify-data", "--db", &restored.conninfo()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    restored
}

#[test]
fn complete_loss_and_region_outage_runbooks_restore_and_verify() {
    let env = Env::fs();
    env.init();
    let c = shop_archived_after_a_base_backup(&env);
    let cfg = config(
        &env,
        "runbook.toml",
        &format!(
            "{GOOD_CHECKS}\n[[check]]\nname = \"every order\"\nsql = \"SELECT count(*) FROM orders\"\nexpect = \"525\"\n"
        ),
    );
    // A drill's report travels with the weekly offsite copy (own passphrase).
    env.ok(&["--config", &cfg, "drill", "latest"]);
    let replica_dir = env.path().join("offsite");
    let out = env.copy_init(replica_dir.to_str().unwrap(), "offsite passphrase");
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Its files are private to their owner: it belongs to the user that
    // restores from it (the postgres user runs restore_command).
    give_to_postgres(&replica_dir);

    // Complete loss: the server and its data directory are gone.
    c.stop();
    std::fs::remove_dir_all(&c.data).unwrap();
    let restored = restore_and_verify(&env, &cfg, "new-server");
    restored.stop();

    // Region outage: the primary repository is gone too; the copy restores.
    std::fs::remove_dir_all(env.repo_dir()).unwrap();
    let replica = Env {
        dir: tempfile::tempdir().unwrap(),
        repo: replica_dir.display().to_string(),
        vars: vec![("LIFEBOAT_PASSWORD".into(), "offsite passphrase".into())],
    };
    let drills = replica.ok(&["--json", "drills"]).json();
    assert_eq!(drills["drills"].as_array().unwrap().len(), 1, "{drills}");
    let restored = restore_and_verify(&replica, &cfg, "other-region");
    assert_eq!(restored.psql("SELECT count(*) FROM customers"), "40");
    restored.stop();
}
