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
//!
//! Each phase first computes a plain plan from the repository's state
//! (`plan`, no I/O) and then carries it out (`apply`); a dry run plans,
//! reports and stops.

mod apply;
mod plan;
mod repack;
mod state;

use chrono::{Duration, Utc};
use lifeboat_format::Id;
use serde::Serialize;

use crate::error::Result;
use crate::progress::{DynProgress, Event};
use crate::repository::Repository;
use crate::running::is_live;
use state::State;

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
        // Records first, snapshots after: a backup that ended between the
        // two has its snapshot listed; one still running is seen here.
        let running = self.running_backups().await?;
        let (ready, postponed) =
            plan::sort_due(state, candidates, &running, options.grace, Utc::now());
        report.postponed.extend(postponed);
        self.refresh_used(state, progress).await?;
        if ready.is_empty() {
            return Ok(());
        }
        let lock_dates = self
            .lock_dates(&[crate::layout::DATA, crate::layout::INDEX])
            .await?;
        let plan = plan::plan_delete(state, ready, lock_dates.as_ref(), Utc::now());
        self.apply_delete(state, plan, options.dry_run, progress, report)
            .await
    }

    /// Marks unused, unindexed and (within limits) partly used packs,
    /// repacking the last, in a new deletion plan.
    async fn mark_phase(
        &self,
        state: &mut State,
        options: &PruneOptions,
        progress: &DynProgress,
        report: &mut PruneReport,
    ) -> Result<()> {
        progress.event(Event::Phase("planning"));
        let plan = plan::plan_mark(state, options);
        self.apply_mark(state, plan, options, progress, report)
            .await
    }
}
