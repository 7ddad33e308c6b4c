//! WAL continuity: whether the archive holds every segment that recovery
//! needs, per cluster and timeline — not whether each stored object is
//! intact (that is `check --read-data`), but whether any is missing.
//!
//! Two promises are checked. Every kept base backup needs the segments from
//! its start to its stop position, or it cannot be made consistent at all.
//! And along each timeline, from the oldest base backup on its path to the
//! newest archived segment, the archive must be continuous, or recovery
//! stops at the first hole and silently loses what was archived after it.
//! The checks are a pure function of one listing of the archive.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use lifeboat_format::Id;
use serde::Serialize;

use crate::catalog::{BaseBackup, Catalog};
use crate::walname::WalFile;
use crate::walstore;

/// One hole in the archive (or a damaged timeline history).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalProblem {
    /// The cluster.
    pub system_id: String,
    /// The storage prefix of the missing (or damaged) file.
    pub object: String,
    /// The missing segment (or history file).
    pub file: String,
    /// What it breaks.
    pub message: String,
    /// Base backups that cannot be restored, or not recovered past the
    /// hole, because of it.
    pub affects: Vec<(Id, DateTime<Utc>)>,
}

/// Every continuity problem of one cluster's archive.
pub fn problems(catalog: &Catalog, backups: &[BaseBackup]) -> Vec<WalProblem> {
    let sysid = catalog.sysid;
    let seg = catalog.seg_size;
    let mut out: Vec<WalProblem> = Vec::new();
    let problem = |file: String, message: String, affects: Vec<(Id, DateTime<Utc>)>| WalProblem {
        system_id: sysid.to_string(),
        object: walstore::file_prefix(sysid, &file),
        file,
        message,
        affects,
    };
    for (tli, why) in &catalog.damaged_histories {
        let file = WalFile::History { tli: *tli }.name(seg);
        out.push(problem(
            file,
            format!("timeline history file is unreadable ({why}): recovery along timeline {tli} is impossible"),
            Vec::new(),
        ));
    }
    // A timeline's WAL without its history file: PostgreSQL cannot follow
    // the timeline (it does not know where it forked off). The first
    // timeline in the archive needs none (archiving may have begun on it).
    let first = catalog.timelines().into_iter().next();
    for tli in catalog.timelines() {
        if Some(tli) == first
            || catalog.histories.contains_key(&tli)
            || catalog.damaged_histories.contains_key(&tli)
        {
            continue;
        }
        let file = WalFile::History { tli }.name(seg);
        let affects = backups
            .iter()
            .filter(|b| b.timeline == tli)
            .map(|b| (b.entry.id, b.stop_time))
            .collect();
        out.push(problem(
            file,
            format!(
                "timeline history file is missing from the archive while timeline {tli}'s WAL is there: \
                 recovery cannot follow timeline {tli}, since where it forked off is unknown"
            ),
            affects,
        ));
    }
    // 1. Each base backup's own WAL, start to stop.
    for b in backups {
        let path = catalog.path(b.timeline);
        let first = b.start_lsn.segment(seg);
        let last = b.stop_lsn.0.saturating_sub(1) / seg.max(1);
        for s in first..=last.max(first) {
            let tli = catalog.timeline_for(&path, s);
            if !catalog.segments.contains_key(&(s, tli)) {
                out.push(problem(
                    WalFile::Segment { tli, segno: s }.name(seg),
                    format!(
                        "WAL segment needed to make base backup {} consistent is missing from the archive: \
                         that backup cannot be restored",
                        b.entry.id.short()
                    ),
                    vec![(b.entry.id, b.stop_time)],
                ));
            }
        }
    }
    // 2. Each timeline's path, from its oldest base backup to its newest segment.
    let mut seen: BTreeSet<String> = out.iter().map(|p| p.file.clone()).collect();
    for tli in catalog.timelines() {
        if catalog.damaged_histories.contains_key(&tli) {
            continue;
        }
        let path = catalog.path(tli);
        let on_path: Vec<&BaseBackup> = backups.iter().filter(|b| b.on_path(&path)).collect();
        let Some(from) = on_path.iter().map(|b| b.start_lsn.segment(seg)).min() else {
            continue;
        };
        let mut at = from;
        loop {
            let cov = catalog.coverage(&path, at);
            let Some(gap) = cov.gap else { break };
            let missing = cov.end_segment;
            if seen.insert(gap.clone()) {
                let affects = on_path
                    .iter()
                    .filter(|b| b.start_lsn.segment(seg) <= missing)
                    .map(|b| (b.entry.id, b.stop_time))
                    .collect();
                out.push(problem(
                    gap,
                    format!(
                        "WAL segment is missing from timeline {tli}'s archive: point-in-time recovery stops there, \
                         and every transaction archived after it is out of reach"
                    ),
                    affects,
                ));
            }
            at = missing + 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests_support::{backup, catalog, seg};

    #[test]
    fn finds_a_backups_missing_wal_and_holes_in_the_window() {
        let mut c = catalog();
        for s in [2, 3, 5, 6, 8] {
            seg(&mut c, 1, s, Some(s as i64 * 10));
        }
        let b = [backup(1, 1, 2, 3, 30), backup(2, 1, 4, 4, 41)];
        let p = problems(&c, &b);
        let files: Vec<&str> = p.iter().map(|p| p.file.as_str()).collect();
        // Backup 2 needs segment 4; the window has holes at 4 and 7.
        assert_eq!(
            files,
            vec!["000000010000000000000004", "000000010000000000000007"],
            "{p:#?}"
        );
        assert!(p[0].message.contains("cannot be restored"));
        assert!(p[1].message.contains("out of reach"));
        assert_eq!(p[1].affects.len(), 2);
        // A continuous archive: nothing to report.
        seg(&mut c, 1, 4, Some(40));
        seg(&mut c, 1, 7, Some(70));
        assert!(problems(&c, &b).is_empty());
        // WAL archived before the oldest backup is not needed: no hole there.
        c.segments.retain(|(s, _), _| *s != 1);
        assert!(problems(&c, &b).is_empty());
    }

    #[test]
    fn a_timeline_left_behind_at_a_fork_has_no_hole_after_it() {
        let mut c = catalog();
        for s in [2, 3, 4] {
            seg(&mut c, 1, s, Some(s as i64 * 10));
        }
        // Timeline 2 forked in segment 4 (a failover) and went on; the
        // segment it is writing now (8) is not archived yet.
        c.histories.insert(
            2,
            vec![crate::history::Branch {
                parent: 1,
                switch: crate::Lsn(4 * (16 << 20) + 0x500),
            }],
        );
        for s in [4, 5, 6, 7] {
            seg(&mut c, 2, s, Some(s as i64 * 10 + 1));
        }
        let b = [backup(1, 1, 2, 2, 21)];
        assert!(problems(&c, &b).is_empty(), "{:#?}", problems(&c, &b));
        c.segments.remove(&(6, 2));
        let p = problems(&c, &b);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!(p[0].file, "000000020000000000000006");
        // Without its history file, timeline 2 cannot be followed at all.
        c.histories.remove(&2);
        let p = problems(&c, &b);
        assert!(
            p.iter()
                .any(|p| p.file == "00000002.history" && p.message.contains("cannot follow")),
            "{p:#?}"
        );
    }
}
