//! Run history: every run of a scheduled job — succeeded, failed with its
//! error, skipped because the previous run still ran, interrupted by a
//! stop, or stopped at its deadline — is a report of kind `run` in the
//! repository catalog, so it survives the host and travels with `copy`.

use chrono::{DateTime, Utc};
use lifeboat_format::Id;
use lifeboat_format::report::CatalogReport;
use lifeboat_repo::Repository;
use lifeboat_repo::repository::local_origin;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The catalog report kind of a run record.
pub const KIND: &str = "run";

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every step exited 0.
    Success,
    /// A step failed.
    Failure,
    /// Not started: the previous run of the job still ran (or the daemon
    /// was paused).
    Skipped,
    /// Stopped by a stop of the daemon (or the daemon died).
    Interrupted,
    /// Stopped at its deadline.
    TimedOut,
}

impl Outcome {
    /// The name used in records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Skipped => "skipped",
            Outcome::Interrupted => "interrupted",
            Outcome::TimedOut => "timed-out",
        }
    }

    /// Every outcome, for metrics.
    pub const ALL: [Outcome; 5] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Skipped,
        Outcome::Interrupted,
        Outcome::TimedOut,
    ];
}

/// One run of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The job's name.
    pub job: String,
    /// What it does (`backup`, `copy`, `check`, `prune`, `drill`).
    pub run: String,
    /// The declared source it concerns.
    #[serde(default)]
    pub source: Option<String>,
    /// The fire time it ran for (a catch-up run has the missed one).
    #[serde(default)]
    pub scheduled: Option<DateTime<Utc>>,
    /// When it started (for a skipped run: when it was skipped).
    pub started: DateTime<Utc>,
    /// When it ended.
    pub ended: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// The failing step's exit code.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// What went wrong, in the job's own words.
    #[serde(default)]
    pub error: Option<String>,
    /// Bytes the backup read.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Bytes the backup added to the repository.
    #[serde(default)]
    pub bytes_added: Option<u64>,
    /// The snapshot a backup made.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// A catch-up run after the daemon was down.
    #[serde(default)]
    pub catch_up: bool,
    /// The recovery time a drill measured.
    #[serde(default)]
    pub rto_seconds: Option<f64>,
    /// Who asked for the run (a dashboard or API user); absent when the
    /// schedule started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<String>,
}

impl RunRecord {
    /// Seconds it ran.
    pub fn seconds(&self) -> f64 {
        (self.ended - self.started).num_milliseconds().max(0) as f64 / 1000.0
    }

    /// The record as a catalog report.
    pub fn to_catalog(&self) -> CatalogReport {
        let o = local_origin(None);
        CatalogReport {
            kind: KIND.into(),
            time: self.started,
            by: format!("{}@{}", o.user, o.host),
            ok: self.outcome == Outcome::Success,
            summary: format!(
                "{} {}{}",
                self.job,
                self.outcome.as_str(),
                self.error
                    .as_deref()
                    .map(|e| format!(": {}", e.lines().last().unwrap_or(e)))
                    .unwrap_or_default()
            ),
            body: serde_json::to_value(self).unwrap_or_default(),
        }
    }
}

/// Stores a run record.
pub async fn save(repo: &Repository, record: &RunRecord) -> Result<Id> {
    Ok(repo.save_report(&record.to_catalog()).await?)
}

/// Every run record, oldest first (unreadable ones left out).
pub async fn load(repo: &Repository) -> Result<Vec<RunRecord>> {
    let list = repo.reports(Some(KIND)).await?;
    let mut out: Vec<RunRecord> = list
        .reports
        .into_iter()
        .filter_map(|(_, r)| serde_json::from_value(r.body).ok())
        .collect();
    out.sort_by_key(|r: &RunRecord| r.started);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_summarise_their_error() {
        let t = Utc::now();
        let r = RunRecord {
            job: "backup prod".into(),
            run: "backup".into(),
            source: Some("prod".into()),
            scheduled: Some(t),
            started: t,
            ended: t + chrono::Duration::seconds(3),
            outcome: Outcome::Failure,
            exit_code: Some(4),
            error: Some("connecting\nerror: cannot connect to PostgreSQL".into()),
            bytes: None,
            bytes_added: None,
            snapshot: None,
            catch_up: false,
            rto_seconds: None,
            started_by: None,
        };
        let c = r.to_catalog();
        assert_eq!(c.kind, KIND);
        assert!(!c.ok);
        assert_eq!(
            c.summary,
            "backup prod failure: error: cannot connect to PostgreSQL"
        );
        let back: RunRecord = serde_json::from_value(c.body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
        assert_eq!(back.seconds(), 3.0);
    }
}
