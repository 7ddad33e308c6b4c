//! Delta blocks: a changed block of a page-structured file (a PostgreSQL
//! relation segment, cut into fixed blocks) stored as the difference to the
//! same block in the parent snapshot.
//!
//! Scattered updates touch a few pages of nearly every block of a table and
//! its indexes, so an incremental backup that stores changed blocks whole
//! stores most of the table again. A block stored as a delta costs only the
//! pages that changed. The base is the parent's block at the same position,
//! or, when that block was itself a delta, the data blob it was stored
//! against (bases are always data blobs: no chains). A delta that would cost
//! more than half of what its base does is not worth its extra read at
//! restore time: the block is stored whole and becomes the base of the
//! backups after it.

use lifeboat_format::compress::encode_delta;
use lifeboat_format::{BlobType, Id};

use super::delta::OldChunks;
use super::streams::RepoChunks;
use crate::error::Result;
use crate::index::MasterIndex;
use crate::uploader::{Claims, PackSink};

/// Stores changed blocks as deltas against their parent's; one per worker.
pub(crate) struct BlockDeltas<'a> {
    old: RepoChunks<'a>,
    index: &'a MasterIndex,
    claims: &'a Claims,
    sink: &'a PackSink,
    id_key: lifeboat_format::id::IdKey,
    level: i32,
}

impl<'a> BlockDeltas<'a> {
    /// Deltas compressed at zstd `level`, reading old blocks on `runtime`.
    pub(crate) fn new(
        repo: &'a crate::repository::Repository,
        index: &'a MasterIndex,
        claims: &'a Claims,
        sink: &'a PackSink,
        runtime: tokio::runtime::Handle,
        level: i32,
    ) -> Self {
        Self {
            old: RepoChunks::new(repo, index, Some(runtime)),
            index,
            claims,
            sink,
            id_key: repo.key().id_key(),
            level,
        }
    }

    /// Stores `block` (not in the repository as it is) as a delta against
    /// the base `previous` (the parent's block at its position) leads to,
    /// unless the delta saves too little. Returns the delta's id and base,
    /// or `None` when the block is to be stored whole.
    pub(crate) fn store(&mut self, previous: &Id, block: &[u8]) -> Result<Option<(Id, Id)>> {
        let base = self.old.delta_base(previous)?.unwrap_or(*previous);
        let id = self.id_key.delta_blob_id(&base, block);
        if self.claims.known(self.index, id) {
            return Ok(Some((id, base)));
        }
        let base_content = self.old.read(&base)?.content;
        let encoded = encode_delta(self.level, &base, &base_content, block)?;
        let base_cost = self.index.get(&base).map_or(0, |l| l.entry.length as usize);
        if encoded.len() * 2 > base_cost {
            return Ok(None);
        }
        if self.claims.claim(self.index, id) {
            self.sink
                .add_encoded(BlobType::Delta, id, block.len(), &encoded)?;
        }
        Ok(Some((id, base)))
    }
}
