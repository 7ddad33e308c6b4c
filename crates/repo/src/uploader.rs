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
use lifeboat_format::BlobType;
use lifeboat_format::Id;
use lifeboat_format::compress::Encoder;
use lifeboat_format::crypto::SEAL_OVERHEAD;
use lifeboat_format::index::{IndexFile, IndexPack};
use lifeboat_format::object::ObjectKind;
use lifeboat_format::pack::{FinishedPack, PACK_HEADER_LEN, PackBuilder, max_record_len};
use lifeboat_storage::{PutMode, StorageError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::layout;
use crate::pool::{BufferPool, Permit, Permits};
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
    /// Every pack uploaded (for reading back).
    pub written: Vec<WrittenPack>,
}

/// A pack this run uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenPack {
    /// Its id.
    pub id: Id,
    /// Its size.
    pub size: u64,
    /// Blobs in it.
    pub blobs: usize,
    /// Whether it holds directory listings (metadata) rather than file data.
    pub trees: bool,
}

/// Handle to the background upload task.
pub struct Uploader {
    outlet: PackOutlet,
    task: JoinHandle<Result<UploadStats>>,
}

/// Where worker threads send finished packs, and where they get recycled
/// pack buffers from.
#[derive(Clone, Debug)]
pub struct PackOutlet {
    tx: mpsc::Sender<(FinishedPack, Permit)>,
    pool: BufferPool,
    permits: Permits,
}

impl Uploader {
    /// Starts uploading with at most `concurrency` packs in flight.
    pub fn start(repo: Repository, concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        let (tx, rx) = mpsc::channel(1);
        // Pack buffers alive at once (each holds a permit from the moment it
        // is started until its upload ends): one being filled for each sink
        // (file data, then directory listings), and `concurrency` uploading.
        let permits = Permits::new(concurrency + 1);
        // Uploaded packs' buffers are kept for reuse only when several
        // upload at once (remote storage), where fresh buffers' page faults
        // would add up. With one upload at a time (local storage) a kept
        // buffer would stay resident beside the one being filled, doubling
        // the packs' memory; freed instead, it is returned to the system.
        let pool = BufferPool::new(if concurrency > 1 { concurrency + 1 } else { 0 });
        let task = tokio::spawn(run(repo, rx, concurrency, pool.clone()));
        Self {
            outlet: PackOutlet { tx, pool, permits },
            task,
        }
    }

    /// The outlet for worker threads.
    pub fn outlet(&self) -> PackOutlet {
        self.outlet.clone()
    }

    /// Waits for every pack and the final index file.
    pub async fn finish(self) -> Result<UploadStats> {
        drop(self.outlet);
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

async fn upload(repo: &Repository, pack: FinishedPack, pool: &BufferPool) -> Result<Uploaded> {
    let FinishedPack {
        id,
        salt,
        bytes,
        entries,
        raw_bytes,
    } = pack;
    let size = bytes.len() as u64;
    let bytes = Bytes::from(bytes);
    match repo
        .storage()
        .put(&layout::pack(&id), bytes.clone(), PutMode::CreateOnly)
        .await
    {
        // The name is the hash of the bytes: an existing pack is this pack.
        Ok(()) | Err(StorageError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // The store has let go of its references: recycle the buffer.
    if let Ok(buffer) = bytes.try_into_mut() {
        pool.give(buffer.into());
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
    mut rx: mpsc::Receiver<(FinishedPack, Permit)>,
    concurrency: usize,
    pool: BufferPool,
) -> Result<UploadStats> {
    let mut stats = UploadStats::default();
    let mut pending = IndexFile::default();
    let mut inflight = FuturesUnordered::new();
    let mut open = true;
    while open || !inflight.is_empty() {
        tokio::select! {
            next = rx.recv(), if open && inflight.len() < concurrency => match next {
                Some((pack, permit)) => {
                    let (repo, pool) = (repo.clone(), pool.clone());
                    inflight.push(async move {
                        let done = upload(&repo, pack, &pool).await;
                        drop(permit);
                        done
                    });
                }
                None => open = false,
            },
            Some(done) = inflight.next() => {
                let done = done?;
                stats.packs += 1;
                stats.blobs += done.pack.blobs.len() as u64;
                stats.raw_bytes += done.raw_bytes;
                stats.stored_bytes += done.pack.size;
                stats.written.push(WrittenPack {
                    id: done.pack.id,
                    size: done.pack.size,
                    blobs: done.pack.blobs.len(),
                    trees: done.pack.blobs.iter().any(|b| b.blob_type == BlobType::Tree),
                });
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

/// The pack in progress, shared by the worker threads: they compress (and
/// hash) in parallel, then append under a short lock, where the blob is
/// encrypted in place. A full pack is handed to the uploader under the lock,
/// so while the uploader is busy no further pack buffer is started: memory
/// stays at one pack being filled, one queued, and those uploading.
pub struct PackSink {
    repo: Repository,
    target: usize,
    outlet: PackOutlet,
    open: Mutex<Option<(PackBuilder, Permit)>>,
}

impl PackSink {
    /// A sink sending to `outlet`, cutting packs at the repository's pack size.
    pub fn new(repo: Repository, outlet: PackOutlet) -> Self {
        let target = repo.config().pack_size as usize;
        Self {
            repo,
            target,
            outlet,
            open: Mutex::new(None),
        }
    }

    /// Encrypts and packs one blob already encoded with
    /// [`lifeboat_format::compress::Encoder::encode_into`]. Thread-safe;
    /// blocks while the uploader is busy.
    pub fn add_encoded(
        &self,
        blob_type: BlobType,
        id: Id,
        raw_length: usize,
        encoded: &[u8],
    ) -> Result<()> {
        self.add_parts(blob_type, id, raw_length, &[encoded])
    }

    /// Compresses, encrypts and packs one blob. The compressed payload goes
    /// from the encoder's buffer straight into the pack.
    pub fn add(
        &self,
        encoder: &mut Encoder,
        blob_type: BlobType,
        id: Id,
        data: &[u8],
    ) -> Result<()> {
        let (tag, payload) = encoder.encode_parts(data);
        self.add_parts(blob_type, id, data.len(), &[&[tag], payload])
    }

    /// Packs one encoded blob given in consecutive parts.
    fn add_parts(
        &self,
        blob_type: BlobType,
        id: Id,
        raw_length: usize,
        parts: &[&[u8]],
    ) -> Result<()> {
        let record = parts.iter().map(|p| p.len()).sum::<usize>() + SEAL_OVERHEAD;
        let mut open = self
            .open
            .lock()
            .map_err(|_| RepoError::Task("a pack writer thread panicked".into()))?;
        // Never let a pack buffer grow (and reallocate): send the pack first.
        if open
            .as_ref()
            .is_some_and(|(b, _)| !b.is_empty() && !b.fits(record))
        {
            self.send(open.take())?;
        }
        let (builder, _) = match open.as_mut() {
            Some(b) => b,
            None => {
                // Waits while the uploader still holds every pack buffer.
                let permit = self.outlet.permits.acquire();
                // A fixed capacity (a full pack and a typical chunk) lets every
                // recycled buffer be reused as is; a larger blob gets more room.
                let capacity = PACK_HEADER_LEN + self.target + record.max(max_record_len(2 << 20));
                let buffer = self.outlet.pool.take(capacity);
                open.insert((PackBuilder::with_buffer(self.repo.key(), buffer)?, permit))
            }
        };
        builder.add_encoded_parts(blob_type, id, raw_length, parts)?;
        if builder.len() >= self.target {
            self.send(open.take())?;
        }
        Ok(())
    }

    /// Sends the pack in progress, if any.
    pub fn flush(&self) -> Result<()> {
        let mut open = self
            .open
            .lock()
            .map_err(|_| RepoError::Task("a pack writer thread panicked".into()))?;
        self.send(open.take())
    }

    fn send(&self, open: Option<(PackBuilder, Permit)>) -> Result<()> {
        if let Some((b, permit)) = open.filter(|(b, _)| !b.is_empty()) {
            let pack = b.finish()?;
            self.outlet.tx.blocking_send((pack, permit)).map_err(|_| {
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
    /// True if `id` is in the index or was claimed by this run.
    pub fn known(&self, index: &MasterIndex, id: Id) -> bool {
        index.contains(&id) || self.ids.lock().map(|s| s.contains(&id)).unwrap_or(false)
    }

    /// True if `id` is new to both the index and this run (and claims it).
    pub fn claim(&self, index: &MasterIndex, id: Id) -> bool {
        if index.contains(&id) {
            return false;
        }
        self.ids.lock().map(|mut s| s.insert(id)).unwrap_or(true)
    }
}
