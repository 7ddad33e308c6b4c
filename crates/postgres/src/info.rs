//! `info postgres`: clusters in the repository, their base backups, the
//! recoverable window per timeline, WAL gaps and the archive lag.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use lifeboat_repo::progress::DynProgress;
use lifeboat_repo::{Repository, SnapshotEntry};
use serde::Serialize;

use crate::catalog::{self, BaseBackup, Catalog, Window};
use crate::continuity::{self, WalProblem};
use crate::error::Result;
use crate::restores;
use crate::segment::us_to_time;
use crate::walname::WalFile;
use crate::walstore;

/// One base backup as listed.
#[derive(Clone, Debug, Serialize)]
pub struct BackupLine {
    /// Snapshot id.
    pub id: String,
    /// Kind (scheduled, pre-deploy, manual).
    pub kind: String,
    /// Timeline.
    pub timeline: u32,
    /// Start and stop positions.
    pub start_lsn: String,
    /// Where it becomes consistent.
    pub stop_lsn: String,
    /// When it became consistent.
    pub stop_time: DateTime<Utc>,
    /// Size of the data directory and tablespaces.
    pub bytes: u64,
}

/// One timeline of a cluster.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineInfo {
    /// Timeline id.
    pub timeline: u32,
    /// Segments archived on it.
    pub segments: u64,
    /// The widest recoverable window on it (from the oldest usable backup).
    pub window: Option<Window>,
    /// Missing segments between the first and the last archived one.
    pub gaps: Vec<String>,
    /// The parent timeline and where this one forked off it.
    pub forked_from: Option<(u32, String)>,
    /// What created the timeline: the lifeboat restore that recorded it, or
    /// a promotion no restore recorded.
    pub created_by: Option<String>,
    /// It forked off while its parent went on being archived, and neither a
    /// base backup nor a restore made it production's: a promoted copy.
    /// `latest` does not follow it.
    pub side_branch: bool,
    /// The timeline `restore postgres latest` follows by default.
    pub followed_by_latest: bool,
}

/// One cluster in the repository.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterInfo {
    /// System identifier.
    pub system_id: String,
    /// WAL segment size.
    pub wal_segment_size: u64,
    /// Base backups, oldest first.
    pub backups: Vec<BackupLine>,
    /// Timelines, oldest first.
    pub timelines: Vec<TimelineInfo>,
    /// The newest archived WAL file.
    pub newest_wal: Option<String>,
    /// Seconds since the newest WAL file was archived.
    pub archive_lag_seconds: Option<i64>,
    /// Named restore points.
    pub restore_points: Vec<(String, String, DateTime<Utc>)>,
    /// Holes in the archive that base backups or the recoverable window
    /// need (see [`continuity`]).
    pub continuity: Vec<WalProblem>,
}

/// Describes every cluster the repository holds backups or WAL of.
pub async fn info(repo: &Repository, progress: &DynProgress) -> Result<Vec<ClusterInfo>> {
    let snapshots = repo.list_snapshots(progress).await?;
    info_of(repo, &snapshots).await
}

/// [`info`] from snapshots already listed.
pub async fn info_of(repo: &Repository, snapshots: &[SnapshotEntry]) -> Result<Vec<ClusterInfo>> {
    let backups: Vec<BaseBackup> = snapshots
        .iter()
        .filter_map(BaseBackup::from_snapshot)
        .collect();
    let mut sysids: BTreeMap<u64, u64> = BTreeMap::new();
    for b in &backups {
        let size = b
            .entry
            .snapshot
            .postgres
            .as_ref()
            .map(|p| p.wal_segment_size)
            .filter(|s| *s > 0)
            .unwrap_or(16 << 20);
        sysids.insert(b.system_id(), size);
    }
    for m in repo.storage().list(walstore::WAL_PREFIX).await? {
        if let Some(e) = walstore::WalEntry::parse(&m.key, m.size) {
            sysids.entry(e.sysid).or_insert(16 << 20);
        }
    }
    let mut out = Vec::new();
    for (sysid, seg_size) in sysids {
        let cat = Catalog::load(repo, sysid, seg_size).await?;
        let mine: Vec<BaseBackup> = backups
            .iter()
            .filter(|b| b.system_id() == sysid)
            .cloned()
            .collect();
        let records = restores::load(repo, sysid).await?;
        let mut adopted: BTreeSet<u32> = mine.iter().map(|b| b.timeline).collect();
        adopted.extend(restores::primary_timelines(&records));
        let default = cat.default_timeline(&adopted);
        let mut timelines = Vec::new();
        for tli in cat.timelines() {
            let forked_from = cat
                .forks(tli)
                .last()
                .map(|(parent, _, at)| (*parent, at.to_string()));
            let orphan = cat.is_orphan(tli, &adopted);
            let created_by = records
                .iter()
                .rev()
                .find(|r| r.record.new_timeline == tli)
                .map(|r| r.record.describe(&r.report, &r.id))
                .or_else(|| {
                    orphan.then(|| {
                        "unknown: its history file is not in the archive, so `latest` does not follow it".to_string()
                    })
                })
                .or_else(|| {
                    forked_from.as_ref().map(|(parent, at)| {
                        format!(
                            "a promotion off timeline {parent} at {at} that no lifeboat restore recorded"
                        )
                    })
                });
            let side_branch = cat
                .unadopted_side_branches(tli, &adopted)
                .iter()
                .any(|(_, child, _)| *child == tli);
            let segs: BTreeSet<u64> = cat
                .segments
                .keys()
                .filter(|(_, t)| *t == tli)
                .map(|(s, _)| *s)
                .collect();
            let mut gaps = Vec::new();
            if let (Some(first), Some(last)) = (segs.first(), segs.last()) {
                for s in *first..*last {
                    if !segs.contains(&s) && gaps.len() < 20 {
                        gaps.push(WalFile::Segment { tli, segno: s }.name(seg_size));
                    }
                }
            }
            let window = catalog::windows(&cat, &mine, tli).pop().map(|(_, w)| w);
            timelines.push(TimelineInfo {
                timeline: tli,
                segments: segs.len() as u64,
                window,
                gaps,
                forked_from,
                created_by,
                side_branch,
                followed_by_latest: tli == default,
            });
        }
        let newest = cat
            .segments
            .values()
            .max_by_key(|e| (e.pushed_s, e.name.clone()));
        let continuity = continuity::problems(&cat, &mine);
        out.push(ClusterInfo {
            continuity,
            system_id: sysid.to_string(),
            wal_segment_size: seg_size,
            backups: mine
                .iter()
                .map(|b| BackupLine {
                    id: b.entry.id.to_hex(),
                    kind: b.entry.snapshot.kind.as_str().into(),
                    timeline: b.timeline,
                    start_lsn: b.start_lsn.to_string(),
                    stop_lsn: b.stop_lsn.to_string(),
                    stop_time: b.stop_time,
                    bytes: b.entry.snapshot.summary.bytes,
                })
                .collect(),
            timelines,
            newest_wal: newest.map(|e| e.name.clone()),
            archive_lag_seconds: cat.last_push_s.map(|p| Utc::now().timestamp() - p),
            restore_points: cat
                .restore_points
                .iter()
                .map(|r| (r.name.clone(), r.lsn.to_string(), us_to_time(r.time_us)))
                .collect(),
        });
    }
    Ok(out)
}
