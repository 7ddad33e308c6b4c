//! `repair index`: rebuilds index entries from the packs themselves; and
//! `repair plans`: removes prune bookkeeping that cannot be read.
//!
//! Every pack carries an encrypted table of its blobs (its trailer), so a lost
//! or damaged index file loses nothing: this reads the trailer of every pack
//! that no readable index file lists, writes a new index file for them, and
//! then removes the index files that could not be read (their content is now
//! covered, and they could never be read again anyway).

use std::collections::HashSet;

use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::index::{IndexFile, IndexPack};
use lifeboat_format::maintenance::DeletionPlan;
use lifeboat_format::object::ObjectKind;
use lifeboat_format::pack::read_trailer;
use serde::Serialize;

use crate::error::Result;
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::repository::{Repository, cpu};

/// What `repair index` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairReport {
    /// Packs that no readable index listed.
    pub unindexed_packs: u64,
    /// Of those, packs whose trailer was read and which are now indexed.
    pub indexed_packs: u64,
    /// Blobs in them.
    pub blobs: u64,
    /// The new index file, if one was written.
    pub new_index: Option<Id>,
    /// Damaged index files removed.
    pub removed_index_files: Vec<String>,
    /// Packs whose trailer could not be read, with the reason (left alone).
    pub unreadable_packs: Vec<String>,
}

impl Repository {
    /// Indexes every pack missing from the index and drops unreadable index files.
    pub async fn repair_index(&self, progress: DynProgress) -> Result<RepairReport> {
        progress.event(Event::Phase("loading index"));
        let load = self.load_index(&progress).await?;
        let indexed: HashSet<Id> = load.index.packs().iter().map(|p| p.id).collect();
        let stored = self.storage().list(layout::DATA).await?;
        let missing: Vec<(Id, u64)> = stored
            .into_iter()
            .filter_map(|m| layout::id_from_key(&m.key, layout::DATA).map(|id| (id, m.size)))
            .filter(|(id, _)| !indexed.contains(id))
            .collect();
        let mut report = RepairReport {
            unindexed_packs: missing.len() as u64,
            ..Default::default()
        };
        progress.event(Event::Phase("reading pack trailers"));
        progress.event(Event::Total {
            items: missing.len() as u64,
            bytes: missing.iter().map(|(_, s)| s).sum(),
        });
        let mut reads = futures::stream::iter(missing)
            .map(|(id, size)| async move {
                let key = layout::pack(&id);
                let bytes = self.storage().get(&key, None).await?;
                let mk = self.key().clone();
                let parsed = cpu(move || {
                    let intact = Id::of_pack(&bytes) == id;
                    read_trailer(&mk, &bytes).map(|(h, entries)| (h, entries, intact))
                })
                .await?;
                Ok::<_, crate::error::RepoError>((id, size, key, parsed))
            })
            .buffer_unordered(4);
        let mut file = IndexFile::default();
        while let Some(r) = reads.next().await {
            let (id, size, key, parsed) = r?;
            progress.event(Event::Advance {
                items: 1,
                bytes: size,
            });
            match parsed {
                Ok((header, entries, intact)) => {
                    if !intact {
                        progress.event(Event::Warning(format!(
                            "{key} does not match its name; indexed anyway so its intact blobs stay usable \
                             (`check --read-data` names what is damaged)"
                        )));
                    }
                    report.indexed_packs += 1;
                    report.blobs += entries.len() as u64;
                    file.packs.push(IndexPack {
                        id,
                        salt: header.salt,
                        size,
                        blobs: entries,
                    });
                }
                Err(e) => report.unreadable_packs.push(format!("{key}: {e}")),
            }
        }
        drop(reads);
        if !file.packs.is_empty() {
            file.supersedes = load
                .damaged
                .iter()
                .filter_map(|(k, _)| layout::id_from_key(k, layout::INDEX))
                .collect();
            let (id, _) = self.save_object(ObjectKind::Index, file.encode()).await?;
            report.new_index = Some(id);
        }
        // Only now that the new index is durable are the damaged ones removed.
        for (key, _) in &load.damaged {
            self.storage()
                .delete(key, lifeboat_storage::IfMissing::Ignore)
                .await?;
            report.removed_index_files.push(key.clone());
        }
        Ok(report)
    }
}

/// What `repair plans` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairPlansReport {
    /// Unreadable deletion plans removed (the packs they marked are kept).
    pub removed_plans: Vec<String>,
    /// Unreadable backup-in-progress records removed.
    pub removed_records: Vec<String>,
}

impl Repository {
    /// Removes deletion plans and backup-in-progress records that cannot be
    /// read, under the prune lock. Neither removal can lose data: a plan only
    /// marks packs for a later deletion (they stay, and the next prune marks
    /// them again if nothing uses them), and a live backup rewrites its record
    /// within a minute.
    pub async fn repair_plans(&self) -> Result<RepairPlansReport> {
        let lock = self.lock_prune().await?;
        let result = async {
            let mut report = RepairPlansReport::default();
            let ids = self.ids_under(layout::PRUNE).await?;
            for id in ids {
                let key = layout::deletion_plan(&id);
                let readable = match self.load_object(ObjectKind::DeletionPlan, &key, &id).await {
                    Ok(payload) => DeletionPlan::from_json(&payload).is_ok(),
                    Err(e) if e.is_access_problem() => return Err(e),
                    Err(_) => false,
                };
                if !readable {
                    self.storage()
                        .delete(&key, lifeboat_storage::IfMissing::Ignore)
                        .await?;
                    report.removed_plans.push(key);
                }
            }
            for entry in self.running_backups().await? {
                if entry.record.is_err() {
                    match self
                        .storage()
                        .delete(&entry.key, lifeboat_storage::IfMissing::Fail)
                        .await
                    {
                        Ok(()) => report.removed_records.push(entry.key),
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Ok(report)
        }
        .await;
        let released = lock.release().await;
        let report = result?;
        released?;
        Ok(report)
    }
}
