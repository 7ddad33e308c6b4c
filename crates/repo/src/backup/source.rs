//! What a backup reads: directories (or files) placed at paths of the
//! snapshot tree, and a policy deciding what to skip and how to chunk.
//!
//! `backup files` places each given path at its absolute location. A
//! PostgreSQL base backup places the data directory at `pgdata/` and each
//! tablespace at `tablespaces/<oid>/`, skips what PostgreSQL's documentation
//! says to skip, cuts relation files into fixed page-aligned blocks and
//! verifies page checksums as it reads.

use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lifeboat_format::snapshot::SourceKind;

use crate::error::{RepoError, Result};

/// One directory or file to back up.
#[derive(Clone, Debug)]
pub struct SourceRoot {
    /// Where it goes in the snapshot tree (relative, e.g. `pgdata` or `etc/nginx`).
    pub at: PathBuf,
    /// Where it is on this machine.
    pub path: PathBuf,
    /// True when the directories above `at` mirror real directories above
    /// `path` (file backups); false for virtual placements.
    pub real_ancestors: bool,
}

/// Whether a scanned entry is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    /// Keep it (and, for a directory, what is inside).
    Yes,
    /// Leave it out.
    No,
    /// Keep the directory itself but none of its contents.
    EmptyDir,
}

/// How a file is cut into chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// Content-defined (FastCDC): insertions shift nothing.
    ContentDefined,
    /// Fixed blocks of this many bytes, aligned to the start of the file:
    /// for page-structured files, where blocks change in place.
    Fixed(u32),
}

/// Decides, per entry, what to back up and how.
pub trait FilePolicy: Send + Sync {
    /// Whether the entry at `rel` below root number `root` is kept.
    fn include(&self, _root: usize, _rel: &Path, _meta: &Metadata) -> Include {
        Include::Yes
    }

    /// How to chunk the file at `rel`.
    fn chunking(&self, _root: usize, _rel: &Path) -> Chunking {
        Chunking::ContentDefined
    }

    /// Looks at each chunk as it is read (`offset` in the file) and returns a
    /// description of every problem found in it, e.g. bad page checksums.
    fn inspect(&self, _root: usize, _rel: &Path, _offset: u64, _data: &[u8]) -> Vec<String> {
        Vec::new()
    }
}

/// Keeps everything, chunks everything by content.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllFiles;

impl FilePolicy for AllFiles {}

/// Leaves out what matches glob patterns: a pattern without `/` matches an
/// entry's name at any depth (`*.log`, `node_modules`), one with `/` its
/// absolute path (`/srv/app/tmp/**`).
#[derive(Debug, Clone)]
pub struct Excludes {
    names: globset::GlobSet,
    paths: globset::GlobSet,
    roots: Vec<PathBuf>,
}

impl Excludes {
    /// Compiles `patterns` for the roots of a file backup.
    pub fn new(patterns: &[String], roots: Vec<PathBuf>) -> Result<Self> {
        let mut names = globset::GlobSetBuilder::new();
        let mut paths = globset::GlobSetBuilder::new();
        for p in patterns {
            let glob = globset::GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|e| RepoError::Invalid(format!("exclude pattern {p:?}: {e}")))?;
            if p.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: globset::GlobSetBuilder| {
            b.build()
                .map_err(|e| RepoError::Invalid(format!("exclude patterns: {e}")))
        };
        Ok(Self {
            names: build(names)?,
            paths: build(paths)?,
            roots,
        })
    }
}

impl FilePolicy for Excludes {
    fn include(&self, root: usize, rel: &Path, _meta: &Metadata) -> Include {
        let by_name = rel.file_name().is_some_and(|n| self.names.is_match(n));
        let by_path = self
            .roots
            .get(root)
            .is_some_and(|r| self.paths.is_match(r.join(rel)));
        if by_name || by_path {
            Include::No
        } else {
            Include::Yes
        }
    }
}

/// A complete description of what to back up.
#[derive(Clone)]
pub struct TreeSource {
    /// The kind recorded in the snapshot.
    pub kind: SourceKind,
    /// How the source is described in the snapshot (and matched to a parent).
    pub paths: Vec<String>,
    /// The roots.
    pub roots: Vec<SourceRoot>,
    /// The policy.
    pub policy: Arc<dyn FilePolicy>,
}

impl std::fmt::Debug for TreeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeSource")
            .field("kind", &self.kind)
            .field("roots", &self.roots)
            .finish()
    }
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

impl TreeSource {
    /// Files and directories, each at its absolute location.
    pub fn files(paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            return Err(RepoError::Invalid(
                "nothing to back up: no paths given".into(),
            ));
        }
        let mut roots = Vec::new();
        for p in paths {
            let abs = normalize(p)?;
            fs::symlink_metadata(&abs).map_err(|e| RepoError::local(&abs, e))?;
            roots.push(SourceRoot {
                at: abs.strip_prefix("/").unwrap_or(&abs).to_path_buf(),
                path: abs,
                real_ancestors: true,
            });
        }
        Ok(Self {
            kind: SourceKind::Files,
            paths: roots.iter().map(|r| r.path.display().to_string()).collect(),
            roots,
            policy: Arc::new(AllFiles),
        })
    }

    /// Like [`TreeSource::files`], leaving out what `exclude` matches.
    pub fn files_excluding(paths: &[PathBuf], exclude: &[String]) -> Result<Self> {
        let mut source = Self::files(paths)?;
        if !exclude.is_empty() {
            let roots = source.roots.iter().map(|r| r.path.clone()).collect();
            source.policy = Arc::new(Excludes::new(exclude, roots)?);
        }
        Ok(source)
    }

    /// A tree with no files of this machine in it: everything is added by
    /// the caller ([`super::TreeBackup::add_file`], streams).
    pub fn virtual_tree(kind: SourceKind, paths: Vec<String>) -> Self {
        Self {
            kind,
            paths,
            roots: Vec::new(),
            policy: Arc::new(AllFiles),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_match_names_anywhere_and_paths_whole() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let meta = fs::metadata(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let ex = Excludes::new(
            &["*.log".into(), "/srv/app/tmp/**".into()],
            vec![PathBuf::from("/srv/app")],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ex.include(0, Path::new("deep/down/x.log"), &meta),
            Include::No
        );
        assert_eq!(
            ex.include(0, Path::new("tmp/cache/file"), &meta),
            Include::No
        );
        assert_eq!(ex.include(0, Path::new("src/main.rs"), &meta), Include::Yes);
        assert!(Excludes::new(&["[".into()], vec![]).is_err());
    }
}
