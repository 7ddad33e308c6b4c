//! Restore drills: restore a backup into a scratch cluster (or a staging
//! database), verify it (row counts, `pg_amcheck`, the user's checks),
//! measure the recovery time (RTO) and the data-loss window (RPO) against
//! their targets, and produce a report. A drill never touches the source
//! database or the WAL archive: the scratch cluster does not archive, and
//! everything it used is removed afterwards.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_format::report::CatalogReport;
use lifeboat_format::snapshot::SourceKind;
use lifeboat_postgres::checks::{CheckResult, CheckSpec};
use lifeboat_postgres::server::PgBin;
use lifeboat_repo::forget::source_of;
use lifeboat_repo::progress::{DynProgress, Event};
use lifeboat_repo::repository::local_origin;
use lifeboat_repo::{Repository, SnapshotEntry};
use serde::{Deserialize, Serialize};

use crate::error::{OpsError, Result};

mod bucket;
mod logical;
mod physical;
use crate::steps::{Step, StepLog};
use crate::targets::{Measured, Targets, human};
use crate::verify::{self, Restored, TableCount};

/// What to drill and how.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// `latest`, `random`, or a snapshot id (prefix).
    pub snapshot: String,
    /// Choose only among snapshots carrying this tag (a declared source's
    /// `source:NAME`).
    pub tag: Option<String>,
    /// Recover to this moment (physical) or the newest backup before it
    /// (logical); default: now, i.e. "the database was lost just now".
    pub target_time: Option<DateTime<Utc>>,
    /// A staging database to restore a logical backup into instead of a
    /// scratch cluster (it must be empty).
    pub staging: Option<String>,
    /// The user's checks.
    pub checks: Vec<CheckSpec>,
    /// The objectives.
    pub targets: Targets,
    /// `restore_command` for physical restores (calls `lifeboat wal fetch`).
    pub restore_command: String,
    /// Directory of PostgreSQL's programs (default: matched to the backup).
    pub pg_bin: Option<PathBuf>,
    /// Parallel connections of a logical restore.
    pub jobs: usize,
    /// Pack reads in flight.
    pub concurrency: usize,
    /// How long recovery may take before the drill gives up.
    pub timeout: Duration,
    /// Bucket snapshots: how to reach the object store (endpoint, region,
    /// credentials); the bucket itself comes from the snapshot.
    pub bucket: Option<lifeboat_sources::bucket::BucketSpec>,
    /// Bucket snapshots: restore into this `s3://BUCKET/PREFIX` (kept
    /// afterwards) instead of a fresh prefix of the backed-up bucket
    /// (removed afterwards).
    pub bucket_scratch: Option<String>,
    /// Erasures to re-apply to the restored copy before it is checked.
    pub erasure: Option<lifeboat_postgres::erasure::ErasureReplay>,
    /// Objects of erased subjects to leave out of a bucket drill's restore.
    pub bucket_erasure: Option<lifeboat_sources::bucket::erasure::BucketErasure>,
}

/// What a drill did and found.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DrillReport {
    /// When it started.
    pub started: DateTime<Utc>,
    /// The snapshot restored (id).
    pub snapshot: String,
    /// Its source: `postgres` (physical) or `postgres-logical`.
    pub source: String,
    /// "host kind paths" of the backed-up source.
    pub source_name: String,
    /// When the snapshot was taken.
    pub backup_time: DateTime<Utc>,
    /// The moment of the simulated loss (`--target-time`, else the start).
    pub target_time: DateTime<Utc>,
    /// The newest point the repository can restore at or before it.
    pub recoverable_to: Option<DateTime<Utc>>,
    /// Where it was restored.
    pub restored_into: String,
    /// The scratch cluster's directory (removed after the drill).
    pub scratch_dir: Option<PathBuf>,
    /// Each step, timed.
    pub steps: Vec<Step>,
    /// Row counts per table.
    pub tables: Vec<TableCount>,
    /// The user's checks.
    pub checks: Vec<CheckResult>,
    /// Recovery time: from the start to a database that answered the checks.
    pub rto: Option<Measured>,
    /// Data-loss window: target time minus the newest recoverable point.
    pub rpo: Option<Measured>,
    /// Whether every step passed and both objectives were met.
    pub ok: bool,
    /// What failed, one line each.
    pub failures: Vec<String>,
}

impl DrillReport {
    /// The report as stored in the repository catalog.
    pub fn to_catalog(&self) -> CatalogReport {
        let o = local_origin(None);
        CatalogReport {
            kind: "drill".into(),
            time: self.started,
            by: format!("{}@{}", o.user, o.host),
            ok: self.ok,
            summary: self.summary(),
            body: serde_json::to_value(self).unwrap_or_default(),
        }
    }

    /// One line: outcome, snapshot, RTO and RPO.
    pub fn summary(&self) -> String {
        let fig = |m: &Option<Measured>| {
            m.map_or("not measured".to_string(), |m| {
                format!("{} (target {})", human(m.seconds), human(m.target_seconds))
            })
        };
        let mut s = format!(
            "{} drill of {} {}: RTO {}, RPO {}",
            if self.ok { "passed" } else { "FAILED" },
            self.source,
            short(&self.snapshot),
            fig(&self.rto),
            fig(&self.rpo)
        );
        if let Some(f) = self.failures.first() {
            s.push_str(&format!("; {f}"));
        }
        s
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Picks the snapshot: the newest PostgreSQL backup (at or before the
/// target time), a random one, or the one named.
async fn choose(
    repo: &Repository,
    reference: &str,
    tag: Option<&str>,
    before: Option<DateTime<Utc>>,
    progress: &DynProgress,
) -> Result<SnapshotEntry> {
    let is_pg = |e: &SnapshotEntry| {
        matches!(
            e.snapshot.source,
            SourceKind::Postgres | SourceKind::PostgresLogical | SourceKind::Bucket
        )
    };
    let reference = reference.trim();
    if reference != "latest" && reference != "random" {
        let e = repo.find_snapshot(reference, progress).await?;
        if !is_pg(&e) {
            return Err(OpsError::Invalid(format!(
                "snapshot {} is a {} backup; drills restore PostgreSQL and bucket backups",
                e.id.short(),
                e.snapshot.source.as_str()
            )));
        }
        return Ok(e);
    }
    let mut all: Vec<SnapshotEntry> = repo
        .list_snapshots(progress)
        .await?
        .into_iter()
        .filter(is_pg)
        .filter(|e| before.is_none_or(|t| e.snapshot.time <= t))
        .filter(|e| tag.is_none_or(|t| e.snapshot.tags.iter().any(|x| x == t)))
        .collect();
    all.sort_by_key(|e| e.snapshot.time);
    if all.is_empty() {
        let of = tag.map(|t| format!(" tagged {t}")).unwrap_or_default();
        return Err(OpsError::Invalid(match before {
            Some(t) => {
                format!("the repository holds no PostgreSQL or bucket backup{of} taken before {t}")
            }
            None => format!("the repository holds no PostgreSQL or bucket backup{of} to drill"),
        }));
    }
    let pick = if reference == "latest" {
        all.len() - 1
    } else {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).map_err(|e| OpsError::Invalid(format!("no randomness: {e}")))?;
        (u64::from_le_bytes(b) % all.len() as u64) as usize
    };
    Ok(all.swap_remove(pick))
}

/// Runs a drill. Errors are returned only when nothing could be tried
/// (no such snapshot, repository unreadable); everything after that ends
/// in a report, failed or not.
pub async fn run(
    repo: &Repository,
    opts: &DrillOptions,
    progress: DynProgress,
) -> Result<DrillReport> {
    let started = Utc::now();
    let mut log = StepLog::new();
    progress.event(Event::Phase("choosing the backup"));
    let entry = choose(
        repo,
        &opts.snapshot,
        opts.tag.as_deref(),
        opts.target_time,
        &progress,
    )
    .await?;
    if entry.snapshot.source == SourceKind::Postgres && opts.staging.is_some() {
        return Err(OpsError::Invalid(format!(
            "snapshot {} is a physical base backup: it restores into a data directory, so drills \
             start a scratch cluster for it; --db (a staging database) works with logical backups",
            entry.id.short()
        )));
    }
    let target_time = opts.target_time.unwrap_or(started);
    let mut report = DrillReport {
        started,
        snapshot: entry.id.to_hex(),
        source: entry.snapshot.source.as_str().into(),
        source_name: source_of(&entry.snapshot),
        backup_time: entry.snapshot.time,
        target_time,
        recoverable_to: None,
        restored_into: String::new(),
        scratch_dir: None,
        steps: Vec::new(),
        tables: Vec::new(),
        checks: Vec::new(),
        rto: None,
        rpo: None,
        ok: false,
        failures: Vec::new(),
    };
    if entry.snapshot.source == SourceKind::Postgres {
        physical::drill(repo, opts, &entry, &mut report, &mut log, &progress).await;
    } else if entry.snapshot.source == SourceKind::Bucket {
        bucket::drill(repo, opts, &entry, &mut report, &mut log, &progress).await;
    } else {
        logical::drill(repo, opts, &entry, &mut report, &mut log, &progress).await?;
    }
    report.steps = log.steps.clone();
    report.failures = log.failures();
    for t in &report.tables {
        if !t.matches() {
            report.failures.push(format!(
                "row count: {} (database {}) has {} rows, the backup recorded {}",
                t.table,
                t.database,
                t.found,
                t.expected.unwrap_or_default()
            ));
        }
    }
    for c in report.checks.iter().filter(|c| !c.passed) {
        report.failures.push(format!(
            "check {} returned {}: {}",
            c.name,
            c.value.as_deref().unwrap_or("no value"),
            c.detail
        ));
    }
    for (what, m) in [("RTO", report.rto), ("RPO", report.rpo)] {
        if let Some(m) = m
            && !m.met
        {
            report.failures.push(format!(
                "{what} {} misses the target {} ({:.3}s > {:.3}s)",
                human(m.seconds),
                human(m.target_seconds),
                m.seconds,
                m.target_seconds
            ));
        }
    }
    report.ok = report.failures.is_empty() && report.rto.is_some();
    Ok(report)
}

/// The time of the newest snapshot of `entry`'s source taken at or before
/// `t`: what a restore after a loss at `t` could return to (logical and
/// bucket backups, which have no WAL in between).
pub(crate) async fn newest_of_source_before(
    repo: &Repository,
    entry: &SnapshotEntry,
    t: DateTime<Utc>,
    progress: &DynProgress,
) -> Option<DateTime<Utc>> {
    let source = source_of(&entry.snapshot);
    let all = repo.list_snapshots(progress).await.ok()?;
    all.iter()
        .filter(|e| source_of(&e.snapshot) == source && e.snapshot.time <= t)
        .map(|e| e.snapshot.time)
        .max()
}

pub(crate) fn rpo_of(
    target: DateTime<Utc>,
    recoverable: Option<DateTime<Utc>>,
    targets: &Targets,
) -> Option<Measured> {
    let r = recoverable?;
    let gap = (target - r.min(target)).num_milliseconds() as f64 / 1000.0;
    Some(Measured::against(gap, targets.rpo))
}

/// Row counts, `pg_amcheck`, the user's checks; then the RTO.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn verify_all(
    opts: &DrillOptions,
    bin: &PgBin,
    restored: &Restored,
    databases: &[String],
    expected: &BTreeMap<String, BTreeMap<String, u64>>,
    main: &str,
    reference: DateTime<Utc>,
    report: &mut DrillReport,
    log: &mut StepLog,
    progress: &DynProgress,
) {
    progress.event(Event::Phase("verifying"));
    log.begin("row counts");
    match verify::count_tables(restored, databases, expected).await {
        Ok(t) => {
            let (ok, detail) = verify::describe_counts(&t);
            log.end(ok, detail);
            report.tables = t;
        }
        Err(e) => {
            log.end(false, e);
        }
    }
    log.begin("pg_amcheck");
    let (ok, detail) = verify::amcheck(bin, restored).await;
    log.end(ok, detail);
    log.begin("checks");
    report.checks = verify::run_checks(restored, &opts.checks, main, reference).await;
    let failed = report.checks.iter().filter(|c| !c.passed).count();
    log.end(
        failed == 0,
        if opts.checks.is_empty() {
            "no checks configured ([[check]] in lifeboat.toml)".to_string()
        } else {
            format!(
                "{} of {} passed",
                report.checks.len() - failed,
                report.checks.len()
            )
        },
    );
    report.rto = Some(Measured::against(log.elapsed(), opts.targets.rto));
}

/// The database checks run in unless they name one: the largest database
/// of a base backup other than `postgres` and the templates, else `postgres`.
pub fn main_database(pg: &lifeboat_format::snapshot::PostgresBackup) -> String {
    pg.databases
        .iter()
        .filter(|d| !matches!(d.name.as_str(), "postgres" | "template0" | "template1"))
        .max_by_key(|d| d.size_bytes)
        .map_or_else(|| "postgres".to_string(), |d| d.name.clone())
}
