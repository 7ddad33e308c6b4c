//! Backups of directory trees: `backup files`, and the file part of a
//! PostgreSQL base backup.
//!
//! A backup runs in phases so that callers can act between them (a base
//! backup calls `pg_backup_stop` after the files are stored and adds the
//! `backup_label` it returns): [`Repository::start_backup`] loads the index,
//! scans the source and finds the parent snapshot; [`TreeBackup::store_files`]
//! runs the parallel data pipeline; [`TreeBackup::add_file`] adds small files
//! from memory; [`TreeBackup::finish`] writes the directory trees, waits for
//! every pack and index file, and only then writes the snapshot.

mod blocks;
mod delta;
mod parent;
mod pipeline;
pub mod preview;
mod scan;
pub mod source;
mod streams;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_format::chunker::Chunker;
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::snapshot::{BackupKind, Snapshot, Summary};
use lifeboat_format::tree::{Node, NodeKind, Tree};
use lifeboat_format::{BlobType, Id};
use serde::Serialize;

pub use parent::Parent;
use parent::ParentFiles;
use pipeline::{FileJob, FileResult, PipelineContext, store_files};
use scan::{Scan, ScanNode};
pub use source::{AllFiles, Chunking, FilePolicy, Include, SourceRoot, TreeSource};
pub use streams::{StoredStream, StreamStore};

use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::readback;
use crate::repository::{Repository, cpu, local_origin};
use crate::running::RunningBackup;
use crate::uploader::{Claims, PackSink, Uploader};
use lifeboat_format::object::ObjectKind;

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
    /// Share of the new data packs read back from storage and verified
    /// before the snapshot is written, in percent (every new metadata pack,
    /// index file and the snapshot itself are always read back).
    pub read_back_percent: f64,
    /// The time recorded in the snapshot (default: when the backup starts),
    /// for copies imported from elsewhere.
    pub time: Option<DateTime<Utc>>,
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
            read_back_percent: 5.0,
            time: None,
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
    /// Problems found in the data that was backed up (e.g. bad page checksums).
    pub problems: Vec<String>,
    /// Bytes read back from storage and verified after writing.
    pub read_back_bytes: u64,
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// A backup in progress (see the module documentation for the phases).
pub struct TreeBackup {
    repo: Repository,
    options: BackupOptions,
    progress: DynProgress,
    source: TreeSource,
    index: Arc<MasterIndex>,
    claims: Arc<Claims>,
    scan: Scan,
    parent: Option<Arc<ParentFiles>>,
    uploader: Uploader,
    started: Instant,
    time: DateTime<Utc>,
    host: String,
    summary: Summary,
    skipped: Vec<String>,
    problems: Vec<String>,
    streams: Option<StreamStore>,
    running: Option<RunningBackup>,
}

impl Repository {
    /// Backs up files and directories (each at its absolute path) and writes
    /// a snapshot. Unreadable entries are skipped with a warning and listed in
    /// the result; the snapshot is still written.
    pub async fn backup_files(
        &self,
        paths: &[PathBuf],
        options: &BackupOptions,
        progress: DynProgress,
    ) -> Result<BackupResult> {
        self.backup_files_excluding(paths, &[], options, progress)
            .await
    }

    /// Like [`Repository::backup_files`], leaving out what the glob
    /// patterns of `exclude` match (see [`source::Excludes`]).
    pub async fn backup_files_excluding(
        &self,
        paths: &[PathBuf],
        exclude: &[String],
        options: &BackupOptions,
        progress: DynProgress,
    ) -> Result<BackupResult> {
        let source = TreeSource::files_excluding(paths, exclude)?;
        let mut backup = self.start_backup(source, options, progress).await?;
        backup.store_files().await?;
        backup.finish(|_| {}).await
    }

    /// Loads the index, scans `source` and finds the parent snapshot.
    pub async fn start_backup(
        &self,
        source: TreeSource,
        options: &BackupOptions,
        progress: DynProgress,
    ) -> Result<TreeBackup> {
        let started = Instant::now();
        let time = options.time.unwrap_or_else(Utc::now);
        progress.event(Event::Phase("loading index"));
        // Registered before the index is read, so a prune running meanwhile
        // keeps every pack this backup may reuse until it has finished.
        let what = format!(
            "{} backup of {}",
            source.kind.as_str(),
            source.paths.join(" ")
        );
        let (running, marked) = self.register_backup(&what).await?;
        let index = Arc::new(
            self.load_index_marked(&progress, &marked, true)
                .await?
                .index,
        );
        progress.event(Event::Phase("scanning"));
        let scan = {
            let (source, progress) = (source.clone(), progress.clone());
            cpu(move || Scan::run(&source, &progress)).await??
        };
        let host = options
            .host
            .clone()
            .unwrap_or_else(|| local_origin(None).host);
        progress.event(Event::Phase("reading the parent snapshot"));
        let parent = parent::load(self, &index, &options.parent, &host, &source, &progress)
            .await?
            .map(Arc::new);
        let skipped = scan.skipped;
        Ok(TreeBackup {
            repo: self.clone(),
            options: options.clone(),
            progress,
            source,
            index,
            claims: Arc::new(Claims::default()),
            scan,
            parent,
            uploader: Uploader::start(self.clone(), options.uploads),
            started,
            time,
            host,
            summary: Summary {
                skipped,
                ..Summary::default()
            },
            skipped: Vec::new(),
            problems: Vec::new(),
            streams: None,
            running: Some(running),
        })
    }
}

impl TreeBackup {
    /// When the backup started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.time
    }

    /// Problems the source policy found in the data read so far.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Reads and stores every file the scan found (reusing the parent
    /// snapshot's chunks for unchanged files).
    pub async fn store_files(&mut self) -> Result<()> {
        self.progress.event(Event::Phase("backing up"));
        let scan = std::mem::take(&mut self.scan);
        let repo = self.repo.clone();
        let (index, claims, parent) =
            (self.index.clone(), self.claims.clone(), self.parent.clone());
        let (options, progress, policy) = (
            self.options.clone(),
            self.progress.clone(),
            self.source.policy.clone(),
        );
        let outlet = self.uploader.outlet();
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (scan, outcome) = cpu(move || {
            let mut scan = scan;
            let r = store(
                &repo,
                &index,
                &claims,
                &mut scan,
                parent.as_deref(),
                policy.as_ref(),
                &options,
                outlet,
                runtime,
                &progress,
            );
            (scan, r)
        })
        .await?;
        self.scan = scan;
        let outcome = outcome?;
        self.summary.files += outcome.files;
        self.summary.files_unchanged += outcome.unchanged;
        self.summary.bytes += outcome.bytes;
        self.summary.skipped += outcome.failed.len() as u64;
        self.skipped.extend(outcome.failed);
        self.problems.extend(outcome.problems);
        Ok(())
    }

    /// A handle that stores byte streams into this backup from any thread
    /// (see [`StreamStore`]); place each stored stream with
    /// [`TreeBackup::add_stored_file`].
    pub fn stream_store(&mut self) -> StreamStore {
        self.streams
            .get_or_insert_with(|| StreamStore {
                repo: self.repo.clone(),
                index: self.index.clone(),
                claims: self.claims.clone(),
                sink: Arc::new(PackSink::new(self.repo.clone(), self.uploader.outlet())),
                compression: self.options.compression,
                progress: self.progress.clone(),
                runtime: tokio::runtime::Handle::try_current().ok(),
            })
            .clone()
    }

    /// The files of an earlier snapshot (its root tree `root`) by path
    /// relative to the root, with their chunk lists: the previous versions
    /// [`StreamStore::store_chunks_after_blocking`] stores deltas against.
    /// An unreadable snapshot gives none, with a warning: deltas only save
    /// space, the backup never depends on them.
    pub async fn earlier_files(&self, root: &Id) -> HashMap<PathBuf, Vec<Id>> {
        let label = format!("the previous backup (tree {})", root.short());
        match self
            .repo
            .walk_snapshot(
                &self.index,
                root,
                &crate::walk::PathFilter::default(),
                &label,
            )
            .await
        {
            Ok(entries) => entries
                .into_iter()
                .filter(|e| e.node.kind == NodeKind::File)
                .map(|e| (e.path, e.node.content))
                .collect(),
            Err(e) => {
                self.progress.event(Event::Warning(format!(
                    "{label} cannot be read ({e}); storing every table whole"
                )));
                HashMap::new()
            }
        }
    }

    /// Adds a file with the given content at `at` (relative to the tree's
    /// root; missing directories are created like the root's).
    pub async fn add_file(&mut self, at: &Path, content: Vec<u8>, mode: u32) -> Result<()> {
        let store = self.stream_store();
        let stored = cpu(move || store.store_blocking(content.as_slice())).await??;
        self.add_stored_file(at, stored, mode)
    }

    /// Places a stream stored with [`TreeBackup::stream_store`] as a file at
    /// `at` (relative to the tree's root; missing directories are created
    /// like the root's).
    pub fn add_stored_file(&mut self, at: &Path, stored: StoredStream, mode: u32) -> Result<()> {
        let now = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        self.place_file(at, stored, mode, now, None)
    }

    /// Places a bucket object stored with [`TreeBackup::stream_store`] (or
    /// reused from the parent snapshot) at `at`, with its last-modified time
    /// and what the object store kept about it. `unchanged` counts it as
    /// reused from the parent rather than read.
    pub fn add_object(
        &mut self,
        at: &Path,
        stored: StoredStream,
        mtime_ns: i64,
        attrs: lifeboat_format::tree::ObjectAttrs,
        unchanged: bool,
    ) -> Result<()> {
        self.place_file(at, stored, 0o644, mtime_ns, Some(attrs))?;
        if unchanged {
            self.summary.files_unchanged += 1;
        }
        Ok(())
    }

    /// The parent snapshot's file at `at` when every chunk it lists is still
    /// in the index (so it can be listed again without being read).
    pub fn reusable_parent_file(&self, at: &Path) -> Option<&Node> {
        let p = self.parent.as_ref()?.file(at)?;
        p.content
            .iter()
            .chain(&p.bases)
            .all(|id| self.index.contains(id))
            .then_some(p)
    }

    /// Records an entry that could not be backed up (also a warning).
    pub fn skip(&mut self, what: String) {
        self.progress
            .event(Event::Warning(format!("not backed up: {what}")));
        self.summary.skipped += 1;
        self.skipped.push(what);
    }

    fn place_file(
        &mut self,
        at: &Path,
        stored: StoredStream,
        mode: u32,
        mtime_ns: i64,
        object: Option<lifeboat_format::tree::ObjectAttrs>,
    ) -> Result<()> {
        let name = at
            .file_name()
            .ok_or_else(|| RepoError::Invalid(format!("{} is not a file path", at.display())))?
            .to_os_string();
        let parent = at.parent().map(Path::to_path_buf).unwrap_or_default();
        let root_template = self.scan.nodes[0].clone();
        let dir = self.scan.ensure_dir(&parent, &root_template);
        // The new file belongs to whoever owns the directory it lands in.
        let template = self.scan.nodes[dir].clone();
        let node = ScanNode {
            name: std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str()).to_vec(),
            kind: NodeKind::File,
            mode,
            mtime_ns,
            ctime_ns: 0,
            inode: 0,
            links: 0,
            device: 0,
            size: stored.size,
            target: None,
            children: Default::default(),
            path: PathBuf::new(),
            content: stored.content,
            bases: stored.bases,
            subtree: None,
            object,
            ..template
        };
        self.scan.add_child(dir, node);
        self.summary.files += 1;
        self.summary.bytes += stored.size;
        Ok(())
    }

    /// Writes the directory trees, waits for every upload and index file,
    /// then writes the snapshot, which `describe` may complete (for example
    /// with PostgreSQL metadata).
    pub async fn finish(mut self, describe: impl FnOnce(&mut Snapshot)) -> Result<BackupResult> {
        if let Some(streams) = self.streams.take() {
            cpu(move || streams.sink.flush()).await??;
        }
        let scan = std::mem::take(&mut self.scan);
        let repo = self.repo.clone();
        let (index, claims) = (self.index.clone(), self.claims.clone());
        let outlet = self.uploader.outlet();
        let compression = self.options.compression;
        let built =
            cpu(move || build_trees(&repo, &index, &claims, scan, compression, outlet)).await?;
        // Always wait for the uploader, so no upload is left running.
        let uploaded = self.uploader.finish().await;
        let (root, counts) = built?;
        let uploaded = uploaded?;
        // What was written is read back before anything names it.
        self.progress
            .event(Event::Phase("reading back what was written"));
        let salt = u64::from_le_bytes(lifeboat_format::crypto::random_bytes()?);
        let chosen = readback::sample(&uploaded.written, self.options.read_back_percent, salt);
        let mut read_back_bytes = match self.repo.read_back(&chosen).await {
            Ok(n) => n,
            Err(e) => {
                // Keep later backups from reusing what did not survive: the
                // packs this run indexed become unindexed (prune removes them).
                for id in &uploaded.index_files {
                    let _ = self
                        .repo
                        .storage()
                        .delete(&layout::index(id), lifeboat_storage::IfMissing::Ignore)
                        .await;
                }
                return Err(e);
            }
        };
        for id in &uploaded.index_files {
            self.repo
                .load_object(ObjectKind::Index, &layout::index(id), id)
                .await?;
        }
        let origin = local_origin(None);
        let mut summary = self.summary;
        summary.dirs = counts.dirs;
        summary.symlinks = counts.symlinks;
        summary.new_blobs = uploaded.blobs;
        summary.new_bytes = uploaded.raw_bytes;
        summary.stored_bytes = uploaded.stored_bytes;
        let mut snapshot = Snapshot {
            time: self.time,
            host: self.host,
            user: origin.user,
            source: self.source.kind.clone(),
            paths: self.source.paths.clone(),
            kind: self.options.kind,
            reason: self.options.reason.clone(),
            tags: self.options.tags.clone(),
            root,
            parent: self.parent.as_ref().map(|p| p.id),
            summary,
            program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
            postgres: None,
            logical: None,
            bucket: None,
        };
        describe(&mut snapshot);
        snapshot.summary.duration_ms = self.started.elapsed().as_millis() as u64;
        self.progress.event(Event::Phase("saving snapshot"));
        let (id, size) = self.repo.save_snapshot(&snapshot).await?;
        snapshot.summary.stored_bytes += size;
        // Read back: its content must hash to its id again.
        self.repo.load_snapshot(&id).await?;
        read_back_bytes += size;
        if let Some(running) = self.running.take() {
            // The snapshot is durable; a record left behind only delays a
            // prune until it goes stale.
            if let Err(e) = running.end().await {
                self.progress.event(Event::Warning(format!(
                    "could not remove this backup's running/ record ({e}); prune ignores it after 15 minutes"
                )));
            }
        }
        Ok(BackupResult {
            id,
            snapshot,
            skipped: self.skipped,
            problems: self.problems,
            read_back_bytes,
        })
    }
}

/// What storing the files found.
struct Stored {
    files: u64,
    unchanged: u64,
    bytes: u64,
    failed: Vec<String>,
    problems: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
fn store(
    repo: &Repository,
    index: &MasterIndex,
    claims: &Claims,
    scan: &mut Scan,
    parent: Option<&ParentFiles>,
    policy: &dyn FilePolicy,
    options: &BackupOptions,
    outlet: crate::uploader::PackOutlet,
    runtime: Option<tokio::runtime::Handle>,
    progress: &DynProgress,
) -> Result<Stored> {
    let chunker = Chunker::new(repo.config().chunker)?;
    let workers = if options.threads == 0 {
        cores()
    } else {
        options.threads
    };
    let mut out = Stored {
        files: 0,
        unchanged: 0,
        bytes: 0,
        failed: Vec::new(),
        problems: Vec::new(),
    };
    // Files unchanged since the parent snapshot keep its chunk lists unread.
    let mut file_nodes = Vec::new();
    for n in scan.files() {
        match parent.and_then(|p| p.unchanged(&scan.nodes[n], index)) {
            Some((content, bases)) => {
                let node = &mut scan.nodes[n];
                node.content = content;
                node.bases = bases;
                out.files += 1;
                out.unchanged += 1;
                out.bytes += node.size;
                progress.event(Event::Advance {
                    items: 1,
                    bytes: node.size,
                });
            }
            None => file_nodes.push(n),
        }
    }
    let jobs: Vec<FileJob> = file_nodes
        .iter()
        .enumerate()
        .map(|(slot, &n)| {
            let node = &scan.nodes[n];
            let chunking = policy.chunking(node.root, &node.rel);
            // A page-structured file changed since the parent: its blocks
            // may be stored as deltas against the parent's.
            let previous = match (chunking, parent.and_then(|p| p.file(&node.at))) {
                (Chunking::Fixed(_), Some(p)) => p.content.clone(),
                _ => Vec::new(),
            };
            FileJob {
                slot,
                path: node.path.clone(),
                root: node.root,
                rel: node.rel.clone(),
                chunking,
                previous,
            }
        })
        .collect();
    let data_sink = PackSink::new(repo.clone(), outlet);
    let ctx = PipelineContext {
        repo,
        index,
        claims,
        chunker: &chunker,
        policy,
        compression: options.compression,
        readers: 2.min(jobs.len()).max(1),
        workers,
        sink: &data_sink,
        progress,
        block_deltas: match (options.compression, runtime) {
            (Compression::Zstd(level), Some(rt)) => Some((rt, level)),
            _ => None,
        },
    };
    let results = store_files(&ctx, jobs, file_nodes.len())?;
    data_sink.flush()?;
    for (&n, r) in file_nodes.iter().zip(results) {
        let node = &mut scan.nodes[n];
        match r {
            FileResult::Stored {
                content,
                bases,
                size,
                problems,
            } => {
                node.content = content;
                node.bases = bases;
                node.size = size;
                out.files += 1;
                out.bytes += size;
                out.problems.extend(problems);
            }
            FileResult::Failed(e) => {
                node.failed = true;
                out.failed.push(e);
            }
        }
    }
    Ok(out)
}

struct Counts {
    dirs: u64,
    symlinks: u64,
}

/// Writes the tree blobs bottom-up (children always have larger indices than
/// their parents) into packs of their own; returns the root tree's id.
fn build_trees(
    repo: &Repository,
    index: &MasterIndex,
    claims: &Claims,
    mut scan: Scan,
    compression: Compression,
    outlet: crate::uploader::PackOutlet,
) -> Result<(Id, Counts)> {
    let mut counts = Counts {
        dirs: 0,
        symlinks: 0,
    };
    let mut encoder = Encoder::new(compression)?;
    // Directory listings go to packs of their own, apart from file data.
    let sink = PackSink::new(repo.clone(), outlet);
    let id_key = repo.key().id_key();
    for i in (0..scan.nodes.len()).rev() {
        match scan.nodes[i].kind {
            NodeKind::Dir => {}
            NodeKind::Symlink => {
                counts.symlinks += 1;
                continue;
            }
            NodeKind::File => continue,
        }
        if i != 0 {
            counts.dirs += 1;
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
                links: child.links,
                device: child.device,
                uid: child.uid,
                gid: child.gid,
                size: child.size,
                content: child.content.clone(),
                bases: child.bases.clone(),
                subtree: child.subtree,
                target: child.target.as_deref().map(Into::into),
                object: child.object.clone(),
            });
        }
        tree.sort();
        let json = tree.to_json()?;
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
        .ok_or_else(|| RepoError::Failed("the scan produced no root directory".into()))?;
    Ok((root, counts))
}
