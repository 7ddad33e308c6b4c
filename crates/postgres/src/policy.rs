//! What a base backup copies from a data directory, and how.
//!
//! Follows PostgreSQL's documentation ("Backing Up the Data Directory" and
//! pg_basebackup's rules): leave out `postmaster.pid`, `postmaster.opts`,
//! old `backup_label`/`tablespace_map` files, `pg_internal.init` files,
//! temporary files and directories (`pgsql_tmp*`), the contents of `pg_wal`,
//! `pg_dynshmem`, `pg_notify`, `pg_replslot`, `pg_serial`, `pg_snapshots`,
//! `pg_stat_tmp` and `pg_subtrans` (keeping the directories), and unlogged
//! relations except their init forks. Relation files are cut into fixed,
//! page-aligned blocks and their page checksums verified as they are read.

use std::collections::HashSet;
use std::fs::Metadata;
use std::path::{Path, PathBuf};

use lifeboat_repo::backup::{Chunking, FilePolicy, Include};

use crate::checksum::{BLCKSZ, PageCheck, RELSEG_BLOCKS, relation_segment, verify_page};
use crate::lsn::Lsn;

/// Block size relation files are cut into: 32 pages.
pub const RELATION_BLOCK: u32 = 256 * 1024;

const EMPTIED_DIRS: &[&str] = &[
    "pg_dynshmem",
    "pg_notify",
    "pg_replslot",
    "pg_serial",
    "pg_snapshots",
    "pg_stat_tmp",
    "pg_subtrans",
];
const SKIPPED_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
];

/// The base backup's file policy. Root 0 is the data directory; roots 1…
/// are tablespace directories.
#[derive(Debug)]
pub struct PgPolicy {
    checksums: bool,
    start_lsn: Lsn,
    /// Root names for messages (`pgdata`, `tablespaces/16385`).
    root_names: Vec<String>,
    /// Unlogged relations (root, directory, relfilenode) to leave out.
    unlogged: HashSet<(usize, PathBuf, String)>,
}

/// The relfilenode of a relation file name (`16384`, `16384_vm`, `16384.2`),
/// and whether it is an init fork.
fn relfilenode(name: &str) -> Option<(&str, bool)> {
    let stem = name.split('.').next()?;
    let (node, init) = match stem.strip_suffix("_init") {
        Some(n) => (n, true),
        None => (
            stem.strip_suffix("_fsm")
                .or_else(|| stem.strip_suffix("_vm"))
                .unwrap_or(stem),
            false,
        ),
    };
    (!node.is_empty() && node.bytes().all(|b| b.is_ascii_digit())).then_some((node, init))
}

impl PgPolicy {
    /// A policy for the given roots (`(name, directory)`, data directory
    /// first); finds unlogged relations by their init forks.
    pub fn new(roots: &[(String, PathBuf)], checksums: bool, start_lsn: Lsn) -> Self {
        let mut unlogged = HashSet::new();
        for (ri, (_, dir)) in roots.iter().enumerate() {
            for db_dir in database_dirs(ri, dir) {
                let Ok(entries) = std::fs::read_dir(dir.join(&db_dir)) else {
                    continue;
                };
                for e in entries.flatten() {
                    if let Some(name) = e.file_name().to_str()
                        && let Some((node, true)) = relfilenode(name)
                    {
                        unlogged.insert((ri, db_dir.clone(), node.to_string()));
                    }
                }
            }
        }
        Self {
            checksums,
            start_lsn,
            root_names: roots.iter().map(|(n, _)| n.clone()).collect(),
            unlogged,
        }
    }

    fn name(&self, root: usize, rel: &Path) -> String {
        let r = self.root_names.get(root).map(String::as_str).unwrap_or("?");
        format!("{r}/{}", rel.display())
    }
}

/// Directories holding relation files below root `ri` (relative paths).
fn database_dirs(ri: usize, root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut add_children = |rel: PathBuf| {
        if let Ok(entries) = std::fs::read_dir(root.join(&rel)) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir())
                    && e.file_name()
                        .to_str()
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                {
                    out.push(rel.join(e.file_name()));
                }
            }
        }
    };
    if ri == 0 {
        add_children(PathBuf::from("base"));
    } else if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(|n| n.starts_with("PG_")) {
                add_children(PathBuf::from(e.file_name()));
            }
        }
    }
    out
}

impl FilePolicy for PgPolicy {
    fn include(&self, root: usize, rel: &Path, meta: &Metadata) -> Include {
        let Some(name) = rel.file_name().and_then(|n| n.to_str()) else {
            return Include::Yes;
        };
        if name.starts_with("pgsql_tmp") || name == "pg_internal.init" {
            return Include::No;
        }
        if root == 0 {
            let top = rel.components().count() == 1;
            if top && SKIPPED_FILES.contains(&name) {
                return Include::No;
            }
            if top && EMPTIED_DIRS.contains(&name) && meta.is_dir() {
                return Include::EmptyDir;
            }
            if rel.starts_with("pg_wal") && !top {
                // Keep pg_wal/archive_status (and summaries) as empty directories.
                return if meta.is_dir() {
                    Include::EmptyDir
                } else {
                    Include::No
                };
            }
        }
        if meta.is_file()
            && let Some((node, false)) = relfilenode(name)
            && let Some(dir) = rel.parent()
            && self
                .unlogged
                .contains(&(root, dir.to_path_buf(), node.to_string()))
        {
            return Include::No;
        }
        Include::Yes
    }

    fn chunking(&self, _root: usize, rel: &Path) -> Chunking {
        if relation_segment(rel).is_some() {
            Chunking::Fixed(RELATION_BLOCK)
        } else {
            Chunking::ContentDefined
        }
    }

    fn inspect(&self, root: usize, rel: &Path, offset: u64, data: &[u8]) -> Vec<String> {
        if !self.checksums {
            return Vec::new();
        }
        let Some(segment) = relation_segment(rel) else {
            return Vec::new();
        };
        let first_in_file = (offset / BLCKSZ as u64) as u32;
        let mut problems = Vec::new();
        // A trailing partial page is a relation being extended right now: skip it.
        for (i, page) in data.chunks_exact(BLCKSZ).enumerate() {
            let Ok(page) = <&[u8; BLCKSZ]>::try_from(page) else {
                continue;
            };
            let in_file = first_in_file + i as u32;
            // Checksums use the block number within the whole relation.
            let blkno = segment.saturating_mul(RELSEG_BLOCKS) + in_file;
            if let PageCheck::Bad { stored, computed } = verify_page(page, blkno, self.start_lsn) {
                problems.push(format!(
                    "{}: block {in_file} has a bad page checksum (stored {stored:#06x}, computed {computed:#06x})",
                    self.name(root, rel)
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relfilenodes_and_forks() {
        assert_eq!(relfilenode("16384"), Some(("16384", false)));
        assert_eq!(relfilenode("16384_vm"), Some(("16384", false)));
        assert_eq!(relfilenode("16384.3"), Some(("16384", false)));
        assert_eq!(relfilenode("16384_init"), Some(("16384", true)));
        assert_eq!(relfilenode("pg_filenode.map"), None);
    }

    #[test]
    fn excludes_what_postgres_says_and_unlogged_relations() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        for sub in ["base/5", "pg_wal/archive_status", "pg_stat_tmp", "global"] {
            std::fs::create_dir_all(d.join(sub)).unwrap_or_else(|e| panic!("{e}"));
        }
        for f in [
            "base/5/100",
            "base/5/100_init",
            "base/5/100_fsm",
            "base/5/200",
            "postmaster.pid",
            "pg_wal/000000010000000000000001",
        ] {
            std::fs::write(d.join(f), b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        let p = PgPolicy::new(&[("pgdata".into(), d.to_path_buf())], false, Lsn(0));
        let inc = |rel: &str| {
            let m = std::fs::metadata(d.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
            p.include(0, Path::new(rel), &m)
        };
        assert_eq!(inc("base/5/100"), Include::No, "unlogged main fork");
        assert_eq!(inc("base/5/100_fsm"), Include::No);
        assert_eq!(inc("base/5/100_init"), Include::Yes, "init fork kept");
        assert_eq!(inc("base/5/200"), Include::Yes);
        assert_eq!(inc("postmaster.pid"), Include::No);
        assert_eq!(inc("pg_wal/000000010000000000000001"), Include::No);
        assert_eq!(inc("pg_wal/archive_status"), Include::EmptyDir);
        assert_eq!(inc("pg_stat_tmp"), Include::EmptyDir);
        assert_eq!(
            p.chunking(0, Path::new("base/5/200")),
            Chunking::Fixed(RELATION_BLOCK)
        );
        assert_eq!(
            p.chunking(0, Path::new("postgresql.conf")),
            Chunking::ContentDefined
        );
    }
}
