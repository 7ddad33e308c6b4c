//! Restore records: every `restore postgres` and `recover` leaves one in the
//! repository catalog (a report of kind `restore`, docs/FORMAT.md), saying
//! what was restored where, whether the copy was made the new primary, and
//! which timeline it starts once promoted.
//!
//! `info postgres` names the restore that created a timeline from them, and
//! the planner counts a timeline that a restore made the new primary as
//! production's, so `latest` follows it even though its parent timeline was
//! still being archived when it forked.

use std::collections::BTreeSet;

use chrono::Utc;
use lifeboat_format::Id;
use lifeboat_format::report::CatalogReport;
use lifeboat_repo::Repository;
use lifeboat_repo::repository::local_origin;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The catalog report kind of a restore record.
pub const KIND: &str = "restore";

/// One restore of a base backup, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    /// The cluster restored.
    pub system_id: String,
    /// The base backup restored (snapshot id).
    pub snapshot: String,
    /// The timeline recovery followed.
    pub followed_timeline: u32,
    /// The timeline the copy starts when promoted: the one it reached when
    /// it was started and promoted, else the one PostgreSQL will pick (the
    /// newest in the archive plus one).
    pub new_timeline: u32,
    /// True when `new_timeline` was read from the promoted server.
    #[serde(default)]
    pub new_timeline_confirmed: bool,
    /// The copy replaces the original and archives into the repository.
    pub new_primary: bool,
    /// The recovery target, in words.
    pub target: String,
    /// Where it was restored.
    pub target_dir: String,
}

impl RestoreRecord {
    /// The record as a catalog report.
    pub fn to_catalog(&self) -> CatalogReport {
        let o = local_origin(None);
        CatalogReport {
            kind: KIND.into(),
            time: Utc::now(),
            by: format!("{}@{}", o.user, o.host),
            ok: true,
            summary: format!(
                "restored base backup {} to {} into {} ({}), timeline {} -> {}",
                &self.snapshot[..self.snapshot.len().min(8)],
                self.target,
                self.target_dir,
                if self.new_primary {
                    "the new primary"
                } else {
                    "a copy, not archiving"
                },
                self.followed_timeline,
                self.new_timeline
            ),
            body: serde_json::to_value(self).unwrap_or_default(),
        }
    }

    /// A short description for `info postgres`.
    pub fn describe(&self, report: &CatalogReport, id: &Id) -> String {
        format!(
            "restore {} by {} at {} into {} ({})",
            id.short(),
            report.by,
            report.time.format("%Y-%m-%d %H:%M:%S UTC"),
            self.target_dir,
            if self.new_primary {
                "made the new primary"
            } else {
                "a copy"
            }
        )
    }
}

/// A restore record with its catalog entry.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The report's id.
    pub id: Id,
    /// The report (who, when).
    pub report: CatalogReport,
    /// The record.
    pub record: RestoreRecord,
}

/// Every restore record of cluster `sysid`, oldest first.
pub async fn load(repo: &Repository, sysid: u64) -> Result<Vec<Recorded>> {
    let list = repo.reports(Some(KIND)).await?;
    Ok(list
        .reports
        .into_iter()
        .filter_map(|(id, report)| {
            let record: RestoreRecord = serde_json::from_value(report.body.clone()).ok()?;
            (record.system_id == sysid.to_string()).then_some(Recorded { id, report, record })
        })
        .collect())
}

/// The timelines restores made the new primary.
pub fn primary_timelines(records: &[Recorded]) -> BTreeSet<u32> {
    records
        .iter()
        .filter(|r| r.record.new_primary)
        .map(|r| r.record.new_timeline)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_catalog() {
        let r = RestoreRecord {
            system_id: "7".into(),
            snapshot: "ab".repeat(32),
            followed_timeline: 1,
            new_timeline: 2,
            new_timeline_confirmed: true,
            new_primary: true,
            target: "latest".into(),
            target_dir: "/srv/pg".into(),
        };
        let c = r.to_catalog();
        assert_eq!(c.kind, KIND);
        assert!(c.summary.contains("the new primary"), "{}", c.summary);
        let back: RestoreRecord =
            serde_json::from_value(c.body.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
        let recorded = [Recorded {
            id: Id::from_bytes([1; 32]),
            report: c,
            record: r,
        }];
        assert_eq!(primary_timelines(&recorded), BTreeSet::from([2]));
    }
}
