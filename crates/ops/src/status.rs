//! `status`: the old runbook's daily, weekly, monthly and quarterly
//! checklist as one report — per source the newest backup and its age
//! against the RPO target, the WAL archive lag, the newest drill and its
//! measured RTO, the last integrity check, and what is overdue. The
//! judgement is a pure function of what the repository holds and the time.

use chrono::{DateTime, Utc};
use lifeboat_format::report::CatalogReport;
use lifeboat_format::snapshot::SourceKind;
use lifeboat_postgres::info;
use lifeboat_repo::forget::source_of;
use lifeboat_repo::progress::DynProgress;
use lifeboat_repo::{Repository, SnapshotEntry};
use serde::Serialize;

use crate::error::Result;
use crate::runs::{self, Outcome, RunRecord};
use crate::targets::{Measured, Targets, human};

/// One source's newest backup.
#[derive(Clone, Debug, Serialize)]
pub struct SourceStatus {
    /// "host kind paths".
    pub source: String,
    /// Snapshots held.
    pub snapshots: usize,
    /// The newest one's id.
    pub newest: String,
    /// When it was taken.
    pub newest_time: DateTime<Utc>,
    /// Its age against the RPO target.
    pub age: Measured,
}

/// One PostgreSQL cluster's WAL archive.
#[derive(Clone, Debug, Serialize)]
pub struct ArchiveStatus {
    /// System identifier.
    pub system_id: String,
    /// The newest archived WAL file.
    pub newest_wal: Option<String>,
    /// Seconds since it was archived, against the RPO target.
    pub lag: Option<Measured>,
    /// Segments missing that base backups or the recoverable window need.
    pub missing: Vec<String>,
}

/// What the repository says about one cluster's WAL archive.
#[derive(Clone, Debug, Default)]
pub struct ArchiveFacts {
    /// System identifier.
    pub system_id: String,
    /// The newest archived WAL file.
    pub newest_wal: Option<String>,
    /// Seconds since it was archived.
    pub lag_seconds: Option<i64>,
    /// Holes in the archive, each as "file: what it breaks".
    pub missing: Vec<String>,
}

/// The newest drill or check.
#[derive(Clone, Debug, Serialize)]
pub struct RunStatus {
    /// When the newest one ran.
    pub time: DateTime<Utc>,
    /// Whether it passed.
    pub ok: bool,
    /// Its one-line summary.
    pub summary: String,
    /// When the newest passing one ran, if any.
    pub last_passed: Option<DateTime<Utc>>,
    /// Age of the newest passing one against the interval.
    pub age: Option<Measured>,
    /// Recovery time the newest passing drill measured, against the RTO target.
    pub rto: Option<Measured>,
}

/// One scheduled job's newest run (skipped fires left aside).
#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    /// The job's name.
    pub job: String,
    /// The declared source it concerns.
    pub source: Option<String>,
    /// When its newest run started.
    pub time: DateTime<Utc>,
    /// How that run ended.
    pub outcome: String,
    /// Its error, when it failed.
    pub error: Option<String>,
    /// When the job last succeeded, if ever.
    pub last_success: Option<DateTime<Utc>>,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    /// When it was made.
    pub now: DateTime<Utc>,
    /// Backups per source.
    pub sources: Vec<SourceStatus>,
    /// WAL archives per cluster.
    pub archives: Vec<ArchiveStatus>,
    /// The newest drill.
    pub drill: Option<RunStatus>,
    /// The newest check.
    pub check: Option<RunStatus>,
    /// The daemon's jobs, by their newest run.
    pub jobs: Vec<JobStatus>,
    /// What needs doing, one line each.
    pub overdue: Vec<String>,
    /// True when nothing is overdue or failing.
    pub ok: bool,
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

fn runs(
    kind: &str,
    reports: &[CatalogReport],
    now: DateTime<Utc>,
    every: chrono::Duration,
    rto: Option<chrono::Duration>,
) -> Option<RunStatus> {
    let mine: Vec<&CatalogReport> = reports.iter().filter(|r| r.kind == kind).collect();
    let newest = mine.iter().max_by_key(|r| r.time)?;
    let passed = mine.iter().filter(|r| r.ok).max_by_key(|r| r.time);
    Some(RunStatus {
        time: newest.time,
        ok: newest.ok,
        summary: newest.summary.clone(),
        last_passed: passed.map(|r| r.time),
        age: passed.map(|r| Measured::against(secs(now - r.time), every)),
        rto: rto.and_then(|target| {
            let s = passed?.body.get("rto")?.get("seconds")?.as_f64()?;
            Some(Measured::against(s, target))
        }),
    })
}

/// Judges what the repository holds at `now`: `snapshots`, the archives
/// (newest WAL, how long ago it was archived, holes) and the stored drill
/// and check reports.
pub fn judge(
    now: DateTime<Utc>,
    snapshots: &[SnapshotEntry],
    archives: &[ArchiveFacts],
    reports: &[CatalogReport],
    targets: &Targets,
) -> StatusReport {
    let mut overdue = Vec::new();
    let mut groups: std::collections::BTreeMap<String, Vec<&SnapshotEntry>> = Default::default();
    for e in snapshots {
        groups.entry(source_of(&e.snapshot)).or_default().push(e);
    }
    let mut sources = Vec::new();
    for (source, list) in groups {
        let Some(newest) = list.iter().max_by_key(|e| e.snapshot.time) else {
            continue;
        };
        let age = Measured::against(secs(now - newest.snapshot.time), targets.rpo);
        if !age.met {
            overdue.push(format!(
                "backup of {source}: the newest ({}) is {} old, the RPO target is {}",
                newest.snapshot.time.format("%Y-%m-%d %H:%M UTC"),
                human(age.seconds),
                human(age.target_seconds)
            ));
        }
        sources.push(SourceStatus {
            source,
            snapshots: list.len(),
            newest: newest.id.to_hex(),
            newest_time: newest.snapshot.time,
            age,
        });
    }
    if sources.is_empty() {
        overdue.push("no backups: the repository holds no snapshot".into());
    }
    let archives: Vec<ArchiveStatus> = archives
        .iter()
        .map(|a| {
            let sys = &a.system_id;
            let lag = a
                .lag_seconds
                .map(|l| Measured::against(l.max(0) as f64, targets.rpo));
            if let Some(l) = lag
                && !l.met
            {
                overdue.push(format!(
                    "WAL archive of cluster {sys}: nothing archived for {}, the RPO target is {} (is archive_command failing?)",
                    human(l.seconds),
                    human(l.target_seconds)
                ));
            }
            for m in &a.missing {
                overdue.push(format!(
                    "WAL archive of cluster {sys}: {m} (run `lifeboat check` for what it affects)"
                ));
            }
            ArchiveStatus {
                system_id: sys.clone(),
                newest_wal: a.newest_wal.clone(),
                lag,
                missing: a.missing.clone(),
            }
        })
        .collect();
    let has_pg = snapshots.iter().any(|e| {
        matches!(
            e.snapshot.source,
            SourceKind::Postgres | SourceKind::PostgresLogical
        )
    });
    let drill = runs(
        "drill",
        reports,
        now,
        targets.drill_every,
        Some(targets.rto),
    );
    match &drill {
        None if has_pg => overdue.push(format!(
            "restore drill: none has run; run `lifeboat drill` (target: every {})",
            human(secs(targets.drill_every))
        )),
        None => {}
        Some(d) => {
            if !d.ok {
                overdue.push(format!("restore drill: the last one failed: {}", d.summary));
            }
            match d.age {
                None => overdue.push("restore drill: none has passed".into()),
                Some(a) if !a.met => overdue.push(format!(
                    "restore drill: the last passing one is {} old, the target is every {}",
                    human(a.seconds),
                    human(a.target_seconds)
                )),
                Some(_) => {}
            }
            if let Some(r) = d.rto
                && !r.met
            {
                overdue.push(format!(
                    "RTO: the last drill measured {}, the target is {}",
                    human(r.seconds),
                    human(r.target_seconds)
                ));
            }
        }
    }
    let check = runs("check", reports, now, targets.check_every, None);
    match &check {
        None if !sources.is_empty() => overdue.push(format!(
            "integrity check: none recorded; run `lifeboat check --read-data --subset 10%` (target: every {})",
            human(secs(targets.check_every))
        )),
        None => {}
        Some(c) => {
            if !c.ok {
                overdue.push(format!("integrity check: the last one failed: {}", c.summary));
            }
            match c.age {
                None => overdue.push("integrity check: none has passed".into()),
                Some(a) if !a.met => overdue.push(format!(
                    "integrity check: the last passing one is {} old, the target is every {}",
                    human(a.seconds),
                    human(a.target_seconds)
                )),
                Some(_) => {}
            }
        }
    }
    let jobs = job_runs(reports);
    for j in jobs
        .iter()
        .filter(|j| j.outcome != Outcome::Success.as_str())
    {
        overdue.push(format!(
            "scheduled job {}: the last run ({}) {}{}{}",
            j.job,
            j.time.format("%Y-%m-%d %H:%M UTC"),
            match j.outcome.as_str() {
                "failure" => "failed",
                "timed-out" => "was stopped at its deadline",
                "interrupted" => "was interrupted",
                other => other,
            },
            j.error
                .as_deref()
                .map(|e| {
                    let last = e.lines().last().unwrap_or(e);
                    format!(": {}", last.strip_prefix("error: ").unwrap_or(last))
                })
                .unwrap_or_default(),
            j.last_success
                .map(|t| format!(" (last success {})", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_else(|| " (it has never succeeded)".into())
        ));
    }
    StatusReport {
        now,
        ok: overdue.is_empty(),
        sources,
        archives,
        drill,
        check,
        jobs,
        overdue,
    }
}

/// Each job's newest run that was not skipped, by job name.
fn job_runs(reports: &[CatalogReport]) -> Vec<JobStatus> {
    let mut records: Vec<RunRecord> = reports
        .iter()
        .filter(|r| r.kind == runs::KIND)
        .filter_map(|r| serde_json::from_value(r.body.clone()).ok())
        .filter(|r: &RunRecord| r.outcome != Outcome::Skipped)
        .collect();
    records.sort_by_key(|r| r.started);
    let mut by_job: std::collections::BTreeMap<String, JobStatus> = Default::default();
    for r in records {
        let last_success = by_job.get(&r.job).and_then(|j| j.last_success);
        let ok = r.outcome == Outcome::Success;
        by_job.insert(
            r.job.clone(),
            JobStatus {
                last_success: if ok { Some(r.started) } else { last_success },
                job: r.job,
                source: r.source,
                time: r.started,
                outcome: r.outcome.as_str().into(),
                error: r.error,
            },
        );
    }
    by_job.into_values().collect()
}

/// Gathers everything from the repository and judges it now. With a
/// declared `source` name, only its snapshots (tagged `source:NAME`) and
/// its jobs' runs count; archives, drills and checks are the repository's.
pub async fn gather(
    repo: &Repository,
    targets: &Targets,
    source: Option<&str>,
    progress: &DynProgress,
) -> Result<StatusReport> {
    let tag = source.map(|s| format!("source:{s}"));
    let snapshots: Vec<SnapshotEntry> = repo
        .list_snapshots(progress)
        .await?
        .into_iter()
        .filter(|e| tag.as_ref().is_none_or(|t| e.snapshot.tags.contains(t)))
        .collect();
    let clusters = info::info(repo, progress).await?;
    let archives: Vec<ArchiveFacts> = clusters
        .into_iter()
        .filter(|c| c.newest_wal.is_some() || !c.continuity.is_empty())
        .map(|c| ArchiveFacts {
            missing: c
                .continuity
                .iter()
                .map(|p| format!("{} is missing: {}", p.file, p.message))
                .collect(),
            system_id: c.system_id,
            newest_wal: c.newest_wal,
            lag_seconds: c.archive_lag_seconds,
        })
        .collect();
    let reports = repo.reports(None).await?;
    let reports: Vec<CatalogReport> = reports
        .reports
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| {
            r.kind != runs::KIND
                || source.is_none_or(|s| r.body.get("source").and_then(|v| v.as_str()) == Some(s))
        })
        .collect();
    Ok(judge(Utc::now(), &snapshots, &archives, &reports, targets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use lifeboat_format::Id;
    use lifeboat_format::snapshot::{BackupKind, Snapshot};

    fn snap(n: u8, host: &str, source: SourceKind, time: DateTime<Utc>) -> SnapshotEntry {
        SnapshotEntry {
            id: Id::from_bytes([n; 32]),
            snapshot: Snapshot {
                time,
                host: host.into(),
                user: "ops".into(),
                source,
                paths: vec!["/srv".into()],
                kind: BackupKind::Scheduled,
                reason: None,
                tags: Vec::new(),
                root: Id::from_bytes([0; 32]),
                parent: None,
                summary: Default::default(),
                program: "lifeboat test".into(),
                postgres: None,
                logical: None,
                bucket: None,
            },
        }
    }

    fn report(kind: &str, time: DateTime<Utc>, ok: bool, rto: f64) -> CatalogReport {
        CatalogReport {
            kind: kind.into(),
            time,
            by: "ops@db1".into(),
            ok,
            summary: format!("{kind} ok={ok}"),
            body: serde_json::json!({"rto": {"seconds": rto}}),
        }
    }

    #[test]
    fn everything_recent_is_ok() {
        let now = Utc::now();
        let t = Targets::default();
        let snaps = [snap(
            1,
            "db1",
            SourceKind::PostgresLogical,
            now - Duration::hours(3),
        )];
        let reports = [
            report("drill", now - Duration::days(3), true, 40.0),
            report("check", now - Duration::days(1), true, 0.0),
        ];
        let s = judge(
            now,
            &snaps,
            &[ArchiveFacts {
                system_id: "7".into(),
                newest_wal: Some("0001".into()),
                lag_seconds: Some(20),
                missing: Vec::new(),
            }],
            &reports,
            &t,
        );
        assert!(s.ok, "{:?}", s.overdue);
        assert_eq!(s.sources.len(), 1);
        assert_eq!(
            s.drill.as_ref().and_then(|d| d.rto).map(|r| r.seconds),
            Some(40.0)
        );
    }

    #[test]
    fn old_backups_lagging_archives_and_missing_drills_are_overdue() {
        let now = Utc::now();
        let t = Targets::default();
        let snaps = [
            snap(1, "db1", SourceKind::Postgres, now - Duration::hours(30)),
            snap(2, "web", SourceKind::Files, now - Duration::hours(2)),
        ];
        let s = judge(
            now,
            &snaps,
            &[ArchiveFacts {
                system_id: "7".into(),
                newest_wal: Some("0001".into()),
                lag_seconds: Some(90_000),
                missing: vec![
                    "000000010000000000000004 is missing: a backup cannot be restored".into(),
                ],
            }],
            &[],
            &t,
        );
        assert!(!s.ok);
        let all = s.overdue.join("\n");
        assert!(all.contains("backup of db1"), "{all}");
        assert!(!all.contains("backup of web"), "{all}");
        assert!(all.contains("WAL archive"), "{all}");
        assert!(all.contains("000000010000000000000004 is missing"), "{all}");
        assert!(all.contains("restore drill: none has run"), "{all}");
        assert!(all.contains("integrity check: none recorded"), "{all}");
    }

    #[test]
    fn failed_and_stale_runs_are_reported() {
        let now = Utc::now();
        let t = Targets::default();
        let snaps = [snap(
            1,
            "db1",
            SourceKind::PostgresLogical,
            now - Duration::hours(1),
        )];
        let reports = [
            report("drill", now - Duration::days(40), true, 30.0),
            report("drill", now - Duration::days(1), false, 30.0),
            report("check", now - Duration::days(2), true, 0.0),
            report("drill", now - Duration::days(50), true, 9000.0),
        ];
        let s = judge(now, &snaps, &[], &reports, &t);
        let all = s.overdue.join("\n");
        assert!(all.contains("the last one failed"), "{all}");
        assert!(all.contains("last passing one is 40d"), "{all}");
        assert!(
            !all.contains("RTO"),
            "only the newest passing drill counts: {all}"
        );
        assert!(!all.contains("integrity"), "{all}");
    }

    fn run(
        job: &str,
        started: DateTime<Utc>,
        outcome: Outcome,
        error: Option<&str>,
    ) -> CatalogReport {
        RunRecord {
            job: job.into(),
            run: "backup".into(),
            source: Some("app".into()),
            scheduled: Some(started),
            started,
            ended: started,
            outcome,
            exit_code: None,
            error: error.map(Into::into),
            bytes: None,
            bytes_added: None,
            snapshot: None,
            catch_up: false,
            rto_seconds: None,
            started_by: None,
        }
        .to_catalog()
    }

    #[test]
    fn a_failed_scheduled_backup_shows_as_failed_not_just_old() {
        let now = Utc::now();
        let t = Targets::default();
        // The newest backup is recent enough for the RPO target…
        let snaps = [snap(
            1,
            "db1",
            SourceKind::PostgresLogical,
            now - Duration::hours(2),
        )];
        let mut reports = vec![
            report("drill", now - Duration::days(3), true, 40.0),
            report("check", now - Duration::days(1), true, 0.0),
            run(
                "backup app",
                now - Duration::hours(2),
                Outcome::Success,
                None,
            ),
            // …but the run after it failed; a skip since does not hide that.
            run(
                "backup app",
                now - Duration::hours(1),
                Outcome::Failure,
                Some("connecting\nerror: cannot connect"),
            ),
            run(
                "backup app",
                now - Duration::minutes(1),
                Outcome::Skipped,
                None,
            ),
            run("prune", now - Duration::hours(1), Outcome::Success, None),
        ];
        let s = judge(now, &snaps, &[], &reports, &t);
        assert!(!s.ok);
        let all = s.overdue.join("\n");
        assert!(
            all.contains("scheduled job backup app: the last run"),
            "{all}"
        );
        assert!(
            all.contains("failed: cannot connect (last success"),
            "{all}"
        );
        assert!(!all.contains("prune"), "{all}");
        assert_eq!(s.jobs.len(), 2);

        // The next run succeeds: nothing is left overdue.
        reports.push(run("backup app", now, Outcome::Success, None));
        let s = judge(now, &snaps, &[], &reports, &t);
        assert!(s.ok, "{:?}", s.overdue);
    }
}
