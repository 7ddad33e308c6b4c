//! The built-in alert rules, as a pure function of what the daemon knows:
//! a job failed; a source's newest backup is older than its RPO; WAL
//! archiving lags; a drill failed or is overdue; a backup's size is far from
//! the median of its last runs; the repository's disk or quota is nearly
//! full.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Alert;
use crate::duration::human;
use crate::runs::{Outcome, RunRecord};

/// What the rules look at.
#[derive(Clone, Debug, Default)]
pub struct Facts<'a> {
    /// Now.
    pub now: DateTime<Utc>,
    /// When the daemon started: a source that never backed up is late only
    /// once its RPO has passed since then.
    pub started: Option<DateTime<Utc>>,
    /// Every run record known, oldest first.
    pub runs: &'a [RunRecord],
    /// Declared sources with a backup job: name, RPO, last successful backup.
    pub sources: Vec<(String, Duration, Option<DateTime<Utc>>)>,
    /// Sources with a drill job: name, how often it must pass.
    pub drilled: Vec<(String, Duration)>,
    /// Per cluster: system id and seconds since its newest WAL was archived.
    pub archive_lag: Vec<(String, i64)>,
    /// The fraction of a local repository's file system in use.
    pub disk_used: Option<f64>,
    /// Bytes stored, and the configured quota.
    pub quota: Option<(u64, u64)>,
}

/// The limits the rules apply.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Factor off the median that makes a backup's size an anomaly.
    pub size_factor: f64,
    /// How many earlier backups the median is taken over.
    pub size_history: usize,
    /// WAL archive lag limit.
    pub archive_lag: Duration,
    /// Disk fullness limit (fraction).
    pub disk_full: f64,
    /// Quota fullness limit (fraction).
    pub quota_full: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            size_factor: 3.0,
            size_history: 7,
            archive_lag: Duration::from_secs(15 * 60),
            disk_full: 0.9,
            quota_full: 0.9,
        }
    }
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// Every alert that holds.
pub fn evaluate(f: &Facts, limits: &Limits) -> Vec<Alert> {
    let mut out = Vec::new();
    let jobs: std::collections::BTreeSet<&str> = f.runs.iter().map(|r| r.job.as_str()).collect();
    for job in jobs {
        let mine: Vec<&RunRecord> = f
            .runs
            .iter()
            .filter(|r| r.job == job && r.outcome != Outcome::Skipped)
            .collect();
        let Some(last) = mine.last() else { continue };
        if matches!(last.outcome, Outcome::Failure | Outcome::TimedOut) {
            let what = if last.run == "drill" {
                "drill-failed"
            } else {
                "job-failed"
            };
            out.push(Alert {
                key: format!("{what}:{job}"),
                summary: format!(
                    "{job} {} at {}",
                    if last.outcome == Outcome::TimedOut {
                        "ran past its deadline"
                    } else {
                        "failed"
                    },
                    last.started.format("%Y-%m-%d %H:%M UTC")
                ),
                detail: last.error.clone().unwrap_or_default(),
            });
        }
        // A backup far from the usual size: a source that shrank (data
        // lost?) or grew (a runaway table, a dump left on disk).
        if last.run == "backup"
            && last.outcome == Outcome::Success
            && let Some(added) = last.bytes
        {
            let earlier: Vec<u64> = mine
                .iter()
                .rev()
                .skip(1)
                .filter(|r| r.outcome == Outcome::Success)
                .filter_map(|r| r.bytes)
                .take(limits.size_history)
                .collect();
            if earlier.len() >= 3
                && let Some(m) = median(earlier)
                && m > 0
            {
                let ratio = added as f64 / m as f64;
                if ratio > limits.size_factor || ratio < 1.0 / limits.size_factor {
                    out.push(Alert {
                        key: format!("backup-size:{job}"),
                        summary: format!(
                            "{job}: the last backup read {} bytes, {:.1}x the median {} of its last runs",
                            added, ratio, m
                        ),
                        detail: "a source that shrank may have lost data; one that grew may hold something unexpected".into(),
                    });
                }
            }
        }
    }
    for (source, rpo, last) in &f.sources {
        let age = last.map(|t| f.now - t);
        let late = match (age, f.started) {
            (None, Some(started)) => (f.now - started).to_std().unwrap_or_default() > *rpo,
            (None, None) => true,
            (Some(a), _) => a.to_std().unwrap_or_default() > *rpo,
        };
        if late {
            out.push(Alert {
                key: format!("rpo:{source}"),
                summary: match age {
                    None => format!("{source}: no backup has succeeded yet"),
                    Some(a) => format!(
                        "{source}: the newest backup is {} old, the RPO target is {}",
                        human(a.to_std().unwrap_or_default()),
                        human(*rpo)
                    ),
                },
                detail: "`lifeboat runs --source` shows what the backup jobs did".into(),
            });
        }
    }
    for (source, every) in &f.drilled {
        let passed = f
            .runs
            .iter()
            .rev()
            .find(|r| {
                r.run == "drill"
                    && r.source.as_deref() == Some(source)
                    && r.outcome == Outcome::Success
            })
            .map(|r| r.ended);
        let overdue = passed.is_none_or(|t| (f.now - t).to_std().unwrap_or_default() > *every);
        if overdue {
            out.push(Alert {
                key: format!("drill-overdue:{source}"),
                summary: format!(
                    "{source}: {} the target is a passing drill every {}",
                    match passed {
                        None => "no restore drill has passed;".to_string(),
                        Some(t) => format!(
                            "the last passing restore drill was on {};",
                            t.format("%Y-%m-%d")
                        ),
                    },
                    human(*every)
                ),
                detail: String::new(),
            });
        }
    }
    for (sysid, lag) in &f.archive_lag {
        if *lag > limits.archive_lag.as_secs() as i64 {
            out.push(Alert {
                key: format!("archive-lag:{sysid}"),
                summary: format!(
                    "cluster {sysid}: no WAL archived for {} (limit {})",
                    human(Duration::from_secs((*lag).max(0) as u64)),
                    human(limits.archive_lag)
                ),
                detail: "is archive_command failing? see pg_stat_archiver and the server log"
                    .into(),
            });
        }
    }
    if let Some(used) = f.disk_used
        && used > limits.disk_full
    {
        out.push(Alert {
            key: "disk-full".into(),
            summary: format!("the repository's disk is {:.0}% full", used * 100.0),
            detail: "run `lifeboat forget` and `lifeboat prune`, or give the repository more room"
                .into(),
        });
    }
    if let Some((stored, quota)) = f.quota
        && quota > 0
        && stored as f64 > quota as f64 * limits.quota_full
    {
        out.push(Alert {
            key: "quota".into(),
            summary: format!(
                "the repository holds {stored} bytes, {:.0}% of its quota of {quota}",
                stored as f64 * 100.0 / quota as f64
            ),
            detail: "run `lifeboat forget` and `lifeboat prune`, or raise the quota".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        job: &str,
        outcome: Outcome,
        bytes: Option<u64>,
        minutes_ago: i64,
        now: DateTime<Utc>,
    ) -> RunRecord {
        let t = now - chrono::Duration::minutes(minutes_ago);
        RunRecord {
            job: job.into(),
            run: if job.starts_with("drill") {
                "drill".into()
            } else {
                "backup".into()
            },
            source: Some("prod".into()),
            scheduled: Some(t),
            started: t,
            ended: t,
            outcome,
            exit_code: None,
            error: Some("connection refused".into()),
            bytes,
            bytes_added: bytes,
            snapshot: None,
            catch_up: false,
            rto_seconds: None,
            started_by: None,
        }
    }

    fn keys(a: &[Alert]) -> Vec<&str> {
        a.iter().map(|a| a.key.as_str()).collect()
    }

    #[test]
    fn each_rule_holds_when_it_should_and_not_otherwise() {
        let now = Utc::now();
        let mut runs = vec![
            run("backup prod", Outcome::Success, Some(100), 50, now),
            run("backup prod", Outcome::Success, Some(110), 40, now),
            run("backup prod", Outcome::Success, Some(90), 30, now),
            run("backup prod", Outcome::Success, Some(105), 20, now),
        ];
        let mut f = Facts {
            now,
            runs: &[],
            sources: vec![(
                "prod".into(),
                Duration::from_secs(3600),
                Some(now - chrono::Duration::minutes(20)),
            )],
            ..Facts::default()
        };
        let limits = Limits::default();
        let with = |f: &Facts, runs: &[RunRecord]| evaluate(&Facts { runs, ..f.clone() }, &limits);
        assert!(with(&f, &runs).is_empty(), "{:?}", with(&f, &runs));
        // A failure.
        runs.push(run("backup prod", Outcome::Failure, None, 10, now));
        assert_eq!(keys(&with(&f, &runs)), ["job-failed:backup prod"]);
        // A skipped run does not hide it.
        runs.push(run("backup prod", Outcome::Skipped, None, 5, now));
        assert_eq!(keys(&with(&f, &runs)), ["job-failed:backup prod"]);
        // A tenfold backup is an anomaly.
        runs.push(run("backup prod", Outcome::Success, Some(1000), 1, now));
        f.runs = &runs;
        assert_eq!(keys(&evaluate(&f, &limits)), ["backup-size:backup prod"]);
        // A source that never backed up is late only once the daemon has
        // been up longer than its RPO.
        let mut fresh = f.clone();
        fresh.sources[0].2 = None;
        fresh.started = Some(now - chrono::Duration::minutes(5));
        assert!(!keys(&evaluate(&fresh, &limits)).contains(&"rpo:prod"));
        fresh.started = Some(now - chrono::Duration::hours(2));
        assert!(keys(&evaluate(&fresh, &limits)).contains(&"rpo:prod"));
        // The RPO passed; the archive lags; the disk and quota fill; no drill passed.
        f.sources[0].2 = Some(now - chrono::Duration::hours(2));
        f.archive_lag.push(("7".into(), 3600));
        f.disk_used = Some(0.95);
        f.quota = Some((95, 100));
        f.drilled.push(("prod".into(), Duration::from_secs(86400)));
        let all = evaluate(&f, &limits);
        assert_eq!(
            keys(&all),
            [
                "backup-size:backup prod",
                "rpo:prod",
                "drill-overdue:prod",
                "archive-lag:7",
                "disk-full",
                "quota"
            ]
        );
        assert!(all[1].summary.contains("2h old"), "{}", all[1].summary);
    }
}
