//! The in-memory master index: every blob's pack and position, merged from
//! all index files.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use lifeboat_format::index::{IndexFile, IndexPack};
use lifeboat_format::object::ObjectKind;
use lifeboat_format::pack::PackEntry;
use lifeboat_format::{BlobType, Id};

use crate::error::{RepoError, Result};
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::repository::{Repository, cpu};

/// A pack known to the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackInfo {
    /// Storage id.
    pub id: Id,
    /// Subkey salt.
    pub salt: [u8; 32],
    /// Size in bytes.
    pub size: u64,
}

/// Where one blob is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// Position of the pack in [`MasterIndex::packs`].
    pub pack: u32,
    /// The blob's entry (type, id, offset, lengths).
    pub entry: PackEntry,
}

impl BlobLocation {
    /// The blob's type.
    pub fn blob_type(&self) -> BlobType {
        self.entry.blob_type
    }
}

/// All index files merged.
#[derive(Debug, Default)]
pub struct MasterIndex {
    packs: Vec<PackInfo>,
    pack_pos: HashMap<Id, u32>,
    blobs: HashMap<Id, BlobLocation>,
    files: Vec<Id>,
}

impl MasterIndex {
    /// Adds one pack's entries (a pack listed twice is merged).
    pub fn add_pack(&mut self, pack: &IndexPack) {
        let pos = match self.pack_pos.get(&pack.id) {
            Some(p) => *p,
            None => {
                let p = self.packs.len() as u32;
                self.packs.push(PackInfo {
                    id: pack.id,
                    salt: pack.salt,
                    size: pack.size,
                });
                self.pack_pos.insert(pack.id, p);
                p
            }
        };
        for e in &pack.blobs {
            self.blobs.entry(e.id).or_insert(BlobLocation {
                pack: pos,
                entry: *e,
            });
        }
    }

    /// Adds every pack of an index file.
    pub fn add_file(&mut self, id: Id, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p);
        }
        self.files.push(id);
    }

    /// Where a blob is, if indexed.
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.blobs.get(id).copied()
    }

    /// True if the blob is indexed.
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    /// The pack at position `pos`.
    pub fn pack(&self, pos: u32) -> &PackInfo {
        &self.packs[pos as usize]
    }

    /// Every indexed pack.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// Position of a pack, if indexed.
    pub fn pack_position(&self, id: &Id) -> Option<u32> {
        self.pack_pos.get(id).copied()
    }

    /// Every indexed blob.
    pub fn blobs(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> {
        self.blobs.iter()
    }

    /// Number of indexed blobs.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Ids of the index files loaded.
    pub fn files(&self) -> &[Id] {
        &self.files
    }
}

/// The result of loading the index: what loaded, and what could not.
#[derive(Debug, Default)]
pub struct IndexLoad {
    /// The merged index of every readable index file.
    pub index: MasterIndex,
    /// Index files that could not be read, with the reason.
    pub damaged: Vec<(String, RepoError)>,
}

impl MasterIndex {
    /// Merges index files. Packs in `marked` (marked for deletion by a
    /// prune) are merged last, so a blob that also lives elsewhere is read
    /// from the pack that stays; with `exclude`, they are left out entirely
    /// (for backups, which must not deduplicate against them).
    pub fn from_files(files: &[(Id, IndexFile)], marked: &HashSet<Id>, exclude: bool) -> Self {
        let mut index = MasterIndex::default();
        for (id, file) in files {
            for p in file.packs.iter().filter(|p| !marked.contains(&p.id)) {
                index.add_pack(p);
            }
            index.files.push(*id);
        }
        if !exclude {
            for (_, file) in files {
                for p in file.packs.iter().filter(|p| marked.contains(&p.id)) {
                    index.add_pack(p);
                }
            }
        }
        index
    }
}

/// Every index file as read, and those that could not be read.
#[derive(Debug, Default)]
pub struct IndexFiles {
    /// Readable files with their ids.
    pub files: Vec<(Id, IndexFile)>,
    /// Index files that could not be read, with the reason.
    pub damaged: Vec<(String, RepoError)>,
}

impl Repository {
    /// Loads every index file, preferring packs that no prune has marked for
    /// deletion. Unreadable files are reported in [`IndexLoad::damaged`]
    /// (and as warnings), not fatal: their packs then look unindexed, which
    /// is safe for backups and named by `check`.
    pub async fn load_index(&self, progress: &DynProgress) -> Result<IndexLoad> {
        let marked = self
            .readable_deletion_plans()
            .await?
            .into_iter()
            .flat_map(|(_, p)| p.packs)
            .collect();
        self.load_index_marked(progress, &marked, false).await
    }

    /// Loads the index leaving out (with `exclude`) or merging last the
    /// packs in `marked`.
    pub async fn load_index_marked(
        &self,
        progress: &DynProgress,
        marked: &HashSet<Id>,
        exclude: bool,
    ) -> Result<IndexLoad> {
        let files = self.read_index_files(progress).await?;
        Ok(IndexLoad {
            index: MasterIndex::from_files(&files.files, marked, exclude),
            damaged: files.damaged,
        })
    }

    /// Reads and decodes every index file in parallel. A file that vanishes
    /// between the listing and the read was replaced by a prune compacting
    /// the index (its successor was written first): the listing is redone.
    pub async fn read_index_files(&self, progress: &DynProgress) -> Result<IndexFiles> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (files, vanished) = self.read_index_files_once(progress).await?;
            if !vanished || attempt == 5 {
                return Ok(files);
            }
        }
    }

    async fn read_index_files_once(&self, progress: &DynProgress) -> Result<(IndexFiles, bool)> {
        let listed = self.storage().list(layout::INDEX).await?;
        let ids: Vec<(String, Id)> = listed
            .into_iter()
            .filter_map(|m| layout::id_from_key(&m.key, layout::INDEX).map(|id| (m.key, id)))
            .collect();
        let mut results = futures::stream::iter(ids)
            .map(|(key, id)| async move {
                let r = async {
                    let payload = self.load_object(ObjectKind::Index, &key, &id).await?;
                    cpu(move || IndexFile::decode(&payload))
                        .await?
                        .map_err(|e| RepoError::corrupt(key.clone(), e))
                }
                .await;
                (key, id, r)
            })
            .buffer_unordered(16);
        let mut out = IndexFiles::default();
        let mut vanished = false;
        while let Some((key, id, r)) = results.next().await {
            match r {
                Ok(file) => out.files.push((id, file)),
                Err(RepoError::Storage(e)) if e.is_not_found() => vanished = true,
                Err(e) if e.is_access_problem() => return Err(e),
                Err(e) => {
                    progress.event(Event::Warning(format!(
                        "index file {key} is unreadable and was skipped: {e}"
                    )));
                    out.damaged.push((key, e));
                }
            }
        }
        // A stable merge order, whatever order the reads finished in.
        out.files.sort_by_key(|(id, _)| *id);
        Ok((out, vanished))
    }
}
