//! `check`'s snapshot phases: reads every snapshot and every directory
//! listing they reach, then turns the damaged blobs found so far into
//! findings naming the snapshots and files each one affects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::snapshot::Snapshot;
use lifeboat_format::tree::{NodeKind, Tree};

use super::{Affected, Checker, Damage, Finding, Severity};
use crate::error::Result;
use crate::index::MasterIndex;
use crate::layout;
use crate::progress::Event;
use crate::repository::Repository;

/// Every tree reached, or why it cannot be read.
pub(super) type Trees = HashMap<Id, std::result::Result<Arc<Tree>, Damage>>;

impl Checker<'_> {
    /// Reads every snapshot (unreadable ones are findings), oldest first.
    pub(super) async fn load_snapshots(&mut self) -> Result<Vec<(Id, Snapshot)>> {
        self.progress.event(Event::Phase("checking snapshots"));
        let mut snapshots = Vec::new();
        for id in self.repo.snapshot_ids().await? {
            match self.repo.load_snapshot(&id).await {
                Ok(s) => snapshots.push((id, s)),
                Err(e) if e.is_access_problem() => return Err(e),
                Err(e) => self.add(
                    Severity::Error,
                    layout::snapshot(&id),
                    format!("snapshot is unreadable: {e}"),
                ),
            }
        }
        snapshots.sort_by_key(|(id, s)| (s.time, *id));
        self.report.snapshots = snapshots.len() as u64;
        Ok(snapshots)
    }

    /// Loads every tree the snapshots reach, once.
    pub(super) async fn load_trees(
        &self,
        index: &Arc<MasterIndex>,
        snapshots: &[(Id, Snapshot)],
    ) -> Result<Trees> {
        let mut trees: Trees = HashMap::new();
        let mut frontier: Vec<Id> = snapshots.iter().map(|(_, s)| s.root).collect();
        let (repo, bad) = (self.repo, &self.bad);
        while !frontier.is_empty() {
            frontier.sort();
            frontier.dedup();
            frontier.retain(|id| !trees.contains_key(id));
            let mut loaded = futures::stream::iter(std::mem::take(&mut frontier))
                .map(|id| {
                    let index = index.clone();
                    async move { (id, load_tree_checked(repo, &index, bad, &id).await) }
                })
                .buffer_unordered(16);
            while let Some((id, r)) = loaded.next().await {
                let r = r?;
                if let Ok(t) = &r {
                    frontier.extend(t.nodes.iter().filter_map(|n| n.subtree));
                }
                trees.insert(id, r);
            }
        }
        Ok(trees)
    }
}

/// Loads a tree for `check`: damage (missing, unreadable, in a bad pack) is a
/// value, not an error; only storage access problems abort.
async fn load_tree_checked(
    repo: &Repository,
    index: &MasterIndex,
    bad: &HashMap<Id, Damage>,
    id: &Id,
) -> Result<std::result::Result<Arc<Tree>, Damage>> {
    if let Some(d) = bad.get(id) {
        return Ok(Err(d.clone()));
    }
    match repo.read_tree(index, id, "check").await {
        Ok(t) => Ok(Ok(Arc::new(t))),
        Err(e) if e.is_access_problem() => Err(e),
        Err(e) => Ok(Err(Damage {
            object: index
                .get(id)
                .map(|l| layout::pack(&index.pack(l.pack).id))
                .unwrap_or_else(|| format!("tree {}", id.short())),
            message: match index.get(id) {
                None => format!(
                    "directory listing (tree {}) is not in any index",
                    id.short()
                ),
                Some(_) => format!("directory listing (tree {}) is unreadable: {e}", id.short()),
            },
        })),
    }
}

/// One finding per damage, naming the snapshots and files it affects;
/// damage no snapshot reaches is still an error (lost redundancy).
pub(super) fn damage_findings(
    snapshots: &[(Id, Snapshot)],
    trees: &Trees,
    index: &MasterIndex,
    bad: &HashMap<Id, Damage>,
) -> Vec<Finding> {
    let mut memo: HashMap<Id, Arc<Vec<(PathBuf, Damage)>>> = HashMap::new();
    let mut grouped: BTreeMap<Damage, Vec<Affected>> = BTreeMap::new();
    for (id, s) in snapshots {
        let damage = damage_under(&s.root, trees, index, bad, &mut memo);
        let mut per: BTreeMap<&Damage, Vec<String>> = BTreeMap::new();
        for (path, d) in damage.iter() {
            per.entry(d)
                .or_default()
                .push(format!("/{}", path.display()));
        }
        for (d, mut paths) in per {
            paths.sort();
            paths.dedup();
            grouped.entry(d.clone()).or_default().push(Affected {
                snapshot: *id,
                time: s.time,
                paths,
            });
        }
    }
    let mut findings = Vec::new();
    let mut reported: HashSet<Damage> = HashSet::new();
    for (d, affected) in grouped {
        reported.insert(d.clone());
        findings.push(Finding {
            severity: Severity::Error,
            object: d.object,
            message: d.message,
            affected,
        });
    }
    let mut unused: Vec<&Damage> = bad.values().filter(|d| !reported.contains(*d)).collect();
    unused.sort();
    unused.dedup();
    for d in unused {
        findings.push(Finding {
            severity: Severity::Error,
            object: d.object.clone(),
            message: format!("{} (no snapshot uses the affected data)", d.message),
            affected: Vec::new(),
        });
    }
    findings
}

/// Every damaged path below a tree, memoized per tree id.
fn damage_under(
    tree: &Id,
    trees: &Trees,
    index: &MasterIndex,
    bad: &HashMap<Id, Damage>,
    memo: &mut HashMap<Id, Arc<Vec<(PathBuf, Damage)>>>,
) -> Arc<Vec<(PathBuf, Damage)>> {
    if let Some(m) = memo.get(tree) {
        return m.clone();
    }
    let mut out = Vec::new();
    match trees.get(tree) {
        None => {}
        Some(Err(d)) => out.push((PathBuf::new(), d.clone())),
        Some(Ok(t)) => {
            for n in &t.nodes {
                let name = PathBuf::from(n.name.display());
                match n.kind {
                    NodeKind::File => {
                        for c in n.content.iter().chain(&n.bases) {
                            let d = match bad.get(c) {
                                Some(d) => Some(d.clone()),
                                None if !index.contains(c) => Some(Damage {
                                    object: format!("blob {}", c.short()),
                                    message: format!(
                                        "file content (chunk {}) is not in any index",
                                        c.short()
                                    ),
                                }),
                                None => None,
                            };
                            if let Some(d) = d {
                                out.push((name.clone(), d));
                            }
                        }
                    }
                    NodeKind::Dir => {
                        if let Some(sub) = n.subtree {
                            for (p, d) in damage_under(&sub, trees, index, bad, memo).iter() {
                                out.push((name.join(p), d.clone()));
                            }
                        }
                    }
                    NodeKind::Symlink => {}
                }
            }
        }
    }
    let out = Arc::new(out);
    memo.insert(*tree, out.clone());
    out
}
