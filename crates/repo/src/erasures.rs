//! The erasure ledger in the repository: appending an entry (create-only,
//! numbered, chained to its predecessor) and reading the whole ledger back
//! with its chain verified. Restores replay it; `check` verifies it.

use chrono::Utc;
use lifeboat_format::chain::chain_hash;
use lifeboat_format::erasure::{
    AppliedRule, ErasedObjects, ErasureEntry, object_hash, subject_hash,
};
use lifeboat_format::object::ObjectKind;
use lifeboat_storage::{PutMode, StorageError};

use crate::error::{RepoError, Result};
use crate::layout;
use crate::repository::{Repository, local_origin};

/// The ledger as read: its entries in order, and what is wrong with it.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Readable entries, in sequence order.
    pub entries: Vec<ErasureEntry>,
    /// Damage: unreadable entries, gaps, broken links.
    pub problems: Vec<(String, String)>,
}

impl Ledger {
    /// The subject hashes whose erasure is in force (entries without a
    /// legal hold, unless a later entry for the subject holds it again).
    pub fn erased_subjects(&self) -> std::collections::HashSet<String> {
        let mut state: std::collections::HashMap<&str, bool> = Default::default();
        for e in &self.entries {
            state.insert(&e.subject, e.hold.is_none());
        }
        state
            .into_iter()
            .filter(|(_, erased)| *erased)
            .map(|(s, _)| s.to_string())
            .collect()
    }

    /// The object hashes ([`lifeboat_format::erasure::object_hash`]) of
    /// objects deleted by erasures in force.
    pub fn erased_objects(&self) -> std::collections::HashSet<String> {
        let erased = self.erased_subjects();
        self.entries
            .iter()
            .filter(|e| erased.contains(&e.subject))
            .flat_map(|e| e.buckets.iter().flat_map(|b| b.hashes.iter().cloned()))
            .collect()
    }
}

impl Repository {
    /// The keyed hash under which the ledger knows `subject`.
    pub fn subject_hash(&self, subject: &str) -> String {
        subject_hash(self.key(), subject)
    }

    /// The keyed hash under which the ledger knows object `key` of `bucket`.
    pub fn object_hash(&self, bucket: &str, key: &str) -> String {
        object_hash(self.key(), bucket, key)
    }

    /// Reads and verifies the whole ledger.
    pub async fn erasure_ledger(&self) -> Result<Ledger> {
        let chain = self
            .read_chain(
                layout::ERASURES,
                ObjectKind::Erasure,
                ErasureEntry::from_json,
            )
            .await?;
        Ok(Ledger {
            entries: chain.entries.into_iter().map(|(e, _)| e).collect(),
            problems: chain
                .problems
                .into_iter()
                .map(|(key, _, why)| (key, why))
                .collect(),
        })
    }

    /// Appends an entry for `subject` (stored only as its keyed hash).
    /// Refuses while the ledger is damaged: a new entry must not hide a gap.
    pub async fn append_erasure(
        &self,
        subject: &str,
        reason: &str,
        rules: Vec<AppliedRule>,
        buckets: Vec<ErasedObjects>,
        hold: Option<String>,
    ) -> Result<ErasureEntry> {
        for _ in 0..3 {
            let ledger = self.erasure_ledger().await?;
            if let Some((key, why)) = ledger.problems.first() {
                return Err(RepoError::Damaged(format!(
                    "the erasure ledger is damaged ({key}: {why}); no entry is added until it is repaired"
                )));
            }
            let prev = match ledger.entries.last() {
                Some(last) => chain_hash(&last.to_json()?),
                None => String::new(),
            };
            let o = local_origin(None);
            let entry = ErasureEntry {
                seq: ledger.entries.len() as u64 + 1,
                prev,
                time: Utc::now(),
                by: format!("{}@{}", o.user, o.host),
                reason: reason.to_string(),
                subject: self.subject_hash(subject),
                rules: rules.clone(),
                buckets: buckets.clone(),
                hold: hold.clone(),
            };
            let key = layout::erasure(entry.seq);
            match self
                .put_named(
                    &key,
                    ObjectKind::Erasure,
                    entry.to_json()?,
                    PutMode::CreateOnly,
                )
                .await?
            {
                Ok(()) => return Ok(entry),
                // Another erasure took this number: read again and retry.
                Err(StorageError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RepoError::Invalid(
            "other erasures were recorded at the same moment; run again".into(),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn repo() -> Repository {
        crate::repository::memory_repository().await.unwrap()
    }

    #[tokio::test]
    async fn entries_chain_and_a_removed_or_replaced_entry_is_found() {
        let r = repo().await;
        for subject in ["alice@example.com", "bob@example.com", "carol@example.com"] {
            r.append_erasure(subject, "ticket", Vec::new(), Vec::new(), None)
                .await
                .unwrap();
        }
        let ledger = r.erasure_ledger().await.unwrap();
        assert!(ledger.problems.is_empty(), "{:?}", ledger.problems);
        assert_eq!(ledger.entries.len(), 3);
        assert!(
            ledger
                .erased_subjects()
                .contains(&r.subject_hash("bob@example.com"))
        );
        // The subject is never stored in the clear.
        for key in ["erasures/000000000001", "erasures/000000000002"] {
            let raw = r.storage().get(key, None).await.unwrap();
            assert!(!raw.windows(5).any(|w| w == b"alice"));
        }
        // Entry 2 removed: a gap; entry 3 moved into its place: a wrong number.
        let third = r.storage().get(&layout::erasure(3), None).await.unwrap();
        r.storage()
            .delete(&layout::erasure(2), lifeboat_storage::IfMissing::Fail)
            .await
            .unwrap();
        let ledger = r.erasure_ledger().await.unwrap();
        assert!(
            ledger
                .problems
                .iter()
                .any(|(_, p)| p.contains("entry 2 is missing"))
        );
        assert!(
            r.append_erasure("dave", "t", Vec::new(), Vec::new(), None)
                .await
                .is_err()
        );
        r.storage()
            .put(&layout::erasure(2), third, PutMode::Overwrite)
            .await
            .unwrap();
        let ledger = r.erasure_ledger().await.unwrap();
        assert!(!ledger.problems.is_empty());
    }

    #[tokio::test]
    async fn a_hold_keeps_a_subject_out_of_the_erased_set_until_lifted() {
        let r = repo().await;
        r.append_erasure("erin", "t", Vec::new(), Vec::new(), Some("case 12".into()))
            .await
            .unwrap();
        assert!(
            r.erasure_ledger()
                .await
                .unwrap()
                .erased_subjects()
                .is_empty()
        );
        r.append_erasure("erin", "hold lifted", Vec::new(), Vec::new(), None)
            .await
            .unwrap();
        assert_eq!(r.erasure_ledger().await.unwrap().erased_subjects().len(), 1);
    }
}
