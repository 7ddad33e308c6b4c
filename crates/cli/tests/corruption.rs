//! Damage to every kind of object a repository holds — config, key slots,
//! index files, packs, snapshots, archived WAL segments and timeline
//! history files, restore point markers, pins, deletion plans, reports —
//! by flipped bytes at several offsets, truncation and deletion: `check
//! --read-data` finds every case, and no restore writes wrong bytes (it
//! restores exactly, or fails).
//!
//! `LIFEBOAT_CORRUPTION_DEPTH=full` damages every object at 16 offsets
//! (bench/reliability/corruption.sh); the default takes one object of each
//! kind at four.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::pg::{Cluster, restore_and_start, restore_dir};
use common::{Env, Out, pseudo_random};

/// What one damage does.
#[derive(Clone, Copy, Debug)]
enum Damage {
    Flip(usize),
    Truncate,
    Delete,
}

/// Kinds whose deletion is an ordinary operation (`forget`, `unpin`,
/// `prune`), not damage the structure reveals.
const STANDALONE: [&str; 5] = [
    "snapshot",
    "pin",
    "deletion plan",
    "report",
    "restore point",
];

/// The kind of object a repository key holds.
fn kind_of(rel: &str) -> &'static str {
    let top = rel.split('/').next().unwrap_or("");
    match top {
        "config" => "config",
        "keys" => "key slot",
        "index" => "index",
        "data" => "pack",
        "snapshots" => "snapshot",
        "wal" if rel.contains(".history/") => "history file",
        "wal" if rel.contains(".backup/") => "backup history file",
        "wal" => "WAL segment",
        "rp" => "restore point",
        "pins" => "pin",
        "prune" => "deletion plan",
        "reports" => "report",
        "running" => "running record",
        "locks" => "lock",
        "audit" if rel == "audit/self" => "audit log name",
        "audit" if rel.ends_with("/head") || rel.contains("/checkpoints/") => "audit checkpoint",
        "audit" => "audit entry",
        _ => "other",
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn diff_r(a: &Path, b: &Path) -> bool {
    let out = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "diff -r {} {}:\n{}",
            a.display(),
            b.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    out.status.success()
}

/// `check --read-data` found something wrong (or refused to run).
fn detected(out: &Out) -> bool {
    if out.code != 0 {
        assert_ne!(out.code, 101, "check panicked: {}", out.stderr);
        return true;
    }
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|j| j["findings"].as_array().cloned())
        .is_some_and(|f| !f.is_empty())
}

struct Setup {
    env: Env,
    pristine: PathBuf,
    src: PathBuf,
    files_id: String,
    pg_id: String,
    pg_reference: PathBuf,
    pgdata: PathBuf,
    segment: String,
    segment_bytes: Vec<u8>,
    /// The first WAL segment the base backup needs: older ones are in no
    /// recoverable window, so losing them is no damage.
    first_needed: String,
}

/// A repository holding every kind of object: a files snapshot, a base
/// backup with archived WAL on two timelines and a restore point, a pin,
/// a deletion plan and a check report.
fn setup() -> Setup {
    let env = Env::fs();
    env.init();
    let src = env.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/app.env"), b"SECRET=1\n".repeat(100)).unwrap();
    std::fs::write(src.join("blob.bin"), pseudo_random(900 << 10, 5)).unwrap();
    std::fs::write(src.join("small"), b"x").unwrap();
    let files_id = env.backup(&[&src])["id"].as_str().unwrap().to_string();
    env.ok(&["pin", &files_id, "--reason", "corruption test"]);

    // A snapshot whose data prune marks (a deletion plan).
    let doomed_src = env.path().join("doomed");
    std::fs::create_dir_all(&doomed_src).unwrap();
    std::fs::write(doomed_src.join("gone"), pseudo_random(300 << 10, 9)).unwrap();
    let doomed = env.backup(&[&doomed_src])["id"]
        .as_str()
        .unwrap()
        .to_string();

    let c = Cluster::new(&env, "pg");
    c.psql("CREATE TABLE t (v int)");
    c.psql("INSERT INTO t SELECT generate_series(1, 1000)");
    let base = common::pg::base_backup(&env, &c);
    let pg_id = base["id"].as_str().unwrap().to_string();
    let first_needed = base["snapshot"]["postgres"]["start_wal"]
        .as_str()
        .unwrap()
        .to_string();
    c.psql("INSERT INTO t VALUES (-1)");
    c.psql("SELECT pg_create_restore_point('mark')");
    c.psql("INSERT INTO t VALUES (-2)");
    c.archive_now();
    let segment = c.psql("SELECT last_archived_wal FROM pg_stat_archiver");
    // A new primary on timeline 2 archives its history file and WAL.
    let (second, _) = restore_and_start(&env, "np", &["--target-name", "mark", "--new-primary"]);
    second.psql("INSERT INTO t VALUES (-3)");
    second.archive_now();
    second.stop();
    c.stop();

    // Forgotten (as a retention policy would), then marked by prune.
    std::fs::remove_file(env.repo_dir().join("snapshots").join(&doomed)).unwrap();
    env.ok(&["prune", "--grace", "1h"]);
    env.ok(&["check"]);

    // The base backup restored from the undamaged repository, to compare
    // (restored where the later restores go: its settings name the path).
    let (restored, _) = restore_dir(&env, "restored-pg");
    env.ok(&[
        "restore",
        "postgres",
        &pg_id,
        "--target-dir",
        restored.to_str().unwrap(),
    ]);
    let pg_reference = env.path().join("reference");
    std::fs::rename(&restored, &pg_reference).unwrap();
    // One archived segment, fetched from the undamaged repository.
    let fetched = env.path().join("segment");
    env.ok(&[
        "wal",
        "fetch",
        &segment,
        fetched.to_str().unwrap(),
        "--pgdata",
        c.data.to_str().unwrap(),
    ]);
    let pristine = env.path().join("pristine");
    copy_dir(&env.repo_dir(), &pristine);
    Setup {
        first_needed,
        segment_bytes: std::fs::read(&fetched).unwrap(),
        pgdata: c.data.clone(),
        env,
        pristine,
        src,
        files_id,
        pg_id,
        pg_reference,
        segment,
    }
}

#[test]
fn every_kind_of_damage_to_every_kind_of_object_is_found_and_never_restored() {
    let s = setup();
    let full = std::env::var("LIFEBOAT_CORRUPTION_DEPTH").is_ok_and(|d| d == "full");
    let mut by_kind: BTreeMap<&'static str, Vec<PathBuf>> = BTreeMap::new();
    for f in common::repo_contents(&s.pristine)
        .into_keys()
        .map(|rel| s.pristine.join(rel))
    {
        let rel = f
            .strip_prefix(&s.pristine)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let kind = kind_of(&rel);
        // wal/SYSID/SEGMENT/…: segments before the base backup are in no
        // recoverable window, so losing them is no damage.
        if kind == "WAL segment"
            && rel
                .split('/')
                .nth(2)
                .is_some_and(|seg| seg[8..] < s.first_needed[8..])
        {
            continue;
        }
        by_kind.entry(kind).or_default().push(f);
    }
    // The newest segment of each timeline (wal/SYSID/SEGMENT/…; a segment
    // name starts with its timeline, then its position).
    let mut tails: BTreeMap<String, PathBuf> = BTreeMap::new();
    for p in by_kind.get("WAL segment").into_iter().flatten() {
        let seg = p
            .strip_prefix(&s.pristine)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = seg.split('/').nth(2).unwrap_or("").to_string();
        let entry = tails
            .entry(name[..8].to_string())
            .or_insert_with(|| p.clone());
        if p > entry {
            *entry = p.clone();
        }
    }
    for kind in [
        "config",
        "key slot",
        "index",
        "pack",
        "snapshot",
        "WAL segment",
        "history file",
        "restore point",
        "pin",
        "deletion plan",
        "report",
        "audit entry",
        "audit checkpoint",
        "audit log name",
    ] {
        assert!(
            by_kind.contains_key(kind),
            "no {kind} in the repository: {by_kind:?}"
        );
    }
    let repo = s.env.repo_dir();
    let mut figures: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let mut restores = 0u64;
    let mut refused_restores = 0u64;
    for (kind, objects) in &by_kind {
        let chosen: Vec<&PathBuf> = if full {
            objects.iter().collect()
        } else {
            // The largest of its kind (a data pack rather than a tree pack)
            // and the smallest.
            let mut by_size: Vec<&PathBuf> = objects.iter().collect();
            by_size.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
            let mut pick = vec![by_size[by_size.len() - 1]];
            if by_size.len() > 1 {
                pick.push(by_size[0]);
            }
            pick
        };
        for object in chosen {
            let rel = object.strip_prefix(&s.pristine).unwrap().to_path_buf();
            let len = std::fs::metadata(object).unwrap().len() as usize;
            let mut damages = vec![Damage::Truncate, Damage::Delete];
            if len == 0 {
                damages.retain(|d| matches!(d, Damage::Delete));
            } else {
                let offsets = if full { 16 } else { 4 };
                for i in 0..offsets {
                    damages.push(Damage::Flip((len - 1) * i / (offsets - 1).max(1)));
                }
            }
            for damage in damages {
                copy_dir(&s.pristine, &repo);
                let target = repo.join(&rel);
                match damage {
                    Damage::Flip(at) => {
                        let mut b = std::fs::read(&target).unwrap();
                        b[at] ^= 0x20;
                        std::fs::write(&target, b).unwrap();
                    }
                    Damage::Truncate => {
                        let b = std::fs::read(&target).unwrap();
                        std::fs::write(&target, &b[..len / 2]).unwrap();
                    }
                    Damage::Delete => std::fs::remove_file(&target).unwrap(),
                }
                // The newest segment of a timeline, deleted, looks exactly
                // like one not archived yet (or, where a timeline forked off,
                // like the old primary's unarchived last segment after a
                // failover): on the newest timeline it becomes a hole (an
                // error) once the next segment is archived, and until then
                // shows as archiving lag in `status` and the metrics.
                if tails.values().any(|t| t == object) && matches!(damage, Damage::Delete) {
                    continue;
                }
                // Snapshots, pins, deletion plans, reports and restore point
                // markers stand alone: nothing else names them, and deleting
                // one is what `forget`, `unpin` and `prune` do. Their loss
                // cannot be told from those by the repository's structure;
                // Object Lock is the guard against it.
                if STANDALONE.contains(kind) && matches!(damage, Damage::Delete) {
                    continue;
                }
                // Without the object naming its own audit log, the
                // repository starts a new log beside the old one, which
                // stays whole and verifiable: no entry is lost.
                if *kind == "audit log name" && matches!(damage, Damage::Delete) {
                    continue;
                }
                // PostgreSQL's backup history files are informational:
                // recovery never reads them, so losing one is no damage.
                if *kind == "backup history file" && matches!(damage, Damage::Delete) {
                    continue;
                }
                let out = s.env.run(&["--json", "check", "--read-data"]);
                let found = detected(&out);
                let f = figures.entry(kind).or_default();
                f.0 += 1;
                f.1 += u64::from(found);
                assert!(
                    found,
                    "{damage:?} of {kind} {} went unnoticed by check:\n{}\n{}",
                    rel.display(),
                    out.stdout,
                    out.stderr
                );
                // Restores: exact, or refused.
                let (ok, refused) = restores_never_lie(&s, kind);
                restores += ok;
                refused_restores += refused;
            }
        }
    }
    let cases: u64 = figures.values().map(|f| f.0).sum();
    eprintln!(
        "{cases} damaged repositories, all found by check: {figures:?}; \
         {restores} restores exact, {refused_restores} refused, 0 wrong"
    );
}

/// Restores the files snapshot and the base backup (and fetches the
/// segment) from the damaged repository: each restores exactly or fails.
/// Returns (exact, refused).
fn restores_never_lie(s: &Setup, kind: &str) -> (u64, u64) {
    let (mut exact, mut refused) = (0, 0);
    let mut tally = |ok: bool| {
        if ok { exact += 1 } else { refused += 1 }
    };
    if !matches!(
        kind,
        "pack" | "index" | "snapshot" | "config" | "key slot" | "WAL segment"
    ) {
        return (0, 0);
    }
    if kind == "WAL segment" {
        let dest = s.env.path().join("fetched-damaged");
        let _ = std::fs::remove_file(&dest);
        let out = s.env.run(&[
            "wal",
            "fetch",
            &s.segment,
            dest.to_str().unwrap(),
            "--pgdata",
            s.pgdata.to_str().unwrap(),
        ]);
        if out.code == 0 {
            assert_eq!(
                std::fs::read(&dest).unwrap(),
                s.segment_bytes,
                "wrong WAL restored"
            );
        }
        tally(out.code == 0);
        return (exact, refused);
    }
    let target = s.env.path().join("restored-files");
    let _ = std::fs::remove_dir_all(&target);
    let out = s.env.run(&[
        "restore",
        "files",
        &s.files_id,
        "--target",
        target.to_str().unwrap(),
    ]);
    if out.code == 0 {
        let restored = target.join(s.src.strip_prefix("/").unwrap());
        assert!(diff_r(&s.src, &restored), "files restored with wrong bytes");
    }
    tally(out.code == 0);
    let (data, _) = restore_dir(&s.env, "restored-pg");
    let _ = std::fs::remove_dir_all(&data);
    let out = s.env.run(&[
        "restore",
        "postgres",
        &s.pg_id,
        "--target-dir",
        data.to_str().unwrap(),
    ]);
    if out.code == 0 {
        assert!(
            diff_r(&s.pg_reference, &data),
            "base backup restored with wrong bytes"
        );
    }
    tally(out.code == 0);
    (exact, refused)
}
