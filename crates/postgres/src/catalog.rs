//! What the archive holds for one cluster, and the plan for a recovery.
//!
//! Built from one listing of `wal/<system id>/` (each key carries the file's
//! transaction time range), the timeline history files, the restore point
//! markers and the base backup snapshots. PostgreSQL replays segment `s` from
//! the newest timeline of the recovery path that had begun by then, so the
//! WAL a recovery needs is a chain of segments along that path; the first
//! missing one ends the recoverable window.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use lifeboat_format::Id;
use lifeboat_repo::Repository;
use lifeboat_repo::snapshots::SnapshotEntry;
use serde::Serialize;

use crate::error::{PgError, Result};
use crate::history::{self, Branch};
use crate::lsn::Lsn;
use crate::segment::{RestorePoint, us_to_time};
use crate::walname::WalFile;
use crate::walstore::{self, WalEntry};

/// A base backup as the planner sees it.
#[derive(Clone, Debug)]
pub struct BaseBackup {
    /// The snapshot.
    pub entry: SnapshotEntry,
    /// Timeline it was taken on.
    pub timeline: u32,
    /// Where replay starts.
    pub start_lsn: Lsn,
    /// Where it becomes consistent.
    pub stop_lsn: Lsn,
    /// When it became consistent.
    pub stop_time: DateTime<Utc>,
}

impl BaseBackup {
    /// Reads a base backup from a snapshot (`None` if it is not one).
    pub fn from_snapshot(entry: &SnapshotEntry) -> Option<Self> {
        let pg = entry.snapshot.postgres.as_ref()?;
        Some(Self {
            entry: entry.clone(),
            timeline: pg.timeline,
            start_lsn: pg.start_lsn.parse().ok()?,
            stop_lsn: pg.stop_lsn.parse().ok()?,
            stop_time: pg.stop_time.unwrap_or(entry.snapshot.time),
        })
    }

    /// The cluster it belongs to.
    pub fn system_id(&self) -> u64 {
        self.entry
            .snapshot
            .postgres
            .as_ref()
            .and_then(|p| p.system_id.parse().ok())
            .unwrap_or(0)
    }
}

/// The archive of one cluster.
#[derive(Clone, Debug)]
pub struct Catalog {
    /// System identifier.
    pub sysid: u64,
    /// WAL segment size.
    pub seg_size: u64,
    /// Full segments by (segment number, timeline).
    pub segments: BTreeMap<(u64, u32), WalEntry>,
    /// Parsed history file of each timeline that has one.
    pub histories: BTreeMap<u32, Vec<Branch>>,
    /// Restore points.
    pub restore_points: Vec<RestorePoint>,
    /// Newest archiving time, Unix seconds.
    pub last_push_s: Option<i64>,
}

/// What a contiguous run of archived WAL covers.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// First segment number not available (the run ends before it).
    pub end_segment: u64,
    /// Latest transaction time in the run.
    pub last_xact_us: Option<i64>,
    /// The missing segment that ends the run, if the archive continues after it.
    pub gap: Option<String>,
}

impl Catalog {
    /// Lists the archive of `sysid` and reads its timeline history files.
    pub async fn load(repo: &Repository, sysid: u64, seg_size: u64) -> Result<Self> {
        let entries = walstore::list(repo.storage(), sysid).await?;
        let mut c = Catalog {
            sysid,
            seg_size,
            segments: BTreeMap::new(),
            histories: BTreeMap::new(),
            restore_points: walstore::restore_points(repo.storage(), sysid).await?,
            last_push_s: entries.iter().map(|e| e.pushed_s).max(),
        };
        for e in entries {
            match WalFile::parse(&e.name, seg_size) {
                Some(WalFile::Segment { tli, segno }) => {
                    c.segments.insert((segno, tli), e);
                }
                Some(WalFile::History { tli }) => {
                    let text = walstore::load(repo, &e).await?;
                    let branches = history::parse(&String::from_utf8_lossy(&text))
                        .map_err(|why| PgError::Invalid(format!("{}: {why}", e.name)))?;
                    c.histories.insert(tli, branches);
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// Every timeline the archive knows.
    pub fn timelines(&self) -> BTreeSet<u32> {
        let mut t: BTreeSet<u32> = self.segments.keys().map(|(_, tli)| *tli).collect();
        t.extend(self.histories.keys().copied());
        t
    }

    /// The newest timeline (what `recovery_target_timeline = latest` follows).
    pub fn newest_timeline(&self) -> u32 {
        self.timelines().into_iter().max().unwrap_or(1)
    }

    /// The recovery path to `tli`: each timeline with the LSN it begins at.
    pub fn path(&self, tli: u32) -> Vec<(u32, Lsn)> {
        let mut path = Vec::new();
        let mut begin = Lsn(0);
        for b in self.histories.get(&tli).into_iter().flatten() {
            path.push((b.parent, begin));
            begin = b.switch;
        }
        path.push((tli, begin));
        path
    }

    /// The timeline PostgreSQL reads segment `segno` from along `path`.
    pub fn timeline_for(&self, path: &[(u32, Lsn)], segno: u64) -> u32 {
        path.iter()
            .rev()
            .find(|(_, begin)| begin.segment(self.seg_size) <= segno)
            .map(|(t, _)| *t)
            .unwrap_or(1)
    }

    /// Where `path` leaves timeline `tli` (None: it never does).
    pub fn leaves(path: &[(u32, Lsn)], tli: u32) -> Option<Lsn> {
        let pos = path.iter().position(|(t, _)| *t == tli)?;
        path.get(pos + 1).map(|(_, b)| *b)
    }

    /// The archived WAL available from `from` (a segment number) along `path`.
    pub fn coverage(&self, path: &[(u32, Lsn)], from: u64) -> Coverage {
        let mut c = Coverage {
            end_segment: from,
            ..Coverage::default()
        };
        let last_known = self.segments.keys().map(|(s, _)| *s).max().unwrap_or(0);
        let mut s = from;
        loop {
            let tli = self.timeline_for(path, s);
            match self.segments.get(&(s, tli)) {
                Some(e) => {
                    if let Some(t) = e.last_xact_us {
                        c.last_xact_us = Some(c.last_xact_us.map_or(t, |l| l.max(t)));
                    }
                    s += 1;
                }
                None => {
                    if s <= last_known {
                        c.gap = Some(WalFile::Segment { tli, segno: s }.name(self.seg_size));
                    }
                    break;
                }
            }
        }
        c.end_segment = s;
        c
    }

    /// True if a transaction ended after `t` in segments `[from, to)` of `path`.
    pub fn xact_after(&self, path: &[(u32, Lsn)], from: u64, to: u64, t: DateTime<Utc>) -> bool {
        let t_us = t.timestamp_micros();
        (from..to).any(|s| {
            let tli = self.timeline_for(path, s);
            self.segments
                .get(&(s, tli))
                .and_then(|e| e.last_xact_us)
                .is_some_and(|l| l > t_us)
        })
    }
}

/// What to recover to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "value")]
pub enum Target {
    /// All the WAL there is.
    Latest,
    /// The end of the base backup (the earliest consistent point).
    Immediate,
    /// Just before the first transaction that ended after this time.
    Time(DateTime<Utc>),
    /// This WAL position.
    Lsn(Lsn),
    /// The end of this transaction.
    Xid(u64),
    /// This named restore point.
    Name(String),
}

/// A recoverable window: from the end of a base backup to the last archived
/// transaction before the first gap.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    /// Timeline the window is on.
    pub timeline: u32,
    /// Earliest recoverable time (end of the oldest usable base backup).
    pub earliest: DateTime<Utc>,
    /// Earliest recoverable LSN.
    pub earliest_lsn: Lsn,
    /// Latest recoverable time (last archived transaction), if any.
    pub latest: Option<DateTime<Utc>>,
    /// End of the contiguous WAL.
    pub latest_lsn: Lsn,
    /// A missing segment that cuts the archive short, if any.
    pub gap: Option<String>,
}

impl Window {
    /// "from … to …" for messages.
    pub fn describe(&self) -> String {
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string();
        let mut s = format!(
            "timeline {}: from {} ({}) to {} ({})",
            self.timeline,
            fmt(self.earliest),
            self.earliest_lsn,
            self.latest
                .map(fmt)
                .unwrap_or_else(|| "the end of the backup".into()),
            self.latest_lsn
        );
        if let Some(g) = &self.gap {
            s.push_str(&format!("; WAL segment {g} is missing from the archive"));
        }
        s
    }
}

/// The chosen way to reach a target.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The base backup to restore.
    pub backup: BaseBackup,
    /// The timeline to follow.
    pub timeline: u32,
    /// The window this backup gives on that timeline.
    pub window: Window,
}

/// The window a base backup gives along `path`, or why it gives none.
fn window_of(catalog: &Catalog, path: &[(u32, Lsn)], b: &BaseBackup) -> Option<Window> {
    let on_path = path.iter().any(|(t, _)| *t == b.timeline)
        && Catalog::leaves(path, b.timeline).is_none_or(|leave| b.stop_lsn <= leave);
    if !on_path {
        return None;
    }
    let from = b.start_lsn.segment(catalog.seg_size);
    let cov = catalog.coverage(path, from);
    let end_lsn = Lsn::of_segment(cov.end_segment, catalog.seg_size);
    if end_lsn < b.stop_lsn {
        return Some(Window {
            timeline: path.last().map(|(t, _)| *t).unwrap_or(b.timeline),
            earliest: b.stop_time,
            earliest_lsn: b.stop_lsn,
            latest: None,
            latest_lsn: end_lsn,
            gap: cov.gap.or_else(|| {
                Some(
                    WalFile::Segment {
                        tli: catalog.timeline_for(path, cov.end_segment),
                        segno: cov.end_segment,
                    }
                    .name(catalog.seg_size),
                )
            }),
        });
    }
    Some(Window {
        timeline: path.last().map(|(t, _)| *t).unwrap_or(b.timeline),
        earliest: b.stop_time,
        earliest_lsn: b.stop_lsn,
        latest: cov
            .last_xact_us
            .map(us_to_time)
            .filter(|t| *t > b.stop_time),
        latest_lsn: end_lsn,
        gap: cov.gap,
    })
}

/// Usable windows per base backup along the path to `timeline`, newest backup first.
pub fn windows(
    catalog: &Catalog,
    backups: &[BaseBackup],
    timeline: u32,
) -> Vec<(BaseBackup, Window)> {
    let path = catalog.path(timeline);
    let mut out: Vec<(BaseBackup, Window)> = backups
        .iter()
        .filter_map(|b| window_of(catalog, &path, b).map(|w| (b.clone(), w)))
        .filter(|(b, w)| w.latest_lsn >= b.stop_lsn)
        .collect();
    out.sort_by_key(|(b, _)| std::cmp::Reverse(b.stop_lsn));
    out
}

/// Chooses the newest base backup from which `target` is reachable on
/// `timeline` (default: the newest). `only` restricts the choice to one
/// snapshot. The error message always states the recoverable window.
pub fn plan(
    catalog: &Catalog,
    backups: &[BaseBackup],
    target: &Target,
    timeline: Option<u32>,
    only: Option<Id>,
) -> Result<Plan> {
    let tli = timeline.unwrap_or_else(|| catalog.newest_timeline());
    if !catalog.timelines().contains(&tli) && backups.iter().all(|b| b.timeline != tli) {
        return Err(PgError::OutsideWindow(format!(
            "timeline {tli} is not in the archive (timelines there: {})",
            catalog
                .timelines()
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let candidates: Vec<&BaseBackup> = backups
        .iter()
        .filter(|b| only.is_none_or(|id| b.entry.id == id))
        .collect();
    let all = windows(
        catalog,
        &candidates.iter().map(|b| (*b).clone()).collect::<Vec<_>>(),
        tli,
    );
    if all.is_empty() {
        let why = backups
            .iter()
            .filter(|b| only.is_none_or(|id| b.entry.id == id))
            .filter_map(|b| window_of(catalog, &catalog.path(tli), b))
            .map(|w| w.describe())
            .next()
            .unwrap_or_else(|| {
                format!("no base backup of this cluster lies on the path to timeline {tli}")
            });
        return Err(PgError::OutsideWindow(format!(
            "no base backup can be recovered on timeline {tli}: {why}"
        )));
    }
    let describe_all = || {
        // The widest window: from the oldest usable backup.
        all.last().map(|(_, w)| w.describe()).unwrap_or_default()
    };
    let path = catalog.path(tli);
    for (b, w) in &all {
        let fits = match target {
            Target::Latest | Target::Immediate | Target::Xid(_) => true,
            Target::Time(t) => {
                if *t < b.stop_time {
                    continue;
                }
                let from = b.start_lsn.segment(catalog.seg_size);
                if !catalog.xact_after(&path, from, w.latest_lsn.segment(catalog.seg_size), *t) {
                    return Err(PgError::OutsideWindow(format!(
                        "target time {} is after the last archived transaction, so recovery could not know it \
                         had reached it; the recoverable window is {}",
                        t.format("%Y-%m-%d %H:%M:%S%.6f UTC"),
                        describe_all()
                    )));
                }
                true
            }
            Target::Lsn(l) => {
                if *l < b.stop_lsn {
                    continue;
                }
                if *l > w.latest_lsn {
                    return Err(PgError::OutsideWindow(format!(
                        "target LSN {l} is beyond the archived WAL; the recoverable window is {}",
                        describe_all()
                    )));
                }
                true
            }
            Target::Name(n) => {
                let Some(rp) = catalog.restore_points.iter().rev().find(|r| &r.name == n) else {
                    return Err(PgError::OutsideWindow(format!(
                        "no restore point named {n:?} is in the archive (known: {}); the recoverable window is {}",
                        catalog
                            .restore_points
                            .iter()
                            .map(|r| format!("{:?}", r.name))
                            .collect::<Vec<_>>()
                            .join(", "),
                        describe_all()
                    )));
                };
                if rp.lsn < b.stop_lsn {
                    continue;
                }
                if rp.lsn > w.latest_lsn {
                    return Err(PgError::OutsideWindow(format!(
                        "restore point {n:?} at {} is beyond the archived WAL; the recoverable window is {}",
                        rp.lsn,
                        describe_all()
                    )));
                }
                true
            }
        };
        if fits {
            return Ok(Plan {
                backup: b.clone(),
                timeline: tli,
                window: w.clone(),
            });
        }
    }
    let what = match target {
        Target::Time(t) => format!("target time {}", t.format("%Y-%m-%d %H:%M:%S%.6f UTC")),
        Target::Lsn(l) => format!("target LSN {l}"),
        Target::Name(n) => format!("restore point {n:?}"),
        _ => "the target".into(),
    };
    Err(PgError::OutsideWindow(format!(
        "{what} is before the end of the oldest usable base backup; the recoverable window is {}",
        describe_all()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_format::snapshot::{BackupKind, PostgresBackup, Snapshot, SourceKind, Summary};

    const SEG: u64 = 16 << 20;
    const T0: i64 = 1_763_800_000_000_000;

    fn seg(c: &mut Catalog, tli: u32, segno: u64, last_xact_s: Option<i64>) {
        let name = WalFile::Segment { tli, segno }.name(SEG);
        c.segments.insert(
            (segno, tli),
            WalEntry {
                sysid: 1,
                name,
                first_xact_us: None,
                last_xact_us: last_xact_s.map(|s| T0 + s * 1_000_000),
                pushed_s: 0,
                stored_size: 0,
            },
        );
    }

    fn backup(id: u8, tli: u32, start_seg: u64, stop_seg: u64, stop_s: i64) -> BaseBackup {
        let snap = Snapshot {
            time: us_to_time(T0),
            host: "h".into(),
            user: "u".into(),
            source: SourceKind::Postgres,
            paths: vec![],
            kind: BackupKind::Manual,
            reason: None,
            tags: vec![],
            root: Id::default(),
            parent: None,
            summary: Summary::default(),
            program: String::new(),
            postgres: Some(PostgresBackup::default()),
            logical: None,
        };
        BaseBackup {
            entry: SnapshotEntry {
                id: Id::from_bytes([id; 32]),
                snapshot: snap,
            },
            timeline: tli,
            start_lsn: Lsn(start_seg * SEG + 0x28),
            stop_lsn: Lsn(stop_seg * SEG + 0x100),
            stop_time: us_to_time(T0 + stop_s * 1_000_000),
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            sysid: 1,
            seg_size: SEG,
            segments: BTreeMap::new(),
            histories: BTreeMap::new(),
            restore_points: vec![],
            last_push_s: None,
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        us_to_time(T0 + s * 1_000_000)
    }

    #[test]
    fn picks_the_newest_backup_that_ends_before_the_target() {
        let mut c = catalog();
        for (s, t) in [(2, 10), (3, 20), (4, 30), (5, 40), (6, 50)] {
            seg(&mut c, 1, s, Some(t));
        }
        let b = [backup(1, 1, 2, 2, 12), backup(2, 1, 4, 4, 32)];
        let p = plan(&c, &b, &Target::Time(at(35)), None, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.backup.entry.id, Id::from_bytes([2; 32]));
        let p = plan(&c, &b, &Target::Time(at(25)), None, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.backup.entry.id, Id::from_bytes([1; 32]));
        // After the last archived transaction: refused, with the window.
        let e = plan(&c, &b, &Target::Time(at(50)), None, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("recoverable window"), "{e}");
        // Before the oldest backup's end: refused.
        let e = plan(&c, &b, &Target::Time(at(5)), None, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("before the end of the oldest usable base backup"),
            "{e}"
        );
        // LSN targets.
        assert!(plan(&c, &b, &Target::Lsn(Lsn(5 * SEG + 10)), None, None).is_ok());
        assert!(plan(&c, &b, &Target::Lsn(Lsn(9 * SEG)), None, None).is_err());
    }

    #[test]
    fn a_gap_ends_the_window_and_is_named() {
        let mut c = catalog();
        for (s, t) in [(2, 10), (3, 20), (5, 40), (6, 50)] {
            seg(&mut c, 1, s, Some(t));
        }
        let b = [backup(1, 1, 2, 2, 12)];
        let e = plan(&c, &b, &Target::Time(at(45)), None, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("000000010000000000000004 is missing"), "{e}");
        assert!(plan(&c, &b, &Target::Time(at(15)), None, None).is_ok());
    }

    #[test]
    fn follows_timeline_history() {
        let mut c = catalog();
        for (s, t) in [(2, 10), (3, 20), (4, 30)] {
            seg(&mut c, 1, s, Some(t));
        }
        // Timeline 2 branched off in segment 3; it continues from there.
        c.histories.insert(
            2,
            vec![Branch {
                parent: 1,
                switch: Lsn(3 * SEG + 0x500),
            }],
        );
        for (s, t) in [(3, 22), (4, 35), (5, 45)] {
            seg(&mut c, 2, s, Some(t));
        }
        let b = [backup(1, 1, 2, 2, 12)];
        assert_eq!(c.newest_timeline(), 2);
        let p = plan(&c, &b, &Target::Time(at(40)), None, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.timeline, 2);
        assert_eq!(p.window.latest, Some(at(45)));
        // On timeline 1, 40 s is past the end.
        assert!(plan(&c, &b, &Target::Time(at(40)), Some(1), None).is_err());
        // A backup taken on timeline 1 after the branch point is not on timeline 2's path.
        let late = [backup(3, 1, 4, 4, 31)];
        assert!(plan(&c, &late, &Target::Latest, Some(2), None).is_err());
    }

    #[test]
    fn restore_points_must_exist_and_be_reachable() {
        let mut c = catalog();
        for (s, t) in [(2, 10), (3, 20)] {
            seg(&mut c, 1, s, Some(t));
        }
        c.restore_points.push(RestorePoint {
            name: "before-migration".into(),
            lsn: Lsn(3 * SEG + 100),
            time_us: T0,
        });
        let b = [backup(1, 1, 2, 2, 12)];
        assert!(plan(&c, &b, &Target::Name("before-migration".into()), None, None).is_ok());
        let e = plan(&c, &b, &Target::Name("nope".into()), None, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("before-migration"), "{e}");
    }
}
