//! The parallel restore engine for file snapshots.
//!
//! Plan, then apply: the snapshot's trees give every file and the chunks it
//! needs; chunks are grouped by pack and read with few large ranged requests
//! (many in parallel); each chunk is verified (authenticated decryption and
//! id check) and written at its offsets with positional writes. All-zero
//! chunks are not written, so sparse files stay sparse. Metadata (mode,
//! owner when running as root, mtime) is applied last, directories deepest
//! first, and the target file system is synced before returning.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use futures::StreamExt;
use lifeboat_format::pack::{PackEntry, open_blob_with};
use lifeboat_format::tree::{Node, NodeKind};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::repository::{Repository, cpu};
use crate::snapshots::SnapshotEntry;
use crate::walk::{PathFilter, WalkEntry};

/// Read ranges of one pack are merged across gaps up to this size.
const MAX_GAP: u64 = 1 << 20;

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Allow restoring into a non-empty directory (existing files are replaced).
    pub overwrite: bool,
    /// Restore only these paths (relative to the snapshot root; may start with `/`).
    pub include: Vec<PathBuf>,
    /// Pack reads in flight (0 = 4).
    pub concurrency: usize,
    /// Largest single read in bytes (0 = 8 MiB). Memory use is about
    /// `concurrency × max_read`.
    pub max_read: u64,
}

/// What a restore did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreSummary {
    /// Files restored.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symlinks restored.
    pub symlinks: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Files that could not be restored completely, with the reason.
    pub failed: Vec<String>,
}

struct Target {
    file: usize,
    offset: u64,
}

struct BlobJob {
    entry: PackEntry,
    targets: Vec<Target>,
}

struct RangeJob {
    pack: u32,
    start: u64,
    end: u64,
    blobs: Vec<BlobJob>,
}

fn is_empty_dir(p: &Path) -> Result<bool> {
    match fs::read_dir(p) {
        Ok(mut d) => Ok(d.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(RepoError::local(p, e)),
    }
}

fn io(p: &Path) -> impl Fn(std::io::Error) -> RepoError + '_ {
    move |e| RepoError::local(p, e)
}

/// True if every byte is zero (compares 16 bytes at a time).
fn is_zero(data: &[u8]) -> bool {
    let mut chunks = data.chunks_exact(16);
    let wide = chunks
        .by_ref()
        .all(|c| u128::from_ne_bytes(c.try_into().unwrap_or([1; 16])) == 0);
    wide && chunks.remainder().iter().all(|&b| b == 0)
}

/// Writes `data` at `offset` into a file that reads as zeros there (freshly
/// sized), skipping file-system blocks that are all zeros so they stay holes.
fn write_sparse(f: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    const BLOCK: u64 = 4096;
    let mut pos = 0usize;
    let mut run: Option<usize> = None;
    while pos < data.len() {
        let abs = offset + pos as u64;
        let end = (pos + (BLOCK - abs % BLOCK) as usize).min(data.len());
        match (is_zero(&data[pos..end]), run) {
            (false, None) => run = Some(pos),
            (true, Some(start)) => {
                f.write_all_at(&data[start..pos], offset + start as u64)?;
                run = None;
            }
            _ => {}
        }
        pos = end;
    }
    if let Some(start) = run {
        f.write_all_at(&data[start..], offset + start as u64)?;
    }
    Ok(())
}

/// Creates directories, symlinks and empty files of the right size.
fn create_entries(
    target: &Path,
    entries: &[WalkEntry],
    files: &[usize],
    summary: &mut RestoreSummary,
) -> Result<()> {
    for e in entries {
        let p = target.join(&e.path);
        match e.node.kind {
            NodeKind::Dir => {
                match fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        fs::remove_file(&p).map_err(io(&p))?;
                        fs::create_dir(&p).map_err(io(&p))?;
                    }
                    Err(_) => fs::create_dir_all(&p).map_err(io(&p))?,
                }
                summary.dirs += 1;
            }
            NodeKind::Symlink => {
                if fs::symlink_metadata(&p).is_ok() {
                    fs::remove_file(&p).map_err(io(&p))?;
                }
                let t = e
                    .node
                    .target
                    .as_ref()
                    .map(|t| t.as_bytes())
                    .unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), &p).map_err(io(&p))?;
                summary.symlinks += 1;
            }
            NodeKind::File => {}
        }
    }
    for &i in files {
        let e = &entries[i];
        let p = target.join(&e.path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .map_err(io(&p))?;
        f.set_len(e.node.size).map_err(io(&p))?;
        summary.files += 1;
        summary.bytes += e.node.size;
    }
    Ok(())
}

/// Groups every chunk of every file by pack, then into merged read ranges.
/// Returns the ranges and the files whose chunks are missing from the index.
fn plan(
    index: &MasterIndex,
    entries: &[WalkEntry],
    files: &[usize],
    max_read: u64,
) -> (Vec<RangeJob>, Vec<(usize, String)>) {
    let mut by_blob: HashMap<lifeboat_format::Id, (u32, BlobJob)> = HashMap::new();
    let mut missing = Vec::new();
    for (fi, &ei) in files.iter().enumerate() {
        let mut offset = 0u64;
        for id in &entries[ei].node.content {
            match index.get(id) {
                Some(loc) => {
                    let job = by_blob.entry(*id).or_insert_with(|| {
                        (
                            loc.pack,
                            BlobJob {
                                entry: loc.entry,
                                targets: Vec::new(),
                            },
                        )
                    });
                    job.1.targets.push(Target { file: fi, offset });
                    offset += u64::from(loc.entry.raw_length);
                }
                None => {
                    missing.push((
                        fi,
                        format!("chunk {} is missing from the repository index", id.short()),
                    ));
                    break;
                }
            }
        }
    }
    let mut by_pack: HashMap<u32, Vec<BlobJob>> = HashMap::new();
    for (_, (pack, job)) in by_blob {
        by_pack.entry(pack).or_default().push(job);
    }
    let mut ranges = Vec::new();
    let mut packs: Vec<_> = by_pack.into_iter().collect();
    packs.sort_by_key(|(p, _)| *p);
    for (pack, mut blobs) in packs {
        blobs.sort_by_key(|b| b.entry.offset);
        let mut current: Option<RangeJob> = None;
        for b in blobs {
            let (s, e) = (u64::from(b.entry.offset), b.entry.end());
            match current.as_mut() {
                Some(r) if s <= r.end + MAX_GAP && e - r.start <= max_read => {
                    r.end = r.end.max(e);
                    r.blobs.push(b);
                }
                _ => {
                    ranges.extend(current.take());
                    current = Some(RangeJob {
                        pack,
                        start: s,
                        end: e,
                        blobs: vec![b],
                    });
                }
            }
        }
        ranges.extend(current);
    }
    (ranges, missing)
}

/// Applies mode, owner and mtime; directories deepest first.
fn apply_metadata(target: &Path, entries: &[WalkEntry]) -> Result<()> {
    let root = rustix::process::geteuid().is_root();
    let set = |p: &Path, n: &Node| -> Result<()> {
        if root {
            std::os::unix::fs::lchown(p, Some(n.uid), Some(n.gid)).map_err(io(p))?;
        }
        let mtime = filetime::FileTime::from_unix_time(
            n.mtime_ns.div_euclid(1_000_000_000),
            n.mtime_ns.rem_euclid(1_000_000_000) as u32,
        );
        if n.kind == NodeKind::Symlink {
            filetime::set_symlink_file_times(p, mtime, mtime).map_err(io(p))?;
        } else {
            fs::set_permissions(p, fs::Permissions::from_mode(n.mode)).map_err(io(p))?;
            filetime::set_file_times(p, mtime, mtime).map_err(io(p))?;
        }
        Ok(())
    };
    for e in entries.iter().filter(|e| e.node.kind != NodeKind::Dir) {
        set(&target.join(&e.path), &e.node)?;
    }
    let mut dirs: Vec<&WalkEntry> = entries
        .iter()
        .filter(|e| e.node.kind == NodeKind::Dir)
        .collect();
    dirs.sort_by_key(|e| std::cmp::Reverse(e.path.components().count()));
    for e in dirs {
        set(&target.join(&e.path), &e.node)?;
    }
    Ok(())
}

impl Repository {
    /// Restores `snapshot` into `target`.
    pub async fn restore_files(
        &self,
        snapshot: &SnapshotEntry,
        target: &Path,
        options: &RestoreOptions,
        progress: DynProgress,
    ) -> Result<RestoreSummary> {
        let started = Instant::now();
        if !options.overwrite && !is_empty_dir(target)? {
            return Err(RepoError::Invalid(format!(
                "restore target {} is not empty; choose an empty or new directory, or pass --overwrite to replace files in it",
                target.display()
            )));
        }
        fs::create_dir_all(target).map_err(io(target))?;
        progress.event(Event::Phase("loading index"));
        let index = Arc::new(self.load_index(&progress).await?.index);
        progress.event(Event::Phase("reading trees"));
        let label = format!("snapshot {}", snapshot.id.short());
        let entries = self
            .walk_snapshot(
                &index,
                &snapshot.snapshot.root,
                &PathFilter::new(&options.include),
                &label,
            )
            .await?;
        let files: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].node.kind == NodeKind::File)
            .collect();
        let total: u64 = files.iter().map(|&i| entries[i].node.size).sum();
        progress.event(Event::Phase("restoring"));
        progress.event(Event::Total {
            items: files.len() as u64,
            bytes: total,
        });

        let target = target.to_path_buf();
        let entries = Arc::new(entries);
        let files = Arc::new(files);
        let max_read = if options.max_read == 0 {
            8 << 20
        } else {
            options.max_read
        };
        let (ranges, missing, mut summary) = {
            let (t, e, f, ix) = (
                target.clone(),
                entries.clone(),
                files.clone(),
                index.clone(),
            );
            cpu(move || -> Result<_> {
                let mut summary = RestoreSummary::default();
                create_entries(&t, &e, &f, &mut summary)?;
                let (ranges, missing) = plan(&ix, &e, &f, max_read);
                Ok((ranges, missing, summary))
            })
            .await??
        };

        let failures: Arc<Mutex<HashMap<usize, String>>> =
            Arc::new(Mutex::new(missing.into_iter().collect()));
        let paths: Arc<Vec<PathBuf>> = Arc::new(
            files
                .iter()
                .map(|&i| target.join(&entries[i].path))
                .collect(),
        );
        let concurrency = if options.concurrency == 0 {
            4
        } else {
            options.concurrency
        };
        let mut runs = futures::stream::iter(ranges)
            .map(|r| {
                let (index, paths, failures, progress) = (
                    index.clone(),
                    paths.clone(),
                    failures.clone(),
                    progress.clone(),
                );
                async move {
                    let pack = index.pack(r.pack).clone();
                    let key = layout::pack(&pack.id);
                    let fail_all = |why: String| {
                        if let Ok(mut f) = failures.lock() {
                            for b in &r.blobs {
                                for t in &b.targets {
                                    f.entry(t.file).or_insert_with(|| why.clone());
                                }
                            }
                        }
                    };
                    let bytes = match self.storage().get(&key, Some(r.start..r.end)).await {
                        Ok(b) => b,
                        Err(e) if e.is_access_problem() || e.is_transient() => {
                            return Err(RepoError::Storage(e));
                        }
                        Err(e) => {
                            fail_all(format!("pack {key} could not be read: {e}"));
                            return Ok(());
                        }
                    };
                    let mk = self.key().clone();
                    cpu(move || {
                        let subkey = mk.subkey(&pack.salt);
                        for b in &r.blobs {
                            let s = (u64::from(b.entry.offset) - r.start) as usize;
                            let record = &bytes[s..s + b.entry.length as usize];
                            let data = match open_blob_with(&subkey, &mk, &b.entry, record) {
                                Ok(d) => d,
                                Err(e) => {
                                    let why = format!(
                                        "chunk {} in pack {key} is damaged: {e}",
                                        b.entry.id.short()
                                    );
                                    if let Ok(mut f) = failures.lock() {
                                        for t in &b.targets {
                                            f.entry(t.file).or_insert_with(|| why.clone());
                                        }
                                    }
                                    continue;
                                }
                            };
                            let zero = is_zero(&data);
                            for t in &b.targets {
                                let p = &paths[t.file];
                                let written = if zero {
                                    Ok(())
                                } else {
                                    OpenOptions::new()
                                        .write(true)
                                        .open(p)
                                        .and_then(|f| write_sparse(&f, &data, t.offset))
                                };
                                if let Err(e) = written
                                    && let Ok(mut f) = failures.lock()
                                {
                                    f.entry(t.file)
                                        .or_insert_with(|| format!("write failed: {e}"));
                                }
                                progress.event(Event::Advance {
                                    items: 0,
                                    bytes: data.len() as u64,
                                });
                            }
                        }
                    })
                    .await
                }
            })
            .buffer_unordered(concurrency);
        while let Some(r) = runs.next().await {
            r?;
        }
        drop(runs);

        progress.event(Event::Phase("setting metadata"));
        {
            let (t, e) = (target.clone(), entries.clone());
            cpu(move || -> Result<()> {
                apply_metadata(&t, &e)?;
                let dir = File::open(&t).map_err(io(&t))?;
                rustix::fs::syncfs(&dir).map_err(|e| RepoError::local(&t, e.into()))?;
                Ok(())
            })
            .await??;
        }
        let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
        let mut failed: Vec<String> = failures
            .into_iter()
            .map(|(fi, why)| format!("{}: {why}", entries[files[fi]].path.display()))
            .collect();
        failed.sort();
        summary.failed = failed;
        summary.duration_ms = started.elapsed().as_millis() as u64;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_writes_skip_zero_blocks_and_keep_content() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("f");
        let f = File::create(&p).unwrap_or_else(|e| panic!("{e}"));
        let mut data = vec![0u8; 3 << 20];
        data[5] = 1;
        data[(2 << 20) + 7] = 2;
        let offset = 1000;
        f.set_len(offset + data.len() as u64)
            .unwrap_or_else(|e| panic!("{e}"));
        write_sparse(&f, &data, offset).unwrap_or_else(|e| panic!("{e}"));
        drop(f);
        let back = fs::read(&p).unwrap_or_default();
        assert_eq!(&back[offset as usize..], &data[..]);
        let blocks = std::os::unix::fs::MetadataExt::blocks(
            &fs::metadata(&p).unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(blocks * 512 <= 64 * 1024, "{blocks} blocks allocated");
        assert!(is_zero(&[0; 33]));
        assert!(!is_zero(&[
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
        ]));
    }
}
