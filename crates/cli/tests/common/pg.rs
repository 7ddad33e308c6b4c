//! Throwaway PostgreSQL clusters for the tests: `initdb` into a temporary
//! directory owned by the postgres user, a free port, a socket directory of
//! their own, archiving into the test repository with `lifeboat wal push`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::Env;

/// Where PostgreSQL's programs are; the test command exports it.
pub fn pg_bin() -> PathBuf {
    PathBuf::from(std::env::var("LIFEBOAT_PG_BIN").expect(
        "LIFEBOAT_PG_BIN is not set: run the suite with scripts/test.sh, which installs PostgreSQL",
    ))
}

fn postgres_ids() -> (u32, u32) {
    lifeboat_postgres::server::user_ids("postgres").expect("no postgres user")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Hands `path` (recursively) to the postgres user when running as root.
pub fn give_to_postgres(path: &Path) {
    if !is_root() {
        return;
    }
    let (uid, gid) = postgres_ids();
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A command for PostgreSQL program `prog`, run as postgres when we are root.
pub fn pg_command(prog: &str) -> Command {
    let path = pg_bin().join(prog);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn run(mut c: Command) -> Output {
    let out = c.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        c,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Prepares `env` for clusters: the scratch directory belongs to postgres
/// (the archiver writes WAL into the repository as postgres) and the
/// passphrase is also in a file the archiver can read.
pub fn prepare(env: &Env) -> PathBuf {
    let pass = env.path().join("passphrase");
    std::fs::write(&pass, format!("{}\n", super::PASSWORD)).unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    give_to_postgres(env.path());
    pass
}

/// `backup postgres --pgdata` of `c` into `env`'s repository; the JSON result.
pub fn base_backup(env: &Env, c: &Cluster) -> serde_json::Value {
    env.ok(&[
        "--json",
        "backup",
        "postgres",
        "--pgdata",
        c.data.to_str().unwrap(),
        "--db",
        &c.conninfo(),
    ])
    .json()
}

/// A directory for a restored cluster (its parent belongs to postgres).
pub fn restore_dir(env: &Env, name: &str) -> (PathBuf, PathBuf) {
    let base = env.path().join(name);
    std::fs::create_dir_all(&base).unwrap();
    give_to_postgres(&base);
    (base.join("data"), base)
}

/// `restore postgres … --start`; returns the running cluster and the JSON report.
pub fn restore_and_start(env: &Env, name: &str, extra: &[&str]) -> (Cluster, serde_json::Value) {
    let (cluster, out) = try_restore_and_start(env, name, extra);
    assert_eq!(
        out.code, 0,
        "restore failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    (cluster, out.json())
}

/// `restore postgres … --start`, whatever its outcome: the cluster it
/// restored (running only if the restore succeeded) and the output.
pub fn try_restore_and_start(env: &Env, name: &str, extra: &[&str]) -> (Cluster, super::Out) {
    let (data, sock) = restore_dir(env, name);
    let port = free_port();
    let port_s = port.to_string();
    let mut args = vec![
        "--json",
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        data.to_str().unwrap(),
        "--start",
        "--port",
        &port_s,
        "--socket-dir",
        sock.to_str().unwrap(),
        "--timeout",
        "2min",
    ];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    (Cluster::existing(data, port, sock), out)
}

/// A running throwaway cluster.
pub struct Cluster {
    pub data: PathBuf,
    pub port: u16,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// The bootstrap superuser the client programs connect as.
    pub superuser: String,
}

impl Cluster {
    /// Creates and starts a cluster under `env`'s scratch directory that
    /// archives into `env`'s repository.
    pub fn new(env: &Env, name: &str) -> Self {
        Self::with(env, name, "postgres", "")
    }

    /// Like [`Cluster::new`], with another bootstrap superuser (as managed
    /// platforms have, where `postgres` is an ordinary role) and extra
    /// `postgresql.conf` lines.
    pub fn with(env: &Env, name: &str, superuser: &str, extra_conf: &str) -> Self {
        let pass = prepare(env);
        let base = env.path().join(name);
        std::fs::create_dir_all(&base).unwrap();
        give_to_postgres(&base);
        let data = base.join("data");
        let socket = base.clone();
        run({
            let mut c = pg_command("initdb");
            c.arg("-D")
                .arg(&data)
                .args([
                    "--data-checksums",
                    "--auth=trust",
                    "-U",
                    superuser,
                    "--no-instructions",
                ])
                .env("LC_ALL", "C.UTF-8");
            c
        });
        let port = free_port();
        let lb = env!("CARGO_BIN_EXE_lifeboat");
        let conf = format!(
            "\nport = {port}\nunix_socket_directories = '{}'\nlisten_addresses = ''\narchive_mode = on\n\
             archive_command = '{lb} --repo {} --password-file {} wal push %p'\nwal_level = replica\n\
             max_wal_size = '256MB'\nfsync = on\n{extra_conf}\n",
            socket.display(),
            env.repo,
            pass.display()
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&conf);
        std::fs::write(&conf_path, text).unwrap();
        let c = Cluster {
            log: base.join("server.log"),
            data,
            port,
            socket,
            superuser: superuser.to_string(),
        };
        c.start();
        c
    }

    /// Wraps an existing data directory (e.g. one restored with --start).
    pub fn existing(data: PathBuf, port: u16, socket: PathBuf) -> Self {
        Cluster {
            log: data.join("lifeboat-recovery.log"),
            data,
            port,
            socket,
            superuser: "postgres".into(),
        }
    }

    pub fn start(&self) {
        run({
            let mut c = pg_command("pg_ctl");
            c.arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(&self.log)
                .args(["-w", "start"]);
            c
        });
    }

    pub fn stop(&self) {
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]);
        let _ = c.stdin(Stdio::null()).output();
    }

    /// A client program (psql, pg_dumpall, pg_amcheck…) pointed at this server.
    pub fn client(&self, prog: &str) -> Command {
        let mut c = pg_command(prog);
        c.arg("-h")
            .arg(&self.socket)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", &self.superuser]);
        c
    }

    /// Connection string for lifeboat.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user={} dbname=postgres",
            self.socket.display(),
            self.port,
            self.superuser
        )
    }

    /// Runs SQL with psql in `db`; returns unaligned, tuples-only output.
    pub fn psql_db(&self, db: &str, sql: &str) -> String {
        self.psql_db_result(db, sql)
            .unwrap_or_else(|e| panic!("psql {sql:?} in {db} failed: {e}"))
    }

    pub fn psql(&self, sql: &str) -> String {
        self.psql_db("postgres", sql)
    }

    /// Runs SQL with psql in `postgres`; the error text when it fails.
    pub fn psql_result(&self, sql: &str) -> Result<String, String> {
        self.psql_db_result("postgres", sql)
    }

    /// Runs SQL with psql in `db`; the output, or the error text.
    pub fn psql_db_result(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut c = self.client("psql");
        c.args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            sql,
        ]);
        let out = c.stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs a SQL script with psql in `db`, stopping at the first error.
    pub fn script(&self, db: &str, sql: &str) {
        use std::io::Write;
        let mut child = self
            .client("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "psql script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_dump` of a database (plain, with data unless `extra` says
    /// otherwise), the judge of equality, without the `\restrict` lines
    /// that carry a random key per run (pg_dump 15.14 and later).
    pub fn pg_dump(&self, db: &str, extra: &[&str]) -> String {
        let out = self
            .client("pg_dump")
            .args(extra)
            .args(["-d", db])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_dump {db} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A connection string for database `db` as the bootstrap superuser.
    pub fn conninfo_db(&self, db: &str) -> String {
        format!(
            "host={} port={} user={} dbname={db}",
            self.socket.display(),
            self.port,
            self.superuser
        )
    }

    /// Forces a segment switch and waits until everything so far is archived.
    pub fn archive_now(&self) {
        let wal = self.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        self.psql("SELECT pg_switch_wal()");
        for _ in 0..300 {
            let last = self.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            if last.as_str() >= wal.as_str() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "WAL {wal} was not archived in 30 s; archiver: {}; log:\n{}",
            self.psql("SELECT * FROM pg_stat_archiver"),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// `pg_dumpall` of the cluster (globals and every database).
    pub fn dumpall(&self) -> String {
        let out = run(self.client("pg_dumpall"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// pg_amcheck on every database (installing amcheck where missing).
    pub fn amcheck(&self) {
        run({
            let mut c = self.client("pg_amcheck");
            c.args(["--install-missing", "--all", "--heapallindexed"]);
            c
        });
    }

    /// pg_checksums --check (the server must be stopped).
    pub fn checksums(&self) {
        run({
            let mut c = pg_command("pg_checksums");
            c.arg("--check").arg("-D").arg(&self.data);
            c
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Fails with the first differing lines when two dumps differ.
pub fn assert_same_text(what_a: &str, a: &str, what_b: &str, b: &str) {
    if a == b {
        return;
    }
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let first = la
        .iter()
        .zip(lb.iter())
        .position(|(x, y)| x != y)
        .unwrap_or(la.len().min(lb.len()));
    let lo = first.saturating_sub(3);
    panic!(
        "{what_a} and {what_b} differ ({} vs {} lines) at line {first}:\n--- {what_a}\n{}\n--- {what_b}\n{}",
        la.len(),
        lb.len(),
        la[lo..(first + 5).min(la.len())].join("\n"),
        lb[lo..(first + 5).min(lb.len())].join("\n")
    );
}

/// `backup postgres --logical` of database `db` of `c`; the JSON result.
pub fn logical_backup(env: &Env, c: &Cluster, db: &str, extra: &[&str]) -> serde_json::Value {
    let ci = c.conninfo_db(db);
    let mut args = vec!["--json", "backup", "postgres", "--logical", "--db", &ci];
    args.extend_from_slice(extra);
    env.ok(&args).json()
}

/// The arguments of a `--clean` logical restore of the latest backup into
/// the database `conn` names.
pub fn clean_restore_args(conn: &str) -> [&str; 7] {
    [
        "restore",
        "postgres",
        "latest",
        "--logical",
        "--db",
        conn,
        "--clean",
    ]
}

/// `restore postgres --logical latest` into database `db` of `c`.
pub fn logical_restore(env: &Env, c: &Cluster, db: &str, extra: &[&str]) -> super::Out {
    let ci = c.conninfo_db(db);
    let mut args = vec![
        "--json",
        "restore",
        "postgres",
        "--logical",
        "latest",
        "--db",
        &ci,
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}
