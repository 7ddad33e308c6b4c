//! WAL expiry tied to the point-in-time-recovery window.
//!
//! For each cluster (system identifier), the window starts at `now - window`.
//! Recovering to any point in it needs the newest base backup that became
//! consistent at or before that start (the *window base*; the oldest backup
//! when none is that old) and every WAL segment from that backup's start on.
//! Every other kept base backup needs its own segments, start to stop.
//! Everything else archived for the cluster is no longer needed and is
//! removed; timeline history files are always kept. Segment numbers count
//! from LSN 0 on every timeline, so a new timeline (after a point-in-time
//! restore) never lowers the cut-off, and a new cluster (after `pg_upgrade`
//! or `initdb`) has its own system identifier and is judged on its own: a
//! cluster without any kept base backup keeps all of its WAL.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use lifeboat_format::Id;
use lifeboat_repo::SnapshotEntry;
use lifeboat_repo::progress::{DynProgress, Event};
use serde::Serialize;

use crate::catalog::{self, BaseBackup, Catalog};
use crate::error::Result;
use crate::walname::WalFile;
use crate::walstore::WalEntry;

/// The recoverable window of one timeline, for before/after reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowLine {
    /// Timeline.
    pub timeline: u32,
    /// The earliest recoverable time (the oldest usable backup's consistency point).
    pub earliest: DateTime<Utc>,
    /// The latest recoverable commit time, if known.
    pub latest: Option<DateTime<Utc>>,
}

/// What WAL expiry decided (and, unless a dry run, did) for one cluster.
#[derive(Clone, Debug, Serialize)]
pub struct WalExpiry {
    /// System identifier.
    pub system_id: String,
    /// Where the PITR window starts.
    pub window_start: DateTime<Utc>,
    /// The base backup the window starts from.
    pub base: Option<Id>,
    /// The first segment kept for the window.
    pub keep_from: Option<String>,
    /// WAL files removed (or that would be).
    pub removed_files: u64,
    /// Their stored size.
    pub removed_bytes: u64,
    /// WAL files kept.
    pub kept_files: u64,
    /// Recoverable windows before.
    pub before: Vec<WindowLine>,
    /// Recoverable windows after.
    pub after: Vec<WindowLine>,
    /// Anything unusual (e.g. WAL kept because no backup is).
    pub note: Option<String>,
}

fn seg_size_of(b: &BaseBackup) -> u64 {
    b.entry
        .snapshot
        .postgres
        .as_ref()
        .map(|p| p.wal_segment_size)
        .filter(|s| *s > 0)
        .unwrap_or(16 << 20)
}

/// The window base of each cluster among `backups`: the newest base backup
/// consistent at or before `window_start`, else the oldest.
pub fn window_bases(backups: &[BaseBackup], window_start: DateTime<Utc>) -> Vec<BaseBackup> {
    let mut by_cluster: BTreeMap<u64, Vec<&BaseBackup>> = BTreeMap::new();
    for b in backups {
        by_cluster.entry(b.system_id()).or_default().push(b);
    }
    by_cluster
        .into_values()
        .filter_map(|mut bs| {
            bs.sort_by_key(|b| (b.stop_time, b.stop_lsn));
            bs.iter()
                .rev()
                .find(|b| b.stop_time <= window_start)
                .or_else(|| bs.first())
                .map(|b| (*b).clone())
        })
        .collect()
}

/// The snapshot ids the PITR window needs kept (see [`window_bases`]).
pub fn window_snapshot_ids(entries: &[SnapshotEntry], window_start: DateTime<Utc>) -> HashSet<Id> {
    let backups: Vec<BaseBackup> = entries
        .iter()
        .filter_map(BaseBackup::from_snapshot)
        .collect();
    window_bases(&backups, window_start)
        .into_iter()
        .map(|b| b.entry.id)
        .collect()
}

/// The files of one cluster's archive that are no longer needed, and the
/// first segment number kept for the window. `kept` are the cluster's kept
/// base backups (not empty).
pub fn unneeded<'a>(
    files: &'a [WalEntry],
    kept: &[BaseBackup],
    seg_size: u64,
    window_start: DateTime<Utc>,
) -> (Vec<&'a WalEntry>, Option<u64>) {
    let Some(base) = window_bases(kept, window_start).into_iter().next() else {
        return (Vec::new(), None);
    };
    let from = base.start_lsn.segment(seg_size);
    let ranges: Vec<(u64, u64)> = kept
        .iter()
        .map(|b| (b.start_lsn.segment(seg_size), b.stop_lsn.segment(seg_size)))
        .collect();
    let needed =
        |segno: u64| segno >= from || ranges.iter().any(|(a, z)| (*a..=*z).contains(&segno));
    let out = files
        .iter()
        .filter(|e| match WalFile::parse(&e.name, seg_size) {
            Some(WalFile::Segment { segno, .. })
            | Some(WalFile::Partial { segno, .. })
            | Some(WalFile::BackupHistory { segno, .. }) => !needed(segno),
            // History files are tiny and every later timeline needs them.
            Some(WalFile::History { .. }) | None => false,
        })
        .collect();
    (out, Some(from))
}

fn window_lines(cat: &Catalog, backups: &[BaseBackup]) -> Vec<WindowLine> {
    cat.timelines()
        .into_iter()
        .filter_map(|tli| {
            catalog::windows(cat, backups, tli)
                .pop()
                .map(|(_, w)| WindowLine {
                    timeline: tli,
                    earliest: w.earliest,
                    latest: w.latest,
                })
        })
        .collect()
}

/// Removes (unless `dry_run`) the WAL no kept backup and no point of the
/// window needs, per cluster. `all` are the snapshots before `forget`,
/// `kept` those it keeps.
pub async fn expire_wal(
    repo: &lifeboat_repo::Repository,
    all: &[SnapshotEntry],
    kept: &[SnapshotEntry],
    window_start: DateTime<Utc>,
    dry_run: bool,
    progress: &DynProgress,
) -> Result<Vec<WalExpiry>> {
    let before: Vec<BaseBackup> = all.iter().filter_map(BaseBackup::from_snapshot).collect();
    let after: Vec<BaseBackup> = kept.iter().filter_map(BaseBackup::from_snapshot).collect();
    let mut clusters: BTreeMap<u64, u64> = BTreeMap::new();
    for b in &before {
        clusters.insert(b.system_id(), seg_size_of(b));
    }
    for m in repo.storage().list(crate::walstore::WAL_PREFIX).await? {
        if let Some(e) = WalEntry::parse(&m.key, m.size) {
            clusters.entry(e.sysid).or_insert(16 << 20);
        }
    }
    let mut out = Vec::new();
    for (sysid, seg_size) in clusters {
        progress.event(Event::Phase("planning WAL expiry"));
        let mine_before: Vec<BaseBackup> = before
            .iter()
            .filter(|b| b.system_id() == sysid)
            .cloned()
            .collect();
        let mine_after: Vec<BaseBackup> = after
            .iter()
            .filter(|b| b.system_id() == sysid)
            .cloned()
            .collect();
        let cat = Catalog::load(repo, sysid, seg_size).await?;
        let files = crate::walstore::list(repo.storage(), sysid).await?;
        let mut report = WalExpiry {
            system_id: sysid.to_string(),
            window_start,
            base: window_bases(&mine_after, window_start)
                .first()
                .map(|b| b.entry.id),
            keep_from: None,
            removed_files: 0,
            removed_bytes: 0,
            kept_files: files.len() as u64,
            before: window_lines(&cat, &mine_before),
            after: Vec::new(),
            note: None,
        };
        if mine_after.is_empty() {
            report.note =
                Some("no base backup of this cluster is kept; all of its WAL is kept".into());
            report.after = report.before.clone();
            out.push(report);
            continue;
        }
        let (doomed, from) = unneeded(&files, &mine_after, seg_size, window_start);
        let tli = mine_after
            .iter()
            .max_by_key(|b| b.stop_lsn)
            .map(|b| b.timeline)
            .unwrap_or(1);
        report.keep_from = from.map(|s| WalFile::Segment { tli, segno: s }.name(seg_size));
        report.removed_files = doomed.len() as u64;
        report.removed_bytes = doomed.iter().map(|e| e.stored_size).sum();
        report.kept_files -= report.removed_files;
        let mut after_cat = cat.clone();
        let gone: HashSet<&str> = doomed.iter().map(|e| e.name.as_str()).collect();
        after_cat
            .segments
            .retain(|_, e| !gone.contains(e.name.as_str()));
        report.after = window_lines(&after_cat, &mine_after);
        if !dry_run {
            progress.event(Event::Phase("removing expired WAL"));
            for e in &doomed {
                repo.storage()
                    .delete(&e.key(), lifeboat_storage::IfMissing::Ignore)
                    .await
                    .map_err(lifeboat_repo::RepoError::from)?;
            }
        }
        out.push(report);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use lifeboat_format::snapshot::Snapshot;

    const SEG: u64 = 16 << 20;

    fn backup(id: u8, sysid: u64, start_seg: u64, stop_seg: u64, stop_hour: u32) -> BaseBackup {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, stop_hour, 0, 0).unwrap();
        let json = serde_json::json!({
            "time": t, "host": "db1", "user": "postgres", "source": "postgres",
            "paths": ["/var/lib/postgresql"], "kind": "scheduled",
            "root": Id::from_bytes([0; 32]),
            "summary": {}, "program": "test",
            "postgres": {
                "system_id": sysid.to_string(), "version_num": 150000, "version": "15",
                "timeline": 1,
                "start_lsn": crate::Lsn::of_segment(start_seg, SEG).to_string(),
                "stop_lsn": crate::Lsn::of_segment(stop_seg, SEG).to_string(),
                "start_time": t, "stop_time": t,
                "start_wal": "", "stop_wal": "", "wal_segment_size": SEG,
                "data_checksums": true, "checksum_failures": 0,
                "tablespaces": [], "databases": []
            }
        });
        let snapshot: Snapshot = serde_json::from_value(json).unwrap();
        BaseBackup::from_snapshot(&SnapshotEntry {
            id: Id::from_bytes([id; 32]),
            snapshot,
        })
        .unwrap()
    }

    fn wal(name: &str) -> WalEntry {
        WalEntry {
            sysid: 7,
            name: name.into(),
            first_xact_us: None,
            last_xact_us: None,
            pushed_s: 1,
            stored_size: 10,
        }
    }

    fn seg(tli: u32, segno: u64) -> WalEntry {
        wal(&WalFile::Segment { tli, segno }.name(SEG))
    }

    #[test]
    fn the_window_base_is_the_newest_backup_at_or_before_the_start() {
        let bs = vec![
            backup(1, 7, 2, 3, 1),
            backup(2, 7, 10, 11, 5),
            backup(3, 7, 20, 21, 9),
        ];
        let at = |h| Utc.with_ymd_and_hms(2026, 11, 1, h, 0, 0).unwrap();
        let ids = |start| -> Vec<u8> {
            window_bases(&bs, start)
                .iter()
                .map(|b| b.entry.id.as_bytes()[0])
                .collect()
        };
        assert_eq!(ids(at(6)), vec![2]);
        assert_eq!(ids(at(5)), vec![2]);
        assert_eq!(ids(at(4)), vec![1]);
        // Nothing that old: the oldest backup starts the window.
        assert_eq!(ids(at(0)), vec![1]);
        assert_eq!(ids(at(23)), vec![3]);
        // Each cluster on its own (a new one after pg_upgrade).
        let mut two = bs.clone();
        two.push(backup(4, 8, 1, 2, 10));
        let mut got = window_bases(&two, at(6))
            .iter()
            .map(|b| b.entry.id.as_bytes()[0])
            .collect::<Vec<_>>();
        got.sort();
        assert_eq!(got, vec![2, 4]);
    }

    #[test]
    fn wal_before_the_window_base_goes_unless_a_kept_backup_needs_it() {
        // Kept: a monthly backup at segments 2-3, the window base at 10-11,
        // the newest at 20-21; the window starts between the last two.
        let kept = vec![
            backup(1, 7, 2, 3, 1),
            backup(2, 7, 10, 11, 5),
            backup(3, 7, 20, 21, 9),
        ];
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap();
        let mut files: Vec<WalEntry> = (0..30).map(|s| seg(1, s)).collect();
        // A later timeline branching at 25, its history, a partial, a backup history.
        files.extend((25..28).map(|s| seg(2, s)));
        files.push(wal("00000002.history"));
        files.push(wal(&format!(
            "{}.partial",
            WalFile::Segment { tli: 1, segno: 5 }.name(SEG)
        )));
        files.push(wal(&format!(
            "{}.00000028.backup",
            WalFile::Segment { tli: 1, segno: 2 }.name(SEG)
        )));
        files.push(wal(&format!(
            "{}.00000028.backup",
            WalFile::Segment { tli: 1, segno: 4 }.name(SEG)
        )));
        let (gone, from) = unneeded(&files, &kept, SEG, start);
        assert_eq!(from, Some(10));
        let mut names: Vec<String> = gone.iter().map(|e| e.name.clone()).collect();
        names.sort();
        let mut want: Vec<String> = [0u64, 1, 4, 5, 6, 7, 8, 9]
            .iter()
            .map(|s| WalFile::Segment { tli: 1, segno: *s }.name(SEG))
            .collect();
        want.push(format!(
            "{}.partial",
            WalFile::Segment { tli: 1, segno: 5 }.name(SEG)
        ));
        want.push(format!(
            "{}.00000028.backup",
            WalFile::Segment { tli: 1, segno: 4 }.name(SEG)
        ));
        want.sort();
        assert_eq!(names, want);
        // Nothing on timeline 2, nor any history file, goes.
        assert!(gone.iter().all(|e| !e.name.starts_with("00000002")));
    }
}
