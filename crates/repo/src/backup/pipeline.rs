//! The parallel data pipeline: reader threads chunk files, worker threads
//! hash, deduplicate, compress, encrypt and pack the chunks, and the calling
//! thread collects each file's chunk list in order.
//!
//! Memory is bounded: a fixed number of chunk buffers circulate between
//! readers and workers, and pack buffers are limited by the uploader's permits.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{bounded, unbounded};
use lifeboat_format::chunker::Chunker;
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::{BlobType, Id};

use super::blocks::BlockDeltas;
use super::source::{Chunking, FilePolicy};
use crate::chunk_reader::{ChunkReader, Cut};
use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::pool::BufferPool;
use crate::progress::{DynProgress, Event};
use crate::repository::Repository;
use crate::uploader::{Claims, PackSink};

/// What the pipeline needs, shared by all its threads.
pub(crate) struct PipelineContext<'a> {
    pub repo: &'a Repository,
    pub index: &'a MasterIndex,
    pub claims: &'a Claims,
    pub chunker: &'a Chunker,
    pub policy: &'a dyn FilePolicy,
    pub compression: Compression,
    pub readers: usize,
    pub workers: usize,
    pub sink: &'a PackSink,
    pub progress: &'a DynProgress,
    /// Where old blocks are read, and the zstd level of deltas: changed
    /// blocks of files with a `previous` chunk list may be stored as deltas
    /// ([`super::blocks`]). `None`: blocks are always stored whole.
    pub block_deltas: Option<(tokio::runtime::Handle, i32)>,
}

/// One file to store.
pub(crate) struct FileJob {
    /// Index of the result.
    pub slot: usize,
    /// Where to read it.
    pub path: PathBuf,
    /// Its root and place below it (for the policy).
    pub root: usize,
    pub rel: PathBuf,
    /// How to cut it.
    pub chunking: Chunking,
    /// The parent snapshot's chunk list of a page-structured file (fixed
    /// blocks), whose blocks changed ones are stored as deltas against;
    /// empty for none.
    pub previous: Vec<Id>,
}

/// One file's outcome.
#[derive(Debug)]
pub(crate) enum FileResult {
    /// Its chunks, in order, the bytes actually read, and what the policy's
    /// inspection found wrong in them.
    Stored {
        content: Vec<Id>,
        /// The bases of the delta blobs in `content`.
        bases: Vec<Id>,
        size: u64,
        problems: Vec<String>,
    },
    /// It could not be read; the message says why.
    Failed(String),
}

struct ChunkMsg {
    slot: usize,
    seq: usize,
    data: Vec<u8>,
    /// The parent's block at the same position (fixed blocks only).
    previous: Option<Id>,
}

enum Msg {
    Chunk {
        slot: usize,
        seq: usize,
        id: Id,
        /// The base, when `id` is a delta blob.
        base: Option<Id>,
        len: u64,
    },
    Problem {
        slot: usize,
        text: String,
    },
    FileDone {
        slot: usize,
        chunks: usize,
        size: u64,
    },
    FileFailed {
        slot: usize,
        error: String,
    },
    Fatal(RepoError),
}

#[derive(Default)]
struct Acc {
    ids: Vec<Option<Id>>,
    bases: Vec<Id>,
    seen_bases: std::collections::HashSet<Id>,
    received: usize,
    done: Option<(usize, u64)>,
    failed: Option<String>,
    problems: Vec<String>,
}

/// Stores every job's file. Returns one result per slot.
pub(crate) fn store_files(
    ctx: &PipelineContext<'_>,
    jobs: Vec<FileJob>,
    slots: usize,
) -> Result<Vec<FileResult>> {
    let abort = AtomicBool::new(false);
    let (job_tx, job_rx) = unbounded::<FileJob>();
    for j in jobs {
        // The receiver is alive in this scope; a send cannot fail.
        let _ = job_tx.send(j);
    }
    drop(job_tx);
    let (chunk_tx, chunk_rx) = bounded::<ChunkMsg>(ctx.workers);
    let (msg_tx, msg_rx) = unbounded::<Msg>();
    // Every chunk buffer in flight comes back here: queued, being packed, or
    // being filled by a reader.
    let buffers = BufferPool::new(ctx.workers * 2 + ctx.readers);
    let buffers = &buffers;

    std::thread::scope(|s| {
        for _ in 0..ctx.readers.max(1) {
            let jobs = job_rx.clone();
            let chunks = chunk_tx.clone();
            let msgs = msg_tx.clone();
            let abort = &abort;
            s.spawn(move || read_files(ctx, jobs, chunks, msgs, abort, buffers));
        }
        drop(chunk_tx);
        for _ in 0..ctx.workers.max(1) {
            let chunks = chunk_rx.clone();
            let msgs = msg_tx.clone();
            let abort = &abort;
            s.spawn(move || {
                if let Err(e) = pack_chunks(ctx, chunks, &msgs, buffers) {
                    abort.store(true, Ordering::Relaxed);
                    let _ = msgs.send(Msg::Fatal(e));
                }
            });
        }
        drop(chunk_rx);
        drop(msg_tx);
        collect(ctx, msg_rx, slots, &abort)
    })
}

fn read_files(
    ctx: &PipelineContext<'_>,
    jobs: crossbeam_channel::Receiver<FileJob>,
    chunks: crossbeam_channel::Sender<ChunkMsg>,
    msgs: crossbeam_channel::Sender<Msg>,
    abort: &AtomicBool,
    buffers: &BufferPool,
) {
    for job in jobs.iter() {
        if abort.load(Ordering::Relaxed) {
            return;
        }
        let slot = job.slot;
        let file = match File::open(&job.path) {
            Ok(f) => f,
            Err(e) => {
                let _ = msgs.send(Msg::FileFailed {
                    slot,
                    error: format!("cannot open {}: {e}", job.path.display()),
                });
                continue;
            }
        };
        let cut = match job.chunking {
            Chunking::ContentDefined => Cut::ContentDefined(ctx.chunker),
            Chunking::Fixed(n) => Cut::Fixed(n as usize),
        };
        let mut seq = 0;
        let mut size = 0u64;
        let mut failed = None;
        for chunk in ChunkReader::with_pool(file, cut, buffers) {
            match chunk {
                Ok(data) => {
                    for text in ctx.policy.inspect(job.root, &job.rel, size, &data) {
                        let _ = msgs.send(Msg::Problem { slot, text });
                    }
                    size += data.len() as u64;
                    let previous = job.previous.get(seq).copied();
                    let msg = ChunkMsg {
                        slot,
                        seq,
                        data,
                        previous,
                    };
                    if chunks.send(msg).is_err() {
                        return;
                    }
                    seq += 1;
                }
                Err(e) => {
                    failed = Some(format!("cannot read {}: {e}", job.path.display()));
                    break;
                }
            }
        }
        let msg = match failed {
            Some(error) => Msg::FileFailed { slot, error },
            None => Msg::FileDone {
                slot,
                chunks: seq,
                size,
            },
        };
        let _ = msgs.send(msg);
    }
}

fn pack_chunks(
    ctx: &PipelineContext<'_>,
    chunks: crossbeam_channel::Receiver<ChunkMsg>,
    msgs: &crossbeam_channel::Sender<Msg>,
    buffers: &BufferPool,
) -> Result<()> {
    let mut encoder = Encoder::new(ctx.compression)?;
    let mut encoded = Vec::new();
    let id_key = ctx.repo.key().id_key();
    let mut deltas = ctx.block_deltas.as_ref().map(|(rt, level)| {
        BlockDeltas::new(
            ctx.repo,
            ctx.index,
            ctx.claims,
            ctx.sink,
            rt.clone(),
            *level,
        )
    });
    for ChunkMsg {
        slot,
        seq,
        data,
        previous,
    } in chunks.iter()
    {
        let full = id_key.blob_id(BlobType::Data, &data);
        let as_delta = match (previous, deltas.as_mut()) {
            (Some(previous), Some(d)) if previous != full && !ctx.claims.known(ctx.index, full) => {
                match d.store(&previous, &data) {
                    Ok(stored) => stored,
                    Err(e) if e.is_access_problem() => return Err(e),
                    Err(e) => {
                        // Deltas only save space: carry on storing whole blocks.
                        ctx.progress.event(Event::Warning(format!(
                            "storing changed blocks whole from here on: {e}"
                        )));
                        deltas = None;
                        None
                    }
                }
            }
            _ => None,
        };
        let (id, base) = match as_delta {
            Some((id, base)) => (id, Some(base)),
            None => {
                if ctx.claims.claim(ctx.index, full) {
                    encoded.clear();
                    encoder.encode_into(&data, &mut encoded);
                    ctx.sink
                        .add_encoded(BlobType::Data, full, data.len(), &encoded)?;
                }
                (full, None)
            }
        };
        let _ = msgs.send(Msg::Chunk {
            slot,
            seq,
            id,
            base,
            len: data.len() as u64,
        });
        buffers.give(data);
    }
    Ok(())
}

fn collect(
    ctx: &PipelineContext<'_>,
    msgs: crossbeam_channel::Receiver<Msg>,
    slots: usize,
    abort: &AtomicBool,
) -> Result<Vec<FileResult>> {
    let mut acc: Vec<Acc> = (0..slots).map(|_| Acc::default()).collect();
    let mut fatal = None;
    for msg in msgs.iter() {
        match msg {
            Msg::Chunk {
                slot,
                seq,
                id,
                base,
                len,
            } => {
                let a = &mut acc[slot];
                if let Some(b) = base
                    && a.seen_bases.insert(b)
                {
                    a.bases.push(b);
                }
                if a.ids.len() <= seq {
                    a.ids.resize(seq + 1, None);
                }
                a.ids[seq] = Some(id);
                a.received += 1;
                ctx.progress.event(Event::Advance {
                    items: 0,
                    bytes: len,
                });
            }
            Msg::Problem { slot, text } => {
                ctx.progress.event(Event::Warning(text.clone()));
                acc[slot].problems.push(text);
            }
            Msg::FileDone { slot, chunks, size } => {
                acc[slot].done = Some((chunks, size));
                ctx.progress.event(Event::Advance { items: 1, bytes: 0 });
            }
            Msg::FileFailed { slot, error } => {
                ctx.progress.event(Event::Warning(error.clone()));
                ctx.progress.event(Event::Advance { items: 1, bytes: 0 });
                acc[slot].failed = Some(error);
            }
            Msg::Fatal(e) => {
                abort.store(true, Ordering::Relaxed);
                fatal.get_or_insert(e);
            }
        }
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    Ok(acc
        .into_iter()
        .map(|a| match (a.failed, a.done) {
            (Some(e), _) => FileResult::Failed(e),
            (None, Some((n, size))) if a.received == n && a.ids.len() == n => FileResult::Stored {
                content: a.ids.into_iter().flatten().collect(),
                bases: a.bases,
                size,
                problems: a.problems,
            },
            (None, _) => FileResult::Failed("the file was not completely processed".into()),
        })
        .collect())
}
