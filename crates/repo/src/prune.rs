//! `prune`: removes the data no snapshot needs, safely while backups run.
//!
//! Two phases, never in one step (docs/FORMAT.md, "Deletion plans"):
//!
//! 1. **Mark.** Packs no snapshot uses, packs no index lists (left by a
//!    killed backup), and partly used packs chosen for repacking (their used
//!    blobs are first copied into new packs and indexed) are written into a
//!    deletion plan (`prune/<id>`). Nothing is deleted.
//! 2. **Delete**, in a later run (or the same one with a zero grace period),
//!    once the plan is older than the grace period and no backup that might
//!    still use its packs is running: snapshots are listed again, any pack
//!    holding the last copy of a blob a snapshot now uses is kept, index
//!    files naming the doomed packs are replaced by one that does not (the
//!    new one written first), and only then are the packs and the plan deleted.
//!
//! Every step is idempotent, so a killed prune leaves a consistent repository
//! and the next run finishes the work.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{Duration, Utc};
use futures::StreamExt;
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::index::{IndexFile, IndexPack};
use lifeboat_format::maintenance::DeletionPlan;
use lifeboat_format::object::ObjectKind;
use lifeboat_format::pack::{PackEntry, open_blob, open_record};
use lifeboat_format::{BlobType, Id};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::reachable::Reachable;
use crate::repository::{Repository, cpu, local_origin};
use crate::running::is_live;
use crate::uploader::{PackSink, Uploader};

/// How `prune` runs.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Plan only: report what would be marked and deleted, change nothing.
    pub dry_run: bool,
    /// How long marked packs stay before they are deleted: longer than the
    /// longest restore or check that may run meanwhile.
    pub grace: Duration,
    /// Unused space tolerated in partly used packs, in percent of the
    /// repository; beyond it such packs are repacked.
    pub max_unused_percent: f64,
    /// Most bytes of packs repacked in one run (`None`: no limit).
    pub max_repack: Option<u64>,
    /// Pack uploads in flight while repacking.
    pub uploads: usize,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            grace: Duration::hours(1),
            max_unused_percent: 5.0,
            max_repack: None,
            uploads: 2,
        }
    }
}

/// A deletion plan left for a later run, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Postponed {
    /// The plan.
    pub plan: Id,
    /// Packs it marks.
    pub packs: u64,
    /// Their size.
    pub bytes: u64,
    /// Why it waits.
    pub why: String,
}

/// What the delete phase did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DeleteReport {
    /// Plans carried out and removed.
    pub plans: Vec<Id>,
    /// Packs deleted.
    pub packs: u64,
    /// Bytes reclaimed.
    pub bytes: u64,
    /// Marked packs kept because a snapshot written since uses them.
    pub kept_in_use: u64,
    /// Index files replaced by one without the deleted packs.
    pub index_files_replaced: u64,
    /// Packs not deleted because S3 Object Lock still holds them (or an
    /// index file naming them); they stay marked for a later prune.
    pub locked_packs: u64,
    /// Their size.
    pub locked_bytes: u64,
    /// When the last of them unlocks.
    pub locked_until: Option<chrono::DateTime<Utc>>,
}

/// What the mark phase did (or would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct MarkReport {
    /// The plan written, if any.
    pub plan: Option<Id>,
    /// Packs no snapshot uses.
    pub unused_packs: u64,
    /// Packs no index lists (left by interrupted backups).
    pub unindexed_packs: u64,
    /// Partly used packs repacked.
    pub repacked_packs: u64,
    /// Size of the repacked packs.
    pub repacked_bytes: u64,
    /// New packs written by repacking, and their size.
    pub new_packs: u64,
    /// Bytes of the new packs.
    pub new_bytes: u64,
    /// Total size of the packs marked.
    pub bytes: u64,
}

/// What `prune` found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Snapshots whose data was kept.
    pub snapshots: u64,
    /// Packs stored when prune started, and their size.
    pub packs: u64,
    /// Bytes stored in packs when prune started.
    pub stored_bytes: u64,
    /// Distinct blobs the snapshots use.
    pub used_blobs: u64,
    /// Blobs snapshots name that no index lists (those snapshots were
    /// already damaged; `check` names them).
    pub missing_blobs: u64,
    /// The delete phase.
    pub deleted: DeleteReport,
    /// Plans left for a later run.
    pub postponed: Vec<Postponed>,
    /// The mark phase.
    pub marked: MarkReport,
    /// Unused bytes left in partly used packs (within `--max-unused`).
    pub unused_bytes_left: u64,
    /// Backup-in-progress records left by interrupted backups, older than
    /// the grace period, removed (or, in a dry run, that would be).
    pub stale_records_removed: Vec<String>,
}

/// The repository as prune sees it, updated as it works.
#[derive(Default)]
struct State {
    files: Vec<(Id, IndexFile)>,
    stored: HashMap<Id, u64>,
    plans: Vec<(Id, DeletionPlan)>,
    reach: Reachable,
    walked: HashSet<Id>,
    /// The index changed (repacked packs were indexed): read it again.
    index_changed: bool,
}

impl State {
    fn marked(&self) -> HashSet<Id> {
        self.plans
            .iter()
            .flat_map(|(_, p)| p.packs.iter().copied())
            .collect()
    }

    /// Every stored pack holding each blob, in index order.
    fn locations(&self) -> HashMap<Id, Vec<Id>> {
        let mut out: HashMap<Id, Vec<Id>> = HashMap::new();
        for (_, f) in &self.files {
            for p in f.packs.iter().filter(|p| self.stored.contains_key(&p.id)) {
                for e in &p.blobs {
                    let l = out.entry(e.id).or_default();
                    if !l.contains(&p.id) {
                        l.push(p.id);
                    }
                }
            }
        }
        out
    }

    /// Every indexed pack once.
    fn indexed_packs(&self) -> HashMap<Id, &IndexPack> {
        let mut out = HashMap::new();
        for (_, f) in &self.files {
            for p in &f.packs {
                out.entry(p.id).or_insert(p);
            }
        }
        out
    }
}

impl Repository {
    /// Runs prune (see the module documentation). Holds the prune lock
    /// (except in a dry run); never blocks a backup.
    pub async fn prune(
        &self,
        options: &PruneOptions,
        progress: DynProgress,
    ) -> Result<PruneReport> {
        let lock = if options.dry_run {
            None
        } else {
            Some(self.lock_prune().await?)
        };
        let result = self.prune_locked(options, &progress).await;
        if let Some(lock) = lock {
            let released = lock.release().await;
            let report = result?;
            released?;
            return Ok(report);
        }
        result
    }

    async fn prune_locked(
        &self,
        options: &PruneOptions,
        progress: &DynProgress,
    ) -> Result<PruneReport> {
        let mut report = PruneReport {
            dry_run: options.dry_run,
            ..Default::default()
        };
        let mut state = State::default();
        progress.event(Event::Phase("removing records of interrupted backups"));
        let now = Utc::now();
        for entry in self.running_backups().await? {
            if let Ok(r) = &entry.record
                && !is_live(r)
                && r.refreshed + options.grace < now
            {
                if !options.dry_run {
                    self.delete_if_present(&entry.key).await?;
                }
                report.stale_records_removed.push(entry.key);
            }
        }
        progress.event(Event::Phase("listing packs and deletion plans"));
        state.plans = self.deletion_plans().await?;
        state.stored = self.list_packs().await?;
        report.packs = state.stored.len() as u64;
        report.stored_bytes = state.stored.values().sum();

        let due: Vec<Id> = state.plans.iter().map(|(id, _)| *id).collect();
        self.delete_phase(&mut state, &due, options, progress, &mut report)
            .await?;
        self.mark_phase(&mut state, options, progress, &mut report)
            .await?;
        if options.grace <= Duration::zero()
            && let Some(plan) = report.marked.plan
        {
            // Zero grace: carry out the new plan now (still waiting for any
            // backup that started before it).
            report.postponed.retain(|p| p.plan != plan);
            self.delete_phase(&mut state, &[plan], options, progress, &mut report)
                .await?;
        }
        report.snapshots = state.walked.len() as u64;
        report.used_blobs = state.reach.blobs.len() as u64;
        report.missing_blobs = state.reach.missing;
        Ok(report)
    }

    /// Reads the index files (refusing damaged ones: prune cannot tell
    /// which packs they list) and adds the blobs of snapshots not yet walked.
    async fn refresh_used(&self, state: &mut State, progress: &DynProgress) -> Result<()> {
        progress.event(Event::Phase("reading snapshots"));
        let ids = self.snapshot_ids().await?;
        let new: Vec<Id> = ids
            .into_iter()
            .filter(|id| !state.walked.contains(id))
            .collect();
        if new.is_empty() && !state.files.is_empty() && !state.index_changed {
            return Ok(());
        }
        state.index_changed = false;
        // Index files after the snapshot listing: a snapshot's index is
        // durable before the snapshot is.
        progress.event(Event::Phase("loading index"));
        let files = self.read_index_files(progress).await?;
        if let Some((key, e)) = files.damaged.first() {
            return Err(RepoError::Damaged(format!(
                "index file {key} is unreadable ({e}); prune cannot tell which packs it lists. \
                 Run `lifeboat repair index` first"
            )));
        }
        state.files = files.files;
        // Packs listed after the index files: every pack they name is there.
        state.stored = self.list_packs().await?;
        let marked = state.marked();
        let index = MasterIndex::from_files(&state.files, &marked, false);
        let mut roots = Vec::new();
        for id in new {
            match self.load_snapshot(&id).await {
                Ok(s) => {
                    roots.push(s.root);
                    state.walked.insert(id);
                }
                // Forgotten while we listed.
                Err(RepoError::Storage(e)) if e.is_not_found() => {}
                Err(e) if e.is_access_problem() => return Err(e),
                Err(e) => {
                    return Err(RepoError::Damaged(format!(
                        "snapshot {id} is unreadable ({e}); prune cannot tell which data it needs. \
                         Forget it or restore the object first"
                    )));
                }
            }
        }
        progress.event(Event::Phase("finding used data"));
        self.add_reachable(&index, roots, &mut state.reach).await?;
        Ok(())
    }

    /// Carries out the plans in `candidates` that are due and not waited on.
    async fn delete_phase(
        &self,
        state: &mut State,
        candidates: &[Id],
        options: &PruneOptions,
        progress: &DynProgress,
        report: &mut PruneReport,
    ) -> Result<()> {
        if candidates.is_empty() {
            return self.refresh_used(state, progress).await;
        }
        progress.event(Event::Phase("checking running backups"));
        let now = Utc::now();
        // Records first, snapshots after: a backup that ended between the
        // two has its snapshot listed; one still running is seen here.
        let running = self.running_backups().await?;
        let mut ready = Vec::new();
        for (id, plan) in state.plans.iter().filter(|(id, _)| candidates.contains(id)) {
            let why = if plan.time + options.grace > now {
                Some(format!(
                    "its grace period ends at {}",
                    (plan.time + options.grace).format("%Y-%m-%d %H:%M:%S UTC")
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
                Some(why) => report.postponed.push(Postponed {
                    plan: *id,
                    packs: plan.packs.len() as u64,
                    bytes: plan.bytes,
                    why,
                }),
                None => ready.push(*id),
            }
        }
        self.refresh_used(state, progress).await?;
        if ready.is_empty() {
            return Ok(());
        }
        let mut doomed: HashSet<Id> = state
            .plans
            .iter()
            .filter(|(id, _)| ready.contains(id))
            .flat_map(|(_, p)| p.packs.iter().copied())
            .filter(|p| state.stored.contains_key(p))
            .collect();
        // A snapshot written since the plan may need a blob whose only copy
        // is in a doomed pack: keep that pack.
        let locations = state.locations();
        for blob in &state.reach.blobs {
            if let Some(locs) = locations.get(blob)
                && locs.iter().all(|p| doomed.contains(p))
                && doomed.remove(&locs[0])
            {
                report.deleted.kept_in_use += 1;
            }
        }
        if state.reach.missing > 0 {
            // Blobs are missing from every index: an unindexed pack may hold
            // them (a lost index file). Keep such packs for `repair index`.
            let indexed = state.indexed_packs();
            doomed.retain(|p| indexed.contains_key(p));
        }
        // Under Object Lock, a pack is deleted only once it and every index
        // file naming it (which its deletion replaces) have unlocked.
        let held = self.hold_locked(state, &mut doomed).await?;
        if !held.is_empty() {
            report.deleted.locked_packs += held.len() as u64;
            report.deleted.locked_bytes += held
                .iter()
                .filter_map(|(p, _)| state.stored.get(p))
                .sum::<u64>();
            report.deleted.locked_until = held
                .iter()
                .map(|(_, u)| *u)
                .chain(report.deleted.locked_until)
                .max();
        }
        // Index files naming doomed packs are replaced first, so no index
        // ever names a pack that is gone.
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
        let doomed_bytes: u64 = doomed.iter().filter_map(|p| state.stored.get(p)).sum();
        report.deleted.index_files_replaced += affected.len() as u64;
        report.deleted.packs += doomed.len() as u64;
        report.deleted.bytes += doomed_bytes;
        report.deleted.plans.extend(ready.iter().copied());
        let mut carried = None;
        if !options.dry_run {
            progress.event(Event::Phase("replacing index files"));
            let mut new_file = None;
            if !replacement.packs.is_empty() {
                let (id, _) = self
                    .save_object(ObjectKind::Index, replacement.encode())
                    .await?;
                new_file = Some(id);
            }
            for id in &affected {
                if new_file != Some(*id) {
                    self.delete_if_present(&layout::index(id)).await?;
                }
            }
            progress.event(Event::Phase("deleting packs"));
            progress.event(Event::Total {
                items: doomed.len() as u64,
                bytes: doomed_bytes,
            });
            let mut deletes = futures::stream::iter(doomed.iter().copied())
                .map(|p| async move {
                    self.delete_if_present(&layout::pack(&p)).await?;
                    Ok::<_, RepoError>(p)
                })
                .buffer_unordered(8);
            while let Some(p) = deletes.next().await {
                let p = p?;
                progress.event(Event::Advance {
                    items: 1,
                    bytes: state.stored.get(&p).copied().unwrap_or(0),
                });
            }
            drop(deletes);
            // Locked packs stay marked, in a plan of their own written before
            // the old ones go (it keeps their time: the grace period is over).
            if !held.is_empty() {
                let o = local_origin(None);
                let time = state
                    .plans
                    .iter()
                    .filter(|(id, _)| ready.contains(id))
                    .map(|(_, p)| p.time)
                    .min()
                    .unwrap_or_else(Utc::now);
                let mut packs: Vec<Id> = held.iter().map(|(p, _)| *p).collect();
                packs.sort();
                let plan = DeletionPlan {
                    time,
                    by: format!("{}@{} (held by object lock)", o.user, o.host),
                    bytes: packs.iter().filter_map(|p| state.stored.get(p)).sum(),
                    packs,
                };
                let (id, _) = self
                    .save_object(ObjectKind::DeletionPlan, plan.to_json()?)
                    .await?;
                carried = Some((id, plan));
            }
            for id in &ready {
                if carried.as_ref().is_none_or(|(c, _)| c != id) {
                    self.delete_if_present(&layout::deletion_plan(id)).await?;
                }
            }
            state.files.retain(|(f, _)| !affected.contains(f));
            if let Some(id) = new_file {
                state.files.push((id, replacement));
            }
        } else {
            // What the index would hold: the replacement under a dummy id.
            state.files.retain(|(f, _)| !affected.contains(f));
            if !replacement.packs.is_empty() {
                state.files.push((Id::from_bytes([0; 32]), replacement));
            }
        }
        for p in &doomed {
            state.stored.remove(p);
        }
        state.plans.retain(|(id, _)| !ready.contains(id));
        if let Some(c) = carried {
            state.plans.push(c);
        }
        Ok(())
    }

    /// Removes from `doomed` the packs S3 Object Lock still holds, or whose
    /// index files it holds; returns them with their unlock dates.
    async fn hold_locked(
        &self,
        state: &State,
        doomed: &mut HashSet<Id>,
    ) -> Result<Vec<(Id, chrono::DateTime<Utc>)>> {
        let Some(dates) = self.lock_dates(&[layout::DATA, layout::INDEX]).await? else {
            return Ok(Vec::new());
        };
        let now = Utc::now();
        let mut until: HashMap<Id, chrono::DateTime<Utc>> = HashMap::new();
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
        Ok(held)
    }

    /// Finds unused, unindexed and (within limits) partly used packs,
    /// repacks the last, and writes a deletion plan naming them all.
    async fn mark_phase(
        &self,
        state: &mut State,
        options: &PruneOptions,
        progress: &DynProgress,
        report: &mut PruneReport,
    ) -> Result<()> {
        progress.event(Event::Phase("planning"));
        let marked = state.marked();
        let indexed = state.indexed_packs();
        // Each used blob is counted in one pack: the first unmarked stored
        // one that holds it. Other copies are unused space.
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
        drop(locations);
        let mut doomed: Vec<Id> = Vec::new();
        let mut partial: Vec<(Id, u64, u64)> = Vec::new();
        let mut live_bytes = 0u64;
        for (pack, &size) in &state.stored {
            if marked.contains(pack) {
                continue;
            }
            if !indexed.contains_key(pack) {
                // With blobs missing from every index, an unindexed pack may
                // be where they are (a lost index file): keep it for
                // `repair index`.
                if state.reach.missing == 0 {
                    report.marked.unindexed_packs += 1;
                    doomed.push(*pack);
                }
                continue;
            }
            let used: u64 = keep
                .get(pack)
                .map(|es| es.iter().map(|e| u64::from(e.length)).sum())
                .unwrap_or(0);
            if used == 0 {
                report.marked.unused_packs += 1;
                doomed.push(*pack);
                continue;
            }
            live_bytes += size;
            let all: u64 = indexed
                .get(pack)
                .map(|p| p.blobs.iter().map(|e| u64::from(e.length)).sum())
                .unwrap_or(0);
            if all > used {
                partial.push((*pack, size, all - used));
            }
        }
        // Most wasteful first, until what is left is within the tolerance.
        partial.sort_by(|a, b| {
            let (fa, fb) = (a.2 as f64 / a.1 as f64, b.2 as f64 / b.1 as f64);
            fb.total_cmp(&fa).then(a.0.cmp(&b.0))
        });
        let tolerated = (live_bytes as f64 * options.max_unused_percent / 100.0) as u64;
        let mut unused_left: u64 = partial.iter().map(|p| p.2).sum();
        let mut repack: Vec<Id> = Vec::new();
        for (pack, size, unused) in &partial {
            if unused_left <= tolerated {
                break;
            }
            if options
                .max_repack
                .is_some_and(|m| report.marked.repacked_bytes + size > m)
            {
                continue;
            }
            report.marked.repacked_bytes += size;
            report.marked.repacked_packs += 1;
            unused_left -= unused;
            repack.push(*pack);
        }
        report.unused_bytes_left = unused_left;
        if !options.dry_run && !repack.is_empty() {
            let jobs: Vec<(Id, [u8; 32], Vec<PackEntry>)> = repack
                .iter()
                .filter_map(|p| {
                    let salt = indexed.get(p)?.salt;
                    Some((*p, salt, keep.remove(p).unwrap_or_default()))
                })
                .collect();
            let (packs, bytes) = self.repack(jobs, options, progress).await?;
            report.marked.new_packs = packs;
            report.marked.new_bytes = bytes;
            state.index_changed = true;
        }
        doomed.extend(repack);
        doomed.sort();
        report.marked.bytes = doomed.iter().filter_map(|p| state.stored.get(p)).sum();
        if doomed.is_empty() || options.dry_run {
            return Ok(());
        }
        let o = local_origin(None);
        let plan = DeletionPlan {
            time: Utc::now(),
            by: format!("{}@{}", o.user, o.host),
            packs: doomed,
            bytes: report.marked.bytes,
        };
        let (id, _) = self
            .save_object(ObjectKind::DeletionPlan, plan.to_json()?)
            .await?;
        report.marked.plan = Some(id);
        state.plans.push((id, plan));
        Ok(())
    }

    /// Copies the listed blobs of each pack into new packs (verifying each
    /// as it is read) and indexes them; returns the new packs and bytes.
    async fn repack(
        &self,
        jobs: Vec<(Id, [u8; 32], Vec<PackEntry>)>,
        options: &PruneOptions,
        progress: &DynProgress,
    ) -> Result<(u64, u64)> {
        progress.event(Event::Phase("repacking"));
        progress.event(Event::Total {
            items: jobs.len() as u64,
            bytes: jobs
                .iter()
                .flat_map(|j| &j.2)
                .map(|e| u64::from(e.length))
                .sum(),
        });
        let uploader = Uploader::start(self.clone(), options.uploads);
        let data = Arc::new(PackSink::new(self.clone(), uploader.outlet()));
        let trees = Arc::new(PackSink::new(self.clone(), uploader.outlet()));
        let copied = async {
            let mut copies = futures::stream::iter(jobs)
                .map(|(pack, salt, entries)| {
                    let (data, trees) = (data.clone(), trees.clone());
                    async move {
                        let key = layout::pack(&pack);
                        let bytes = self.storage().get(&key, None).await?;
                        let mk = self.key().clone();
                        let moved: u64 = entries.iter().map(|e| u64::from(e.length)).sum();
                        cpu(move || {
                            let mut enc = Encoder::new(Compression::DEFAULT)?;
                            for e in &entries {
                                let record = bytes
                                    .get(e.offset as usize..e.end() as usize)
                                    .ok_or_else(|| {
                                        RepoError::Damaged(format!(
                                            "{key} is shorter than its index says; run `lifeboat check`"
                                        ))
                                    })?;
                                let corrupt = |err| {
                                    RepoError::corrupt(
                                        format!("blob {} in pack {key}", e.id.short()),
                                        err,
                                    )
                                };
                                let sink = match e.blob_type {
                                    BlobType::Tree => &trees,
                                    _ => &data,
                                };
                                if e.blob_type == BlobType::Delta {
                                    // Moved as encoded: its base is kept (the
                                    // trees that use it list it) and the seal
                                    // authenticated the payload.
                                    let encoded = open_record(&mk.subkey(&salt), e, record)
                                        .map_err(corrupt)?;
                                    sink.add_encoded(
                                        e.blob_type,
                                        e.id,
                                        e.raw_length as usize,
                                        &encoded,
                                    )?;
                                    continue;
                                }
                                let blob = open_blob(&mk, &salt, e, record).map_err(corrupt)?;
                                sink.add(&mut enc, e.blob_type, e.id, &blob)?;
                            }
                            Ok::<_, RepoError>(moved)
                        })
                        .await?
                    }
                })
                // One pack read at a time (its blobs are verified and
                // re-packed while the uploader writes): memory stays at one
                // pack read plus the uploader's few pack buffers, whatever
                // the size of the repository.
                .buffer_unordered(1);
            while let Some(moved) = copies.next().await {
                progress.event(Event::Advance {
                    items: 1,
                    bytes: moved?,
                });
            }
            drop(copies);
            let (d, t) = (data.clone(), trees.clone());
            cpu(move || {
                d.flush()?;
                t.flush()
            })
            .await?
        }
        .await;
        drop((data, trees));
        // Always wait for the uploader, so no upload is left running.
        let uploaded = uploader.finish().await;
        copied?;
        let stats = uploaded?;
        Ok((stats.packs, stats.stored_bytes))
    }

    /// Every stored pack and its size.
    async fn list_packs(&self) -> Result<HashMap<Id, u64>> {
        Ok(self
            .storage()
            .list(layout::DATA)
            .await?
            .into_iter()
            .filter_map(|m| layout::id_from_key(&m.key, layout::DATA).map(|id| (id, m.size)))
            .collect())
    }

    /// Deletes `key`; an object already gone is fine (a resumed prune).
    async fn delete_if_present(&self, key: &str) -> Result<()> {
        Ok(self
            .storage()
            .delete(key, lifeboat_storage::IfMissing::Ignore)
            .await?)
    }
}
