//! Storing byte streams that are not files on this machine (the output of a
//! database's `COPY`, a dump) into a backup: chunked by content, deduplicated
//! against the repository and the rest of the backup, packed with the
//! backup's other blobs.

use std::io::Read;
use std::sync::Arc;

use lifeboat_format::chunker::Chunker;
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::{BlobType, Id};

use crate::chunk_reader::ChunkReader;
use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::progress::{DynProgress, Event};
use crate::repository::Repository;
use crate::uploader::{Claims, PackSink};

/// A stream's content as stored: its chunks in order and its length.
#[derive(Clone, Debug, Default)]
pub struct StoredStream {
    /// Chunk ids, in order.
    pub content: Vec<Id>,
    /// Length in bytes.
    pub size: u64,
}

/// Stores streams into a running backup. Cheap to clone; clones may be used
/// from several threads at once (each stream on its own thread).
#[derive(Clone)]
pub struct StreamStore {
    pub(crate) repo: Repository,
    pub(crate) index: Arc<MasterIndex>,
    pub(crate) claims: Arc<Claims>,
    pub(crate) sink: Arc<PackSink>,
    pub(crate) compression: Compression,
    pub(crate) progress: DynProgress,
}

impl StreamStore {
    /// Stores chunks cut by the caller (e.g. at row boundaries), in order,
    /// as one stream: each becomes one blob. Blocks: call it from a
    /// blocking thread.
    pub fn store_chunks_blocking(
        &self,
        chunks: impl Iterator<Item = Vec<u8>>,
    ) -> Result<StoredStream> {
        self.store_each(chunks.map(Ok))
    }

    /// The repository's chunker parameters (sizes and secret seed), for
    /// callers that cut chunks themselves.
    pub fn chunker_params(&self) -> lifeboat_format::chunker::ChunkerParams {
        self.repo.config().chunker
    }

    /// Reads `src` to its end, storing every chunk not yet in the repository.
    /// Blocks: call it from a blocking thread.
    pub fn store_blocking(&self, src: impl Read) -> Result<StoredStream> {
        let chunker = Chunker::new(self.repo.config().chunker)?;
        let mut reader = ChunkReader::new(src, &chunker);
        self.store_each(std::iter::from_fn(|| {
            reader
                .next_chunk()
                .map_err(|e| RepoError::Invalid(format!("cannot read the stream: {e}")))
                .transpose()
        }))
    }

    /// Hashes each chunk, stores those new to the repository and this
    /// backup, and lists them all in order.
    fn store_each(&self, chunks: impl Iterator<Item = Result<Vec<u8>>>) -> Result<StoredStream> {
        let mut encoder = Encoder::new(self.compression)?;
        let id_key = self.repo.key().id_key();
        let mut out = StoredStream::default();
        for chunk in chunks {
            let chunk = chunk?;
            let id = id_key.blob_id(BlobType::Data, &chunk);
            if self.claims.claim(&self.index, id) {
                self.sink.add(&mut encoder, BlobType::Data, id, &chunk)?;
            }
            out.content.push(id);
            out.size += chunk.len() as u64;
            self.progress.event(Event::Advance {
                items: 0,
                bytes: chunk.len() as u64,
            });
        }
        self.progress.event(Event::Advance { items: 1, bytes: 0 });
        Ok(out)
    }
}
