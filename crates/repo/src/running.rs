//! Who is working on the repository right now, without blocking anyone.
//!
//! Backups take no lock. Each writes a record under `running/` before it
//! loads the index, names in it the deletion plans it saw (their packs it
//! leaves alone), and rewrites it every minute until it ends. Prune reads
//! these records and postpones deleting the packs of a plan while a live
//! backup may still be using them. Only prune itself takes a lock
//! (`locks/prune`), so two prunes never decide about the same packs at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use lifeboat_format::Id;
use lifeboat_format::compress::{Compression, Encoder};
use lifeboat_format::maintenance::{
    BackupInProgress, DeletionPlan, RUNNING_REFRESH_SECS, RUNNING_STALE_AFTER_SECS,
};
use lifeboat_format::object::{self, ObjectKind};
use lifeboat_storage::{PutMode, StorageError};
use tokio::task::JoinHandle;

use crate::error::{RepoError, Result};
use crate::layout;
use crate::repository::{Repository, cpu, local_origin};

/// A record under `running/`, as read back.
#[derive(Debug)]
pub struct RunningEntry {
    /// Its storage key.
    pub key: String,
    /// The record, or why it could not be read.
    pub record: Result<BackupInProgress>,
}

/// A record kept fresh by a background task until it is dropped or ended.
struct Heartbeat {
    repo: Repository,
    key: String,
    record: Arc<Mutex<BackupInProgress>>,
    task: Option<JoinHandle<()>>,
}

impl Heartbeat {
    fn record(what: &str) -> BackupInProgress {
        let now = Utc::now();
        BackupInProgress {
            started: now,
            refreshed: now,
            host: local_origin(None).host,
            pid: std::process::id(),
            what: what.to_string(),
            seen_plans: None,
        }
    }

    /// Starts refreshing `record` at `key` (already written once).
    fn start(repo: &Repository, key: String, record: BackupInProgress) -> Self {
        let record = Arc::new(Mutex::new(record));
        let task = {
            let (repo, key, record) = (repo.clone(), key.clone(), record.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(RUNNING_REFRESH_SECS)).await;
                    let current = match record.lock() {
                        Ok(mut r) => {
                            r.refreshed = Utc::now();
                            r.clone()
                        }
                        Err(_) => return,
                    };
                    // A missed refresh is retried a minute later; fifteen in a
                    // row would be needed before anyone takes the record as stale.
                    let _ = write_record(&repo, &key, &current, PutMode::Overwrite).await;
                }
            })
        };
        Self {
            repo: repo.clone(),
            key,
            record,
            task: Some(task),
        }
    }

    async fn update(&self, change: impl FnOnce(&mut BackupInProgress)) -> Result<()> {
        let current = {
            let mut r = self
                .record
                .lock()
                .map_err(|_| RepoError::Task("record lock poisoned".into()))?;
            change(&mut r);
            r.refreshed = Utc::now();
            r.clone()
        };
        write_record(&self.repo, &self.key, &current, PutMode::Overwrite).await
    }

    async fn end(mut self) -> Result<()> {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        Ok(self
            .repo
            .storage()
            .delete(&self.key, lifeboat_storage::IfMissing::Ignore)
            .await?)
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            // Ended without `end` (an error or a cancelled backup): remove the
            // record in the background if a runtime is still there; otherwise
            // it goes stale and is ignored after RUNNING_STALE_AFTER_SECS.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let (storage, key) = (self.repo.storage().clone(), self.key.clone());
                rt.spawn(async move {
                    let _ = storage
                        .delete(&key, lifeboat_storage::IfMissing::Ignore)
                        .await;
                });
            }
        }
    }
}

async fn write_record(
    repo: &Repository,
    key: &str,
    record: &BackupInProgress,
    mode: PutMode,
) -> Result<()> {
    let (mk, name, payload) = (repo.key().clone(), key.to_string(), record.to_json()?);
    let bytes = cpu(move || {
        let mut enc = Encoder::new(Compression::DEFAULT)?;
        object::seal_object(
            &mk,
            &mut enc,
            ObjectKind::Running,
            name.as_bytes(),
            &payload,
        )
    })
    .await??;
    repo.storage().put(key, Bytes::from(bytes), mode).await?;
    Ok(())
}

async fn read_record(repo: &Repository, key: &str) -> Result<BackupInProgress> {
    let bytes = repo.storage().get(key, None).await?;
    let (mk, name) = (repo.key().clone(), key.to_string());
    cpu(move || {
        let payload = object::open_object(&mk, ObjectKind::Running, name.as_bytes(), &bytes)
            .map_err(|e| RepoError::corrupt(name.clone(), e))?;
        BackupInProgress::from_json(&payload).map_err(|e| RepoError::corrupt(name, e))
    })
    .await?
}

/// A registered backup: its record stays fresh until [`RunningBackup::end`].
pub struct RunningBackup {
    heartbeat: Heartbeat,
}

impl RunningBackup {
    /// Removes the record (the backup's snapshot is written, or it gave up).
    pub async fn end(self) -> Result<()> {
        self.heartbeat.end().await
    }
}

/// The prune lock, held until [`PruneLock::release`].
pub struct PruneLock {
    heartbeat: Heartbeat,
}

impl PruneLock {
    /// Releases the lock.
    pub async fn release(self) -> Result<()> {
        self.heartbeat.end().await
    }
}

/// True if `record` was left by a process that no longer runs: not refreshed
/// for too long, or from this host with its process gone.
fn abandoned(record: &BackupInProgress) -> bool {
    record.is_stale(Utc::now())
        || (record.host == local_origin(None).host
            && record.pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{}", record.pid)).exists())
}

impl Repository {
    /// Registers a backup of `what`: writes its record, lists the deletion
    /// plans, and notes them in the record. Returns the registration and the
    /// packs those plans mark, which the backup must not deduplicate against.
    pub async fn register_backup(&self, what: &str) -> Result<(RunningBackup, HashSet<Id>)> {
        let key = layout::running(&Id::random()?);
        let record = Heartbeat::record(what);
        // Written before the plans are listed: a prune that lists records
        // before this write wrote its plan before our listing, so we see it.
        write_record(self, &key, &record, PutMode::CreateOnly).await?;
        let heartbeat = Heartbeat::start(self, key, record);
        // An unreadable plan is skipped: prune refuses to run while one
        // exists, so its packs are never deleted and may be reused.
        let plans = self.readable_deletion_plans().await?;
        let seen: Vec<Id> = plans.iter().map(|(id, _)| *id).collect();
        heartbeat.update(|r| r.seen_plans = Some(seen)).await?;
        let marked = plans
            .into_iter()
            .flat_map(|(_, p)| p.packs.into_iter())
            .collect();
        Ok((RunningBackup { heartbeat }, marked))
    }

    /// Every deletion plan. An unreadable plan is an error: its packs cannot
    /// be told apart, and guessing could lose data.
    pub async fn deletion_plans(&self) -> Result<Vec<(Id, DeletionPlan)>> {
        self.load_deletion_plans(false).await
    }

    /// Every readable deletion plan (damaged ones skipped); for backups,
    /// which must not stop because of prune's bookkeeping.
    pub async fn readable_deletion_plans(&self) -> Result<Vec<(Id, DeletionPlan)>> {
        self.load_deletion_plans(true).await
    }

    async fn load_deletion_plans(&self, skip_damaged: bool) -> Result<Vec<(Id, DeletionPlan)>> {
        let ids = self.ids_under(layout::PRUNE).await?;
        let mut loaded = futures::stream::iter(ids)
            .map(|id| async move {
                let key = layout::deletion_plan(&id);
                let payload = self
                    .load_object(ObjectKind::DeletionPlan, &key, &id)
                    .await?;
                let plan =
                    DeletionPlan::from_json(&payload).map_err(|e| RepoError::corrupt(key, e))?;
                Ok::<_, RepoError>((id, plan))
            })
            .buffer_unordered(16);
        let mut out = Vec::new();
        while let Some(r) = loaded.next().await {
            match r {
                Ok(p) => out.push(p),
                // Deleted by a prune finishing it while we listed: nothing to avoid.
                Err(RepoError::Storage(e)) if e.is_not_found() => {}
                Err(e) if skip_damaged && !e.is_access_problem() => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|(id, p)| (p.time, *id));
        Ok(out)
    }

    /// Every backup-in-progress record, readable or not.
    pub async fn running_backups(&self) -> Result<Vec<RunningEntry>> {
        let keys: Vec<String> = self
            .storage()
            .list(layout::RUNNING)
            .await?
            .into_iter()
            .map(|m| m.key)
            .filter(|k| layout::id_from_key(k, layout::RUNNING).is_some())
            .collect();
        let mut loaded = futures::stream::iter(keys)
            .map(|key| async move {
                let record = read_record(self, &key).await;
                RunningEntry { key, record }
            })
            .buffer_unordered(16);
        let mut out = Vec::new();
        while let Some(e) = loaded.next().await {
            match e.record {
                // Ended while we listed.
                Err(RepoError::Storage(s)) if s.is_not_found() => {}
                // The store itself is failing: stop rather than guess.
                Err(err) if err.is_access_problem() => return Err(err),
                record => out.push(RunningEntry { key: e.key, record }),
            }
        }
        Ok(out)
    }

    /// Takes the prune lock, taking over one left by a dead process.
    pub async fn lock_prune(&self) -> Result<PruneLock> {
        let key = layout::PRUNE_LOCK.to_string();
        for _ in 0..2 {
            let record = Heartbeat::record("prune");
            match write_record(self, &key, &record, PutMode::CreateOnly).await {
                Ok(()) => {
                    return Ok(PruneLock {
                        heartbeat: Heartbeat::start(self, key, record),
                    });
                }
                Err(RepoError::Storage(StorageError::AlreadyExists { .. })) => {}
                Err(e) => return Err(e),
            }
            match read_record(self, &key).await {
                Ok(holder) if !abandoned(&holder) => {
                    return Err(RepoError::Locked {
                        what: "prune".into(),
                        location: self.location().into(),
                        holder: format!(
                            "process {} on {} (since {}, last seen {})",
                            holder.pid,
                            holder.host,
                            holder.started.format("%Y-%m-%d %H:%M:%S UTC"),
                            holder.refreshed.format("%H:%M:%S UTC")
                        ),
                        stale_after: format!("{} minutes", RUNNING_STALE_AFTER_SECS / 60),
                    });
                }
                // Abandoned, unreadable (a torn write cannot happen; a forged
                // one only costs a prune run) or gone: take it over.
                _ => {
                    self.storage()
                        .delete(&key, lifeboat_storage::IfMissing::Ignore)
                        .await?
                }
            }
        }
        Err(RepoError::Invalid(
            "another prune took the lock at the same moment; run again".into(),
        ))
    }
}

/// True if the record belongs to a backup that is still running.
pub fn is_live(record: &BackupInProgress) -> bool {
    !abandoned(record)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn repo() -> Repository {
        crate::repository::memory_repository().await.unwrap()
    }

    fn record(host: &str, pid: u32, refreshed_ago: chrono::Duration) -> BackupInProgress {
        let then = Utc::now() - refreshed_ago;
        BackupInProgress {
            started: then,
            refreshed: then,
            host: host.into(),
            pid,
            what: "prune".into(),
            seen_plans: None,
        }
    }

    #[tokio::test]
    async fn the_prune_lock_is_exclusive_until_released() {
        let r = repo().await;
        let held = r.lock_prune().await.unwrap();
        match r.lock_prune().await {
            Err(RepoError::Locked { holder, .. }) => {
                assert!(holder.contains(&std::process::id().to_string()), "{holder}")
            }
            other => panic!("second lock: {:?}", other.map(|_| ())),
        }
        held.release().await.unwrap();
        r.lock_prune().await.unwrap().release().await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_left_by_a_dead_process_is_taken_over_and_a_live_one_is_not() {
        let r = repo().await;
        let key = layout::PRUNE_LOCK;
        let here = local_origin(None).host;
        let cases = [
            // Not refreshed for an hour, anywhere: stale.
            (record("elsewhere", 1, chrono::Duration::hours(1)), true),
            // Fresh, on this host, by a process that does not exist.
            (record(&here, u32::MAX, chrono::Duration::zero()), true),
            // Fresh, on another host: it may be running there.
            (record("elsewhere", 1, chrono::Duration::zero()), false),
        ];
        for (rec, taken) in cases {
            write_record(&r, key, &rec, PutMode::Overwrite)
                .await
                .unwrap();
            assert_eq!(abandoned(&rec), taken, "{rec:?}");
            let got = r.lock_prune().await;
            assert_eq!(got.is_ok(), taken, "{rec:?}");
            if let Ok(lock) = got {
                lock.release().await.unwrap();
            }
        }
        // An unreadable lock record cannot hold anyone: it is taken over.
        r.storage()
            .put(key, Bytes::from_static(b"garbage"), PutMode::Overwrite)
            .await
            .unwrap();
        r.lock_prune().await.unwrap().release().await.unwrap();
        assert!(
            r.storage().get(key, None).await.is_err(),
            "lock left behind"
        );
    }

    #[tokio::test]
    async fn a_registered_backup_records_the_plans_it_saw_and_ends_without_a_trace() {
        let r = repo().await;
        let plan = DeletionPlan {
            time: Utc::now(),
            by: "test".into(),
            packs: vec![Id::from_bytes([3; 32])],
            bytes: 10,
        };
        let (plan_id, _) = r
            .save_object(ObjectKind::DeletionPlan, plan.to_json().unwrap())
            .await
            .unwrap();
        let (running, marked) = r.register_backup("backup of /srv").await.unwrap();
        assert_eq!(marked, HashSet::from([Id::from_bytes([3; 32])]));
        let listed = r.running_backups().await.unwrap();
        assert_eq!(listed.len(), 1);
        let rec = listed[0].record.as_ref().unwrap();
        assert_eq!(rec.what, "backup of /srv");
        assert_eq!(rec.seen_plans, Some(vec![plan_id]));
        assert!(is_live(rec));
        assert!(!rec.may_use(&plan_id));
        running.end().await.unwrap();
        assert!(r.running_backups().await.unwrap().is_empty());
    }
}
