//! The applying half of prune: carries out a [`DeletePlan`] or a
//! [`MarkPlan`] in the order that keeps the repository consistent if it is
//! killed at any point, and updates [`State`] as it goes. A dry run
//! updates the state only, so the later phases plan on what would be.

use chrono::Utc;
use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::maintenance::DeletionPlan;
use lifeboat_format::object::ObjectKind;

use super::plan::{DeletePlan, MarkPlan};
use super::state::State;
use super::{PruneOptions, PruneReport};
use crate::error::{RepoError, Result};
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::repository::{Repository, local_origin};

impl Repository {
    /// Carries out `plan`: the replacement index file is written first,
    /// then the index files it supersedes go, then the packs, then (after
    /// any held packs are saved in a plan of their own) the deletion plans.
    pub(crate) async fn apply_delete(
        &self,
        state: &mut State,
        plan: DeletePlan,
        dry_run: bool,
        progress: &DynProgress,
        report: &mut PruneReport,
    ) -> Result<()> {
        let d = &mut report.deleted;
        d.kept_in_use += plan.kept_in_use;
        if !plan.held.is_empty() {
            d.locked_packs += plan.held.len() as u64;
            d.locked_bytes += plan.held_packs(state).1;
            d.locked_until = plan
                .held
                .iter()
                .map(|(_, u)| *u)
                .chain(d.locked_until)
                .max();
        }
        d.index_files_replaced += plan.affected.len() as u64;
        d.packs += plan.doomed.len() as u64;
        d.bytes += plan.doomed_bytes;
        d.plans.extend(plan.ready.iter().copied());
        if dry_run {
            // What the index would hold: the replacement under a dummy id.
            let new_file = (!plan.replacement.packs.is_empty()).then(|| Id::from_bytes([0; 32]));
            state.after_delete(plan, new_file, None);
            return Ok(());
        }
        progress.event(Event::Phase("replacing index files"));
        let mut new_file = None;
        if !plan.replacement.packs.is_empty() {
            let (id, _) = self
                .save_object(ObjectKind::Index, plan.replacement.encode())
                .await?;
            new_file = Some(id);
        }
        for id in &plan.affected {
            if new_file != Some(*id) {
                self.delete_if_present(&layout::index(id)).await?;
            }
        }
        progress.event(Event::Phase("deleting packs"));
        progress.event(Event::Total {
            items: plan.doomed.len() as u64,
            bytes: plan.doomed_bytes,
        });
        let mut deletes = futures::stream::iter(plan.doomed.iter().copied())
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
        let mut carried = None;
        if !plan.held.is_empty() {
            let o = local_origin(None);
            let (packs, bytes) = plan.held_packs(state);
            let held = DeletionPlan {
                time: plan.marked_at(state).unwrap_or_else(Utc::now),
                by: format!("{}@{} (held by object lock)", o.user, o.host),
                bytes,
                packs,
            };
            let (id, _) = self
                .save_object(ObjectKind::DeletionPlan, held.to_json()?)
                .await?;
            carried = Some((id, held));
        }
        for id in &plan.ready {
            if carried.as_ref().is_none_or(|(c, _)| c != id) {
                self.delete_if_present(&layout::deletion_plan(id)).await?;
            }
        }
        state.after_delete(plan, new_file, carried);
        Ok(())
    }

    /// Carries out `plan`: repacks first (the new packs indexed), then
    /// writes the deletion plan naming every doomed pack. A dry run writes
    /// nothing.
    pub(crate) async fn apply_mark(
        &self,
        state: &mut State,
        plan: MarkPlan,
        options: &PruneOptions,
        progress: &DynProgress,
        report: &mut PruneReport,
    ) -> Result<()> {
        let m = &mut report.marked;
        m.unused_packs = plan.unused.len() as u64;
        m.unindexed_packs = plan.unindexed.len() as u64;
        m.repacked_packs = plan.repack.len() as u64;
        m.repacked_bytes = plan.repacked_bytes();
        report.unused_bytes_left = plan.unused_bytes_left;
        let doomed = plan.doomed();
        report.marked.bytes = doomed.iter().filter_map(|p| state.stored.get(p)).sum();
        if options.dry_run {
            return Ok(());
        }
        if !plan.repack.is_empty() {
            let (packs, bytes) = self.repack(plan.repack, options, progress).await?;
            report.marked.new_packs = packs;
            report.marked.new_bytes = bytes;
            state.index_changed = true;
        }
        if doomed.is_empty() {
            return Ok(());
        }
        let o = local_origin(None);
        let deletion = DeletionPlan {
            time: Utc::now(),
            by: format!("{}@{}", o.user, o.host),
            packs: doomed,
            bytes: report.marked.bytes,
        };
        let (id, _) = self
            .save_object(ObjectKind::DeletionPlan, deletion.to_json()?)
            .await?;
        report.marked.plan = Some(id);
        state.plans.push((id, deletion));
        Ok(())
    }

    /// Deletes `key`; an object already gone is fine (a resumed prune).
    pub(crate) async fn delete_if_present(&self, key: &str) -> Result<()> {
        Ok(self
            .storage()
            .delete(key, lifeboat_storage::IfMissing::Ignore)
            .await?)
    }
}

impl State {
    /// The state once `plan` is carried out: the affected index files
    /// replaced by `new_file` (if one was written), the doomed packs gone,
    /// the ready plans removed and `carried` (the held packs' plan) added.
    fn after_delete(
        &mut self,
        plan: DeletePlan,
        new_file: Option<Id>,
        carried: Option<(Id, DeletionPlan)>,
    ) {
        self.files.retain(|(f, _)| !plan.affected.contains(f));
        if let Some(id) = new_file {
            self.files.push((id, plan.replacement));
        }
        for p in &plan.doomed {
            self.stored.remove(p);
        }
        self.plans.retain(|(id, _)| !plan.ready.contains(id));
        if let Some(c) = carried {
            self.plans.push(c);
        }
    }
}
