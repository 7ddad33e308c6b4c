//! `verify-data` and `maintenance on|off` against a throwaway cluster.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Env;
use common::pg::Cluster;

fn setup() -> (Env, Cluster) {
    let env = Env::fs();
    let c = Cluster::new(&env, "live");
    c.psql(
        "CREATE TABLE orders (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), item text);\
         INSERT INTO orders (item) SELECT 'o' || g FROM generate_series(1, 20) g;\
         CREATE TABLE schema_migrations (version text); INSERT INTO schema_migrations VALUES ('20261101')",
    );
    (env, c)
}

#[test]
fn verify_data_runs_the_configured_checks_and_names_what_fails() {
    let (env, c) = setup();
    let toml = env.path().join("lifeboat.toml");
    let good = r#"
[[check]]
name = "orders exist"
sql = "SELECT count(*) FROM orders"
min = 1
[[check]]
name = "recent orders"
sql = "SELECT max(at) FROM orders"
max_age = "24h"
[[check]]
name = "schema version"
sql = "SELECT version FROM schema_migrations"
expect = "20261101"
"#;
    std::fs::write(&toml, good).unwrap();
    let cfg = toml.to_str().unwrap();
    let out = env.ok(&[
        "--json",
        "--config",
        cfg,
        "verify-data",
        "--db",
        &c.conninfo(),
    ]);
    let v = out.json();
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["checks"][0]["value"], "20");

    // Old data, a wrong value and a broken query: each named, exit 1.
    c.psql("UPDATE orders SET at = now() - interval '3 days'");
    let bad = format!(
        "{good}\n[[check]]\nname = \"broken\"\nsql = \"SELECT nope FROM nowhere\"\nmin = 1\n"
    )
    .replace("expect = \"20261101\"", "expect = \"20261201\"");
    std::fs::write(&toml, bad).unwrap();
    let out = env.run(&["--config", cfg, "verify-data", "--db", &c.conninfo()]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("pass  orders exist: 20"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("FAIL  recent orders"), "{}", out.stdout);
    assert!(
        out.stdout.contains("72h old") || out.stdout.contains("3d old"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("FAIL  schema version: 20261101"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("FAIL  broken"), "{}", out.stdout);
    assert!(out.stdout.contains("does not exist"), "{}", out.stdout);
    assert!(
        out.stderr.contains("3 of 4 data check(s) failed"),
        "{}",
        out.stderr
    );

    // Bad input: no checks configured (2), a check without a condition (2),
    // an unreachable server (4).
    let out = env.run(&["verify-data", "--db", &c.conninfo()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    std::fs::write(&toml, "[[check]]\nname = \"x\"\nsql = \"SELECT 1\"\n").unwrap();
    let out = env.run(&["--config", cfg, "verify-data", "--db", &c.conninfo()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no condition"), "{}", out.stderr);
    std::fs::write(&toml, good).unwrap();
    let port = common::pg::free_port();
    let out = env.run(&[
        "--config",
        cfg,
        "verify-data",
        "--db",
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
    ]);
    assert_eq!(out.code, 4, "{}", out.stderr);
}

#[test]
fn maintenance_on_blocks_new_writes_and_ends_sessions_and_off_allows_them() {
    let (env, c) = setup();
    let marks = env.path().join("hooks.log");
    let toml = env.path().join("lifeboat.toml");
    std::fs::write(
        &toml,
        format!(
            "[maintenance]\non_command = \"echo on >> {0}\"\noff_command = \"echo off >> {0}\"\n",
            marks.display()
        ),
    )
    .unwrap();
    let cfg = toml.to_str().unwrap();
    // A session already connected, busy for a while.
    let busy = c
        .client("psql")
        .args(["-X", "-d", "postgres", "-c", "SELECT pg_sleep(60)"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let on = env
        .ok(&[
            "--json",
            "--config",
            cfg,
            "maintenance",
            "on",
            "--db",
            &c.conninfo(),
            "--grace",
            "1s",
        ])
        .json();
    assert_eq!(on["read_only"], true);
    assert!(on["sessions_ended"].as_u64().unwrap() >= 1, "{on}");
    let ended = busy.wait_with_output().unwrap();
    assert!(!ended.status.success(), "the busy session was not ended");
    // Running it again is harmless.
    env.ok(&["maintenance", "on", "--db", &c.conninfo(), "--grace", "0"]);

    // A new session cannot write.
    let write = c
        .client("psql")
        .args([
            "-X",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "INSERT INTO orders (item) VALUES ('during')",
        ])
        .output()
        .unwrap();
    assert!(!write.status.success());
    assert!(
        String::from_utf8_lossy(&write.stderr).contains("read-only transaction"),
        "{}",
        String::from_utf8_lossy(&write.stderr)
    );

    let off = env
        .ok(&[
            "--json",
            "--config",
            cfg,
            "maintenance",
            "off",
            "--db",
            &c.conninfo(),
        ])
        .json();
    assert_eq!(off["read_only"], false);
    c.psql("INSERT INTO orders (item) VALUES ('after')");
    assert_eq!(c.psql("SELECT count(*) FROM orders"), "21");
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "on\noff\n");
}
