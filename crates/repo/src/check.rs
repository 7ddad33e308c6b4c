//! `check`: verifies the repository's structure and, with `read_data`, every
//! byte of every pack. Reports every problem it finds (not just the first)
//! and, for each damaged or missing object, the snapshots and files it affects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lifeboat_format::object::ObjectKind;
use lifeboat_format::pack::{PackEntry, open_blob_with, open_record, read_trailer};
use lifeboat_format::tree::{NodeKind, Tree};
use lifeboat_format::{BlobType, Id};
use serde::Serialize;

use crate::error::Result;
use crate::index::{BlobLocation, MasterIndex};
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::readback::in_sample;
use crate::repository::{Repository, cpu};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data is lost or unreadable.
    Error,
    /// Harmless but worth knowing (e.g. leftovers of an interrupted backup).
    Warning,
}

/// Files of one snapshot affected by a problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Affected {
    /// The snapshot.
    pub snapshot: Id,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Affected paths inside it.
    pub paths: Vec<String>,
}

/// One problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The storage object concerned.
    pub object: String,
    /// What is wrong.
    pub message: String,
    /// Snapshots and files that cannot be fully restored because of it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affected: Vec<Affected>,
}

/// The result of a check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    /// Everything found, errors first.
    pub findings: Vec<Finding>,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Packs in the index.
    pub packs: u64,
    /// Blobs in the index.
    pub blobs: u64,
    /// Bytes of pack data read and verified (with `read_data`).
    pub bytes_read: u64,
    /// Whether every pack was read.
    pub read_data: bool,
    /// Archived PostgreSQL WAL files (verified too with `read_data`).
    pub wal_files: u64,
    /// The percentage of packs read, when not all were.
    pub subset: Option<f64>,
}

impl CheckReport {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }
}

/// What is wrong with a blob, keyed for grouping into findings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Damage {
    object: String,
    message: String,
}

/// Options for [`Repository::check`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Read and verify every pack, not only the structure.
    pub read_data: bool,
    /// With `read_data`: read only this percentage of the packs, chosen at
    /// random each run (so repeated runs cover everything over time).
    pub subset: Option<f64>,
}

impl Repository {
    /// Checks the repository and returns every finding.
    pub async fn check(&self, options: CheckOptions, progress: DynProgress) -> Result<CheckReport> {
        let mut report = CheckReport {
            read_data: options.read_data,
            ..Default::default()
        };
        let mut findings: Vec<Finding> = Vec::new();
        let mut add = |severity, object: String, message: String| {
            findings.push(Finding {
                severity,
                object,
                message,
                affected: Vec::new(),
            })
        };

        progress.event(Event::Phase("loading index"));
        let load = self.load_index(&crate::progress::none()).await?;
        for (key, e) in &load.damaged {
            add(
                Severity::Error,
                key.clone(),
                format!("index file is unreadable: {e}; the blobs it lists are treated as missing"),
            );
        }
        let index = Arc::new(load.index);
        report.packs = index.packs().len() as u64;
        report.blobs = index.blob_count() as u64;

        progress.event(Event::Phase("listing packs"));
        let stored: HashMap<Id, u64> = self
            .storage()
            .list(layout::DATA)
            .await?
            .into_iter()
            .filter_map(|m| layout::id_from_key(&m.key, layout::DATA).map(|id| (id, m.size)))
            .collect();

        // Blobs per pack position, for read-data and for marking lost packs.
        let mut by_pack: Vec<Vec<PackEntry>> = vec![Vec::new(); index.packs().len()];
        for (_, loc) in index.blobs() {
            by_pack[loc.pack as usize].push(loc.entry);
        }
        let mut bad: HashMap<Id, Damage> = HashMap::new();
        let mut deltas: Vec<(String, usize, PackEntry)> = Vec::new();
        let mut readable = Vec::new();
        for (pos, pack) in index.packs().iter().enumerate() {
            let key = layout::pack(&pack.id);
            let problem = match stored.get(&pack.id) {
                None => Some("pack is missing from storage".to_string()),
                Some(&size) if size != pack.size => Some(format!(
                    "pack has {size} bytes but the index says {}: it was truncated or replaced",
                    pack.size
                )),
                Some(_) => None,
            };
            match problem {
                Some(message) => {
                    mark_lost(&mut bad, &by_pack[pos], &key, &message);
                }
                None => readable.push(pos),
            }
        }
        let indexed: HashSet<Id> = index.packs().iter().map(|p| p.id).collect();
        let mut stray: Vec<&Id> = stored.keys().filter(|id| !indexed.contains(id)).collect();
        stray.sort();
        for id in stray {
            add(
                Severity::Warning,
                layout::pack(id),
                "pack is not listed in any index (left by an interrupted backup, or its index is damaged); \
                 no snapshot uses it until it is indexed, and prune will remove it"
                    .into(),
            );
        }

        if options.read_data {
            if let Some(percent) = options.subset {
                let salt = u64::from_le_bytes(lifeboat_format::crypto::random_bytes()?);
                readable.retain(|&pos| in_sample(&index.packs()[pos].id, percent, salt));
                report.subset = Some(percent);
            }
            progress.event(Event::Phase("reading packs"));
            let total: u64 = readable.iter().map(|&p| index.pack(p as u32).size).sum();
            progress.event(Event::Total {
                items: readable.len() as u64,
                bytes: total,
            });
            let by_pack = Arc::new(by_pack);
            let mut reads = futures::stream::iter(readable)
                .map(|pos| {
                    let (index, by_pack) = (index.clone(), by_pack.clone());
                    async move {
                        let pack = index.pack(pos as u32).clone();
                        let key = layout::pack(&pack.id);
                        let bytes = self.storage().get(&key, None).await;
                        let mk = self.key().clone();
                        let entries = by_pack[pos].clone();
                        let checked = match bytes {
                            Err(e) if e.is_access_problem() || e.is_transient() => {
                                return Err(e.into());
                            }
                            Err(e) => Err(format!("pack could not be read: {e}")),
                            Ok(bytes) => {
                                Ok(cpu(move || verify_pack(&mk, &pack, &entries, &bytes)).await?)
                            }
                        };
                        Ok::<_, crate::error::RepoError>((pos, key, checked))
                    }
                })
                .buffer_unordered(4);
            while let Some(r) = reads.next().await {
                let (pos, key, checked) = r?;
                let size = index.pack(pos as u32).size;
                report.bytes_read += size;
                progress.event(Event::Advance {
                    items: 1,
                    bytes: size,
                });
                match checked {
                    Err(message) => {
                        mark_lost(&mut bad, &by_pack[pos], &key, &message);
                    }
                    Ok(v) => {
                        deltas.extend(v.deltas.into_iter().map(|e| (key.clone(), pos, e)));
                        for message in v.pack_problems {
                            add(Severity::Error, key.clone(), message);
                        }
                        for (id, message) in v.bad_blobs {
                            bad.insert(
                                id,
                                Damage {
                                    object: key.clone(),
                                    message,
                                },
                            );
                        }
                    }
                }
            }
        }

        if !deltas.is_empty() {
            progress.event(Event::Phase("decoding delta blobs with their bases"));
            let mut decodes = futures::stream::iter(deltas)
                .map(|(key, pos, entry)| {
                    let index = index.clone();
                    async move {
                        let loc = BlobLocation {
                            pack: pos as u32,
                            entry,
                        };
                        let r = self.read_blob_at(&index, &loc).await;
                        (key, entry.id, r)
                    }
                })
                .buffer_unordered(4);
            while let Some((key, id, r)) = decodes.next().await {
                match r {
                    Ok(_) => {}
                    Err(e) if e.is_access_problem() => return Err(e),
                    Err(e) => {
                        bad.insert(
                            id,
                            Damage {
                                object: key,
                                message: format!(
                                    "delta blob {} cannot be decoded: {e}",
                                    id.short()
                                ),
                            },
                        );
                    }
                }
            }
        }

        progress.event(Event::Phase("checking archived WAL"));
        let wal = self.storage().list(layout::WAL).await?;
        report.wal_files = wal.len() as u64;
        if options.read_data {
            let mut reads = futures::stream::iter(wal)
                .map(|m| async move {
                    let r = match self.storage().get(&m.key, None).await {
                        Ok(bytes) => {
                            let (mk, key) = (self.key().clone(), m.key.clone());
                            cpu(move || {
                                lifeboat_format::object::open_object(
                                    &mk,
                                    ObjectKind::Wal,
                                    key.as_bytes(),
                                    &bytes,
                                )
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                            })
                            .await?
                        }
                        Err(e) if e.is_access_problem() || e.is_transient() => return Err(e.into()),
                        Err(e) => Err(e.to_string()),
                    };
                    Ok::<_, crate::error::RepoError>((m.key, m.size, r))
                })
                .buffer_unordered(4);
            while let Some(r) = reads.next().await {
                let (key, size, r) = r?;
                report.bytes_read += size;
                if let Err(why) = r {
                    add(
                        Severity::Error,
                        key,
                        format!(
                            "WAL file is damaged: {why}; point-in-time recovery cannot pass it"
                        ),
                    );
                }
            }
        }

        progress.event(Event::Phase("checking snapshots"));
        let ids = self.snapshot_ids().await?;
        let mut snapshots = Vec::new();
        for id in ids {
            match self.load_snapshot(&id).await {
                Ok(s) => snapshots.push((id, s)),
                Err(e) if e.is_access_problem() => return Err(e),
                Err(e) => add(
                    Severity::Error,
                    layout::snapshot(&id),
                    format!("snapshot is unreadable: {e}"),
                ),
            }
        }
        snapshots.sort_by_key(|(id, s)| (s.time, *id));
        report.snapshots = snapshots.len() as u64;

        // Load every reachable tree once.
        let mut trees: HashMap<Id, std::result::Result<Arc<Tree>, Damage>> = HashMap::new();
        let mut frontier: Vec<Id> = snapshots.iter().map(|(_, s)| s.root).collect();
        while !frontier.is_empty() {
            frontier.sort();
            frontier.dedup();
            frontier.retain(|id| !trees.contains_key(id));
            let mut loaded = futures::stream::iter(std::mem::take(&mut frontier))
                .map(|id| {
                    let index = index.clone();
                    let bad = &bad;
                    async move { (id, load_tree_checked(self, &index, bad, &id).await) }
                })
                .buffer_unordered(16);
            while let Some((id, r)) = loaded.next().await {
                let r = r?;
                if let Ok(t) = &r {
                    for n in &t.nodes {
                        if let Some(sub) = n.subtree {
                            frontier.push(sub);
                        }
                    }
                }
                trees.insert(id, r);
            }
        }

        // Which files each damage affects, per snapshot.
        let mut memo: HashMap<Id, Arc<Vec<(PathBuf, Damage)>>> = HashMap::new();
        let mut grouped: BTreeMap<Damage, Vec<Affected>> = BTreeMap::new();
        for (id, s) in &snapshots {
            let damage = damage_under(&s.root, &trees, &index, &bad, &mut memo);
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
        // Damaged data nobody uses is still worth an error: it is lost redundancy.
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
        progress.event(Event::Phase(
            "checking pins, plans, reports and running records",
        ));
        findings.extend(self.check_catalog(Utc::now()).await?);
        findings.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.object.cmp(&b.object)));
        findings.dedup();
        report.findings = findings;
        Ok(report)
    }
}

/// Marks every blob of a pack as lost for the same reason.
fn mark_lost(bad: &mut HashMap<Id, Damage>, entries: &[PackEntry], object: &str, message: &str) {
    for e in entries {
        bad.insert(
            e.id,
            Damage {
                object: object.to_string(),
                message: message.to_string(),
            },
        );
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

/// Every damaged path below a tree, memoized per tree id.
fn damage_under(
    tree: &Id,
    trees: &HashMap<Id, std::result::Result<Arc<Tree>, Damage>>,
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

/// What reading one whole pack found.
struct PackVerdict {
    pack_problems: Vec<String>,
    bad_blobs: Vec<(Id, String)>,
    /// Delta blobs whose seal held, to decode once their bases can be read.
    deltas: Vec<PackEntry>,
}

fn verify_pack(
    key: &lifeboat_format::crypto::MasterKey,
    pack: &crate::index::PackInfo,
    entries: &[PackEntry],
    bytes: &[u8],
) -> PackVerdict {
    let mut v = PackVerdict {
        pack_problems: Vec::new(),
        bad_blobs: Vec::new(),
        deltas: Vec::new(),
    };
    if let Err(e) = read_trailer(key, bytes) {
        v.pack_problems
            .push(format!("pack trailer is unreadable: {e}"));
    }
    let subkey = key.subkey(&pack.salt);
    for e in entries {
        let (s, end) = (e.offset as usize, e.end() as usize);
        let result = match bytes.get(s..end) {
            None => Err(format!(
                "{} blob {} lies beyond the end of the pack",
                e.blob_type.name(),
                e.id.short()
            )),
            Some(record) if e.blob_type == BlobType::Delta => open_record(&subkey, e, record)
                .map(|_| v.deltas.push(*e))
                .map_err(|err| format!("delta blob {} is damaged: {err}", e.id.short())),
            Some(record) => open_blob_with(&subkey, key, e, record)
                .map(|_| ())
                .map_err(|err| {
                    format!(
                        "{} blob {} is damaged: {err}",
                        e.blob_type.name(),
                        e.id.short()
                    )
                }),
        };
        if let Err(m) = result {
            v.bad_blobs.push((e.id, m));
        }
    }
    // Damage outside every blob and the trailer still shows in the pack's hash.
    let actual = Id::of_pack(bytes);
    if actual != pack.id && v.bad_blobs.is_empty() && v.pack_problems.is_empty() {
        v.pack_problems.push(format!(
            "pack content does not match its name (hash {}): it was altered or damaged",
            actual.short()
        ));
    }
    v
}
