//! The planning half of prune: from what prune knows of the repository
//! ([`State`]), the running backups and the Object Lock dates, decide which
//! deletion plans are due, which packs to delete, which index files to
//! replace, and which packs to mark or repack. No I/O here: every decision
//! is a plain value the apply step carries out (or a dry run prints).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use lifeboat_format::Id;
use lifeboat_format::index::IndexFile;
use lifeboat_format::pack::PackEntry;

use super::state::State;
use super::{Postponed, PruneOptions};
use crate::layout;
use crate::running::{RunningEntry, is_live};

/// Which of the `candidates` plans may be carried out now, and which wait
/// (their grace period is not over, or a backup that may use their packs
/// is running).
pub(crate) fn sort_due(
    state: &State,
    candidates: &[Id],
    running: &[RunningEntry],
    grace: Duration,
    now: DateTime<Utc>,
) -> (Vec<Id>, Vec<Postponed>) {
    let mut ready = Vec::new();
    let mut postponed = Vec::new();
    for (id, plan) in state.plans.iter().filter(|(id, _)| candidates.contains(id)) {
        let why = if plan.time + grace > now {
            Some(format!(
                "its grace period ends at {}",
                (plan.time + grace).format("%Y-%m-%d %H:%M:%S UTC")
            ))
        } else {
            running.iter().find_map(|r| match &r.record {
                Ok(b) if is_live(b) && b.may_use(id) => Some(format!(
                    "the {} (process {} on {}, started {}) may still use its packs",
                    b.what,
                    b.pid,
                    b.host,
                    b.started.format("%Y-%m-%d %H:%M:%S UTC")
                )),
                Ok(_) => None,
                Err(e) => Some(format!(
                    "{} is unreadable ({e}); delete it if no backup is running",
                    r.key
                )),
            })
        };
        match why {
            Some(why) => postponed.push(Postponed {
                plan: *id,
                packs: plan.packs.len() as u64,
                bytes: plan.bytes,
                why,
            }),
            None => ready.push(*id),
        }
    }
    (ready, postponed)
}

/// What carrying out the ready deletion plans takes.
#[derive(Debug, Default)]
pub(crate) struct DeletePlan {
    /// The deletion plans carried out (their objects are removed).
    pub ready: Vec<Id>,
    /// Packs to delete.
    pub doomed: HashSet<Id>,
    /// Their size.
    pub doomed_bytes: u64,
    /// Marked packs kept because a snapshot written since uses them.
    pub kept_in_use: u64,
    /// Marked packs Object Lock still holds, with their unlock dates: they
    /// stay marked, in a plan of their own.
    pub held: Vec<(Id, DateTime<Utc>)>,
    /// Index files naming doomed packs, replaced by `replacement`.
    pub affected: Vec<Id>,
    /// The index file written first, listing what `affected` listed minus
    /// the doomed packs (empty: nothing to write).
    pub replacement: IndexFile,
}

impl DeletePlan {
    /// The oldest marking time among the ready plans: a plan carrying the
    /// held packs keeps it (their grace period is over).
    pub fn marked_at(&self, state: &State) -> Option<DateTime<Utc>> {
        state
            .plans
            .iter()
            .filter(|(id, _)| self.ready.contains(id))
            .map(|(_, p)| p.time)
            .min()
    }

    /// The held packs, sorted, and their size.
    pub fn held_packs(&self, state: &State) -> (Vec<Id>, u64) {
        let mut packs: Vec<Id> = self.held.iter().map(|(p, _)| *p).collect();
        packs.sort();
        let bytes = packs.iter().filter_map(|p| state.stored.get(p)).sum();
        (packs, bytes)
    }
}

/// Plans the deletion of the packs the `ready` plans mark. `state.reach`
/// must hold what every snapshot listed after the plans uses; `lock_dates`
/// are the Object Lock unlock dates by storage key (`None`: no lock).
pub(crate) fn plan_delete(
    state: &State,
    ready: Vec<Id>,
    lock_dates: Option<&HashMap<String, DateTime<Utc>>>,
    now: DateTime<Utc>,
) -> DeletePlan {
    let mut doomed: HashSet<Id> = state
        .plans
        .iter()
        .filter(|(id, _)| ready.contains(id))
        .flat_map(|(_, p)| p.packs.iter().copied())
        .filter(|p| state.stored.contains_key(p))
        .collect();
    // A snapshot written since the plan may need a blob whose only copy is
    // in a doomed pack: keep that pack.
    let mut kept_in_use = 0;
    let locations = state.locations();
    for blob in &state.reach.blobs {
        if let Some(locs) = locations.get(blob)
            && locs.iter().all(|p| doomed.contains(p))
            && doomed.remove(&locs[0])
        {
            kept_in_use += 1;
        }
    }
    if state.reach.missing > 0 {
        // Blobs are missing from every index: an unindexed pack may hold
        // them (a lost index file). Keep such packs for `repair index`.
        let indexed = state.indexed_packs();
        doomed.retain(|p| indexed.contains_key(p));
    }
    let held = lock_dates
        .map(|dates| hold_locked(state, &mut doomed, dates, now))
        .unwrap_or_default();
    let (affected, replacement) = index_rewrite(state, &doomed);
    let doomed_bytes = doomed.iter().filter_map(|p| state.stored.get(p)).sum();
    DeletePlan {
        ready,
        doomed,
        doomed_bytes,
        kept_in_use,
        held,
        affected,
        replacement,
    }
}

/// Removes from `doomed` the packs Object Lock still holds, or whose index
/// files it holds (deleting a pack replaces them); returns them with their
/// unlock dates.
fn hold_locked(
    state: &State,
    doomed: &mut HashSet<Id>,
    dates: &HashMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<(Id, DateTime<Utc>)> {
    let mut until: HashMap<Id, DateTime<Utc>> = HashMap::new();
    for (file, f) in &state.files {
        let Some(file_until) = dates.get(&layout::index(file)) else {
            continue;
        };
        for p in f.packs.iter().filter(|p| doomed.contains(&p.id)) {
            let u = until.entry(p.id).or_insert(*file_until);
            *u = (*u).max(*file_until);
        }
    }
    let mut held = Vec::new();
    doomed.retain(|p| {
        let u = dates
            .get(&layout::pack(p))
            .copied()
            .into_iter()
            .chain(until.get(p).copied())
            .max();
        match u {
            Some(u) if u > now => {
                held.push((*p, u));
                false
            }
            _ => true,
        }
    });
    held
}

/// The index files naming any doomed pack, and the one file that replaces
/// them: every pack they list that is neither doomed nor listed by another
/// file, once.
fn index_rewrite(state: &State, doomed: &HashSet<Id>) -> (Vec<Id>, IndexFile) {
    let affected: Vec<Id> = state
        .files
        .iter()
        .filter(|(_, f)| f.packs.iter().any(|p| doomed.contains(&p.id)))
        .map(|(id, _)| *id)
        .collect();
    let elsewhere: HashSet<Id> = state
        .files
        .iter()
        .filter(|(id, _)| !affected.contains(id))
        .flat_map(|(_, f)| f.packs.iter().map(|p| p.id))
        .collect();
    let mut replacement = IndexFile {
        packs: Vec::new(),
        supersedes: affected.clone(),
    };
    let mut seen = HashSet::new();
    for (_, f) in state.files.iter().filter(|(id, _)| affected.contains(id)) {
        for p in &f.packs {
            if !doomed.contains(&p.id) && !elsewhere.contains(&p.id) && seen.insert(p.id) {
                replacement.packs.push(p.clone());
            }
        }
    }
    (affected, replacement)
}

/// A partly used pack to repack: its used blobs are copied into new packs.
#[derive(Clone, Debug)]
pub(crate) struct RepackJob {
    /// The pack.
    pub pack: Id,
    /// Its subkey salt, to open its blobs.
    pub salt: [u8; 32],
    /// Its size.
    pub size: u64,
    /// The blobs to keep, counted in this pack only.
    pub keep: Vec<PackEntry>,
}

/// What the mark phase marks.
#[derive(Debug, Default)]
pub(crate) struct MarkPlan {
    /// Indexed packs no snapshot uses.
    pub unused: Vec<Id>,
    /// Packs no index lists (left by interrupted backups).
    pub unindexed: Vec<Id>,
    /// Partly used packs to repack, most wasteful first.
    pub repack: Vec<RepackJob>,
    /// Unused bytes left in partly used packs after the repacking.
    pub unused_bytes_left: u64,
}

impl MarkPlan {
    /// Every pack the deletion plan will name, sorted.
    pub fn doomed(&self) -> Vec<Id> {
        let mut out: Vec<Id> = self
            .unused
            .iter()
            .chain(&self.unindexed)
            .copied()
            .chain(self.repack.iter().map(|j| j.pack))
            .collect();
        out.sort();
        out
    }

    /// Size of the repacked packs.
    pub fn repacked_bytes(&self) -> u64 {
        self.repack.iter().map(|j| j.size).sum()
    }
}

/// Plans the mark phase: unused and unindexed packs, and (most wasteful
/// first, until the unused space left is within `--max-unused` and the
/// repacked bytes within `--max-repack`) partly used packs to repack.
pub(crate) fn plan_mark(state: &State, options: &PruneOptions) -> MarkPlan {
    let marked = state.marked();
    let indexed = state.indexed_packs();
    // Each used blob is counted in one pack: the first unmarked stored one
    // that holds it. Other copies are unused space.
    let locations = state.locations();
    let keeper: HashMap<Id, Id> = state
        .reach
        .blobs
        .iter()
        .filter_map(|b| {
            let pack = locations.get(b)?.iter().find(|p| !marked.contains(p))?;
            Some((*b, *pack))
        })
        .collect();
    let mut keep: HashMap<Id, Vec<PackEntry>> = HashMap::new();
    for (id, pack) in &indexed {
        for e in &pack.blobs {
            if keeper.get(&e.id) == Some(id) {
                keep.entry(*id).or_default().push(*e);
            }
        }
    }
    let mut plan = MarkPlan::default();
    let mut partial: Vec<(Id, u64, u64)> = Vec::new();
    let mut live_bytes = 0u64;
    for (pack, &size) in &state.stored {
        if marked.contains(pack) {
            continue;
        }
        let Some(entry) = indexed.get(pack) else {
            // With blobs missing from every index, an unindexed pack may be
            // where they are (a lost index file): keep it for `repair index`.
            if state.reach.missing == 0 {
                plan.unindexed.push(*pack);
            }
            continue;
        };
        let used: u64 = keep
            .get(pack)
            .map(|es| es.iter().map(|e| u64::from(e.length)).sum())
            .unwrap_or(0);
        if used == 0 {
            plan.unused.push(*pack);
            continue;
        }
        live_bytes += size;
        let all: u64 = entry.blobs.iter().map(|e| u64::from(e.length)).sum();
        if all > used {
            partial.push((*pack, size, all - used));
        }
    }
    plan.unused.sort();
    plan.unindexed.sort();
    // Most wasteful first, until what is left is within the tolerance.
    partial.sort_by(|a, b| {
        let (fa, fb) = (a.2 as f64 / a.1 as f64, b.2 as f64 / b.1 as f64);
        fb.total_cmp(&fa).then(a.0.cmp(&b.0))
    });
    let tolerated = (live_bytes as f64 * options.max_unused_percent / 100.0) as u64;
    let mut unused_left: u64 = partial.iter().map(|p| p.2).sum();
    let mut repacked = 0u64;
    for (pack, size, unused) in &partial {
        if unused_left <= tolerated {
            break;
        }
        if options.max_repack.is_some_and(|m| repacked + size > m) {
            continue;
        }
        let Some(entry) = indexed.get(pack) else {
            continue;
        };
        repacked += size;
        unused_left -= unused;
        plan.repack.push(RepackJob {
            pack: *pack,
            salt: entry.salt,
            size: *size,
            keep: keep.remove(pack).unwrap_or_default(),
        });
    }
    plan.unused_bytes_left = unused_left;
    plan
}

#[cfg(test)]
mod tests {
    use lifeboat_format::BlobType;
    use lifeboat_format::index::IndexPack;
    use lifeboat_format::maintenance::{BackupInProgress, DeletionPlan};

    use super::*;

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    fn entry(blob: u8, offset: u32, length: u32) -> PackEntry {
        PackEntry {
            blob_type: BlobType::Data,
            id: id(blob),
            offset,
            length,
            raw_length: length,
        }
    }

    /// A pack `n` holding `blobs` of 100 bytes each.
    fn pack(n: u8, blobs: &[u8]) -> IndexPack {
        IndexPack {
            id: id(n),
            salt: [n; 32],
            size: 100 * blobs.len() as u64,
            blobs: blobs
                .iter()
                .enumerate()
                .map(|(i, b)| entry(*b, 100 * i as u32, 100))
                .collect(),
        }
    }

    /// A state with one index file per list of packs, all packs stored, and
    /// the snapshots using `used`.
    fn state(files: Vec<Vec<IndexPack>>, used: &[u8]) -> State {
        let mut s = State::default();
        for (i, packs) in files.into_iter().enumerate() {
            for p in &packs {
                s.stored.insert(p.id, p.size);
            }
            s.files.push((
                id(200 + i as u8),
                IndexFile {
                    packs,
                    supersedes: Vec::new(),
                },
            ));
        }
        s.reach.blobs = used.iter().map(|b| id(*b)).collect();
        s
    }

    fn deletion(packs: &[u8], hours_ago: i64) -> DeletionPlan {
        DeletionPlan {
            time: Utc::now() - Duration::hours(hours_ago),
            by: "test@here".into(),
            packs: packs.iter().map(|p| id(*p)).collect(),
            bytes: 100 * packs.len() as u64,
        }
    }

    fn running(seen: Option<Vec<Id>>) -> RunningEntry {
        let now = Utc::now();
        RunningEntry {
            key: "running/x".into(),
            record: Ok(BackupInProgress {
                started: now,
                refreshed: now,
                host: "db1".into(),
                pid: 42,
                what: "backup of /srv".into(),
                seen_plans: seen,
            }),
        }
    }

    fn options(max_unused_percent: f64, max_repack: Option<u64>) -> PruneOptions {
        PruneOptions {
            max_unused_percent,
            max_repack,
            ..PruneOptions::default()
        }
    }

    #[test]
    fn unused_and_unindexed_packs_are_marked_and_used_ones_kept() {
        let mut s = state(vec![vec![pack(1, &[10, 11]), pack(2, &[20])]], &[10, 11]);
        s.stored.insert(id(3), 500); // no index lists it
        let plan = plan_mark(&s, &options(5.0, None));
        assert_eq!(plan.unused, vec![id(2)]);
        assert_eq!(plan.unindexed, vec![id(3)]);
        assert!(plan.repack.is_empty());
        assert_eq!(plan.doomed(), vec![id(2), id(3)]);
    }

    #[test]
    fn unindexed_packs_are_kept_while_blobs_are_missing_from_the_index() {
        let mut s = state(vec![vec![pack(1, &[10])]], &[10]);
        s.stored.insert(id(3), 500);
        s.reach.missing = 1;
        let plan = plan_mark(&s, &options(5.0, None));
        assert!(plan.unindexed.is_empty(), "{plan:?}");
    }

    #[test]
    fn packs_already_marked_are_not_marked_again() {
        let mut s = state(vec![vec![pack(1, &[10]), pack(2, &[20])]], &[10]);
        s.plans.push((id(100), deletion(&[2], 0)));
        assert!(plan_mark(&s, &options(5.0, None)).doomed().is_empty());
    }

    #[test]
    fn partly_used_packs_are_repacked_most_wasteful_first_until_within_tolerance() {
        // Pack 1: 1 of 4 blobs used (75 % waste); pack 2: 3 of 4 (25 %).
        let s = state(
            vec![vec![pack(1, &[10, 11, 12, 13]), pack(2, &[20, 21, 22, 23])]],
            &[10, 20, 21, 22],
        );
        let plan = plan_mark(&s, &options(20.0, None));
        // 400 waste of 800 live; 20 % tolerates 160: repacking pack 1
        // leaves 100.
        assert_eq!(plan.repack.len(), 1);
        assert_eq!(plan.repack[0].pack, id(1));
        assert_eq!(plan.repack[0].keep, vec![entry(10, 0, 100)]);
        assert_eq!(plan.repack[0].salt, [1; 32]);
        assert_eq!(plan.unused_bytes_left, 100);
        assert_eq!(plan.repacked_bytes(), 400);
        // No tolerance: both go.
        assert_eq!(plan_mark(&s, &options(0.0, None)).repack.len(), 2);
        // A repack budget smaller than any pack: none goes.
        let capped = plan_mark(&s, &options(0.0, Some(399)));
        assert!(capped.repack.is_empty());
        assert_eq!(capped.unused_bytes_left, 400);
    }

    #[test]
    fn a_blob_stored_twice_is_counted_once_in_the_first_pack() {
        // Blob 10 is in packs 1 and 2: pack 2's copy is unused space.
        let s = state(vec![vec![pack(1, &[10]), pack(2, &[10, 11])]], &[10, 11]);
        let plan = plan_mark(&s, &options(0.0, None));
        assert_eq!(plan.repack.len(), 1);
        assert_eq!(plan.repack[0].pack, id(2));
        assert_eq!(plan.repack[0].keep, vec![entry(11, 100, 100)]);
    }

    #[test]
    fn plans_wait_for_their_grace_period_and_for_backups_that_may_use_them() {
        let mut s = state(vec![vec![pack(1, &[10])]], &[]);
        s.plans.push((id(100), deletion(&[1], 2)));
        s.plans.push((id(101), deletion(&[1], 0)));
        let all = [id(100), id(101)];
        let grace = Duration::hours(1);
        let (ready, waiting) = sort_due(&s, &all, &[], grace, Utc::now());
        assert_eq!(ready, vec![id(100)]);
        assert_eq!(waiting.len(), 1);
        assert!(waiting[0].why.contains("grace period"), "{:?}", waiting[0]);

        // A live backup that had not seen plan 100 may use its packs…
        let (ready, waiting) = sort_due(&s, &all, &[running(None)], grace, Utc::now());
        assert!(ready.is_empty());
        assert!(waiting[0].why.contains("process 42 on db1"), "{waiting:?}");
        // …one that saw it before loading its index does not.
        let saw = running(Some(vec![id(100)]));
        let (ready, _) = sort_due(&s, &all, &[saw], grace, Utc::now());
        assert_eq!(ready, vec![id(100)]);
        // A dead backup's record does not hold anything up.
        let mut dead = running(None);
        if let Ok(r) = &mut dead.record {
            r.refreshed = Utc::now() - Duration::hours(2);
        }
        let (ready, _) = sort_due(&s, &all, &[dead], grace, Utc::now());
        assert_eq!(ready, vec![id(100)]);
        // An unreadable record does.
        let broken = RunningEntry {
            key: "running/y".into(),
            record: Err(crate::RepoError::Invalid("garbled".into())),
        };
        let (ready, waiting) = sort_due(&s, &all, &[broken], grace, Utc::now());
        assert!(ready.is_empty());
        assert!(waiting[0].why.contains("running/y is unreadable"));
    }

    #[test]
    fn a_marked_pack_holding_the_last_copy_of_a_used_blob_is_kept() {
        // Packs 1 and 2 marked; since then a snapshot uses blob 10 (only in
        // pack 1) and blob 20 (also in pack 3, not marked).
        let mut s = state(
            vec![vec![pack(1, &[10]), pack(2, &[20]), pack(3, &[20])]],
            &[10, 20],
        );
        s.plans.push((id(100), deletion(&[1, 2], 2)));
        let plan = plan_delete(&s, vec![id(100)], None, Utc::now());
        assert_eq!(plan.kept_in_use, 1);
        assert_eq!(plan.doomed, HashSet::from([id(2)]));
        assert_eq!(plan.doomed_bytes, 100);
        // The index file is replaced by one without pack 2.
        assert_eq!(plan.affected, vec![id(200)]);
        let listed: Vec<Id> = plan.replacement.packs.iter().map(|p| p.id).collect();
        assert_eq!(listed, vec![id(1), id(3)]);
        assert_eq!(plan.replacement.supersedes, vec![id(200)]);
    }

    #[test]
    fn the_replacement_index_leaves_out_packs_another_file_lists() {
        let s = {
            let mut s = state(
                vec![vec![pack(1, &[10]), pack(2, &[20])], vec![pack(2, &[20])]],
                &[20],
            );
            s.plans.push((id(100), deletion(&[1], 2)));
            s
        };
        let plan = plan_delete(&s, vec![id(100)], None, Utc::now());
        assert_eq!(plan.affected, vec![id(200)]);
        assert!(plan.replacement.packs.is_empty(), "{:?}", plan.replacement);
    }

    #[test]
    fn marked_packs_already_gone_and_unindexed_ones_under_missing_blobs_are_left() {
        let mut s = state(vec![vec![pack(1, &[10])]], &[]);
        s.stored.insert(id(3), 100);
        s.plans.push((id(100), deletion(&[1, 3, 9], 2))); // 9 is not stored
        s.reach.missing = 1;
        let plan = plan_delete(&s, vec![id(100)], None, Utc::now());
        assert_eq!(plan.doomed, HashSet::from([id(1)]));
    }

    #[test]
    fn object_lock_holds_packs_and_packs_whose_index_file_is_locked() {
        let mut s = state(vec![vec![pack(1, &[10])], vec![pack(2, &[20])]], &[]);
        s.stored.insert(id(3), 100);
        s.plans.push((id(100), deletion(&[1, 2, 3], 2)));
        let now = Utc::now();
        let later = now + Duration::days(3);
        let dates = HashMap::from([
            (layout::pack(&id(1)), later),
            (layout::index(&id(201)), later + Duration::days(1)),
            (layout::pack(&id(3)), now - Duration::days(1)),
        ]);
        let plan = plan_delete(&s, vec![id(100)], Some(&dates), now);
        assert_eq!(plan.doomed, HashSet::from([id(3)]));
        let mut held = plan.held.clone();
        held.sort();
        assert_eq!(
            held,
            vec![(id(1), later), (id(2), later + Duration::days(1))]
        );
        assert_eq!(plan.held_packs(&s), (vec![id(1), id(2)], 200));
        assert!(plan.affected.is_empty());
        assert_eq!(plan.marked_at(&s), Some(s.plans[0].1.time));
    }
}
