//! Reading single blobs and trees through the index.

use lifeboat_format::pack::open_blob;
use lifeboat_format::tree::Tree;
use lifeboat_format::{BlobType, Id};

use crate::error::{RepoError, Result};
use crate::index::{BlobLocation, MasterIndex};
use crate::layout;
use crate::repository::{Repository, cpu};

impl Repository {
    /// Reads, decrypts and verifies one blob.
    pub async fn read_blob(
        &self,
        index: &MasterIndex,
        id: &Id,
        needed_by: &str,
    ) -> Result<Vec<u8>> {
        let loc = index.get(id).ok_or_else(|| RepoError::MissingBlob {
            id: *id,
            needed_by: needed_by.into(),
        })?;
        self.read_blob_at(index, &loc).await
    }

    /// Reads the blob at a known location.
    pub async fn read_blob_at(&self, index: &MasterIndex, loc: &BlobLocation) -> Result<Vec<u8>> {
        let pack = index.pack(loc.pack).clone();
        let key = layout::pack(&pack.id);
        let record = self
            .storage()
            .get(&key, Some(u64::from(loc.entry.offset)..loc.entry.end()))
            .await
            .map_err(|e| match e {
                e if e.is_not_found() => RepoError::MissingBlob {
                    id: loc.entry.id,
                    needed_by: format!("its pack {key} is missing from storage"),
                },
                e => e.into(),
            })?;
        let mk = self.key().clone();
        let entry = loc.entry;
        cpu(move || {
            open_blob(&mk, &pack.salt, &entry, &record).map_err(|e| {
                RepoError::corrupt(
                    format!(
                        "{} blob {} in pack {key}",
                        entry.blob_type.name(),
                        entry.id.short()
                    ),
                    e,
                )
            })
        })
        .await?
    }

    /// Reads and validates a tree blob.
    pub async fn read_tree(&self, index: &MasterIndex, id: &Id, needed_by: &str) -> Result<Tree> {
        let loc = index.get(id).ok_or_else(|| RepoError::MissingBlob {
            id: *id,
            needed_by: needed_by.into(),
        })?;
        if loc.blob_type() != BlobType::Tree {
            return Err(RepoError::Invalid(format!(
                "blob {} is a {} blob where a tree was expected ({needed_by})",
                id.short(),
                loc.blob_type().name()
            )));
        }
        let data = self.read_blob_at(index, &loc).await?;
        Tree::from_json(&data).map_err(|e| RepoError::corrupt(format!("tree {}", id.short()), e))
    }
}
