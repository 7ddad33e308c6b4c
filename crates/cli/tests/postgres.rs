//! Physical backups, WAL archiving and point-in-time recovery on throwaway
//! PostgreSQL clusters started by the tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::pg::{
    Cluster, base_backup, free_port, give_to_postgres, restore_and_start, restore_dir,
};
use common::{Env, Out};

fn setup() -> Env {
    let env = Env::fs();
    env.init();
    env
}

#[test]
fn pitr_to_one_second_before_an_accidental_drop_brings_the_rows_back() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE orders (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), item text)");
    c.psql("INSERT INTO orders (item) SELECT 'first ' || g FROM generate_series(1, 500) g");
    let snap = base_backup(&env, &c);
    let pg = &snap["snapshot"]["postgres"];
    assert_eq!(pg["timeline"], 1);
    assert!(pg["data_checksums"].as_bool().unwrap());
    assert!(pg["start_lsn"].as_str().unwrap().contains('/'));
    let tables = pg["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "postgres")
        .map(|d| d["tables"].clone())
        .unwrap();
    assert!(
        tables
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "orders")
    );

    for _ in 0..5 {
        c.psql("INSERT INTO orders (item) SELECT 'later ' || g FROM generate_series(1, 100) g");
        std::thread::sleep(Duration::from_millis(200));
    }
    let committed = c.psql("SELECT count(*) FROM orders");
    assert_eq!(committed, "1000");
    std::thread::sleep(Duration::from_millis(1500));
    // The accident, at T.
    let t = c.psql("SELECT now()");
    c.psql("DROP TABLE orders");
    c.archive_now();
    let target = c.psql(&format!(
        "SELECT (timestamptz '{t}' - interval '1 second')::text"
    ));

    let (restored, report) = restore_and_start(&env, "restored", &["--target-time", &target]);
    assert_eq!(restored.psql("SELECT count(*) FROM orders"), committed);
    assert_eq!(
        restored.psql(&format!(
            "SELECT count(*) FROM orders WHERE at <= timestamptz '{target}'"
        )),
        committed
    );
    assert_eq!(report["reached"]["timeline"], 2, "{report}");
    assert!(report["reached"]["in_recovery"] == false);
    restored.amcheck();
    restored.stop();
    restored.checksums();
}

#[test]
fn pitr_to_an_xid_an_lsn_a_restore_point_and_again_on_the_new_timeline() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE t (v int)");
    base_backup(&env, &c);
    let xid = c.psql("BEGIN; INSERT INTO t VALUES (1); SELECT txid_current(); COMMIT;");
    c.psql("INSERT INTO t VALUES (2)");
    let lsn = c.psql("SELECT pg_current_wal_lsn()");
    c.psql("INSERT INTO t VALUES (3)");
    c.psql("SELECT pg_create_restore_point('before-4')");
    c.psql("INSERT INTO t VALUES (4)");
    c.archive_now();

    let rows = |cl: &Cluster| cl.psql("SELECT string_agg(v::text, ',' ORDER BY v) FROM t");
    // Restored copies do not archive their own timelines into the repository.
    let (by_xid, _) = restore_and_start(&env, "xid", &["--target-xid", &xid]);
    assert_eq!(rows(&by_xid), "1");
    assert_eq!(by_xid.psql("SHOW archive_mode"), "off");
    drop(by_xid);
    let (by_lsn, _) = restore_and_start(&env, "lsn", &["--target-lsn", &lsn, "--no-archive"]);
    assert_eq!(rows(&by_lsn), "1,2");
    drop(by_lsn);
    let (by_name, _) = restore_and_start(
        &env,
        "name",
        &["--target-name", "before-4", "--new-primary"],
    );
    assert_eq!(rows(&by_name), "1,2,3");
    assert_eq!(by_name.psql("SHOW archive_mode"), "on");

    // The new primary runs on timeline 2 and archives into the same
    // repository; recover again, along timeline 2.
    assert_eq!(
        by_name.psql("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"),
        "00000002"
    );
    by_name.psql("INSERT INTO t VALUES (100)");
    let lsn2 = by_name.psql("SELECT pg_current_wal_lsn()");
    by_name.psql("INSERT INTO t VALUES (200)");
    by_name.archive_now();
    let info = env.ok(&["--json", "info", "postgres"]).json();
    let timelines: Vec<u64> = info[0]["timelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["timeline"].as_u64().unwrap())
        .collect();
    assert!(timelines.contains(&2), "{info}");
    let (second, report) = restore_and_start(
        &env,
        "second",
        &["--target-timeline", "2", "--target-lsn", &lsn2],
    );
    assert_eq!(rows(&second), "1,2,3,100");
    assert_eq!(report["timeline"], 2);
    assert_eq!(report["reached"]["timeline"], 3, "{report}");
}

#[test]
fn full_restore_with_a_tablespace_matches_the_source_by_pg_dumpall() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    let ts = env.path().join("src").join("tablespace");
    std::fs::create_dir_all(&ts).unwrap();
    give_to_postgres(&ts);
    c.psql(&format!(
        "CREATE TABLESPACE extra LOCATION '{}'",
        ts.display()
    ));
    c.psql("CREATE DATABASE shop");
    c.psql_db(
        "shop",
        "CREATE TABLE customers (id int PRIMARY KEY, name text, meta jsonb);
         INSERT INTO customers SELECT g, 'customer ' || g, jsonb_build_object('n', g) FROM generate_series(1, 5000) g;
         CREATE TABLE events (id bigserial, payload bytea) TABLESPACE extra;
         INSERT INTO events (payload) SELECT decode(md5(g::text), 'hex') FROM generate_series(1, 5000) g;
         CREATE UNLOGGED TABLE scratch (x int); INSERT INTO scratch SELECT generate_series(1, 100);
         CREATE INDEX ON customers (name);",
    );
    // Files changed within a second of a backup's start are always read again.
    std::thread::sleep(Duration::from_millis(1100));
    let first = base_backup(&env, &c);
    assert_eq!(
        first["snapshot"]["postgres"]["tablespaces"][0]["name"],
        "extra"
    );
    // A second backup reads only what changed.
    c.psql_db(
        "shop",
        "UPDATE customers SET name = name || '!' WHERE id = 1",
    );
    std::thread::sleep(Duration::from_millis(1200));
    let second = base_backup(&env, &c);
    let s = &second["snapshot"]["summary"];
    assert!(s["files_unchanged"].as_u64().unwrap() > 100, "{s}");
    assert!(s["new_bytes"].as_u64().unwrap() < 8 << 20, "{s}");
    // Unlogged tables are not backed up (they come back empty, as after a
    // crash); empty this one in the source too so the dumps can be compared.
    c.psql_db("shop", "TRUNCATE scratch");
    c.archive_now();
    let source = c.dumpall();
    let oid = second["snapshot"]["postgres"]["tablespaces"][0]["oid"]
        .as_u64()
        .unwrap();
    let new_ts = env.path().join("restored-tablespace");
    std::fs::create_dir_all(&new_ts).unwrap();
    give_to_postgres(&new_ts);
    let map = format!("{oid}={}", new_ts.display());
    let (restored, _) = restore_and_start(&env, "restored", &["--tablespace-map", &map]);
    let dump = restored.dumpall();
    // Only the tablespace location may differ (and pg_dump's random
    // \restrict keys, new in every dump).
    let normalize = |d: &str| {
        d.lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace(&ts.display().to_string(), "TS")
            .replace(&new_ts.display().to_string(), "TS")
    };
    if normalize(&source) != normalize(&dump) {
        let (a, b) = (
            env.path().join("source.sql"),
            env.path().join("restored.sql"),
        );
        std::fs::write(&a, normalize(&source)).unwrap();
        std::fs::write(&b, normalize(&dump)).unwrap();
        let diff = std::process::Command::new("diff")
            .arg("-u")
            .arg(&a)
            .arg(&b)
            .output()
            .unwrap();
        panic!(
            "pg_dumpall of the restore differs from the source:\n{}",
            String::from_utf8_lossy(&diff.stdout)
        );
    }
    assert_eq!(
        restored.psql_db("shop", "SELECT count(*) FROM events"),
        "5000"
    );
    // Unlogged tables come back empty, as after a crash.
    assert_eq!(
        restored.psql_db("shop", "SELECT count(*) FROM scratch"),
        "0"
    );
    restored.amcheck();

    // A delta restore into the same (stopped) directory rewrites only what differs.
    restored.stop();
    let data = restored.data.to_str().unwrap().to_string();
    let out = env.run(&[
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        &data,
        "--tablespace-map",
        &map,
    ]);
    assert_eq!(out.code, 2, "non-empty target accepted: {}", out.stderr);
    assert!(out.stderr.contains("--delta"), "{}", out.stderr);
    let out = env
        .ok(&[
            "--json",
            "restore",
            "postgres",
            "latest",
            "--target-dir",
            &data,
            "--tablespace-map",
            &map,
            "--delta",
        ])
        .json();
    let files = &out["files"];
    assert!(
        files["bytes_written"].as_u64().unwrap() * 2 < files["bytes"].as_u64().unwrap(),
        "delta rewrote too much: {files}"
    );
}

#[test]
fn targets_outside_the_window_are_refused_before_anything_is_written() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
    let before = c.psql("SELECT (now() - interval '1 hour')::text");
    base_backup(&env, &c);
    c.psql("INSERT INTO t VALUES (2)");
    c.archive_now();
    let (data, _) = restore_dir(&env, "refused");
    for (flag, value, expect) in [
        ("--target-time", "2999-01-01 00:00:00", "recoverable window"),
        ("--target-time", before.as_str(), "recoverable window"),
        ("--target-lsn", "FF/0", "recoverable window"),
        ("--target-name", "no-such-point", "no restore point"),
    ] {
        let out = env.run(&[
            "restore",
            "postgres",
            "latest",
            "--target-dir",
            data.to_str().unwrap(),
            flag,
            value,
        ]);
        assert_eq!(out.code, 2, "{flag} {value}: {}", out.stderr);
        assert!(
            out.stderr.contains(expect),
            "{flag} {value}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("timeline 1: from"),
            "window not shown: {}",
            out.stderr
        );
        assert!(!data.exists(), "files were written for a refused target");
    }
    let out = env.run(&[
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        data.to_str().unwrap(),
        "--target-time",
        "yesterday",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

fn wal_copy(env: &Env, c: &Cluster, dir: &str) -> (String, PathBuf) {
    // A segment that is certainly complete: switch, then copy it before a
    // checkpoint recycles it.
    let name = c.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    c.psql("SELECT pg_switch_wal()");
    let copies = env.path().join(dir);
    std::fs::create_dir_all(&copies).unwrap();
    let copy = copies.join(&name);
    std::fs::copy(c.data.join("pg_wal").join(&name), &copy).unwrap();
    give_to_postgres(&copies);
    (name, copy)
}

#[test]
fn the_archive_contract() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS v");
    let (name, copy) = wal_copy(&env, &c, "copies");
    c.archive_now();
    let pgdata = c.data.to_str().unwrap().to_string();
    let pass = env.path().join("passphrase");
    let pass_s = pass.to_str().unwrap().to_string();
    let push = |path: &Path| -> Out {
        env.run_as_postgres(&[
            "--password-file",
            &pass_s,
            "wal",
            "push",
            path.to_str().unwrap(),
            "--pgdata",
            &pgdata,
        ])
    };

    // An identical segment pushed again: accepted, with a warning.
    let out = push(&copy);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("already archived"), "{}", out.stderr);

    // Different content under an archived name: refused, never overwritten.
    let mut bytes = std::fs::read(&copy).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xff;
    let altered_dir = env.path().join("altered");
    std::fs::create_dir_all(&altered_dir).unwrap();
    let altered = altered_dir.join(&name);
    std::fs::write(&altered, &bytes).unwrap();
    give_to_postgres(&altered_dir);
    let out = push(&altered);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("different content"), "{}", out.stderr);

    // A segment of another cluster: refused.
    let other = Cluster::new(&env, "other");
    let (_, foreign) = wal_copy(&env, &other, "foreign");
    let out = push(&foreign);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("belongs to the cluster"),
        "{}",
        out.stderr
    );

    // Fetch: the real segment comes back byte for byte.
    let dest = env.path().join("fetched");
    std::fs::create_dir_all(&dest).unwrap();
    give_to_postgres(&dest);
    let fetched = dest.join("RECOVERYXLOG");
    let out = env.run_as_postgres(&[
        "--password-file",
        &pass_s,
        "wal",
        "fetch",
        &name,
        fetched.to_str().unwrap(),
        "--pgdata",
        &pgdata,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(std::fs::read(&fetched).unwrap() == std::fs::read(&copy).unwrap());

    // A missing file: exit 1, quickly.
    let started = Instant::now();
    let out = env.run_as_postgres(&[
        "--password-file",
        &pass_s,
        "wal",
        "fetch",
        "0000000100000000000000FE",
        fetched.to_str().unwrap(),
        "--pgdata",
        &pgdata,
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Unreachable storage or a wrong passphrase: above 125, so recovery stops.
    let settings = env.path().join("dead.toml");
    std::fs::write(&settings, "[storage]\nretries = 1\n").unwrap();
    give_to_postgres(&settings);
    let dead = "s3://dead-bucket/x".to_string();
    let port = free_port().to_string();
    let out = env.run_with(
        &[
            ("AWS_ENDPOINT_URL", &format!("http://127.0.0.1:{port}")),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("LIFEBOAT_CONFIG", settings.to_str().unwrap()),
        ],
        &[
            "--repo",
            &dead,
            "wal",
            "fetch",
            &name,
            fetched.to_str().unwrap(),
            "--pgdata",
            &pgdata,
        ],
    );
    assert!(out.code > 125, "exit {}: {}", out.code, out.stderr);
    let out = env.run_with(
        &[("LIFEBOAT_PASSWORD", "wrong")],
        &[
            "wal",
            "fetch",
            &name,
            fetched.to_str().unwrap(),
            "--pgdata",
            &pgdata,
            "--prefetch",
            "0",
        ],
    );
    assert!(out.code > 125, "exit {}: {}", out.code, out.stderr);
    assert!(out.stderr.contains("wrong passphrase"), "{}", out.stderr);

    // A damaged WAL object: fetch stops recovery, check names the file.
    let object = common::objects(&env.repo_dir(), "wal")
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&format!("/{name}/")))
        .unwrap();
    let mut bytes = std::fs::read(&object).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&object, bytes).unwrap();
    let out = env.run(&[
        "wal",
        "fetch",
        &name,
        fetched.to_str().unwrap(),
        "--pgdata",
        &pgdata,
        "--prefetch",
        "0",
    ]);
    assert!(out.code > 125, "exit {}: {}", out.code, out.stderr);
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&name) && out.stderr.contains("WAL file is damaged"),
        "{}",
        out.stderr
    );
}

#[test]
fn archiving_keeps_up_under_pgbench() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    let pgbench = |args: &[&str]| {
        let mut cmd = common::pg::pg_command("pgbench");
        cmd.arg("-h")
            .arg(&c.socket)
            .arg("-p")
            .arg(c.port.to_string())
            .args(["-U", "postgres"])
            .args(args);
        cmd
    };
    let out = pgbench(&["-i", "-s", "5", "-q", "postgres"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sustained load until at least 12 segments of WAL were written (on a
    // busy machine pgbench writes less per second: it then runs longer),
    // watching the backlog of segments waiting to be archived.
    let start_lsn = c.psql("SELECT pg_current_wal_lsn()");
    let status_dir = c.data.join("pg_wal").join("archive_status");
    let mut worst = 0;
    let started = Instant::now();
    for _ in 0..6 {
        let mut bench = pgbench(&["-c", "4", "-j", "2", "-T", "30", "-n", "postgres"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        while bench.try_wait().unwrap().is_none() {
            let ready = std::fs::read_dir(&status_dir)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
                .count();
            worst = worst.max(ready);
            std::thread::sleep(Duration::from_millis(500));
            assert!(started.elapsed() < Duration::from_secs(400));
        }
        let written: f64 = c
            .psql(&format!(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{start_lsn}') / 16777216.0"
            ))
            .parse()
            .unwrap();
        if written >= 12.0 {
            break;
        }
    }
    c.archive_now();
    let archived: u64 = c
        .psql("SELECT archived_count FROM pg_stat_archiver")
        .parse()
        .unwrap();
    let failed = c.psql("SELECT failed_count FROM pg_stat_archiver");
    assert_eq!(
        failed,
        "0",
        "archive failures:\n{}",
        std::fs::read_to_string(&c.log).unwrap_or_default()
    );
    assert!(
        archived > 10,
        "only {archived} segments archived: the load was too light to tell"
    );
    assert!(worst <= 16, "the .ready backlog reached {worst} segments");
}

#[test]
fn a_base_backup_killed_part_way_leaves_everything_consistent() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    let mut init = common::pg::pg_command("pgbench");
    init.arg("-h")
        .arg(&c.socket)
        .arg("-p")
        .arg(c.port.to_string())
        .args(["-U", "postgres", "-i", "-s", "15", "-q"]);
    assert!(init.output().unwrap().status.success());
    let mut child = env
        .cmd()
        .args([
            "backup",
            "postgres",
            "--pgdata",
            c.data.to_str().unwrap(),
            "--db",
            &c.conninfo(),
        ])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while common::packs(&env.repo_dir()).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the backup made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // PostgreSQL ended backup mode with the session.
    let mut waited = 0;
    while c.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lifeboat'") != "0"
    {
        waited += 1;
        assert!(waited < 100, "the killed backup's session is still there");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!c.data.join("backup_label").exists());
    let check = env.ok(&["check"]);
    assert!(check.stdout.contains("0 errors"), "{}", check.stdout);
    base_backup(&env, &c);
    let check = env.ok(&["check", "--read-data"]);
    assert!(check.stdout.contains("0 errors"), "{}", check.stdout);
    c.archive_now();
    let (restored, _) = restore_and_start(&env, "restored", &[]);
    assert_eq!(
        restored.psql("SELECT count(*) FROM pgbench_accounts"),
        c.psql("SELECT count(*) FROM pgbench_accounts")
    );
}

#[test]
fn a_corrupt_page_is_reported_by_file_and_block() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql(
        "CREATE TABLE t AS SELECT g AS v, repeat('x', 100) AS pad FROM generate_series(1, 5000) g",
    );
    c.psql("CHECKPOINT");
    let rel = c.psql("SELECT pg_relation_filepath('t')");
    c.stop();
    // Flip a byte inside the second page's tuple data, as a failing disk would.
    let path = c.data.join(&rel);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8192 + 4000] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    c.start();
    let out = env.run(&[
        "--json",
        "backup",
        "postgres",
        "--pgdata",
        c.data.to_str().unwrap(),
        "--db",
        &c.conninfo(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("pgdata/{rel}: block 1 has a bad page checksum")),
        "{}",
        out.stderr
    );
    // The snapshot is still saved, with the failure recorded.
    let snap = out.json();
    assert_eq!(snap["snapshot"]["postgres"]["checksum_failures"], 1);
    assert_eq!(snap["problems"].as_array().map(Vec::len), Some(1));
}

#[test]
fn wal_outside_the_pitr_window_expires_and_the_window_still_restores() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE t (v int)");
    c.psql("INSERT INTO t VALUES (1)");
    let b1 = base_backup(&env, &c);
    c.psql("INSERT INTO t VALUES (2)");
    c.archive_now();
    let b2 = base_backup(&env, &c);
    let b2_stop = b2["snapshot"]["postgres"]["stop_time"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_secs(3));
    c.psql("INSERT INTO t VALUES (3)");
    c.archive_now();
    let b3 = base_backup(&env, &c);
    c.psql("INSERT INTO t VALUES (4)");
    c.archive_now();
    // Before forget, a point between the first two backups is recoverable.
    let before_b2 = c.psql(&format!(
        "SELECT (timestamptz '{b2_stop}' - interval '1 second')::text"
    ));
    let wal_before = common::objects(&env.repo_dir(), "wal").len();

    // A window that starts after the second backup and before the third:
    // the second is kept for it, the first goes with the WAL before it.
    let age: i64 = c
        .psql(&format!(
            "SELECT floor(extract(epoch FROM clock_timestamp() - timestamptz '{b2_stop}'))::int"
        ))
        .parse()
        .unwrap();
    let window = format!("{age}s");
    let dry = env
        .ok(&[
            "--json",
            "forget",
            "--keep-last",
            "1",
            "--pitr-window",
            &window,
            "--dry-run",
        ])
        .json();
    assert_eq!(common::objects(&env.repo_dir(), "wal").len(), wal_before);
    assert!(
        dry["wal"][0]["removed_files"].as_u64().unwrap() > 0,
        "{dry}"
    );
    let plan = env
        .ok(&[
            "--json",
            "forget",
            "--keep-last",
            "1",
            "--pitr-window",
            &window,
        ])
        .json();
    let kept: Vec<&str> = plan["sources"][0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        [b3["id"].as_str().unwrap(), b2["id"].as_str().unwrap()],
        "{plan}"
    );
    let decisions = plan["sources"][0]["snapshots"].as_array().unwrap();
    assert_eq!(decisions[1]["reasons"][0]["rule"], "pitr-window", "{plan}");
    assert!(
        decisions
            .iter()
            .any(|d| d["id"] == b1["id"] && d["keep"] == false)
    );
    let wal = &plan["wal"][0];
    assert_eq!(wal["base"], b2["id"], "{plan}");
    let removed = wal["removed_files"].as_u64().unwrap();
    assert!(removed > 0, "{plan}");
    assert_eq!(
        common::objects(&env.repo_dir(), "wal").len() as u64,
        wal_before as u64 - removed
    );
    let (before_start, after_start) = (
        wal["before"][0]["earliest"].as_str().unwrap(),
        wal["after"][0]["earliest"].as_str().unwrap(),
    );
    assert!(before_start < after_start, "{wal}");
    env.ok(&["prune", "--grace", "0"]);
    env.ok(&["check", "--read-data"]);
    let info = env.ok(&["--json", "info", "postgres"]).json();
    assert_eq!(
        info[0]["timelines"][0]["window"]["earliest"]
            .as_str()
            .unwrap(),
        after_start,
        "{info}"
    );

    // The oldest point of the window still restores, and so does the newest.
    let oldest = c.psql(&format!(
        "SELECT (timestamptz '{b2_stop}' + interval '1 second')::text"
    ));
    let (r, _) = restore_and_start(&env, "oldest", &["--target-time", &oldest, "--no-archive"]);
    assert_eq!(
        r.psql("SELECT string_agg(v::text, ',' ORDER BY v) FROM t"),
        "1,2"
    );
    r.stop();
    let (r, _) = restore_and_start(&env, "newest", &["--no-archive"]);
    assert_eq!(
        r.psql("SELECT string_agg(v::text, ',' ORDER BY v) FROM t"),
        "1,2,3,4"
    );
    r.stop();

    // The region-outage plan: a replica with its own passphrase holds the
    // base backups and the WAL, and recovers to the newest point on its own.
    let replica_dir = env.path().join("replica");
    let to_pass = [("LIFEBOAT_TO_PASSWORD", "offsite passphrase")];
    let copy_args = [
        "--json",
        "copy",
        "--to",
        replica_dir.to_str().unwrap(),
        "--kdf-memory",
        "19",
        "--kdf-iterations",
        "2",
    ];
    let mut first_args = copy_args.to_vec();
    first_args.push("--init");
    let first = env.run_with(&to_pass, &first_args);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let first = first.json();
    assert_eq!(first["snapshots_copied"], 2, "{first}");
    assert!(first["wal_copied"].as_u64().unwrap() > 0, "{first}");
    let again = env.run_with(&to_pass, &copy_args).json();
    assert_eq!(again["wal_copied"], 0, "{again}");
    assert_eq!(again["packs_copied"], 0, "{again}");
    // The replica's files are private to their owner: it belongs to the
    // user the restored server's restore_command runs as.
    give_to_postgres(&replica_dir);
    let replica = Env {
        dir: tempfile::tempdir().unwrap(),
        repo: replica_dir.display().to_string(),
        vars: vec![("LIFEBOAT_PASSWORD".into(), "offsite passphrase".into())],
    };
    let (r, _) = restore_and_start(&replica, "from-replica", &["--no-archive"]);
    assert_eq!(
        r.psql("SELECT string_agg(v::text, ',' ORDER BY v) FROM t"),
        "1,2,3,4"
    );
    r.amcheck();
    r.stop();
    // Just outside the window: refused, nothing written.
    let (data, _) = restore_dir(&env, "outside");
    let out = env.run(&[
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        data.to_str().unwrap(),
        "--target-time",
        &before_b2,
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("recoverable window"), "{}", out.stderr);
    assert!(!data.exists());
}

#[test]
fn scattered_updates_cost_block_deltas_and_the_incrementals_restore_whole() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    // Rows of hex digests and documents: they compress about 2x, so a
    // changed block stored whole costs half its size.
    c.psql(
        "CREATE TABLE tokens (id int PRIMARY KEY, digest text NOT NULL, doc jsonb NOT NULL);
         INSERT INTO tokens SELECT g, md5(g::text) || md5((g * 7)::text),
                jsonb_build_object('n', g, 'key', md5((g * 13)::text))
         FROM generate_series(1, 60000) g",
    );
    c.psql("VACUUM tokens");
    let heap: u64 = c.psql("SELECT pg_relation_size('tokens')").parse().unwrap();
    assert!(heap > 8 << 20, "{heap}");
    std::thread::sleep(Duration::from_millis(1100));
    base_backup(&env, &c);
    // The first backup's packs: the bases every later delta applies to.
    let first_packs = common::objects(&env.repo_dir(), "data/");
    for round in 1..=2 {
        // One row in a hundred, spread over every block of the table.
        c.psql(&format!(
            "UPDATE tokens SET doc = doc || jsonb_build_object('round', {round}) WHERE id % 100 = {round}"
        ));
        std::thread::sleep(Duration::from_millis(1100));
        let s = base_backup(&env, &c)["snapshot"]["summary"].clone();
        let stored = s["stored_bytes"].as_u64().unwrap();
        assert!(
            stored < heap / 8,
            "round {round}: {stored} bytes stored for a {heap}-byte table with 1 % of its rows updated: {s}"
        );
    }
    let report = env.ok(&["--json", "check", "--read-data"]).json();
    assert_eq!(report["findings"], serde_json::json!([]), "{report}");
    c.archive_now();
    let expected = c.psql("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM tokens t");
    let (restored, _) = restore_and_start(&env, "restored", &[]);
    assert_eq!(
        restored.psql("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM tokens t"),
        expected
    );
    restored.amcheck();
    restored.stop();
    restored.checksums();

    // With the bases damaged, a restore of the newest incremental fails
    // (exit 1, "damaged"), never applying a delta to wrong bytes.
    for pack in &first_packs {
        let mut bytes = std::fs::read(pack).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(pack, bytes).unwrap();
    }
    let (_, out) = common::pg::try_restore_and_start(&env, "damaged", &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);
}
