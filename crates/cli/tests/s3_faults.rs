//! lifeboat against an S3 server behind a proxy that fails 10 % and then
//! 30 % of requests (500/503/429, resets before and after the request
//! reached the server, cut-off bodies, stalls): backups, restores, copies,
//! prune, WAL push (PostgreSQL's archiver through the proxy) and WAL fetch
//! succeed or fail with a clear error. Afterwards, read through a clean
//! connection, the repository and its replica check clean, every snapshot
//! restores identical, and no archived segment was ever called missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/fault_proxy.rs"]
mod fault_proxy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::pg::Cluster;
use common::{Env, Out, assert_same_tree, pseudo_random, s3_endpoint};
use fault_proxy::FaultProxy;

const REPLICA_PASSWORD: &str = "replica passphrase";

/// Tally of command outcomes under faults.
#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    failed: BTreeMap<String, u64>,
}

impl Tally {
    /// Records `out`: success, or a failure that is a clear, classified
    /// error (never a panic, never silence).
    fn record(&mut self, what: &str, out: &Out) -> bool {
        if out.code == 0 {
            self.ok += 1;
            return true;
        }
        assert_ne!(out.code, 101, "{what} panicked: {}", out.stderr);
        assert!(
            out.stderr.contains("error"),
            "{what} failed (exit {}) without saying why: {}",
            out.code,
            out.stderr
        );
        eprintln!(
            "{what} failed under faults (exit {}): {}",
            out.code,
            out.stderr.trim()
        );
        *self
            .failed
            .entry(format!("{what} exit {}", out.code))
            .or_default() += 1;
        false
    }
}

fn mutate(src: &Path, round: u64) {
    std::fs::create_dir_all(src).unwrap();
    for i in 0..4 {
        // A quarter of the files change each round; one grows.
        if (i + round).is_multiple_of(4) {
            std::fs::write(
                src.join(format!("f{i}")),
                pseudo_random(((300 + 50 * round) << 10) as usize, round * 10 + i),
            )
            .unwrap();
        }
    }
}

/// Waits until PostgreSQL has archived everything up to now (its archiver
/// retries a failed `archive_command` by itself).
fn archive_all(c: &Cluster, limit: Duration) {
    let wal = c.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    c.psql("SELECT pg_switch_wal()");
    let start = Instant::now();
    while start.elapsed() < limit {
        let last = c.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
        if last.as_str() >= wal.as_str() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{wal} not archived in {limit:?}: {}",
        c.psql("SELECT * FROM pg_stat_archiver")
    );
}

/// Error findings in a `check --json` report.
fn errors(report: &serde_json::Value) -> usize {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .count()
}

fn run_under_faults(rate: u32, seed: u64) {
    let proxy = FaultProxy::start(&s3_endpoint(), 0, seed);
    let direct = Env::s3(&format!("faults{rate}"));
    direct.init();
    let faulty = direct.with_var("AWS_ENDPOINT_URL", &proxy.endpoint);
    let replica = Env::s3(&format!("faults{rate}-replica"));
    let out = direct.copy_init(&replica.repo, REPLICA_PASSWORD);
    assert_eq!(out.code, 0, "{}", out.stderr);
    proxy.set_rate(rate);
    let mut tally = Tally::default();

    // Backups of a changing tree.
    let src = direct.path().join("src");
    let mut expected: BTreeMap<String, PathBuf> = BTreeMap::new();
    for round in 0..6 {
        mutate(&src, round);
        let out = faulty.run(&["--json", "backup", "files", src.to_str().unwrap()]);
        if tally.record("backup files", &out) {
            let id = out.json()["id"].as_str().unwrap().to_string();
            let copy = direct.path().join("expected").join(&id);
            std::fs::create_dir_all(&copy).unwrap();
            assert!(
                std::process::Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", src.display()))
                    .arg(&copy)
                    .status()
                    .unwrap()
                    .success()
            );
            expected.insert(id, copy);
        }
    }
    assert!(expected.len() >= 2, "too few backups succeeded: {tally:?}");

    // PostgreSQL archives through the proxy and takes a base backup.
    let cluster = Cluster::with(
        &direct,
        "pg",
        "postgres",
        &format!(
            "archive_command = 'AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
             AWS_REGION=us-east-1 {} --repo {} --password-file {} wal push %p'\n",
            proxy.endpoint,
            env!("CARGO_BIN_EXE_lifeboat"),
            direct.repo,
            direct.path().join("passphrase").display()
        ),
    );
    cluster.psql("CREATE TABLE t (id int, pad text)");
    for round in 0..4 {
        cluster.psql(&format!(
            "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series({}, {}) g",
            round * 20_000,
            round * 20_000 + 19_999
        ));
        archive_all(&cluster, Duration::from_secs(180));
    }
    let out = faulty.run(&[
        "--json",
        "backup",
        "postgres",
        "--pgdata",
        cluster.data.to_str().unwrap(),
        "--db",
        &cluster.conninfo(),
    ]);
    tally.record("backup postgres", &out);
    archive_all(&cluster, Duration::from_secs(180));

    // Every archived segment is fetched through the proxy: restored intact
    // or a fatal error (exit > 125), never "not in the archive" (exit 1).
    // Timeline 1 from its first segment to the last one archived (16 MiB
    // segments: 256 per WAL "log" number).
    let last = cluster.psql("SELECT last_archived_wal FROM pg_stat_archiver");
    let last_segno = u64::from_str_radix(&last[8..16], 16).unwrap() * 256
        + u64::from_str_radix(&last[16..24], 16).unwrap();
    let names: Vec<String> = (1..=last_segno)
        .map(|n| format!("00000001{:08X}{:08X}", n / 256, n % 256))
        .collect();
    assert!(names.len() >= 4, "{last}");
    let fetched = direct.path().join("fetched");
    std::fs::create_dir_all(&fetched).unwrap();
    let spool = direct.path().join("spool");
    for name in &names {
        let dest = fetched.join(name);
        let out = faulty.run_with(
            &[("LIFEBOAT_SPOOL_DIR", spool.to_str().unwrap())],
            &[
                "wal",
                "fetch",
                name,
                dest.to_str().unwrap(),
                "--pgdata",
                cluster.data.to_str().unwrap(),
            ],
        );
        assert_ne!(
            out.code, 1,
            "{name} was called missing under faults: {}",
            out.stderr
        );
        if tally.record("wal fetch", &out) {
            let clean = fetched.join(format!("{name}.clean"));
            direct.ok(&[
                "wal",
                "fetch",
                name,
                clean.to_str().unwrap(),
                "--pgdata",
                cluster.data.to_str().unwrap(),
            ]);
            assert_eq!(
                std::fs::read(&dest).unwrap(),
                std::fs::read(&clean).unwrap()
            );
        } else {
            assert!(out.code > 125, "{name}: exit {} {}", out.code, out.stderr);
        }
    }

    // Restores through the proxy: identical, or a clear error.
    for (id, copy) in &expected {
        let target = direct.path().join("restored").join(id);
        let out = faulty.run(&["restore", "files", id, "--target", target.to_str().unwrap()]);
        if tally.record("restore files", &out) {
            assert_same_tree(copy, &target.join(src.strip_prefix("/").unwrap()));
        }
    }

    // Copies to the replica, then forget and prune, all through the proxy.
    for _ in 0..2 {
        let out = faulty.run_with(
            &[("LIFEBOAT_TO_PASSWORD", REPLICA_PASSWORD)],
            &["copy", "--to", &replica.repo],
        );
        tally.record("copy", &out);
    }
    let out = faulty.run(&["forget", "--keep-last", "3"]);
    tally.record("forget", &out);
    for _ in 0..2 {
        let out = faulty.run(&["prune", "--grace", "0"]);
        tally.record("prune", &out);
        // A prune cut off mid-way leaves its lock; the next run (same host,
        // dead process) takes it over.
    }
    proxy.set_rate(0);
    cluster.stop();

    // Read through a clean connection: nothing damaged, nothing lost.
    let report = direct.ok(&["--json", "check", "--read-data"]).json();
    assert_eq!(errors(&report), 0, "{report}");
    let kept: Vec<String> = direct
        .ok(&["--json", "snapshots"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    for (id, copy) in &expected {
        if !kept.iter().any(|k| k == id) {
            continue; // forgotten
        }
        let target = direct.path().join("final").join(id);
        direct.ok(&["restore", "files", id, "--target", target.to_str().unwrap()]);
        assert_same_tree(copy, &target.join(src.strip_prefix("/").unwrap()));
    }
    let replica_check = replica.with_var("LIFEBOAT_PASSWORD", REPLICA_PASSWORD);
    let report = replica_check.ok(&["--json", "check", "--read-data"]).json();
    assert_eq!(errors(&report), 0, "replica: {report}");

    let stats = proxy.stats();
    eprintln!(
        "{rate} % faults: {} requests, {} faults injected {:?}; {} commands succeeded, failed: {:?}",
        stats.requests,
        stats.total_faults(),
        stats.faults,
        tally.ok,
        tally.failed
    );
    assert!(
        stats.total_faults() * 100 >= stats.requests * u64::from(rate) / 2,
        "the proxy injected too few faults: {stats:?}"
    );
}

#[test]
fn ten_percent_of_s3_requests_failing_damages_nothing() {
    run_under_faults(10, 0x5eed_0010);
}

#[test]
fn thirty_percent_of_s3_requests_failing_damages_nothing() {
    run_under_faults(30, 0x5eed_0030);
}
