//! Logical backups over SQL, restores into new databases and single
//! tables, and exports, on throwaway PostgreSQL clusters. The judge is
//! `pg_dump`: source and restored databases must dump identically.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::pg::Cluster;
use common::{Env, Out};

const RICH: &str = include_str!("fixtures/rich.sql");

fn setup(name: &str) -> (Env, Cluster) {
    let env = Env::fs();
    env.init();
    let c = Cluster::new(&env, name);
    (env, c)
}

fn conninfo_db(c: &Cluster, db: &str) -> String {
    c.conninfo_db(db)
}

/// Runs a SQL script with psql in `db`, stopping at the first error.
fn psql_script(c: &Cluster, db: &str, sql: &str) {
    c.script(db, sql);
}

/// `pg_dump` of a database (plain, with data), the judge of equality.
fn pg_dump(c: &Cluster, db: &str, extra: &[&str]) -> String {
    c.pg_dump(db, extra)
}

fn assert_same_dump(c: &Cluster, a: &str, b: &str) {
    let (da, db) = (pg_dump(c, a, &[]), pg_dump(c, b, &[]));
    common::pg::assert_same_text(a, &da, b, &db);
    assert!(da.len() > 1000, "suspiciously small dump of {a}");
}

fn logical_backup(env: &Env, c: &Cluster, db: &str, extra: &[&str]) -> serde_json::Value {
    common::pg::logical_backup(env, c, db, extra)
}

fn restore(env: &Env, c: &Cluster, db: &str, extra: &[&str]) -> Out {
    common::pg::logical_restore(env, c, db, extra)
}

fn rows(j: &serde_json::Value, table: &str) -> u64 {
    j["snapshot"]["logical"]["databases"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            format!(
                "{}.{}",
                t["schema"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            ) == table
        })
        .unwrap_or_else(|| panic!("no table {table} in {j}"))["rows"]
        .as_u64()
        .unwrap()
}

#[test]
fn rich_database_restores_and_exports_identically() {
    let (env, c) = setup("rich");
    c.psql("CREATE DATABASE app");
    psql_script(&c, "app", RICH);

    // Small parts force the big table through the page-range split.
    let backup = logical_backup(&env, &c, "app", &["--jobs", "3", "--split-size", "1M"]);
    assert_eq!(backup["snapshot"]["source"], "postgres-logical");
    assert_eq!(rows(&backup, "shop.customers"), 3002);
    assert_eq!(rows(&backup, "shop.orders"), 20001);
    assert_eq!(rows(&backup, "public.bulk"), 60000);
    assert_eq!(rows(&backup, "public.empty_cols"), 2);
    assert_eq!(
        rows(&backup, "shop.events_2026"),
        c.psql_db("app", "SELECT count(*) FROM shop.events_2026")
            .parse::<u64>()
            .unwrap()
    );
    let db = &backup["snapshot"]["logical"]["databases"][0];
    assert_eq!(db["large_objects"], 2);
    assert!(backup["snapshot"]["logical"]["roles"].as_bool().unwrap());
    let ls = env.ok(&["ls", "latest"]).stdout;
    assert!(
        ls.lines().filter(|l| l.contains("/tables/")).count() > 12,
        "the bulk table should be stored in parts:\n{ls}"
    );

    // Restore into a new database: pg_dump of both must be identical.
    c.psql("CREATE DATABASE copy");
    let out = restore(&env, &c, "copy", &["--jobs", "3"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let report = out.json();
    assert!(
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["restored"] == t["expected"])
    );
    assert_eq!(report["large_objects"], 2);
    assert_eq!(report["matviews"], 1);
    assert_same_dump(&c, "app", "copy");
    // Per-database settings come back too.
    assert_eq!(
        c.psql("SELECT array_to_string(setconfig, '|') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE datname = 'copy'"),
        c.psql("SELECT array_to_string(setconfig, '|') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE datname = 'app'")
    );
    // The restored database is sound.
    let amcheck = c
        .client("pg_amcheck")
        .args(["--install-missing", "--heapallindexed", "-d", "copy"])
        .output()
        .unwrap();
    assert!(
        amcheck.status.success(),
        "{}",
        String::from_utf8_lossy(&amcheck.stdout)
    );

    // Export as plain SQL; psql loads it without lifeboat.
    let dump = env.path().join("app.sql");
    env.ok(&[
        "export",
        "latest",
        "--format",
        "plain",
        "-o",
        dump.to_str().unwrap(),
    ]);
    common::pg::give_to_postgres(&dump);
    c.psql("CREATE DATABASE fromplain");
    let load = c
        .client("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "fromplain", "-f"])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert_same_dump(&c, "app", "fromplain");

    // Export in pg_dump's custom format; pg_restore loads it.
    let custom = env.path().join("app.dump");
    env.ok(&[
        "export",
        "latest",
        "--format",
        "custom",
        "-o",
        custom.to_str().unwrap(),
    ]);
    common::pg::give_to_postgres(&custom);
    c.psql("CREATE DATABASE fromcustom");
    let load = c
        .client("pg_restore")
        .args(["--exit-on-error", "-d", "fromcustom"])
        .arg(&custom)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    assert_same_dump(&c, "app", "fromcustom");

    // A second backup of an unchanged database adds almost nothing.
    let again = logical_backup(&env, &c, "app", &["--jobs", "3", "--split-size", "1M"]);
    let added = again["snapshot"]["summary"]["new_bytes"].as_u64().unwrap();
    let total = again["snapshot"]["summary"]["bytes"].as_u64().unwrap();
    assert!(
        added * 20 < total,
        "an unchanged database added {added} of {total} bytes"
    );
}

#[test]
fn backup_is_consistent_under_concurrent_transfers() {
    let (env, c) = setup("bank");
    c.psql("CREATE DATABASE bank");
    psql_script(
        &c,
        "bank",
        "CREATE TABLE a (id int PRIMARY KEY, balance bigint NOT NULL);
         CREATE TABLE b (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO a SELECT g, 1000 FROM generate_series(1, 20000) g;
         INSERT INTO b SELECT g, 1000 FROM generate_series(1, 20000) g;",
    );
    let total = 40000 * 1000;
    let script = env.path().join("transfer.sql");
    std::fs::write(
        &script,
        "\\set x random(1, 20000)\n\\set y random(1, 20000)\n\\set amt random(1, 100)\n\
         BEGIN;\nUPDATE a SET balance = balance - :amt WHERE id = :x;\n\
         UPDATE b SET balance = balance + :amt WHERE id = :y;\nCOMMIT;\n",
    )
    .unwrap();
    common::pg::give_to_postgres(&script);
    let mut load = c
        .client("pgbench")
        .args(["-n", "-c", "4", "-T", "20", "-f"])
        .arg(&script)
        .arg("bank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let mut backups = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(12) {
        logical_backup(&env, &c, "bank", &["--jobs", "2", "--split-size", "1M"]);
        backups += 1;
    }
    assert!(
        load.try_wait().unwrap().is_none(),
        "the transfer load ended before the backups"
    );
    let moved = c.psql_db("bank", "SELECT sum(balance) FROM a");
    assert_ne!(moved, "20000000", "the workload did not run");
    load.wait().unwrap();
    c.psql("CREATE DATABASE restored");
    let out = restore(&env, &c, "restored", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let sum: i64 = c
        .psql_db(
            "restored",
            "SELECT (SELECT sum(balance) FROM a) + (SELECT sum(balance) FROM b)",
        )
        .parse()
        .unwrap();
    assert_eq!(
        sum, total,
        "the restored total is off after {backups} backups under load"
    );
}

/// Listens on 127.0.0.1 with password authentication (scram) for TCP.
fn with_passwords(c: &Cluster) -> String {
    c.stop();
    let hba = c.data.join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all all 127.0.0.1/32 scram-sha-256\n{text}"),
    )
    .unwrap();
    let conf = c.data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\nlisten_addresses = '127.0.0.1'\n");
    std::fs::write(&conf, text).unwrap();
    c.start();
    format!("host=127.0.0.1 port={}", c.port)
}

#[test]
fn unprivileged_role_backs_up_and_one_table_comes_back() {
    let (env, c) = setup("roles");
    c.psql("CREATE DATABASE app");
    psql_script(&c, "app", RICH);
    c.psql("CREATE ROLE backup LOGIN PASSWORD 'backup-pw' NOSUPERUSER NOREPLICATION");
    // Read access table by table, as a managed service's users get it: no
    // pg_read_all_data, so pg_authid (role passwords) stays hidden.
    c.psql_db(
        "app",
        "GRANT USAGE ON SCHEMA shop, ext TO backup; \
         GRANT SELECT ON ALL TABLES IN SCHEMA shop, public TO backup; \
         GRANT SELECT ON ALL SEQUENCES IN SCHEMA shop, public TO backup",
    );
    let tcp = with_passwords(&c);

    let ci = format!("{tcp} user=backup password=backup-pw dbname=app");
    // Row-level security would hide rows from it: refused, naming the table.
    let out = env.run(&["--json", "backup", "postgres", "--logical", "--db", &ci]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("shop.orders") && out.stderr.contains("BYPASSRLS"),
        "{}",
        out.stderr
    );
    c.psql("ALTER ROLE backup BYPASSRLS");
    // Large objects are outside pg_read_all_data: refused, saying what to grant.
    let out = env.run(&["backup", "postgres", "--logical", "--db", &ci]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("GRANT SELECT ON LARGE OBJECT"),
        "{}",
        out.stderr
    );
    c.psql_db(
        "app",
        "GRANT SELECT ON LARGE OBJECT 424242, 424243 TO backup",
    );
    let out = env.run(&["--json", "backup", "postgres", "--logical", "--db", &ci]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let j = out.json();
    let skipped = j["snapshot"]["logical"]["skipped"].to_string();
    assert!(skipped.contains("role passwords"), "{skipped}");
    assert!(out.stderr.contains("role passwords"), "{}", out.stderr);
    assert_eq!(rows(&j, "shop.orders"), 20001);

    // An accident: one table emptied, another dropped.
    let orders_before = pg_dump(&c, "app", &["-t", "shop.orders"]);
    let vehicles_before = pg_dump(&c, "app", &["-t", "public.bulk"]);
    c.psql_db("app", "DELETE FROM shop.orders WHERE id % 2 = 0");
    c.psql_db("app", "DROP TABLE public.bulk");

    // Refused without --clean while the table holds rows; nothing changes.
    let out = restore(&env, &c, "app", &["--table", "shop.orders"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("already holds rows"), "{}", out.stderr);
    assert_eq!(
        c.psql_db("app", "SELECT count(*) FROM shop.orders"),
        "10001"
    );

    let out = restore(&env, &c, "app", &["--table", "shop.orders", "--clean"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["tables"][0]["restored"], 20001);
    // The trigger fires on COPY into an existing table: the audit grows, the orders are back.
    assert_eq!(pg_dump(&c, "app", &["-t", "shop.orders"]), orders_before);

    let out = restore(&env, &c, "app", &["--table", "bulk"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(pg_dump(&c, "app", &["-t", "public.bulk"]), vehicles_before);
    assert!(
        c.psql_db(
            "app",
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'bulk'"
        ) == "1"
    );

    // Restoring as the unprivileged role into a database it owns: objects
    // owned by roles it cannot become are each reported with the server's
    // reason, the rest is restored, and the restore ends as failed.
    c.psql("CREATE DATABASE mine OWNER backup");
    let ci = format!("{tcp} user=backup password=backup-pw dbname=mine");
    let out = env.run(&[
        "--json",
        "restore",
        "postgres",
        "--logical",
        "latest",
        "--db",
        &ci,
    ]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("not restored (owner): ALTER TABLE shop.customers OWNER TO app_owner")
            && out
                .stderr
                .contains("must be able to SET ROLE \"app_owner\"")
                | out.stderr.contains("must be member of role \"app_owner\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("the restore is incomplete"),
        "{}",
        out.stderr
    );
    let failures = out.json()["failures"].clone();
    assert!(
        failures
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"].as_str().unwrap().contains("owner")
                || f["message"].as_str().unwrap().starts_with("grants:")),
        "{failures:#}"
    );
    assert_eq!(
        c.psql_db("mine", "SELECT count(*) FROM shop.orders"),
        "20001"
    );
    // Opting out of owners and privileges, as with pg_restore: complete.
    c.psql("CREATE DATABASE mine2 OWNER backup");
    let ci = format!("{tcp} user=backup password=backup-pw dbname=mine2");
    let out = env.run(&[
        "restore",
        "postgres",
        "--logical",
        "latest",
        "--db",
        &ci,
        "--no-owner",
        "--no-privileges",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("objects match the backup"),
        "{}",
        out.stdout
    );
    assert_eq!(
        c.psql_db(
            "mine2",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'customers'"
        ),
        "backup"
    );
}

#[test]
fn bad_connections_and_targets_are_refused_cleanly() {
    let (env, c) = setup("bad");
    c.psql("CREATE DATABASE app");
    c.psql_db(
        "app",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)",
    );
    c.psql("CREATE ROLE alice LOGIN PASSWORD 'right'");
    let tcp = with_passwords(&c);
    let before = env
        .ok(&["--json", "snapshots"])
        .json()
        .as_array()
        .unwrap()
        .len();

    let closed = common::pg::free_port();
    let cases = [
        (
            format!("host=127.0.0.1 port={closed} user=alice dbname=app"),
            4,
            "cannot connect",
        ),
        (
            format!("{tcp} user=alice password=wrong dbname=app"),
            5,
            "password",
        ),
        (
            format!("{tcp} user=alice password=right dbname=nosuchdb"),
            6,
            "nosuchdb",
        ),
        (
            "host=/tmp port=notaport".to_string(),
            2,
            "invalid connection string",
        ),
    ];
    for (ci, code, text) in &cases {
        let out = env.run(&["backup", "postgres", "--logical", "--db", ci]);
        assert_eq!(out.code, *code, "{ci}: {}", out.stderr);
        assert!(out.stderr.contains(text), "{ci}: {}", out.stderr);
    }
    // A wrong passphrase with a good server (the repository is unlocked
    // while the server is reached): the passphrase's error and exit code.
    let ci = format!("{tcp} user=alice password=right dbname=app");
    let out = env.run_with(
        &[("LIFEBOAT_PASSWORD", "not the passphrase")],
        &["backup", "postgres", "--logical", "--db", &ci],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("wrong passphrase"), "{}", out.stderr);
    let after = env
        .ok(&["--json", "snapshots"])
        .json()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "a failed backup left a snapshot");

    logical_backup(&env, &c, "app", &[]);
    // Into a database that is not empty: refused before anything is written.
    c.psql("CREATE DATABASE busy");
    c.psql_db(
        "busy",
        "CREATE TABLE keep (x int); INSERT INTO keep VALUES (7)",
    );
    let out = restore(&env, &c, "busy", &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not empty"), "{}", out.stderr);
    assert_eq!(
        c.psql_db(
            "busy",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "1"
    );
    // Unknown tables and a target that does not exist.
    c.psql("CREATE DATABASE empty");
    let out = restore(&env, &c, "empty", &["--table", "nope"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no table"), "{}", out.stderr);
    let out = restore(&env, &c, "missing", &[]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    // A pack of the backup is gone: refused before the target is touched.
    let packs = common::packs(&env.repo_dir());
    let biggest = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .unwrap();
    std::fs::remove_file(biggest).unwrap();
    c.psql("CREATE DATABASE untouched");
    let out = restore(&env, &c, "untouched", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("missing from storage"),
        "{}",
        out.stderr
    );
    assert_eq!(
        c.psql_db(
            "untouched",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
    // A physical snapshot is not a logical backup.
    let out = env.run(&[
        "restore",
        "postgres",
        "--logical",
        "nothex",
        "--db",
        "host=/tmp",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

/// A certificate authority and a server certificate for "localhost".
fn make_certs(dir: &std::path::Path) {
    let sh = |script: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(
        "openssl req -new -x509 -days 2 -nodes -subj '/CN=lifeboat test CA' -keyout ca.key -out ca.crt 2>/dev/null \
        && openssl req -new -x509 -days 2 -nodes -subj '/CN=other CA' -keyout other.key -out other.crt 2>/dev/null \
        && openssl req -new -nodes -subj '/CN=localhost' -keyout server.key -out server.csr 2>/dev/null \
        && printf 'subjectAltName=DNS:localhost\\n' > san.ext \
        && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt 2>/dev/null \
        && chmod 600 server.key",
    );
    common::pg::give_to_postgres(dir);
}

#[test]
fn tls_modes_are_honoured() {
    let (env, c) = setup("tls");
    c.psql("CREATE DATABASE app");
    c.psql_db("app", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g");
    c.psql("CREATE ROLE alice LOGIN SUPERUSER PASSWORD 'pw'");
    let certs = env.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_certs(&certs);
    c.stop();
    let hba = c.data.join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("hostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n{text}"),
    )
    .unwrap();
    let conf = c.data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "\nlisten_addresses = '127.0.0.1'\nssl = on\nssl_cert_file = '{0}/server.crt'\nssl_key_file = '{0}/server.key'\n",
        certs.display()
    ));
    std::fs::write(&conf, text).unwrap();
    c.start();
    let ca = certs.join("ca.crt");
    let other = certs.join("other.crt");
    let base = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=alice password=pw",
        c.port
    );

    // verify-full against the right CA: backup and restore over TLS.
    let good = format!(
        "{base} dbname=app sslmode=verify-full sslrootcert={}",
        ca.display()
    );
    let out = env.run(&["backup", "postgres", "--logical", "--db", &good]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    c.psql("CREATE DATABASE copy");
    let target = format!(
        "{base} dbname=copy sslmode=verify-full sslrootcert={}",
        ca.display()
    );
    let out = env.run(&[
        "restore",
        "postgres",
        "--logical",
        "latest",
        "--db",
        &target,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(c.psql_db("copy", "SELECT count(*) FROM t"), "1000");

    // The URL form carries the same options.
    let url = format!(
        "postgresql://alice:pw@127.0.0.1:{}/app?sslmode=verify-ca&sslrootcert={}",
        c.port,
        ca.display()
    );
    let out = env.run(&["backup", "postgres", "--logical", "--db", &url]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // A certificate from another CA is refused; so is a name that does not match.
    let wrong_ca = format!(
        "{base} dbname=app sslmode=verify-ca sslrootcert={}",
        other.display()
    );
    let out = env.run(&["backup", "postgres", "--logical", "--db", &wrong_ca]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let by_ip = format!(
        "host=127.0.0.1 port={} user=alice password=pw dbname=app sslmode=verify-full sslrootcert={}",
        c.port,
        ca.display()
    );
    let out = env.run(&["backup", "postgres", "--logical", "--db", &by_ip]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    // Without TLS the server turns us away.
    let plain = format!("{base} dbname=app sslmode=disable");
    let out = env.run(&["backup", "postgres", "--logical", "--db", &plain]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("no encryption") || out.stderr.contains("rejects"),
        "{}",
        out.stderr
    );
    // verify-full without any root certificate is a set-up error, said plainly.
    let no_root = format!("{base} dbname=app sslmode=verify-full");
    let out = env.run(&["backup", "postgres", "--logical", "--db", &no_root]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("root certificate"), "{}", out.stderr);
}

#[test]
fn several_databases_and_partial_restores() {
    let (env, c) = setup("multi");
    for (db, n) in [("one", 10), ("two", 20)] {
        c.psql(&format!("CREATE DATABASE {db}"));
        c.psql_db(
            db,
            &format!(
                "CREATE SCHEMA s; CREATE TABLE s.t (id serial PRIMARY KEY, v text); \
                 CREATE TABLE public.u (id int); \
                 INSERT INTO s.t (v) SELECT 'v' || g FROM generate_series(1, {n}) g; \
                 INSERT INTO public.u SELECT generate_series(1, {n})"
            ),
        );
    }
    // A role whose search_path is empty (as some managed services set it).
    c.psql("ALTER ROLE postgres SET search_path = ''");
    let ci = conninfo_db(&c, "postgres");
    let j = env
        .ok(&[
            "--json",
            "backup",
            "postgres",
            "--logical",
            "--db",
            &ci,
            "--all-databases",
        ])
        .json();
    let names: Vec<&str> = j["snapshot"]["logical"]["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "postgres", "two"]);

    // A service file names the server; the connection string adds to it.
    let services = env.path().join("pg_service.conf");
    std::fs::write(
        &services,
        format!(
            "[mydb]\nhost={}\nport={}\nuser=postgres\ndbname=postgres\n",
            c.socket.display(),
            c.port
        ),
    )
    .unwrap();
    let out = env.run_with(
        &[("PGSERVICEFILE", services.to_str().unwrap())],
        &[
            "--json",
            "backup",
            "postgres",
            "--logical",
            "--db",
            "service=mydb dbname=one",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.json()["snapshot"]["logical"]["databases"][0]["name"],
        "one"
    );
    let out = env.run_with(
        &[("PGSERVICEFILE", services.to_str().unwrap())],
        &["backup", "postgres", "--logical", "--db", "service=nosuch"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("nosuch"), "{}", out.stderr);
    env.ok(&[
        "--json",
        "backup",
        "postgres",
        "--logical",
        "--db",
        &ci,
        "--all-databases",
    ]);

    // Several databases in the backup: the restore must be told which.
    c.psql("CREATE DATABASE target");
    let out = restore(&env, &c, "target", &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--database"), "{}", out.stderr);

    // Schema only, then data only.
    let out = restore(&env, &c, "target", &["--database", "two", "--schema-only"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(c.psql_db("target", "SELECT count(*) FROM s.t"), "0");
    let out = restore(&env, &c, "target", &["--database", "two", "--data-only"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(c.psql_db("target", "SELECT count(*) FROM s.t"), "20");
    assert_eq!(c.psql_db("target", "SELECT count(*) FROM public.u"), "20");
    // The serial's sequence continues after the restored rows.
    assert_eq!(c.psql_db("target", "SELECT nextval('s.t_id_seq')"), "21");

    // One table into a new database: its schema comes along.
    c.psql("CREATE DATABASE only_t");
    let out = restore(&env, &c, "only_t", &["--database", "one", "--table", "s.t"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(c.psql_db("only_t", "SELECT count(*) FROM s.t"), "10");
    assert_eq!(
        c.psql_db(
            "only_t",
            "SELECT count(*) FROM pg_indexes WHERE tablename = 't'"
        ),
        "1"
    );

    // One schema into a new database.
    c.psql("CREATE DATABASE only_s");
    let out = restore(&env, &c, "only_s", &["--database", "one", "--schema", "s"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(c.psql_db("only_s", "SELECT count(*) FROM s.t"), "10");
    assert_eq!(
        c.psql_db(
            "only_s",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'u'"
        ),
        "0"
    );
}

#[test]
fn an_old_pg_dump_is_refused_with_both_versions() {
    let (env, c) = setup("oldclient");
    let fake = env.path().join("oldbin");
    std::fs::create_dir_all(&fake).unwrap();
    let script = fake.join("pg_dump");
    std::fs::write(&script, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.22'\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ci = conninfo_db(&c, "postgres");
    let out = env.run(&[
        "backup",
        "postgres",
        "--logical",
        "--db",
        &ci,
        "--pg-bin",
        fake.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("version 12") && out.stderr.contains("version 15"),
        "{}",
        out.stderr
    );
}

/// Bytes of the repository's packs.
fn pack_bytes(env: &Env) -> u64 {
    common::packs(&env.repo_dir())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// On S3 a day's backup reads the previous backup's chunks back from the
/// bucket to build its deltas (the copy workers run on their own threads,
/// the reads on the backup's runtime and its connections), stores a small
/// part of a full copy, and restores identical.
#[test]
fn logical_backups_on_s3_store_deltas_that_restore() {
    let env = Env::s3("logical-deltas");
    env.init();
    let c = Cluster::new(&env, "s3deltas");
    c.psql("CREATE DATABASE bank");
    psql_script(
        &c,
        "bank",
        "CREATE TABLE accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
         INSERT INTO accounts SELECT g, 1 + g / 10000, 0, '' FROM generate_series(1, 200000) g;
         ALTER TABLE accounts SET (autovacuum_enabled = off);
         VACUUM ANALYZE accounts;",
    );
    let stored = |j: &serde_json::Value| j["snapshot"]["summary"]["stored_bytes"].as_u64().unwrap();
    let full = stored(&logical_backup(
        &env,
        &c,
        "bank",
        &["--jobs", "2", "--split-size", "2M"],
    ));
    psql_script(
        &c,
        "bank",
        "UPDATE accounts SET abalance = abalance + 1
           WHERE aid IN (SELECT 1 + floor(random() * 200000)::int FROM generate_series(1, 1000));
         VACUUM ANALYZE accounts;",
    );
    let ci = conninfo_db(&c, "bank");
    let out = env.ok(&[
        "--json",
        "backup",
        "postgres",
        "--logical",
        "--db",
        &ci,
        "--jobs",
        "2",
        "--split-size",
        "2M",
    ]);
    assert!(!out.stderr.contains("without deltas"), "{}", out.stderr);
    let day = stored(&out.json());
    assert!(
        day * 3 < full,
        "a day of scattered updates stored {day} of {full} bytes on S3"
    );
    c.psql("CREATE DATABASE restored");
    let out = restore(&env, &c, "restored", &["--jobs", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_dump(&c, "bank", "restored");
}

#[test]
fn scattered_updates_are_stored_as_deltas_that_restore_and_survive_prune() {
    let (env, c) = setup("deltas");
    c.psql("CREATE DATABASE bank");
    // pgbench-like accounts: blank-padded rows, about 10 MiB of COPY text.
    psql_script(
        &c,
        "bank",
        "CREATE TABLE accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
         INSERT INTO accounts SELECT g, 1 + g / 10000, 0, '' FROM generate_series(1, 100000) g;
         ALTER TABLE accounts SET (autovacuum_enabled = off);
         VACUUM ANALYZE accounts;",
    );
    // A fixed seed: the same scattered rows on every machine, so the
    // figures below do not depend on where random() happens to land; and
    // no autovacuum, whose timing on a busy machine moved updated rows to
    // other pages (and a day's growth from 13 to 50 KB).
    let churn = "SELECT setseed(0.42);
                 UPDATE accounts SET abalance = abalance + 1
                   WHERE aid IN (SELECT 1 + floor(random() * 100000)::int FROM generate_series(1, 500));
                 INSERT INTO accounts SELECT max_aid + g, 1, 0, '' FROM
                   (SELECT max(aid) AS max_aid FROM accounts) m, generate_series(1, 500) g;
                 VACUUM ANALYZE accounts;";
    let first = logical_backup(&env, &c, "bank", &[]);
    let full = pack_bytes(&env);
    let mut growth = Vec::new();
    for _ in 0..2 {
        psql_script(&c, "bank", churn);
        let before = pack_bytes(&env);
        let ci = conninfo_db(&c, "bank");
        let out = env.ok(&["backup", "postgres", "--logical", "--db", &ci]);
        assert!(!out.stderr.contains("without deltas"), "{}", out.stderr);
        growth.push(pack_bytes(&env) - before);
    }
    // Every chunk saw updates (0.5 % of rows, spread over about 10 chunks),
    // so whole chunks would store about a full copy each day; as deltas a
    // day stores a small fraction of it (about 15 %, schema and trees
    // included).
    for g in &growth {
        assert!(
            g * 3 < full,
            "a day of scattered updates stored {g} of {full} bytes ({growth:?})"
        );
    }
    c.psql("CREATE DATABASE restored");
    let out = restore(&env, &c, "restored", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_dump(&c, "bank", "restored");

    // The first backup's chunks are the bases: forgetting it and pruning
    // keeps them for the later backups, and check decodes every delta.
    env.ok(&["forget", "--keep-last", "2"]);
    env.ok(&["prune", "--grace", "0"]);
    let snapshots = env.ok(&["--json", "snapshots"]).json();
    assert!(
        !snapshots
            .to_string()
            .contains(first["id"].as_str().unwrap())
    );
    let check = env.run(&["--json", "check", "--read-data"]);
    assert_eq!(check.code, 0, "{}\n{}", check.stdout, check.stderr);
    c.psql("DROP DATABASE restored");
    c.psql("CREATE DATABASE restored");
    let out = restore(&env, &c, "restored", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_dump(&c, "bank", "restored");

    // A copy to another repository carries the bases with the deltas.
    let replica = Env::fs();
    let replica_password = replica.vars[0].1.clone();
    let out = env.copy_init(&replica.repo, &replica_password);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let check = replica.run(&["check", "--read-data"]);
    assert_eq!(check.code, 0, "{}\n{}", check.stdout, check.stderr);
    c.psql("CREATE DATABASE fromreplica");
    let out = restore(&replica, &c, "fromreplica", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_same_dump(&c, "bank", "fromreplica");

    // The snapshot's files (raw COPY text) restore too, deltas decoded.
    let files = env.path().join("files");
    env.ok(&[
        "restore",
        "files",
        "latest",
        "--target",
        files.to_str().unwrap(),
    ]);
    let copy_text = std::fs::read_dir(files.join("databases/bank/tables"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .fold(Vec::new(), |mut all, f| {
            all.extend(f);
            all
        });
    let lines = copy_text.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(
        lines.to_string(),
        c.psql_db("bank", "SELECT count(*) FROM accounts")
    );

    // Without its bases a delta cannot be decoded: check names the damage
    // and a restore fails cleanly into its empty target.
    // (The bases are whole chunks: the largest pack holds them.)
    std::fs::remove_file(&common::packs(&env.repo_dir())[0]).unwrap();
    let check = env.run(&["--json", "check", "--read-data"]);
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(
        check.stdout.contains("cannot be decoded") && check.stdout.contains("is missing"),
        "{}",
        check.stdout
    );
    c.psql("CREATE DATABASE again");
    let out = restore(&env, &c, "again", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("is missing from the repository"),
        "{}",
        out.stderr
    );

    // A later backup whose old chunks cannot be read back still succeeds:
    // deltas only save space, so it warns and stores whole chunks.
    psql_script(&c, "bank", churn);
    let ci = conninfo_db(&c, "bank");
    let out = env.run(&["backup", "postgres", "--logical", "--db", &ci]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("without deltas"), "{}", out.stderr);
}

#[test]
fn a_big_tables_indexes_are_built_while_the_other_tables_load() {
    let (env, c) = setup("early-indexes");
    c.psql("CREATE DATABASE shop");
    // About 40 MiB of COPY text in `orders` (over the 32 MiB from which a
    // table's indexes are built as soon as its rows are in), a small table
    // whose foreign key needs the big one's primary key, and an index
    // comment, which must follow its index.
    psql_script(
        &c,
        "shop",
        "CREATE TABLE orders (id int PRIMARY KEY, code text UNIQUE, body text);
         CREATE INDEX orders_body_prefix ON orders (left(body, 8));
         COMMENT ON INDEX orders_body_prefix IS 'prefix lookups';
         INSERT INTO orders SELECT g, 'c' || g, repeat(md5(g::text), 4)
           FROM generate_series(1, 280000) g;
         CREATE TABLE notes (id int PRIMARY KEY, order_id int REFERENCES orders (id), note text);
         CREATE INDEX notes_order ON notes (order_id);
         INSERT INTO notes SELECT g, g, 'note ' || g FROM generate_series(1, 1000) g;",
    );
    logical_backup(&env, &c, "shop", &["--jobs", "2"]);
    c.psql("CREATE DATABASE restored");
    let out = restore(&env, &c, "restored", &["--jobs", "2"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let j = out.json();
    // The big table's primary key, unique constraint and index; not the
    // small table's, which the post-data pass builds with its foreign key.
    assert_eq!(j["indexes_built_early"], 3, "{j}");
    assert_eq!(j["failures"].as_array().map(Vec::len), Some(0), "{j}");
    assert_same_dump(&c, "shop", "restored");
    // Each index, constraint and comment once: none twice, none missing.
    let count = |db: &str| {
        c.psql_db(
            db,
            "SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')::text || ' ' || \
             (SELECT count(*) FROM pg_constraint WHERE connamespace = 'public'::regnamespace)::text || ' ' || \
             coalesce(obj_description('orders_body_prefix'::regclass, 'pg_class'), 'none')",
        )
    };
    assert_eq!(count("restored"), count("shop"));
    assert_eq!(count("restored"), "5 4 prefix lookups");
}
