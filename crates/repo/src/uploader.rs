//! Uploads finished packs in parallel and writes index files after them.
//!
//! Write order is an invariant of the format: a pack is listed in an index
//! file only once its upload has completed, and the caller writes a snapshot
//! only after [`Uploader::finish`] has written the last index file.

use std::collections::HashSet;
use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use lifeboat_format::Id;
use lifeboat_format::index::{IndexFile, IndexPack};
use lifeboat_format::object::ObjectKind;
use lifeboat_format::pack::{FinishedPack, PackBuilder};
use lifeboat_storage::{PutMode, StorageError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::layout;
use crate::repository::Repository;

/// Packs per index file while a long backup runs, so that an interrupted
/// backup leaves most of its work indexed and reusable by the next one.
const PACKS_PER_INDEX_FILE: usize = 64;

/// What the uploads added to the repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Packs uploaded.
    pub packs: u64,
    /// Blobs in them.
    pub blobs: u64,
    /// Decoded bytes of those blobs.
    pub raw_bytes: u64,
    /// Bytes stored (packs and index files).
    pub stored_bytes: u64,
    /// Index files written.
    pub index_files: Vec<Id>,
}

/// Handle to the background upload task.
pub struct Uploader {
    tx: mpsc::Sender<FinishedPack>,
    task: JoinHandle<Result<UploadStats>>,
}

impl Uploader {
    /// Starts uploading with at most `concurrency` packs in flight.
    pub fn start(repo: Repository, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        let (tx, rx) = mpsc::channel(concurrency);
        let task = tokio::spawn(run(repo, rx, concurrency));
        Self { tx, task }
    }

    /// A sender for worker threads (use `blocking_send` from them).
    pub fn sender(&self) -> mpsc::Sender<FinishedPack> {
        self.tx.clone()
    }

    /// Waits for every pack and the final index file.
    pub async fn finish(self) -> Result<UploadStats> {
        drop(self.tx);
        self.task
            .await
            .map_err(|e| RepoError::Task(e.to_string()))?
    }
}

/// A pack whose upload completed.
struct Uploaded {
    pack: IndexPack,
    raw_bytes: u64,
}

async fn upload(repo: &Repository, pack: FinishedPack) -> Result<Uploaded> {
    let FinishedPack {
        id,
        salt,
        bytes,
        entries,
        raw_bytes,
    } = pack;
    let size = bytes.len() as u64;
    match repo
        .storage()
        .put(&layout::pack(&id), Bytes::from(bytes), PutMode::CreateOnly)
        .await
    {
        // The name is the hash of the bytes: an existing pack is this pack.
        Ok(()) | Err(StorageError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Uploaded {
        pack: IndexPack {
            id,
            salt,
            size,
            blobs: entries,
        },
        raw_bytes,
    })
}

async fn write_index(
    repo: &Repository,
    pending: &mut IndexFile,
    stats: &mut UploadStats,
) -> Result<()> {
    if pending.packs.is_empty() {
        return Ok(());
    }
    let file = std::mem::take(pending);
    let (id, size) = repo.save_object(ObjectKind::Index, file.encode()).await?;
    stats.index_files.push(id);
    stats.stored_bytes += size;
    Ok(())
}

async fn run(
    repo: Repository,
    mut rx: mpsc::Receiver<FinishedPack>,
    concurrency: usize,
) -> Result<UploadStats> {
    let mut stats = UploadStats::default();
    let mut pending = IndexFile::default();
    let mut inflight = FuturesUnordered::new();
    let mut open = true;
    while open || !inflight.is_empty() {
        tokio::select! {
            next = rx.recv(), if open && inflight.len() < concurrency => match next {
                Some(pack) => {
                    let repo = repo.clone();
                    inflight.push(async move { upload(&repo, pack).await });
                }
                None => open = false,
            },
            Some(done) = inflight.next() => {
                let done = done?;
                stats.packs += 1;
                stats.blobs += done.pack.blobs.len() as u64;
                stats.raw_bytes += done.raw_bytes;
                stats.stored_bytes += done.pack.size;
                pending.packs.push(done.pack);
                if pending.packs.len() >= PACKS_PER_INDEX_FILE {
                    write_index(&repo, &mut pending, &mut stats).await?;
                }
            }
        }
    }
    write_index(&repo, &mut pending, &mut stats).await?;
    Ok(stats)
}

/// A worker thread's pack in progress; hands full packs to the uploader.
pub struct PackSink {
    repo: Repository,
    builder: Option<PackBuilder>,
    target: usize,
    tx: mpsc::Sender<FinishedPack>,
}

impl PackSink {
    /// A sink sending to `tx`, cutting packs at the repository's pack size.
    pub fn new(repo: Repository, tx: mpsc::Sender<FinishedPack>) -> Self {
        let target = repo.config().pack_size as usize;
        Self {
            repo,
            builder: None,
            target,
            tx,
        }
    }

    /// Compresses, encrypts and packs one blob. Blocks while the uploader is
    /// busy (this is what bounds memory). Call from a worker thread only.
    pub fn add(
        &mut self,
        encoder: &mut lifeboat_format::compress::Encoder,
        blob_type: lifeboat_format::BlobType,
        id: Id,
        data: &[u8],
    ) -> Result<()> {
        let builder = match self.builder.as_mut() {
            Some(b) => b,
            None => self
                .builder
                .insert(PackBuilder::new(self.repo.key(), self.target + (1 << 20))?),
        };
        builder.add(encoder, blob_type, id, data)?;
        if builder.len() >= self.target {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the pack in progress, if any.
    pub fn flush(&mut self) -> Result<()> {
        if let Some(b) = self.builder.take().filter(|b| !b.is_empty()) {
            let pack = b.finish()?;
            self.tx.blocking_send(pack).map_err(|_| {
                RepoError::Task("the uploader stopped (see the error above)".into())
            })?;
        }
        Ok(())
    }
}

/// Blob ids claimed during this run: deduplicates blobs that are in packs
/// not yet uploaded, across worker threads.
#[derive(Debug, Default)]
pub struct Claims {
    ids: Mutex<HashSet<Id>>,
}

impl Claims {
    /// True if `id` is new to both the index and this run (and claims it).
    pub fn claim(&self, index: &MasterIndex, id: Id) -> bool {
        if index.contains(&id) {
            return false;
        }
        self.ids.lock().map(|mut s| s.insert(id)).unwrap_or(true)
    }
}
