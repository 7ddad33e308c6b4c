//! The parent snapshot: the previous backup of the same source on the same
//! host, whose unchanged files are reused without being read again.
//!
//! A file counts as unchanged when its size, modification time, status-change
//! time and inode all equal the parent's record, its status-change time is
//! older than the parent backup's start (so the parent cannot have read a
//! version that was still being written within the same clock tick), and
//! every chunk the parent lists is still in the index. The status-change time
//! cannot be set by programs, so tools that preserve modification times
//! (`cp -p`, `rsync -t`) do not fool the comparison.

use std::collections::HashMap;
use std::path::PathBuf;

use lifeboat_format::Id;
use lifeboat_format::tree::{Node, NodeKind};

use super::scan::ScanNode;
use super::source::TreeSource;
use crate::error::Result;
use crate::index::MasterIndex;
use crate::progress::{DynProgress, Event};
use crate::repository::Repository;
use crate::walk::PathFilter;

/// Which snapshot to compare against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Parent {
    /// The newest snapshot of the same source on the same host.
    #[default]
    Auto,
    /// None: read every file.
    Disabled,
    /// This snapshot (id, prefix or `latest`).
    Snapshot(String),
}

/// Margin between a file's last change and the parent's start, covering
/// coarse file-system timestamps.
const SAFETY_NS: i64 = 1_000_000_000;

/// The parent's files by path in the tree.
pub(crate) struct ParentFiles {
    pub id: Id,
    started_ns: i64,
    files: HashMap<PathBuf, Node>,
}

impl ParentFiles {
    /// The parent's file node at `at`, if it has one.
    pub(crate) fn file(&self, at: &std::path::Path) -> Option<&Node> {
        self.files.get(at)
    }

    /// The parent's chunk list for `node` and the bases of its delta
    /// chunks, if the file is unchanged.
    pub(crate) fn unchanged(
        &self,
        node: &ScanNode,
        index: &MasterIndex,
    ) -> Option<(Vec<Id>, Vec<Id>)> {
        let p = self.files.get(&node.at)?;
        let same = p.size == node.size
            && p.mtime_ns == node.mtime_ns
            && p.ctime_ns == node.ctime_ns
            && p.ctime_ns != 0
            && p.ctime_ns < self.started_ns - SAFETY_NS
            && p.inode == node.inode
            && p.content
                .iter()
                .chain(&p.bases)
                .all(|id| index.contains(id));
        same.then(|| (p.content.clone(), p.bases.clone()))
    }
}

/// Finds and loads the parent snapshot's files. A parent that cannot be read
/// is reported as a warning and the backup reads every file instead.
pub(crate) async fn load(
    repo: &Repository,
    index: &MasterIndex,
    parent: &Parent,
    host: &str,
    source: &TreeSource,
    progress: &DynProgress,
) -> Result<Option<ParentFiles>> {
    let entry = match parent {
        Parent::Disabled => return Ok(None),
        Parent::Snapshot(r) => repo.find_snapshot(r, progress).await?,
        Parent::Auto => {
            let mut wanted = source.paths.clone();
            wanted.sort();
            let found = repo
                .list_snapshots(progress)
                .await?
                .into_iter()
                .rev()
                .find(|e| {
                    let mut paths = e.snapshot.paths.clone();
                    paths.sort();
                    e.snapshot.source == source.kind && e.snapshot.host == host && paths == wanted
                });
            match found {
                Some(e) => e,
                None => return Ok(None),
            }
        }
    };
    let label = format!("parent snapshot {}", entry.id.short());
    match repo
        .walk_snapshot(index, &entry.snapshot.root, &PathFilter::default(), &label)
        .await
    {
        Ok(entries) => Ok(Some(ParentFiles {
            id: entry.id,
            started_ns: entry
                .snapshot
                .time
                .timestamp_nanos_opt()
                .unwrap_or(i64::MIN),
            files: entries
                .into_iter()
                .filter(|e| e.node.kind == NodeKind::File)
                .map(|e| (e.path, e.node))
                .collect(),
        })),
        Err(e) if e.is_access_problem() => Err(e),
        Err(e) => {
            progress.event(Event::Warning(format!(
                "{label} cannot be read ({e}); reading every file instead"
            )));
            Ok(None)
        }
    }
}
