//! Storing byte streams that are not files on this machine (the output of a
//! database's `COPY`, a dump) into a backup: chunked by content, deduplicated
//! against the repository and the rest of the backup, packed with the
//! backup's other blobs.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;

use lifeboat_format::chunker::Chunker;
use lifeboat_format::compress::{Compression, Encoder, encode_delta};
use lifeboat_format::{BlobType, Id};

use super::delta::{DeltaPlanner, OldChunk, OldChunks};
use crate::chunk_reader::ChunkReader;
use crate::error::{RepoError, Result};
use crate::index::{BlobLocation, MasterIndex};
use crate::progress::{DynProgress, Event};
use crate::repository::Repository;
use crate::uploader::{Claims, PackSink};

/// A stream's content as stored: its chunks in order and its length.
#[derive(Clone, Debug, Default)]
pub struct StoredStream {
    /// Chunk ids, in order.
    pub content: Vec<Id>,
    /// The data blobs its delta chunks are decoded against, each once.
    pub bases: Vec<Id>,
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
    /// The runtime the backup was started on, which reads old chunks back:
    /// callers may store from threads of another runtime, and the storage's
    /// connections belong to this one.
    pub(crate) runtime: Option<tokio::runtime::Handle>,
}

impl StreamStore {
    /// Stores chunks cut by the caller (at row boundaries), in order, as one
    /// stream whose previous version (from the last backup) had the chunks
    /// `previous` (empty if none): each chunk is one blob, and one new to
    /// the repository is stored as a delta against the old chunk it most
    /// likely replaces when that saves at least half of its size. Each
    /// chunk's buffer goes to `done` once stored, for the caller to reuse.
    /// Blocks: call it from a blocking thread, never from async code.
    pub fn store_chunks_after_blocking(
        &self,
        chunks: impl Iterator<Item = Vec<u8>>,
        previous: Vec<Id>,
        done: impl FnMut(Vec<u8>),
    ) -> Result<StoredStream> {
        let planner = match self.compression {
            Compression::Zstd(level) if !previous.is_empty() => {
                Some((DeltaPlanner::new(previous), level))
            }
            _ => None,
        };
        self.store_each(chunks.map(Ok), planner, done)
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
        self.store_each(
            std::iter::from_fn(|| {
                reader
                    .next_chunk()
                    .map_err(|e| RepoError::Failed(format!("cannot read the stream: {e}")))
                    .transpose()
            }),
            None,
            drop,
        )
    }

    /// Hashes each chunk, stores those new to the repository and this
    /// backup (as deltas where a planner finds a good base), and lists them
    /// all in order.
    fn store_each(
        &self,
        chunks: impl Iterator<Item = Result<Vec<u8>>>,
        mut planner: Option<(DeltaPlanner, i32)>,
        mut done: impl FnMut(Vec<u8>),
    ) -> Result<StoredStream> {
        let mut encoder = Encoder::new(self.compression)?;
        let id_key = self.repo.key().id_key();
        let mut out = StoredStream::default();
        let mut bases = HashSet::new();
        let mut old = RepoChunks {
            repo: &self.repo,
            index: &self.index,
            runtime: self.runtime.clone(),
        };
        for chunk in chunks {
            let chunk = chunk?;
            let full = id_key.blob_id(BlobType::Data, &chunk);
            let as_delta = match planner.as_mut() {
                Some((p, _)) if self.claims.known(&self.index, full) => {
                    p.matched(&full);
                    None
                }
                Some((p, level)) if old.runtime.is_some() => {
                    match self.plan_delta(p, *level, &mut old, &chunk) {
                        Ok(planned) => planned,
                        Err(e) => {
                            // Deltas only save space: carry on storing whole chunks.
                            self.progress.event(Event::Warning(format!(
                                "storing a stream without deltas from here on: {e}"
                            )));
                            planner = None;
                            None
                        }
                    }
                }
                _ => None,
            };
            let id = match as_delta {
                Some(d) => {
                    if let Some(encoded) = d.encoded
                        && self.claims.claim(&self.index, d.id)
                    {
                        self.sink
                            .add_encoded(BlobType::Delta, d.id, chunk.len(), &encoded)?;
                    }
                    if bases.insert(d.base) {
                        out.bases.push(d.base);
                    }
                    d.id
                }
                None => {
                    if self.claims.claim(&self.index, full) {
                        self.sink.add(&mut encoder, BlobType::Data, full, &chunk)?;
                    }
                    full
                }
            };
            out.content.push(id);
            out.size += chunk.len() as u64;
            self.progress.event(Event::Advance {
                items: 0,
                bytes: chunk.len() as u64,
            });
            done(chunk);
        }
        self.progress.event(Event::Advance { items: 1, bytes: 0 });
        Ok(out)
    }

    /// Plans `chunk` (not in the repository as it is) as a delta when the
    /// planner finds a base and the delta costs at most half of what the
    /// base does; `None` to store it whole.
    fn plan_delta(
        &self,
        planner: &mut DeltaPlanner,
        level: i32,
        old: &mut RepoChunks<'_>,
        chunk: &[u8],
    ) -> Result<Option<PlannedDelta>> {
        let id_key = self.repo.key().id_key();
        let delta_id = |base: &Id| id_key.delta_blob_id(base, chunk);
        if let Some((id, base)) = planner.reuse(old, &delta_id)? {
            return Ok(Some(PlannedDelta {
                id,
                base,
                encoded: None,
            }));
        }
        let Some((base, base_content)) = planner.base_for(old, chunk)? else {
            return Ok(None);
        };
        let id = delta_id(&base);
        if self.claims.known(&self.index, id) {
            return Ok(Some(PlannedDelta {
                id,
                base,
                encoded: None,
            }));
        }
        let encoded = encode_delta(level, &base, &base_content, chunk)?;
        let base_cost = self.index.get(&base).map_or(0, |l| l.entry.length as usize);
        Ok((encoded.len() * 2 <= base_cost).then_some(PlannedDelta {
            id,
            base,
            encoded: Some(encoded),
        }))
    }
}

/// A chunk to list as a delta blob.
struct PlannedDelta {
    id: Id,
    base: Id,
    /// Its payload when it still has to be stored.
    encoded: Option<Vec<u8>>,
}

/// Old chunks read back from the repository, from a blocking thread.
/// Old chunks read from the repository (on `runtime`, from any thread).
pub(crate) struct RepoChunks<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    runtime: Option<tokio::runtime::Handle>,
}

impl<'a> RepoChunks<'a> {
    /// Reads through `index`, on `runtime` (none: every read fails).
    pub(crate) fn new(
        repo: &'a Repository,
        index: &'a MasterIndex,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Self {
        Self {
            repo,
            index,
            runtime,
        }
    }

    fn location(&self, id: &Id) -> Result<BlobLocation> {
        crate::blobs::locate(self.index, id, "the previous backup of a stream")
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match &self.runtime {
            Some(rt) => rt.block_on(f),
            None => Err(RepoError::Task("no runtime to read old chunks with".into())),
        }
    }
}

impl OldChunks for RepoChunks<'_> {
    fn delta_base(&mut self, id: &Id) -> Result<Option<Id>> {
        let loc = self.location(id)?;
        self.block_on(self.repo.delta_base_of(self.index, &loc))
    }

    fn read(&mut self, id: &Id) -> Result<OldChunk> {
        let loc = self.location(id)?;
        let (content, base) = self.block_on(self.repo.read_blob_and_base(self.index, &loc))?;
        let content = Arc::new(content);
        Ok(match base {
            Some((base, base_content)) => OldChunk {
                content,
                base,
                base_content: Arc::new(base_content),
            },
            None => OldChunk {
                base: *id,
                base_content: content.clone(),
                content,
            },
        })
    }
}
