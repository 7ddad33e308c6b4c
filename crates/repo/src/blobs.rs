//! Reading single blobs and trees through the index.

use bytes::Bytes;
use lifeboat_format::compress;
use lifeboat_format::pack::{PackEntry, decode_delta_blob, open_blob, open_record};
use lifeboat_format::tree::Tree;
use lifeboat_format::{BlobType, FormatError, Id};

use crate::error::{RepoError, Result};
use crate::index::{BlobLocation, MasterIndex};
use crate::layout;
use crate::repository::{Repository, cpu};

/// Where blob `id` is, or the error naming what needed it.
pub(crate) fn locate(index: &MasterIndex, id: &Id, needed_by: &str) -> Result<BlobLocation> {
    index.get(id).ok_or_else(|| RepoError::MissingBlob {
        id: *id,
        needed_by: needed_by.into(),
    })
}

/// Like [`locate`], refusing a blob of another type than `expected`.
fn locate_as(
    index: &MasterIndex,
    id: &Id,
    expected: BlobType,
    needed_by: &str,
) -> Result<BlobLocation> {
    let loc = locate(index, id, needed_by)?;
    if loc.blob_type() != expected {
        return Err(RepoError::Damaged(format!(
            "blob {} is a {} blob where a {} blob was expected ({needed_by})",
            id.short(),
            loc.blob_type().name(),
            expected.name()
        )));
    }
    Ok(loc)
}

impl Repository {
    /// Reads, decrypts and verifies one blob.
    pub async fn read_blob(
        &self,
        index: &MasterIndex,
        id: &Id,
        needed_by: &str,
    ) -> Result<Vec<u8>> {
        self.read_blob_at(index, &locate(index, id, needed_by)?)
            .await
    }

    /// Reads the blob at a known location; a delta blob is decoded with its
    /// base, which must be a data blob.
    pub async fn read_blob_at(&self, index: &MasterIndex, loc: &BlobLocation) -> Result<Vec<u8>> {
        Ok(self.read_blob_and_base(index, loc).await?.0)
    }

    /// Like [`Repository::read_blob_at`], also returning a delta blob's base
    /// (id and content).
    pub(crate) async fn read_blob_and_base(
        &self,
        index: &MasterIndex,
        loc: &BlobLocation,
    ) -> Result<(Vec<u8>, Option<(Id, Vec<u8>)>)> {
        let entry = loc.entry;
        let mk = self.key().clone();
        if entry.blob_type != BlobType::Delta {
            // One trip to a blocking thread: decrypt, decode, verify.
            let (pack_key, salt, record) = self.fetch_record(index, loc).await?;
            return cpu(move || {
                open_blob(&mk, &salt, &entry, &record)
                    .map(|data| (data, None))
                    .map_err(|e| corrupt_blob(&entry, &pack_key, e))
            })
            .await?;
        }
        let (pack_key, encoded) = self.read_record_at(index, loc).await?;
        let corrupt = move |e| corrupt_blob(&entry, &pack_key, e);
        let base_id = compress::delta_base(&encoded)
            .map_err(&corrupt)?
            .ok_or_else(|| {
                corrupt(FormatError::Invalid {
                    what: "delta blob",
                    reason: "its payload is not a delta".into(),
                })
            })?;
        let needed_by = format!("the base of delta blob {}", entry.id.short());
        let base_loc = locate_as(index, &base_id, BlobType::Data, &needed_by)?;
        let base = Box::pin(self.read_blob_at(index, &base_loc)).await?;
        cpu(move || {
            let data = decode_delta_blob(&mk, &entry, &encoded, &base).map_err(corrupt)?;
            Ok((data, Some((base_id, base))))
        })
        .await?
    }

    /// The base a delta blob is decoded against, read from its record
    /// without decoding it (`None` for other blobs).
    pub(crate) async fn delta_base_of(
        &self,
        index: &MasterIndex,
        loc: &BlobLocation,
    ) -> Result<Option<Id>> {
        if loc.blob_type() != BlobType::Delta {
            return Ok(None);
        }
        let (pack_key, encoded) = self.read_record_at(index, loc).await?;
        compress::delta_base(&encoded).map_err(|e| corrupt_blob(&loc.entry, &pack_key, e))
    }

    /// Fetches the sealed record at a known location: its pack's key and
    /// salt, and the record's bytes.
    async fn fetch_record(
        &self,
        index: &MasterIndex,
        loc: &BlobLocation,
    ) -> Result<(String, [u8; 32], Bytes)> {
        let pack = index.pack(loc.pack);
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
        Ok((key, pack.salt, record))
    }

    /// Reads and decrypts the record at a known location: its pack's key and
    /// the blob's encoded payload.
    async fn read_record_at(
        &self,
        index: &MasterIndex,
        loc: &BlobLocation,
    ) -> Result<(String, Vec<u8>)> {
        let (key, salt, record) = self.fetch_record(index, loc).await?;
        let mk = self.key().clone();
        let entry = loc.entry;
        cpu(move || {
            open_record(&mk.subkey(&salt), &entry, &record)
                .map(|encoded| (key.clone(), encoded))
                .map_err(|e| corrupt_blob(&entry, &key, e))
        })
        .await?
    }

    /// Reads and validates a tree blob.
    pub async fn read_tree(&self, index: &MasterIndex, id: &Id, needed_by: &str) -> Result<Tree> {
        let loc = locate_as(index, id, BlobType::Tree, needed_by)?;
        let data = self.read_blob_at(index, &loc).await?;
        Tree::from_json(&data).map_err(|e| RepoError::corrupt(format!("tree {}", id.short()), e))
    }
}

/// A blob that did not decrypt, decode or verify, named with its pack.
fn corrupt_blob(entry: &PackEntry, pack_key: &str, e: FormatError) -> RepoError {
    RepoError::corrupt(
        format!(
            "{} blob {} in pack {pack_key}",
            entry.blob_type.name(),
            entry.id.short()
        ),
        e,
    )
}
