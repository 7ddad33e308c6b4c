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

    /// True if recovery along `path` can start from this backup: it was
    /// taken on a timeline of the path, before the path left that timeline.
    pub fn on_path(&self, path: &[(u32, Lsn)]) -> bool {
        path.iter().any(|(t, _)| *t == self.timeline)
            && Catalog::leaves(path, self.timeline).is_none_or(|leave| self.stop_lsn <= leave)
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
    /// History files that could not be read or parsed, with the reason:
    /// recovery along those timelines is refused, `check` reports them.
    pub damaged_histories: BTreeMap<u32, String>,
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
            damaged_histories: BTreeMap::new(),
            restore_points: walstore::restore_points(repo.storage(), sysid).await?,
            last_push_s: entries.iter().map(|e| e.pushed_s).max(),
        };
        for e in entries {
            match WalFile::parse(&e.name, seg_size) {
                Some(WalFile::Segment { tli, segno }) => {
                    c.segments.insert((segno, tli), e);
                }
                Some(WalFile::History { tli }) => {
                    let parsed = match walstore::load(repo, &e).await {
                        Ok(text) => history::parse(&String::from_utf8_lossy(&text)),
                        Err(err) if err.is_access_problem() => return Err(err),
                        Err(err) => Err(err.to_string()),
                    };
                    match parsed {
                        Ok(branches) => {
                            c.histories.insert(tli, branches);
                        }
                        Err(why) => {
                            c.damaged_histories
                                .insert(tli, format!("{}: {why}", e.name));
                        }
                    }
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
        t.extend(self.damaged_histories.keys().copied());
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
        // The newest segment this path reads: a timeline left behind at a
        // switch ends there, so what its successors archived later is no gap.
        let last_known = self
            .segments
            .keys()
            .filter(|(s, t)| self.timeline_for(path, *s) == *t)
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(0);
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

    /// Each fork on the path to `tli`: (parent, child, switch point).
    pub fn forks(&self, tli: u32) -> Vec<(u32, u32, Lsn)> {
        let path = self.path(tli);
        path.windows(2).map(|w| (w[0].0, w[1].0, w[1].1)).collect()
    }

    /// True when `parent` archived WAL past the segment where a child forked
    /// off at `switch`: the parent lived on, so the child is a side branch
    /// (a restored copy that was promoted) rather than a failover.
    pub fn parent_continued(&self, parent: u32, switch: Lsn) -> bool {
        let at = switch.segment(self.seg_size);
        self.segments
            .range((at + 1, 0)..)
            .any(|((_, t), _)| *t == parent)
    }

    /// The forks on the path to `tli` that are side branches nobody adopted:
    /// the parent lived on, and the child is not in `adopted` (timelines a
    /// base backup was taken on, or that a restore recorded as the new
    /// primary).
    pub fn unadopted_side_branches(
        &self,
        tli: u32,
        adopted: &BTreeSet<u32>,
    ) -> Vec<(u32, u32, Lsn)> {
        self.forks(tli)
            .into_iter()
            .filter(|(parent, child, switch)| {
                !adopted.contains(child) && self.parent_continued(*parent, *switch)
            })
            .collect()
    }

    /// True if any timeline is a side branch or an orphan (then which
    /// timelines were adopted matters to [`Catalog::default_timeline`]).
    pub fn has_side_branches(&self) -> bool {
        let none = BTreeSet::new();
        self.timelines()
            .into_iter()
            .any(|t| self.is_orphan(t, &none) || !self.unadopted_side_branches(t, &none).is_empty())
    }

    /// The timeline `latest` follows: the newest one whose path holds no
    /// unadopted side branch. PostgreSQL itself would follow the newest
    /// timeline, which after a promoted test copy archived into the
    /// repository is the copy's, not production's.
    pub fn default_timeline(&self, adopted: &BTreeSet<u32>) -> u32 {
        self.timelines()
            .into_iter()
            .rev()
            .find(|t| {
                !self.is_orphan(*t, adopted) && self.unadopted_side_branches(*t, adopted).is_empty()
            })
            .unwrap_or_else(|| self.newest_timeline())
    }

    /// True for a timeline whose history file is not in the archive (and
    /// that is neither the cluster's first archived timeline nor adopted):
    /// its path cannot be known, and PostgreSQL's own search for the newest
    /// timeline, which probes history files, would not find it either. A
    /// promoted copy whose archiving was switched on only later leaves such
    /// a timeline behind.
    pub fn is_orphan(&self, tli: u32, adopted: &BTreeSet<u32>) -> bool {
        let first = self.timelines().into_iter().next().unwrap_or(1);
        tli != first
            && !self.histories.contains_key(&tli)
            && !self.damaged_histories.contains_key(&tli)
            && !adopted.contains(&tli)
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
    /// Things the person restoring should know (a timeline passed over, a
    /// gap recovery will stop at).
    pub notes: Vec<String>,
}

/// How to choose, beyond the target.
#[derive(Clone, Debug, Default)]
pub struct Choice {
    /// The timeline to follow (default: [`Catalog::default_timeline`]).
    pub timeline: Option<u32>,
    /// Restrict the choice to this snapshot.
    pub only: Option<Id>,
    /// Timelines known to be production's (a base backup was taken on
    /// them, or a restore recorded them as the new primary).
    pub adopted: BTreeSet<u32>,
    /// Accept recovering only up to a gap in the archive.
    pub up_to_gap: bool,
}

/// The window a base backup gives along `path`, or why it gives none.
fn window_of(catalog: &Catalog, path: &[(u32, Lsn)], b: &BaseBackup) -> Option<Window> {
    if !b.on_path(path) {
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

/// Chooses the newest base backup from which `target` is reachable on the
/// chosen timeline (default: the newest timeline that is not an unadopted
/// side branch). The error message always states the recoverable window.
/// `latest` past a gap in the archive is refused unless `up_to_gap`.
pub fn plan(
    catalog: &Catalog,
    backups: &[BaseBackup],
    target: &Target,
    choice: &Choice,
) -> Result<Plan> {
    let only = choice.only;
    let mut notes = Vec::new();
    let tli = match choice.timeline {
        Some(t) => t,
        None => {
            let newest = catalog.newest_timeline();
            let chosen = catalog.default_timeline(&choice.adopted);
            if chosen != newest && catalog.is_orphan(newest, &choice.adopted) {
                notes.push(format!(
                    "following timeline {chosen}, not the newest timeline {newest}: timeline {newest}'s history \
                     file is not in the archive, so where it forked off is unknown. Pass --target-timeline \
                     {newest} to recover along it anyway"
                ));
            } else if chosen != newest {
                let passed: Vec<String> = catalog
                    .unadopted_side_branches(newest, &choice.adopted)
                    .iter()
                    .map(|(parent, child, at)| {
                        format!("timeline {child} forked off timeline {parent} at {at} while {parent} went on being archived")
                    })
                    .collect();
                notes.push(format!(
                    "following timeline {chosen}, not the newest timeline {newest}: {} (a restored copy that was \
                     promoted, not a failover; no base backup was taken on it and no restore recorded it as the new \
                     primary). Pass --target-timeline {newest} to recover along it",
                    passed.join("; ")
                ));
            }
            chosen
        }
    };
    if let Some(why) = catalog.damaged_histories.get(&tli) {
        return Err(PgError::OutsideWindow(format!(
            "timeline {tli}'s history file is damaged ({why}), so its path cannot be followed; \
             recover along another timeline with --target-timeline"
        )));
    }
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
            Target::Latest => match &w.gap {
                Some(gap) if !choice.up_to_gap => {
                    return Err(PgError::OutsideWindow(format!(
                        "WAL segment {gap} is missing from the archive: recovering to the latest point would stop \
                         there and silently lose every transaction archived after it. The recoverable window is {}. \
                         Recover to a time or LSN before the gap, or pass --up-to-gap to recover as far as the \
                         archive is continuous (the restore then exits 1 saying how far it got)",
                        w.describe()
                    )));
                }
                Some(gap) => {
                    notes.push(format!(
                        "WAL segment {gap} is missing from the archive: recovery stops at {}{}, and what was archived \
                         after the gap is not recovered",
                        w.latest_lsn,
                        w.latest
                            .map(|t| format!(" (last transaction {})", t.format("%Y-%m-%d %H:%M:%S UTC")))
                            .unwrap_or_default()
                    ));
                    true
                }
                None => true,
            },
            Target::Immediate | Target::Xid(_) => true,
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
                notes,
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

/// Builders of catalogs and base backups for the planners' unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use lifeboat_format::snapshot::{BackupKind, PostgresBackup, Snapshot, SourceKind, Summary};

    pub(crate) const SEG: u64 = 16 << 20;
    pub(crate) const T0: i64 = 1_763_800_000_000_000;

    pub(crate) fn seg(c: &mut Catalog, tli: u32, segno: u64, last_xact_s: Option<i64>) {
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

    pub(crate) fn backup(
        id: u8,
        tli: u32,
        start_seg: u64,
        stop_seg: u64,
        stop_s: i64,
    ) -> BaseBackup {
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
            bucket: None,
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

    pub(crate) fn catalog() -> Catalog {
        Catalog {
            sysid: 1,
            seg_size: SEG,
            segments: BTreeMap::new(),
            histories: BTreeMap::new(),
            damaged_histories: BTreeMap::new(),
            restore_points: vec![],
            last_push_s: None,
        }
    }

    pub(crate) fn at(s: i64) -> DateTime<Utc> {
        us_to_time(T0 + s * 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn picks_the_newest_backup_that_ends_before_the_target() {
        let mut c = catalog();
        for (s, t) in [(2, 10), (3, 20), (4, 30), (5, 40), (6, 50)] {
            seg(&mut c, 1, s, Some(t));
        }
        let b = [backup(1, 1, 2, 2, 12), backup(2, 1, 4, 4, 32)];
        let p = plan(&c, &b, &Target::Time(at(35)), &Choice::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.backup.entry.id, Id::from_bytes([2; 32]));
        let p = plan(&c, &b, &Target::Time(at(25)), &Choice::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.backup.entry.id, Id::from_bytes([1; 32]));
        // After the last archived transaction: refused, with the window.
        let e = plan(&c, &b, &Target::Time(at(50)), &Choice::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("recoverable window"), "{e}");
        // Before the oldest backup's end: refused.
        let e = plan(&c, &b, &Target::Time(at(5)), &Choice::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("before the end of the oldest usable base backup"),
            "{e}"
        );
        // LSN targets.
        assert!(plan(&c, &b, &Target::Lsn(Lsn(5 * SEG + 10)), &Choice::default()).is_ok());
        assert!(plan(&c, &b, &Target::Lsn(Lsn(9 * SEG)), &Choice::default()).is_err());
    }

    #[test]
    fn a_gap_ends_the_window_and_is_named() {
        let mut c = catalog();
        for (s, t) in [(2, 10), (3, 20), (5, 40), (6, 50)] {
            seg(&mut c, 1, s, Some(t));
        }
        let b = [backup(1, 1, 2, 2, 12)];
        let e = plan(&c, &b, &Target::Time(at(45)), &Choice::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("000000010000000000000004 is missing"), "{e}");
        assert!(plan(&c, &b, &Target::Time(at(15)), &Choice::default()).is_ok());
    }

    #[test]
    fn follows_timeline_history() {
        let mut c = catalog();
        for (s, t) in [(2, 10), (3, 20)] {
            seg(&mut c, 1, s, Some(t));
        }
        // Timeline 2 branched off in segment 3 (a failover: timeline 1
        // archived nothing after it); it continues from there.
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
        let p = plan(&c, &b, &Target::Time(at(40)), &Choice::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.timeline, 2);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        assert_eq!(p.window.latest, Some(at(45)));
        // On timeline 1, 40 s is past the end.
        let on = |t: u32| Choice {
            timeline: Some(t),
            ..Choice::default()
        };
        assert!(plan(&c, &b, &Target::Time(at(40)), &on(1)).is_err());
        // A backup taken on timeline 1 after the branch point is not on timeline 2's path.
        let late = [backup(3, 1, 4, 4, 31)];
        assert!(plan(&c, &late, &Target::Latest, &on(2)).is_err());
    }

    #[test]
    fn latest_does_not_follow_a_promoted_copy_while_production_went_on() {
        let mut c = catalog();
        for (s, t) in [(2, 10), (3, 20), (4, 30), (5, 40)] {
            seg(&mut c, 1, s, Some(t));
        }
        // A test copy recovered to segment 3 and promoted to timeline 2,
        // archiving into the repository, while timeline 1 went on.
        c.histories.insert(
            2,
            vec![Branch {
                parent: 1,
                switch: Lsn(3 * SEG + 0x500),
            }],
        );
        seg(&mut c, 2, 3, Some(25));
        let b = [backup(1, 1, 2, 2, 12)];
        assert_eq!(c.newest_timeline(), 2);
        assert!(c.has_side_branches());
        let p = plan(&c, &b, &Target::Latest, &Choice::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.timeline, 1);
        assert_eq!(p.window.latest, Some(at(40)));
        assert!(p.notes[0].contains("--target-timeline 2"), "{:?}", p.notes);
        // Made the new primary by a recorded restore: followed.
        let adopted = Choice {
            adopted: BTreeSet::from([2]),
            ..Choice::default()
        };
        let p = plan(&c, &b, &Target::Latest, &adopted).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.timeline, 2);
    }

    #[test]
    fn latest_does_not_follow_a_timeline_without_its_history_file() {
        let mut c = catalog();
        for (s, t) in [(2, 10), (3, 20), (4, 30)] {
            seg(&mut c, 1, s, Some(t));
        }
        seg(&mut c, 2, 5, Some(50));
        let b = [backup(1, 1, 2, 2, 12)];
        let p = plan(&c, &b, &Target::Latest, &Choice::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.timeline, 1);
        assert!(p.notes[0].contains("history"), "{:?}", p.notes);
    }

    #[test]
    fn latest_past_a_gap_is_refused_unless_asked_for() {
        let mut c = catalog();
        for (s, t) in [(2, 10), (3, 20), (5, 40)] {
            seg(&mut c, 1, s, Some(t));
        }
        let b = [backup(1, 1, 2, 2, 12)];
        let e = plan(&c, &b, &Target::Latest, &Choice::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("000000010000000000000004 is missing") && e.contains("--up-to-gap"),
            "{e}"
        );
        let p = plan(
            &c,
            &b,
            &Target::Latest,
            &Choice {
                up_to_gap: true,
                ..Choice::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.window.latest, Some(at(20)));
        assert!(p.notes[0].contains("recovery stops"), "{:?}", p.notes);
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
        assert!(
            plan(
                &c,
                &b,
                &Target::Name("before-migration".into()),
                &Choice::default()
            )
            .is_ok()
        );
        let e = plan(&c, &b, &Target::Name("nope".into()), &Choice::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("before-migration"), "{e}");
    }
}
