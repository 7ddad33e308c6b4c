//! The audit log in the repository: appending an entry to this
//! repository's own log (create-only, numbered, chained to its predecessor,
//! the head checkpoint rewritten after it), and reading every log back with
//! its chain, head and checkpoints verified, so that an entry edited,
//! deleted, moved, or cut off the end is named.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use lifeboat_format::Id;
use lifeboat_format::audit::{AuditCheckpoint, AuditEntry};
use lifeboat_format::chain::chain_hash;
use lifeboat_format::object::ObjectKind;
use lifeboat_storage::{PutMode, StorageError};
use serde::Serialize;

use crate::chains::{entry_key, entry_number};
use crate::error::{RepoError, Result};
use crate::layout;
use crate::repository::Repository;

/// A periodic checkpoint is kept (create-only) every this many entries;
/// the head checkpoint follows every entry.
pub const CHECKPOINT_EVERY: u64 = 64;

/// What a caller records: the entry without its place in the chain.
#[derive(Clone, Debug, Default)]
pub struct AuditRecord {
    /// Who (`user@host`, or a dashboard user).
    pub actor: String,
    /// From where (the host, or a client's address).
    pub from: String,
    /// The verb.
    pub action: String,
    /// Its arguments, without passwords.
    pub args: Vec<String>,
    /// `ok`, `failed` or `refused`.
    pub outcome: String,
    /// The exit code.
    pub exit: u8,
    /// Why it failed.
    pub error: Option<String>,
    /// Facts about the action.
    pub details: BTreeMap<String, String>,
}

/// A problem found in an audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditProblem {
    /// The log.
    pub log: String,
    /// The first entry number concerned.
    pub seq: u64,
    /// The storage key concerned.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

/// One audit log as read.
#[derive(Clone, Debug, Serialize)]
pub struct AuditLog {
    /// Its id.
    pub log: String,
    /// Whether it is this repository's own log (the others came by `copy`).
    pub own: bool,
    /// Its readable entries, in order.
    pub entries: Vec<AuditEntry>,
    /// Its head checkpoint, when readable.
    pub head: Option<AuditCheckpoint>,
    /// Periodic checkpoints found.
    pub checkpoints: u64,
    /// What is wrong with it, first first.
    pub problems: Vec<AuditProblem>,
}

impl Repository {
    /// This repository's own audit log id; with `create`, one is made when
    /// there is none yet.
    pub async fn audit_log_id(&self, create: bool) -> Result<Option<String>> {
        for _ in 0..3 {
            if let Some(payload) = self
                .get_named(layout::AUDIT_SELF, ObjectKind::AuditCheckpoint)
                .await?
            {
                let id = String::from_utf8(payload)
                    .ok()
                    .filter(|s| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(|| {
                        RepoError::Damaged(format!("{} does not name a log", layout::AUDIT_SELF))
                    })?;
                return Ok(Some(id));
            }
            if !create {
                return Ok(None);
            }
            let id = Id::random()?.to_hex()[..16].to_string();
            match self
                .put_named(
                    layout::AUDIT_SELF,
                    ObjectKind::AuditCheckpoint,
                    id.clone().into_bytes(),
                    PutMode::CreateOnly,
                )
                .await?
            {
                Ok(()) => return Ok(Some(id)),
                // Another process named the log first: use theirs.
                Err(StorageError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RepoError::Failed("could not name the audit log".into()))
    }

    /// Appends `record` to this repository's own log. A log whose end was
    /// cut off continues after its head checkpoint, so the gap stays
    /// visible instead of being filled by new entries.
    pub async fn append_audit(&self, record: AuditRecord) -> Result<AuditEntry> {
        let log = self
            .audit_log_id(true)
            .await?
            .ok_or_else(|| RepoError::Failed("the audit log has no id".into()))?;
        let prefix = layout::audit_log(&log);
        for _ in 0..5 {
            let last = self.last_audit_number(&prefix).await?;
            let head = self.audit_head(&log).await.ok().flatten();
            let next = last.max(head.as_ref().map_or(0, |h| h.seq)) + 1;
            let prev = if last + 1 == next && last > 0 {
                match self
                    .get_named(&entry_key(&prefix, last), ObjectKind::Audit)
                    .await
                {
                    Ok(Some(payload)) => chain_hash(&payload),
                    // Deleted or damaged: chain to nothing; `audit verify`
                    // names the entry either way.
                    _ => String::new(),
                }
            } else {
                head.as_ref()
                    .filter(|h| h.seq + 1 == next)
                    .map(|h| h.hash.clone())
                    .unwrap_or_default()
            };
            let entry = AuditEntry {
                seq: next,
                prev,
                log: log.clone(),
                time: Utc::now(),
                actor: record.actor.clone(),
                from: record.from.clone(),
                action: record.action.clone(),
                args: record.args.clone(),
                outcome: record.outcome.clone(),
                exit: record.exit,
                error: record.error.clone(),
                details: record.details.clone(),
            };
            let payload = entry.to_json()?;
            let hash = chain_hash(&payload);
            match self
                .put_named(
                    &entry_key(&prefix, next),
                    ObjectKind::Audit,
                    payload,
                    PutMode::CreateOnly,
                )
                .await?
            {
                Ok(()) => {}
                // Another process took this number: read again and retry.
                Err(StorageError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            let checkpoint = AuditCheckpoint::new(self.key(), &log, next, &hash, entry.time);
            let json = checkpoint.to_json()?;
            if next % CHECKPOINT_EVERY == 0 {
                let key = entry_key(&layout::audit_checkpoints(&log), next);
                match self
                    .put_named(
                        &key,
                        ObjectKind::AuditCheckpoint,
                        json.clone(),
                        PutMode::CreateOnly,
                    )
                    .await?
                {
                    Ok(()) | Err(StorageError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // A concurrent writer may leave an older head behind: a head
            // is a lower bound of the log's length, never more.
            self.put_named(
                &layout::audit_head(&log),
                ObjectKind::AuditCheckpoint,
                json,
                PutMode::Overwrite,
            )
            .await??;
            return Ok(entry);
        }
        Err(RepoError::Failed(
            "other processes were recording audit entries at the same moment; run again".into(),
        ))
    }

    /// The highest entry number under `prefix` (0 when there is none).
    async fn last_audit_number(&self, prefix: &str) -> Result<u64> {
        Ok(self
            .storage()
            .list(prefix)
            .await?
            .into_iter()
            .filter_map(|m| entry_number(prefix, &m.key))
            .max()
            .unwrap_or(0))
    }

    /// The head checkpoint of `log`, if there is one.
    async fn audit_head(&self, log: &str) -> Result<Option<AuditCheckpoint>> {
        let key = layout::audit_head(log);
        match self.get_named(&key, ObjectKind::AuditCheckpoint).await? {
            Some(p) => Ok(Some(
                AuditCheckpoint::from_json(&p).map_err(|e| RepoError::corrupt(key, e))?,
            )),
            None => Ok(None),
        }
    }

    /// Reads and verifies every audit log in the repository (its own first).
    pub async fn audit_logs(&self) -> Result<Vec<AuditLog>> {
        let own = self.audit_log_id(false).await?;
        let ids: BTreeSet<String> = self
            .storage()
            .list(layout::AUDIT)
            .await?
            .into_iter()
            .filter_map(|m| {
                let rest = m.key.strip_prefix(layout::AUDIT)?;
                let (id, _) = rest.split_once('/')?;
                Some(id.to_string())
            })
            .collect();
        let mut logs = Vec::new();
        for id in ids {
            logs.push(
                self.read_audit_log(&id, own.as_deref() == Some(&id))
                    .await?,
            );
        }
        logs.sort_by_key(|l| !l.own);
        Ok(logs)
    }

    async fn read_audit_log(&self, log: &str, own: bool) -> Result<AuditLog> {
        let prefix = layout::audit_log(log);
        let chain = self
            .read_chain(&prefix, ObjectKind::Audit, AuditEntry::from_json)
            .await?;
        let problem = |seq: u64, key: String, problem: String| AuditProblem {
            log: log.to_string(),
            seq,
            key,
            problem,
        };
        let mut problems: Vec<AuditProblem> = chain
            .problems
            .into_iter()
            .map(|(key, seq, why)| problem(seq, key, why))
            .collect();
        for (e, _) in &chain.entries {
            if e.log != log {
                problems.push(problem(
                    e.seq,
                    entry_key(&prefix, e.seq),
                    format!("entry {} belongs to log {}: it was moved", e.seq, e.log),
                ));
            }
        }
        let hashes: BTreeMap<u64, String> = chain
            .entries
            .iter()
            .map(|(e, p)| (e.seq, chain_hash(p)))
            .collect();
        let last = hashes.keys().next_back().copied().unwrap_or(0);
        let highest_key = chain.highest;
        let mut checks: Vec<(String, AuditCheckpoint)> = Vec::new();
        let head_key = layout::audit_head(log);
        let head = match self.audit_head(log).await {
            Ok(h) => h,
            Err(e) => {
                problems.push(problem(
                    last + 1,
                    head_key.clone(),
                    format!("the head checkpoint is unreadable ({e}): it was edited or replaced"),
                ));
                None
            }
        };
        match &head {
            Some(h) => checks.push((head_key, h.clone())),
            None if last > 0 && problems.is_empty() => problems.push(problem(
                last,
                head_key,
                "the head checkpoint is missing: it was deleted (the next entry rewrites it)"
                    .into(),
            )),
            None => {}
        }
        let cp_prefix = layout::audit_checkpoints(log);
        let mut checkpoints = 0;
        for m in self.storage().list(&cp_prefix).await? {
            checkpoints += 1;
            match self.get_named(&m.key, ObjectKind::AuditCheckpoint).await {
                Ok(Some(p)) => match AuditCheckpoint::from_json(&p) {
                    Ok(c) => checks.push((m.key, c)),
                    Err(e) => {
                        problems.push(problem(0, m.key, format!("checkpoint unreadable: {e}")))
                    }
                },
                Ok(None) => {}
                Err(e) => problems.push(problem(0, m.key, format!("checkpoint unreadable: {e}"))),
            }
        }
        for (key, c) in &checks {
            if c.log != log || !c.signed_by(self.key()) {
                problems.push(problem(
                    c.seq,
                    key.clone(),
                    "a checkpoint's signature does not match: it was forged or edited".into(),
                ));
            } else if c.seq > highest_key {
                let first = highest_key + 1;
                let what = if c.seq == first {
                    format!("entry {first} is missing")
                } else {
                    format!("entries {first} to {} are missing", c.seq)
                };
                problems.push(problem(
                    first,
                    entry_key(&prefix, first),
                    format!(
                        "{what}: the log was cut short (a checkpoint of {} records entry {})",
                        c.time.format("%Y-%m-%d %H:%M:%S UTC"),
                        c.seq
                    ),
                ));
            } else if let Some(h) = hashes.get(&c.seq)
                && *h != c.hash
            {
                problems.push(problem(
                    c.seq,
                    entry_key(&prefix, c.seq),
                    format!(
                        "entry {} differs from what was recorded at {}: it was changed",
                        c.seq,
                        c.time.format("%Y-%m-%d %H:%M:%S UTC")
                    ),
                ));
            }
        }
        problems.sort_by_key(|p| p.seq);
        problems.dedup_by(|a, b| a.seq == b.seq && a.problem == b.problem);
        Ok(AuditLog {
            log: log.to_string(),
            own,
            entries: chain.entries.into_iter().map(|(e, _)| e).collect(),
            head,
            checkpoints,
            problems,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;

    async fn repo_with(n: usize) -> Repository {
        let r = crate::repository::memory_repository().await.unwrap();
        for i in 0..n {
            r.append_audit(AuditRecord {
                actor: "alice@db1".into(),
                from: "db1".into(),
                action: format!("backup {i}"),
                outcome: "ok".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        r
    }

    async fn first_problem(r: &Repository) -> Option<AuditProblem> {
        r.audit_logs()
            .await
            .unwrap()
            .into_iter()
            .flat_map(|l| l.problems)
            .next()
    }

    /// Rewrites entry `seq` as an insider with the key would.
    async fn rewrite(r: &Repository, seq: u64, edit: impl FnOnce(&mut AuditEntry)) {
        let key = entry_key(&own_prefix(r).await, seq);
        let payload = r.get_named(&key, ObjectKind::Audit).await.unwrap().unwrap();
        let mut e = AuditEntry::from_json(&payload).unwrap();
        edit(&mut e);
        r.storage()
            .delete(&key, lifeboat_storage::IfMissing::Ignore)
            .await
            .unwrap();
        r.put_named(
            &key,
            ObjectKind::Audit,
            e.to_json().unwrap(),
            PutMode::CreateOnly,
        )
        .await
        .unwrap()
        .unwrap();
    }

    async fn own_prefix(r: &Repository) -> String {
        layout::audit_log(&r.audit_log_id(false).await.unwrap().unwrap())
    }

    #[tokio::test]
    async fn an_intact_log_verifies_and_lists_in_order() {
        let r = repo_with(5).await;
        let logs = r.audit_logs().await.unwrap();
        assert_eq!(logs.len(), 1);
        assert!(logs[0].own);
        assert!(logs[0].problems.is_empty(), "{:?}", logs[0].problems);
        let actions: Vec<_> = logs[0].entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            ["backup 0", "backup 1", "backup 2", "backup 3", "backup 4"]
        );
        assert_eq!(logs[0].head.as_ref().map(|h| h.seq), Some(5));
    }

    #[tokio::test]
    async fn an_entry_rewritten_with_the_key_is_named() {
        let r = repo_with(5).await;
        rewrite(&r, 3, |e| e.outcome = "failed".into()).await;
        let p = first_problem(&r).await.unwrap();
        assert_eq!(p.seq, 3, "{p:?}");
        assert!(
            p.problem.contains("entry 4 does not follow entry 3"),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn the_last_entry_rewritten_with_the_key_is_caught_by_the_head() {
        let r = repo_with(4).await;
        rewrite(&r, 4, |e| e.actor = "mallory@db1".into()).await;
        let p = first_problem(&r).await.unwrap();
        assert_eq!(p.seq, 4, "{p:?}");
        assert!(p.problem.contains("it was changed"), "{p:?}");
    }

    #[tokio::test]
    async fn a_cut_off_end_is_named_and_later_entries_leave_the_gap_visible() {
        let r = repo_with(6).await;
        let prefix = own_prefix(&r).await;
        for seq in [5, 6] {
            r.storage()
                .delete(
                    &entry_key(&prefix, seq),
                    lifeboat_storage::IfMissing::Ignore,
                )
                .await
                .unwrap();
        }
        let p = first_problem(&r).await.unwrap();
        assert_eq!(p.seq, 5, "{p:?}");
        assert!(p.problem.contains("entries 5 to 6 are missing"), "{p:?}");
        let next = r
            .append_audit(AuditRecord {
                action: "prune".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(next.seq, 7);
        let p = first_problem(&r).await.unwrap();
        assert_eq!(p.seq, 5, "{p:?}");
    }

    #[tokio::test]
    async fn a_forged_head_is_refused() {
        let r = repo_with(2).await;
        let log = r.audit_log_id(false).await.unwrap().unwrap();
        let other = crate::repository::memory_repository().await.unwrap();
        let forged = AuditCheckpoint::new(other.key(), &log, 2, "00", Utc::now());
        r.put_named(
            &layout::audit_head(&log),
            ObjectKind::AuditCheckpoint,
            forged.to_json().unwrap(),
            PutMode::Overwrite,
        )
        .await
        .unwrap()
        .unwrap();
        let p = first_problem(&r).await.unwrap();
        assert!(p.problem.contains("signature does not match"), "{p:?}");
    }

    #[tokio::test]
    async fn bytes_flipped_in_an_entry_are_named() {
        let r = repo_with(3).await;
        let key = entry_key(&own_prefix(&r).await, 2);
        let mut bytes = r.storage().get(&key, None).await.unwrap().to_vec();
        let n = bytes.len();
        bytes[n - 5] ^= 1;
        r.storage()
            .put(&key, Bytes::from(bytes), PutMode::Overwrite)
            .await
            .unwrap();
        let p = first_problem(&r).await.unwrap();
        assert_eq!(p.seq, 2, "{p:?}");
        assert!(p.problem.contains("entry 2 is unreadable"), "{p:?}");
    }

    #[tokio::test]
    async fn periodic_checkpoints_are_kept() {
        let r = repo_with(CHECKPOINT_EVERY as usize + 1).await;
        let logs = r.audit_logs().await.unwrap();
        assert_eq!(logs[0].checkpoints, 1);
        assert!(logs[0].problems.is_empty(), "{:?}", logs[0].problems);
    }
}
