//! What a file backup would read, without reading file contents or writing
//! anything (`backup --dry-run`): the entries the source's policy keeps and
//! those it leaves out.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::source::{Include, TreeSource};
use crate::error::{RepoError, Result};

/// The entries a backup of a source would hold.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Preview {
    /// Regular files kept.
    pub files: u64,
    /// Directories kept.
    pub dirs: u64,
    /// Symbolic links kept.
    pub symlinks: u64,
    /// Bytes in the kept files.
    pub bytes: u64,
    /// Entries left out by the policy (their contents are not counted).
    pub excluded: u64,
    /// The first excluded paths, for people to check their patterns.
    pub excluded_examples: Vec<String>,
}

/// How many excluded paths a preview names.
const EXAMPLES: usize = 20;

impl TreeSource {
    /// Walks the source's roots as a backup would and counts what it keeps.
    pub fn preview(&self) -> Result<Preview> {
        let mut p = Preview::default();
        for (i, root) in self.roots.iter().enumerate() {
            self.visit(i, &root.path, Path::new(""), &mut p)?;
        }
        Ok(p)
    }

    fn visit(&self, root: usize, at: &Path, rel: &Path, p: &mut Preview) -> Result<()> {
        let meta = std::fs::symlink_metadata(at).map_err(|e| RepoError::local(at, e))?;
        let decision = if rel.as_os_str().is_empty() {
            Include::Yes
        } else {
            self.policy.include(root, rel, &meta)
        };
        if decision == Include::No {
            p.excluded += 1;
            if p.excluded_examples.len() < EXAMPLES {
                p.excluded_examples.push(at.display().to_string());
            }
            return Ok(());
        }
        let kind = meta.file_type();
        if kind.is_symlink() {
            p.symlinks += 1;
        } else if kind.is_dir() {
            p.dirs += 1;
            if decision == Include::EmptyDir {
                return Ok(());
            }
            let mut children: Vec<PathBuf> = std::fs::read_dir(at)
                .map_err(|e| RepoError::local(at, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            children.sort();
            for child in children {
                let name = child.file_name().map(PathBuf::from).unwrap_or_default();
                self.visit(root, &child, &rel.join(name), p)?;
            }
        } else if kind.is_file() {
            p.files += 1;
            p.bytes += meta.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_kept_and_names_what_is_left_out() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().join("app");
        let write = |rel: &str, len: usize| {
            let p = root.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::write(p, vec![b'x'; len]).unwrap_or_else(|e| panic!("{e}"));
        };
        write("a.conf", 10);
        write("logs/debug.log", 1000);
        write("sub/b.env", 5);
        let source = TreeSource::files_excluding(std::slice::from_ref(&root), &["*.log".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        let p = source.preview().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.files, p.bytes, p.excluded), (2, 15, 1));
        assert_eq!(p.dirs, 3);
        assert!(p.excluded_examples[0].ends_with("logs/debug.log"));
    }
}
