//! `backup files`: snapshot files and directories into the repository.

mod parent;
mod pipeline;
mod scan;

pub use parent::Parent;

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
use crate::uploader::{Claims, PackOutlet, PackSink, Uploader};
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
    /// Snapshot whose unchanged files are reused without reading them.
    pub parent: Parent,
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
            parent: Parent::Auto,
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
        let origin = local_origin(None);
        let host = options.host.clone().unwrap_or(origin.host);
        let roots: Vec<String> = scan.roots.iter().map(|p| p.display().to_string()).collect();
        progress.event(Event::Phase("reading the parent snapshot"));
        let parent = parent::load(self, &index, &options.parent, &host, &roots, &progress).await?;
        let parent_id = parent.as_ref().map(|p| p.id);
        progress.event(Event::Phase("backing up"));
        let uploader = Uploader::start(self.clone(), options.uploads);
        let built = {
            let repo = self.clone();
            let packs = uploader.outlet();
            let options = options.clone();
            let progress = progress.clone();
            cpu(move || {
                store_and_build_trees(
                    &repo,
                    &index,
                    scan,
                    parent.as_ref(),
                    &options,
                    packs,
                    &progress,
                )
            })
            .await?
        };
        // Always wait for the uploader, so no upload is left running.
        let uploaded = uploader.finish().await;
        let built = built?;
        let uploaded = uploaded?;

        let mut summary = built.summary;
        summary.new_blobs = uploaded.blobs;
        summary.new_bytes = uploaded.raw_bytes;
        summary.stored_bytes = uploaded.stored_bytes;
        let mut snapshot = Snapshot {
            time,
            host,
            user: origin.user,
            source: SourceKind::Files,
            paths: roots,
            kind: options.kind,
            reason: options.reason.clone(),
            tags: options.tags.clone(),
            root: built.root,
            parent: parent_id,
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
    parent: Option<&parent::ParentFiles>,
    options: &BackupOptions,
    packs: PackOutlet,
    progress: &DynProgress,
) -> Result<Built> {
    let chunker = Chunker::new(repo.config().chunker)?;
    let claims = Claims::default();
    let workers = if options.threads == 0 {
        cores()
    } else {
        options.threads
    };
    let mut summary = Summary::default();
    // Files unchanged since the parent snapshot keep its chunk lists unread.
    let mut file_nodes = Vec::new();
    for n in scan.files() {
        match parent.and_then(|p| p.unchanged(&scan.nodes[n], index)) {
            Some(content) => {
                let node = &mut scan.nodes[n];
                node.content = content;
                summary.files += 1;
                summary.files_unchanged += 1;
                summary.bytes += node.size;
                progress.event(Event::Advance {
                    items: 1,
                    bytes: node.size,
                });
            }
            None => file_nodes.push(n),
        }
    }
    let jobs: Vec<(usize, PathBuf)> = file_nodes
        .iter()
        .enumerate()
        .map(|(slot, &n)| (slot, scan.nodes[n].path.clone()))
        .collect();
    let data_sink = PackSink::new(repo.clone(), packs.clone());
    let ctx = PipelineContext {
        repo,
        index,
        claims: &claims,
        chunker: &chunker,
        compression: options.compression,
        readers: 2.min(jobs.len()),
        workers,
        sink: &data_sink,
        progress,
    };
    let results = store_files(&ctx, jobs, file_nodes.len())?;
    data_sink.flush()?;

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
    // Directory listings go to packs of their own, apart from file data.
    let sink = PackSink::new(repo.clone(), packs);
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
                ctime_ns: child.ctime_ns,
                inode: child.inode,
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
