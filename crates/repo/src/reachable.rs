//! Which blobs snapshots reach: every tree below their roots and every
//! chunk those trees name. Shared by prune (what must stay) and copy (what
//! must travel). Each distinct tree is read once, however many snapshots
//! share it, so memory grows with distinct trees and blobs, not snapshots.

use std::collections::HashSet;

use futures::StreamExt;
use lifeboat_format::Id;

use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::repository::Repository;

/// Blobs found so far, and the trees already read.
#[derive(Debug, Default)]
pub struct Reachable {
    /// Every tree and data blob reached.
    pub blobs: HashSet<Id>,
    /// Trees already read (or queued).
    pub trees: HashSet<Id>,
    /// Blobs named but not in the index (their snapshots are damaged).
    pub missing: u64,
}

impl Repository {
    /// Adds everything below `roots` to `reach`, reading trees through `index`.
    pub async fn add_reachable(
        &self,
        index: &MasterIndex,
        roots: impl IntoIterator<Item = Id>,
        reach: &mut Reachable,
    ) -> Result<()> {
        let mut level: Vec<Id> = roots
            .into_iter()
            .filter(|r| reach.trees.insert(*r))
            .collect();
        while !level.is_empty() {
            let mut reads = futures::stream::iter(std::mem::take(&mut level))
                .map(|id| async move { (id, self.read_tree(index, &id, "a snapshot").await) })
                .buffer_unordered(16);
            while let Some((id, tree)) = reads.next().await {
                reach.blobs.insert(id);
                let tree = match tree {
                    Ok(t) => t,
                    Err(RepoError::MissingBlob { .. }) => {
                        reach.missing += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for node in tree.nodes {
                    for c in node.content.into_iter().chain(node.bases) {
                        if reach.blobs.insert(c) && !index.contains(&c) {
                            reach.missing += 1;
                        }
                    }
                    if let Some(sub) = node.subtree
                        && reach.trees.insert(sub)
                    {
                        level.push(sub);
                    }
                }
            }
        }
        Ok(())
    }
}
