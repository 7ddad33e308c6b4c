//! `restore bucket`: a bucket snapshot back into a bucket (another one, a
//! prefix, or the original in place) or into a local directory.
//!
//! A restore is planned first (what to write, what is already equal, what
//! to delete) so that `--dry-run` can print it; applying it writes only what
//! differs, large objects as multipart uploads, several objects at once,
//! each checked against the content hash recorded at backup time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use lifeboat_format::tree::{Node, NodeKind, ObjectAttrs};
use lifeboat_repo::index::MasterIndex;
use lifeboat_repo::progress::{DynProgress, Event};
use lifeboat_repo::walk::PathFilter;
use lifeboat_repo::{Repository, SnapshotEntry};
use serde::Serialize;

use super::client::BucketClient;
use super::error::{BucketError, Result};
use super::keys;
use super::listing::list_all;

/// Objects larger than this are uploaded in parts of this size.
pub const PART_BYTES: usize = 16 << 20;
/// Objects written at once.
const PARALLEL: usize = 8;

/// One object of a snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotObject {
    /// Key relative to the backed-up prefix.
    pub key: String,
    /// The node: content, size, modification time.
    pub node: Node,
    /// What the store kept about it.
    pub attrs: ObjectAttrs,
}

/// Every object of a bucket snapshot, sorted by key.
pub async fn snapshot_objects(
    repo: &Repository,
    index: &MasterIndex,
    entry: &SnapshotEntry,
) -> Result<Vec<SnapshotObject>> {
    let label = format!("snapshot {}", entry.id.short());
    let entries = repo
        .walk_snapshot(index, &entry.snapshot.root, &PathFilter::default(), &label)
        .await?;
    let mut out: Vec<SnapshotObject> = entries
        .into_iter()
        .filter(|e| e.node.kind == NodeKind::File)
        .filter_map(|e| {
            let attrs = e.node.object.clone()?;
            Some(SnapshotObject {
                key: attrs.key.clone(),
                node: e.node,
                attrs,
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Where a restore writes.
#[derive(Clone, Debug)]
pub enum BucketTarget {
    /// A bucket and prefix.
    Bucket(Box<BucketClient>),
    /// A local directory.
    Directory(PathBuf),
}

impl BucketTarget {
    /// How the target is shown.
    pub fn describe(&self) -> String {
        match self {
            BucketTarget::Bucket(c) => c.url().to_string(),
            BucketTarget::Directory(d) => d.display().to_string(),
        }
    }
}

/// Why an object is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteReason {
    /// The target does not have it.
    Missing,
    /// The target has another version.
    Differs,
}

/// An object a restore writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedWrite {
    /// Its key.
    pub key: String,
    /// Why it is written.
    pub reason: WriteReason,
}

/// What a restore will do.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestorePlan {
    /// Where it writes.
    pub target: String,
    /// Objects to write, with why.
    pub write: Vec<PlannedWrite>,
    /// Bytes to write.
    pub write_bytes: u64,
    /// Objects the target already holds as they were.
    pub unchanged: u64,
    /// Objects in the target that the snapshot does not have.
    pub extra: Vec<String>,
    /// Whether `extra` is deleted.
    pub delete_extra: bool,
    /// Keys that cannot be restored into this target, with why.
    pub refused: Vec<String>,
    #[serde(skip)]
    objects: Vec<SnapshotObject>,
}

/// What a restore did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreReport {
    /// Where it wrote.
    pub target: String,
    /// Objects written.
    pub written: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Objects left as they were (already equal).
    pub unchanged: u64,
    /// Objects deleted (with `--delete`).
    pub deleted: u64,
    /// Keys not restored, with why.
    pub refused: Vec<String>,
}

/// Compares the snapshot's objects with the target.
pub async fn plan_restore(
    objects: Vec<SnapshotObject>,
    target: &BucketTarget,
    delete_extra: bool,
) -> Result<RestorePlan> {
    let mut plan = RestorePlan {
        target: target.describe(),
        delete_extra,
        ..RestorePlan::default()
    };
    match target {
        BucketTarget::Bucket(client) => {
            let (present, _) = list_all(client).await?;
            let mut present: BTreeMap<String, (String, u64)> = present
                .into_iter()
                .map(|o| (o.key, (o.etag, o.size)))
                .collect();
            for o in &objects {
                match present.remove(&o.key) {
                    Some((etag, size)) if etag == o.attrs.etag && size == o.node.size => {
                        plan.unchanged += 1;
                    }
                    Some(_) => plan.add(&o.key, WriteReason::Differs),
                    None => plan.add(&o.key, WriteReason::Missing),
                }
            }
            plan.extra = present.into_keys().collect();
        }
        BucketTarget::Directory(dir) => {
            for o in &objects {
                let (rel, marker) = match keys::local_path(&o.key) {
                    Ok(p) => p,
                    Err(e) => {
                        plan.refused.push(e.to_string());
                        continue;
                    }
                };
                let path = dir.join(&rel);
                let same = !marker
                    && std::fs::metadata(&path)
                        .is_ok_and(|m| m.is_file() && m.len() == o.node.size)
                    && file_hash(&path).is_some_and(|h| h == o.attrs.hash);
                if same || (marker && path.is_dir()) {
                    plan.unchanged += 1;
                } else if path.exists() {
                    plan.add(&o.key, WriteReason::Differs);
                } else {
                    plan.add(&o.key, WriteReason::Missing);
                }
            }
        }
    }
    let sizes: BTreeMap<&str, u64> = objects
        .iter()
        .map(|o| (o.key.as_str(), o.node.size))
        .collect();
    plan.write_bytes = plan
        .write
        .iter()
        .filter_map(|w| sizes.get(w.key.as_str()))
        .sum();
    plan.objects = objects;
    Ok(plan)
}

impl RestorePlan {
    fn add(&mut self, key: &str, reason: WriteReason) {
        self.write.push(PlannedWrite {
            key: key.to_string(),
            reason,
        });
    }

    /// Objects to write because the target has another version.
    pub fn differing(&self) -> usize {
        self.write
            .iter()
            .filter(|w| w.reason == WriteReason::Differs)
            .count()
    }
}

fn file_hash(path: &Path) -> Option<String> {
    let mut hasher = blake3::Hasher::new();
    let mut f = std::fs::File::open(path).ok()?;
    std::io::copy(&mut f, &mut hasher).ok()?;
    Some(hasher.finalize().to_hex().to_string())
}

/// Carries out `plan`: writes what differs, deletes extras when the plan
/// says so. Refused keys are reported, not written.
pub async fn apply_restore(
    repo: &Repository,
    index: Arc<MasterIndex>,
    plan: RestorePlan,
    target: &BucketTarget,
    progress: DynProgress,
) -> Result<RestoreReport> {
    let mut report = RestoreReport {
        target: plan.target.clone(),
        unchanged: plan.unchanged,
        refused: plan.refused.clone(),
        ..RestoreReport::default()
    };
    let wanted: std::collections::HashSet<&str> =
        plan.write.iter().map(|w| w.key.as_str()).collect();
    let todo: Vec<SnapshotObject> = plan
        .objects
        .iter()
        .filter(|o| wanted.contains(o.key.as_str()))
        .cloned()
        .collect();
    progress.event(Event::Phase("restoring objects"));
    progress.event(Event::Total {
        items: todo.len() as u64,
        bytes: plan.write_bytes,
    });
    let mut writes = futures::stream::iter(todo)
        .map(|o| {
            let (repo, index, progress) = (repo.clone(), index.clone(), progress.clone());
            async move {
                let size = o.node.size;
                let r = write_object(&repo, &index, &o, target).await;
                progress.event(Event::Advance {
                    items: 1,
                    bytes: size,
                });
                r.map(|_| size)
            }
        })
        .buffer_unordered(PARALLEL);
    while let Some(r) = writes.next().await {
        let size = r?;
        report.written += 1;
        report.bytes += size;
    }
    drop(writes);
    if plan.delete_extra
        && let BucketTarget::Bucket(client) = target
    {
        progress.event(Event::Phase("deleting objects the snapshot does not have"));
        for key in &plan.extra {
            match client.delete(key).await {
                Ok(()) => report.deleted += 1,
                Err(BucketError::Invalid(why)) => {
                    report.refused.push(format!("not deleted: {why}"))
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(report)
}

/// Reads an object's content blob by blob, checking its hash at the end.
struct ContentReader<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    object: &'a SnapshotObject,
    next: usize,
    hasher: blake3::Hasher,
}

impl ContentReader<'_> {
    async fn next_blob(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(id) = self.object.node.content.get(self.next) else {
            let hash = self.hasher.finalize().to_hex().to_string();
            if !self.object.attrs.hash.is_empty() && hash != self.object.attrs.hash {
                return Err(BucketError::Invalid(format!(
                    "object {:?}: the restored content does not match the hash recorded at backup time",
                    self.object.key
                )));
            }
            return Ok(None);
        };
        self.next += 1;
        let blob = self
            .repo
            .read_blob(self.index, id, &format!("object {:?}", self.object.key))
            .await?;
        self.hasher.update(&blob);
        Ok(Some(blob))
    }
}

async fn write_object(
    repo: &Repository,
    index: &MasterIndex,
    o: &SnapshotObject,
    target: &BucketTarget,
) -> Result<()> {
    let mut reader = ContentReader {
        repo,
        index,
        object: o,
        next: 0,
        hasher: blake3::Hasher::new(),
    };
    match target {
        BucketTarget::Directory(dir) => write_file(&mut reader, dir, o).await,
        BucketTarget::Bucket(client) if (o.node.size as usize) <= PART_BYTES => {
            let mut body = Vec::with_capacity(o.node.size as usize);
            while let Some(b) = reader.next_blob().await? {
                body.extend_from_slice(&b);
            }
            client.put(&o.key, body, &o.attrs).await
        }
        BucketTarget::Bucket(client) => {
            let upload = client.start_multipart(&o.key, &o.attrs).await?;
            match upload_parts(client, &upload, &mut reader, o).await {
                Ok(etags) => client.complete_multipart(&o.key, &upload, &etags).await,
                Err(e) => {
                    client.abort_multipart(&o.key, &upload).await;
                    Err(e)
                }
            }
        }
    }
}

async fn upload_parts(
    client: &BucketClient,
    upload: &str,
    reader: &mut ContentReader<'_>,
    o: &SnapshotObject,
) -> Result<Vec<String>> {
    let mut etags = Vec::new();
    let mut part = Vec::with_capacity(PART_BYTES);
    loop {
        let blob = reader.next_blob().await?;
        let end = blob.is_none();
        if let Some(b) = blob {
            part.extend_from_slice(&b);
        }
        while part.len() >= PART_BYTES || (end && !part.is_empty()) {
            let take = part.len().min(PART_BYTES);
            let rest = part.split_off(take);
            let number = u16::try_from(etags.len() + 1).map_err(|_| {
                BucketError::Invalid(format!("object {:?} needs more than 65535 parts", o.key))
            })?;
            etags.push(client.upload_part(&o.key, upload, number, part).await?);
            part = rest;
        }
        if end {
            return Ok(etags);
        }
    }
}

async fn write_file(reader: &mut ContentReader<'_>, dir: &Path, o: &SnapshotObject) -> Result<()> {
    let (rel, marker) = keys::local_path(&o.key)?;
    let path = dir.join(rel);
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| BucketError::Io { path: p, source }
    };
    if marker {
        return tokio::fs::create_dir_all(&path).await.map_err(io(&path));
    }
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io(parent))?;
    }
    // Written beside the file and renamed over it, so a failed restore
    // never leaves half a file under the object's name.
    let tmp = path.with_file_name(format!(
        ".{}.lifeboat-partial",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut file = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
    let written: Result<()> = async {
        use tokio::io::AsyncWriteExt;
        while let Some(b) = reader.next_blob().await? {
            file.write_all(&b).await.map_err(io(&tmp))?;
        }
        file.flush().await.map_err(io(&tmp))?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::from_nanos(u64::try_from(o.node.mtime_ns).unwrap_or_default());
    if let Ok(f) = std::fs::File::options().write(true).open(&tmp) {
        let _ = f.set_modified(mtime);
    }
    tokio::fs::rename(&tmp, &path).await.map_err(io(&path))
}
