//! The repository as prune sees it, read from storage and kept up to date
//! as prune works: index files, stored packs, deletion plans, and what the
//! snapshots use.

use std::collections::{HashMap, HashSet};

use lifeboat_format::Id;
use lifeboat_format::index::{IndexFile, IndexPack};
use lifeboat_format::maintenance::DeletionPlan;

use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::reachable::Reachable;
use crate::repository::Repository;

/// What prune knows of the repository.
#[derive(Default)]
pub(crate) struct State {
    /// Index files, by id.
    pub files: Vec<(Id, IndexFile)>,
    /// Stored packs and their sizes.
    pub stored: HashMap<Id, u64>,
    /// Deletion plans waiting to be carried out.
    pub plans: Vec<(Id, DeletionPlan)>,
    /// What the walked snapshots use.
    pub reach: Reachable,
    /// Snapshots already walked into `reach`.
    pub walked: HashSet<Id>,
    /// The index changed (repacked packs were indexed): read it again.
    pub index_changed: bool,
}

impl State {
    /// Every pack some deletion plan names.
    pub fn marked(&self) -> HashSet<Id> {
        self.plans
            .iter()
            .flat_map(|(_, p)| p.packs.iter().copied())
            .collect()
    }

    /// Every stored pack holding each blob, in index order.
    pub fn locations(&self) -> HashMap<Id, Vec<Id>> {
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
    pub fn indexed_packs(&self) -> HashMap<Id, &IndexPack> {
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
    /// Reads the index files (refusing damaged ones: prune cannot tell
    /// which packs they list) and adds the blobs of snapshots not yet walked.
    pub(crate) async fn refresh_used(
        &self,
        state: &mut State,
        progress: &DynProgress,
    ) -> Result<()> {
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

    /// Every stored pack and its size.
    pub(crate) async fn list_packs(&self) -> Result<HashMap<Id, u64>> {
        Ok(self
            .storage()
            .list(layout::DATA)
            .await?
            .into_iter()
            .filter_map(|m| layout::id_from_key(&m.key, layout::DATA).map(|id| (id, m.size)))
            .collect())
    }
}
