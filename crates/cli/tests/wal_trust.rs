//! Recovery must never look healthy while it is broken: a repository that is
//! away, a hole in the WAL archive, a promoted copy archiving into the
//! repository, a forged history file, a spool someone else could write, a
//! base backup whose WAL never arrives. Each on throwaway clusters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Env;
use common::pg::{
    Cluster, base_backup, give_to_postgres, pg_command, restore_and_start, restore_dir,
};

fn setup() -> Env {
    let env = Env::fs();
    env.init();
    env
}

/// The cluster's system identifier, as the repository's WAL prefix spells it.
fn sysid_hex(env: &Env) -> String {
    let info = env.ok(&["--json", "info", "postgres"]).json();
    let id: u64 = info[0]["system_id"].as_str().unwrap().parse().unwrap();
    format!("{id:016x}")
}

/// The stored object of one archived WAL file.
fn wal_object(env: &Env, name: &str) -> PathBuf {
    common::objects(&env.repo_dir(), "wal")
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&format!("/{name}/")))
        .unwrap_or_else(|| panic!("{name} is not archived"))
}

/// Starts a server on `data` in the background and waits until it either
/// accepts connections or exits; returns true if it came up.
fn start_and_see(data: &Path, log: &Path) -> bool {
    let mut c = pg_command("pg_ctl");
    c.arg("-D").arg(data).arg("-l").arg(log).args(["start"]);
    let _ = c.output().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("ready to accept connections") {
            return true;
        }
        if !data.join("postmaster.pid").exists() && text.contains("FATAL") {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the server neither started nor stopped in 60 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn recovery_stops_rather_than_promotes_while_the_repository_is_away() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE t (v int)");
    base_backup(&env, &c);
    c.psql("INSERT INTO t SELECT generate_series(1, 1000)");
    c.archive_now();
    c.psql("INSERT INTO t SELECT generate_series(1001, 2000)");
    c.archive_now();
    c.stop();

    let pass = env.path().join("passphrase");
    let (data, _) = restore_dir(&env, "restored");
    env.ok(&[
        "--password-file",
        pass.to_str().unwrap(),
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        data.to_str().unwrap(),
    ]);
    let repo = env.repo_dir();
    let away = env.path().join("repo-away");
    let log = env.path().join("restored/recovery.log");

    // 1. The repository directory is gone.
    std::fs::rename(&repo, &away).unwrap();
    assert!(
        !start_and_see(&data, &log),
        "the server came up without its WAL"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("no lifeboat repository"), "{text}");
    assert!(
        !text.contains("selected new timeline"),
        "it promoted:\n{text}"
    );

    // 2. An empty directory in its place (an unmounted mount point).
    std::fs::create_dir(&repo).unwrap();
    give_to_postgres(&repo);
    std::fs::write(&log, "").unwrap();
    assert!(
        !start_and_see(&data, &log),
        "the server came up without its WAL"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("no lifeboat repository"), "{text}");
    assert!(
        !text.contains("selected new timeline"),
        "it promoted:\n{text}"
    );

    // 3. The repository is back: recovery runs to the end, every row is there.
    std::fs::remove_dir(&repo).unwrap();
    std::fs::rename(&away, &repo).unwrap();
    std::fs::write(&log, "").unwrap();
    assert!(
        start_and_see(&data, &log),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let restored = Cluster::existing(data, c.port, c.socket.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while restored.psql("SELECT pg_is_in_recovery()") == "t" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(restored.psql("SELECT count(*) FROM t"), "2000");
}

#[test]
fn a_hole_in_the_archive_shows_in_check_status_and_info_and_latest_refuses_it() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE t (v int)");
    let snap = base_backup(&env, &c);
    let start_wal = snap["snapshot"]["postgres"]["start_wal"]
        .as_str()
        .unwrap()
        .to_string();
    let mut names = Vec::new();
    for i in 0..4 {
        c.psql(&format!(
            "INSERT INTO t SELECT generate_series({}, {})",
            i * 100 + 1,
            i * 100 + 100
        ));
        names.push(c.psql("SELECT pg_walfile_name(pg_current_wal_lsn())"));
        c.archive_now();
    }
    // Before: clean.
    env.ok(&["check"]);

    // A segment in the middle of the window disappears.
    let hole = names[1].clone();
    std::fs::remove_file(wal_object(&env, &hole)).unwrap();
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&hole) && out.stderr.contains("out of reach"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("affects snapshot"), "{}", out.stderr);
    let out = env.run(&["status"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains(&format!("{hole} is missing")),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let info = env.ok(&["--json", "info", "postgres"]).json();
    assert_eq!(info[0]["continuity"][0]["file"], hole.as_str(), "{info}");

    // `latest` would stop at the hole: refused before anything is written.
    let (data, sock) = restore_dir(&env, "refused");
    let out = env.run(&[
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&hole) && out.stderr.contains("--up-to-gap"),
        "{}",
        out.stderr
    );
    assert!(!data.exists(), "files were written for a refused restore");

    // Asked for explicitly: recovers to the hole and exits 1 saying so.
    let port = common::pg::free_port().to_string();
    let out = env.run(&[
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        data.to_str().unwrap(),
        "--up-to-gap",
        "--start",
        "--port",
        &port,
        "--socket-dir",
        sock.to_str().unwrap(),
        "--timeout",
        "2min",
    ]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("recovery stopped at") && out.stderr.contains(&hole),
        "{}",
        out.stderr
    );
    let partial = Cluster::existing(data, port.parse().unwrap(), sock);
    let rows: u32 = partial.psql("SELECT count(*) FROM t").parse().unwrap();
    assert!((100..400).contains(&rows), "{rows} rows");
    drop(partial);

    // The one segment the base backup itself needs disappears.
    std::fs::remove_file(wal_object(&env, &start_wal)).unwrap();
    let out = env.run(&["check"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&start_wal) && out.stderr.contains("cannot be restored"),
        "{}",
        out.stderr
    );
}

#[test]
fn restored_copies_do_not_archive_and_latest_keeps_to_production() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE t (v int)");
    base_backup(&env, &c);
    c.psql("INSERT INTO t VALUES (1)");
    c.archive_now();

    // A copy for a test: archiving is off in it, nothing it writes arrives.
    let (copy, report) = restore_and_start(&env, "copy", &[]);
    assert_eq!(copy.psql("SHOW archive_mode"), "off");
    assert_eq!(report["new_primary"], false);
    copy.psql("INSERT INTO t VALUES (666)");
    copy.psql("SELECT pg_switch_wal()");
    let info = env.ok(&["--json", "info", "postgres"]).json();
    assert_eq!(info[0]["timelines"].as_array().unwrap().len(), 1, "{info}");

    drop(copy);

    // Another copy has archiving switched on by hand before it is started:
    // its timeline 2 lands in the repository while production goes on.
    let pass = env.path().join("passphrase");
    let (data, sock) = restore_dir(&env, "archiving-copy");
    env.ok(&[
        "--password-file",
        pass.to_str().unwrap(),
        "restore",
        "postgres",
        "latest",
        "--target-dir",
        data.to_str().unwrap(),
    ]);
    let auto = data.join("postgresql.auto.conf");
    let port = common::pg::free_port();
    let text: String = std::fs::read_to_string(&auto)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("archive_mode"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        &auto,
        format!(
            "{text}port = {port}\nunix_socket_directories = '{}'\n",
            sock.display()
        ),
    )
    .unwrap();
    let copy = Cluster::existing(data, port, sock);
    copy.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while copy.psql("SELECT pg_is_in_recovery()") == "t" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    copy.psql("INSERT INTO t VALUES (667)");
    copy.archive_now();
    for v in 2..5 {
        c.psql(&format!("INSERT INTO t VALUES ({v})"));
        c.archive_now();
    }
    let info = env.ok(&["--json", "info", "postgres"]).json();
    let tl2 = info[0]["timelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["timeline"] == 2)
        .unwrap_or_else(|| panic!("timeline 2 not archived: {info}"))
        .clone();
    assert_eq!(tl2["side_branch"], true, "{tl2}");
    assert_eq!(tl2["followed_by_latest"], false, "{tl2}");
    assert!(
        tl2["created_by"].as_str().unwrap().contains("a copy"),
        "{tl2}"
    );
    let text = env.ok(&["info", "postgres"]).stdout;
    assert!(text.contains("side branch"), "{text}");
    // The segment the copy is still writing is no hole in the archive.
    assert_eq!(info[0]["continuity"], serde_json::json!([]), "{info}");
    drop(copy);

    // `latest` follows production, says what it passed over, and has its rows.
    let (second, report) = restore_and_start(&env, "second", &[]);
    assert_eq!(report["timeline"], 1, "{report}");
    assert!(
        report["notes"][0]
            .as_str()
            .unwrap()
            .contains("--target-timeline 2"),
        "{report}"
    );
    assert_eq!(
        second.psql("SELECT string_agg(v::text, ',' ORDER BY v) FROM t"),
        "1,2,3,4"
    );
    drop(second);
    // The copy's timeline is still there for whoever asks for it.
    let (third, _) = restore_and_start(&env, "third", &["--target-timeline", "2"]);
    assert_eq!(
        third.psql("SELECT string_agg(v::text, ',' ORDER BY v) FROM t"),
        "1,667"
    );
}

#[test]
fn forged_history_files_are_refused_and_the_archive_still_restores() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
    base_backup(&env, &c);
    c.archive_now();
    let pass = env.path().join("passphrase");
    let dir = env.path().join("forged");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, content) in [
        ("00000002.history", &b"\x00\x01\x02 not a history file"[..]),
        ("00000003.history", b"1\t0/3000000\tx\n5\t0/2000000\ty\n"),
        ("00000002.history", b""),
    ] {
        std::fs::write(dir.join(name), content).unwrap();
        give_to_postgres(&dir);
        let out = env.run_as_postgres(&[
            "--password-file",
            pass.to_str().unwrap(),
            "wal",
            "push",
            dir.join(name).to_str().unwrap(),
            "--pgdata",
            c.data.to_str().unwrap(),
        ]);
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("not a valid timeline history file"),
            "{}",
            out.stderr
        );
    }
    let (r, _) = restore_and_start(&env, "restored", &[]);
    assert_eq!(r.psql("SELECT count(*) FROM t"), "1");
}

#[test]
fn the_spool_must_be_private_and_prefetched_files_must_match_the_archive() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS v");
    let first = c.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    c.archive_now();
    c.psql("INSERT INTO t SELECT generate_series(1, 1000)");
    let second = c.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    c.archive_now();
    let pgdata = c.data.to_str().unwrap().to_string();
    let spool = env.path().join("spool");
    let spool_s = spool.to_str().unwrap().to_string();
    let fetch = |name: &str, dest: &Path, prefetch: &str| {
        env.run_with(
            &[("LIFEBOAT_SPOOL_DIR", &spool_s)],
            &[
                "wal",
                "fetch",
                name,
                dest.to_str().unwrap(),
                "--pgdata",
                &pgdata,
                "--prefetch",
                prefetch,
            ],
        )
    };
    let genuine1 = env.path().join("genuine1");
    let genuine2 = env.path().join("genuine2");
    assert_eq!(fetch(&first, &genuine1, "0").code, 0);
    assert_eq!(fetch(&second, &genuine2, "0").code, 0);

    // A file planted under the next segment's name is not handed over.
    let fetched_dir = spool.join(sysid_hex(&env)).join("fetched");
    std::fs::copy(&genuine1, fetched_dir.join(&second)).unwrap();
    let dest = env.path().join("RECOVERYXLOG");
    let out = fetch(&second, &dest, "0");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(std::fs::read(&dest).unwrap() == std::fs::read(&genuine2).unwrap());

    // A spool others can write to is refused (recovery stops: > 125).
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = fetch(&first, &dest, "0");
    assert!(out.code > 125, "exit {}: {}", out.code, out.stderr);
    assert!(out.stderr.contains("spool directory"), "{}", out.stderr);
    // And so is a symlink planted where the spool goes.
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = env.path().join("spool-link");
    std::os::unix::fs::symlink(&spool, &link).unwrap();
    let out = env.run_with(
        &[("LIFEBOAT_SPOOL_DIR", link.to_str().unwrap())],
        &[
            "wal",
            "fetch",
            &first,
            dest.to_str().unwrap(),
            "--pgdata",
            &pgdata,
        ],
    );
    assert!(out.code > 125, "exit {}: {}", out.code, out.stderr);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
}

#[test]
fn a_base_backup_whose_wal_never_arrives_says_why_and_gives_up() {
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("ALTER SYSTEM SET archive_command = '/bin/false'");
    c.psql("SELECT pg_reload_conf()");
    let started = Instant::now();
    let out = env.run(&[
        "backup",
        "postgres",
        "--pgdata",
        c.data.to_str().unwrap(),
        "--db",
        &c.conninfo(),
        "--archive-timeout",
        "14s",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(out.stderr.contains("still waiting"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("did not reach the repository within 14s")
            && out.stderr.contains("failed attempt"),
        "{}",
        out.stderr
    );
    let snaps = env.ok(&["--json", "snapshots"]).json();
    assert_eq!(snaps.as_array().unwrap().len(), 0, "{snaps}");
}

/// `wal push` answers from the background pusher's record without reading
/// the segment only while the file is the very version the pusher read
/// (same inode, size, modification and change times); a file rewritten
/// since, even to the same size, is compared with the archive instead.
#[test]
fn a_push_record_holds_only_for_the_version_of_the_file_it_was_made_from() {
    use std::os::unix::fs::MetadataExt;
    let env = setup();
    let c = Cluster::new(&env, "src");
    c.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS v");
    let name = c.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    c.archive_now();
    let pgdata = c.data.to_str().unwrap().to_string();
    let spool = env.path().join("spool");
    let spool_s = spool.to_str().unwrap().to_string();
    let copy_dir = env.path().join("copy");
    std::fs::create_dir(&copy_dir).unwrap();
    let file = copy_dir.join(&name);
    let out = env.run_with(
        &[("LIFEBOAT_SPOOL_DIR", &spool_s)],
        &[
            "wal",
            "fetch",
            &name,
            file.to_str().unwrap(),
            "--pgdata",
            &pgdata,
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = spool.join(sysid_hex(&env)).join("pushed").join(&name);
    // What the pusher writes after reading the file: its identity.
    let plant_record = || {
        let m = std::fs::metadata(&file).unwrap();
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        std::fs::write(
            &record,
            format!(
                "identity {} {} {} {} {}",
                m.dev(),
                m.ino(),
                m.size(),
                ns(m.mtime(), m.mtime_nsec()),
                ns(m.ctime(), m.ctime_nsec())
            ),
        )
        .unwrap();
    };
    let push = |password: &str| {
        env.run_with(
            &[
                ("LIFEBOAT_SPOOL_DIR", &spool_s),
                ("LIFEBOAT_PASSWORD", password),
            ],
            &["wal", "push", file.to_str().unwrap(), "--pgdata", &pgdata],
        )
    };

    // The same file: answered from the record alone, without unlocking the
    // repository (the passphrase is wrong), and the record is used up.
    plant_record();
    let out = push("not the passphrase");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!record.exists(), "a record is single use");

    // The file rewritten with one byte changed, its size and modification
    // time as before: not trusted; compared with the archive and refused.
    plant_record();
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&file, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let out = push("not the passphrase");
    assert_ne!(out.code, 0, "a changed file passed on a stale record");
    let out = push(common::PASSWORD);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("different content"), "{}", out.stderr);
}
