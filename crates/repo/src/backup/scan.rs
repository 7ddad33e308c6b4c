//! Walks the paths to back up and records what is there, before any data is read.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use lifeboat_format::Id;
use lifeboat_format::tree::NodeKind;

use crate::error::{RepoError, Result};
use crate::progress::{DynProgress, Event};

/// One file system entry found by the scan.
#[derive(Debug, Clone)]
pub(crate) struct ScanNode {
    pub name: Vec<u8>,
    pub kind: NodeKind,
    pub mode: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub target: Option<Vec<u8>>,
    pub children: BTreeMap<Vec<u8>, usize>,
    pub path: PathBuf,
    /// Filled by the pipeline (files) or the tree builder (directories).
    pub content: Vec<Id>,
    pub subtree: Option<Id>,
    /// Set when the file could not be read; the node is then left out.
    pub failed: bool,
}

/// Everything found: node 0 is `/`; children always come after their parent.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub nodes: Vec<ScanNode>,
    pub skipped: u64,
    /// The paths given, made absolute, in the order given.
    pub roots: Vec<PathBuf>,
}

fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// Builds a node from `lstat` metadata; `None` for sockets, devices and FIFOs.
fn node(name: Vec<u8>, path: &Path, m: &Metadata) -> Result<Option<ScanNode>> {
    let ft = m.file_type();
    let (kind, target) = if ft.is_file() {
        (NodeKind::File, None)
    } else if ft.is_dir() {
        (NodeKind::Dir, None)
    } else if ft.is_symlink() {
        let t = fs::read_link(path).map_err(|e| RepoError::local(path, e))?;
        (NodeKind::Symlink, Some(t.as_os_str().as_bytes().to_vec()))
    } else {
        return Ok(None);
    };
    Ok(Some(ScanNode {
        name,
        kind,
        mode: m.mode() & 0o7777,
        mtime_ns: nanos(m.mtime(), m.mtime_nsec()),
        ctime_ns: nanos(m.ctime(), m.ctime_nsec()),
        inode: m.ino(),
        uid: m.uid(),
        gid: m.gid(),
        size: if kind == NodeKind::File { m.len() } else { 0 },
        target,
        children: BTreeMap::new(),
        path: path.to_path_buf(),
        content: Vec::new(),
        subtree: None,
        failed: false,
    }))
}

/// Makes `p` absolute and resolves symlinks in its parent directories, but
/// not in its last component (a symlink given on the command line is stored
/// as a symlink).
fn normalize(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| RepoError::local(p, e))?;
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => Ok(fs::canonicalize(parent)
            .map_err(|e| RepoError::local(parent, e))?
            .join(name)),
        _ => fs::canonicalize(&abs).map_err(|e| RepoError::local(&abs, e)),
    }
}

impl Scan {
    fn add_child(&mut self, parent: usize, child: ScanNode) -> usize {
        if let Some(&existing) = self.nodes[parent].children.get(&child.name) {
            return existing;
        }
        let idx = self.nodes.len();
        self.nodes[parent].children.insert(child.name.clone(), idx);
        self.nodes.push(child);
        idx
    }

    /// Scans `paths` (which must exist) and everything below them.
    pub(crate) fn run(paths: &[PathBuf], progress: &DynProgress) -> Result<Self> {
        let mut scan = Scan::default();
        let root_meta = fs::symlink_metadata("/").map_err(|e| RepoError::local("/", e))?;
        let root = node(Vec::new(), Path::new("/"), &root_meta)?
            .ok_or_else(|| RepoError::Invalid("/ is not a directory".into()))?;
        scan.nodes.push(root);
        for p in paths {
            let abs = normalize(p)?;
            scan.roots.push(abs.clone());
            let meta = fs::symlink_metadata(&abs).map_err(|e| RepoError::local(&abs, e))?;
            // Record each ancestor directory with its own metadata.
            let mut parent = 0;
            let mut so_far = PathBuf::from("/");
            let comps: Vec<_> = abs.components().skip(1).collect();
            for (i, c) in comps.iter().enumerate() {
                so_far.push(c);
                let name = c.as_os_str().as_bytes().to_vec();
                let m = if i + 1 == comps.len() {
                    meta.clone()
                } else {
                    fs::symlink_metadata(&so_far).map_err(|e| RepoError::local(&so_far, e))?
                };
                let Some(n) = node(name, &so_far, &m)? else {
                    return Err(RepoError::Invalid(format!(
                        "{} is a socket, device or FIFO; only files, directories and symlinks can be backed up",
                        so_far.display()
                    )));
                };
                parent = scan.add_child(parent, n);
            }
            if comps.is_empty() {
                parent = 0;
            }
            scan.walk(parent, progress);
        }
        let files = scan.files();
        let bytes = files.iter().map(|&i| scan.nodes[i].size).sum();
        progress.event(Event::Total {
            items: files.len() as u64,
            bytes,
        });
        Ok(scan)
    }

    /// Walks below `start` depth-first in name order.
    fn walk(&mut self, start: usize, progress: &DynProgress) {
        let mut stack = vec![start];
        while let Some(idx) = stack.pop() {
            match self.nodes[idx].kind {
                NodeKind::File | NodeKind::Symlink => continue,
                NodeKind::Dir => {}
            }
            let dir = self.nodes[idx].path.clone();
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    self.skipped += 1;
                    progress.event(Event::Warning(format!(
                        "cannot read directory {}: {e}",
                        dir.display()
                    )));
                    continue;
                }
            };
            let mut found: Vec<(Vec<u8>, PathBuf)> = Vec::new();
            for entry in entries {
                match entry {
                    Ok(e) => found.push((e.file_name().as_bytes().to_vec(), e.path())),
                    Err(e) => {
                        self.skipped += 1;
                        progress.event(Event::Warning(format!(
                            "cannot list {}: {e}",
                            dir.display()
                        )));
                    }
                }
            }
            found.sort();
            let mut subdirs = Vec::new();
            for (name, path) in found {
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        self.skipped += 1;
                        progress.event(Event::Warning(format!(
                            "cannot stat {}: {e}",
                            path.display()
                        )));
                        continue;
                    }
                };
                match node(name, &path, &meta) {
                    Ok(Some(n)) => {
                        let child = self.add_child(idx, n);
                        subdirs.push(child);
                    }
                    Ok(None) => {
                        self.skipped += 1;
                        progress.event(Event::Warning(format!(
                            "skipping {}: sockets, devices and FIFOs are not backed up",
                            path.display()
                        )));
                    }
                    Err(e) => {
                        self.skipped += 1;
                        progress.event(Event::Warning(format!("skipping {}: {e}", path.display())));
                    }
                }
            }
            // Reverse so the stack pops them in name order.
            stack.extend(subdirs.into_iter().rev());
        }
    }

    /// Indices of the regular files, in scan order.
    pub(crate) fn files(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].kind == NodeKind::File)
            .collect()
    }
}
