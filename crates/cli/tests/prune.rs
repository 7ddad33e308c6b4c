//! `prune`: two-phase deletion, repacking, racing backups, kill -9 and the
//! prune lock, against real repositories (a directory and the S3 test server);
//! and `check --read-data --subset`, which verifies a sample of the packs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Env, assert_same_tree, objects, pseudo_random};

/// A small xorshift generator for random timings; the seed is printed.
struct Rng(u64);

impl Rng {
    fn from_time() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("random seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Writes `count` files of `size` bytes named `f<first>…` into `dir`.
fn write_files(dir: &Path, first: u64, count: u64, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in first..first + count {
        std::fs::write(
            dir.join(format!("f{i:04}")),
            pseudo_random(size, i * 7919 + 1),
        )
        .unwrap();
    }
}

fn data_bytes(env: &Env) -> u64 {
    common::packs(&env.repo_dir())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Restores `snapshot` and compares it with `expected` (the backed-up `src`).
fn assert_restores(env: &Env, snapshot: &str, src: &Path, expected: &Path) {
    let target = env.path().join(format!("restore-{snapshot}"));
    let _ = std::fs::remove_dir_all(&target);
    env.ok(&[
        "restore",
        "files",
        snapshot,
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(expected, &target.join(src.strip_prefix("/").unwrap()));
    std::fs::remove_dir_all(&target).unwrap();
}

fn check_clean(env: &Env, read_data: bool) -> serde_json::Value {
    let mut args = vec!["--json", "check"];
    if read_data {
        args.push("--read-data");
    }
    let out = env.run(&args);
    assert_eq!(out.code, 0, "check failed:\n{}\n{}", out.stdout, out.stderr);
    out.json()
}

fn prune(env: &Env, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json", "prune"];
    args.extend_from_slice(extra);
    env.ok(&args).json()
}

#[test]
fn prune_marks_first_deletes_after_the_grace_period_and_repacks() {
    let env = Env::fs();
    env.ok(&[
        "init",
        "--kdf-memory",
        "19",
        "--kdf-iterations",
        "2",
        "--pack-size",
        "1",
    ]);
    let src = env.path().join("src");
    // 100 KiB files: about ten to a 1 MiB pack.
    write_files(&src, 0, 60, 100 << 10);
    env.backup(&[&src]);
    for i in (0..60).step_by(2) {
        std::fs::remove_file(src.join(format!("f{i:04}"))).unwrap();
    }
    write_files(&src, 100, 10, 100 << 10);
    let kept = env.backup(&[&src])["id"].as_str().unwrap().to_string();
    env.ok(&["forget", "--keep-last", "1"]);
    let before = data_bytes(&env);
    let packs_before = common::packs(&env.repo_dir()).len();

    // A dry run plans but changes nothing.
    let contents = common::repo_contents(&env.repo_dir());
    let dry = prune(&env, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert!(
        dry["marked"]["repacked_packs"].as_u64().unwrap() >= 3,
        "{dry}"
    );
    assert!(dry["marked"]["plan"].is_null());
    assert_eq!(common::repo_contents(&env.repo_dir()), contents);

    // First run: repack and mark; nothing deleted within the grace period.
    let first = prune(&env, &[]);
    assert!(first["marked"]["plan"].is_string(), "{first}");
    let repacked = first["marked"]["repacked_packs"].as_u64().unwrap();
    assert!(repacked >= 3, "{first}");
    assert!(first["marked"]["new_packs"].as_u64().unwrap() >= 1);
    assert_eq!(first["deleted"]["packs"], 0);
    assert!(common::packs(&env.repo_dir()).len() > packs_before);
    assert_eq!(objects(&env.repo_dir(), "prune").len(), 1);
    check_clean(&env, true);
    assert_restores(&env, &kept, &src, &src);

    // Still within the grace period: the plan waits, and says why.
    let waiting = prune(&env, &[]);
    assert_eq!(waiting["deleted"]["packs"], 0);
    let why = waiting["postponed"][0]["why"].as_str().unwrap();
    assert!(why.contains("grace period ends"), "{waiting}");

    // Grace over: the marked packs go, the index no longer names them.
    let done = prune(&env, &["--grace", "0"]);
    assert!(
        done["deleted"]["packs"].as_u64().unwrap() >= repacked,
        "{done}"
    );
    assert!(done["deleted"]["bytes"].as_u64().unwrap() > 0);
    assert!(done["postponed"].as_array().unwrap().is_empty());
    assert!(objects(&env.repo_dir(), "prune").is_empty());
    let after = data_bytes(&env);
    assert!(
        after * 10 < before * 7,
        "prune reclaimed too little: {before} -> {after} bytes"
    );
    let report = check_clean(&env, true);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
    assert_restores(&env, &kept, &src, &src);

    // Nothing left to do.
    let again = prune(&env, &["--grace", "0"]);
    assert_eq!(again["deleted"]["packs"], 0);
    assert!(again["marked"]["plan"].is_null(), "{again}");
    assert_eq!(data_bytes(&env), after);

    // Bad options are usage errors and change nothing.
    for bad in [
        &["prune", "--grace", "soon"][..],
        &["prune", "--max-unused", "150%"],
        &["prune", "--max-repack", "lots"],
    ] {
        let out = env.run(bad);
        assert_eq!(out.code, 2, "{bad:?}: {}", out.stderr);
    }
}

/// Spawns `lifeboat ARGS` in the background.
fn spawn(env: &Env, args: &[&str]) -> Child {
    env.cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Waits until `dir` holds a file, or the child exits (then false).
fn wait_for_file(dir: &Path, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::fs::read_dir(dir).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with(".tmp")))
        }) {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("{} never appeared", dir.display());
}

#[test]
fn a_running_backup_postpones_deletion_and_a_second_prune_is_refused() {
    let env = Env::fs();
    env.ok(&[
        "init",
        "--kdf-memory",
        "19",
        "--kdf-iterations",
        "2",
        "--pack-size",
        "1",
    ]);
    let src = env.path().join("src");
    write_files(&src, 0, 20, 100 << 10);
    env.backup(&[&src]);
    let other = env.path().join("other");
    write_files(&other, 500, 40, 200 << 10);

    // A backup paused right after it registered: it has not seen the plan
    // the prune is about to write, so its packs must wait for it.
    let mut backup = spawn(
        &env,
        &["--json", "backup", "files", other.to_str().unwrap()],
    );
    assert!(wait_for_file(&env.repo_dir().join("running"), &mut backup));
    signal(&backup, "-STOP");
    std::fs::remove_dir_all(&src).unwrap();
    write_files(&src, 1000, 5, 100 << 10);
    env.backup(&[&src]);
    env.ok(&["forget", "--keep-last", "1"]);
    let held = prune(&env, &["--grace", "0"]);
    assert!(held["marked"]["plan"].is_string(), "{held}");
    assert_eq!(held["deleted"]["packs"], 0, "{held}");
    let why = held["postponed"][0]["why"].as_str().unwrap();
    assert!(why.contains("may still use its packs"), "{held}");
    assert!(why.contains(&backup.id().to_string()), "{why}");

    signal(&backup, "-CONT");
    let out = backup.wait_with_output().unwrap();
    assert!(out.status.success(), "the paused backup failed");
    let paused: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let done = prune(&env, &["--grace", "0"]);
    assert!(done["deleted"]["packs"].as_u64().unwrap() > 0, "{done}");
    check_clean(&env, true);
    assert_restores(&env, paused["id"].as_str().unwrap(), &other, &other);

    // One prune at a time: a second one is refused while the first holds the
    // lock (paused here so the moment is certain), and runs once it is gone.
    let lock_dir = env.repo_dir().join("locks");
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts < 20, "never caught a prune holding its lock");
        let mut first = spawn(&env, &["prune", "--grace", "0"]);
        if !wait_for_file(&lock_dir, &mut first) {
            continue;
        }
        signal(&first, "-STOP");
        if !lock_dir.join("prune").exists() {
            signal(&first, "-CONT");
            first.wait().unwrap();
            continue;
        }
        let second = env.run(&["prune"]);
        signal(&first, "-CONT");
        assert!(first.wait().unwrap().success());
        assert_eq!(second.code, 3, "{}", second.stderr);
        assert!(
            second
                .stderr
                .contains(&format!("locked by process {}", first.id())),
            "{}",
            second.stderr
        );
        break;
    }
    env.ok(&["prune"]);
}

#[test]
fn prune_killed_at_random_points_leaves_a_consistent_repository_and_resumes() {
    let env = Env::fs();
    env.ok(&[
        "init",
        "--kdf-memory",
        "19",
        "--kdf-iterations",
        "2",
        "--pack-size",
        "1",
    ]);
    let src = env.path().join("src");
    write_files(&src, 0, 80, 60 << 10);
    env.backup(&[&src]);
    let mut rng = Rng::from_time();
    let mut next = 1000;
    for round in 0..6 {
        // New garbage each round: some files go, some come.
        for i in 0..80 {
            let f = src.join(format!("f{i:04}"));
            if f.exists() && rng.below(3) == 0 {
                std::fs::remove_file(f).unwrap();
            }
        }
        write_files(&src, next, 10, 60 << 10);
        next += 10;
        env.backup(&[&src]);
        env.ok(&["forget", "--keep-last", "1"]);
        let mut child = spawn(&env, &["prune", "--grace", "0"]);
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Consistent after every kill: no errors, the kept snapshot restores.
        // (check exits non-zero on any error; stray packs are warnings.)
        check_clean(&env, false);
        eprintln!("round {round}: consistent after the kill");
        assert_restores(&env, "latest", &src, &src);
    }
    // The next prune finishes the work (taking over the dead one's lock).
    prune(&env, &["--grace", "0"]);
    let last = prune(&env, &["--grace", "0"]);
    assert!(last["marked"]["plan"].is_null(), "{last}");
    // A plan the kill interrupted mid-write leaves a temporary file, which
    // prune keeps while it is fresh (a live writer's looks the same).
    let plans: Vec<_> = objects(&env.repo_dir(), "prune")
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .collect();
    assert!(plans.is_empty(), "{plans:?}");
    // Likewise any write the kill cut short (a plan, an audit entry) may
    // leave a fresh temporary file, which check reports as a warning; any
    // other finding is a defect.
    let report = check_clean(&env, true);
    let others: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            !f["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("temporary file of an interrupted write")
        })
        .collect();
    assert!(others.is_empty(), "{report}");
    assert_restores(&env, "latest", &src, &src);
}

/// Backups in a loop race forget + prune with random timing; every snapshot
/// left restores byte-identical and `check --read-data` is clean.
fn race(env: &Env, rounds: u64) {
    env.ok(&[
        "init",
        "--kdf-memory",
        "19",
        "--kdf-iterations",
        "2",
        "--pack-size",
        "1",
    ]);
    let src = env.path().join("src");
    let expected_root = env.path().join("expected");
    write_files(&src, 0, 30, 80 << 10);
    let stop = AtomicBool::new(false);
    let (taken, prunes) = std::thread::scope(|scope| {
        let backups = scope.spawn(|| {
            // Stops the prune loop however this thread ends (a failed
            // assertion included).
            struct StopOnExit<'a>(&'a AtomicBool);
            impl Drop for StopOnExit<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let _stop = StopOnExit(&stop);
            let mut taken: BTreeMap<String, PathBuf> = BTreeMap::new();
            let mut rng = Rng::from_time();
            let mut next = 100;
            for round in 0..rounds {
                // Files come and go, and old ones come back (their data may
                // sit in packs a prune has just marked).
                for i in 0..next {
                    let f = src.join(format!("f{i:04}"));
                    if f.exists() && rng.below(4) == 0 {
                        std::fs::remove_file(f).unwrap();
                    } else if !f.exists() && rng.below(3) == 0 {
                        write_files(&src, i, 1, 80 << 10);
                    }
                }
                write_files(&src, next, 8, 80 << 10);
                next += 8;
                std::thread::sleep(Duration::from_millis(rng.below(100)));
                let out = env.run(&["--json", "backup", "files", src.to_str().unwrap()]);
                assert_eq!(out.code, 0, "backup {round} failed: {}", out.stderr);
                let id = out.json()["id"].as_str().unwrap().to_string();
                let copy = expected_root.join(&id);
                std::fs::create_dir_all(&copy).unwrap();
                let ok = Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", src.display()))
                    .arg(&copy)
                    .status()
                    .unwrap();
                assert!(ok.success());
                taken.insert(id, copy);
            }
            taken
        });
        let mut rng = Rng::from_time();
        let mut prunes = 0;
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(rng.below(300)));
            env.ok(&["forget", "--keep-last", "3"]);
            // Short grace periods too, so plans outlive a run and backups
            // start while packs are marked.
            let grace = ["0", "1s", "2s"][rng.below(3) as usize];
            let r = prune(env, &["--grace", grace, "--max-unused", "0%"]);
            prunes += 1;
            eprintln!(
                "prune {prunes}: deleted {} packs, marked {}, postponed {}",
                r["deleted"]["packs"],
                r["marked"]["plan"],
                r["postponed"].as_array().unwrap().len()
            );
        }
        (backups.join().unwrap(), prunes)
    });
    assert!(prunes >= 2, "the race never happened ({prunes} prunes)");
    env.ok(&["forget", "--keep-last", "3"]);
    prune(env, &["--grace", "0", "--max-unused", "0%"]);
    let left = env.ok(&["--json", "snapshots"]).json();
    let left = left.as_array().unwrap();
    assert_eq!(left.len(), 3);
    for s in left {
        let id = s["id"].as_str().unwrap();
        assert_restores(env, id, &src, &taken[id]);
    }
    check_clean(env, true);
}

#[test]
fn backups_racing_prune_lose_nothing_on_a_directory() {
    race(&Env::fs(), 50);
}

#[test]
fn backups_racing_prune_lose_nothing_on_s3() {
    race(&Env::s3("prune-race"), 50);
}

#[test]
fn check_read_data_subset_reads_a_random_share() {
    let env = Env::fs();
    env.ok(&[
        "init",
        "--kdf-memory",
        "19",
        "--kdf-iterations",
        "2",
        "--pack-size",
        "1",
    ]);
    let src = env.path().join("src");
    write_files(&src, 0, 200, 100 << 10);
    env.backup(&[&src]);
    let full = check_clean(&env, true);
    let total = full["bytes_read"].as_u64().unwrap();
    assert!(full["subset"].is_null());
    let out = env.ok(&["--json", "check", "--read-data", "--subset", "10%"]);
    let part = out.json();
    assert_eq!(part["subset"], 10.0);
    assert!(part["bytes_read"].as_u64().unwrap() < total / 2, "{part}");
    let all = env
        .ok(&["--json", "check", "--read-data", "--subset", "100%"])
        .json();
    assert_eq!(all["bytes_read"].as_u64().unwrap(), total);
    for bad in [
        &["check", "--subset", "10%"][..],
        &["check", "--read-data", "--subset", "0%"],
    ] {
        assert_eq!(env.run(bad).code, 2, "{bad:?}");
    }
}

#[test]
fn a_damaged_deletion_plan_stops_prune_but_never_a_backup() {
    let env = Env::fs();
    env.ok(&[
        "init",
        "--kdf-memory",
        "19",
        "--kdf-iterations",
        "2",
        "--pack-size",
        "1",
    ]);
    let src = env.path().join("src");
    write_files(&src, 0, 20, 100 << 10);
    env.backup(&[&src]);
    write_files(&src, 0, 10, 100 << 10);
    std::fs::remove_dir_all(&src).unwrap();
    write_files(&src, 500, 10, 100 << 10);
    env.backup(&[&src]);
    env.ok(&["forget", "--keep-last", "1"]);
    let first = prune(&env, &[]);
    assert!(first["marked"]["plan"].is_string(), "{first}");
    let plan = objects(&env.repo_dir(), "prune").remove(0);
    let mut bytes = std::fs::read(&plan).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&plan, bytes).unwrap();

    // Backups go on; prune refuses, naming the plan, and deletes nothing.
    write_files(&src, 600, 3, 100 << 10);
    env.backup(&[&src]);
    let packs = common::packs(&env.repo_dir()).len();
    let out = env.run(&["prune", "--grace", "0"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("prune/"), "{}", out.stderr);
    assert_eq!(common::packs(&env.repo_dir()).len(), packs);
    assert_restores(&env, "latest", &src, &src);
}

#[test]
fn prune_on_an_object_lock_bucket_deletes_nothing_locked_and_says_until_when() {
    let env = Env::s3_locked("lock");
    env.ok(&[
        "init",
        "--kdf-memory",
        "19",
        "--kdf-iterations",
        "2",
        "--object-lock-days",
        "1",
    ]);
    let src = env.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.bin"), pseudo_random(3 << 20, 1)).unwrap();
    env.backup(&[&src]);
    std::fs::write(src.join("a.bin"), pseudo_random(3 << 20, 2)).unwrap();
    let kept = env.backup(&[&src])["id"].as_str().unwrap().to_string();
    env.ok(&["forget", "--keep-last", "1"]);

    // Marked and due at once, but every pack is locked for a day.
    let first = prune(&env, &["--grace", "0"]);
    assert!(
        first["marked"]["unused_packs"].as_u64().unwrap() >= 1,
        "{first}"
    );
    let d = &first["deleted"];
    assert_eq!(d["packs"], 0, "{first}");
    assert!(d["locked_packs"].as_u64().unwrap() >= 1, "{first}");
    let until = chrono::DateTime::parse_from_rfc3339(d["locked_until"].as_str().unwrap()).unwrap();
    let hours =
        (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((24.0..=25.1).contains(&hours), "{hours} h: {first}");

    // The next prune finds the same packs stored, still held, and says so.
    let out = env.ok(&["prune", "--grace", "0"]);
    assert!(
        out.stdout.contains("under S3 Object Lock until"),
        "{}",
        out.stdout
    );
    let second = prune(&env, &["--grace", "0"]);
    assert_eq!(second["packs"], first["packs"], "{second}");
    assert_eq!(
        second["deleted"]["locked_packs"], d["locked_packs"],
        "{second}"
    );
    env.ok(&["check", "--read-data"]);
    assert_restores(&env, &kept, &src, &src);
}
