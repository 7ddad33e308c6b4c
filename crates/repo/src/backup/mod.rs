//! `backup files`: snapshot files and directories into the repository.

mod pipeline;
mod scan;

use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use lifeboat_format::chunker::Chunker;
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::snapshot::{BackupKind, Snapshot, SourceKind, Summary};
use lifeboat_format::tree::{Node, NodeKind, Tree};
use lifeboat_format::{BlobType, Id};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::progress::{DynProgress, Event};
use crate::repository::{Repository, cpu, local_origin};
use crate::uploader::{Claims, PackSink, Uploader};
use pipeline::{FileResult, PipelineContext, store_files};
use scan::Scan;

/// How to take a backup.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    /// Why it is taken.
    pub kind: BackupKind,
    /// Free-text reason.
    pub reason: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Compression level.
    pub compression: Compression,
    /// Threads hashing, compressing and encrypting (0 = one per core).
    pub threads: usize,
    /// Packs uploaded at once.
    pub uploads: usize,
    /// Host name recorded in the snapshot (default: this host).
    pub host: Option<String>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            kind: BackupKind::Manual,
            reason: None,
            tags: Vec::new(),
            compression: Compression::DEFAULT,
            threads: 0,
            uploads: 2,
            host: None,
        }
    }
}

/// The outcome of a backup.
#[derive(Clone, Debug, Serialize)]
pub struct BackupResult {
    /// The new snapshot's id.
    pub id: Id,
    /// The snapshot as stored.
    pub snapshot: Snapshot,
    /// Entries that could not be backed up (also reported as warnings).
    pub skipped: Vec<String>,
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

impl Repository {
    /// Backs up `paths` (files, directories, symlinks; directories
    /// recursively) and writes a snapshot. Unreadable entries are skipped with
    /// a warning and listed in the result; the snapshot is still written.
    pub async fn backup_files(
        &self,
        paths: &[PathBuf],
        options: &BackupOptions,
        progress: DynProgress,
    ) -> Result<BackupResult> {
        if paths.is_empty() {
            return Err(RepoError::Invalid(
                "nothing to back up: no paths given".into(),
            ));
        }
        let started = Instant::now();
        let time = Utc::now();
        progress.event(Event::Phase("loading index"));
        let index = self.load_index(&progress).await?.index;
        progress.event(Event::Phase("scanning"));
        let scan = {
            let paths = paths.to_vec();
            let progress = progress.clone();
            cpu(move || Scan::run(&paths, &progress)).await??
        };
        progress.event(Event::Phase("backing up"));
        let uploader = Uploader::start(self.clone(), options.uploads);
        let built = {
            let repo = self.clone();
            let packs = uploader.sender();
            let options = options.clone();
            let progress = progress.clone();
            cpu(move || store_and_build_trees(&repo, &index, scan, &options, packs, &progress))
                .await?
        };
        // Always wait for the uploader, so no upload is left running.
        let uploaded = uploader.finish().await;
        let built = built?;
        let uploaded = uploaded?;

        let origin = local_origin(None);
        let mut summary = built.summary;
        summary.new_blobs = uploaded.blobs;
        summary.new_bytes = uploaded.raw_bytes;
        summary.stored_bytes = uploaded.stored_bytes;
        let mut snapshot = Snapshot {
            time,
            host: options.host.clone().unwrap_or(origin.host),
            user: origin.user,
            source: SourceKind::Files,
            paths: paths.iter().map(|p| p.display().to_string()).collect(),
            kind: options.kind,
            reason: options.reason.clone(),
            tags: options.tags.clone(),
            root: built.root,
            summary,
            program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        };
        snapshot.summary.duration_ms = started.elapsed().as_millis() as u64;
        progress.event(Event::Phase("saving snapshot"));
        let (id, size) = self.save_snapshot(&snapshot).await?;
        snapshot.summary.stored_bytes += size;
        Ok(BackupResult {
            id,
            snapshot,
            skipped: built.skipped,
        })
    }
}

struct Built {
    root: Id,
    summary: Summary,
    skipped: Vec<String>,
}

fn store_and_build_trees(
    repo: &Repository,
    index: &MasterIndex,
    mut scan: Scan,
    options: &BackupOptions,
    packs: tokio::sync::mpsc::Sender<lifeboat_format::pack::FinishedPack>,
    progress: &DynProgress,
) -> Result<Built> {
    let chunker = Chunker::new(repo.config().chunker)?;
    let claims = Claims::default();
    let workers = if options.threads == 0 {
        cores()
    } else {
        options.threads
    };
    let file_nodes = scan.files();
    let jobs: Vec<(usize, PathBuf)> = file_nodes
        .iter()
        .enumerate()
        .map(|(slot, &n)| (slot, scan.nodes[n].path.clone()))
        .collect();
    let ctx = PipelineContext {
        repo,
        index,
        claims: &claims,
        chunker: &chunker,
        compression: options.compression,
        readers: 2.min(jobs.len()),
        workers,
        packs: packs.clone(),
        progress,
    };
    let results = store_files(&ctx, jobs, file_nodes.len())?;
    drop(ctx);

    let mut summary = Summary::default();
    let mut skipped = Vec::new();
    for (&n, r) in file_nodes.iter().zip(results) {
        let node = &mut scan.nodes[n];
        match r {
            FileResult::Stored { content, size } => {
                node.content = content;
                node.size = size;
                summary.files += 1;
                summary.bytes += size;
            }
            FileResult::Failed(e) => {
                node.failed = true;
                skipped.push(e);
            }
        }
    }
    summary.skipped = scan.skipped + skipped.len() as u64;

    // Trees bottom-up: children always have larger indices than parents.
    let mut encoder = Encoder::new(options.compression)?;
    let mut sink = PackSink::new(repo.clone(), packs);
    let id_key = repo.key().id_key();
    for i in (0..scan.nodes.len()).rev() {
        match scan.nodes[i].kind {
            NodeKind::Dir => {}
            NodeKind::Symlink => {
                summary.symlinks += 1;
                continue;
            }
            NodeKind::File => continue,
        }
        if i != 0 {
            summary.dirs += 1;
        }
        let mut tree = Tree::default();
        for &c in scan.nodes[i].children.values() {
            let child = &scan.nodes[c];
            if child.failed {
                continue;
            }
            tree.nodes.push(Node {
                name: child.name.as_slice().into(),
                kind: child.kind,
                mode: child.mode,
                mtime_ns: child.mtime_ns,
                uid: child.uid,
                gid: child.gid,
                size: child.size,
                content: child.content.clone(),
                subtree: child.subtree,
                target: child.target.as_deref().map(Into::into),
            });
        }
        tree.sort();
        let json = tree.to_json();
        let id = id_key.blob_id(BlobType::Tree, &json);
        if claims.claim(index, id) {
            sink.add(&mut encoder, BlobType::Tree, id, &json)?;
        }
        scan.nodes[i].subtree = Some(id);
        scan.nodes[i].children.clear();
    }
    sink.flush()?;
    let root = scan.nodes[0]
        .subtree
        .ok_or_else(|| RepoError::Invalid("the scan produced no root directory".into()))?;
    Ok(Built {
        root,
        summary,
        skipped,
    })
}
