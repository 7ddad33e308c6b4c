//! Walks the roots of a source and records what is there, before any data is read.

use std::collections::BTreeMap;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use lifeboat_format::Id;
use lifeboat_format::tree::NodeKind;

use super::source::{FilePolicy, Include, TreeSource};
use crate::error::{RepoError, Result};
use crate::progress::{DynProgress, Event};

/// One file system entry found by the scan (or added afterwards).
#[derive(Debug, Clone)]
pub(crate) struct ScanNode {
    pub name: Vec<u8>,
    pub kind: NodeKind,
    pub mode: u32,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    /// Hard links to a file, when more than one (else 0).
    pub links: u64,
    /// The file system's device, for files with `links`.
    pub device: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub target: Option<Vec<u8>>,
    pub children: BTreeMap<Vec<u8>, usize>,
    /// Where it is on this machine (empty for added files).
    pub path: PathBuf,
    /// Which root it was found under, and where below it.
    pub root: usize,
    pub rel: PathBuf,
    /// Where it goes in the snapshot tree.
    pub at: PathBuf,
    /// Filled by the pipeline (files) or the tree builder (directories).
    pub content: Vec<Id>,
    /// The bases of delta chunks in `content` (streams only).
    pub bases: Vec<Id>,
    pub subtree: Option<Id>,
    /// What the object store kept about an object (bucket snapshots).
    pub object: Option<lifeboat_format::tree::ObjectAttrs>,
    /// Set when the file could not be read; the node is then left out.
    pub failed: bool,
}

/// Everything found: node 0 is the tree's root; children always come after
/// their parent.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub nodes: Vec<ScanNode>,
    pub skipped: u64,
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
        links: if ft.is_file() && m.nlink() > 1 {
            m.nlink()
        } else {
            0
        },
        device: if ft.is_file() && m.nlink() > 1 {
            m.dev()
        } else {
            0
        },
        uid: m.uid(),
        gid: m.gid(),
        size: if kind == NodeKind::File { m.len() } else { 0 },
        target,
        children: BTreeMap::new(),
        path: path.to_path_buf(),
        root: 0,
        rel: PathBuf::new(),
        at: PathBuf::new(),
        content: Vec::new(),
        bases: Vec::new(),
        subtree: None,
        object: None,
        failed: false,
    }))
}

impl Scan {
    /// Adds `child` below `parent` (or returns the node already there).
    pub(crate) fn add_child(&mut self, parent: usize, mut child: ScanNode) -> usize {
        if let Some(&existing) = self.nodes[parent].children.get(&child.name) {
            return existing;
        }
        child.at = self.nodes[parent]
            .at
            .join(std::ffi::OsStr::from_bytes(&child.name));
        let idx = self.nodes.len();
        self.nodes[parent].children.insert(child.name.clone(), idx);
        self.nodes.push(child);
        idx
    }

    /// The directory at `at`, creating missing ones like `template`.
    pub(crate) fn ensure_dir(&mut self, at: &Path, template: &ScanNode) -> usize {
        let mut idx = 0;
        for c in at.components() {
            let name = c.as_os_str().as_bytes().to_vec();
            idx = match self.nodes[idx].children.get(&name) {
                Some(&i) => i,
                None => {
                    let mut dir = template.clone();
                    dir.name = name;
                    dir.kind = NodeKind::Dir;
                    dir.size = 0;
                    dir.target = None;
                    dir.children = BTreeMap::new();
                    dir.path = PathBuf::new();
                    self.add_child(idx, dir)
                }
            };
        }
        idx
    }

    /// Scans every root of `source` and everything below it.
    pub(crate) fn run(source: &TreeSource, progress: &DynProgress) -> Result<Self> {
        let mut scan = Scan::default();
        let root_meta = fs::symlink_metadata("/").map_err(|e| RepoError::local("/", e))?;
        let root = node(Vec::new(), Path::new("/"), &root_meta)?
            .ok_or_else(|| RepoError::Invalid("/ is not a directory".into()))?;
        scan.nodes.push(root);
        for (ri, r) in source.roots.iter().enumerate() {
            let meta = fs::symlink_metadata(&r.path).map_err(|e| RepoError::local(&r.path, e))?;
            let unsupported = || {
                RepoError::Invalid(format!(
                    "{} is a socket, device or FIFO; only files, directories and symlinks can be backed up",
                    r.path.display()
                ))
            };
            let top = node(Vec::new(), &r.path, &meta)?.ok_or_else(unsupported)?;
            // The directories above the root: real ones, or made like the root.
            let mut parent = 0;
            let comps: Vec<_> = r.at.components().collect();
            let mut real = PathBuf::from("/");
            for c in comps.iter().take(comps.len().saturating_sub(1)) {
                real.push(c);
                let name = c.as_os_str().as_bytes().to_vec();
                let mut n = if r.real_ancestors {
                    let m = fs::symlink_metadata(&real).map_err(|e| RepoError::local(&real, e))?;
                    node(name.clone(), &real, &m)?.ok_or_else(unsupported)?
                } else {
                    let mut n = top.clone();
                    n.kind = NodeKind::Dir;
                    n.path = PathBuf::new();
                    n.size = 0;
                    n.target = None;
                    n
                };
                n.name = name;
                n.root = ri;
                parent = scan.add_child(parent, n);
            }
            let idx = match comps.last() {
                Some(last) => {
                    let mut n = top;
                    n.name = last.as_os_str().as_bytes().to_vec();
                    n.root = ri;
                    scan.add_child(parent, n)
                }
                None => 0,
            };
            scan.walk(idx, ri, source.policy.as_ref(), progress);
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
    fn walk(&mut self, start: usize, root: usize, policy: &dyn FilePolicy, progress: &DynProgress) {
        let mut stack = vec![start];
        while let Some(idx) = stack.pop() {
            if self.nodes[idx].kind != NodeKind::Dir {
                continue;
            }
            let dir = self.nodes[idx].path.clone();
            let dir_rel = self.nodes[idx].rel.clone();
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
                    // Gone since the listing (temporary files come and go).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        self.skipped += 1;
                        progress.event(Event::Warning(format!(
                            "cannot stat {}: {e}",
                            path.display()
                        )));
                        continue;
                    }
                };
                let rel = dir_rel.join(std::ffi::OsStr::from_bytes(&name));
                let include = policy.include(root, &rel, &meta);
                if include == Include::No {
                    continue;
                }
                match node(name, &path, &meta) {
                    Ok(Some(mut n)) => {
                        n.root = root;
                        n.rel = rel;
                        let child = self.add_child(idx, n);
                        if include == Include::Yes {
                            subdirs.push(child);
                        }
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

    /// Indices of the regular files read from disk, in scan order.
    pub(crate) fn files(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].kind == NodeKind::File && !self.nodes[i].path.as_os_str().is_empty()
            })
            .collect()
    }
}
