//! `copy`: keeps a replica repository (another region or provider) in sync.
//!
//! A replica shares the source's master key and config (chunker seed), so
//! blob, pack and snapshot ids are the same on both sides and objects travel
//! byte for byte, verified as they go: a pack's name is the hash of its
//! bytes, and sealed objects (snapshots, WAL) are authenticated with the key.
//! The replica has its own key slots, so its passphrase is its own. Only
//! what the replica lacks is transferred, so `copy` can run every week (or
//! every hour) and a second run right after the first sends nothing.
//! Write order holds on the replica too: packs, then their index, then the
//! snapshots that need them.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::index::{IndexFile, IndexPack};
use lifeboat_format::keyslot::KdfCost;
use lifeboat_format::object::{self, ObjectKind};
use lifeboat_format::{BlobType, FormatError};
use lifeboat_storage::{DynStorage, PutMode, StorageError};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::index::MasterIndex;
use crate::layout;
use crate::progress::{DynProgress, Event};
use crate::reachable::Reachable;
use crate::repository::{
    Repository, cpu, ensure_no_repository, local_origin, put_config, write_slot,
};

/// Packs per index file written on the replica.
const PACKS_PER_INDEX_FILE: usize = 1000;

/// What `copy` transferred.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots copied.
    pub snapshots_copied: u64,
    /// Snapshots the replica already had.
    pub snapshots_present: u64,
    /// Packs copied, and their bytes.
    pub packs_copied: u64,
    /// Bytes of packs copied.
    pub pack_bytes: u64,
    /// Index files written on the replica.
    pub index_files: u64,
    /// Archived WAL files and restore point markers copied.
    pub wal_copied: u64,
    /// Their bytes.
    pub wal_bytes: u64,
    /// WAL files the replica already had.
    pub wal_present: u64,
    /// Catalog reports (drills, checks, recoveries) copied.
    pub reports_copied: u64,
    /// Erasure ledger entries copied.
    pub erasures_copied: u64,
    /// Audit log entries and checkpoints copied.
    pub audit_copied: u64,
}

impl Repository {
    /// Creates a replica of this repository at `storage`: a key slot for
    /// `passphrase` wrapping this repository's master key, and the same config.
    pub async fn init_replica(
        &self,
        storage: DynStorage,
        location: &str,
        passphrase: &[u8],
        kdf: KdfCost,
    ) -> Result<Repository> {
        ensure_no_repository(&storage, location).await?;
        let slot = Id::random()?;
        write_slot(
            &storage,
            self.key(),
            passphrase,
            &slot,
            kdf,
            local_origin(Some("replica".into())),
        )
        .await?;
        let (mk, json) = (self.key().clone(), self.config().to_json()?);
        let bytes = cpu(move || {
            let mut enc = Encoder::new(Compression::DEFAULT)?;
            object::seal_object(&mk, &mut enc, ObjectKind::Config, b"config", &json)
        })
        .await??;
        put_config(&storage, location, &slot, bytes.into()).await?;
        Repository::open(storage, location, passphrase).await
    }

    /// True if `other` is a replica of this repository (or this one itself):
    /// the same config and the same master key.
    pub fn is_replica(&self, other: &Repository) -> bool {
        let probe = |r: &Repository| {
            r.key()
                .id_key()
                .blob_id(BlobType::Data, b"lifeboat replica probe")
        };
        self.config().id == other.config().id && probe(self) == probe(other)
    }

    /// Copies `snapshots` (all when `None`) with the data they need, and
    /// every archived WAL file, to the replica `target`.
    pub async fn copy_to(
        &self,
        target: &Repository,
        snapshots: Option<Vec<Id>>,
        progress: &DynProgress,
    ) -> Result<CopyReport> {
        if !self.is_replica(target) {
            return Err(RepoError::Invalid(format!(
                "{} is not a replica of {}: it was not created by `lifeboat copy --init` from this \
                 repository, so its keys differ. Copy into an empty location with --init",
                target.location(),
                self.location()
            )));
        }
        let mut report = CopyReport::default();
        progress.event(Event::Phase("comparing snapshots"));
        let wanted = match snapshots {
            Some(ids) => ids,
            None => self.snapshot_ids().await?,
        };
        let present: HashSet<Id> = target.snapshot_ids().await?.into_iter().collect();
        let missing: Vec<Id> = wanted
            .into_iter()
            .filter(|id| !present.contains(id))
            .collect();
        report.snapshots_present = present.len() as u64;

        if !missing.is_empty() {
            progress.event(Event::Phase("loading both indexes"));
            let files = self.read_index_files(progress).await?;
            let marked: HashSet<Id> = self
                .deletion_plans()
                .await?
                .into_iter()
                .flat_map(|(_, p)| p.packs)
                .collect();
            let index = MasterIndex::from_files(&files.files, &marked, false);
            let theirs = target
                .load_index_marked(progress, &HashSet::new(), false)
                .await?
                .index;
            let mut roots = Vec::new();
            for id in &missing {
                roots.push(self.load_snapshot(id).await?.root);
            }
            progress.event(Event::Phase("finding the data to copy"));
            let mut reach = Reachable::default();
            self.add_reachable(&index, roots, &mut reach).await?;
            if reach.missing > 0 {
                return Err(RepoError::Damaged(format!(
                    "{} blob(s) the snapshots need are missing from this repository; \
                     run `lifeboat check` here first",
                    reach.missing
                )));
            }
            let needed: HashSet<Id> = reach
                .blobs
                .iter()
                .filter(|b| !theirs.contains(b))
                .filter_map(|b| index.get(b).map(|l| index.pack(l.pack).id))
                .collect();
            let packs: HashMap<Id, IndexPack> = files
                .files
                .into_iter()
                .flat_map(|(_, f)| f.packs)
                .filter(|p| needed.contains(&p.id))
                .map(|p| (p.id, p))
                .collect();
            self.copy_packs(target, packs, progress, &mut report)
                .await?;
            progress.event(Event::Phase("copying snapshots"));
            for id in &missing {
                let key = layout::snapshot(id);
                self.copy_object(target, &key, |mk, bytes| {
                    object::open_object_with_id(mk, ObjectKind::Snapshot, id, bytes).map(|_| ())
                })
                .await?;
                report.snapshots_copied += 1;
            }
        }
        self.copy_wal(target, progress, &mut report).await?;
        self.copy_reports(target, &mut report).await?;
        self.copy_ledgers(target, &mut report).await?;
        Ok(report)
    }

    /// Copies the catalog reports the replica lacks, so what was proven
    /// travels with the backups.
    async fn copy_reports(&self, target: &Repository, report: &mut CopyReport) -> Result<()> {
        let theirs = target.keys_under(layout::REPORTS).await?;
        for m in self.storage().list(layout::REPORTS).await? {
            let Some(id) = layout::id_from_key(&m.key, layout::REPORTS) else {
                continue;
            };
            if theirs.contains(&m.key) {
                continue;
            }
            self.copy_object(target, &m.key, |mk, bytes| {
                object::open_object_with_id(mk, ObjectKind::Report, &id, bytes).map(|_| ())
            })
            .await?;
            report.reports_copied += 1;
        }
        Ok(())
    }

    /// Copies the erasure ledger (so restores from the replica re-apply
    /// every erasure) and the audit logs (each under its own id; the
    /// replica's own log is never touched), verified as they go.
    async fn copy_ledgers(&self, target: &Repository, report: &mut CopyReport) -> Result<()> {
        let theirs_own = target
            .audit_log_id(false)
            .await?
            .map(|log| layout::audit_log(&log));
        for prefix in [layout::ERASURES, layout::AUDIT] {
            let theirs = target.keys_under(prefix).await?;
            for m in self.storage().list(prefix).await? {
                let key = m.key;
                if key == layout::AUDIT_SELF
                    || theirs_own.as_ref().is_some_and(|own| key.starts_with(own))
                {
                    continue;
                }
                let kind = if prefix == layout::ERASURES {
                    ObjectKind::Erasure
                } else if key.ends_with("/head") || key.contains("/checkpoints/") {
                    ObjectKind::AuditCheckpoint
                } else {
                    ObjectKind::Audit
                };
                let name = key.clone();
                let verify = move |mk: &lifeboat_format::crypto::MasterKey, bytes: &[u8]| {
                    object::open_object(mk, kind, name.as_bytes(), bytes).map(|_| ())
                };
                if key.ends_with("/head") {
                    // A head moves on: the newer one wins.
                    let bytes = self.storage().get(&key, None).await?;
                    verify(self.key(), &bytes).map_err(|e| RepoError::corrupt(&key, e))?;
                    if theirs.contains(&key)
                        && target.storage().get(&key, None).await?.as_ref() == bytes.as_ref()
                    {
                        continue;
                    }
                    target
                        .storage()
                        .put(&key, bytes, PutMode::Overwrite)
                        .await?;
                } else if theirs.contains(&key) {
                    continue;
                } else {
                    self.copy_object(target, &key, verify).await?;
                }
                if prefix == layout::ERASURES {
                    report.erasures_copied += 1;
                } else {
                    report.audit_copied += 1;
                }
            }
        }
        Ok(())
    }

    /// The keys of every object under `prefix`.
    async fn keys_under(&self, prefix: &str) -> Result<HashSet<String>> {
        Ok(self
            .storage()
            .list(prefix)
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect())
    }

    /// Copies whole packs (verified by their hash), then indexes them.
    async fn copy_packs(
        &self,
        target: &Repository,
        packs: HashMap<Id, IndexPack>,
        progress: &DynProgress,
        report: &mut CopyReport,
    ) -> Result<()> {
        progress.event(Event::Phase("copying packs"));
        progress.event(Event::Total {
            items: packs.len() as u64,
            bytes: packs.values().map(|p| p.size).sum(),
        });
        let mut copies = futures::stream::iter(packs.into_values())
            .map(|pack| async move {
                let key = layout::pack(&pack.id);
                let bytes = self.storage().get(&key, None).await?;
                let id = pack.id;
                let intact = cpu({
                    let bytes = bytes.clone();
                    move || Id::of_pack(&bytes) == id
                })
                .await?;
                if !intact {
                    return Err(RepoError::corrupt(
                        key,
                        FormatError::Invalid {
                            what: "pack",
                            reason: "its content does not match its name; run `lifeboat check --read-data`".into(),
                        },
                    ));
                }
                match target.storage().put(&key, bytes, PutMode::CreateOnly).await {
                    Ok(()) | Err(StorageError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(pack)
            })
            .buffer_unordered(4);
        let mut file = IndexFile::default();
        while let Some(pack) = copies.next().await {
            let pack = pack?;
            report.packs_copied += 1;
            report.pack_bytes += pack.size;
            progress.event(Event::Advance {
                items: 1,
                bytes: pack.size,
            });
            file.packs.push(pack);
            if file.packs.len() >= PACKS_PER_INDEX_FILE {
                target
                    .save_object(ObjectKind::Index, std::mem::take(&mut file).encode())
                    .await?;
                report.index_files += 1;
            }
        }
        if !file.packs.is_empty() {
            target.save_object(ObjectKind::Index, file.encode()).await?;
            report.index_files += 1;
        }
        Ok(())
    }

    /// Copies one object after `verify` accepts its bytes.
    async fn copy_object(
        &self,
        target: &Repository,
        key: &str,
        verify: impl FnOnce(
            &lifeboat_format::crypto::MasterKey,
            &[u8],
        ) -> std::result::Result<(), FormatError>,
    ) -> Result<u64> {
        let bytes = self.storage().get(key, None).await?;
        verify(self.key(), &bytes).map_err(|e| RepoError::corrupt(key, e))?;
        let n = bytes.len() as u64;
        match target.storage().put(key, bytes, PutMode::CreateOnly).await {
            Ok(()) | Err(StorageError::AlreadyExists { .. }) => Ok(n),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies every archived WAL file and restore point the replica lacks.
    async fn copy_wal(
        &self,
        target: &Repository,
        progress: &DynProgress,
        report: &mut CopyReport,
    ) -> Result<()> {
        progress.event(Event::Phase("copying archived WAL"));
        for prefix in [layout::WAL, layout::RESTORE_POINTS] {
            let theirs = target.keys_under(prefix).await?;
            let mine = self.storage().list(prefix).await?;
            let (have, todo): (Vec<_>, Vec<_>) =
                mine.into_iter().partition(|m| theirs.contains(&m.key));
            if prefix == layout::WAL {
                report.wal_present += have.len() as u64;
            }
            let mut copies = futures::stream::iter(todo)
                .map(|m| async move {
                    let name = m.key.clone();
                    let n = self
                        .copy_object(target, &m.key, move |mk, bytes| {
                            if prefix == layout::WAL {
                                object::open_object(mk, ObjectKind::Wal, name.as_bytes(), bytes)
                                    .map(|_| ())
                            } else {
                                Ok(())
                            }
                        })
                        .await?;
                    Ok::<_, RepoError>(n)
                })
                .buffer_unordered(8);
            while let Some(n) = copies.next().await {
                report.wal_copied += 1;
                report.wal_bytes += n?;
            }
        }
        Ok(())
    }
}
