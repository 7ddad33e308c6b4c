//! Walking a snapshot's directory trees.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::tree::{Node, NodeKind, Tree};
use std::os::unix::ffi::OsStrExt;

use crate::error::Result;
use crate::index::MasterIndex;
use crate::repository::Repository;

/// One entry of a snapshot, with its path relative to the snapshot root.
#[derive(Clone, Debug)]
pub struct WalkEntry {
    /// Path below the root, e.g. `usr/share/doc/README`.
    pub path: PathBuf,
    /// The node.
    pub node: Node,
}

/// Decides which paths a walk descends into and returns.
#[derive(Clone, Debug, Default)]
pub struct PathFilter {
    includes: Vec<PathBuf>,
}

impl PathFilter {
    /// Matches everything when `includes` is empty; otherwise the included
    /// paths, everything below them, and the directories above them.
    pub fn new(includes: &[PathBuf]) -> Self {
        Self {
            includes: includes
                .iter()
                .map(|p| {
                    p.components()
                        .filter(|c| matches!(c, std::path::Component::Normal(_)))
                        .collect()
                })
                .collect(),
        }
    }

    /// True if `path` is wanted.
    pub fn matches(&self, path: &std::path::Path) -> bool {
        self.includes.is_empty()
            || self
                .includes
                .iter()
                .any(|i| path.starts_with(i) || i.starts_with(path))
    }
}

impl Repository {
    /// Every entry below `root`, parents before children, in breadth-first
    /// order. Trees are fetched in parallel and each distinct tree only once.
    pub async fn walk_snapshot(
        &self,
        index: &MasterIndex,
        root: &Id,
        filter: &PathFilter,
        label: &str,
    ) -> Result<Vec<WalkEntry>> {
        let mut cache: HashMap<Id, Arc<Tree>> = HashMap::new();
        let mut out = Vec::new();
        let mut level: Vec<(PathBuf, Id)> = vec![(PathBuf::new(), *root)];
        while !level.is_empty() {
            let missing: Vec<Id> = {
                let mut ids: Vec<Id> = level
                    .iter()
                    .map(|(_, id)| *id)
                    .filter(|id| !cache.contains_key(id))
                    .collect();
                ids.sort();
                ids.dedup();
                ids
            };
            let mut fetched = futures::stream::iter(missing)
                .map(|id| async move { (id, self.read_tree(index, &id, label).await) })
                .buffer_unordered(16);
            while let Some((id, tree)) = fetched.next().await {
                cache.insert(id, Arc::new(tree?));
            }
            drop(fetched);
            let mut next = Vec::new();
            for (dir, id) in level {
                let Some(tree) = cache.get(&id).cloned() else {
                    continue;
                };
                for node in &tree.nodes {
                    let path = dir.join(std::ffi::OsStr::from_bytes(node.name.as_bytes()));
                    if !filter.matches(&path) {
                        continue;
                    }
                    if node.kind == NodeKind::Dir
                        && let Some(sub) = node.subtree
                    {
                        next.push((path.clone(), sub));
                    }
                    out.push(WalkEntry {
                        path,
                        node: node.clone(),
                    });
                }
            }
            level = next;
        }
        Ok(out)
    }
}
