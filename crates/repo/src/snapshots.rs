//! Listing, loading, resolving and saving snapshots.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::object::ObjectKind;
use lifeboat_format::snapshot::Snapshot;

use crate::error::{RepoError, Result};
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::repository::Repository;

/// Snapshots already loaded, by id. A snapshot never changes once written,
/// so a long-running reader (the daemon) lists the ids each time and loads
/// only the snapshots it has not seen.
#[derive(Debug, Default)]
pub struct SnapshotCache {
    loaded: HashMap<Id, Snapshot>,
}

/// A snapshot with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The snapshot's id.
    pub id: Id,
    /// Its content.
    pub snapshot: Snapshot,
}

impl Repository {
    /// Loads one snapshot by id.
    pub async fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let key = layout::snapshot(id);
        let payload = self.load_object(ObjectKind::Snapshot, &key, id).await?;
        Snapshot::from_json(&payload).map_err(|e| RepoError::corrupt(key, e))
    }

    /// Stores a snapshot; returns its id and stored size.
    pub async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(Id, u64)> {
        self.save_object(ObjectKind::Snapshot, snapshot.to_json()?)
            .await
    }

    /// Ids of every snapshot object on storage.
    pub async fn snapshot_ids(&self) -> Result<Vec<Id>> {
        self.ids_under(layout::SNAPSHOTS).await
    }

    /// Loads every snapshot, oldest first. Unreadable snapshots are reported
    /// as warnings and left out (`check` names them as errors).
    pub async fn list_snapshots(&self, progress: &DynProgress) -> Result<Vec<SnapshotEntry>> {
        self.list_snapshots_cached(&mut SnapshotCache::default(), progress)
            .await
    }

    /// [`Repository::list_snapshots`], loading only the snapshots `cache`
    /// does not hold yet (and forgetting those no longer on storage).
    pub async fn list_snapshots_cached(
        &self,
        cache: &mut SnapshotCache,
        progress: &DynProgress,
    ) -> Result<Vec<SnapshotEntry>> {
        let ids = self.snapshot_ids().await?;
        let present: HashSet<Id> = ids.iter().copied().collect();
        cache.loaded.retain(|id, _| present.contains(id));
        let new: Vec<Id> = ids
            .into_iter()
            .filter(|id| !cache.loaded.contains_key(id))
            .collect();
        let mut loaded = futures::stream::iter(new)
            .map(|id| async move { (id, self.load_snapshot(&id).await) })
            .buffer_unordered(16);
        while let Some((id, r)) = loaded.next().await {
            match r {
                Ok(snapshot) => {
                    cache.loaded.insert(id, snapshot);
                }
                Err(e) if e.is_access_problem() => return Err(e),
                Err(e) => progress.event(Event::Warning(format!(
                    "snapshot {} is unreadable: {e}",
                    id.short()
                ))),
            }
        }
        let mut out: Vec<SnapshotEntry> = cache
            .loaded
            .iter()
            .map(|(id, snapshot)| SnapshotEntry {
                id: *id,
                snapshot: snapshot.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Resolves `latest`, a full id or a unique id prefix.
    pub async fn find_snapshot(
        &self,
        reference: &str,
        progress: &DynProgress,
    ) -> Result<SnapshotEntry> {
        let reference = reference.trim();
        if reference == "latest" {
            return self.list_snapshots(progress).await?.pop().ok_or_else(|| {
                RepoError::SnapshotNotFound("latest (the repository has no snapshots)".into())
            });
        }
        let prefix = reference.to_lowercase();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RepoError::SnapshotNotFound(reference.into()));
        }
        let matches: Vec<Id> = self
            .snapshot_ids()
            .await?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&prefix))
            .collect();
        match matches.as_slice() {
            [id] => Ok(SnapshotEntry {
                id: *id,
                snapshot: self.load_snapshot(id).await?,
            }),
            [] => Err(RepoError::SnapshotNotFound(reference.into())),
            many => Err(RepoError::AmbiguousSnapshot {
                prefix: reference.into(),
                count: many.len(),
            }),
        }
    }
}
